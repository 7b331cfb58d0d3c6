/* net/addr.c - address parsing, listen and connect. */
#include "net/addr.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <kv/common.h>
#include "util/error.h"

int kvi_addr_parse(kvi_addr *out, const char *text)
{
    memset(out, 0, sizeof *out);
    if (!text || !*text)
        return kvi_error(KV_EINVAL, "address is empty (want HOST:PORT)");
    size_t n = strlen(text);
    if (n >= sizeof out->text)
        return kvi_error(KV_EINVAL, "address \"%.40s...\" is too long", text);
    memcpy(out->text, text, n + 1);

    char host[128];
    const char *port;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':')
            return kvi_error(KV_EINVAL, "address \"%s\": want [V6HOST]:PORT", text);
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = 0;
        port = end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || colon == text)
            return kvi_error(KV_EINVAL, "address \"%s\": want HOST:PORT", text);
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = 0;
        port = colon + 1;
    }
    char *end;
    long p = strtol(port, &end, 10);
    if (!*port || *end || p < 0 || p > 65535)
        return kvi_error(KV_EINVAL, "address \"%s\": port must be 0..65535", text);

    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res)
        return kvi_error(KV_EINVAL, "address \"%s\": cannot resolve host (%s)", text,
                         gai_strerror(rc));
    memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    freeaddrinfo(res);
    return KV_OK;
}

int kvi_listen(const kvi_addr *addr, int backlog)
{
    int fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return kvi_error(KV_EIO, "socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&addr->sa, addr->len) != 0) {
        int e = errno;
        close(fd);
        return kvi_error(e == EADDRINUSE ? KV_EBUSY : KV_EIO, "cannot listen on %s: %s",
                         addr->text, strerror(e));
    }
    if (listen(fd, backlog) != 0) {
        int e = errno;
        close(fd);
        return kvi_error(KV_EIO, "listen on %s: %s", addr->text, strerror(e));
    }
    return fd;
}

int kvi_local_port(int fd)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof sa;
    if (getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        return 0;
    if (sa.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&sa)->sin_port);
    if (sa.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
    return 0;
}

int kvi_addr_source(kvi_addr *out, const char *listen)
{
    if (kvi_addr_parse(out, listen) != KV_OK)
        return 0;
    if (out->sa.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->sa;
        in->sin_port = 0;
        return in->sin_addr.s_addr != htonl(INADDR_ANY);
    }
    if (out->sa.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->sa;
        in6->sin6_port = 0;
        return !IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr);
    }
    return 0;
}

int kvi_connect(const kvi_addr *addr, int timeout_ms)
{
    return kvi_connect_from(addr, NULL, timeout_ms);
}

/* A TCP connection to a port of this host that nothing listens on can
 * meet itself: when the kernel gives the socket that same port as its
 * local port, the two SYNs open one connection whose ends are the same
 * socket. It would then hold the port its server needs to restart, and
 * answer every request with the request. */
static int connected_to_itself(int fd)
{
    struct sockaddr_storage local, peer;
    socklen_t local_len = sizeof local, peer_len = sizeof peer;
    if (getsockname(fd, (struct sockaddr *)&local, &local_len) != 0 ||
        getpeername(fd, (struct sockaddr *)&peer, &peer_len) != 0)
        return 0;
    return local_len == peer_len && memcmp(&local, &peer, local_len) == 0;
}

int kvi_connect_from(const kvi_addr *addr, const kvi_addr *source, int timeout_ms)
{
    int fd = socket(addr->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return kvi_error(KV_EIO, "socket: %s", strerror(errno));
    if (source && source->sa.ss_family == addr->sa.ss_family &&
        bind(fd, (const struct sockaddr *)&source->sa, source->len) != 0) {
        int e = errno;
        close(fd);
        return kvi_error(KV_EUNAVAILABLE, "cannot bind to %s to connect to %s: %s",
                         source->text, addr->text, strerror(e));
    }
    int rc = connect(fd, (const struct sockaddr *)&addr->sa, addr->len);
    if (rc != 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return kvi_error(KV_EUNAVAILABLE, "cannot connect to %s: %s", addr->text, strerror(e));
    }
    if (rc != 0) {
        struct pollfd pfd = {fd, POLLOUT, 0};
        int ready;
        do
            ready = poll(&pfd, 1, timeout_ms);
        while (ready < 0 && errno == EINTR);
        if (ready == 0) {
            close(fd);
            return kvi_error(KV_ETIMEDOUT, "connecting to %s timed out after %d ms",
                             addr->text, timeout_ms);
        }
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (ready < 0 || err) {
            close(fd);
            return kvi_error(KV_EUNAVAILABLE, "cannot connect to %s: %s", addr->text,
                             strerror(err ? err : errno));
        }
    }
    if (connected_to_itself(fd)) {
        /* Reset, not closed: a close would leave the port in TIME_WAIT. */
        struct linger reset = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        close(fd);
        return kvi_error(KV_EUNAVAILABLE, "cannot connect to %s: nothing listens there (the "
                                          "connection met itself)", addr->text);
    }
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int kvi_addr_is_loopback(const kvi_addr *a)
{
    if (a->sa.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&a->sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127u;
    }
    if (a->sa.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&a->sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return 1;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return in6->sin6_addr.s6_addr[12] == 127u;
    }
    return 0;
}
