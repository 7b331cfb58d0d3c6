/* loopback.h - small helpers for tests that run real processes on
 * 127.0.0.1. */
#ifndef KV_TEST_LOOPBACK_H
#define KV_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
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

/* A port nobody listens on right now (the kernel picks it), and not one
 * this process was given before: the kernel may hand the same free port
 * out twice in a row, and two servers of a test would then collide. */
static inline int free_port(void)
{
    static int given[256];
    static unsigned n_given;
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
