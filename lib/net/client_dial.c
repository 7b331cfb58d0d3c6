/*
 * net/client_dial.c - a client connection's setup: TCP connect, TLS, and the
 * first exchanges (the cluster secret's proof, a client token, or a PING
 * that shows whether the endpoint is a libkv node at all).
 *
 * It blocks, with timeouts, so the client runs it on a short-lived thread
 * of its own (as libcurl resolves names on one) and hands the ready socket
 * to its event loop; connections are made rarely, requests often.
 */
#define _GNU_SOURCE
#include "net/client_dial.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "net/auth.h"
#include "format/frame.h"
#include "format/message.h"
#include "util/error.h"

/* A connection's socket, and its TLS session if it has one. */
typedef struct wire {
    int fd;
    kvi_tls_session *tls;
} wire;

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
static int exchange(const kvi_dial *d, wire fd, const char *endpoint, uint64_t id, uint8_t opcode,
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
                             d->request_timeout_ms)
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
static int handshake(const kvi_dial *d, wire fd, const char *endpoint)
{
    if (!d->secret_len && !d->token && !d->probe)
        return KV_OK;
    struct timeval tv = {(time_t)(d->request_timeout_ms / 1000),
                         (suseconds_t)(d->request_timeout_ms % 1000) * 1000};
    setsockopt(fd.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    kvi_buf req = {0}, auth = {0};
    unsigned char *body = NULL;
    size_t body_len = 0;
    int rc = KV_OK;
    /* The first exchange carries PROBE_ID: without credentials, a PING. */
    uint64_t id = PROBE_ID;
    if (d->secret_len) {
        unsigned char nonce_c[KVI_AUTH_NONCE];
        rc = kvi_auth_hello(&req, nonce_c);
        if (rc == KV_OK)
            rc = exchange(d, fd, endpoint, id, KVI_OP_HELLO, &req, &body, &body_len);
        if (rc == KV_OK)
            rc = kvi_auth_answer(&auth, d->secret, d->secret_len, nonce_c, body, body_len);
        id = PROBE_ID + 1; /* any id: the connection is fresh */
    } else if (d->token) {
        kvi_auth_token_body(&auth, d->token);
    }
    free(body);
    body = NULL;
    if (rc == KV_OK && auth.failed)
        rc = kvi_error(KV_ENOMEM, "out of memory in the handshake");
    if (rc == KV_OK)
        rc = d->secret_len || d->token
                 ? exchange(d, fd, endpoint, id, KVI_OP_AUTH, &auth, &body, &body_len)
                 : exchange(d, fd, endpoint, id, KVI_OP_PING, &req, &body, &body_len);
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
static int secure(const kvi_dial *d, int fd, const kvi_addr *ep, kvi_tls_session **tls)
{
    *tls = NULL;
    if (d->tls) {
        char host[128];
        endpoint_host(ep->text, host, sizeof host);
        struct timeval tv = {(time_t)(d->connect_timeout_ms / 1000),
                             (suseconds_t)(d->connect_timeout_ms % 1000) * 1000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        int rc = kvi_tls_connect(tls, d->tls, fd, host, d->connect_timeout_ms);
        struct timeval none = {0, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
        if (rc != KV_OK)
            return rc;
    }
    wire l = {fd, *tls};
    int rc = handshake(d, l, ep->text);
    if (rc != KV_OK) {
        kvi_tls_close(*tls);
        *tls = NULL;
    }
    return rc;
}


int kvi_dial_connect(kvi_dial_result *out, const kvi_dial *d, size_t first)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    int rc = KV_EUNAVAILABLE;
    char why[256] = "";
    for (size_t i = 0; i < d->n_endpoints; i++) {
        size_t e = (first + i) % d->n_endpoints;
        int fd = kvi_connect_from(&d->endpoints[e], d->source, (int)d->connect_timeout_ms);
        if (fd < 0) {
            rc = fd;
            snprintf(why, sizeof why, "%s", kvi_error_last());
            continue;
        }
        if (d->on_socket)
            d->on_socket(d->on_socket_ctx, fd);
        kvi_tls_session *tls = NULL;
        int hrc = secure(d, fd, &d->endpoints[e], &tls);
        if (d->on_socket)
            d->on_socket(d->on_socket_ctx, -1);
        if (hrc != KV_OK) {
            close(fd);
            rc = hrc;
            /* The probe's messages name the endpoint themselves. */
            const char *text = d->endpoints[e].text;
            if (strncmp(kvi_error_last(), text, strlen(text)) == 0)
                snprintf(why, sizeof why, "%s", kvi_error_last());
            else
                snprintf(why, sizeof why, "%s: %s", text, kvi_error_last());
            kvi_log(d->log, KV_LOG_WARN, "handshake with %s failed: %s", text, kvi_error_last());
            continue;
        }
        out->fd = fd;
        out->tls = tls;
        out->endpoint = e;
        return KV_OK;
    }
    if (rc == KV_EPERM)
        rc = KV_EPERM;
    else if (rc != KV_ETIMEDOUT && rc != KV_ENOMEM)
        rc = KV_EUNAVAILABLE;
    out->status = rc;
    snprintf(out->why, sizeof out->why, rc == KV_EPERM ? "authentication refused by %s"
                                                       : "no node reachable: %s", why);
    return rc;
}
