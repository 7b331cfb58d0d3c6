/* silent_listener.h - a TCP listener on 127.0.0.1 that accepts (through its
 * backlog) and never answers: the node that does not reply, for timeout
 * tests. */
#ifndef KV_TEST_SILENT_LISTENER_H
#define KV_TEST_SILENT_LISTENER_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

/* The listening fd, its "127.0.0.1:PORT" in ep; -1 when it cannot listen. */
static inline int silent_listener(char *ep, size_t ep_size)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    socklen_t len = sizeof sa;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 16) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sa, &len) != 0) {
        if (lfd >= 0)
            close(lfd);
        return -1;
    }
    snprintf(ep, ep_size, "127.0.0.1:%d", ntohs(sa.sin_port));
    return lfd;
}

#endif
