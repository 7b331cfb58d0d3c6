/* loopback.h - small helpers for tests that run real processes on
 * 127.0.0.1. */
#ifndef KV_TEST_LOOPBACK_H
#define KV_TEST_LOOPBACK_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
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

#endif
