/* net/etcd.c - the etcd v3 client over the JSON gateway (see net/etcd.h):
 * the HTTP calls with their failover between endpoints, and the session
 * and watch threads. The URL, bodies and answers are net/etcd_json.c's. */
#include "net/etcd.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kv/kv.h>
#include "net/etcd_json.h"
#include "util/error.h"
#include "util/ticker.h"

#define DEFAULT_TIMEOUT_MS 2000u
#define LIST_PAGE 512
#define WATCH_BACKOFF_MIN_MS 100u
#define WATCH_BACKOFF_MAX_MS 2000u
#define SESSION_MIN_TTL 2u
#define SESSION_MAX_TTL 3600u

typedef struct endpoint {
    char *name; /* "host:port" ("[v6]:port"), for messages */
    char *url;  /* "http://host:port" */
} endpoint;

/* What cuts a background thread's transfers short. The thread runs them in
 * its own multi handle; close sets stop, then wakes the multi handle, and
 * the thread checks stop after every wait, so it ends within one loop turn
 * instead of curl's idle poll (up to a second). */
typedef struct bg_cancel {
    CURLM *multi;
    atomic_int stop;
} bg_cancel;

typedef struct etcd_session {
    kvi_etcd *e;
    bg_cancel cancel;
    kvi_ticker ticker;
    char *key; /* PREFIX/key */
    size_t key_len;
    unsigned char *value;
    size_t value_len;
    uint32_t ttl_s;
    atomic_int alive;
    /* The thread's alone (and close's, once the thread has ended). */
    int64_t lease;  /* 0: none granted yet, or lost */
    int need_put;   /* the key is not yet put under lease */
    int down;       /* "unreachable" was logged; "answers again" is due */
} etcd_session;

typedef struct etcd_watch {
    kvi_etcd *e;
    bg_cancel cancel;
    kvi_ticker ticker;
    char *key; /* PREFIX/key */
    size_t key_len;
    kvi_etcd_watch_fn fn;
    void *ctx;
    /* The thread's alone. */
    int64_t last_rev;     /* revision of the last change given to fn */
    int have_value;       /* the last change given was a put */
    uint32_t backoff_ms;  /* before the next reconnection */
    size_t next_ep;       /* the endpoint to try first */
    int down;             /* as in etcd_session */
    /* The stream of the transfer in progress. */
    kvi_buf stream;
    kvi_etcd_splitter split;
    int created;          /* etcd confirmed the watch */
    char failure[384];    /* why the write callback ended the stream */
} etcd_watch;

struct kvi_etcd {
    endpoint ep[KVI_ETCD_MAX_ENDPOINTS];
    size_t n;
    char *prefix; /* "/a/b": a leading '/', none trailing */
    size_t prefix_len;
    char *describe;
    uint32_t timeout_ms;
    const kvi_logger *log;
    atomic_size_t preferred; /* the endpoint that answered last */
    pthread_mutex_t lock;    /* guards session and watch */
    etcd_session *session;
    etcd_watch *watch;
};

/* ----------------------------------------------------------- transfers */

/* An answer being received, bounded. */
typedef struct answer {
    kvi_buf body;
    int too_big;
} answer;

static size_t on_answer(char *data, size_t size, size_t n, void *ctx)
{
    answer *a = ctx;
    size_t len = size * n;
    if (len > KVI_ETCD_MAX_ANSWER - a->body.len) {
        a->too_big = 1;
        return 0;
    }
    kvi_buf_raw(&a->body, data, len);
    return a->body.failed ? 0 : len;
}

static int on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    bg_cancel *c = ctx;
    return c && atomic_load(&c->stop) ? 1 : 0;
}

/* One POST being made: the easy handle and what it points to, which must
 * live as long as the transfer. */
typedef struct request {
    CURL *h;
    char url[KVI_ETCD_MAX_HOST + 64];
    char type[32];
    char expect[8];
    struct curl_slist headers[2];
    char errbuf[CURL_ERROR_SIZE];
} request;

/* Sets r up to POST body to endpoint i's path, the answer going to
 * write(ctx). stream: no overall timeout (a watch), TCP keepalives. */
static int request_init(request *r, const kvi_etcd *e, size_t i, const char *path,
                        const kvi_buf *body, curl_write_callback write, void *ctx,
                        bg_cancel *cancel, int stream)
{
    memset(r, 0, sizeof *r);
    snprintf(r->url, sizeof r->url, "%s%s", e->ep[i].url, path);
    strcpy(r->type, "Content-Type: application/json");
    /* No "Expect: 100-continue" wait before a larger body. */
    strcpy(r->expect, "Expect:");
    r->headers[0].data = r->type;
    r->headers[0].next = &r->headers[1];
    r->headers[1].data = r->expect;
    r->headers[1].next = NULL;
    r->h = curl_easy_init();
    if (!r->h)
        return kvi_error(KV_ENOMEM, "%s: cannot make a curl handle", e->describe);
    CURL *h = r->h;
    int ok = curl_easy_setopt(h, CURLOPT_URL, r->url) == CURLE_OK &&
#if LIBCURL_VERSION_NUM >= 0x075500
             curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http") == CURLE_OK &&
#else
             curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTP) == CURLE_OK &&
#endif
             curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_NOPROXY, "*") == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_POST, 1L) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)body->data) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len) ==
                 CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_HTTPHEADER, r->headers) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)e->timeout_ms) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_WRITEDATA, ctx) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_XFERINFODATA, cancel) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_NOPROGRESS, cancel ? 0L : 1L) == CURLE_OK;
    if (ok && !stream)
        ok = curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)e->timeout_ms) == CURLE_OK;
    if (ok && stream)
        ok = curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L) == CURLE_OK &&
             curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L) == CURLE_OK;
    if (!ok) {
        curl_easy_cleanup(h);
        r->h = NULL;
        return kvi_error(KV_EIO, "%s: cannot set up a curl handle", e->describe);
    }
    return KV_OK;
}

/* Runs r's transfer to its end: on the calling thread (c NULL), or through
 * c's multi handle, so that close can cut it short (CURLE_ABORTED_BY_CALLBACK). */
static CURLcode perform(request *r, bg_cancel *c)
{
    if (!c)
        return curl_easy_perform(r->h);
    if (atomic_load(&c->stop))
        return CURLE_ABORTED_BY_CALLBACK;
    if (curl_multi_add_handle(c->multi, r->h) != CURLM_OK) {
        snprintf(r->errbuf, sizeof r->errbuf, "curl_multi_add_handle failed");
        return CURLE_FAILED_INIT;
    }
    CURLcode result = CURLE_OK;
    for (;;) {
        int running, left;
        CURLMcode mc = curl_multi_perform(c->multi, &running);
        CURLMsg *m;
        int done = 0;
        while ((m = curl_multi_info_read(c->multi, &left)) != NULL) {
            if (m->msg == CURLMSG_DONE && m->easy_handle == r->h) {
                result = m->data.result;
                done = 1;
            }
        }
        if (done)
            break;
        if (atomic_load(&c->stop)) {
            result = CURLE_ABORTED_BY_CALLBACK;
            break;
        }
        if (mc == CURLM_OK)
            mc = curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
        if (mc != CURLM_OK) {
            snprintf(r->errbuf, sizeof r->errbuf, "curl multi: %s", curl_multi_strerror(mc));
            result = CURLE_RECV_ERROR;
            break;
        }
    }
    curl_multi_remove_handle(c->multi, r->h);
    return result;
}

/* The status for an error etcd answered (not one to try elsewhere). */
static int status_of(int code, const char *msg)
{
    if (strstr(msg, "too large") || strstr(msg, "larger than max"))
        return KV_ETOOBIG;
    switch (code) {
    case KVI_GRPC_NOT_FOUND: return KV_ENOTFOUND;
    case KVI_GRPC_INVALID_ARGUMENT: return KV_EINVAL;
    case KVI_GRPC_PERMISSION_DENIED:
    case KVI_GRPC_UNAUTHENTICATED: return KV_EPERM;
    default: return KV_EIO;
    }
}

/* The request cannot have reached etcd, so a write may go elsewhere: the
 * connection failed, or not a byte of the request was sent. */
static int never_sent(CURLcode cc, long request_size)
{
    return cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
           request_size == 0;
}

/*
 * POSTs body to path, trying the endpoints in turn from start (SIZE_MAX:
 * the one that answered last), each attempt within the timeout. write: the
 * request is not idempotent, so it moves on only when it cannot have been
 * applied (see net/etcd.h). KV_OK with the 200 answer in *out (the
 * caller frees it) and the endpoint in *answered (may be NULL); else the
 * status, the message naming the handle and the last error.
 */
static int call(kvi_etcd *e, const char *path, const kvi_buf *body, int write, bg_cancel *c,
                size_t start, kvi_buf *out, size_t *answered)
{
    char last[512] = "no endpoint was tried";
    size_t first = (start == SIZE_MAX ? atomic_load(&e->preferred) : start) % e->n;
    memset(out, 0, sizeof *out);
    for (size_t k = 0; k < e->n; k++) {
        size_t i = (first + k) % e->n;
        const char *name = e->ep[i].name;
        answer ans = {{0}, 0};
        request r;
        int rc = request_init(&r, e, i, path, body, on_answer, &ans, c, 0);
        if (rc != KV_OK)
            return rc;
        CURLcode cc = perform(&r, c);
        long http = 0, sent = 0;
        if (curl_easy_getinfo(r.h, CURLINFO_RESPONSE_CODE, &http) != CURLE_OK)
            http = 0;
        if (curl_easy_getinfo(r.h, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK)
            sent = 1; /* unknown: assume it went out */
        curl_easy_cleanup(r.h);
        if (c && atomic_load(&c->stop)) {
            kvi_buf_free(&ans.body);
            return kvi_error(KV_ECLOSED, "%s: the handle is closing", e->describe);
        }
        if (ans.too_big || ans.body.failed) {
            kvi_buf_free(&ans.body);
            if (!ans.too_big)
                return kvi_error(KV_ENOMEM, "%s: out of memory reading an answer", e->describe);
            return kvi_error(KV_EIO, "%s: %s answered %s with more than %u bytes", e->describe,
                             name, path, KVI_ETCD_MAX_ANSWER);
        }
        if (cc != CURLE_OK) {
            kvi_buf_free(&ans.body);
            snprintf(last, sizeof last, "%s: %s", name,
                     r.errbuf[0] ? r.errbuf : curl_easy_strerror(cc));
            if (write && !never_sent(cc, sent))
                return kvi_error(KV_EUNKNOWN_OUTCOME,
                                 "%s: %s; the write was sent and may or may not have been "
                                 "applied",
                                 e->describe, last);
            continue;
        }
        if (http == 200) {
            atomic_store(&e->preferred, i);
            if (answered)
                *answered = i;
            *out = ans.body;
            return KV_OK;
        }
        int code;
        char msg[256];
        rc = kvi_etcd_parse_error(&code, msg, sizeof msg, (const char *)ans.body.data,
                                  ans.body.len);
        kvi_buf_free(&ans.body);
        if (rc != KV_OK) {
            /* Not etcd's answer: something else on that port, or a proxy. */
            snprintf(last, sizeof last, "%s: HTTP %ld, not an etcd answer", name, http);
            if (http < 500)
                return kvi_error(KV_EIO, "%s: %s", e->describe, last);
            if (write)
                return kvi_error(KV_EUNKNOWN_OUTCOME,
                                 "%s: %s; the write may or may not have been applied",
                                 e->describe, last);
            continue;
        }
        snprintf(last, sizeof last, "%s: HTTP %ld: %s (gRPC code %d)", name, http, msg, code);
        int elsewhere = code == KVI_GRPC_UNAVAILABLE ||
                        (code == KVI_GRPC_RESOURCE_EXHAUSTED && !strstr(msg, "larger than max"));
        /* "no leader" and "too many requests" are said before anything is
         * proposed; "request timed out" after. */
        if (elsewhere && write && code == KVI_GRPC_UNAVAILABLE && !strstr(msg, "no leader"))
            return kvi_error(KV_EUNKNOWN_OUTCOME,
                             "%s: %s; the write may or may not have been applied",
                             e->describe, last);
        if (!elsewhere)
            return kvi_error(status_of(code, msg), "%s: %s", e->describe, last);
    }
    return kvi_error(KV_EUNAVAILABLE, "%s: no endpoint answered (last: %s)", e->describe, last);
}

/* PREFIX "/" key, NUL-terminated; NULL when out of memory. */
static char *full_key(const kvi_etcd *e, const char *key, size_t *len)
{
    size_t klen = strlen(key);
    char *k = malloc(e->prefix_len + 1 + klen + 1);
    if (!k)
        return NULL;
    memcpy(k, e->prefix, e->prefix_len);
    k[e->prefix_len] = '/';
    memcpy(k + e->prefix_len + 1, key, klen + 1);
    *len = e->prefix_len + 1 + klen;
    return k;
}

/* A range request and its parsed answer (freed by the caller on KV_OK). */
static int read_range(kvi_etcd *e, const kvi_buf *body, bg_cancel *c, size_t start,
                      size_t *answered, kvi_etcd_range *out)
{
    kvi_buf ans;
    memset(out, 0, sizeof *out);
    int rc = call(e, "/v3/kv/range", body, 0, c, start, &ans, answered);
    if (rc == KV_OK) {
        rc = kvi_etcd_parse_range(out, (const char *)ans.data, ans.len);
        if (rc != KV_OK)
            rc = kvi_error(rc, "%s: %s", e->describe, kvi_error_last());
    }
    kvi_buf_free(&ans);
    return rc;
}

/* Reads one key (full name): KV_OK with *out (maybe no kvs); the caller
 * frees it. */
static int read_key(kvi_etcd *e, const char *k, size_t klen, bg_cancel *c, size_t start,
                    size_t *answered, kvi_etcd_range *out)
{
    kvi_buf body = {0};
    int rc = kvi_etcd_body_range(&body, k, klen, NULL, 0, 0, 0);
    if (rc == KV_OK)
        rc = read_range(e, &body, c, start, answered, out);
    kvi_buf_free(&body);
    if (rc != KV_OK)
        return rc;
    int other = out->count > 1 ||
                (out->count == 1 &&
                 (out->kvs[0].key_len != klen || memcmp(out->kvs[0].key, k, klen) != 0));
    if (other) {
        kvi_etcd_range_free(out);
        return kvi_error(KV_EIO, "%s: a read of %.200s answered another key", e->describe, k);
    }
    return rc;
}

/* --------------------------------------------------------------- handle */

int kvi_etcd_open(kvi_etcd **out, const kvi_etcd_config *cfg)
{
    if (!out)
        return kvi_error(KV_EINVAL, "kvi_etcd_open: out is NULL");
    *out = NULL;
    if (!cfg)
        return kvi_error(KV_EINVAL, "kvi_etcd_open: no configuration");
    kvi_etcd *e = calloc(1, sizeof *e);
    if (!e)
        return kvi_error(KV_ENOMEM, "out of memory opening an etcd handle");
    e->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : DEFAULT_TIMEOUT_MS;
    e->log = cfg->log;
    atomic_init(&e->preferred, 0);
    kvi_etcd_url url;
    int rc = kvi_etcd_parse_url(&url, cfg->url);
    if (rc == KV_OK) {
        /* Taken over: freed with the handle. */
        e->n = url.n;
        e->prefix = url.prefix;
        e->prefix_len = strlen(url.prefix);
        kvi_buf d = {0};
        kvi_buf_raw(&d, "etcd at ", 8);
        for (size_t i = 0; i < e->n; i++) {
            e->ep[i].name = url.endpoint[i];
            e->ep[i].url = malloc(strlen(url.endpoint[i]) + 8);
            if (e->ep[i].url)
                sprintf(e->ep[i].url, "http://%s", url.endpoint[i]);
            else
                d.failed = 1;
            if (i)
                kvi_buf_raw(&d, ",", 1);
            kvi_buf_raw(&d, e->ep[i].name, strlen(e->ep[i].name));
        }
        kvi_buf_raw(&d, " prefix ", 8);
        kvi_buf_raw(&d, e->prefix, e->prefix_len + 1);
        if (d.failed) {
            kvi_buf_free(&d);
            rc = kvi_error(KV_ENOMEM, "out of memory opening an etcd handle");
        } else {
            e->describe = (char *)d.data;
        }
    }
    /* Reference-counted, and thread-safe from libcurl 7.84 on (built with
     * CURL_VERSION_THREADSAFE, as Debian's is), so handles can be opened and
     * closed from any threads. */
    if (rc == KV_OK && curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        rc = kvi_error(KV_EIO, "%s: curl_global_init failed", e->describe);
    if (rc != KV_OK) {
        for (size_t i = 0; i < e->n; i++) {
            free(e->ep[i].name);
            free(e->ep[i].url);
        }
        free(e->prefix);
        free(e->describe);
        free(e);
        return rc;
    }
    pthread_mutex_init(&e->lock, NULL);
    *out = e;
    return KV_OK;
}

static void session_stop(kvi_etcd *e, etcd_session *s);
static void watch_stop(etcd_watch *w);

void kvi_etcd_close(kvi_etcd *e)
{
    if (!e)
        return;
    if (e->watch)
        watch_stop(e->watch);
    if (e->session)
        session_stop(e, e->session);
    for (size_t i = 0; i < e->n; i++) {
        free(e->ep[i].name);
        free(e->ep[i].url);
    }
    free(e->prefix);
    free(e->describe);
    pthread_mutex_destroy(&e->lock);
    free(e);
    curl_global_cleanup();
}

const char *kvi_etcd_describe(const kvi_etcd *e)
{
    return e ? e->describe : "etcd (no handle)";
}

/* ---------------------------------------------------------------- calls */

int kvi_etcd_get(kvi_etcd *e, const char *key, kvi_buf *value, int64_t *mod_revision)
{
    if (mod_revision)
        *mod_revision = 0;
    if (!e || !key || !*key)
        return kvi_error(KV_EINVAL, "etcd get: %s", e ? "the key is empty" : "no handle");
    size_t klen;
    char *k = full_key(e, key, &klen);
    if (!k)
        return kvi_error(KV_ENOMEM, "out of memory reading from etcd");
    kvi_etcd_range r;
    int rc = read_key(e, k, klen, NULL, SIZE_MAX, NULL, &r);
    if (rc == KV_OK) {
        if (r.count == 0) {
            rc = kvi_error(KV_ENOTFOUND, "%s: no key %.200s", e->describe, key);
        } else {
            if (value) {
                kvi_buf_raw(value, r.kvs[0].value, r.kvs[0].value_len);
                if (value->failed)
                    rc = kvi_error(KV_ENOMEM, "out of memory reading from etcd");
            }
            if (rc == KV_OK && mod_revision)
                *mod_revision = r.kvs[0].mod_revision;
        }
        kvi_etcd_range_free(&r);
    }
    free(k);
    return rc;
}

int kvi_etcd_put_if(kvi_etcd *e, const char *key, const void *value, size_t len,
                    int64_t expect_mod_revision, int64_t *new_revision)
{
    if (new_revision)
        *new_revision = 0;
    if (!e || !key || !*key || (!value && len) || expect_mod_revision < 0)
        return kvi_error(KV_EINVAL, "etcd put_if: %s",
                         !e                        ? "no handle"
                         : !key || !*key           ? "the key is empty"
                         : expect_mod_revision < 0 ? "the expected mod_revision is negative"
                                                   : "the value is NULL");
    size_t klen;
    char *k = full_key(e, key, &klen);
    if (!k)
        return kvi_error(KV_ENOMEM, "out of memory writing to etcd");
    kvi_buf body = {0}, ans = {0};
    int rc = kvi_etcd_body_put_if(&body, k, klen, value ? value : "", len, expect_mod_revision);
    if (rc == KV_OK)
        rc = call(e, "/v3/kv/txn", &body, 1, NULL, SIZE_MAX, &ans, NULL);
    kvi_etcd_txn t;
    if (rc == KV_OK) {
        rc = kvi_etcd_parse_txn(&t, (const char *)ans.data, ans.len);
        if (rc != KV_OK)
            rc = kvi_error(rc, "%s: %s (the write may or may not have been applied)",
                           e->describe, kvi_error_last());
    }
    if (rc == KV_OK && t.succeeded) {
        if (new_revision)
            *new_revision = t.revision;
    } else if (rc == KV_OK) {
        if (expect_mod_revision == 0)
            rc = kvi_error(KV_ECONFLICT, "%s: key %.200s already exists (mod_revision %" PRId64
                                         ")",
                           e->describe, key, t.current_mod_revision);
        else if (t.current_mod_revision == 0)
            rc = kvi_error(KV_ECONFLICT, "%s: key %.200s does not exist (mod_revision 0), not "
                                         "at mod_revision %" PRId64 " as expected",
                           e->describe, key, expect_mod_revision);
        else
            rc = kvi_error(KV_ECONFLICT, "%s: key %.200s has mod_revision %" PRId64
                                         ", not %" PRId64 " as expected",
                           e->describe, key, t.current_mod_revision, expect_mod_revision);
    }
    kvi_buf_free(&body);
    kvi_buf_free(&ans);
    free(k);
    return rc;
}

int kvi_etcd_list(kvi_etcd *e, const char *key_prefix, kvi_etcd_list_fn each, void *ctx)
{
    if (!e || !key_prefix || !each)
        return kvi_error(KV_EINVAL, "etcd list: %s",
                         !e ? "no handle" : !key_prefix ? "no key prefix" : "no callback");
    size_t flen;
    char *from = full_key(e, key_prefix, &flen);
    unsigned char *end = from ? malloc(flen) : NULL;
    kvi_buf cursor = {0}, body = {0};
    int rc = KV_OK;
    if (!end) {
        free(from);
        return kvi_error(KV_ENOMEM, "out of memory listing etcd keys");
    }
    /* Never 0: the key starts with '/'. */
    size_t end_len = kvi_etcd_prefix_end(end, (const unsigned char *)from, flen);
    kvi_buf_raw(&cursor, from, flen);
    int64_t revision = 0;
    for (;;) {
        kvi_etcd_range r;
        kvi_buf_reset(&body);
        if (cursor.failed) {
            rc = kvi_error(KV_ENOMEM, "out of memory listing etcd keys");
            break;
        }
        rc = kvi_etcd_body_range(&body, cursor.data, cursor.len, end, end_len, LIST_PAGE,
                                 revision);
        if (rc == KV_OK)
            rc = read_range(e, &body, NULL, SIZE_MAX, NULL, &r);
        if (rc != KV_OK)
            break;
        if (revision == 0)
            revision = r.revision; /* the later pages read this snapshot */
        for (size_t i = 0; i < r.count && rc == KV_OK; i++) {
            const kvi_etcd_kv *kv = &r.kvs[i];
            if (kv->key_len < flen || memcmp(kv->key, from, flen) != 0) {
                rc = kvi_error(KV_EIO, "%s: a listing of %.200s answered a key outside it",
                               e->describe, key_prefix);
            } else if (!memchr(kv->key, 0, kv->key_len)) {
                rc = each(ctx, (const char *)kv->key + e->prefix_len + 1, kv->value,
                          kv->value_len);
            }
        }
        int more = r.more && r.count > 0;
        if (more) {
            /* The next page starts just after the last key: key "\0". */
            kvi_buf_reset(&cursor);
            kvi_buf_raw(&cursor, r.kvs[r.count - 1].key, r.kvs[r.count - 1].key_len);
            kvi_buf_u8(&cursor, 0);
        }
        kvi_etcd_range_free(&r);
        if (rc != KV_OK || !more)
            break;
    }
    kvi_buf_free(&cursor);
    kvi_buf_free(&body);
    free(end);
    free(from);
    return rc;
}

/* -------------------------------------------------------------- session */

/* A lease call (grant, keepalive) and its parsed answer. */
static int lease_call(etcd_session *s, const char *path, int64_t id, int64_t ttl,
                      kvi_etcd_lease *out)
{
    kvi_etcd *e = s->e;
    kvi_buf body = {0}, ans = {0};
    int rc = kvi_etcd_body_lease(&body, id, ttl);
    if (rc == KV_OK)
        rc = call(e, path, &body, 0, &s->cancel, SIZE_MAX, &ans, NULL);
    if (rc == KV_OK) {
        rc = kvi_etcd_parse_lease(out, (const char *)ans.data, ans.len);
        if (rc != KV_OK)
            rc = kvi_error(rc, "%s: %s", e->describe, kvi_error_last());
    }
    kvi_buf_free(&body);
    kvi_buf_free(&ans);
    return rc;
}

/* One turn of the session: keep the lease alive, or grant a new one and
 * put the key under it. */
static int session_refresh(etcd_session *s)
{
    kvi_etcd *e = s->e;
    kvi_etcd_lease l;
    int rc;
    if (s->lease != 0) {
        rc = lease_call(s, "/v3/lease/keepalive", s->lease, 0, &l);
        if (rc == KV_ENOTFOUND)
            l.ttl = 0; /* etcd 3.4 answers TTL 0 instead, but may say so */
        else if (rc != KV_OK)
            return rc;
        if (l.ttl <= 0) {
            kvi_log(e->log, KV_LOG_INFO,
                    "%s: the lease %" PRId64 " of session key %.200s is gone (expired while "
                    "etcd was away); granting a new one",
                    e->describe, s->lease, s->key);
            s->lease = 0;
        }
    }
    if (s->lease == 0) {
        rc = lease_call(s, "/v3/lease/grant", 0, s->ttl_s, &l);
        if (rc != KV_OK)
            return rc;
        if (l.id <= 0)
            return kvi_error(KV_EIO, "%s: a lease grant answered no lease ID", e->describe);
        s->lease = l.id;
        s->need_put = 1;
    }
    if (s->need_put) {
        kvi_buf body = {0}, ans = {0};
        rc = kvi_etcd_body_put(&body, s->key, s->key_len, s->value, s->value_len, s->lease);
        if (rc == KV_OK)
            rc = call(e, "/v3/kv/put", &body, 0, &s->cancel, SIZE_MAX, &ans, NULL);
        kvi_buf_free(&body);
        kvi_buf_free(&ans);
        if (rc == KV_ENOTFOUND)
            s->lease = 0; /* the lease went between the grant and the put */
        if (rc != KV_OK)
            return rc;
        s->need_put = 0;
    }
    return KV_OK;
}

static uint32_t session_tick(void *ctx)
{
    etcd_session *s = ctx;
    kvi_etcd *e = s->e;
    int rc = session_refresh(s);
    if (atomic_load(&s->cancel.stop))
        return 0;
    uint32_t period = s->ttl_s * 1000u / 3u;
    if (rc == KV_OK) {
        atomic_store(&s->alive, 1);
        if (s->down)
            kvi_log(e->log, KV_LOG_INFO, "%s: session key %.200s: etcd answers again",
                    e->describe, s->key);
        s->down = 0;
        return period;
    }
    atomic_store(&s->alive, 0);
    if (!s->down)
        kvi_log(e->log, KV_LOG_WARN, "session key %.200s: %s (retrying)", s->key,
                kvi_error_last());
    s->down = 1;
    return period < 1000u ? period : 1000u;
}

int kvi_etcd_session_start(kvi_etcd *e, const char *key, const void *value, size_t len,
                           uint32_t ttl_s)
{
    if (!e || !key || !*key || (!value && len) || ttl_s < SESSION_MIN_TTL ||
        ttl_s > SESSION_MAX_TTL)
        return kvi_error(KV_EINVAL, "etcd session: %s",
                         !e                ? "no handle"
                         : !key || !*key   ? "the key is empty"
                         : !value && len   ? "the value is NULL"
                                           : "the TTL must be 2..3600 seconds");
    pthread_mutex_lock(&e->lock);
    if (e->session) {
        pthread_mutex_unlock(&e->lock);
        return kvi_error(KV_EINVAL, "%s: a session already runs on this handle", e->describe);
    }
    etcd_session *s = calloc(1, sizeof *s);
    int rc = KV_OK;
    if (s) {
        s->e = e;
        s->ttl_s = ttl_s;
        s->value_len = len;
        s->key = full_key(e, key, &s->key_len);
        s->value = malloc(len ? len : 1);
        s->cancel.multi = curl_multi_init();
        atomic_init(&s->cancel.stop, 0);
        atomic_init(&s->alive, 0);
    }
    if (!s || !s->key || !s->value || !s->cancel.multi) {
        rc = kvi_error(KV_ENOMEM, "out of memory starting an etcd session");
    } else {
        if (len)
            memcpy(s->value, value, len);
        e->session = s;
        if (kvi_ticker_start(&s->ticker, session_tick, s) != 0) {
            kvi_ticker_stop(&s->ticker);
            e->session = NULL;
            rc = kvi_error(KV_EIO, "%s: cannot start the session's thread", e->describe);
        }
    }
    if (rc != KV_OK && s) {
        if (s->cancel.multi)
            curl_multi_cleanup(s->cancel.multi);
        free(s->key);
        free(s->value);
        free(s);
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

int kvi_etcd_session_alive(kvi_etcd *e)
{
    if (!e)
        return 0;
    pthread_mutex_lock(&e->lock);
    int alive = e->session ? atomic_load(&e->session->alive) : 0;
    pthread_mutex_unlock(&e->lock);
    return alive;
}

static void session_stop(kvi_etcd *e, etcd_session *s)
{
    atomic_store(&s->cancel.stop, 1);
    curl_multi_wakeup(s->cancel.multi);
    kvi_ticker_stop(&s->ticker);
    if (s->lease != 0) {
        /* The key goes now rather than when the lease expires. */
        kvi_buf body = {0}, ans = {0};
        int rc = kvi_etcd_body_lease(&body, s->lease, 0);
        if (rc == KV_OK)
            rc = call(e, "/v3/lease/revoke", &body, 0, NULL, SIZE_MAX, &ans, NULL);
        if (rc != KV_OK && rc != KV_ENOTFOUND)
            kvi_log(e->log, KV_LOG_INFO,
                    "session key %.200s: the lease could not be revoked (%s); the key goes "
                    "when it expires",
                    s->key, kvi_error_last());
        kvi_buf_free(&body);
        kvi_buf_free(&ans);
    }
    curl_multi_cleanup(s->cancel.multi);
    free(s->key);
    free(s->value);
    free(s);
    e->session = NULL;
}

/* ---------------------------------------------------------------- watch */

/* Logs that etcd stopped answering the watch, once until it answers again. */
static void watch_down(etcd_watch *w, const char *why)
{
    if (!w->down)
        kvi_log(w->e->log, KV_LOG_WARN, "%s: watch of %.200s: %s (reconnecting)",
                w->e->describe, w->key, why);
    w->down = 1;
}

static void watch_deliver(etcd_watch *w, const kvi_etcd_kv *kv, int deleted, int64_t revision)
{
    if (revision <= w->last_rev)
        return;
    w->last_rev = revision;
    w->have_value = !deleted;
    if (deleted)
        w->fn(w->ctx, NULL, 0, revision);
    else
        w->fn(w->ctx, kv->value, kv->value_len, revision);
}

/* One message of the stream; 0 to end the stream (w->failure says why). */
static int watch_message(etcd_watch *w, const kvi_etcd_watch_msg *m)
{
    if (m->created) {
        w->created = 1;
        if (w->down)
            kvi_log(w->e->log, KV_LOG_INFO, "%s: watch of %.200s: etcd answers again",
                    w->e->describe, w->key);
        w->down = 0;
    }
    for (size_t i = 0; i < m->count; i++) {
        const kvi_etcd_event *ev = &m->events[i];
        if (ev->kv.key_len != w->key_len || memcmp(ev->kv.key, w->key, w->key_len) != 0)
            continue; /* not ours (etcd sends only ours) */
        watch_deliver(w, &ev->kv, ev->deleted, ev->kv.mod_revision);
    }
    if (m->canceled) {
        snprintf(w->failure, sizeof w->failure,
                 "etcd canceled the watch (%s%scompact_revision %" PRId64 ")",
                 m->cancel_reason, m->cancel_reason[0] ? ", " : "", m->compact_revision);
        return 0;
    }
    return 1;
}

/* The stream's write callback: splits it into messages as they come. */
static size_t on_stream(char *data, size_t size, size_t n, void *ctx)
{
    etcd_watch *w = ctx;
    size_t len = size * n;
    if (atomic_load(&w->cancel.stop))
        return 0;
    if (len > KVI_ETCD_MAX_ANSWER - w->stream.len) {
        snprintf(w->failure, sizeof w->failure, "a watch message is over %u bytes",
                 KVI_ETCD_MAX_ANSWER);
        return 0;
    }
    kvi_buf_raw(&w->stream, data, len);
    if (w->stream.failed) {
        snprintf(w->failure, sizeof w->failure, "out of memory reading the watch stream");
        return 0;
    }
    size_t taken = 0;
    int go_on = 1;
    while (go_on) {
        size_t start, end;
        const char *buf = (const char *)w->stream.data + taken;
        int rc = kvi_etcd_split(&w->split, buf, w->stream.len - taken, &start, &end);
        if (rc == 0)
            break;
        kvi_etcd_watch_msg m;
        if (rc == 1)
            rc = kvi_etcd_parse_watch(&m, buf + start, end - start);
        if (rc != KV_OK) {
            snprintf(w->failure, sizeof w->failure, "%s", kvi_error_last());
            return 0;
        }
        go_on = watch_message(w, &m);
        kvi_etcd_watch_msg_free(&m);
        memset(&w->split, 0, sizeof w->split);
        taken += end;
    }
    if (taken) {
        memmove(w->stream.data, w->stream.data + taken, w->stream.len - taken);
        w->stream.len -= taken;
    }
    return go_on ? len : 0;
}

/* Holds a watch stream on endpoint i from revision start until it ends. */
static void watch_stream(etcd_watch *w, size_t i, int64_t start)
{
    kvi_etcd *e = w->e;
    kvi_buf body = {0};
    request r;
    int rc = kvi_etcd_body_watch(&body, w->key, w->key_len, start);
    if (rc == KV_OK)
        rc = request_init(&r, e, i, "/v3/watch", &body, on_stream, w, &w->cancel, 1);
    if (rc != KV_OK) {
        kvi_buf_free(&body);
        watch_down(w, kvi_error_last());
        return;
    }
    kvi_buf_reset(&w->stream);
    memset(&w->split, 0, sizeof w->split);
    w->created = 0;
    w->failure[0] = '\0';
    CURLcode cc = perform(&r, &w->cancel);
    long http = 0;
    if (curl_easy_getinfo(r.h, CURLINFO_RESPONSE_CODE, &http) != CURLE_OK)
        http = 0;
    curl_easy_cleanup(r.h);
    kvi_buf_free(&body);
    if (atomic_load(&w->cancel.stop))
        return;
    char why[600];
    if (w->failure[0])
        snprintf(why, sizeof why, "%s: %s", e->ep[i].name, w->failure);
    else if (cc != CURLE_OK)
        snprintf(why, sizeof why, "%s: %s", e->ep[i].name,
                 r.errbuf[0] ? r.errbuf : curl_easy_strerror(cc));
    else
        snprintf(why, sizeof why, "%s: the watch stream ended (HTTP %ld)", e->ep[i].name, http);
    watch_down(w, why);
}

/* One connection: read the key, give what changed, watch from there. 1
 * when etcd confirmed the watch (the connection was good). */
static int watch_once(etcd_watch *w)
{
    kvi_etcd *e = w->e;
    size_t answered = w->next_ep;
    kvi_etcd_range r;
    int rc = read_key(e, w->key, w->key_len, &w->cancel, w->next_ep, &answered, &r);
    if (rc != KV_OK) {
        if (!atomic_load(&w->cancel.stop))
            watch_down(w, kvi_error_last());
        w->next_ep = (w->next_ep + 1) % e->n;
        return 0;
    }
    if (r.revision < w->last_rev) {
        /* etcd's history went back (a cluster restored or replaced): what
         * it holds now is the news. */
        kvi_log(e->log, KV_LOG_WARN,
                "%s: watch of %.200s: etcd is at revision %" PRId64 ", before %" PRId64
                " given already; starting over",
                e->describe, w->key, r.revision, w->last_rev);
        w->last_rev = 0;
    }
    if (r.count == 1)
        watch_deliver(w, &r.kvs[0], 0, r.kvs[0].mod_revision);
    else if (w->have_value)
        watch_deliver(w, NULL, 1, r.revision);
    int64_t start = r.revision + 1;
    kvi_etcd_range_free(&r);
    if (atomic_load(&w->cancel.stop))
        return 0;
    watch_stream(w, answered, start);
    w->next_ep = (answered + 1) % e->n;
    return w->created;
}

static uint32_t watch_tick(void *ctx)
{
    etcd_watch *w = ctx;
    int good = watch_once(w);
    if (atomic_load(&w->cancel.stop))
        return 0;
    if (good)
        w->backoff_ms = WATCH_BACKOFF_MIN_MS;
    uint32_t delay = w->backoff_ms;
    w->backoff_ms = delay * 2 < WATCH_BACKOFF_MAX_MS ? delay * 2 : WATCH_BACKOFF_MAX_MS;
    return delay;
}

int kvi_etcd_watch_start(kvi_etcd *e, const char *key, kvi_etcd_watch_fn fn, void *ctx)
{
    if (!e || !key || !*key || !fn)
        return kvi_error(KV_EINVAL, "etcd watch: %s",
                         !e ? "no handle" : !fn ? "no callback" : "the key is empty");
    pthread_mutex_lock(&e->lock);
    if (e->watch) {
        pthread_mutex_unlock(&e->lock);
        return kvi_error(KV_EINVAL, "%s: a watch already runs on this handle", e->describe);
    }
    etcd_watch *w = calloc(1, sizeof *w);
    int rc = KV_OK;
    if (w) {
        w->e = e;
        w->fn = fn;
        w->ctx = ctx;
        w->backoff_ms = WATCH_BACKOFF_MIN_MS;
        w->next_ep = atomic_load(&e->preferred);
        w->key = full_key(e, key, &w->key_len);
        w->cancel.multi = curl_multi_init();
        atomic_init(&w->cancel.stop, 0);
    }
    if (!w || !w->key || !w->cancel.multi) {
        rc = kvi_error(KV_ENOMEM, "out of memory starting an etcd watch");
    } else {
        e->watch = w;
        if (kvi_ticker_start(&w->ticker, watch_tick, w) != 0) {
            kvi_ticker_stop(&w->ticker);
            e->watch = NULL;
            rc = kvi_error(KV_EIO, "%s: cannot start the watch's thread", e->describe);
        }
    }
    if (rc != KV_OK && w) {
        if (w->cancel.multi)
            curl_multi_cleanup(w->cancel.multi);
        free(w->key);
        free(w);
    }
    pthread_mutex_unlock(&e->lock);
    return rc;
}

static void watch_stop(etcd_watch *w)
{
    kvi_etcd *e = w->e;
    atomic_store(&w->cancel.stop, 1);
    curl_multi_wakeup(w->cancel.multi);
    kvi_ticker_stop(&w->ticker);
    curl_multi_cleanup(w->cancel.multi);
    kvi_buf_free(&w->stream);
    free(w->key);
    free(w);
    e->watch = NULL;
}
