/*
 * net/client.c - persistent connections to a node, driven by an event loop,
 * with many requests in flight on each.
 *
 * A request is encoded by its caller, on any thread, and handed to the
 * client's loop (net/loop.h): straight away when the caller is the loop's
 * own thread (a completion callback submitting the next request), through
 * a posted task otherwise. On the loop, a request waits in its
 * connection's queue until the connection is up and has a free slot, then
 * goes onto the connection's in-flight list and its write queue. Each
 * connection writes its whole queue once per loop iteration (one writev),
 * and reads answers as they come, matching them to requests by id. Every
 * request ends exactly once, on the loop thread, with its answer or with
 * what no answer means:
 *   - a read gets KV_ETIMEDOUT after the request timeout, or is sent again
 *     once on a fresh connection when the old one broke (when the caller
 *     allows it);
 *   - a write that reached the socket gets KV_EUNKNOWN_OUTCOME, since it
 *     may have been applied; one that never did is sent on the next
 *     connection, or fails with KV_EUNAVAILABLE.
 * A request that timed out keeps its in-flight slot until its answer comes
 * or the connection is replaced (a "ghost"), so a slow node is not sent
 * more than max_inflight requests per connection.
 *
 * Connecting blocks (TCP, TLS, the handshake: client_dial.c), so it runs on
 * a short-lived thread per attempt, which posts the ready socket back.
 *
 * The loop runs on a thread of the client's own, or, for a client opened
 * with manual_loop, on whichever thread drives it (kvi_client_run, and the
 * blocking calls, which drive it until their answer comes).
 */
#define _GNU_SOURCE
#include "net/client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "format/batch.h"
#include "net/client_dial.h"
#include "net/addr.h"
#include "net/auth.h"
#include "format/frame.h"
#include "net/loop.h"
#include "format/message.h"
#include "net/tls.h"
#include "util/options.h"
#include "format/record.h"
#include "util/error.h"
#include "util/wipe.h"
#include "format/value.h"
#include "util/clock.h"
#include "util/metrics.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 1000u
#define DEFAULT_REQUEST_TIMEOUT_MS 5000u
/* Responses carry at most a value plus a little, or a batch of them. */
#define MAX_RESPONSE_BODY KVI_FRAME_MAX_BODY_LIMIT
#define READ_CHUNK (64u * 1024u)
#define MAX_IOV 64

enum { CONN_DOWN, CONN_DIALING, CONN_UP };

struct conn;

typedef struct req {
    struct req *next, *prev; /* in the connection's queue or in-flight list */
    struct req *wnext;       /* in its write queue */
    struct conn *c;
    uint64_t id;
    uint64_t deadline_ms;
    uint64_t submitted_ns; /* for the client's latency histogram; 0: none */
    kvi_buf frame;
    kvi_reply_fn fn;
    void *ctx;
    kvi_loop_task task;
    uint8_t opcode;
    uint8_t is_write;
    uint8_t sent;         /* some of its bytes reached the socket */
    uint8_t retries;      /* times it may be sent again after a broken connection */
    uint8_t connect_only; /* kvi_client_connect's: ends as soon as the connection is up */
    uint8_t ghost;        /* ended (timed out); only holds its slot */
} req;

typedef struct req_list {
    req *head, *tail;
} req_list;

typedef struct conn {
    struct kvi_client *cl;
    int state;
    int fd;
    /* peer_gone's last look (a poll call) and when, in loop milliseconds:
     * every write probes its homes, and one look a millisecond is enough. */
    uint64_t gone_checked_ms;
    int gone;
    kvi_tls_session *tls;
    kvi_loop_io io;
    kvi_loop_deferred flush;
    req_list queue;    /* not yet handed to the socket */
    req_list inflight; /* handed to it, in order; ghosts included */
    req *wq_head, *wq_tail; /* frames to write, the head from wq_off on */
    size_t wq_off;
    unsigned n_inflight;
    unsigned char *in;
    size_t in_len, in_cap;
    uint64_t busy_since_ms; /* when n_inflight last rose from 0 */
    uint64_t last_rx_ms;
    /* The last socket broke, or connecting failed: the next connection is
     * news for the log (info); a first one is routine (debug). */
    int failed;
    /* Connecting, on a thread of its own. */
    pthread_t dialer;
    int dialer_running;
    kvi_dial_result dialed;
    kvi_loop_task dial_done;
    /* lock guards state and fd for other threads (kvi_client_connect's
     * fast path), and dial_fd (the socket being set up, for close). */
    pthread_mutex_t lock;
    int dial_fd;
    int dial_cancelled; /* the client is closing: shut any new socket down */
} conn;

struct kvi_client {
    /* Where the latency of each answered request goes (its submission to
     * its answer); NULL: not measured. */
    kvi_latency *latency;
    kvi_addr *endpoints;
    size_t n_endpoints;
    atomic_size_t preferred; /* the endpoint that last worked */
    uint32_t connect_timeout_ms;
    uint32_t request_timeout_ms;
    conn *conns;
    unsigned n_conns;
    unsigned next_conn; /* loop thread */
    /* This iteration's connection and how many more requests it takes
     * (loop thread; see conn_for_request). */
    unsigned iter_conn, iter_left;
    kvi_loop_deferred iter_end;
    atomic_uint_fast64_t next_id;
    uint16_t flags; /* frame flags sent with every request */
    int probe;      /* kvi_client_set_probe */
    atomic_uint_fast64_t last_answer_ms; /* monotonic; 0 = never */
    unsigned max_inflight; /* per connection; 0 = no limit */
    kvi_addr source;       /* local address to connect from */
    int has_source;
    /* Credentials shown on each new connection (net/auth.h): the cluster
     * secret (a node's connections to its peers) or a client token. */
    unsigned char *secret;
    size_t secret_len;
    char *token;
    /* TLS credentials of every connection: the client's own (from its
     * options), or the node's, borrowed; NULL: plain TCP. */
    kvi_tls *own_tls;
    const kvi_tls *tls;
    const kvi_logger *log;

    kvi_client_loop *shared;   /* the loop, maybe shared with other clients */
    kvi_loop *loop;             /* shared->loop */
    int manual;                 /* shared->manual */
    kvi_loop_timer tick;        /* request deadlines and silent connections */
    unsigned outstanding;       /* requests queued or in flight, ghosts included */
    int closing;
    int stop_loop;              /* the last client of its loop closing */
    kvi_loop_task close_task;
    pthread_mutex_t closed_lock;
    pthread_cond_t closed_cond;
    int closed;
};

/* A loop and what runs it: a thread, or the application (manual). The
 * clients of a handle (one per member) share one, so that the handle's
 * callbacks all run on one thread and one descriptor says when to run. */
struct parked;
struct kvi_client_loop {
    kvi_loop *loop;
    int manual;
    pthread_t thread;     /* when not manual */
    pthread_mutex_t drive; /* one driver at a time (manual) */
    /* Blocking calls waiting while another thread drives (manual), in the
     * order they came: whoever lets go of drive wakes the first whose
     * request has not ended (drive_release). */
    pthread_mutex_t park_lock;
    struct parked *parked_head, *parked_tail;
    size_t n_parked;      /* guarded by park_lock */
    atomic_int refs;      /* clients on it, and its creator until released */
};
typedef kvi_client_loop client_loop;

/* Whether the peer has closed the socket (or it failed), without waiting:
 * a killed process's kernel closes its sockets at once, before the loop
 * may have noticed. */
static int peer_closed(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* peer_closed for a connection on the loop, looked at most once a
 * millisecond: a kill that lands after the look is not seen either way. */
static int peer_gone(conn *c)
{
    uint64_t now = kvi_loop_now_ms();
    if (now != c->gone_checked_ms) {
        c->gone_checked_ms = now;
        c->gone = peer_closed(c->fd);
    }
    return c->gone;
}

static void conn_pump(conn *c);
static void conn_break(conn *c, const char *why);

/* ------------------------------------------------------------ the list */

static void list_push(req_list *l, req *r)
{
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
}

static void list_remove(req_list *l, req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->next = r->prev = NULL;
}

/* ------------------------------------------------------------- endings */

static void arm_tick(kvi_client *cl)
{
    if (cl->outstanding && !kvi_loop_timer_armed(&cl->tick)) {
        uint32_t every = cl->request_timeout_ms / 8u;
        every = every < 10u ? 10u : every > 250u ? 250u : every;
        kvi_loop_timer_set(cl->loop, &cl->tick, kvi_loop_now_ms() + every);
    }
}

static void req_free(req *r)
{
    r->c->cl->outstanding--;
    kvi_buf_free(&r->frame);
    free(r);
}

/* Ends r with an answer. */
static void req_answer(req *r, const kvi_frame_header *h, const unsigned char *body)
{
    if (r->submitted_ns)
        kvi_latency_record(r->c->cl->latency, kvi_monotonic_ns() - r->submitted_ns);
    kvi_reply rep = {KV_OK, h, body, NULL, 0};
    r->fn(r->ctx, &rep);
    req_free(r);
}

/* Ends r without an answer: rc and its message. */
static void req_fail(req *r, int rc, int retryable, const char *why)
{
    kvi_reply rep = {rc, NULL, NULL, why, retryable};
    r->fn(r->ctx, &rep);
    req_free(r);
}

/* Ends r, which was on a connection that broke: what that means for it. */
static void req_fail_broken(req *r)
{
    if (!r->sent || !r->is_write)
        req_fail(r, KV_EUNAVAILABLE, 1, "the connection to the node broke");
    else
        req_fail(r, KV_EUNKNOWN_OUTCOME, 0, "the connection broke after the write was sent; "
                                            "it may or may not have applied");
}

/* ---------------------------------------------------------- connecting */

static void set_dial_fd(void *ctx, int fd)
{
    conn *c = ctx;
    pthread_mutex_lock(&c->lock);
    c->dial_fd = fd;
    if (fd >= 0 && c->dial_cancelled)
        shutdown(fd, SHUT_RDWR); /* made after close began: fail at once */
    pthread_mutex_unlock(&c->lock);
}

static void dial_finished(void *ctx);

static void *dialer_main(void *arg)
{
    conn *c = arg;
    kvi_client *cl = c->cl;
    kvi_dial d = {
        .endpoints = cl->endpoints,
        .n_endpoints = cl->n_endpoints,
        .source = cl->has_source ? &cl->source : NULL,
        .connect_timeout_ms = cl->connect_timeout_ms,
        .request_timeout_ms = cl->request_timeout_ms,
        .tls = cl->tls,
        .secret = cl->secret,
        .secret_len = cl->secret_len,
        .token = cl->token,
        .probe = cl->probe,
        .log = cl->log,
        .on_socket = set_dial_fd,
        .on_socket_ctx = c,
    };
    kvi_dial_connect(&c->dialed, &d, atomic_load(&cl->preferred));
    kvi_loop_post(cl->loop, &c->dial_done, dial_finished, c);
    return NULL;
}

/* state changes under c->lock: kvi_client_connect reads it from other
 * threads. */
static void set_state(conn *c, int state)
{
    pthread_mutex_lock(&c->lock);
    c->state = state;
    pthread_mutex_unlock(&c->lock);
}

static void start_dial(conn *c)
{
    set_state(c, CONN_DIALING);
    if (pthread_create(&c->dialer, NULL, dialer_main, c) != 0) {
        set_state(c, CONN_DOWN);
        while (c->queue.head) {
            req *r = c->queue.head;
            list_remove(&c->queue, r);
            req_fail(r, KV_ENOMEM, 0, "cannot start a thread to connect to the node");
        }
        return;
    }
    c->dialer_running = 1;
}

static void conn_io(void *ctx, unsigned events);
static void conn_flush(void *ctx);

/* The dialer's result, on the loop. */
static void dial_finished(void *ctx)
{
    conn *c = ctx;
    kvi_client *cl = c->cl;
    if (!c->dialer_running)
        return; /* close_on_loop joined it and closed what it made */
    pthread_join(c->dialer, NULL);
    c->dialer_running = 0;
    kvi_dial_result *d = &c->dialed;
    if (d->status == KV_OK && cl->closing) {
        kvi_tls_close(d->tls);
        close(d->fd);
        d->status = KV_EUNAVAILABLE;
        snprintf(d->why, sizeof d->why, "the client was closed");
    }
    if (d->status == KV_OK) {
        int flags = fcntl(d->fd, F_GETFL);
        fcntl(d->fd, F_SETFL, flags | O_NONBLOCK);
        if (kvi_loop_io_add(cl->loop, &c->io, d->fd, KVI_LOOP_READ, conn_io, c) != KV_OK) {
            kvi_tls_close(d->tls);
            close(d->fd);
            d->status = KV_EIO;
            snprintf(d->why, sizeof d->why, "%s", kvi_error_last());
        }
    }
    if (d->status != KV_OK) {
        set_state(c, CONN_DOWN);
        c->failed = 1;
        while (c->queue.head) {
            req *r = c->queue.head;
            list_remove(&c->queue, r);
            req_fail(r, d->status, 0, d->why);
        }
        return;
    }
    pthread_mutex_lock(&c->lock);
    c->fd = d->fd;
    c->gone_checked_ms = 0; /* a new socket: look again */
    c->gone = 0;
    c->tls = d->tls;
    c->state = CONN_UP;
    pthread_mutex_unlock(&c->lock);
    c->in_len = 0;
    c->last_rx_ms = kvi_loop_now_ms();
    atomic_store(&cl->preferred, d->endpoint);
    /* Gossip opens a connection every round, a client one per handle:
     * only a connection after a failure is worth an operator's line. */
    kvi_log(cl->log, c->failed ? KV_LOG_INFO : KV_LOG_DEBUG, "%s %s",
            c->failed ? "connected again to" : "connected to", cl->endpoints[d->endpoint].text);
    c->failed = 0;
    conn_pump(c);
}

/* ------------------------------------------------------------- sending */

/* Hands queued requests to the socket while slots are free; connects when
 * requests wait and there is no connection. */
static void conn_pump(conn *c)
{
    kvi_client *cl = c->cl;
    if (c->state == CONN_DOWN && c->queue.head && !cl->closing)
        start_dial(c);
    if (c->state != CONN_UP)
        return;
    uint64_t now = 0;
    while (c->queue.head && (!cl->max_inflight || c->n_inflight < cl->max_inflight)) {
        req *r = c->queue.head;
        if (r->connect_only && peer_gone(c)) {
            conn_break(c, "the node closed the connection"); /* and dials again */
            return;
        }
        list_remove(&c->queue, r);
        if (r->connect_only) {
            kvi_reply rep = {KV_OK, NULL, NULL, NULL, 0};
            r->fn(r->ctx, &rep);
            req_free(r);
            continue;
        }
        if (!now)
            now = kvi_loop_now_ms();
        /* The timeout counts from the moment the request is handed over:
         * waiting for the connection is bounded by the connect timeout. */
        r->deadline_ms = now + cl->request_timeout_ms;
        list_push(&c->inflight, r);
        if (c->n_inflight++ == 0)
            c->busy_since_ms = now;
        r->wnext = NULL;
        if (c->wq_tail)
            c->wq_tail->wnext = r;
        else
            c->wq_head = r;
        c->wq_tail = r;
        kvi_loop_defer(cl->loop, &c->flush);
    }
}

/* Writes the write queue: once per loop iteration (deferred), and again
 * when the socket has room. */
static void conn_flush(void *ctx)
{
    conn *c = ctx;
    if (c->state != CONN_UP)
        return;
    while (c->wq_head) {
        ssize_t n;
        if (c->tls) {
            req *r = c->wq_head;
            n = kvi_tls_send(c->tls, r->frame.data + c->wq_off, r->frame.len - c->wq_off);
            if (n == KVI_TLS_WANT_WRITE || n == KVI_TLS_WANT_READ)
                n = -2;
        } else {
            struct iovec iov[MAX_IOV];
            int cnt = 0;
            size_t off = c->wq_off;
            for (req *r = c->wq_head; r && cnt < MAX_IOV; r = r->wnext, off = 0) {
                iov[cnt].iov_base = r->frame.data + off;
                iov[cnt].iov_len = r->frame.len - off;
                cnt++;
            }
            struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
            do
                n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
            while (n < 0 && errno == EINTR);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                n = -2;
        }
        if (n == -2) {
            kvi_loop_io_set(c->cl->loop, &c->io, KVI_LOOP_READ | KVI_LOOP_WRITE);
            return;
        }
        if (n < 0) {
            conn_break(c, "cannot send to the node");
            return;
        }
        size_t left = (size_t)n;
        while (c->wq_head) {
            req *r = c->wq_head;
            size_t rest = r->frame.len - c->wq_off;
            if (left)
                r->sent = 1;
            if (left < rest) {
                c->wq_off += left;
                break;
            }
            left -= rest;
            c->wq_off = 0;
            c->wq_head = r->wnext;
            if (!c->wq_head)
                c->wq_tail = NULL;
        }
    }
    kvi_loop_io_set(c->cl->loop, &c->io, KVI_LOOP_READ);
}

/* ------------------------------------------------------------- reading */

static req *find_inflight(conn *c, uint64_t id)
{
    for (req *r = c->inflight.head; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

/* Hands each complete response in the input buffer to its request.
 * Returns -1 when the stream can no longer be trusted. */
static int conn_parse(conn *c)
{
    kvi_client *cl = c->cl;
    size_t off = 0;
    int answered = 0;
    while (c->in_len - off >= KVI_FRAME_HEADER) {
        kvi_frame_header h;
        const unsigned char *p = c->in + off;
        if (kvi_frame_parse_header(&h, p, KVI_FRAME_HEADER, MAX_RESPONSE_BODY) != KVI_FRAME_OK ||
            !(h.flags & KVI_FRAME_FLAG_RESPONSE)) {
            kvi_log(cl->log, KV_LOG_ERROR, "dropping a connection: malformed response frame");
            return -1;
        }
        size_t whole = KVI_FRAME_HEADER + (size_t)h.body_len;
        if (c->in_len - off < whole) {
            if (whole > c->in_cap) {
                unsigned char *grown = realloc(c->in, whole);
                if (!grown)
                    return -1;
                c->in = grown;
                c->in_cap = whole;
                p = c->in + off;
            }
            break;
        }
        if (kvi_frame_verify(&h, p, p + KVI_FRAME_HEADER) != KVI_FRAME_OK) {
            kvi_log(cl->log, KV_LOG_ERROR, "dropping a connection: response checksum mismatch");
            return -1;
        }
        off += whole;
        answered = 1;
        req *r = find_inflight(c, h.request_id);
        if (!r)
            continue; /* not ours any more: the client was closed, or the like */
        list_remove(&c->inflight, r);
        c->n_inflight--;
        if (r->ghost)
            req_free(r);
        else
            req_answer(r, &h, p + KVI_FRAME_HEADER);
        if (c->state != CONN_UP)
            return 0; /* a callback closed the client */
    }
    if (answered) {
        uint64_t now = kvi_loop_now_ms();
        c->last_rx_ms = now;
        atomic_store(&cl->last_answer_ms, now);
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    if (answered)
        conn_pump(c); /* slots came free */
    return 0;
}

static void conn_read(conn *c)
{
    for (;;) {
        if (c->in_cap - c->in_len < READ_CHUNK / 4) {
            size_t cap = c->in_cap ? c->in_cap * 2 : READ_CHUNK;
            unsigned char *grown = realloc(c->in, cap);
            if (!grown) {
                conn_break(c, "out of memory reading from the node");
                return;
            }
            c->in = grown;
            c->in_cap = cap;
        }
        size_t room = c->in_cap - c->in_len;
        ssize_t n;
        if (c->tls) {
            n = kvi_tls_recv(c->tls, c->in + c->in_len, room);
            if (n == KVI_TLS_WANT_READ || n == KVI_TLS_WANT_WRITE)
                return;
        } else {
            do
                n = recv(c->fd, c->in + c->in_len, room, 0);
            while (n < 0 && errno == EINTR);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
        }
        if (n <= 0) {
            conn_break(c, n == 0 ? "the node closed the connection" : "cannot read from the node");
            return;
        }
        c->in_len += (size_t)n;
        if (conn_parse(c) != 0) {
            conn_break(c, "malformed response from the node");
            return;
        }
        if (c->state != CONN_UP)
            return;
        /* A full read may have left more behind, and TLS may hold
         * decrypted bytes that epoll cannot see. */
        if ((size_t)n < room && !(c->tls && kvi_tls_pending(c->tls)))
            return;
    }
}

static void conn_io(void *ctx, unsigned events)
{
    conn *c = ctx;
    if (events & KVI_LOOP_WRITE)
        conn_flush(c);
    if (c->state == CONN_UP && (events & (KVI_LOOP_READ | KVI_LOOP_ERROR)))
        conn_read(c);
}

/* --------------------------------------------------------------- breaks */

/* Drops the socket: requests in flight end (or go back to the queue to be
 * sent again on a new connection), ghosts are freed. */
static void conn_break(conn *c, const char *why)
{
    kvi_client *cl = c->cl;
    if (c->state != CONN_UP)
        return;
    kvi_log(cl->log, c->n_inflight ? KV_LOG_INFO : KV_LOG_DEBUG, "connection to %s dropped: %s",
            cl->endpoints[atomic_load(&cl->preferred)].text, why);
    kvi_loop_io_del(cl->loop, &c->io);
    kvi_loop_undefer(cl->loop, &c->flush);
    pthread_mutex_lock(&c->lock);
    kvi_tls_close(c->tls);
    close(c->fd);
    c->tls = NULL;
    c->fd = -1;
    c->state = CONN_DOWN;
    pthread_mutex_unlock(&c->lock);
    /* A socket closed with nothing in flight (the node's idle timeout) is
     * no failure; one that takes requests down with it is. */
    c->failed |= c->n_inflight != 0;
    c->wq_head = c->wq_tail = NULL;
    c->wq_off = 0;
    c->in_len = 0;
    c->n_inflight = 0;
    req_list again = {NULL, NULL};
    while (c->inflight.head) {
        req *r = c->inflight.head;
        list_remove(&c->inflight, r);
        if (r->ghost)
            req_free(r);
        else if (r->retries && !cl->closing && (!r->sent || !r->is_write)) {
            r->retries--;
            r->sent = 0;
            list_push(&again, r);
        } else
            req_fail_broken(r);
    }
    /* Retried requests go first, ahead of those that never left. */
    if (again.head) {
        again.tail->next = c->queue.head;
        if (c->queue.head)
            c->queue.head->prev = again.tail;
        else
            c->queue.tail = again.tail;
        c->queue.head = again.head;
    }
    conn_pump(c);
}

/* Every tick: requests past their deadline end; a connection that has had
 * requests in flight and heard nothing for twice the request timeout is
 * replaced (a node coordinating a forwarded write may legitimately take up
 * to one timeout; a partition or a paused peer can leave a TCP connection
 * open, and silent, for many minutes). */
static void tick(void *ctx)
{
    kvi_client *cl = ctx;
    uint64_t now = kvi_loop_now_ms();
    for (unsigned i = 0; i < cl->n_conns; i++) {
        conn *c = &cl->conns[i];
        if (c->state == CONN_UP && c->n_inflight) {
            uint64_t since = c->busy_since_ms > c->last_rx_ms ? c->busy_since_ms : c->last_rx_ms;
            if (now > since && now - since > 2u * (uint64_t)cl->request_timeout_ms) {
                kvi_log(cl->log, KV_LOG_WARN, "%s has not answered for %u ms with %u requests "
                        "in flight; replacing the connection",
                        cl->endpoints[atomic_load(&cl->preferred)].text,
                        2u * cl->request_timeout_ms, c->n_inflight);
                conn_break(c, "silent too long");
            }
        }
        char why[128];
        for (req *r = c->inflight.head, *next; r; r = next) {
            next = r->next;
            if (r->ghost)
                continue;
            if (r->deadline_ms > now)
                break; /* handed over in order, each with the same timeout */
            r->ghost = 1; /* keeps its slot until the answer comes */
            kvi_reply rep = {r->is_write ? KV_EUNKNOWN_OUTCOME : KV_ETIMEDOUT, NULL, NULL, why, 0};
            if (r->is_write)
                snprintf(why, sizeof why, "no answer within %u ms; the write may or may not "
                         "have applied", cl->request_timeout_ms);
            else
                snprintf(why, sizeof why, "no answer within %u ms", cl->request_timeout_ms);
            r->fn(r->ctx, &rep);
        }
        /* Requests waiting for a slot on a live connection give up after
         * the request timeout, unsent. */
        if (c->state == CONN_UP)
            while (c->queue.head && c->queue.head->deadline_ms <= now) {
                req *r = c->queue.head;
                list_remove(&c->queue, r);
                snprintf(why, sizeof why, "%u requests already in flight to the node for %u ms; "
                         "this one was not sent", c->n_inflight, cl->request_timeout_ms);
                req_fail(r, KV_EUNAVAILABLE, 0, why);
            }
    }
    arm_tick(cl);
}

/* ----------------------------------------------------------- submitting */

/* Requests handed over in one loop iteration go to one connection, up to
 * ITER_BATCH of them, so they leave in one send: a send per request was
 * most of a busy client's CPU (a loopback send also runs the receiver's
 * side of TCP). The next iteration, or the next ITER_BATCH, takes the next
 * connection, so the connections still share the load. */
#define ITER_BATCH 64u

static void iter_end(void *ctx)
{
    kvi_client *cl = ctx;
    cl->iter_left = 0;
}

static conn *conn_for_request(kvi_client *cl)
{
    if (cl->iter_left == 0 || cl->conns[cl->iter_conn].state != CONN_UP) {
        cl->iter_conn = cl->next_conn++ % cl->n_conns;
        cl->iter_left = ITER_BATCH;
        kvi_loop_defer(cl->loop, &cl->iter_end);
    }
    cl->iter_left--;
    return &cl->conns[cl->iter_conn];
}

/* On the loop: puts r in a connection's queue. */
static void enqueue(void *ctx)
{
    req *r = ctx;
    kvi_client *cl = r->c->cl;
    if (cl->closing) {
        req_fail(r, KV_EUNAVAILABLE, 0, "the client was closed");
        return;
    }
    conn *c = conn_for_request(cl);
    r->c = c;
    list_push(&c->queue, r);
    conn_pump(c);
    arm_tick(cl);
}

static void enqueue_counted(void *ctx)
{
    req *r = ctx;
    r->c->cl->outstanding++;
    enqueue(r);
}

/* Queues r with its callback: at once on the loop's thread, else posted. */
static void hand_to_loop(kvi_client *cl, req *r, kvi_reply_fn fn, void *ctx)
{
    r->fn = fn;
    r->ctx = ctx;
    r->c = &cl->conns[0];
    r->deadline_ms = kvi_loop_now_ms() + cl->request_timeout_ms;
    r->submitted_ns = cl->latency ? kvi_monotonic_ns() : 0;
    if (kvi_loop_on_thread(cl->loop)) {
        cl->outstanding++;
        enqueue(r);
    } else {
        kvi_loop_post(cl->loop, &r->task, enqueue_counted, r);
    }
}

int kvi_client_submit(kvi_client *cl, kvi_buf *frame, uint8_t opcode, uint16_t extra_flags,
                      unsigned flags, kvi_reply_fn fn, void *ctx)
{
    req *r = calloc(1, sizeof *r);
    if (!r || frame->failed) {
        free(r);
        kvi_buf_free(frame);
        return kvi_error(KV_ENOMEM, "out of memory sending a request");
    }
    r->id = atomic_fetch_add(&cl->next_id, 1);
    if (kvi_frame_finish(frame, 0, opcode, (uint16_t)(cl->flags | extra_flags), 0, r->id) != 0) {
        free(r);
        int too_big = !frame->failed;
        kvi_buf_free(frame);
        return too_big ? kvi_error(KV_ETOOBIG, "the request is over the frame limit")
                       : kvi_error(KV_ENOMEM, "out of memory sending a request");
    }
    r->frame = *frame;
    memset(frame, 0, sizeof *frame);
    r->opcode = opcode;
    r->is_write = (flags & KVI_SUBMIT_WRITE) != 0;
    r->retries = (flags & KVI_SUBMIT_RETRY) ? 1 : 0;
    hand_to_loop(cl, r, fn, ctx);
    return KV_OK;
}

/* ------------------------------------------------------- blocking calls */

typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int rc;
    int retryable;
    kvi_frame_header h;
    unsigned char *body; /* a copy, malloc'd */
    char why[320];
} waiter;

static void waiter_init(waiter *w)
{
    memset(w, 0, sizeof *w);
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
}

static void waiter_destroy(waiter *w)
{
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}

/* Copies a reply into plain memory: for a thread that reads it later. */
static void copy_reply(int *rc, kvi_frame_header *h, unsigned char **body, char *why,
                       size_t why_size, const kvi_reply *rep)
{
    *rc = rep->rc;
    if (rep->rc == KV_OK && rep->h) {
        *h = *rep->h;
        *body = malloc(rep->h->body_len ? rep->h->body_len : 1);
        if (*body)
            memcpy(*body, rep->body, rep->h->body_len);
        else {
            *rc = KV_ENOMEM;
            snprintf(why, why_size, "out of memory copying an answer");
        }
    } else if (rep->rc != KV_OK) {
        snprintf(why, why_size, "%s", rep->why ? rep->why : "");
    }
}

static void waiter_done(void *ctx, const kvi_reply *rep)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->lock);
    copy_reply(&w->rc, &w->h, &w->body, w->why, sizeof w->why, rep);
    w->retryable = rep->retryable;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* ------------------------------------------- waiting on a manual loop
 *
 * With manual_loop, the loop runs only while some thread drives it: the
 * application in kv_run, or a blocking call waiting for its answer. One
 * thread drives at a time (the drive mutex); a blocking call that finds
 * the loop driven parks (below) and sleeps on its own condition, which
 * its request's callback signals when the driver ends it.
 *
 * A driver lets go as soon as its own request has ended, while parked
 * threads' requests may still be in flight with nobody reading their
 * answers. So letting go hands the loop over: drive_release wakes the
 * first parked thread whose request has not ended, which then drives.
 * (Before, a parked thread slept at most 5 ms and then tried to drive:
 * every hand-over left the loop idle for up to 5 ms.) */
typedef struct parked {
    struct parked *next, *prev;
    pthread_mutex_t *lock; /* the waiting call's; guards *done and kicked */
    pthread_cond_t *cond;
    const int *done;
    int kicked; /* the last driver handed the loop to this thread */
} parked;

static void park(client_loop *l, parked *p)
{
    pthread_mutex_lock(&l->park_lock);
    p->next = NULL;
    p->prev = l->parked_tail;
    if (l->parked_tail)
        l->parked_tail->next = p;
    else
        l->parked_head = p;
    l->parked_tail = p;
    l->n_parked++;
    pthread_mutex_unlock(&l->park_lock);
}

static void unpark(client_loop *l, parked *p)
{
    pthread_mutex_lock(&l->park_lock);
    if (p->prev)
        p->prev->next = p->next;
    else
        l->parked_head = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        l->parked_tail = p->prev;
    l->n_parked--;
    pthread_mutex_unlock(&l->park_lock);
    pthread_mutex_lock(p->lock);
    p->kicked = 0; /* off the list: no one sets it any more */
    pthread_mutex_unlock(p->lock);
}

/* Lets go of the loop (drive held) and hands it to the first parked thread
 * whose request is still running. One is enough: it drives until its own
 * request ends and then hands over in turn; one whose request ended is
 * skipped, since it leaves without driving. Lock order: park_lock, then a
 * waiter's lock (never drive while holding either). */
static void drive_release(client_loop *l)
{
    pthread_mutex_unlock(&l->drive);
    pthread_mutex_lock(&l->park_lock);
    for (parked *p = l->parked_head; p; p = p->next) {
        pthread_mutex_lock(p->lock);
        int waiting = !*p->done;
        if (waiting) {
            p->kicked = 1;
            pthread_cond_signal(p->cond);
        }
        pthread_mutex_unlock(p->lock);
        if (waiting)
            break;
    }
    pthread_mutex_unlock(&l->park_lock);
}

/* One turn of a manual loop, drive held. */
static void drive_turn(client_loop *l)
{
    kvi_loop_run_once(l->loop, 50);
    drive_release(l);
}

/* Waits until *done (set under lock by the request's callback, which
 * signals cond): driving a manual loop whenever no other thread does. */
static void manual_wait(client_loop *l, pthread_mutex_t *lock, pthread_cond_t *cond,
                        const int *done)
{
    parked me = {.lock = lock, .cond = cond, .done = done};
    for (;;) {
        pthread_mutex_lock(lock);
        int ended = *done;
        pthread_mutex_unlock(lock);
        if (ended)
            return;
        if (pthread_mutex_trylock(&l->drive) == 0) {
            drive_turn(l);
            continue;
        }
        /* Another thread drives. Park, then try once more: the driver may
         * have let go between the try above and the parking, and then
         * found no one to hand over to. Once parked, whoever holds drive
         * sees this thread when it lets go. */
        park(l, &me);
        if (pthread_mutex_trylock(&l->drive) == 0) {
            unpark(l, &me);
            drive_turn(l);
            continue;
        }
        pthread_mutex_lock(lock);
        while (!*done && !me.kicked)
            pthread_cond_wait(cond, lock);
        pthread_mutex_unlock(lock);
        unpark(l, &me);
    }
}

void kvi_client_wait(kvi_client *cl, pthread_mutex_t *lock, pthread_cond_t *cond,
                     const int *done)
{
    if (cl->manual) {
        manual_wait(cl->shared, lock, cond, done);
        return;
    }
    pthread_mutex_lock(lock);
    while (!*done)
        pthread_cond_wait(cond, lock);
    pthread_mutex_unlock(lock);
}

size_t kvi_client_parked(kvi_client *cl)
{
    pthread_mutex_lock(&cl->shared->park_lock);
    size_t n = cl->shared->n_parked;
    pthread_mutex_unlock(&cl->shared->park_lock);
    return n;
}

/* Waits until w is done: on its condition while the loop runs elsewhere;
 * driving the loop itself when the application drives it (manual) and no
 * one else is. */
static void waiter_wait(kvi_client *cl, waiter *w)
{
    kvi_client_wait(cl, &w->lock, &w->cond, &w->done);
}

/* A blocking call may not run on the loop's own thread: it would wait for
 * the loop it is holding up. */
int kvi_client_refuse_on_loop(const kvi_client *cl)
{
    if (kvi_loop_on_thread(cl->loop))
        return kvi_error(KV_EBUSY, "a blocking call from inside a completion callback of the "
                                   "same client would wait for itself; use the asynchronous "
                                   "call");
    return KV_OK;
}

/* Sends the frame (begun by kvi_frame_begin, body appended; taken) and
 * waits for its answer: KV_OK with the header and body (malloc'd; the
 * caller frees it), or what no answer means, with the message set. */
static int round_trip(kvi_client *cl, kvi_buf *frame, uint8_t opcode, int is_write,
                      kvi_frame_header *h, unsigned char **body)
{
    *body = NULL;
    int rc = kvi_client_refuse_on_loop(cl);
    if (rc != KV_OK) {
        kvi_buf_free(frame);
        return rc;
    }
    waiter w;
    waiter_init(&w);
    rc = kvi_client_submit(cl, frame, opcode, 0,
                           (is_write ? KVI_SUBMIT_WRITE : 0u) | KVI_SUBMIT_RETRY, waiter_done, &w);
    if (rc == KV_OK) {
        waiter_wait(cl, &w);
        rc = w.rc;
        if (rc == KV_OK) {
            *h = w.h;
            *body = w.body;
        } else {
            kvi_error(rc, "%s", w.why);
        }
    }
    waiter_destroy(&w);
    return rc;
}

struct timespec kvi_deadline_after(uint32_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (uint64_t)ms * 1000000u;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return ts;
}

/* Decodes a reply; an error frame's status and message become the result. */
static int decode_reply(kvi_response *resp, const kvi_frame_header *h, const unsigned char *body,
                        uint8_t opcode)
{
    if (h->opcode != opcode ||
        kvi_response_decode_flags(resp, opcode, h->status, h->flags, body, h->body_len) != 0)
        return kvi_error(KV_EIO, "malformed response from the node");
    if (resp->status != KV_OK)
        return kvi_error(resp->status, "%.*s", (int)(resp->message.len > 400 ? 400 : resp->message.len),
                         (const char *)resp->message.data);
    return KV_OK;
}

int kvi_reply_decode(kvi_response *resp, const kvi_reply *rep, uint8_t opcode)
{
    if (rep->rc != KV_OK)
        return kvi_error(rep->rc, "%s", rep->why ? rep->why : "");
    return decode_reply(resp, rep->h, rep->body, opcode);
}

/* ------------------------------------------------------------ lifecycle */

static void *loop_main(void *arg)
{
    client_loop *l = arg;
    kvi_loop_run(l->loop);
    return NULL;
}

static int client_loop_new(client_loop **out, int manual)
{
    client_loop *l = calloc(1, sizeof *l);
    if (!l)
        return kvi_error(KV_ENOMEM, "out of memory opening a client");
    int rc = kvi_loop_new(&l->loop);
    if (rc != KV_OK) {
        free(l);
        return rc;
    }
    l->manual = manual;
    atomic_init(&l->refs, 1);
    pthread_mutex_init(&l->drive, NULL);
    pthread_mutex_init(&l->park_lock, NULL);
    if (!manual && pthread_create(&l->thread, NULL, loop_main, l) != 0) {
        kvi_loop_free(l->loop);
        pthread_mutex_destroy(&l->drive);
        pthread_mutex_destroy(&l->park_lock);
        free(l);
        return kvi_error(KV_ENOMEM, "cannot start the client's thread");
    }
    *out = l;
    return KV_OK;
}

/* After the loop has stopped (and its thread, if any, was joined). */
static void client_loop_free(client_loop *l)
{
    kvi_loop_free(l->loop);
    pthread_mutex_destroy(&l->drive);
    pthread_mutex_destroy(&l->park_lock);
    free(l);
}

/* Frees what open made; the loop is the caller's business. */
static void client_free(kvi_client *cl)
{
    for (unsigned i = 0; cl->conns && i < cl->n_conns; i++) {
        free(cl->conns[i].in);
        pthread_mutex_destroy(&cl->conns[i].lock);
    }
    free(cl->conns);
    free(cl->endpoints);
    kvi_client_set_credentials(cl, NULL, 0, NULL);
    kvi_tls_free(cl->own_tls);
    pthread_mutex_destroy(&cl->closed_lock);
    pthread_cond_destroy(&cl->closed_cond);
    free(cl);
}

static int client_open(kvi_client **out, const char *const *endpoints, size_t count,
                       const kv_client_options *o, const kvi_logger *log,
                       kvi_client_loop *sharing)
{
    *out = NULL;
    if (!endpoints || count == 0)
        return kvi_error(KV_EINVAL, "at least one endpoint is required");
    kv_client_options upgraded;
    if (kvi_client_options_upgrade(&upgraded, o) != KV_OK)
        return kvi_error(KV_EINVAL, "client options: unknown version %u", o->version);
    o = &upgraded;
    if (o->connections_per_node > 64)
        return kvi_error(KV_EINVAL, "client options: at most 64 connections per node");
    if (o->auth_token && !kvi_auth_token_valid(o->auth_token))
        return kvi_error(KV_EINVAL, "client options: auth_token must be 1..%u characters of "
                                    "letters, digits and - . _ ~ + / (then any '=')",
                         KVI_AUTH_MAX_CREDENTIAL);
    kvi_client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return kvi_error(KV_ENOMEM, "out of memory opening a client");
    pthread_mutex_init(&cl->closed_lock, NULL);
    pthread_cond_init(&cl->closed_cond, NULL);
    cl->log = log;
    cl->max_inflight = o->max_inflight ? o->max_inflight : 4096u;
    cl->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    cl->request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms : DEFAULT_REQUEST_TIMEOUT_MS;
    cl->n_conns = o->connections_per_node ? o->connections_per_node : 1;
    cl->endpoints = calloc(count, sizeof *cl->endpoints);
    cl->conns = calloc(cl->n_conns, sizeof *cl->conns);
    int rc = !cl->endpoints || !cl->conns ? kvi_error(KV_ENOMEM, "out of memory opening a client")
                                          : KV_OK;
    if (!cl->conns)
        cl->n_conns = 0;
    for (unsigned i = 0; i < cl->n_conns; i++) {
        conn *c = &cl->conns[i];
        c->cl = cl;
        c->fd = -1;
        c->dial_fd = -1;
        pthread_mutex_init(&c->lock, NULL);
        kvi_loop_deferred_init(&c->flush, conn_flush, c);
    }
    kvi_loop_deferred_init(&cl->iter_end, iter_end, cl);
    cl->n_endpoints = count;
    for (size_t i = 0; rc == KV_OK && i < count; i++)
        rc = kvi_addr_parse(&cl->endpoints[i], endpoints[i]);
    if (rc == KV_OK && (o->tls || o->tls_ca_pem || o->tls_cert_pem)) {
        rc = kvi_tls_new(&cl->own_tls, 0, o->tls_cert_pem, o->tls_key_pem, o->tls_ca_pem);
        if (rc != KV_OK)
            rc = kvi_error(rc, "client options: %s", kvi_error_last());
        cl->tls = cl->own_tls;
    }
    if (rc == KV_OK && o->auth_token)
        rc = kvi_client_set_credentials(cl, NULL, 0, o->auth_token);
    if (rc == KV_OK && sharing) {
        cl->shared = sharing;
        atomic_fetch_add(&cl->shared->refs, 1);
    } else if (rc == KV_OK) {
        rc = client_loop_new(&cl->shared, o->manual_loop != 0);
    }
    if (rc != KV_OK) {
        client_free(cl);
        return rc;
    }
    cl->loop = cl->shared->loop;
    cl->manual = cl->shared->manual;
    atomic_init(&cl->next_id, 1);
    kvi_loop_timer_init(&cl->tick, tick, cl);
    *out = cl;
    return KV_OK;
}

int kvi_client_open(kvi_client **out, const char *const *endpoints, size_t count,
                    const kv_client_options *o, const kvi_logger *log)
{
    return client_open(out, endpoints, count, o, log, NULL);
}

int kvi_client_open_on(kvi_client **out, const char *const *endpoints, size_t count,
                       const kv_client_options *o, const kvi_logger *log, kvi_client_loop *loop)
{
    return client_open(out, endpoints, count, o, log, loop);
}

kvi_loop *kvi_client_loop_event_loop(kvi_client_loop *l)
{
    return l->loop;
}

kvi_client_loop *kvi_client_loop_of(kvi_client *c)
{
    return c->shared;
}

int kvi_client_loop_new(kvi_client_loop **out)
{
    return client_loop_new(out, 0);
}

/* Stops a loop with a thread of its own that nothing uses any more. */
static void client_loop_stop(kvi_client_loop *l)
{
    kvi_loop_stop(l->loop);
    pthread_join(l->thread, NULL);
    client_loop_free(l);
}

void kvi_client_loop_release(kvi_client_loop *l)
{
    if (l && atomic_fetch_sub(&l->refs, 1) == 1)
        client_loop_stop(l);
}

/* The last step of closing, queued behind the dialers' own tasks (posted
 * before close_on_loop joined them), so that none runs after the client is
 * freed. */
static void close_done(void *ctx)
{
    kvi_client *cl = ctx;
    if (cl->stop_loop)
        kvi_loop_stop(cl->loop);
    pthread_mutex_lock(&cl->closed_lock);
    cl->closed = 1;
    pthread_cond_signal(&cl->closed_cond);
    pthread_mutex_unlock(&cl->closed_lock);
}

/* On the loop: ends every request, and stops the dialers. */
static void close_on_loop(void *ctx)
{
    kvi_client *cl = ctx;
    cl->closing = 1;
    for (unsigned i = 0; i < cl->n_conns; i++) {
        conn *c = &cl->conns[i];
        pthread_mutex_lock(&c->lock);
        c->dial_cancelled = 1;
        if (c->dial_fd >= 0)
            shutdown(c->dial_fd, SHUT_RDWR); /* cuts the dialer's wait short */
        pthread_mutex_unlock(&c->lock);
        conn_break(c, "the client was closed");
        while (c->queue.head) {
            req *r = c->queue.head;
            list_remove(&c->queue, r);
            req_fail(r, KV_EUNAVAILABLE, 0, "the client was closed");
        }
        if (c->dialer_running) {
            pthread_join(c->dialer, NULL);
            c->dialer_running = 0;
            if (c->dialed.status == KV_OK) {
                kvi_tls_close(c->dialed.tls);
                close(c->dialed.fd);
            }
        }
    }
    kvi_loop_timer_cancel(cl->loop, &cl->tick);
    kvi_loop_undefer(cl->loop, &cl->iter_end);
    kvi_loop_post(cl->loop, &cl->close_task, close_done, cl);
}

void kvi_client_close(kvi_client *cl)
{
    if (!cl)
        return;
    client_loop *l = cl->shared;
    int last = atomic_fetch_sub(&l->refs, 1) == 1;
    cl->stop_loop = last;
    if (l->manual) {
        pthread_mutex_lock(&l->drive);
        kvi_loop_post(l->loop, &cl->close_task, close_on_loop, cl);
        while (!cl->closed) /* only this thread drives: no lock needed to read it */
            kvi_loop_run_once(l->loop, 10);
        drive_release(l);
    } else {
        kvi_loop_post(l->loop, &cl->close_task, close_on_loop, cl);
        pthread_mutex_lock(&cl->closed_lock);
        while (!cl->closed)
            pthread_cond_wait(&cl->closed_cond, &cl->closed_lock);
        pthread_mutex_unlock(&cl->closed_lock);
        if (last)
            pthread_join(l->thread, NULL);
    }
    client_free(cl);
    if (last)
        client_loop_free(l);
}

int kvi_client_run(kvi_client *cl, int timeout_ms)
{
    if (!cl->manual)
        return kvi_error(KV_EINVAL, "this client runs its loop on a thread of its own; open it "
                                    "with manual_loop = 1 to drive it");
    if (kvi_loop_on_thread(cl->loop))
        return kvi_error(KV_EBUSY, "the client's loop is already running on this thread "
                                   "(called from a completion callback)");
    pthread_mutex_lock(&cl->shared->drive);
    int n = kvi_loop_run_once(cl->loop, timeout_ms);
    drive_release(cl->shared); /* a blocking call of another thread may be parked */
    return n;
}

int kvi_client_fd(const kvi_client *cl)
{
    return kvi_loop_fd(cl->loop);
}

void kvi_client_set_tls(kvi_client *cl, const kvi_tls *tls)
{
    cl->tls = tls;
}

int kvi_client_set_credentials(kvi_client *cl, const unsigned char *secret, size_t secret_len,
                               const char *token)
{
    kvi_wipe(cl->secret, cl->secret_len);
    free(cl->secret);
    free(cl->token);
    cl->secret = NULL;
    cl->secret_len = 0;
    cl->token = NULL;
    if (secret_len) {
        cl->secret = malloc(secret_len);
        if (!cl->secret)
            return kvi_error(KV_ENOMEM, "out of memory keeping the cluster secret");
        memcpy(cl->secret, secret, secret_len);
        cl->secret_len = secret_len;
    }
    if (token && !(cl->token = strdup(token)))
        return kvi_error(KV_ENOMEM, "out of memory keeping the client token");
    return KV_OK;
}

/* ---------------------------------------------------------- data calls */

/* Encodes req into a new frame, runs it, decodes the reply into resp. The
 * reply body (which resp points into) is returned for the caller to free. */
static int call(kvi_client *cl, const kvi_request *req, int is_write, kvi_response *resp,
                unsigned char **body)
{
    *body = NULL;
    kvi_buf frame = {0};
    kvi_frame_begin(&frame);
    kvi_request_encode(&frame, req);
    kvi_frame_header h;
    if (frame.failed) {
        kvi_buf_free(&frame);
        return kvi_error(KV_ENOMEM, "out of memory encoding a request");
    }
    int rc = round_trip(cl, &frame, req->opcode, is_write, &h, body);
    if (rc == KV_OK)
        rc = decode_reply(resp, &h, *body, req->opcode);
    return rc;
}

int kvi_client_ping(kvi_client *cl)
{
    kvi_request req = {.opcode = KVI_OP_PING};
    kvi_response resp;
    unsigned char *body = NULL;
    int rc = call(cl, &req, 0, &resp, &body);
    free(body);
    return rc;
}

int kvi_client_put(kvi_client *cl, uint64_t *out_version, const void *key, size_t key_len,
                   const void *value, size_t value_len, const kv_write_options *opts)
{
    kvi_request req = {.opcode = KVI_OP_PUT, .key = {key, key_len}, .value = {value, value_len}};
    kvi_request_set_write_options(&req, opts);
    kvi_response resp;
    unsigned char *body = NULL;
    int rc = call(cl, &req, 1, &resp, &body);
    if (rc == KV_OK && out_version)
        *out_version = resp.version;
    free(body);
    return rc;
}

kv_value *kvi_value_from_response(kvi_response *resp)
{
    const void *data[KVI_MAX_WIRE_SIBLINGS];
    size_t len[KVI_MAX_WIRE_SIBLINGS];
    for (uint32_t i = 0; i < resp->sibling_count; i++) {
        kvi_bytes sib = kvi_response_next_sibling(resp);
        data[i] = sib.data;
        len[i] = sib.len;
    }
    return kvi_value_new_siblings(data, len, resp->sibling_count, resp->version,
                                  resp->expiry_ms, resp->context.data, resp->context.len);
}

int kvi_client_get(kvi_client *cl, kv_value **out, const void *key, size_t key_len,
                   const kv_read_options *opts)
{
    kvi_request req = {.opcode = KVI_OP_GET, .key = {key, key_len}};
    if (opts) {
        req.consistency = (uint8_t)opts->consistency;
        req.quorum = (uint8_t)opts->r;
    }
    kvi_response resp;
    unsigned char *body = NULL;
    int rc = call(cl, &req, 0, &resp, &body);
    if (rc == KV_OK) {
        *out = kvi_value_from_response(&resp);
        if (!*out)
            rc = kvi_error(KV_ENOMEM, "out of memory copying a value");
    }
    free(body);
    return rc;
}

int kvi_client_delete(kvi_client *cl, uint64_t *out_version, const void *key,
                      size_t key_len, const kv_write_options *opts)
{
    kvi_request req = {.opcode = KVI_OP_DELETE, .key = {key, key_len}};
    kvi_request_set_write_options(&req, opts);
    kvi_response resp;
    unsigned char *body = NULL;
    int rc = call(cl, &req, 1, &resp, &body);
    if (rc == KV_OK && out_version)
        *out_version = resp.version;
    free(body);
    return rc;
}

int kvi_client_cas(kvi_client *cl, uint64_t *out_version, const void *key, size_t key_len,
                   uint64_t expected_version, const void *value, size_t value_len,
                   const kv_write_options *opts)
{
    kvi_request req = {.opcode = KVI_OP_CAS, .key = {key, key_len}, .value = {value, value_len},
                       .expected_version = expected_version};
    kvi_request_set_write_options(&req, opts);
    kvi_response resp;
    unsigned char *body = NULL;
    int rc = call(cl, &req, 1, &resp, &body);
    if ((rc == KV_OK || rc == KV_ECONFLICT) && out_version)
        *out_version = resp.version;
    free(body);
    return rc;
}

int kvi_client_batch(kvi_client *cl, kv_batch *b, const kv_write_options *wopts,
                     const kv_read_options *ropts)
{
    kvi_request req = {.opcode = KVI_OP_BATCH, .batch_count = (uint32_t)b->count};
    kvi_request_set_write_options(&req, wopts);
    if (ropts && !wopts) {
        req.consistency = (uint8_t)ropts->consistency;
        req.quorum = (uint8_t)ropts->r;
    }
    int has_writes = 0;
    kvi_buf frame = {0};
    kvi_frame_begin(&frame);
    kvi_request_encode(&frame, &req);
    for (size_t i = 0; i < b->count; i++) {
        const kvi_batch_op *op = &b->ops[i];
        kvi_batch_item it = {(uint8_t)op->kind, op->ttl_s, {op->key, op->key_len},
                             {op->value, op->kind == KV_BATCH_PUT ? op->value_len : 0}};
        kvi_batch_item_encode(&frame, &it);
        has_writes |= op->kind != KV_BATCH_GET;
    }
    kvi_frame_header h;
    unsigned char *rbody = NULL;
    int rc;
    if (frame.failed)
        rc = kvi_error(KV_ENOMEM, "out of memory encoding a batch");
    else if (frame.len - KVI_FRAME_HEADER > KVI_FRAME_MAX_BODY_LIMIT)
        rc = kvi_error(KV_ETOOBIG, "the batch encodes to %zu bytes, over the frame limit",
                       frame.len);
    else
        rc = round_trip(cl, &frame, KVI_OP_BATCH, has_writes, &h, &rbody);
    kvi_buf_free(&frame);
    kvi_response resp;
    if (rc == KV_OK)
        rc = decode_reply(&resp, &h, rbody, KVI_OP_BATCH);
    if (rc == KV_OK && resp.batch_count != b->count)
        rc = kvi_error(KV_EIO, "the node answered %u results for %zu operations",
                       resp.batch_count, b->count);
    for (size_t i = 0; rc == KV_OK && i < b->count; i++) {
        kvi_batch_outcome o;
        kvi_response_next_outcome(&resp, &o);
        kvi_batch_op *op = &b->ops[i];
        op->status = o.status;
        op->version = o.version;
        if (op->kind == KV_BATCH_GET && o.status == KV_OK && resp.batch_siblings) {
            const void *data[KVI_MAX_WIRE_SIBLINGS];
            size_t len[KVI_MAX_WIRE_SIBLINGS];
            for (uint32_t k = 0; k < o.sibling_count; k++) {
                kvi_bytes sib = kvi_read_bytes(&o.siblings);
                data[k] = sib.data;
                len[k] = sib.len;
            }
            op->result = kvi_value_new_siblings(data, len, o.sibling_count, o.version,
                                                o.expiry_ms, o.context.data, o.context.len);
            if (!op->result)
                rc = kvi_error(KV_ENOMEM, "out of memory copying a batch result");
        } else if (op->kind == KV_BATCH_GET && o.status == KV_OK) {
            op->result = kvi_value_new(o.value.data, o.value.len, o.version, o.expiry_ms);
            if (!op->result)
                rc = kvi_error(KV_ENOMEM, "out of memory copying a batch result");
        }
    }
    if (rc != KV_OK)
        for (size_t i = 0; i < b->count; i++)
            b->ops[i].status = rc;
    free(rbody);
    return rc;
}

int kvi_client_get_state(kvi_client *cl, kvi_state *out, kvi_buf *holder, const void *key,
                         size_t key_len)
{
    kvi_request req = {.opcode = KVI_OP_GET_STATE, .key = {key, key_len}};
    kvi_response resp;
    unsigned char *body = NULL;
    int rc = call(cl, &req, 0, &resp, &body);
    if (rc == KV_OK) {
        /* Keep the bytes: the decoded state points into them. */
        kvi_buf_reset(holder);
        kvi_buf_raw(holder, resp.value.data, resp.value.len);
        if (holder->failed)
            rc = kvi_error(KV_ENOMEM, "out of memory copying a state");
        else if (kvi_state_decode(out, holder->data, holder->len,
                                  kvi_key_token(key, key_len)) != KV_OK)
            rc = kvi_error(KV_EIO, "the node sent a malformed state");
    }
    free(body);
    return rc;
}

/* A request whose body and answer are each one `bytes` value, blocking. */
static int value_call(kvi_client *cl, uint8_t opcode, const void *body, size_t len,
                      int is_write, kvi_buf *answer)
{
    kvi_request req = {.opcode = opcode, .value = {body, len}};
    kvi_response resp;
    unsigned char *rbody = NULL;
    int rc = call(cl, &req, is_write, &resp, &rbody);
    if (rc == KV_OK) {
        kvi_buf_reset(answer);
        kvi_buf_raw(answer, resp.value.data, resp.value.len);
        if (answer->failed)
            rc = kvi_error(KV_ENOMEM, "out of memory copying an answer");
    }
    free(rbody);
    return rc;
}

int kvi_client_value_call(kvi_client *cl, uint8_t opcode, const void *body, size_t len, kvi_buf *answer)
{
    return value_call(cl, opcode, body, len, 0, answer);
}

int kvi_client_value_write(kvi_client *cl, uint8_t opcode, const void *body, size_t len,
                           kvi_buf *answer)
{
    return value_call(cl, opcode, body, len, 1, answer);
}

int kvi_client_submit_value(kvi_client *c, uint8_t opcode, const void *body, size_t len,
                            unsigned flags, kvi_reply_fn fn, void *ctx)
{
    kvi_request req = {.opcode = opcode, .value = {body, len}};
    kvi_buf frame = {0};
    kvi_frame_begin(&frame);
    kvi_request_encode(&frame, &req);
    if (frame.failed) {
        kvi_buf_free(&frame);
        return kvi_error(KV_ENOMEM, "out of memory encoding a request");
    }
    return kvi_client_submit(c, &frame, opcode, 0, flags, fn, ctx);
}

int kvi_client_open_peer(kvi_client **out, const char *addr, const kv_client_options *co,
                         const kvi_credentials *creds, const kvi_logger *log,
                         kvi_client_loop *loop)
{
    const char *eps[] = {addr};
    int rc = loop ? kvi_client_open_on(out, eps, 1, co, log, loop)
                  : kvi_client_open(out, eps, 1, co, log);
    if (rc != KV_OK)
        return rc;
    if (creds && creds->secret_len)
        rc = kvi_client_set_credentials(*out, creds->secret, creds->secret_len, NULL);
    if (rc != KV_OK) {
        kvi_client_close(*out);
        *out = NULL;
        return rc;
    }
    if (creds && creds->tls)
        kvi_client_set_tls(*out, creds->tls);
    return KV_OK;
}

int kvi_client_replicate(kvi_client *cl, uint64_t *version, const void *key, size_t key_len,
                         const kvi_state *state)
{
    kvi_buf encoded = {0};
    kvi_state_encode(&encoded, state, kvi_key_token(key, key_len));
    if (encoded.failed) {
        kvi_buf_free(&encoded);
        return kvi_error(KV_ENOMEM, "out of memory encoding a state");
    }
    kvi_request req = {.opcode = KVI_OP_REPLICATE, .key = {key, key_len},
                       .value = {encoded.data, encoded.len}};
    kvi_response resp;
    unsigned char *body = NULL;
    /* A merge is idempotent, so a lost answer is safe to retry; it still
     * counts as a write for the outcome it reports. */
    int rc = call(cl, &req, 1, &resp, &body);
    if (rc == KV_OK && version)
        *version = resp.version;
    free(body);
    kvi_buf_free(&encoded);
    return rc;
}

int kvi_client_cluster(kvi_client *cl, kvi_buf *out)
{
    kvi_request req = {.opcode = KVI_OP_CLUSTER};
    kvi_response resp;
    unsigned char *body = NULL;
    int rc = call(cl, &req, 0, &resp, &body);
    if (rc == KV_OK) {
        kvi_buf_reset(out);
        kvi_buf_raw(out, resp.value.data, resp.value.len);
        if (out->failed)
            rc = kvi_error(KV_ENOMEM, "out of memory copying the cluster description");
    }
    free(body);
    return rc;
}

/* ---------------------------------------------------------- fan-out calls */

void kvi_fanout_init(kvi_fanout *fo)
{
    memset(fo, 0, sizeof *fo);
    pthread_mutex_init(&fo->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&fo->cond, &attr);
    pthread_condattr_destroy(&attr);
}

void kvi_fanout_destroy(kvi_fanout *fo)
{
    pthread_mutex_destroy(&fo->lock);
    pthread_cond_destroy(&fo->cond);
}

static void fanout_count(kvi_fanout *fo, int ok)
{
    pthread_mutex_lock(&fo->lock);
    fo->done++;
    fo->ok += ok != 0;
    pthread_cond_broadcast(&fo->cond);
    pthread_mutex_unlock(&fo->lock);
}

void kvi_fanout_local(kvi_fanout *fo, int ok)
{
    fanout_count(fo, ok);
}

unsigned kvi_fanout_wait(kvi_fanout *fo, unsigned want_ok, unsigned total,
                         const struct timespec *deadline)
{
    pthread_mutex_lock(&fo->lock);
    while (fo->ok < want_ok && fo->done < total) {
        if (pthread_cond_timedwait(&fo->cond, &fo->lock, deadline) == ETIMEDOUT)
            break;
    }
    unsigned ok = fo->ok;
    pthread_mutex_unlock(&fo->lock);
    return ok;
}

/* A call's state is guarded by its lock; the fan-out is counted while the
 * lock is held, so once its caller sees the call done (and may destroy the
 * fan-out) the loop no longer touches it. */
struct kvi_call {
    pthread_mutex_t lock;
    kvi_fanout *fanout;
    int start_rc; /* KV_OK once submitted */
    int is_write;
    uint32_t timeout_ms;
    int done;
    int abandoned; /* its caller gave up: the loop frees it when it ends */
    int rc;
    kvi_frame_header h;
    unsigned char *body;
    char why[320];
    kvi_call_after_fn after;
    void *after_ctx;
};

static void call_free(kvi_call *call, int delivered)
{
    if (call->after)
        call->after(call->after_ctx, delivered);
    free(call->body);
    pthread_mutex_destroy(&call->lock);
    free(call);
}

static void call_ended(void *ctx, const kvi_reply *rep)
{
    kvi_call *call = ctx;
    int delivered = rep->rc == KV_OK && rep->h && rep->h->status == KV_OK;
    pthread_mutex_lock(&call->lock);
    if (call->abandoned) {
        pthread_mutex_unlock(&call->lock);
        call_free(call, delivered);
        return;
    }
    copy_reply(&call->rc, &call->h, &call->body, call->why, sizeof call->why, rep);
    call->done = 1;
    if (call->fanout) {
        int ok = call->rc == KV_OK && (call->h.status == KV_OK || call->h.status == KV_ENOTFOUND);
        fanout_count(call->fanout, ok);
    }
    pthread_mutex_unlock(&call->lock);
}

kvi_call *kvi_call_start_raw(kvi_client *cl, kvi_fanout *fo, uint8_t opcode,
                             const void *body, size_t body_len, uint16_t extra_flags,
                             int is_write)
{
    kvi_call *call = calloc(1, sizeof *call);
    if (!call) {
        fanout_count(fo, 0);
        return NULL;
    }
    pthread_mutex_init(&call->lock, NULL);
    call->fanout = fo;
    call->is_write = is_write;
    call->timeout_ms = cl->request_timeout_ms;
    kvi_buf frame = {0};
    kvi_frame_begin(&frame);
    kvi_buf_raw(&frame, body, body_len);
    call->start_rc = kvi_client_submit(cl, &frame, opcode, extra_flags,
                                       is_write ? KVI_SUBMIT_WRITE : 0u, call_ended, call);
    if (call->start_rc != KV_OK) {
        snprintf(call->why, sizeof call->why, "%s", kvi_error_last());
        fanout_count(fo, 0);
    }
    return call;
}

kvi_call *kvi_call_start(kvi_client *cl, kvi_fanout *fo, const kvi_request *req,
                         uint16_t extra_flags, int is_write)
{
    kvi_buf body = {0};
    kvi_request_encode(&body, req);
    kvi_call *call;
    if (body.failed) {
        kvi_buf_free(&body);
        fanout_count(fo, 0);
        return NULL;
    }
    call = kvi_call_start_raw(cl, fo, req->opcode, body.data, body.len, extra_flags, is_write);
    kvi_buf_free(&body);
    return call;
}

void kvi_call_set_after(kvi_call *call, kvi_call_after_fn fn, void *ctx)
{
    if (!call) {
        fn(ctx, 0);
        return;
    }
    pthread_mutex_lock(&call->lock);
    call->after = fn;
    call->after_ctx = ctx;
    pthread_mutex_unlock(&call->lock);
}

int kvi_call_done(kvi_call *call)
{
    if (!call || call->start_rc != KV_OK)
        return 1;
    pthread_mutex_lock(&call->lock);
    int done = call->done;
    pthread_mutex_unlock(&call->lock);
    return done;
}

int kvi_call_finish(kvi_call *call, kvi_frame_header *h, unsigned char **body)
{
    *body = NULL;
    if (!call)
        return kvi_error(KV_ENOMEM, "out of memory starting a request");
    if (call->start_rc != KV_OK) {
        int rc = kvi_error(call->start_rc, "%s", call->why);
        call_free(call, 0);
        return rc;
    }
    pthread_mutex_lock(&call->lock);
    if (!call->done) {
        /* Not answered yet: leave it to the loop, which ends it when the
         * answer comes or the request times out (running its after). */
        call->abandoned = 1;
        call->fanout = NULL;
        int is_write = call->is_write;
        uint32_t ms = call->timeout_ms;
        pthread_mutex_unlock(&call->lock);
        if (is_write)
            return kvi_error(KV_EUNKNOWN_OUTCOME, "no answer within %u ms; the write may or "
                                                  "may not have applied", ms);
        return kvi_error(KV_ETIMEDOUT, "no answer within %u ms", ms);
    }
    pthread_mutex_unlock(&call->lock);
    int rc = call->rc;
    if (rc == KV_OK) {
        *h = call->h;
        *body = call->body;
        call->body = NULL;
    } else {
        kvi_error(rc, "%s", call->why);
    }
    call_free(call, rc == KV_OK && h->status == KV_OK);
    return rc;
}

int kvi_call_decode(kvi_response *resp, uint8_t opcode, const kvi_frame_header *h,
                    const unsigned char *body)
{
    return decode_reply(resp, h, body, opcode);
}

/* ----------------------------------------------------------- settings */

void kvi_client_set_source(kvi_client *c, const char *listen)
{
    c->has_source = listen && kvi_addr_source(&c->source, listen);
}

void kvi_client_set_flags(kvi_client *cl, uint16_t flags)
{
    cl->flags = flags;
}

void kvi_client_set_probe(kvi_client *cl, int on)
{
    cl->probe = on;
}

void kvi_client_set_max_inflight(kvi_client *cl, unsigned max_per_connection)
{
    cl->max_inflight = max_per_connection;
}

void kvi_client_set_latency(kvi_client *cl, kvi_latency *latency)
{
    cl->latency = latency;
}

uint64_t kvi_client_last_answer_ms(kvi_client *cl)
{
    return atomic_load(&cl->last_answer_ms);
}

uint32_t kvi_client_timeout_ms(const kvi_client *cl)
{
    return cl->request_timeout_ms;
}

int kvi_client_connect_async(kvi_client *cl, kvi_reply_fn fn, void *ctx)
{
    if (kvi_loop_on_thread(cl->loop)) {
        /* Up already: say so at once, without a trip through the queue. */
        for (unsigned i = 0; i < cl->n_conns; i++) {
            conn *c = &cl->conns[i];
            if (c->state == CONN_UP && !peer_gone(c)) {
                kvi_reply rep = {KV_OK, NULL, NULL, NULL, 0};
                fn(ctx, &rep);
                return KV_OK;
            }
        }
    }
    req *r = calloc(1, sizeof *r);
    if (!r)
        return kvi_error(KV_ENOMEM, "out of memory connecting");
    r->connect_only = 1;
    hand_to_loop(cl, r, fn, ctx);
    return KV_OK;
}

kvi_loop *kvi_client_event_loop(const kvi_client *c)
{
    return c->loop;
}

int kvi_client_connect(kvi_client *cl)
{
    for (unsigned i = 0; i < cl->n_conns; i++) {
        conn *c = &cl->conns[i];
        pthread_mutex_lock(&c->lock);
        int up = c->state == CONN_UP && !peer_closed(c->fd);
        pthread_mutex_unlock(&c->lock);
        if (up)
            return KV_OK;
    }
    int rc = kvi_client_refuse_on_loop(cl);
    if (rc != KV_OK)
        return rc;
    req *r = calloc(1, sizeof *r);
    if (!r)
        return kvi_error(KV_ENOMEM, "out of memory connecting");
    waiter w;
    waiter_init(&w);
    r->connect_only = 1;
    r->fn = waiter_done;
    r->ctx = &w;
    r->c = &cl->conns[0];
    r->deadline_ms = kvi_loop_now_ms() + cl->request_timeout_ms;
    kvi_loop_post(cl->loop, &r->task, enqueue_counted, r);
    waiter_wait(cl, &w);
    rc = w.rc;
    if (rc != KV_OK)
        kvi_error(rc, "%s", w.why);
    free(w.body);
    waiter_destroy(&w);
    return rc;
}
