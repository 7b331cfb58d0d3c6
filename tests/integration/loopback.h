/* loopback.h - small helpers for tests that run real processes on
 * 127.0.0.1. */
#ifndef KV_TEST_LOOPBACK_H
#define KV_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static inline void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* The first port of the kernel's ephemeral range (the local ports it
 * gives outgoing connections), 32768 when it cannot be read. */
static inline int ephemeral_low(void)
{
    int low = 32768, high = 0;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2)
            low = 32768;
        fclose(f);
    }
    return low;
}

/* 1 when nothing holds 127.0.0.1:port (bound without SO_REUSEADDR, so a
 * connection still in TIME_WAIT on it counts as holding it). */
static inline int port_is_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* A port nobody listens on right now, and not one this process was given
 * before (two servers of a test would collide). Taken below the kernel's
 * ephemeral range: a port from that range can be handed to some outgoing
 * connection as its local port while the test's server on it is down, and
 * the server's restart on its port then fails with "address in use" (a
 * restarted node in CI did). */
static inline int free_port(void)
{
    static int given[256];
    static unsigned n_given, seed;
    if (!seed)
        seed = (unsigned)time(NULL) ^ ((unsigned)getpid() << 16) ^ 1u;
    int low = ephemeral_low();
    int first = 10000;
    for (int attempt = 0; attempt < 256 && low > first + 1000; attempt++) {
        int port = first + (int)(rand_r(&seed) % (unsigned)(low - first));
        int seen = 0;
        for (unsigned i = 0; i < n_given && i < 256; i++)
            seen |= given[i] == port;
        if (!seen && port_is_free(port)) {
            given[n_given++ % 256] = port;
            return port;
        }
    }
    /* No room below the range: one the kernel picks. */
    for (int attempt = 0; attempt < 64; attempt++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd, (struct sockaddr *)&sa, sizeof sa);
        socklen_t len = sizeof sa;
        getsockname(fd, (struct sockaddr *)&sa, &len);
        close(fd);
        int port = ntohs(sa.sin_port);
        int seen = 0;
        for (unsigned i = 0; i < n_given && i < 256; i++)
            seen |= given[i] == port;
        if (!seen) {
            given[n_given++ % 256] = port;
            return port;
        }
    }
    return 0;
}

/* A TCP connection to "127.0.0.1:PORT" (only the port is read: tests talk
 * to loopback) whose reads give up after timeout_s; the fd, or -1. */
static inline int loopback_connect(const char *host_port, int timeout_s)
{
    const char *colon = strrchr(host_port, ':');
    int fd = colon ? socket(AF_INET, SOCK_STREAM, 0) : -1;
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)atoi(colon + 1))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

/* Reads exactly n bytes: 0, or -1 at the end of the stream, an error or
 * the read timeout. */
static inline int recv_exact(int fd, unsigned char *p, size_t n)
{
    while (n) {
        ssize_t r = recv(fd, p, n, 0);
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

#endif
