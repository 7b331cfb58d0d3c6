/* net/server.c - epoll loops serving framed requests. */
/* accept4 and SOCK_NONBLOCK are Linux extensions. */
#define _GNU_SOURCE
#include "net/server.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <kv/common.h>
#include "net/addr.h"
#include "util/error.h"

/* Read at least this much at a time; a frame larger than the buffer grows
 * it to exactly the frame's size, never past the body limit. */
#define READ_CHUNK (64u * 1024u)
/* Stop reading a connection while this much output waits for it, so a
 * client that sends without reading cannot make the server buffer
 * without bound. */
#define OUTPUT_HIGH_WATER (8u * 1024u * 1024u)

typedef struct conn {
    int fd;
    unsigned char *in;
    size_t in_len, in_cap;
    kvi_buf out;
    size_t out_sent;
    uint64_t last_active_ms;
    int closing;       /* close once the output is written */
    uint32_t events;   /* what epoll watches for this connection */
    struct conn *prev, *next;
} conn;

typedef struct io_thread {
    struct kvi_server *server;
    pthread_t thread;
    int epfd;
    int wake_fd;
    conn *conns;
} io_thread;

struct kvi_server {
    kvi_server_config cfg;
    int listen_fd;
    int port;
    atomic_uint connections;
    atomic_int stopping;
    unsigned n_threads;
    io_thread *threads;
};

static uint64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void kvi_error_frame(kvi_buf *out, uint8_t opcode, uint64_t request_id,
                     int status, uint64_t version, const char *message)
{
    size_t start = out->len;
    kvi_frame_begin(out);
    kvi_response r = {.opcode = opcode, .status = (int16_t)status, .version = version,
                      .message = {(const unsigned char *)message, strlen(message)}};
    kvi_response_encode(out, &r);
    kvi_frame_finish(out, start, opcode, KVI_FRAME_FLAG_RESPONSE, (int16_t)status, request_id);
}

static void conn_close(io_thread *t, conn *c)
{
    epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    free(c->in);
    kvi_buf_free(&c->out);
    free(c);
    atomic_fetch_sub(&t->server->connections, 1);
}

/* Writes what output is pending; returns -1 when the connection is dead. */
static int conn_flush(io_thread *t, conn *c)
{
    while (c->out_sent < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_sent, c->out.len - c->out_sent,
                         MSG_NOSIGNAL);
        if (n > 0) {
            c->out_sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return -1;
    }
    if (c->out_sent == c->out.len) {
        kvi_buf_reset(&c->out);
        c->out_sent = 0;
        if (c->closing)
            return -1;
    }
    /* Writable interest only while output waits; input paused while the
     * backlog is over the high-water mark. */
    size_t pending = c->out.len - c->out_sent;
    uint32_t events = (pending ? EPOLLOUT : 0) | (pending > OUTPUT_HIGH_WATER ? 0 : EPOLLIN);
    if (events != c->events) {
        struct epoll_event ev = {.events = events, .data.ptr = c};
        epoll_ctl(t->epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->events = events;
    }
    return 0;
}

/* Cuts complete frames off the input buffer and answers them. */
static void conn_process(io_thread *t, conn *c)
{
    const kvi_server_config *cfg = &t->server->cfg;
    size_t pos = 0;
    while (!c->closing && c->out.len - c->out_sent <= OUTPUT_HIGH_WATER) {
        kvi_frame_header h;
        memset(&h, 0, sizeof h);
        kvi_frame_error e = kvi_frame_parse_header(&h, c->in + pos, c->in_len - pos, cfg->max_body);
        if (e == KVI_FRAME_NEED_MORE)
            break;
        if (e == KVI_FRAME_BAD_MAGIC || e == KVI_FRAME_BAD_VERSION ||
            e == KVI_FRAME_BAD_FLAGS || e == KVI_FRAME_TOO_BIG) {
            int status = e == KVI_FRAME_TOO_BIG ? KV_ETOOBIG : KV_EINVAL;
            kvi_log(cfg->log, KV_LOG_WARN, "closing a connection: %s", kvi_frame_error_text(e));
            kvi_error_frame(&c->out, h.opcode, h.request_id, status, 0, kvi_frame_error_text(e));
            c->closing = 1;
            break;
        }
        size_t frame_len = KVI_FRAME_HEADER + (size_t)h.body_len;
        if (c->in_len - pos < frame_len)
            break;
        const unsigned char *frame = c->in + pos;
        if (kvi_frame_verify(&h, frame, frame + KVI_FRAME_HEADER) != KVI_FRAME_OK) {
            kvi_log(cfg->log, KV_LOG_WARN, "closing a connection: frame checksum mismatch");
            kvi_error_frame(&c->out, h.opcode, h.request_id, KV_EINVAL, 0,
                            kvi_frame_error_text(KVI_FRAME_BAD_CHECKSUM));
            c->closing = 1;
            break;
        }
        if (e == KVI_FRAME_BAD_OPCODE)
            kvi_error_frame(&c->out, h.opcode, h.request_id, KV_ENOTSUP, 0,
                            kvi_frame_error_text(e));
        else
            cfg->handler(cfg->handler_ctx, &h, frame + KVI_FRAME_HEADER, &c->out);
        pos += frame_len;
    }
    if (pos) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
}

static int conn_read(io_thread *t, conn *c)
{
    const kvi_server_config *cfg = &t->server->cfg;
    for (;;) {
        /* Room for a chunk, or for the whole frame whose header is in. */
        size_t need = c->in_len + READ_CHUNK;
        kvi_frame_header h;
        if (kvi_frame_parse_header(&h, c->in, c->in_len, cfg->max_body) == KVI_FRAME_OK &&
            KVI_FRAME_HEADER + (size_t)h.body_len > need)
            need = KVI_FRAME_HEADER + (size_t)h.body_len;
        if (need > c->in_cap) {
            unsigned char *p = realloc(c->in, need);
            if (!p)
                return -1;
            c->in = p;
            c->in_cap = need;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n == 0)
            return -1; /* the peer closed; whatever it half-sent is dropped */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->in_len += (size_t)n;
        c->last_active_ms = monotonic_ms();
        conn_process(t, c);
        if (c->closing || c->out.len - c->out_sent > OUTPUT_HIGH_WATER)
            return 0;
        if ((size_t)n < READ_CHUNK)
            return 0;
    }
}

static void accept_all(io_thread *t)
{
    kvi_server *s = t->server;
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN: another thread took it, or none left */
        if (atomic_fetch_add(&s->connections, 1) >= s->cfg.max_connections) {
            atomic_fetch_sub(&s->connections, 1);
            kvi_log(s->cfg.log, KV_LOG_WARN, "refusing a connection: %u open already",
                    s->cfg.max_connections);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            atomic_fetch_sub(&s->connections, 1);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->events = EPOLLIN;
        c->last_active_ms = monotonic_ms();
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            free(c);
            close(fd);
            atomic_fetch_sub(&s->connections, 1);
            continue;
        }
        c->next = t->conns;
        if (t->conns)
            t->conns->prev = c;
        t->conns = c;
    }
}

static void close_idle(io_thread *t)
{
    uint64_t now = monotonic_ms();
    for (conn *c = t->conns, *next; c; c = next) {
        next = c->next;
        if (now - c->last_active_ms >= t->server->cfg.idle_timeout_ms) {
            kvi_log(t->server->cfg.log, KV_LOG_DEBUG,
                    "closing a connection idle for %u ms (%zu bytes of a frame pending)",
                    t->server->cfg.idle_timeout_ms, c->in_len);
            conn_close(t, c);
        }
    }
}

/* Marker pointers in epoll data for the two non-connection fds. */
static char listen_marker, wake_marker;

static void *io_loop(void *arg)
{
    io_thread *t = arg;
    struct epoll_event events[64];
    uint64_t last_scan = monotonic_ms();
    while (!atomic_load(&t->server->stopping)) {
        int n = epoll_wait(t->epfd, events, 64, 500);
        for (int i = 0; i < n; i++) {
            void *p = events[i].data.ptr;
            if (p == &listen_marker) {
                accept_all(t);
                continue;
            }
            if (p == &wake_marker)
                continue;
            conn *c = p;
            int dead = 0;
            if (events[i].events & (EPOLLHUP | EPOLLERR))
                dead = 1;
            if (!dead && (events[i].events & EPOLLIN))
                dead = conn_read(t, c) != 0;
            if (!dead)
                dead = conn_flush(t, c) != 0;
            /* Output drained below the mark: answer frames that waited. */
            if (!dead && !(events[i].events & EPOLLIN) && c->in_len >= KVI_FRAME_HEADER &&
                c->out.len - c->out_sent <= OUTPUT_HIGH_WATER) {
                conn_process(t, c);
                dead = conn_flush(t, c) != 0;
            }
            if (dead)
                conn_close(t, c);
        }
        uint64_t now = monotonic_ms();
        if (now - last_scan >= 250) {
            close_idle(t);
            last_scan = now;
        }
    }
    /* Finish what was read, give each connection one try at its output,
     * then close. */
    while (t->conns) {
        conn *c = t->conns;
        conn_flush(t, c);
        conn_close(t, c);
    }
    return NULL;
}

int kvi_server_start(kvi_server **out, const kvi_server_config *cfg)
{
    *out = NULL;
    kvi_addr addr;
    int rc = kvi_addr_parse(&addr, cfg->listen_addr);
    if (rc != KV_OK)
        return rc;
    kvi_server *s = calloc(1, sizeof *s);
    if (!s)
        return kvi_error(KV_ENOMEM, "out of memory starting a server");
    s->cfg = *cfg;
    s->listen_fd = kvi_listen(&addr, 1024);
    if (s->listen_fd < 0) {
        rc = s->listen_fd;
        free(s);
        return rc;
    }
    s->port = kvi_local_port(s->listen_fd);
    s->n_threads = cfg->io_threads ? cfg->io_threads : 1;
    s->threads = calloc(s->n_threads, sizeof *s->threads);
    if (!s->threads) {
        close(s->listen_fd);
        free(s);
        return kvi_error(KV_ENOMEM, "out of memory starting a server");
    }
    unsigned started = 0;
    for (; started < s->n_threads; started++) {
        io_thread *t = &s->threads[started];
        t->server = s;
        t->epfd = epoll_create1(EPOLL_CLOEXEC);
        t->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.ptr = &listen_marker};
        struct epoll_event wev = {.events = EPOLLIN, .data.ptr = &wake_marker};
        if (t->epfd < 0 || t->wake_fd < 0 ||
            epoll_ctl(t->epfd, EPOLL_CTL_ADD, s->listen_fd, &lev) != 0 ||
            epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->wake_fd, &wev) != 0 ||
            pthread_create(&t->thread, NULL, io_loop, t) != 0) {
            if (t->epfd >= 0)
                close(t->epfd);
            if (t->wake_fd >= 0)
                close(t->wake_fd);
            break;
        }
    }
    if (started < s->n_threads) {
        s->n_threads = started;
        kvi_server_stop(s);
        return kvi_error(KV_EIO, "cannot start the server's I/O threads");
    }
    kvi_log(cfg->log, KV_LOG_INFO, "binary protocol listening on %s (port %d, %u threads)",
            cfg->listen_addr, s->port, s->n_threads);
    *out = s;
    return KV_OK;
}

int kvi_server_port(const kvi_server *s)
{
    return s->port;
}

void kvi_server_stop(kvi_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, 1);
    for (unsigned i = 0; i < s->n_threads; i++) {
        uint64_t one = 1;
        if (write(s->threads[i].wake_fd, &one, sizeof one) < 0) {
            /* The loop also wakes on its epoll timeout. */
        }
    }
    for (unsigned i = 0; i < s->n_threads; i++) {
        pthread_join(s->threads[i].thread, NULL);
        close(s->threads[i].epfd);
        close(s->threads[i].wake_fd);
    }
    close(s->listen_fd);
    free(s->threads);
    free(s);
}
