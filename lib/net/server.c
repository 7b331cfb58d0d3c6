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
/* Stop reading a connection while this many of its requests wait for a
 * worker, for the same reason. */
#define MAX_INFLIGHT 1024u

typedef struct conn {
    int fd;            /* -1 once closed */
    int dead;          /* closed: on the thread's closed list, never served again */
    unsigned inflight; /* requests handed to workers, not yet answered */
    unsigned char *in;
    size_t in_len, in_cap;
    kvi_buf out;
    size_t out_sent;
    uint64_t last_active_ms;
    int closing;       /* close once the output is written */
    uint32_t events;   /* what epoll watches for this connection */
    /* The thread's open list; once dead, next links the closed list. */
    struct conn *prev, *next;
} conn;

/* A request handed to a worker, and later its answer going back. */
typedef struct job {
    struct io_thread *owner;
    conn *c;
    kvi_frame_header h;
    unsigned char *body; /* a copy of the request body */
    kvi_buf out;         /* the response, filled by the worker */
    struct job *next;
} job;

/* Threads running offloaded requests: a queue of jobs guarded by lock. */
typedef struct worker_pool {
    struct kvi_server *server;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    job *head, *tail;
    int stopping;
    unsigned n_workers;
    pthread_t *workers;
    kvi_batch_fn batch;  /* NULL: one job at a time */
} worker_pool;

typedef struct io_thread {
    struct kvi_server *server;
    pthread_t thread;
    int epfd;
    int wake_fd;
    conn *conns;
    /* Closed connections, freed by reap_closed only: after the epoll batch
     * that may still name them, and once no worker holds a job of theirs.
     * The one place a connection is freed, so no event, answer or scan can
     * reach freed memory or close a reused fd number. */
    conn *closed;
    /* Answers from workers, guarded by done_lock; wake_fd says some came. */
    pthread_mutex_t done_lock;
    job *done;
} io_thread;

struct kvi_server {
    kvi_server_config cfg;
    int listen_fd;
    int port;
    atomic_uint connections;
    atomic_int stopping;
    unsigned n_threads;
    io_thread *threads;
    worker_pool pools[KVI_SERVER_MAX_POOLS];
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

static void conn_free(conn *c)
{
    free(c->in);
    kvi_buf_free(&c->out);
    free(c);
}

/* Closes the socket and moves the connection to the closed list, where
 * it stays, dead, until reap_closed. Every path that ends a connection
 * comes here; a second call is a no-op, so its fd is closed exactly once. */
static void conn_close(io_thread *t, conn *c)
{
    if (c->dead)
        return;
    epoll_ctl(t->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    atomic_fetch_sub(&t->server->connections, 1);
    c->dead = 1;
    c->prev = NULL;
    c->next = t->closed;
    t->closed = c;
}

/* Frees the closed connections no job refers to any more. Called between
 * epoll batches only: an event of the batch just handled may have named
 * any of them. */
static void reap_closed(io_thread *t)
{
    conn **link = &t->closed;
    while (*link) {
        conn *c = *link;
        if (c->inflight == 0) {
            *link = c->next;
            conn_free(c);
        } else {
            link = &c->next;
        }
    }
}

/* Hands a request to a worker pool. 0, or -1 when out of memory. */
static int offload(io_thread *t, worker_pool *pool, conn *c, const kvi_frame_header *h,
                   const unsigned char *body)
{
    job *j = calloc(1, sizeof *j);
    unsigned char *copy = malloc(h->body_len ? h->body_len : 1);
    if (!j || !copy) {
        free(j);
        free(copy);
        return -1;
    }
    memcpy(copy, body, h->body_len);
    j->owner = t;
    j->c = c;
    j->h = *h;
    j->body = copy;
    c->inflight++;
    pthread_mutex_lock(&pool->lock);
    if (pool->tail)
        pool->tail->next = j;
    else
        pool->head = j;
    pool->tail = j;
    pthread_cond_signal(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

/* Hands a finished job back to the I/O thread that owns its connection;
 * returns that thread, to be woken. */
static io_thread *finish_job(job *j)
{
    free(j->body);
    j->body = NULL;
    io_thread *t = j->owner;
    pthread_mutex_lock(&t->done_lock);
    j->next = t->done;
    t->done = j;
    pthread_mutex_unlock(&t->done_lock);
    return t;
}

static void wake(io_thread *t)
{
    uint64_t one = 1;
    if (write(t->wake_fd, &one, sizeof one) < 0) {
        /* The counter is saturated: the loop is awake anyway. */
    }
}

/* Takes up to max jobs off the queue; called with pool->lock held. */
static size_t take_jobs(worker_pool *pool, job **out, size_t max)
{
    size_t n = 0;
    while (pool->head && n < max) {
        out[n++] = pool->head;
        pool->head = pool->head->next;
    }
    if (!pool->head)
        pool->tail = NULL;
    return n;
}

static void *worker_loop(void *arg)
{
    worker_pool *pool = arg;
    kvi_server *s = pool->server;
    job *jobs[KVI_SERVER_MAX_BATCH];
    kvi_server_request reqs[KVI_SERVER_MAX_BATCH];
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->head && !pool->stopping)
            pthread_cond_wait(&pool->cond, &pool->lock);
        size_t n = take_jobs(pool, jobs, pool->batch ? KVI_SERVER_MAX_BATCH : 1);
        if (n == 0)
            break; /* stopping, and nothing left to run */
        pthread_mutex_unlock(&pool->lock);

        if (pool->batch) {
            for (size_t i = 0; i < n; i++)
                reqs[i] = (kvi_server_request){&jobs[i]->h, jobs[i]->body, &jobs[i]->out};
            pool->batch(s->cfg.handler_ctx, reqs, n);
        } else {
            s->cfg.handler(s->cfg.handler_ctx, &jobs[0]->h, jobs[0]->body, &jobs[0]->out);
        }
        /* One wake per I/O thread concerned, not per job. */
        io_thread *woken[KVI_SERVER_MAX_BATCH];
        size_t n_woken = 0;
        for (size_t i = 0; i < n; i++) {
            io_thread *t = finish_job(jobs[i]);
            size_t k = 0;
            while (k < n_woken && woken[k] != t)
                k++;
            if (k == n_woken)
                woken[n_woken++] = t;
        }
        for (size_t k = 0; k < n_woken; k++)
            wake(woken[k]);
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
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
    int which;
    while (!c->closing && c->out.len - c->out_sent <= OUTPUT_HIGH_WATER &&
           c->inflight < MAX_INFLIGHT) {
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
        else if ((which = cfg->offload ? cfg->offload(cfg->handler_ctx, &h) : 0) > 0 &&
                 which <= (int)KVI_SERVER_MAX_POOLS && t->server->pools[which - 1].n_workers) {
            if (offload(t, &t->server->pools[which - 1], c, &h, frame + KVI_FRAME_HEADER) != 0)
                kvi_error_frame(&c->out, h.opcode, h.request_id, KV_ENOMEM, 0,
                                "out of memory queueing the request");
        } else {
            cfg->handler(cfg->handler_ctx, &h, frame + KVI_FRAME_HEADER, &c->out);
        }
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
        c->next = t->conns;
        if (t->conns)
            t->conns->prev = c;
        t->conns = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
            conn_close(t, c);
    }
}

static void close_idle(io_thread *t)
{
    uint64_t now = monotonic_ms();
    for (conn *c = t->conns, *next; c; c = next) {
        next = c->next;
        if (c->inflight == 0 && now - c->last_active_ms >= t->server->cfg.idle_timeout_ms) {
            kvi_log(t->server->cfg.log, KV_LOG_DEBUG,
                    "closing a connection idle for %u ms (%zu bytes of a frame pending)",
                    t->server->cfg.idle_timeout_ms, c->in_len);
            conn_close(t, c);
        }
    }
}

/* Takes the answers workers finished for this thread's connections. */
static job *take_answers(io_thread *t)
{
    uint64_t count;
    if (read(t->wake_fd, &count, sizeof count) < 0) {
        /* EAGAIN: nothing new since the last read. */
    }
    pthread_mutex_lock(&t->done_lock);
    job *list = t->done;
    t->done = NULL;
    pthread_mutex_unlock(&t->done_lock);
    return list;
}

/* Drops a finished job. A closed connection's memory outlives it: the
 * next reap_closed frees the connection once its last job is released. */
static void job_release(job *j)
{
    j->c->inflight--;
    kvi_buf_free(&j->out);
    free(j->body);
    free(j);
}

static void deliver_answers(io_thread *t)
{
    job *list = take_answers(t);
    while (list) {
        job *j = list;
        list = j->next;
        conn *c = j->c;
        if (!c->dead)
            kvi_buf_raw(&c->out, j->out.data, j->out.len);
        int was_full = c->inflight >= MAX_INFLIGHT;
        job_release(j);
        if (c->dead)
            continue; /* the answer has nowhere to go */
        c->last_active_ms = monotonic_ms();
        int dead = c->out.failed;
        if (!dead && was_full && c->in_len >= KVI_FRAME_HEADER)
            conn_process(t, c); /* requests that waited for room */
        if (!dead)
            dead = conn_flush(t, c) != 0;
        if (dead)
            conn_close(t, c);
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
            if (p == &wake_marker) {
                deliver_answers(t);
                continue;
            }
            conn *c = p;
            /* Closed earlier in this batch (its memory is kept until the
             * batch is over): the event is stale. */
            if (c->dead)
                continue;
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
        reap_closed(t);
    }
    /* Finish what was read, give each connection one try at its output,
     * then close. Connections with jobs out stay on the closed list; stop
     * reaps them once the workers are done. */
    while (t->conns) {
        conn *c = t->conns;
        conn_flush(t, c);
        conn_close(t, c);
    }
    reap_closed(t);
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
    int pools_ok = 1;
    unsigned total_workers = 0;
    for (unsigned p = 0; p < KVI_SERVER_MAX_POOLS; p++) {
        worker_pool *pool = &s->pools[p];
        pool->server = s;
        pthread_mutex_init(&pool->lock, NULL);
        pthread_cond_init(&pool->cond, NULL);
        unsigned want = cfg->offload ? cfg->workers[p] : 0;
        pool->batch = cfg->batch[p];
        pool->workers = want ? calloc(want, sizeof *pool->workers) : NULL;
        pools_ok &= !want || pool->workers != NULL;
        for (unsigned i = 0; pool->workers && i < want; i++) {
            if (pthread_create(&pool->workers[i], NULL, worker_loop, pool) != 0)
                break;
            pool->n_workers++;
        }
        pools_ok &= pool->n_workers == want;
        total_workers += pool->n_workers;
    }
    if (!s->threads) {
        s->n_threads = 0;
        kvi_server_stop(s);
        return kvi_error(KV_ENOMEM, "out of memory starting a server");
    }
    for (unsigned i = 0; i < s->n_threads; i++)
        pthread_mutex_init(&s->threads[i].done_lock, NULL);
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
    if (started < s->n_threads || !pools_ok) {
        s->n_threads = started;
        kvi_server_stop(s);
        return kvi_error(KV_EIO, "cannot start the server's I/O threads");
    }
    kvi_log(cfg->log, KV_LOG_INFO,
            "binary protocol listening on %s (port %d, %u I/O threads, %u workers)",
            cfg->listen_addr, s->port, s->n_threads, total_workers);
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
    for (unsigned i = 0; i < s->n_threads; i++)
        pthread_join(s->threads[i].thread, NULL);
    /* The I/O threads have closed every connection; the workers finish
     * the requests they hold (their answers have nowhere to go now). */
    for (unsigned p = 0; p < KVI_SERVER_MAX_POOLS; p++) {
        worker_pool *pool = &s->pools[p];
        pthread_mutex_lock(&pool->lock);
        pool->stopping = 1;
        pthread_cond_broadcast(&pool->cond);
        pthread_mutex_unlock(&pool->lock);
        for (unsigned i = 0; i < pool->n_workers; i++)
            pthread_join(pool->workers[i], NULL);
    }
    for (unsigned i = 0; i < s->n_threads; i++) {
        io_thread *t = &s->threads[i];
        for (job *j = take_answers(t), *next; j; j = next) {
            next = j->next;
            job_release(j);
        }
        reap_closed(t);
        close(t->epfd);
        close(t->wake_fd);
        pthread_mutex_destroy(&t->done_lock);
    }
    close(s->listen_fd);
    for (unsigned p = 0; p < KVI_SERVER_MAX_POOLS; p++) {
        pthread_mutex_destroy(&s->pools[p].lock);
        pthread_cond_destroy(&s->pools[p].cond);
        free(s->pools[p].workers);
    }
    free(s->threads);
    free(s);
}
