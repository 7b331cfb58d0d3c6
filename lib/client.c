/*
 * client.c - persistent connections to a node, many requests in flight.
 *
 * A call encodes its request, registers a waiter under a fresh request id,
 * sends the frame and sleeps until the connection's reader thread hands it
 * the response with that id, or until its deadline. A connection that
 * breaks fails every waiter at once; the next call reconnects, trying the
 * endpoints in order, so a restarted node is picked up by itself.
 *
 * Outcomes when no answer comes: a read gets KV_ETIMEDOUT (or is retried
 * once on a fresh connection when the old one broke); a write that was sent
 * gets KV_EUNKNOWN_OUTCOME, since it may have been applied; a write that
 * could not be sent at all gets KV_EUNAVAILABLE.
 */
/* POLLRDHUP is a Linux extension. */
#define _GNU_SOURCE
#include "client.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "net/addr.h"
#include "net/auth.h"
#include "net/tls.h"
#include "options.h"
#include "net/frame.h"
#include "net/message.h"
#include "util/error.h"
#include "util/wipe.h"
#include "storage/record.h"
#include "value.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 1000u
#define DEFAULT_REQUEST_TIMEOUT_MS 5000u
/* Responses carry at most a value plus a little, or a batch of them. */
#define MAX_RESPONSE_BODY KVI_FRAME_MAX_BODY_LIMIT

typedef struct waiter {
    uint64_t id;
    int done;
    int broken;          /* the connection failed before the answer came */
    kvi_frame_header h;  /* of the response */
    unsigned char *body; /* malloc'd by the reader; freed by the caller */
    pthread_cond_t cond;
    kvi_fanout *fanout;  /* also told when this completes; may be NULL */
    /* Its caller gave up, but the request is still on the wire: the waiter
     * stays pending, holding its in-flight slot, and whoever takes it off
     * the connection frees `owner` (a kvi_call). */
    int abandoned;
    struct kvi_call *owner;
    struct waiter *next;
} waiter;

static void call_end(struct kvi_call *call, int delivered);

/* Marks a waiter complete; called with its connection's lock held. */
static void complete(waiter *w)
{
    w->done = 1;
    pthread_cond_signal(&w->cond);
    kvi_fanout *fo = w->fanout;
    if (fo) {
        pthread_mutex_lock(&fo->lock);
        fo->done++;
        if (!w->broken && (w->h.status == KV_OK || w->h.status == KV_ENOTFOUND))
            fo->ok++;
        pthread_cond_broadcast(&fo->cond);
        pthread_mutex_unlock(&fo->lock);
    }
}

struct conn;
static void released(struct conn *c);

typedef struct conn {
    struct kvi_client *client;
    /* lock guards everything below but the socket writes themselves. */
    pthread_mutex_t lock;
    pthread_cond_t state_changed; /* reader exited, or replacing finished */
    int fd;              /* -1 when not connected */
    kvi_tls_session *tls; /* over fd when the client speaks TLS; else NULL */
    uint64_t generation; /* +1 per socket, so a sender can tell its fd is gone */
    int broken;          /* the socket failed; replace it before use */
    int replacing;       /* a caller is replacing the socket; others wait */
    int reader_running;  /* a reader thread exists (and must be joined) */
    int reader_exited;   /* it has failed the waiters and is returning */
    /* The last socket broke, or connecting failed: the next connection is
     * news for the log (info); a first one is routine (debug). */
    int failed;
    pthread_t reader;
    waiter *pending;
    unsigned inflight;         /* waiters in pending, abandoned ones included */
    /* CLOCK_MONOTONIC ms: when inflight last rose from 0, and when the last
     * answer arrived. A connection with requests in flight that has been
     * silent longer than the request timeout is replaced (see
     * silent_too_long): a partition or a paused peer can leave a TCP
     * connection open, and silent, for many minutes. */
    uint64_t busy_since_ms;
    uint64_t last_rx_ms;
    pthread_cond_t slot_free;  /* inflight went down (CLOCK_MONOTONIC) */
    /* send_lock serialises writers so frames never interleave; it is taken
     * after lock when both are needed, never the other way round. */
    pthread_mutex_t send_lock;
} conn;

struct kvi_client {
    kvi_addr *endpoints;
    size_t n_endpoints;
    atomic_size_t preferred; /* the endpoint that last worked */
    uint32_t connect_timeout_ms;
    uint32_t request_timeout_ms;
    conn *conns;
    unsigned n_conns;
    atomic_uint next_conn;
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
};

/* A connection's socket, and its TLS session if it has one. */
typedef struct wire {
    int fd;
    kvi_tls_session *tls;
} wire;

/* ---------------------------------------------------------------- I/O */

static int read_full(wire l, unsigned char *p, size_t n)
{
    while (n) {
        ssize_t r = l.tls ? kvi_tls_recv(l.tls, p, n) : recv(l.fd, p, n, 0);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else {
            return -1;
        }
    }
    return 0;
}

static int send_full(wire l, const unsigned char *p, size_t n, size_t *sent)
{
    *sent = 0;
    while (n) {
        ssize_t r = l.tls ? kvi_tls_send(l.tls, p, n) : send(l.fd, p, n, MSG_NOSIGNAL);
        if (r > 0) {
            p += r;
            n -= (size_t)r;
            *sent += (size_t)r;
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else {
            return -1;
        }
    }
    return 0;
}

/* A waiter left c's pending list; called with c->lock held. */
static void released(conn *c)
{
    c->inflight--;
    pthread_cond_signal(&c->slot_free);
}

/* Fails every waiter of a broken connection; called with c->lock held. */
static void fail_pending(conn *c)
{
    for (waiter *w = c->pending, *next; w; w = next) {
        next = w->next;
        if (w->abandoned) {
            call_end(w->owner, 0);
            continue;
        }
        w->broken = 1;
        complete(w);
    }
    c->pending = NULL;
    c->inflight = 0;
    pthread_cond_broadcast(&c->slot_free);
}

static void *reader_loop(void *arg)
{
    conn *c = arg;
    pthread_mutex_lock(&c->lock);
    wire fd = {c->fd, c->tls};
    pthread_mutex_unlock(&c->lock);
    for (;;) {
        unsigned char header[KVI_FRAME_HEADER];
        kvi_frame_header h;
        if (read_full(fd, header, sizeof header) != 0)
            break;
        if (kvi_frame_parse_header(&h, header, sizeof header, MAX_RESPONSE_BODY) != KVI_FRAME_OK ||
            !(h.flags & KVI_FRAME_FLAG_RESPONSE)) {
            kvi_log(c->client->log, KV_LOG_ERROR, "dropping a connection: malformed response frame");
            break;
        }
        unsigned char *body = malloc(h.body_len ? h.body_len : 1);
        if (!body || read_full(fd, body, h.body_len) != 0 ||
            kvi_frame_verify(&h, header, body) != KVI_FRAME_OK) {
            free(body);
            break;
        }
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        uint64_t now_ms = (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
        atomic_store(&c->client->last_answer_ms, now_ms);
        pthread_mutex_lock(&c->lock);
        c->last_rx_ms = now_ms;
        waiter **pp = &c->pending;
        while (*pp && (*pp)->id != h.request_id)
            pp = &(*pp)->next;
        waiter *w = *pp;
        if (w) {
            *pp = w->next;
            released(c);
            if (w->abandoned) {
                free(body); /* its caller needed no more answers */
                call_end(w->owner, h.status == KV_OK);
            } else {
                w->h = h;
                w->body = body;
                complete(w);
            }
        } else {
            free(body); /* its caller gave up (timed out) */
        }
        pthread_mutex_unlock(&c->lock);
    }
    pthread_mutex_lock(&c->lock);
    c->broken = 1;
    /* A socket closed with nothing in flight (the node's idle timeout) is
     * no failure; one that takes requests down with it is. */
    c->failed |= c->pending != NULL;
    fail_pending(c);
    c->reader_exited = 1;
    pthread_cond_broadcast(&c->state_changed);
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

/* The request id of the first frame on every new connection. A libkv node
 * echoes it like any other; to an HTTP server, the frame's first 16 bytes
 * read as a malformed request line and an empty one (" / \r\n\r\n" after
 * the first 8), so it answers "HTTP/1.1 400" at once instead of waiting for
 * the rest of a request that never comes: the answer tells a client pointed
 * at a node's HTTP port to say so (see exchange). */
#define PROBE_ID UINT64_C(0x00202f200d0a0d0a)

/* Reads up to n bytes; returns how many came before the end, an error or
 * the socket's receive timeout (*timed_out set). */
static size_t read_some(wire l, unsigned char *p, size_t n, int *timed_out)
{
    size_t got = 0;
    *timed_out = 0;
    while (got < n) {
        ssize_t r = l.tls ? kvi_tls_recv(l.tls, p + got, n - got) : recv(l.fd, p + got, n - got, 0);
        if (r > 0) {
            got += (size_t)r;
        } else if (!(r < 0 && errno == EINTR)) {
            *timed_out = r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
    }
    return got;
}

/* What the first answer bytes on a new connection say when they are not a
 * libkv frame header; KV_OK when they may be one. */
static int not_libkv(const char *endpoint, const unsigned char *b, size_t n)
{
    if (n >= 5 && memcmp(b, "HTTP/", 5) == 0)
        return kvi_error(KV_EUNAVAILABLE, "%s answered HTTP, not the libkv binary protocol: "
                         "that is the node's HTTP port; use the binary port (--listen)",
                         endpoint);
    if (n >= 1 && (b[0] == 0x15 || b[0] == 0x16))
        return kvi_error(KV_EUNAVAILABLE, "%s answered TLS, not plain libkv: the node speaks "
                         "TLS; connect with TLS (the tls client option)", endpoint);
    if (n >= 2 && (b[0] != 'k' || b[1] != 'v'))
        return kvi_error(KV_EUNAVAILABLE, "%s answered something that is not the libkv "
                         "binary protocol: is it a libkv node's binary port (--listen)?",
                         endpoint);
    return KV_OK;
}

/* One request and its answer on a connection no reader runs on yet (the
 * probe and the handshake), with request id `id`. KV_OK with the answer's
 * body in *body (malloc'd), or an error; an error frame's status and message
 * become the result. */
static int exchange(kvi_client *cl, wire fd, const char *endpoint, uint64_t id, uint8_t opcode,
                    const kvi_buf *req_body, unsigned char **body, size_t *body_len)
{
    *body = NULL;
    kvi_buf frame = {0};
    kvi_frame_begin(&frame);
    kvi_buf_raw(&frame, req_body->data, req_body->len);
    size_t sent, got = 0;
    int timed_out = 0;
    unsigned char header[KVI_FRAME_HEADER];
    kvi_frame_header h;
    int rc = kvi_frame_finish(&frame, 0, opcode, 0, 0, id) != 0
                 ? kvi_error(KV_ENOMEM, "out of memory in the handshake")
             : send_full(fd, frame.data, frame.len, &sent) != 0
                 ? kvi_error(KV_EUNAVAILABLE, "the node closed the connection during the "
                                             "handshake (is it on TLS? see the tls client option)")
                 : KV_OK;
    kvi_buf_free(&frame);
    if (rc == KV_OK)
        got = read_some(fd, header, sizeof header, &timed_out);
    if (rc == KV_OK && (rc = not_libkv(endpoint, header, got)) == KV_OK)
        rc = got < sizeof header && timed_out
                 ? kvi_error(KV_ETIMEDOUT, "no answer to the handshake within %u ms",
                             cl->request_timeout_ms)
             : got < sizeof header
                 ? kvi_error(KV_EUNAVAILABLE, "the node closed the connection during the "
                                             "handshake (is it on TLS? see the tls client option)")
             : kvi_frame_parse_header(&h, header, sizeof header, 64u * 1024u) != KVI_FRAME_OK ||
                     h.request_id != id || h.opcode != opcode
                 ? kvi_error(KV_EIO, "malformed answer to the handshake (not a libkv node?)")
                 : KV_OK;
    if (rc != KV_OK)
        return rc;
    unsigned char *b = malloc(h.body_len ? h.body_len : 1);
    if (!b)
        return kvi_error(KV_ENOMEM, "out of memory in the handshake");
    if (read_full(fd, b, h.body_len) != 0 || kvi_frame_verify(&h, header, b) != KVI_FRAME_OK) {
        free(b);
        return kvi_error(KV_EIO, "malformed answer to the handshake");
    }
    if (h.status != KV_OK) {
        kvi_response resp;
        rc = kvi_response_decode(&resp, opcode, h.status, b, h.body_len) != 0
                 ? kvi_error(h.status, "the node refused the handshake")
                 : kvi_error(h.status, "%.*s", (int)(resp.message.len > 300 ? 300 : resp.message.len),
                             (const char *)resp.message.data);
        free(b);
        return rc;
    }
    *body = b;
    *body_len = h.body_len;
    return KV_OK;
}

/* A new connection's first exchanges, before its reader starts: proves the
 * cluster secret or shows the token (net/auth.h), or else, when the client
 * probes, a PING; whatever answers first is checked for being a libkv node
 * (PROBE_ID). */
static int handshake(kvi_client *cl, wire fd, const char *endpoint)
{
    if (!cl->secret_len && !cl->token && !cl->probe)
        return KV_OK;
    struct timeval tv = {(time_t)(cl->request_timeout_ms / 1000),
                         (suseconds_t)(cl->request_timeout_ms % 1000) * 1000};
    setsockopt(fd.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    kvi_buf req = {0}, auth = {0};
    unsigned char *body = NULL;
    size_t body_len = 0;
    int rc = KV_OK;
    /* The first exchange carries PROBE_ID: without credentials, a PING. */
    uint64_t id = PROBE_ID;
    if (cl->secret_len) {
        unsigned char nonce_c[KVI_AUTH_NONCE];
        rc = kvi_auth_hello(&req, nonce_c);
        if (rc == KV_OK)
            rc = exchange(cl, fd, endpoint, id, KVI_OP_HELLO, &req, &body, &body_len);
        if (rc == KV_OK)
            rc = kvi_auth_answer(&auth, cl->secret, cl->secret_len, nonce_c, body, body_len);
        id = atomic_fetch_add(&cl->next_id, 1);
    } else if (cl->token) {
        kvi_auth_token_body(&auth, cl->token);
    }
    free(body);
    body = NULL;
    if (rc == KV_OK && auth.failed)
        rc = kvi_error(KV_ENOMEM, "out of memory in the handshake");
    if (rc == KV_OK)
        rc = cl->secret_len || cl->token
                 ? exchange(cl, fd, endpoint, id, KVI_OP_AUTH, &auth, &body, &body_len)
                 : exchange(cl, fd, endpoint, id, KVI_OP_PING, &req, &body, &body_len);
    free(body);
    kvi_buf_free(&req);
    kvi_buf_free(&auth);
    struct timeval none = {0, 0};
    setsockopt(fd.fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    return rc;
}

/* The host part of an endpoint's text ("HOST:PORT" or "[V6]:PORT"), the
 * name the node's certificate must carry. */
static void endpoint_host(const char *text, char *out, size_t size)
{
    const char *start = text, *end = strrchr(text, ':');
    if (text[0] == '[') {
        start = text + 1;
        end = strchr(text, ']');
    }
    size_t len = end && end > start ? (size_t)(end - start) : strlen(start);
    if (len >= size)
        len = size - 1;
    memcpy(out, start, len);
    out[len] = 0;
}

/* Sets up a new connection's TLS (when configured) and handshake, before
 * its reader starts; *tls receives the session. */
static int secure(kvi_client *cl, int fd, const kvi_addr *ep, kvi_tls_session **tls)
{
    *tls = NULL;
    if (cl->tls) {
        char host[128];
        endpoint_host(ep->text, host, sizeof host);
        struct timeval tv = {(time_t)(cl->connect_timeout_ms / 1000),
                             (suseconds_t)(cl->connect_timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        int rc = kvi_tls_connect(tls, cl->tls, fd, host, cl->connect_timeout_ms);
        struct timeval none = {0, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
        if (rc != KV_OK)
            return rc;
    }
    wire l = {fd, *tls};
    int rc = handshake(cl, l, ep->text);
    if (rc != KV_OK) {
        kvi_tls_close(*tls);
        *tls = NULL;
    }
    return rc;
}

/* Makes sure c has a live connection; called with c->lock held. One caller
 * at a time replaces a broken socket; the others wait for it. */
static int ensure_connected(kvi_client *cl, conn *c)
{
    while (c->replacing)
        pthread_cond_wait(&c->state_changed, &c->lock);
    if (c->fd >= 0 && !c->broken)
        return KV_OK;
    c->replacing = 1;
    if (c->fd >= 0) {
        /* Retire the broken socket: wake its reader, wait until it has
         * failed its waiters, then close the fd under send_lock so that no
         * writer still uses the old number. */
        shutdown(c->fd, SHUT_RDWR);
        while (c->reader_running && !c->reader_exited)
            pthread_cond_wait(&c->state_changed, &c->lock);
        if (c->reader_running)
            pthread_join(c->reader, NULL);
        c->reader_running = 0;
        pthread_mutex_lock(&c->send_lock);
        kvi_tls_close(c->tls);
        c->tls = NULL;
        close(c->fd);
        c->fd = -1;
        c->generation++;
        pthread_mutex_unlock(&c->send_lock);
    }
    int rc = KV_EUNAVAILABLE;
    char why[256] = "";
    size_t first = atomic_load(&cl->preferred);
    for (size_t i = 0; i < cl->n_endpoints && c->fd < 0; i++) {
        size_t e = (first + i) % cl->n_endpoints;
        int fd = kvi_connect_from(&cl->endpoints[e], cl->has_source ? &cl->source : NULL,
                                  (int)cl->connect_timeout_ms);
        if (fd < 0) {
            rc = fd;
            snprintf(why, sizeof why, "%s", kv_error_last());
            continue;
        }
        /* A send that cannot progress (a peer that stopped reading, or a
         * paused process) fails after the request timeout instead of
         * blocking its sender for ever; the connection is then replaced. */
        struct timeval tv = {(time_t)(cl->request_timeout_ms / 1000),
                             (suseconds_t)(cl->request_timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        kvi_tls_session *tls = NULL;
        int hrc = secure(cl, fd, &cl->endpoints[e], &tls);
        if (hrc != KV_OK) {
            close(fd);
            rc = hrc;
            /* The probe's messages name the endpoint themselves. */
            const char *text = cl->endpoints[e].text;
            if (strncmp(kv_error_last(), text, strlen(text)) == 0)
                snprintf(why, sizeof why, "%s", kv_error_last());
            else
                snprintf(why, sizeof why, "%s: %s", text, kv_error_last());
            kvi_log(cl->log, KV_LOG_WARN, "handshake with %s failed: %s", text, kv_error_last());
            continue;
        }
        c->reader_exited = 0;
        c->broken = 0;
        c->fd = fd;
        c->tls = tls;
        c->generation++;
        if (pthread_create(&c->reader, NULL, reader_loop, c) != 0) {
            kvi_tls_close(tls);
            c->tls = NULL;
            close(fd);
            c->fd = -1;
            rc = kvi_error(KV_ENOMEM, "cannot start a connection reader");
            snprintf(why, sizeof why, "%s", kv_error_last());
            break;
        }
        c->reader_running = 1;
        atomic_store(&cl->preferred, e);
        /* Gossip opens a connection every round, a client one per handle:
         * only a connection after a failure is worth an operator's line. */
        kvi_log(cl->log, c->failed ? KV_LOG_INFO : KV_LOG_DEBUG, "%s %s",
                c->failed ? "connected again to" : "connected to", cl->endpoints[e].text);
        c->failed = 0;
    }
    c->replacing = 0;
    pthread_cond_broadcast(&c->state_changed);
    if (c->fd >= 0)
        return KV_OK;
    c->failed = 1;
    if (rc == KV_EPERM)
        return kvi_error(KV_EPERM, "authentication refused by %s", why);
    return kvi_error(rc == KV_ETIMEDOUT ? KV_ETIMEDOUT : rc == KV_ENOMEM ? KV_ENOMEM
                                                                          : KV_EUNAVAILABLE,
                     "no node reachable: %s", why);
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

/* The result of one round trip. */
typedef struct reply {
    kvi_frame_header h;
    unsigned char *body;
} reply;

static void waiter_init(waiter *w, kvi_client *cl, kvi_fanout *fo)
{
    memset(w, 0, sizeof *w);
    w->id = atomic_fetch_add(&cl->next_id, 1);
    w->fanout = fo;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
}

/* Registers w on one of cl's connections and sends the frame (whose header
 * is filled in here with w's id). On KV_OK, w is pending or already failed;
 * *sent tells how many bytes went out. Otherwise w was not registered. */
static uint64_t monotonic_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Whether c has had requests in flight and heard nothing for twice the
 * request timeout (a node coordinating a forwarded write may legitimately
 * take up to one timeout); called with c->lock held. */
static int silent_too_long(const kvi_client *cl, const conn *c, uint64_t now)
{
    if (c->inflight == 0)
        return 0;
    uint64_t since = c->busy_since_ms > c->last_rx_ms ? c->busy_since_ms : c->last_rx_ms;
    return now > since && now - since > 2u * (uint64_t)cl->request_timeout_ms;
}

static int send_request(kvi_client *cl, conn **out_conn, waiter *w, kvi_buf *frame,
                        uint8_t opcode, uint16_t extra_flags, size_t *sent)
{
    conn *c = &cl->conns[atomic_fetch_add(&cl->next_conn, 1) % cl->n_conns];
    *out_conn = c;
    *sent = 0;
    kvi_frame_finish(frame, 0, opcode, (uint16_t)(cl->flags | extra_flags), 0, w->id);

    pthread_mutex_lock(&c->lock);
    uint64_t now = monotonic_now_ms();
    if (c->fd >= 0 && !c->broken && silent_too_long(cl, c, now)) {
        kvi_log(cl->log, KV_LOG_WARN, "%s has not answered for %u ms with %u requests in "
                "flight; replacing the connection", cl->endpoints[atomic_load(&cl->preferred)].text,
                2u * cl->request_timeout_ms, c->inflight);
        c->broken = 1;
        c->failed = 1;
    }
    int rc = ensure_connected(cl, c);
    /* Backpressure: a node that falls behind gets no more than
     * max_inflight requests per connection; the sender waits for a slot
     * (up to the request timeout) instead of queueing without bound. */
    struct timespec slot_deadline;
    int have_deadline = 0;
    while (rc == KV_OK && cl->max_inflight && c->inflight >= cl->max_inflight) {
        if (!have_deadline) {
            slot_deadline = kvi_deadline_after(cl->request_timeout_ms);
            have_deadline = 1;
        }
        if (pthread_cond_timedwait(&c->slot_free, &c->lock, &slot_deadline) == ETIMEDOUT &&
            c->inflight >= cl->max_inflight) {
            rc = kvi_error(KV_EUNAVAILABLE, "%u requests already in flight to the node for "
                                            "%u ms; this one was not sent", c->inflight,
                           cl->request_timeout_ms);
            break;
        }
        rc = ensure_connected(cl, c);
    }
    if (rc != KV_OK) {
        pthread_mutex_unlock(&c->lock);
        return rc;
    }
    wire fd = {c->fd, c->tls};
    uint64_t generation = c->generation;
    w->next = c->pending;
    c->pending = w;
    if (c->inflight++ == 0)
        c->busy_since_ms = now;
    pthread_mutex_unlock(&c->lock);

    pthread_mutex_lock(&c->send_lock);
    /* If the socket was replaced meanwhile, fd may name another one now. */
    int send_failed = c->generation != generation ||
                      send_full(fd, frame->data, frame->len, sent) != 0;
    pthread_mutex_unlock(&c->send_lock);

    if (send_failed) {
        pthread_mutex_lock(&c->lock);
        if (c->generation == generation) {
            c->broken = 1;
            c->failed = 1;
            shutdown(fd.fd, SHUT_RDWR); /* the reader fails the waiters */
        }
        pthread_mutex_unlock(&c->lock);
    }
    return KV_OK;
}

/* Takes w off its connection if it is still pending (its caller gives up);
 * called with c->lock held. */
static void cancel(conn *c, waiter *w)
{
    waiter **pp = &c->pending;
    while (*pp && *pp != w)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = w->next;
        released(c);
    }
}

/* What a call that got no answer means. */
static int no_answer(const kvi_client *cl, const waiter *w, size_t sent, int is_write,
                     int *retryable)
{
    if (w->broken) {
        /* Nothing sent, or a read: trying again on a new connection is safe. */
        if (sent == 0 || !is_write) {
            *retryable = 1;
            return kvi_error(KV_EUNAVAILABLE, "the connection to the node broke");
        }
        return kvi_error(KV_EUNKNOWN_OUTCOME, "the connection broke after the write "
                                              "was sent; it may or may not have applied");
    }
    if (is_write)
        return kvi_error(KV_EUNKNOWN_OUTCOME, "no answer within %u ms; the write may or "
                                              "may not have applied", cl->request_timeout_ms);
    return kvi_error(KV_ETIMEDOUT, "no answer within %u ms", cl->request_timeout_ms);
}

/* Sends the frame and waits for its response. is_write decides what a lost
 * answer means. */
static int round_trip_once(kvi_client *cl, kvi_buf *frame, uint8_t opcode, int is_write,
                           reply *out, int *retryable)
{
    *retryable = 0;
    waiter w;
    waiter_init(&w, cl, NULL);
    conn *c;
    size_t sent;
    int rc = send_request(cl, &c, &w, frame, opcode, 0, &sent);
    if (rc != KV_OK) {
        pthread_cond_destroy(&w.cond);
        return rc;
    }
    struct timespec deadline = kvi_deadline_after(cl->request_timeout_ms);
    pthread_mutex_lock(&c->lock);
    while (!w.done) {
        if (pthread_cond_timedwait(&w.cond, &c->lock, &deadline) == ETIMEDOUT && !w.done) {
            cancel(c, &w);
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    pthread_cond_destroy(&w.cond);

    if (w.done && !w.broken) {
        out->h = w.h;
        out->body = w.body;
        return KV_OK;
    }
    return no_answer(cl, &w, sent, is_write, retryable);
}

static int round_trip(kvi_client *cl, kvi_buf *frame, uint8_t opcode, int is_write, reply *out)
{
    int retryable;
    int rc = round_trip_once(cl, frame, opcode, is_write, out, &retryable);
    if (rc != KV_OK && retryable)
        rc = round_trip_once(cl, frame, opcode, is_write, out, &retryable);
    return rc;
}

/* Decodes a reply; an error frame's status and message become the result. */
static int decode_reply(kvi_response *resp, const reply *r, uint8_t opcode)
{
    if (r->h.opcode != opcode ||
        kvi_response_decode(resp, opcode, r->h.status, r->body, r->h.body_len) != 0)
        return kvi_error(KV_EIO, "malformed response from the node");
    if (resp->status != KV_OK)
        return kvi_error(resp->status, "%.*s", (int)(resp->message.len > 400 ? 400 : resp->message.len),
                         (const char *)resp->message.data);
    return KV_OK;
}

/* ------------------------------------------------------------ lifecycle */

int kvi_client_open(kvi_client **out, const char *const *endpoints, size_t count,
                    const kv_client_options *o, const kvi_logger *log)
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
    kvi_client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return kvi_error(KV_ENOMEM, "out of memory opening a client");
    cl->log = log;
    cl->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    cl->request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms : DEFAULT_REQUEST_TIMEOUT_MS;
    cl->n_conns = o->connections_per_node ? o->connections_per_node : 1;
    cl->endpoints = calloc(count, sizeof *cl->endpoints);
    cl->conns = calloc(cl->n_conns, sizeof *cl->conns);
    if (!cl->endpoints || !cl->conns) {
        free(cl->endpoints);
        free(cl->conns);
        free(cl);
        return kvi_error(KV_ENOMEM, "out of memory opening a client");
    }
    cl->n_endpoints = count;
    for (size_t i = 0; i < count; i++) {
        int rc = kvi_addr_parse(&cl->endpoints[i], endpoints[i]);
        if (rc != KV_OK) {
            free(cl->endpoints);
            free(cl->conns);
            free(cl);
            return rc;
        }
    }
    if (o->auth_token && !kvi_auth_token_valid(o->auth_token)) {
        free(cl->endpoints);
        free(cl->conns);
        free(cl);
        return kvi_error(KV_EINVAL, "client options: auth_token must be 1..%u characters of "
                                    "letters, digits and - . _ ~ + / (then any '=')",
                         KVI_AUTH_MAX_CREDENTIAL);
    }
    if (o->tls || o->tls_ca_pem || o->tls_cert_pem) {
        int trc = kvi_tls_new(&cl->own_tls, 0, o->tls_cert_pem, o->tls_key_pem, o->tls_ca_pem);
        if (trc != KV_OK) {
            free(cl->endpoints);
            free(cl->conns);
            free(cl);
            return kvi_error(trc, "client options: %s", kv_error_last());
        }
        cl->tls = cl->own_tls;
    }
    if (o->auth_token && kvi_client_set_credentials(cl, NULL, 0, o->auth_token) != KV_OK) {
        kvi_tls_free(cl->own_tls);
        free(cl->endpoints);
        free(cl->conns);
        free(cl);
        return KV_ENOMEM;
    }
    atomic_init(&cl->next_id, 1);
    for (unsigned i = 0; i < cl->n_conns; i++) {
        conn *c = &cl->conns[i];
        c->client = cl;
        c->fd = -1;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->state_changed, NULL);
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_cond_init(&c->slot_free, &attr);
        pthread_condattr_destroy(&attr);
        pthread_mutex_init(&c->send_lock, NULL);
    }
    *out = cl;
    return KV_OK;
}

void kvi_client_close(kvi_client *cl)
{
    if (!cl)
        return;
    for (unsigned i = 0; i < cl->n_conns; i++) {
        conn *c = &cl->conns[i];
        if (c->fd >= 0)
            shutdown(c->fd, SHUT_RDWR);
        if (c->reader_running)
            pthread_join(c->reader, NULL);
        kvi_tls_close(c->tls);
        if (c->fd >= 0)
            close(c->fd);
        /* The reader has exited and failed (or freed) every waiter. */
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->state_changed);
        pthread_cond_destroy(&c->slot_free);
        pthread_mutex_destroy(&c->send_lock);
    }
    free(cl->conns);
    free(cl->endpoints);
    kvi_client_set_credentials(cl, NULL, 0, NULL);
    kvi_tls_free(cl->own_tls);
    free(cl);
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

static void fill_write(kvi_request *req, const kv_write_options *o)
{
    if (!o)
        return;
    req->ttl_s = o->ttl_s;
    req->consistency = (uint8_t)o->consistency;
    req->quorum = (uint8_t)o->w;
    req->context.data = o->context;
    req->context.len = o->context ? o->context_len : 0;
}

/* Encodes req into a new frame, runs it, decodes the reply into resp. The
 * reply body (which resp points into) is returned for the caller to free. */
static int call(kvi_client *cl, const kvi_request *req, int is_write, kvi_response *resp,
                unsigned char **body)
{
    kvi_buf frame = {0};
    kvi_frame_begin(&frame);
    kvi_request_encode(&frame, req);
    reply r = {0};
    int rc = frame.failed ? kvi_error(KV_ENOMEM, "out of memory encoding a request")
                          : round_trip(cl, &frame, req->opcode, is_write, &r);
    kvi_buf_free(&frame);
    if (rc == KV_OK)
        rc = decode_reply(resp, &r, req->opcode);
    *body = r.body;
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
    fill_write(&req, opts);
    kvi_response resp;
    unsigned char *body = NULL;
    int rc = call(cl, &req, 1, &resp, &body);
    if (rc == KV_OK && out_version)
        *out_version = resp.version;
    free(body);
    return rc;
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
        const void *data[KVI_MAX_WIRE_SIBLINGS];
        size_t len[KVI_MAX_WIRE_SIBLINGS];
        for (uint32_t i = 0; i < resp.sibling_count; i++) {
            kvi_bytes sib = kvi_response_next_sibling(&resp);
            data[i] = sib.data;
            len[i] = sib.len;
        }
        *out = kvi_value_new_siblings(data, len, resp.sibling_count, resp.version,
                                      resp.expiry_ms, resp.context.data, resp.context.len);
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
    fill_write(&req, opts);
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
    fill_write(&req, opts);
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
    fill_write(&req, wopts);
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
    reply r = {0};
    int rc;
    if (frame.failed)
        rc = kvi_error(KV_ENOMEM, "out of memory encoding a batch");
    else if (frame.len - KVI_FRAME_HEADER > KVI_FRAME_MAX_BODY_LIMIT)
        rc = kvi_error(KV_ETOOBIG, "the batch encodes to %zu bytes, over the frame limit",
                       frame.len);
    else
        rc = round_trip(cl, &frame, KVI_OP_BATCH, has_writes, &r);
    kvi_buf_free(&frame);
    kvi_response resp;
    if (rc == KV_OK)
        rc = decode_reply(&resp, &r, KVI_OP_BATCH);
    if (rc == KV_OK && resp.batch_count != b->count)
        rc = kvi_error(KV_EIO, "the node answered %u results for %zu operations",
                       resp.batch_count, b->count);
    for (size_t i = 0; rc == KV_OK && i < b->count; i++) {
        kvi_batch_outcome o;
        kvi_response_next_outcome(&resp, &o);
        kvi_batch_op *op = &b->ops[i];
        op->status = o.status;
        op->version = o.version;
        if (op->kind == KV_BATCH_GET && o.status == KV_OK) {
            op->result = kvi_value_new(o.value.data, o.value.len, o.version, o.expiry_ms);
            if (!op->result)
                rc = kvi_error(KV_ENOMEM, "out of memory copying a batch result");
        }
    }
    if (rc != KV_OK)
        for (size_t i = 0; i < b->count; i++)
            b->ops[i].status = rc;
    free(r.body);
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

/* Counts a call that completed without going through a connection. */
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

struct kvi_call {
    kvi_client *cl;
    conn *c;
    waiter w;
    size_t sent;
    int is_write;
    int start_rc; /* KV_OK once sent (or at least registered) */
    kvi_call_after_fn after;
    void *after_ctx;
};

kvi_call *kvi_call_start_raw(kvi_client *cl, kvi_fanout *fo, uint8_t opcode,
                             const void *body, size_t body_len, uint16_t extra_flags,
                             int is_write)
{
    kvi_call *call = calloc(1, sizeof *call);
    if (!call) {
        fanout_count(fo, 0);
        return NULL;
    }
    call->cl = cl;
    call->is_write = is_write;
    waiter_init(&call->w, cl, fo);
    call->w.owner = call;
    kvi_buf frame = {0};
    kvi_frame_begin(&frame);
    kvi_buf_raw(&frame, body, body_len);
    if (frame.failed)
        call->start_rc = kvi_error(KV_ENOMEM, "out of memory encoding a request");
    else
        call->start_rc = send_request(cl, &call->c, &call->w, &frame, opcode, extra_flags,
                                      &call->sent);
    kvi_buf_free(&frame);
    if (call->start_rc != KV_OK)
        fanout_count(fo, 0);
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

/* Frees a call, telling its after-function how it ended. */
static void call_end(kvi_call *call, int delivered)
{
    if (call->after)
        call->after(call->after_ctx, delivered);
    pthread_cond_destroy(&call->w.cond);
    free(call);
}

void kvi_call_set_after(kvi_call *call, kvi_call_after_fn fn, void *ctx)
{
    if (!call) {
        fn(ctx, 0);
        return;
    }
    call->after = fn;
    call->after_ctx = ctx;
}

int kvi_call_done(kvi_call *call)
{
    if (!call || call->start_rc != KV_OK)
        return 1;
    pthread_mutex_lock(&call->c->lock);
    int done = call->w.done;
    pthread_mutex_unlock(&call->c->lock);
    return done;
}

int kvi_call_finish(kvi_call *call, kvi_frame_header *h, unsigned char **body)
{
    *body = NULL;
    if (!call)
        return kvi_error(KV_ENOMEM, "out of memory starting a request");
    int rc = call->start_rc;
    if (rc == KV_OK) {
        pthread_mutex_lock(&call->c->lock);
        if (!call->w.done) {
            /* Not answered yet: leave it on the connection, abandoned, so
             * that it keeps its in-flight slot until the node answers. From
             * here the connection owns the call. */
            call->w.abandoned = 1;
            call->w.fanout = NULL;
            int retryable;
            rc = no_answer(call->cl, &call->w, call->sent, call->is_write, &retryable);
            pthread_mutex_unlock(&call->c->lock);
            return rc;
        }
        pthread_mutex_unlock(&call->c->lock);
        if (!call->w.broken) {
            *h = call->w.h;
            *body = call->w.body;
        } else {
            int retryable;
            rc = no_answer(call->cl, &call->w, call->sent, call->is_write, &retryable);
        }
    }
    call_end(call, rc == KV_OK && !call->w.broken && call->w.h.status == KV_OK);
    return rc;
}

int kvi_call_decode(kvi_response *resp, uint8_t opcode, const kvi_frame_header *h,
                    const unsigned char *body)
{
    reply r = {*h, (unsigned char *)body};
    return decode_reply(resp, &r, opcode);
}

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

uint64_t kvi_client_last_answer_ms(kvi_client *cl)
{
    return atomic_load(&cl->last_answer_ms);
}

uint32_t kvi_client_timeout_ms(const kvi_client *cl)
{
    return cl->request_timeout_ms;
}

/* Whether the peer has closed the socket (or it failed), without waiting:
 * a killed process's kernel closes its sockets at once, before the reader
 * thread may have noticed. */
static int peer_closed(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

int kvi_client_connect(kvi_client *cl)
{
    int rc = KV_EUNAVAILABLE;
    for (unsigned i = 0; i < cl->n_conns && rc != KV_OK; i++) {
        conn *c = &cl->conns[i];
        pthread_mutex_lock(&c->lock);
        if (c->fd >= 0 && !c->broken && !c->replacing && peer_closed(c->fd)) {
            c->broken = 1; /* ensure_connected replaces it */
            shutdown(c->fd, SHUT_RDWR);
        }
        rc = ensure_connected(cl, c);
        pthread_mutex_unlock(&c->lock);
    }
    return rc;
}
