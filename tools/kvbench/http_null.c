/*
 * http_null - an HTTP/1.1 server that does no work, to measure the load
 * generator's own ceiling (docs/BENCHMARKS.md, "HTTP against binary: the
 * load generator's ceiling").
 *
 *   http_null [PORT]     (default 17999; listens on 127.0.0.1 only)
 *
 * One thread, epoll. Every request on a keep-alive connection gets the same
 * 200 with a 240-byte JSON body, about the size of kvd's answer to a GET of
 * a 200-byte value. It counts requests by their blank line and ignores
 * bodies, so it only serves GETs (what wrk sends). Stop it with a signal.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_EVENTS 256

/* Counts the request ends ("\r\n\r\n") in buf[0, len), carrying the last
 * three bytes of the previous read in *tail so that an end split across
 * two reads is still seen. */
static int count_requests(const char *buf, size_t len, unsigned *tail)
{
    int n = 0;
    unsigned window = *tail;
    for (size_t i = 0; i < len; i++) {
        window = (window << 8) | (unsigned char)buf[i];
        if (window == 0x0d0a0d0au)
            n++;
    }
    *tail = window;
    return n;
}

int main(int argc, char **argv)
{
    int port = argc > 1 ? atoi(argv[1]) : 17999;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "usage: http_null [PORT]\n");
        return 2;
    }
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) != 0 || listen(ls, 512) != 0) {
        perror("http_null: listen");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &lev);

    char answer[512];
    int answer_len = snprintf(answer, sizeof answer,
                              "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              "Content-Length: 240\r\n\r\n{\"value\":\"%228s\"}", "");
    static char buf[65536];
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            if (!evs[i].data.ptr) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    unsigned *tail = calloc(1, sizeof *tail + sizeof fd);
                    if (!tail) {
                        close(fd);
                        continue;
                    }
                    memcpy(tail + 1, &fd, sizeof fd);
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = tail};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            unsigned *tail = evs[i].data.ptr;
            int fd;
            memcpy(&fd, tail + 1, sizeof fd);
            ssize_t got = recv(fd, buf, sizeof buf, 0);
            if (got <= 0) {
                close(fd);
                free(tail);
                continue;
            }
            for (int r = count_requests(buf, (size_t)got, tail); r > 0; r--) {
                if (send(fd, answer, (size_t)answer_len, MSG_NOSIGNAL) != answer_len)
                    break; /* the client is gone or not reading: its problem */
            }
        }
    }
}
