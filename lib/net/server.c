/* net/server.c - epoll loops serving framed requests. */
/* accept4 and SOCK_NONBLOCK are Linux extensions. */
#define _GNU_SOURCE
#include "net/server.h"

#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <kv/common.h>
#include "net/addr.h"
#include "net/loop.h"
#include "net/tls.h"
#include "util/error.h"
#include "util/clock.h"

/* Read at most this much at a time; a frame larger than the buffer grows
 * it to exactly the frame's size, never past the body limit. */
#define READ_CHUNK (64u * 1024u)
/* An input buffer grown past this for a large frame goes back to
 * READ_CHUNK once what is left of it fits there; an output buffer past
 * this is freed once written. One large request must not pin its memory
 * for the life of the connection. */
#define SHRINK_ABOVE (256u * 1024u)
/* Stop reading a connection while this much output waits for it, so that
 * one client that sends without reading cannot take the whole budget. */
#define OUTPUT_HIGH_WATER (8u * 1024u * 1024u)
/* Stop reading a connection while this many of its requests wait for a
 * worker, for the same reason. */
#define MAX_INFLIGHT 1024u
/* Taken from the byte budget for each request's answer before it runs,
 * and given back once the real answer is charged: answers up to this size
 * cannot take the server past its bound. */
#define ANSWER_ROOM (4u * 1024u)
/* How long a frame waits for the budget to admit it before it is answered
 * "server busy" instead: the bytes may be held by clients that stopped
 * reading, and every connection waiting on the others must not stall. */
#define ADMIT_WAIT_MS 2000u
/* Bytes come back on other threads without telling this one, so a thread
 * with connections waiting for them looks again this often. */
#define ADMIT_RETRY_MS 10
/* How often a thread looks for idle connections. */
#define IDLE_SCAN_MS 250u
/* An idle connection's empty input buffer is freed after this long. */
#define IDLE_BUFFER_MS 1000u
/* Room taken for an error frame the server writes on its own (a refusal,
 * a framing error): more than any of them needs. */
#define ERROR_ROOM 128u
/* On stop, once every job is answered, connections have this long in all
 * to take their answers; a client that does not read is not waited for
 * longer. */
#define STOP_FLUSH_MS 2000u
/* How often a stopping thread looks at its connections and the clock. */
#define STOP_TICK_MS 20
/* Request bytes still in the kernel are read and dropped, at most this
 * much, before a stopped connection closes: closing over unread data
 * would reset the connection and could discard answers in flight. */
#define STOP_DISCARD_MAX (1024u * 1024u)

typedef struct conn {
    struct io_thread *owner;
    int fd;            /* -1 once closed */
    int dead;          /* closed: on the thread's closed list, never served again */
    unsigned inflight; /* requests handed to workers, not yet answered */
    unsigned char *in; /* in_cap bytes, all charged to the budget */
    size_t in_len, in_cap;
    uint64_t discard;  /* bytes still to skip of a frame refused unread */
    kvi_buf out;
    size_t out_sent;
    size_t out_charged; /* pending output charged to the budget */
    uint64_t last_active_ms;
    /* The budget refused this connection bytes: it neither reads nor
     * cuts frames until the thread retries it. */
    int starved;
    uint64_t wait_since_ms; /* when the frame at the head began waiting; 0: it does not */
    int closing;       /* close once the output is written */
    kvi_loop_io io;    /* the socket in the thread's loop */
    /* Answers came back for it this iteration: write them, and cut the
     * frames that waited for room, once at the iteration's end. */
    kvi_loop_deferred serve;
    kvi_tls_session *tls; /* NULL: plain TCP */
    int handshaking;   /* the TLS handshake is not complete: no frames yet */
    int tls_retry;     /* a TLS send wanted the socket: repeat it before any other */
    unsigned proven;   /* KVI_CONN_* bits, for the gate */
    /* The gate's, zeroed by calloc at accept. */
    _Alignas(max_align_t) unsigned char gate_state[KVI_SERVER_GATE_STATE];
    /* The thread's open list; once dead, next links the closed list. */
    struct conn *prev, *next;
    kvi_loop_task adopt_task; /* accepted by another thread, handed to owner */
} conn;

/* A request handed to a worker, and later its answer going back. */
typedef struct job {
    struct io_thread *owner;
    conn *c;
    kvi_frame_header h;
    unsigned char *mem;        /* holds the body: a copy, or the input buffer itself */
    const unsigned char *body;
    size_t mem_charged;        /* budget bytes for mem */
    size_t answer_charged;     /* budget bytes for the answer: ANSWER_ROOM or its size */
    kvi_buf out;               /* the response, filled by the worker */
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

/* One loop's share of the server: the connections it accepted. Its loop is
 * its own, run by its own thread, or the one the config lends (run by
 * someone else: a node's peers loop), so that requests coordinated there
 * and their connections share one thread. Everything here but done and
 * the stop flags is touched on the loop's thread only. */
typedef struct io_thread {
    struct kvi_server *server;
    kvi_loop *loop;
    int own_loop;        /* made here and run by thread */
    int thread_started;
    pthread_t thread;
    kvi_loop_io listen_io;
    int listening;       /* listen_io is registered */
    kvi_loop_timer tick; /* idle scan, starved retries, stop steps */
    uint64_t last_scan_ms;
    kvi_loop_task start_task, stop_task, answers_task;
    /* After the iteration's events: retry starved connections, free the
     * closed ones. */
    kvi_loop_deferred housekeeping;
    /* The iteration's KVI_SERVER_LOOP_BATCH requests, handed over together
     * by run_gathered at its end. */
    struct job **gathered;
    size_t n_gathered, cap_gathered;
    kvi_loop_deferred run_gathered;
    conn *conns;
    unsigned n_starved; /* open connections with starved set */
    /* Stopping: no accepts, no reads; the thread ends once every request
     * read is answered and written (or flush_deadline_ms has passed). */
    int draining;
    uint64_t flush_deadline_ms; /* 0 until every job has come back */
    /* Closed connections, freed by reap_closed only: after the epoll batch
     * that may still name them, and once no worker holds a job of theirs.
     * The one place a connection is freed, so no event, answer or scan can
     * reach freed memory or close a reused fd number. */
    conn *closed;
    /* Answers from other threads, guarded by done_lock; answers_task is
     * posted to the loop when the list stops being empty. */
    pthread_mutex_t done_lock;
    job *done;
    /* Set under the server's state_lock: registered on the loop (or
     * failed: start_rc), and everything of it off the loop again. */
    int started, start_rc, finished;
    /* Its connections, open or on their way to it (accept_all). */
    atomic_uint n_open;
} io_thread;

struct kvi_server {
    kvi_server_config cfg;
    int listen_fd;
    int port;
    atomic_uint connections;
    atomic_int stopping;
    /* Bytes held for connections: input buffers, job bodies and answers,
     * pending output. Admissions keep it at most admit_limit; the error
     * frames that refuse admission use the rest, up to max_buffered, so
     * that a full server can still say so. Only answers larger than
     * ANSWER_ROOM take it further. */
    atomic_size_t buffered;
    size_t max_buffered;
    size_t admit_limit;
    unsigned n_threads;
    io_thread *threads;
    worker_pool pools[KVI_SERVER_MAX_POOLS];
    /* Start and stop wait here for the threads on a lent loop. */
    pthread_mutex_t state_lock;
    pthread_cond_t state_cond;
};

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

/* ------------------------------------------------------ the byte budget */

/* Takes n bytes of the budget: 0, or -1 (nothing taken) when that would
 * take it past limit. */
static int budget_take(kvi_server *s, size_t n, size_t limit)
{
    size_t cur = atomic_load(&s->buffered);
    do {
        if (n > limit || cur > limit - n)
            return -1;
    } while (!atomic_compare_exchange_weak(&s->buffered, &cur, cur + n));
    return 0;
}

/* Charges bytes that exist already and cannot be refused (an answer). */
static void budget_charge(kvi_server *s, size_t n)
{
    atomic_fetch_add(&s->buffered, n);
}

static void budget_release(kvi_server *s, size_t n)
{
    atomic_fetch_sub(&s->buffered, n);
}

/* Brings the charge for c's pending output up to date. */
static void conn_charge_out(kvi_server *s, conn *c)
{
    size_t pending = c->out.len - c->out_sent;
    if (pending > c->out_charged)
        budget_charge(s, pending - c->out_charged);
    else
        budget_release(s, c->out_charged - pending);
    c->out_charged = pending;
}

/* Resizes c's input buffer to cap bytes (0 frees it), charging or giving
 * back the difference. 0; 1 when the budget refuses the growth; -1 when
 * memory does. */
static int conn_resize_in(kvi_server *s, conn *c, size_t cap)
{
    if (cap > c->in_cap && budget_take(s, cap - c->in_cap, s->admit_limit) != 0)
        return 1;
    if (cap == 0) {
        free(c->in);
        c->in = NULL;
    } else {
        unsigned char *p = realloc(c->in, cap);
        if (!p) {
            if (cap > c->in_cap)
                budget_release(s, cap - c->in_cap);
            return cap > c->in_cap ? -1 : 0; /* a failed shrink keeps the buffer */
        }
        c->in = p;
    }
    if (cap < c->in_cap)
        budget_release(s, c->in_cap - cap);
    c->in_cap = cap;
    return 0;
}

/* ---------------------------------------------------------- connections */

static void conn_free(conn *c)
{
    free(c->in);
    kvi_buf_free(&c->out);
    free(c);
}

/* Closes the socket, gives back its buffers and moves the connection to
 * the closed list, where it stays, dead, until reap_closed. Every path
 * that ends a connection comes here; a second call is a no-op, so its fd
 * is closed exactly once. */
static void conn_close(io_thread *t, conn *c)
{
    if (c->dead)
        return;
    kvi_loop_io_del(t->loop, &c->io);
    kvi_tls_close(c->tls);
    c->tls = NULL;
    close(c->fd);
    c->fd = -1;
    if (c->prev)
        c->prev->next = c->next;
    else
        t->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    atomic_fetch_sub(&t->server->connections, 1);
    atomic_fetch_sub(&t->n_open, 1);
    if (c->starved)
        t->n_starved--;
    c->dead = 1;
    conn_resize_in(t->server, c, 0);
    kvi_buf_free(&c->out);
    c->out_sent = 0;
    conn_charge_out(t->server, c);
    c->prev = NULL;
    c->next = t->closed;
    t->closed = c;
}

/* Frees the closed connections no job refers to any more. Called at the
 * end of an iteration only (housekeeping, or a timer), never from inside a
 * connection's own callback. */
static void reap_closed(io_thread *t)
{
    conn **link = &t->closed;
    while (*link) {
        conn *c = *link;
        if (c->inflight == 0) {
            *link = c->next;
            kvi_loop_undefer(t->loop, &c->serve);
            conn_free(c);
        } else {
            link = &c->next;
        }
    }
}

/* A request handed off the I/O thread (to a worker pool, or to be
 * answered later), with its body in mem (taken over) or else copied. The
 * caller has taken ANSWER_ROOM and mem_charged bytes of the budget for it
 * (the copy, or the buffer handed over); the job gives them back. NULL
 * when out of memory. */
static job *job_new(io_thread *t, conn *c, const kvi_frame_header *h, const unsigned char *body,
                    unsigned char *mem, size_t mem_charged)
{
    job *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    if (!mem) {
        j->mem = malloc(h->body_len ? h->body_len : 1);
        if (!j->mem) {
            free(j);
            return NULL;
        }
        memcpy(j->mem, body, h->body_len);
        body = j->mem;
    } else {
        j->mem = mem;
    }
    j->owner = t;
    j->c = c;
    j->h = *h;
    j->body = body;
    j->mem_charged = mem_charged;
    j->answer_charged = ANSWER_ROOM;
    c->inflight++;
    return j;
}

static void job_queue(worker_pool *pool, job *j)
{
    pthread_mutex_lock(&pool->lock);
    if (pool->tail)
        pool->tail->next = j;
    else
        pool->head = j;
    pool->tail = j;
    pthread_cond_signal(&pool->cond);
    pthread_mutex_unlock(&pool->lock);
}

static int finish_job(job *j);

static void gather(io_thread *t, job *j);

/* Sends a new job where `which` says: a worker pool, the asynchronous
 * handler, which may answer it later or send it to a pool itself, or the
 * iteration's gathered batch. */
static void job_dispatch(io_thread *t, job *j, int which)
{
    kvi_server *s = t->server;
    const kvi_server_config *cfg = &s->cfg;
    if (which == KVI_SERVER_LOOP_BATCH) {
        gather(t, j);
        return;
    }
    if (which == KVI_SERVER_ASYNC) {
        which = cfg->async_start(cfg->handler_ctx, j, &j->h, j->body, &j->out);
        if (which == 0)
            return; /* answered now or later, through kvi_server_answer */
        if (which < 1 || which > (int)KVI_SERVER_MAX_POOLS || !s->pools[which - 1].n_workers) {
            /* No such pool: run it here, as an unpooled request would. */
            cfg->handler(cfg->handler_ctx, &j->h, j->body, &j->out);
            kvi_server_answer(j);
            return;
        }
    }
    job_queue(&s->pools[which - 1], j);
}

/* The body of a finished job goes now; its answer stays charged until it
 * is delivered. */
static void job_drop_body(job *j)
{
    kvi_server *s = j->owner->server;
    free(j->mem);
    j->mem = NULL;
    j->body = NULL;
    budget_release(s, j->mem_charged);
    j->mem_charged = 0;
    if (j->out.len > j->answer_charged) {
        budget_charge(s, j->out.len - j->answer_charged);
        j->answer_charged = j->out.len;
    }
}

/* Hands a job finished on another thread back to the I/O thread that owns
 * its connection. Returns 1 when the loop must be told (answers_task
 * posted): its list of answers was empty. The task takes the whole list,
 * and it is out of the loop's queue before it runs, so it is never posted
 * twice at once. */
static int finish_job(job *j)
{
    io_thread *t = j->owner;
    job_drop_body(j);
    pthread_mutex_lock(&t->done_lock);
    int first = t->done == NULL;
    j->next = t->done;
    t->done = j;
    pthread_mutex_unlock(&t->done_lock);
    return first;
}

static void deliver(io_thread *t, job *j);
static void deliver_posted(void *ctx);

void kvi_server_answer(kvi_server_pending *p)
{
    job *j = p;
    io_thread *t = j->owner;
    if (kvi_loop_on_thread(t->loop)) {
        /* Answered on the connection's own thread (a coordinator running
         * on the same loop, or at once): no queue, no wake-up. */
        job_drop_body(j);
        deliver(t, j);
        return;
    }
    if (finish_job(j))
        kvi_loop_post(t->loop, &t->answers_task, deliver_posted, t);
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
        for (size_t i = 0; i < n; i++) {
            io_thread *t = jobs[i]->owner;
            if (finish_job(jobs[i]))
                kvi_loop_post(t->loop, &t->answers_task, deliver_posted, t);
        }
        pthread_mutex_lock(&pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

/* Whether a whole frame waits at the head of c's input (cut but not
 * dispatched yet: something holds it back). */
static int conn_frame_waiting(const kvi_server *s, const conn *c)
{
    kvi_frame_header h;
    kvi_frame_error e = kvi_frame_parse_header(&h, c->in, c->in_len, s->cfg.max_body);
    return (e == KVI_FRAME_OK || e == KVI_FRAME_BAD_OPCODE) &&
           c->in_len >= KVI_FRAME_HEADER + (size_t)h.body_len;
}

/* Points epoll at what the connection waits on: writable while output is
 * pending; readable only while it can take more input, which is never
 * while a whole frame it has already read waits (for output room, for its
 * jobs, for the budget). That is the backpressure: the client's own
 * socket buffers fill up, not ours. */
static int conn_reading(io_thread *t, conn *c)
{
    return !t->draining && !c->closing && !c->starved &&
           c->out.len - c->out_sent <= OUTPUT_HIGH_WATER && !conn_frame_waiting(t->server, c);
}

static void conn_watch(io_thread *t, conn *c)
{
    size_t pending = c->out.len - c->out_sent;
    int reading = conn_reading(t, c);
    kvi_loop_io_set(t->loop, &c->io, (pending ? KVI_LOOP_WRITE : 0u) |
                                         (reading ? KVI_LOOP_READ : 0u));
}

static void conn_starve(io_thread *t, conn *c)
{
    if (!c->starved) {
        c->starved = 1;
        t->n_starved++;
    }
}

/* The frame at the head of c's input waits for bytes of the budget, total
 * being what it holds and needs together. Returns 0 while it may wait (c
 * starves until retried), or 1 when it is to be refused: it can never fit,
 * or it has waited ADMIT_WAIT_MS. */
static int conn_wait(io_thread *t, conn *c, size_t total)
{
    uint64_t now = kvi_monotonic_ms();
    if (total > t->server->admit_limit)
        return 1;
    if (!c->wait_since_ms)
        c->wait_since_ms = now ? now : 1;
    if (now - c->wait_since_ms >= ADMIT_WAIT_MS)
        return 1;
    conn_starve(t, c);
    return 0;
}

/* Appends an error frame the server writes on its own, within the
 * budget's last bytes. 0, or -1 when even those are gone. */
static int conn_error(kvi_server *s, conn *c, const kvi_frame_header *h, int status,
                      const char *message)
{
    if (budget_take(s, ERROR_ROOM, s->max_buffered) != 0)
        return -1;
    kvi_error_frame(&c->out, h->opcode, h->request_id, status, 0, message);
    budget_release(s, ERROR_ROOM);
    conn_charge_out(s, c);
    return 0;
}

/* Answers a frame the budget could not admit; 0, or -1 when there is no
 * room even for that (c starves, and the refusal is tried again). */
static int conn_refuse(io_thread *t, conn *c, const kvi_frame_header *h)
{
    kvi_server *s = t->server;
    size_t held = atomic_load(&s->buffered);
    char msg[96];
    snprintf(msg, sizeof msg, "server busy: %zu bytes buffered", held);
    if (conn_error(s, c, h, KV_ENOMEM, msg) != 0) {
        conn_starve(t, c);
        return -1;
    }
    kvi_log(s->cfg.log, KV_LOG_WARN,
            "refused a %u-byte request: %zu bytes buffered, the bound is %zu",
            h->body_len, held, s->max_buffered);
    c->wait_since_ms = 0;
    return 0;
}

/* As send(2) on the connection, through TLS when it has it: bytes sent,
 * or -1 with errno (EAGAIN when the socket is full). A TLS send that
 * wanted the socket is completed first (GnuTLS holds its record; the
 * output buffer may have moved since). */
static ssize_t conn_send(conn *c, const unsigned char *p, size_t len)
{
    if (!c->tls)
        return send(c->fd, p, len, MSG_NOSIGNAL);
    ssize_t n = c->tls_retry ? kvi_tls_send(c->tls, NULL, 0) : kvi_tls_send(c->tls, p, len);
    c->tls_retry = n == KVI_TLS_WANT_READ || n == KVI_TLS_WANT_WRITE;
    if (c->tls_retry) {
        errno = EAGAIN;
        return -1;
    }
    if (n <= 0) {
        errno = EPIPE;
        return -1;
    }
    return n;
}

/* As recv(2) on the connection: bytes, 0 at the end, -1 with errno. */
static ssize_t conn_recv(conn *c, unsigned char *p, size_t len)
{
    if (!c->tls)
        return recv(c->fd, p, len, 0);
    ssize_t n = kvi_tls_recv(c->tls, p, len);
    if (n == KVI_TLS_WANT_READ || n == KVI_TLS_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (n < 0)
        errno = EPROTO;
    return n;
}

/* Writes what output is pending; returns -1 when the connection is over
 * (an error, or all written on a connection that was closing). */
static int conn_flush(io_thread *t, conn *c)
{
    while (c->out_sent < c->out.len) {
        ssize_t n = conn_send(c, c->out.data + c->out_sent, c->out.len - c->out_sent);
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
        if (c->out.cap > SHRINK_ABOVE)
            kvi_buf_free(&c->out);
        else
            kvi_buf_reset(&c->out);
        c->out_sent = 0;
    }
    conn_charge_out(t->server, c);
    return c->closing && c->out.len == 0 ? -1 : 0;
}

/* Cuts complete frames off the input buffer and answers them, while the
 * connection has room: output under the high-water mark, jobs under
 * MAX_INFLIGHT, and a budget that admits the frame's answer (and its body,
 * when a worker will hold it). */
static void conn_process(io_thread *t, conn *c)
{
    kvi_server *s = t->server;
    const kvi_server_config *cfg = &s->cfg;
    size_t pos = 0;
    while (!c->closing && !c->starved && c->out.len - c->out_sent <= OUTPUT_HIGH_WATER &&
           c->inflight < MAX_INFLIGHT) {
        kvi_frame_header h;
        memset(&h, 0, sizeof h);
        kvi_frame_error e = kvi_frame_parse_header(&h, c->in + pos, c->in_len - pos, cfg->max_body);
        if (e == KVI_FRAME_NEED_MORE)
            break;
        /* The stream cannot be trusted past these: say why and close (at
         * the bound, just close). */
        if (e == KVI_FRAME_BAD_MAGIC || e == KVI_FRAME_BAD_VERSION ||
            e == KVI_FRAME_BAD_FLAGS || e == KVI_FRAME_TOO_BIG) {
            int status = e == KVI_FRAME_TOO_BIG ? KV_ETOOBIG : KV_EINVAL;
            kvi_log(cfg->log, KV_LOG_WARN, "closing a connection: %s", kvi_frame_error_text(e));
            conn_error(s, c, &h, status, kvi_frame_error_text(e));
            c->closing = 1;
            break;
        }
        size_t frame_len = KVI_FRAME_HEADER + (size_t)h.body_len;
        if (c->in_len - pos < frame_len)
            break;
        const unsigned char *frame = c->in + pos;
        const unsigned char *body = frame + KVI_FRAME_HEADER;
        if (kvi_frame_verify(&h, frame, body) != KVI_FRAME_OK) {
            kvi_log(cfg->log, KV_LOG_WARN, "closing a connection: frame checksum mismatch");
            conn_error(s, c, &h, KV_EINVAL, kvi_frame_error_text(KVI_FRAME_BAD_CHECKSUM));
            c->closing = 1;
            break;
        }
        int which = 0;
        if (e != KVI_FRAME_BAD_OPCODE && cfg->offload) {
            which = cfg->offload(cfg->handler_ctx, &h);
            if (which == KVI_SERVER_ASYNC ? !cfg->async_start
                : which == KVI_SERVER_LOOP_BATCH ? !cfg->loop_batch
                : which < 1 || which > (int)KVI_SERVER_MAX_POOLS || !s->pools[which - 1].n_workers)
                which = 0;
        }
        /* A worker holds the body until it is done: a frame that fills a
         * buffer grown for it is handed over whole (no copy, and nothing
         * more to admit); a smaller one is copied. */
        int hand_over = which && pos == 0 && frame_len == c->in_len && c->in_cap > READ_CHUNK;
        size_t body_cost = which && !hand_over ? h.body_len : 0;
        /* Admission: the answer's room, and the copy. Before the gate or
         * anything else looks at the frame, so that a frame that waits is
         * seen once, and so that the gate's own answer has room too. */
        if (budget_take(s, ANSWER_ROOM + body_cost, s->admit_limit) != 0) {
            if (!conn_wait(t, c, c->in_cap + ANSWER_ROOM + body_cost) ||
                conn_refuse(t, c, &h) != 0)
                break;
            pos += frame_len;
            continue;
        }
        c->wait_since_ms = 0;
        int gated = cfg->gate ? cfg->gate(cfg->gate_ctx, c->gate_state, c->proven, &h, body,
                                          &c->out)
                              : 0;
        if (gated) {
            budget_release(s, ANSWER_ROOM + body_cost); /* answered by the gate */
            if (gated == 2)
                c->closing = 1; /* a failed authentication: the answer, then close */
        } else if (e == KVI_FRAME_BAD_OPCODE) {
            budget_release(s, ANSWER_ROOM);
            kvi_error_frame(&c->out, h.opcode, h.request_id, KV_ENOTSUP, 0,
                            kvi_frame_error_text(e));
        } else if (which) {
            if (hand_over) {
                /* The job takes the buffer and its charge with it. */
                job *j = job_new(t, c, &h, body, c->in, c->in_cap);
                if (j) {
                    c->in = NULL;
                    c->in_len = c->in_cap = 0;
                    pos = 0;
                    job_dispatch(t, j, which);
                    break;
                }
            } else {
                job *j = job_new(t, c, &h, body, NULL, body_cost);
                if (j) {
                    job_dispatch(t, j, which);
                    pos += frame_len;
                    continue;
                }
            }
            budget_release(s, ANSWER_ROOM + body_cost);
            kvi_error_frame(&c->out, h.opcode, h.request_id, KV_ENOMEM, 0,
                            "out of memory queueing the request");
        } else {
            cfg->handler(cfg->handler_ctx, &h, body, &c->out);
            budget_release(s, ANSWER_ROOM);
        }
        conn_charge_out(s, c);
        pos += frame_len;
    }
    conn_charge_out(s, c);
    if (pos) {
        memmove(c->in, c->in + pos, c->in_len - pos);
        c->in_len -= pos;
    }
    /* Give back a buffer grown for a large frame, unless the next frame
     * is large too. */
    if (c->in_cap > SHRINK_ABOVE && c->in_len <= READ_CHUNK) {
        kvi_frame_header h;
        if (kvi_frame_parse_header(&h, c->in, c->in_len, cfg->max_body) != KVI_FRAME_OK ||
            KVI_FRAME_HEADER + (size_t)h.body_len <= READ_CHUNK)
            conn_resize_in(s, c, READ_CHUNK);
    }
}

/* Makes room in the input buffer for the next read: READ_CHUNK, or the
 * whole frame whose header is in (never past the body limit, which the
 * header parse checks). 0 when there is room; 1 when there is none for
 * now (a whole frame waits, or the budget said no and c starves); -1 when
 * out of memory. */
static int conn_make_room(io_thread *t, conn *c)
{
    kvi_server *s = t->server;
    size_t need = READ_CHUNK;
    kvi_frame_header h;
    kvi_frame_error e = kvi_frame_parse_header(&h, c->in, c->in_len, s->cfg.max_body);
    int framed = e == KVI_FRAME_OK || e == KVI_FRAME_BAD_OPCODE;
    size_t frame_len = framed ? KVI_FRAME_HEADER + (size_t)h.body_len : 0;
    if (framed && c->in_len >= frame_len)
        return 1;
    if (frame_len > need)
        need = frame_len;
    if (need <= c->in_cap)
        return 0;
    int rc = conn_resize_in(s, c, need);
    if (rc <= 0) {
        if (rc == 0)
            c->wait_since_ms = 0;
        return rc;
    }
    if (!framed) {
        conn_starve(t, c); /* not even a read chunk: wait for one */
        return 1;
    }
    /* Refused before its body is in: answer now, and skip the rest of it
     * as it arrives, so the stream stays in step. */
    if (!conn_wait(t, c, need + ANSWER_ROOM) || conn_refuse(t, c, &h) != 0)
        return 1;
    c->discard = frame_len - c->in_len;
    c->in_len = 0;
    return 0;
}

/* Reads what the socket has, as far as the input buffer and the budget
 * allow, cutting frames as they come in. Returns -1 when the connection
 * is over. */
static int conn_read(io_thread *t, conn *c)
{
    /* Bounded, so that one fast sender does not hold up the thread's other
     * connections; level-triggered epoll brings it back. */
    for (int round = 0; round < 16; round++) {
        int rc = conn_make_room(t, c);
        if (rc != 0)
            return rc < 0 ? -1 : 0;
        size_t room = c->in_cap - c->in_len;
        ssize_t n = conn_recv(c, c->in + c->in_len, room);
        if (n == 0)
            return -1; /* the peer closed; whatever it half-sent is dropped */
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1;
        }
        c->last_active_ms = kvi_monotonic_ms();
        size_t got = (size_t)n;
        if (c->discard) {
            size_t skip = c->discard < got ? (size_t)c->discard : got;
            memmove(c->in + c->in_len, c->in + c->in_len + skip, got - skip);
            c->discard -= skip;
            got -= skip;
        }
        c->in_len += got;
        conn_process(t, c);
        /* Less than room: the socket is empty, unless TLS holds the rest
         * of a record it decrypted (epoll cannot tell). */
        if (c->closing || c->starved ||
            ((size_t)n < room && !(c->tls && kvi_tls_pending(c->tls))))
            return 0;
    }
    return 0;
}

/* Answers what can be answered now and writes it out, then watches the
 * socket for what the connection waits on. -1 when it is over (an output
 * buffer that failed to grow has lost part of an answer: the stream is
 * broken). */
static int conn_serve(io_thread *t, conn *c)
{
    if (c->handshaking)
        return 0; /* the handshake's own events drive it */
    /* Writing first may make room for frames that wait on the output. */
    if (c->out.failed || conn_flush(t, c) != 0)
        return -1;
    conn_process(t, c);
    if (c->out.failed || conn_flush(t, c) != 0)
        return -1;
    /* Bytes TLS decrypted but nobody read: no epoll event will come for
     * them, so they are read as soon as the connection may read. */
    for (int round = 0; round < 64 && c->tls && kvi_tls_pending(c->tls) &&
                        conn_reading(t, c); round++) {
        if (conn_read(t, c) != 0 || c->out.failed || conn_flush(t, c) != 0)
            return -1;
    }
    conn_watch(t, c);
    return 0;
}

/* One step of a connection's TLS handshake; -1 when it failed. */
static int conn_handshake(io_thread *t, conn *c)
{
    int rc = kvi_tls_handshake(c->tls);
    if (rc == KVI_TLS_WANT_READ || rc == KVI_TLS_WANT_WRITE) {
        kvi_loop_io_set(t->loop, &c->io,
                        rc == KVI_TLS_WANT_READ ? KVI_LOOP_READ : KVI_LOOP_WRITE);
        return 0;
    }
    if (rc != KV_OK) {
        kvi_log(t->server->cfg.log, KV_LOG_WARN, "closing a connection: %s", kvi_error_last());
        return -1;
    }
    c->handshaking = 0;
    c->proven = KVI_CONN_TLS | (kvi_tls_peer_verified(c->tls) ? KVI_CONN_CERT_VERIFIED : 0);
    c->last_active_ms = kvi_monotonic_ms();
    /* The client may have sent its first frames with its last flight. */
    if (conn_read(t, c) != 0)
        return -1;
    return conn_serve(t, c);
}

/* ------------------------------------------------------------ the loop */

static void housekeeping_later(io_thread *t)
{
    kvi_loop_defer(t->loop, &t->housekeeping);
}

/* A connection's socket is ready (or failed). */
static void conn_event(void *ctx, unsigned events)
{
    conn *c = ctx;
    io_thread *t = c->owner;
    if (c->dead)
        return;
    int dead = (events & KVI_LOOP_ERROR) != 0;
    if (!dead && c->handshaking) {
        if (conn_handshake(t, c) != 0)
            conn_close(t, c);
        housekeeping_later(t);
        return;
    }
    if (!dead && (events & KVI_LOOP_READ))
        dead = conn_read(t, c) != 0;
    if (!dead)
        dead = conn_serve(t, c) != 0;
    if (dead)
        conn_close(t, c);
    housekeeping_later(t);
}

/* The end-of-iteration step of a connection that answers came back for. */
static void conn_serve_deferred(void *ctx)
{
    conn *c = ctx;
    io_thread *t = c->owner;
    if (c->dead)
        return; /* the answer has nowhere to go */
    if (conn_serve(t, c) != 0)
        conn_close(t, c);
    housekeeping_later(t);
}

/* On the owner's loop: a new connection joins its thread's list and loop. */
static void conn_register(void *ctx)
{
    conn *c = ctx;
    io_thread *t = c->owner;
    kvi_server *s = t->server;
    c->last_active_ms = kvi_monotonic_ms();
    c->next = t->conns;
    if (t->conns)
        t->conns->prev = c;
    t->conns = c;
    if (kvi_loop_io_add(t->loop, &c->io, c->fd, KVI_LOOP_READ, conn_event, c) != KV_OK) {
        c->io.fd = -1; /* not in the loop: nothing to remove */
        conn_close(t, c);
        return;
    }
    if (s->cfg.tls) {
        c->handshaking = 1;
        if (kvi_tls_accept(&c->tls, s->cfg.tls, c->fd) != KV_OK) {
            kvi_log(s->cfg.log, KV_LOG_WARN, "closing a connection: %s", kvi_error_last());
            conn_close(t, c);
        }
    }
}

/* Gives c, just accepted by t, to the thread with the fewest connections.
 * Whichever thread epoll wakes accepts every connection waiting
 * (EPOLLEXCLUSIVE wakes one), so a burst of clients would all land on one
 * thread and leave the other idle (measured: one I/O thread saturated, the
 * other at half). Counted and posted under the state lock, so a stop that
 * begins later posts its drain after it. 0, or -1: the server is stopping
 * (c is not taken). */
static int conn_hand_over(io_thread *t, conn *c)
{
    kvi_server *s = t->server;
    io_thread *best = t;
    pthread_mutex_lock(&s->state_lock);
    if (atomic_load(&s->stopping)) {
        pthread_mutex_unlock(&s->state_lock);
        return -1;
    }
    for (unsigned i = 0; i < s->n_threads; i++) {
        io_thread *o = &s->threads[i];
        if (o->started && !o->start_rc && !o->finished &&
            atomic_load(&o->n_open) < atomic_load(&best->n_open))
            best = o;
    }
    atomic_fetch_add(&best->n_open, 1);
    c->owner = best;
    if (best != t)
        kvi_loop_post(best->loop, &c->adopt_task, conn_register, c);
    pthread_mutex_unlock(&s->state_lock);
    if (best == t)
        conn_register(c);
    return 0;
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
        c->io.fd = -1;
        kvi_loop_deferred_init(&c->serve, conn_serve_deferred, c);
        if (conn_hand_over(t, c) != 0) { /* stopping */
            atomic_fetch_sub(&s->connections, 1);
            close(fd);
            free(c);
        }
    }
}

static void listen_event(void *ctx, unsigned events)
{
    (void)events;
    io_thread *t = ctx;
    if (!t->draining)
        accept_all(t);
    housekeeping_later(t);
}

/* Closes connections idle for idle_timeout_ms and frees the empty input
 * buffers of those idle for IDLE_BUFFER_MS. A connection with jobs out or
 * waiting for the budget is waiting on the server, not idle. */
static void scan_idle(io_thread *t)
{
    uint64_t now = kvi_monotonic_ms();
    for (conn *c = t->conns, *next; c; c = next) {
        next = c->next;
        if (c->inflight || c->starved)
            continue;
        if (now - c->last_active_ms >= t->server->cfg.idle_timeout_ms) {
            kvi_log(t->server->cfg.log, KV_LOG_DEBUG,
                    "closing a connection idle for %u ms (%zu bytes of a frame pending)",
                    t->server->cfg.idle_timeout_ms, c->in_len);
            conn_close(t, c);
        } else if (c->in_len == 0 && c->in_cap && now - c->last_active_ms >= IDLE_BUFFER_MS) {
            conn_resize_in(t->server, c, 0);
        }
    }
}

/* Gives the connections that starved another chance at the budget. */
static void retry_starved(io_thread *t)
{
    for (conn *c = t->conns, *next; c && t->n_starved; c = next) {
        next = c->next;
        if (!c->starved)
            continue;
        c->starved = 0;
        t->n_starved--;
        if (conn_serve(t, c) != 0)
            conn_close(t, c);
    }
}

/* Bytes come back on other threads without telling this one, so starved
 * connections are retried after every iteration with events and on the
 * tick; closed connections are freed once nothing names them. */
static void housekeeping(void *ctx)
{
    io_thread *t = ctx;
    if (t->n_starved)
        retry_starved(t);
    reap_closed(t);
}

/* Drops a finished job and its charge. A closed connection's memory
 * outlives it: the next reap_closed frees the connection once its last
 * job is released. */
static void job_release(job *j)
{
    kvi_server *s = j->owner->server;
    j->c->inflight--;
    budget_release(s, j->mem_charged + j->answer_charged);
    kvi_buf_free(&j->out);
    free(j->mem);
    free(j);
}

/* Gives a finished job's answer to its connection, which writes it (and
 * cuts the frames that waited for room, MAX_INFLIGHT) at the end of the
 * iteration, with whatever else came back for it meanwhile. */
static void deliver(io_thread *t, job *j)
{
    conn *c = j->c;
    if (!c->dead)
        kvi_buf_raw(&c->out, j->out.data, j->out.len);
    job_release(j);
    if (c->dead) {
        housekeeping_later(t); /* the connection may be freed now */
        return;
    }
    c->last_active_ms = kvi_monotonic_ms();
    conn_charge_out(t->server, c);
    kvi_loop_defer(t->loop, &c->serve);
}

/* Adds a job to the iteration's batch (run at its end). With no room for
 * it, it runs alone now. */
static void gather(io_thread *t, job *j)
{
    const kvi_server_config *cfg = &t->server->cfg;
    if (t->n_gathered == t->cap_gathered) {
        size_t cap = t->cap_gathered ? t->cap_gathered * 2 : 64;
        job **g = realloc(t->gathered, cap * sizeof *g);
        if (!g) {
            kvi_server_pending *p = j;
            kvi_server_request req = {&j->h, j->body, &j->out};
            cfg->loop_batch(cfg->handler_ctx, &p, &req, 1);
            return;
        }
        t->gathered = g;
        t->cap_gathered = cap;
    }
    t->gathered[t->n_gathered++] = j;
    kvi_loop_defer(t->loop, &t->run_gathered);
}

/* run_gathered: hands the iteration's batch to loop_batch. Jobs gathered
 * meanwhile (an answer cannot read frames, but be safe) wait for the next
 * run, deferred again. */
static void run_gathered(void *ctx)
{
    io_thread *t = ctx;
    const kvi_server_config *cfg = &t->server->cfg;
    size_t n = t->n_gathered, done = 0;
    job **list = t->gathered;
    t->gathered = NULL;
    t->n_gathered = t->cap_gathered = 0;
    kvi_server_pending *ps[KVI_SERVER_MAX_LOOP_BATCH];
    kvi_server_request reqs[KVI_SERVER_MAX_LOOP_BATCH];
    while (done < n) {
        size_t k = n - done < KVI_SERVER_MAX_LOOP_BATCH ? n - done : KVI_SERVER_MAX_LOOP_BATCH;
        for (size_t i = 0; i < k; i++) {
            job *j = list[done + i];
            ps[i] = j;
            reqs[i] = (kvi_server_request){&j->h, j->body, &j->out};
        }
        cfg->loop_batch(cfg->handler_ctx, ps, reqs, k);
        done += k;
    }
    free(list);
}

/* answers_task: the answers other threads finished for this loop. */
static void deliver_posted(void *ctx)
{
    io_thread *t = ctx;
    pthread_mutex_lock(&t->done_lock);
    job *list = t->done;
    t->done = NULL;
    pthread_mutex_unlock(&t->done_lock);
    while (list) {
        job *j = list;
        list = j->next;
        deliver(t, j);
    }
}

/* ------------------------------------------------------- start and stop */

static void tick(void *ctx);

static void arm_tick(io_thread *t)
{
    uint64_t in = t->draining ? STOP_TICK_MS : t->n_starved ? ADMIT_RETRY_MS : IDLE_SCAN_MS;
    kvi_loop_timer_set(t->loop, &t->tick, kvi_loop_now_ms() + in);
}

/* Registers the thread's part on its loop; on the loop's thread. */
static int thread_begin(io_thread *t)
{
    kvi_loop_timer_init(&t->tick, tick, t);
    kvi_loop_deferred_init(&t->housekeeping, housekeeping, t);
    kvi_loop_deferred_init(&t->run_gathered, run_gathered, t);
    t->last_scan_ms = kvi_monotonic_ms();
    int rc = kvi_loop_io_add(t->loop, &t->listen_io, t->server->listen_fd,
                             KVI_LOOP_READ | KVI_LOOP_EXCLUSIVE, listen_event, t);
    if (rc != KV_OK)
        return rc;
    t->listening = 1;
    arm_tick(t);
    return KV_OK;
}

/* Tells start or stop, waiting on a lent loop, what became of t. */
static void thread_report(io_thread *t, int *flag, int value)
{
    kvi_server *s = t->server;
    pthread_mutex_lock(&s->state_lock);
    *flag = value;
    pthread_cond_broadcast(&s->state_cond);
    pthread_mutex_unlock(&s->state_lock);
}

static void start_task(void *ctx)
{
    io_thread *t = ctx;
    int rc = thread_begin(t);
    t->start_rc = rc;
    thread_report(t, &t->started, 1);
}

/* Starts stopping: no more accepts or reads here. Frames already read are
 * still cut and answered. */
static void drain_begin(void *ctx)
{
    io_thread *t = ctx;
    t->draining = 1;
    if (t->listening) {
        kvi_loop_io_del(t->loop, &t->listen_io);
        t->listening = 0;
    }
    for (conn *c = t->conns, *next; c; c = next) {
        next = c->next;
        if (conn_serve(t, c) != 0)
            conn_close(t, c);
    }
    arm_tick(t);
}

/* Closes a connection whose stop is complete, after dropping (bounded)
 * what its client sent since, so that the close is an orderly end after
 * the answers rather than a reset. */
static void drain_close(io_thread *t, conn *c)
{
    unsigned char scratch[4096];
    size_t dropped = 0;
    ssize_t n;
    while (dropped < STOP_DISCARD_MAX &&
           (n = recv(c->fd, scratch, sizeof scratch, MSG_DONTWAIT)) > 0)
        dropped += (size_t)n;
    conn_close(t, c);
}

/* One look at a stopping thread: closes the connections with nothing left
 * to answer or write; once every job has come back, gives the rest until
 * the flush deadline. Returns 1 when the thread has nothing left. */
static int drain_step(io_thread *t)
{
    uint64_t now = kvi_monotonic_ms();
    int jobs_out = 0;
    for (conn *c = t->conns, *next; c; c = next) {
        next = c->next;
        if (c->inflight)
            jobs_out = 1;
        else if (c->out.len == c->out_sent && !conn_frame_waiting(t->server, c))
            drain_close(t, c);
    }
    for (conn *c = t->closed; c && !jobs_out; c = c->next)
        jobs_out = c->inflight != 0;
    if (!jobs_out) {
        if (!t->flush_deadline_ms)
            t->flush_deadline_ms = now + STOP_FLUSH_MS;
        if (now >= t->flush_deadline_ms) {
            while (t->conns) {
                kvi_log(t->server->cfg.log, KV_LOG_DEBUG,
                        "stopping: closing a connection with %zu bytes of answers unread",
                        t->conns->out.len - t->conns->out_sent);
                conn_close(t, t->conns);
            }
        }
    }
    reap_closed(t);
    return !t->conns && !t->closed;
}

/* The stop is complete: nothing of the thread is left on the loop (no
 * connection, timer, deferred work or task: every job came back). */
static void thread_end(io_thread *t)
{
    kvi_loop_timer_cancel(t->loop, &t->tick);
    kvi_loop_undefer(t->loop, &t->housekeeping);
    kvi_loop_undefer(t->loop, &t->run_gathered); /* empty: every job came back */
    if (t->own_loop)
        kvi_loop_stop(t->loop);
    thread_report(t, &t->finished, 1);
}

static void tick(void *ctx)
{
    io_thread *t = ctx;
    if (t->draining) {
        if (drain_step(t)) {
            thread_end(t);
            return;
        }
    } else {
        if (t->n_starved)
            retry_starved(t);
        uint64_t now = kvi_monotonic_ms();
        if (now - t->last_scan_ms >= IDLE_SCAN_MS) {
            scan_idle(t);
            t->last_scan_ms = now;
        }
        reap_closed(t);
    }
    arm_tick(t);
}

static void *io_main(void *arg)
{
    io_thread *t = arg;
    kvi_loop_run(t->loop);
    return NULL;
}

/* Puts thread i on its loop: the lent one for thread 0 when there is one
 * (registered by a task on it), or a loop and thread of its own. */
static int thread_start(kvi_server *s, io_thread *t, kvi_loop *lent)
{
    t->server = s;
    if (lent) {
        t->loop = lent;
        kvi_loop_post(lent, &t->start_task, start_task, t);
        pthread_mutex_lock(&s->state_lock);
        while (!t->started)
            pthread_cond_wait(&s->state_cond, &s->state_lock);
        pthread_mutex_unlock(&s->state_lock);
        t->thread_started = t->start_rc == KV_OK;
        return t->start_rc;
    }
    int rc = kvi_loop_new(&t->loop);
    if (rc != KV_OK)
        return rc;
    t->own_loop = 1;
    rc = thread_begin(t); /* before the loop first runs */
    if (rc == KV_OK && pthread_create(&t->thread, NULL, io_main, t) != 0)
        rc = kvi_error(KV_EIO, "cannot start an I/O thread");
    if (rc != KV_OK) {
        if (t->listening)
            kvi_loop_io_del(t->loop, &t->listen_io);
        kvi_loop_timer_cancel(t->loop, &t->tick);
        return rc;
    }
    t->started = t->thread_started = 1;
    return KV_OK;
}

static int start_pools(kvi_server *s, unsigned *total_workers)
{
    const kvi_server_config *cfg = &s->cfg;
    int pools_ok = 1;
    *total_workers = 0;
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
        *total_workers += pool->n_workers;
    }
    return pools_ok;
}

int kvi_server_start(kvi_server **out, const kvi_server_config *cfg)
{
    *out = NULL;
    kvi_addr addr;
    int rc = kvi_addr_parse(&addr, cfg->listen_addr);
    kvi_server *s = rc == KV_OK ? calloc(1, sizeof *s) : NULL;
    if (!s) {
        if (cfg->has_listen_fd)
            close(cfg->listen_fd);
        return rc != KV_OK ? rc : kvi_error(KV_ENOMEM, "out of memory starting a server");
    }
    s->cfg = *cfg;
    s->max_buffered = cfg->max_buffered_bytes ? cfg->max_buffered_bytes
                                              : KVI_SERVER_DEFAULT_MAX_BUFFERED;
    /* The last 1/16 (at most 1 MiB) is kept for refusals. */
    size_t kept = s->max_buffered / 16 < (1u << 20) ? s->max_buffered / 16 : (1u << 20);
    s->admit_limit = s->max_buffered - kept;
    pthread_mutex_init(&s->state_lock, NULL);
    pthread_cond_init(&s->state_cond, NULL);
    s->listen_fd = cfg->has_listen_fd ? cfg->listen_fd : kvi_listen(&addr, 1024);
    if (s->listen_fd < 0) {
        rc = s->listen_fd;
        pthread_mutex_destroy(&s->state_lock);
        pthread_cond_destroy(&s->state_cond);
        free(s);
        return rc;
    }
    s->port = kvi_local_port(s->listen_fd);
    s->n_threads = cfg->io_threads ? cfg->io_threads : 1;
    s->threads = calloc(s->n_threads, sizeof *s->threads);
    unsigned total_workers = 0;
    int pools_ok = start_pools(s, &total_workers);
    if (!s->threads) {
        s->n_threads = 0;
        kvi_server_stop(s);
        return kvi_error(KV_ENOMEM, "out of memory starting a server");
    }
    for (unsigned i = 0; i < s->n_threads; i++)
        pthread_mutex_init(&s->threads[i].done_lock, NULL);
    rc = KV_OK;
    for (unsigned i = 0; i < s->n_threads && rc == KV_OK; i++)
        rc = thread_start(s, &s->threads[i], i == 0 ? cfg->loop : NULL);
    if (rc != KV_OK || !pools_ok) {
        kvi_server_stop(s);
        return kvi_error(KV_EIO, "cannot start the server's I/O threads");
    }
    if (KVI_FRAME_HEADER + (size_t)cfg->max_body + ANSWER_ROOM > s->admit_limit)
        kvi_log(cfg->log, KV_LOG_WARN,
                "max_buffered_bytes %zu cannot admit a frame of max_body %u: such frames "
                "will be refused", s->max_buffered, cfg->max_body);
    kvi_log(cfg->log, KV_LOG_INFO,
            "binary protocol listening on %s (port %d, %u I/O threads%s, %u workers)",
            cfg->listen_addr, s->port, s->n_threads,
            cfg->loop ? ", the first on the peers' loop" : "", total_workers);
    *out = s;
    return KV_OK;
}

int kvi_server_port(const kvi_server *s)
{
    return s->port;
}

size_t kvi_server_buffered_bytes(const kvi_server *s)
{
    return atomic_load(&s->buffered);
}

void kvi_server_stop(kvi_server *s)
{
    if (!s)
        return;
    /* Under the lock: a connection handed over to another thread was
     * posted before this, so it is there before that thread drains. */
    pthread_mutex_lock(&s->state_lock);
    atomic_store(&s->stopping, 1);
    pthread_mutex_unlock(&s->state_lock);
    for (unsigned i = 0; i < s->n_threads; i++)
        if (s->threads[i].thread_started)
            kvi_loop_post(s->threads[i].loop, &s->threads[i].stop_task, drain_begin,
                          &s->threads[i]);
    /* Each I/O thread ends once the requests it read are answered and
     * written (or its clients had their chance): the workers run on
     * meanwhile, so every job queued is done before its thread ends. */
    pthread_mutex_lock(&s->state_lock);
    for (unsigned i = 0; i < s->n_threads; i++)
        while (s->threads[i].thread_started && !s->threads[i].finished)
            pthread_cond_wait(&s->state_cond, &s->state_lock);
    pthread_mutex_unlock(&s->state_lock);
    for (unsigned i = 0; i < s->n_threads; i++)
        if (s->threads[i].own_loop && s->threads[i].thread_started)
            pthread_join(s->threads[i].thread, NULL);
    /* No job is left: each belonged to a connection, and none of those
     * is left. */
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
        if (t->own_loop)
            kvi_loop_free(t->loop);
        pthread_mutex_destroy(&t->done_lock);
    }
    close(s->listen_fd);
    for (unsigned p = 0; p < KVI_SERVER_MAX_POOLS; p++) {
        pthread_mutex_destroy(&s->pools[p].lock);
        pthread_cond_destroy(&s->pools[p].cond);
        free(s->pools[p].workers);
    }
    pthread_mutex_destroy(&s->state_lock);
    pthread_cond_destroy(&s->state_cond);
    free(s->threads);
    free(s);
}
