/* net/http.c - the HTTP/JSON server on libmicrohttpd: daemon set-up, per-connection state, bounded body buffering and responses. */
#include "net/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "format/value.h"
#include "net/addr.h"
#include "net/http_routes.h"
#include "util/error.h"

#define CONNECTION_LIMIT 4096u
#define CONNECTION_TIMEOUT_S 60u
/* A body refused while it comes in (over its limit, or a request already
 * answered with an error) is read and dropped, so that a client that sends
 * it all before reading gets the answer on a connection it can keep. This
 * bounds that waste: at most this much past the body limit, about half a
 * second of a 1 Gbit/s link, on top of what a request within the limit
 * costs anyway. It covers the usual mistakes (a value a few times too big:
 * 64 MiB is 45 default PUT bodies, 4 batch bodies); a body declared bigger
 * is answered at once, and one that grows past it is cut off. */
#define DISCARD_MAX (64u * 1024u * 1024u)
/* Buffers above this are freed when their request completes, so that an
 * idle keep-alive connection holds little memory. */
#define KEEP_BUFFER (64u * 1024u)
/* GnuTLS priority string of the HTTPS server (see kvi_http_start). */
#define TLS_PRIORITIES "NORMAL:-VERS-TLS1.0:-VERS-TLS1.1"
/* Sent when the response itself could not be built (out of memory). */
static const char oom_body[] =
    "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"out of memory\"}}\n";
static const char json_type[] = "application/json";

/* ----------------------------------------------------------- MHD hooks */

/* MHD_OPTION_UNESCAPE_CALLBACK: leave the URL and query as they came.
 * MHD would otherwise decode them in place, and a %00 would cut the key
 * short; http_routes.c decodes with lengths instead. */
static size_t unescape_nothing(void *cls, struct MHD_Connection *mc, char *s)
{
    (void)cls;
    (void)mc;
    return strlen(s);
}

/* MHD_OPTION_EXTERNAL_LOGGER: the library never prints, so MHD's messages
 * go to the application's log callback. They are mostly about misbehaving
 * clients, hence INFO rather than WARN. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    kvi_http *h = cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = 0;
    /* The first is the cause (say, GnuTLS refusing the key); the ones
     * after are MHD giving up because of it. */
    if (pthread_equal(pthread_self(), h->starter) && !h->daemon && !h->start_msg[0])
        snprintf(h->start_msg, sizeof h->start_msg, "%.*s", (int)sizeof h->start_msg - 1, msg);
    if (h->log.fn && h->log.level >= KV_LOG_INFO)
        kvi_log(&h->log, KV_LOG_INFO, "http: %s", msg);
}

/* MHD_OPTION_NOTIFY_CONNECTION: one kvi_http_conn per TCP connection. */
static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)mc;
    kvi_http *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        kvi_http_conn *c = calloc(1, sizeof *c);
        if (c)
            c->server = h;
        /* NULL makes the first request close the connection (see
         * on_request), which is all we can do without memory. */
        *socket_context = c;
        return;
    }
    kvi_http_conn *c = *socket_context;
    if (c) {
        kvi_buf_free(&c->key);
        kvi_buf_free(&c->context);
        kvi_buf_free(&c->cursor);
        kvi_buf_free(&c->body);
        kvi_buf_free(&c->out);
        free(c);
    }
    *socket_context = NULL;
}

/* ------------------------------------------------- asynchronous operations */

static void async_unref(kvi_http_async *a)
{
    if (atomic_fetch_sub(&a->refs, 1) == 1)
        kvi_http_async_free(a);
}

/* The connection lets go of its request's operation state. */
static void async_release(kvi_http_conn *c)
{
    if (c->async)
        async_unref(c->async);
    c->async = NULL;
}

kvi_http_async *kvi_http_async_begin(kvi_http_conn *c)
{
    kvi_http *h = c->server;
    kvi_http_async *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    pthread_mutex_lock(&h->async_lock);
    int stopping = h->stopping;
    if (!stopping)
        h->async_live++;
    pthread_mutex_unlock(&h->async_lock);
    if (stopping) {
        free(a);
        return NULL;
    }
    a->server = h;
    a->mc = c->mc;
    atomic_init(&a->state, KVI_HTTP_ASYNC_RUNNING);
    atomic_init(&a->refs, 2); /* the connection's and the completion's */
    c->async = a;
    return a;
}

/* Runs once per operation, on the thread that ended it (a node's peers
 * loop), or inside the start call. Stores the result, then resumes the
 * connection if its handler has suspended it; if not, the handler sees
 * DONE and answers without suspending (on_request). */
void kvi_http_async_done(void *ctx, kvi_http_result *r)
{
    kvi_http_async *a = ctx;
    kvi_http *h = a->server;
    a->rc = r->rc;
    a->version = r->version;
    a->value = r->value;
    r->value = NULL;
    a->json = r->json;
    a->json_len = r->json_len;
    r->json = NULL;
    snprintf(a->message, sizeof a->message, "%s", r->message ? r->message : "");
    /* The connection stays suspended, so open, until it is resumed here:
     * a->mc is valid. */
    if (atomic_exchange(&a->state, KVI_HTTP_ASYNC_DONE) == KVI_HTTP_ASYNC_SUSPENDED)
        MHD_resume_connection(a->mc);
    async_unref(a);
    /* Last, and under the lock: kvi_http_stop may stop MHD and free h as
     * soon as the count is 0. */
    pthread_mutex_lock(&h->async_lock);
    if (--h->async_live == 0)
        pthread_cond_broadcast(&h->async_idle);
    pthread_mutex_unlock(&h->async_lock);
}

static void shrink(kvi_buf *b)
{
    if (b->cap > KEEP_BUFFER)
        kvi_buf_free(b);
    else
        kvi_buf_reset(b);
}

/* The consistency level of the request's operation, for its latency. */
static kvi_metric_level metric_level(const kvi_http_conn *c)
{
    switch (c->mop) {
    case KVI_MOP_GET: return kvi_metric_level_of(c->ropts.consistency);
    case KVI_MOP_OTHER: return KVI_LEVEL_NONE;
    default: return kvi_metric_level_of(c->wopts.consistency);
    }
}

/* MHD_OPTION_NOTIFY_COMPLETED: the request is over (answered, or the
 * client went away). Called before the connection's own close notice. */
static void on_completed(void *cls, struct MHD_Connection *mc, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)mc;
    (void)toe;
    kvi_http *h = cls;
    kvi_http_conn *c = *req_cls;
    *req_cls = NULL;
    if (!c)
        return;
    /* A request ends before its answer was built when the client hung up
     * as its operation's result came (MHD saw the reset on resuming). A
     * suspended connection is never closed: MHD does not watch it, and
     * kvi_http_stop waits for every operation first. */
    async_release(c);
    if (c->active && !c->answered)
        /* Never answered: the client hung up or timed out mid-request. */
        kvi_metrics_record(h->metrics, KVI_PROTO_HTTP, c->mop, metric_level(c), KV_EINVAL,
                           kvi_metrics_now_ns() - c->start_ns);
    c->active = 0;
    shrink(&c->key);
    shrink(&c->body);
    shrink(&c->out);
}

/* ------------------------------------------------------------ requests */

static void begin_request(kvi_http_conn *c, struct MHD_Connection *mc)
{
    c->mc = mc;
    c->async = NULL;
    c->active = 1;
    c->answered = 0;
    c->start_ns = kvi_metrics_now_ns();
    c->mop = KVI_MOP_OTHER;
    c->route = KVI_HTTP_ROUTE_NONE;
    c->method = KVI_HTTP_OTHER;
    c->wants_body = 0;
    c->body_seen = 0;
    c->ropts = (kv_read_options)KV_READ_OPTIONS_INIT;
    c->wopts = (kv_write_options)KV_WRITE_OPTIONS_INIT;
    c->policy = KVI_HTTP_POLICY_OWN;
    c->force_base64 = 0;
    c->status = 0;
    c->kv_status = KV_OK;
    c->content_type = NULL;
    c->allow = NULL;
    c->challenge = NULL;
    c->csp = NULL;
    kvi_buf_reset(&c->key);
    kvi_buf_reset(&c->context);
    kvi_buf_reset(&c->cursor);
    c->limit = 0;
    c->keys_only = 0;
    c->t_ms = -1;
    c->timeout_ms = 0;
    kvi_buf_reset(&c->body);
    kvi_buf_reset(&c->out);
}

/* Queues the decided answer. The body stays in c->out, which is not touched
 * again before the request completes, so MHD sends it without a copy. */
static enum MHD_Result respond(kvi_http_conn *c, struct MHD_Connection *mc)
{
    kvi_http *h = c->server;
    const void *data = c->out.data;
    size_t len = c->out.len;
    const char *type = c->content_type;
    unsigned status = c->status;
    /* Every JSON answer ends with a newline, as curl users and line-based
     * tools expect; the handlers build the bodies without it. */
    if (type && strcmp(type, json_type) == 0 && !c->out.failed &&
        (c->out.len == 0 || c->out.data[c->out.len - 1] != '\n')) {
        kvi_buf_u8(&c->out, '\n');
        data = c->out.data;
        len = c->out.len;
    }
    if (c->out.failed) {
        data = oom_body;
        len = sizeof oom_body - 1;
        type = json_type;
        status = 500;
        c->kv_status = KV_ENOMEM;
    }
    c->answered = 1;
    kvi_metrics_record(h->metrics, KVI_PROTO_HTTP, c->mop, metric_level(c), c->kv_status,
                       kvi_metrics_now_ns() - c->start_ns);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)data, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    enum MHD_Result ok = MHD_YES;
    if (type && MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type) != MHD_YES)
        ok = MHD_NO;
    if (c->allow && MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, c->allow) != MHD_YES)
        ok = MHD_NO;
    if (c->challenge &&
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, c->challenge) != MHD_YES)
        ok = MHD_NO;
    if (c->csp &&
        MHD_add_response_header(r, "Content-Security-Policy", c->csp) != MHD_YES)
        ok = MHD_NO;
    if (ok == MHD_YES)
        ok = MHD_queue_response(mc, status, r);
    MHD_destroy_response(r);
    return ok;
}

/* The declared Content-Length, or -1 when there is none (chunked upload)
 * or it is unreadable (MHD has already refused malformed ones). */
static int64_t content_length(struct MHD_Connection *mc)
{
    const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!v || !*v)
        return -1;
    uint64_t n = 0;
    for (; *v; v++) {
        if (*v < '0' || *v > '9' || n > (UINT64_MAX - 9) / 10)
            return -1;
        n = n * 10 + (uint64_t)(*v - '0');
    }
    return n > INT64_MAX ? INT64_MAX : (int64_t)n;
}

/* Whether an answer decided from the headers alone (an error) goes out
 * before the body is read. MHD then closes the connection after it, and a
 * close with unread bytes resets the connection, so a client still sending
 * (Python's http.client, requests: most clients send the whole body before
 * they read) would lose the answer in a broken pipe. So it goes out at once
 * only to a client that waits for "100 Continue" before sending the body,
 * which then never sends it, or when the declared body is past what we are
 * willing to discard. Otherwise the body is read, dropped by take_upload,
 * and the answer comes after it. */
static int answer_before_body(const kvi_http_conn *c, struct MHD_Connection *mc,
                              const char *version, int64_t declared)
{
    if (declared >= 0 && (uint64_t)declared > (uint64_t)c->body_limit + DISCARD_MAX)
        return 1;
    /* An HTTP/1.0 client's Expect is ignored (RFC 7231 5.1.1; MHD sends it
     * no 100 Continue either), so it sends the body without waiting. */
    const char *expect = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_EXPECT);
    return expect && strcasecmp(expect, "100-continue") == 0 &&
           strcmp(version, MHD_HTTP_VERSION_1_1) == 0;
}

/* Takes one piece of the upload. Bytes are kept only while the request
 * wants them and they fit the limit; a body past the limit is answered
 * 413 without ever being held whole. */
static enum MHD_Result take_upload(kvi_http_conn *c, const char *data, size_t n)
{
    c->body_seen += n;
    if (c->status) {
        /* Answer decided (an error): drop the body, within reason. Past
         * that the connection is cut without the answer, since MHD 0.9.75
         * cannot queue one while a body is still coming in. */
        return c->body_seen > (uint64_t)c->body_limit + DISCARD_MAX ? MHD_NO : MHD_YES;
    }
    if (c->body_seen > c->body_limit) {
        shrink(&c->body);
        kvi_http_error(c, 413, "TOO_BIG", KV_ETOOBIG,
                       "the request body is over the limit of %zu bytes", c->body_limit);
        return MHD_YES;
    }
    if (c->wants_body) {
        kvi_buf_raw(&c->body, data, n);
        if (c->body.failed) {
            shrink(&c->body);
            kvi_http_error(c, 500, "INTERNAL", KV_ENOMEM, "out of memory buffering the body");
        }
    }
    return MHD_YES;
}

/* The request's operation is in flight or has ended. Suspends the
 * connection until it ends, or answers from its result. MHD allows
 * suspending only here, and resuming from anywhere; so suspend first, then
 * claim the SUSPENDED state: if the completion ran in between, it saw
 * RUNNING and resumed nothing, and the resume is ours to make. MHD then
 * calls the handler again, which finds DONE. */
static enum MHD_Result async_wait(kvi_http_conn *c, struct MHD_Connection *mc)
{
    kvi_http_async *a = c->async;
    if (atomic_load(&a->state) != KVI_HTTP_ASYNC_DONE) {
        MHD_suspend_connection(mc);
        int running = KVI_HTTP_ASYNC_RUNNING;
        if (!atomic_compare_exchange_strong(&a->state, &running, KVI_HTTP_ASYNC_SUSPENDED))
            MHD_resume_connection(mc);
        return MHD_YES;
    }
    kvi_http_result r = {.rc = a->rc, .message = a->message, .version = a->version,
                         .value = a->value, .json = a->json, .json_len = a->json_len};
    a->value = NULL;
    a->json = NULL;
    kvi_http_finish(c, &r);
    async_release(c);
    return respond(c, mc);
}

/* MHD's access handler, called several times per request: once when the
 * headers are in, once per piece of the body, and once at the end. */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size,
                                  void **req_cls)
{
    (void)cls;
    kvi_http_conn *c = *req_cls;
    if (!c) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        c = ci ? ci->socket_context : NULL;
        if (!c)
            return MHD_NO;
        *req_cls = c;
        begin_request(c, mc);
        kvi_http_route_request(c, mc, url, method);
        int64_t declared = content_length(mc);
        if (declared > (int64_t)c->body_limit && !c->status)
            kvi_http_error(c, 413, "TOO_BIG", KV_ETOOBIG,
                           "the request body is %lld bytes, the limit is %zu",
                           (long long)declared, c->body_limit);
        if (c->status && answer_before_body(c, mc, version, declared))
            return respond(c, mc);
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        return take_upload(c, upload_data, n);
    }
    if (c->answered)
        return MHD_YES;
    if (!c->status) {
        kvi_http_handle(c);
        if (c->async)
            return async_wait(c, mc);
    } else if (c->async) {
        return async_wait(c, mc); /* called again: resumed */
    }
    return respond(c, mc);
}

/* ------------------------------------------------------------- the API */

/* Copies the host part of "HOST:PORT" or "[V6]:PORT" (brackets kept). */
static void host_part(char *out, size_t out_len, const char *addr)
{
    const char *end = addr[0] == '[' ? strchr(addr, ']') : strrchr(addr, ':');
    size_t n = end ? (size_t)(end - addr) + (addr[0] == '[') : strlen(addr);
    snprintf(out, out_len, "%.*s", (int)n, addr);
}

/* RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" )
 * *"=". Anything else could not be sent as one token in the header. */
static int is_b64token(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n && ((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') ||
                     (s[i] >= '0' && s[i] <= '9') || (s[i] && strchr("-._~+/", s[i]))))
        i++;
    if (i == 0)
        return 0;
    while (i < n && s[i] == '=')
        i++;
    return i == n;
}

/* Overwrites a secret before its memory goes back to the allocator; the
 * volatile stores cannot be dropped as dead. */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *b = p;
    while (n--)
        *b++ = 0;
}

/* Copies and checks cfg's tokens. Errors never quote a token: it is a
 * secret, and error messages end up in logs. */
static int copy_tokens(kvi_http *h, const kvi_http_config *cfg)
{
    if (cfg->n_tokens == 0)
        return KV_OK;
    if (!cfg->tokens)
        return kvi_error(KV_EINVAL, "kvi_http_start: n_tokens is %zu but tokens is NULL",
                         cfg->n_tokens);
    h->tokens = calloc(cfg->n_tokens, sizeof *h->tokens);
    if (!h->tokens)
        return kvi_error(KV_ENOMEM, "out of memory starting the HTTP server");
    h->n_tokens = cfg->n_tokens;
    for (size_t i = 0; i < cfg->n_tokens; i++) {
        const char *t = cfg->tokens[i];
        size_t n = t ? strlen(t) : 0;
        if (n == 0)
            return kvi_error(KV_EINVAL, "HTTP token %zu is %s", i, t ? "empty" : "NULL");
        if (n > KVI_HTTP_TOKEN_MAX)
            return kvi_error(KV_EINVAL, "HTTP token %zu is over %u bytes", i, KVI_HTTP_TOKEN_MAX);
        if (!is_b64token(t, n))
            return kvi_error(KV_EINVAL,
                             "HTTP token %zu is not an RFC 6750 token (A-Z a-z 0-9 - . _ ~ + /, "
                             "then any '=')", i);
        h->tokens[i].text = malloc(n);
        if (!h->tokens[i].text)
            return kvi_error(KV_ENOMEM, "out of memory starting the HTTP server");
        memcpy(h->tokens[i].text, t, n);
        h->tokens[i].len = n;
    }
    return KV_OK;
}

/* Copies cfg's certificate and key, checking what can be checked before
 * GnuTLS parses them. */
static int copy_tls(kvi_http *h, const kvi_http_config *cfg)
{
    const char *cert = cfg->tls_cert_pem, *key = cfg->tls_key_pem;
    if (!cert && !key)
        return KV_OK;
    if (!cert || !key)
        return kvi_error(KV_EINVAL, "HTTPS needs both tls_cert_pem and tls_key_pem (%s is missing)",
                         cert ? "the key" : "the certificate");
    if (!*cert || !*key)
        return kvi_error(KV_EINVAL, "HTTPS: %s is empty", *cert ? "tls_key_pem" : "tls_cert_pem");
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
        return kvi_error(KV_ENOTSUP, "HTTPS: this libmicrohttpd was built without TLS support");
    h->tls_cert = strdup(cert);
    h->tls_key = strdup(key);
    if (!h->tls_cert || !h->tls_key)
        return kvi_error(KV_ENOMEM, "out of memory starting the HTTP server");
    return KV_OK;
}

/* Frees a server whose daemon is stopped or was never started. */
static void free_server(kvi_http *h)
{
    free(h->tls_cert);
    if (h->tls_key)
        wipe(h->tls_key, strlen(h->tls_key));
    free(h->tls_key);
    for (size_t i = 0; h->tokens && i < h->n_tokens; i++) {
        if (h->tokens[i].text)
            wipe(h->tokens[i].text, h->tokens[i].len);
        free(h->tokens[i].text);
    }
    free(h->tokens);
    if (h->own_metrics)
        kvi_metrics_free(h->metrics);
    pthread_mutex_destroy(&h->async_lock);
    pthread_cond_destroy(&h->async_idle);
    free(h);
}

/* The error of a failed MHD_start_daemon; frees h. The port in use is the
 * one failure errno tells apart. With TLS on, any other is taken for GnuTLS
 * refusing the certificate or key, by far the likeliest (MHD checks them
 * after binding the port), and MHD's own message says which. */
static int start_failed(kvi_http *h, const char *where, int e)
{
    char msg[sizeof h->start_msg];
    snprintf(msg, sizeof msg, "%s", h->start_msg);
    int tls = h->tls_cert != NULL;
    free_server(h);
    if (e == EADDRINUSE)
        return kvi_error(KV_EBUSY, "cannot start the HTTP server on %s: %s", where, strerror(e));
    if (tls)
        return kvi_error(KV_EINVAL,
                         "cannot start the HTTPS server on %s: the certificate or key was "
                         "refused (%s)", where,
                         msg[0] ? msg : "not PEM, or a key that does not match the certificate");
    return kvi_error(KV_EIO, "cannot start the HTTP server on %s: %s", where,
                     e ? strerror(e) : msg[0] ? msg : "libmicrohttpd refused");
}

int kvi_http_start(kvi_http **out, const kvi_http_config *cfg)
{
    if (!out)
        return kvi_error(KV_EINVAL, "kvi_http_start: out is NULL");
    *out = NULL;
    if (!cfg || !cfg->ops || !cfg->listen_addr)
        return kvi_error(KV_EINVAL, "kvi_http_start: ops and listen address are required");
    kvi_addr addr;
    int rc = kvi_addr_parse(&addr, cfg->listen_addr);
    if (rc != KV_OK)
        return rc;
    kvi_http *h = calloc(1, sizeof *h);
    if (!h)
        return kvi_error(KV_ENOMEM, "out of memory starting the HTTP server");
    pthread_mutex_init(&h->async_lock, NULL);
    pthread_cond_init(&h->async_idle, NULL);
    h->ops = cfg->ops;
    h->ops_ctx = cfg->ops_ctx;
    h->policies = cfg->policies;
    if (cfg->log)
        h->log = *cfg->log;
    h->metrics = cfg->metrics;
    h->describe = cfg->describe;
    h->describe_ctx = cfg->describe_ctx;
    h->hotkeys = cfg->hotkeys;
    h->predict = cfg->predict;
    h->status_async = cfg->status_async;
    if (!h->metrics) {
        h->metrics = kvi_metrics_new();
        h->own_metrics = 1;
        if (!h->metrics) {
            free_server(h);
            return kvi_error(KV_ENOMEM, "out of memory starting the HTTP server");
        }
    }
    rc = copy_tokens(h, cfg);
    if (rc == KV_OK)
        rc = copy_tls(h, cfg);
    if (rc != KV_OK) {
        free_server(h);
        return rc;
    }
    h->max_key_size = cfg->max_key_size ? cfg->max_key_size : KV_DEFAULT_MAX_KEY_SIZE;
    h->max_value_size = cfg->max_value_size ? cfg->max_value_size : KV_DEFAULT_MAX_VALUE_SIZE;
    /* A value travels base64 at worst (4/3), plus the rest of the JSON. */
    h->body_limit = ((size_t)h->max_value_size + 2) / 3 * 4 + KVI_HTTP_BODY_SLACK;
    h->batch_limit = h->body_limit > KVI_HTTP_BATCH_BODY ? h->body_limit : KVI_HTTP_BATCH_BODY;
    snprintf(h->node_id, sizeof h->node_id, "%s", cfg->node_id ? cfg->node_id : "");

    unsigned threads = cfg->threads < 2 ? 2 : cfg->threads;
    /* The request line and headers live in MHD's per-connection pool: make
     * room for a key percent-encoded at three characters a byte, so an
     * oversize key gets our 413 rather than MHD's own refusal. */
    size_t pool = (size_t)h->max_key_size * 3 + 16 * 1024;
    if (pool < 32 * 1024)
        pool = 32 * 1024;
    /* Suspend and resume: for the operations that run asynchronously
     * (kvi_http_ops), resumed through MHD's inter-thread channel.
     *
     * poll(), not epoll: libmicrohttpd 0.9.75's epoll loop (Debian 12's)
     * takes at most 128 events per epoll_wait and, when it gets exactly
     * 128, waits again with the full timeout before serving them. With no
     * further event on that thread, 128 ready requests sat unanswered until
     * the connection timeout (60 s): seen in CI with 300 simultaneous
     * connections, and made certain by net.http's
     * exactly_128_ready_connections. poll() has no such batch. */
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (addr.sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* In an array, to leave them out without TLS (MHD logs HTTPS options
     * given without MHD_USE_TLS). The priorities are MHD's default, GnuTLS's
     * NORMAL, without TLS 1.0 and 1.1, which RFC 8996 retires. */
    struct MHD_OptionItem tls_options[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    if (h->tls_cert)
        flags |= MHD_USE_TLS;
    else
        tls_options[0].option = MHD_OPTION_END;
    h->starter = pthread_self();
    errno = 0;
    /* The logger comes first so that no message of the start itself reaches
     * MHD's default logger, which prints to stderr. No
     * MHD_OPTION_LISTENING_ADDRESS_REUSE: its SO_REUSEPORT would let a
     * second server share the port silently instead of failing. */
    h->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
        MHD_OPTION_UNESCAPE_CALLBACK, unescape_nothing, NULL,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr.sa,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)threads,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned int)CONNECTION_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
        MHD_OPTION_ARRAY, tls_options,
        MHD_OPTION_END);
    if (!h->daemon)
        return start_failed(h, addr.text, errno);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;

    char host[128];
    host_part(host, sizeof host, cfg->listen_addr);
    snprintf(h->http_address, sizeof h->http_address, "%s:%d", host, h->port);
    if (cfg->binary_addr && cfg->binary_port > 0) {
        /* The configured address may say port 0; the real port wins. */
        host_part(host, sizeof host, cfg->binary_addr);
        snprintf(h->address, sizeof h->address, "%s:%d", host, cfg->binary_port);
    } else if (cfg->binary_addr) {
        snprintf(h->address, sizeof h->address, "%s", cfg->binary_addr);
    }
    if (!h->node_id[0])
        snprintf(h->node_id, sizeof h->node_id, "%s", h->http_address);
    kvi_log(&h->log, KV_LOG_INFO, "http: serving %s on %s with %u threads%s",
            h->tls_cert ? "HTTPS" : "HTTP", h->http_address, threads,
            h->n_tokens ? ", bearer tokens required" : "");
    *out = h;
    return KV_OK;
}

int kvi_http_port(const kvi_http *h)
{
    return h ? h->port : 0;
}

void kvi_http_stop(kvi_http *h)
{
    if (!h)
        return;
    /* MHD must not stop with a connection suspended: wait for the
     * operations in flight (each ends within its own timeout) to resume
     * theirs. Requests that come meanwhile run the blocking operations. */
    pthread_mutex_lock(&h->async_lock);
    h->stopping = 1;
    while (h->async_live)
        pthread_cond_wait(&h->async_idle, &h->async_lock);
    pthread_mutex_unlock(&h->async_lock);
    /* Joins the workers and closes every connection, which frees each
     * kvi_http_conn through on_connection. */
    MHD_stop_daemon(h->daemon);
    free_server(h);
}
