/* net/http_routes.c - routing, query parameters and the handlers of the HTTP API, calling the public kv_* functions. */
#include "net/http_routes.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/batch.h"
#include "format/scan.h"
#include "format/value.h"
#include "net/http_json.h"
#include "net/ui_page.h"
#include "util/validate.h"
#include "util/error.h"

#define JSON_TYPE "application/json"
#define METRICS_TYPE "text/plain; version=0.0.4"
#define HTML_TYPE "text/html; charset=utf-8"
/* The status page loads nothing from anywhere: its script and style are
 * inline, and it only fetches /v1/status from its own origin. */
#define UI_CSP "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " \
               "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "   \
               "frame-ancestors 'none'"

/* ---------------------------------------------------------------- errors */

void kvi_http_error(kvi_http_conn *c, unsigned status, const char *code, int kv_status,
                    const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->status = status;
    c->kv_status = kv_status;
    c->content_type = JSON_TYPE;
    kvi_buf_reset(&c->out);
    kvi_http_json_raw(&c->out, "{\"error\":{\"code\":\"");
    kvi_http_json_raw(&c->out, code);
    kvi_http_json_raw(&c->out, "\",\"message\":");
    kvi_http_json_message(&c->out, msg);
    kvi_http_json_raw(&c->out, "}}");
}

/* The HTTP status and error code of a KV status. Only failures of the
 * server or the cluster are 5xx; everything a client can get wrong is 4xx. */
static void status_http(int rc, unsigned *status, const char **code)
{
    switch (rc) {
    case KV_ENOTFOUND: *status = 404; *code = "NOT_FOUND"; break;
    case KV_EPERM: *status = 401; *code = "UNAUTHORIZED"; break;
    case KV_ECONFLICT: *status = 409; *code = "CONFLICT"; break;
    case KV_ETOOBIG: *status = 413; *code = "TOO_BIG"; break;
    case KV_EINVAL: *status = 400; *code = "BAD_REQUEST"; break;
    case KV_ETIMEDOUT: *status = 504; *code = "TIMEOUT"; break;
    case KV_EUNKNOWN_OUTCOME: *status = 504; *code = "UNKNOWN_OUTCOME"; break;
    case KV_EUNAVAILABLE: *status = 503; *code = "UNAVAILABLE"; break;
    case KV_ECLOSED: *status = 503; *code = "CLOSED"; break;
    case KV_EBUSY: *status = 503; *code = "BUSY"; break;
    case KV_ENOTSUP: *status = 501; *code = "NOT_SUPPORTED"; break;
    case KV_ECORRUPT: *status = 500; *code = "CORRUPT"; break;
    case KV_EIO: *status = 500; *code = "IO_ERROR"; break;
    default: *status = 500; *code = "INTERNAL"; break;
    }
}

/* The status name of a batch result. */
static const char *status_name(int rc)
{
    unsigned status;
    const char *code;
    if (rc == KV_OK)
        return "OK";
    status_http(rc, &status, &code);
    return code;
}

/* Answers with the error of a failed kv_* call, whose detail message is in
 * this thread's kvi_error_last(). */
static void fail_msg(kvi_http_conn *c, int rc, const char *msg)
{
    unsigned status;
    const char *code;
    status_http(rc, &status, &code);
    kvi_http_error(c, status, code, rc, "%s", *msg ? msg : kvi_strerror(rc));
}

static void fail_kv(kvi_http_conn *c, int rc)
{
    fail_msg(c, rc, kvi_error_last());
}

/* ----------------------------------------------------------------- query */

typedef struct query_state {
    kvi_http_conn *c;
    unsigned seen; /* bit per known parameter, to refuse repeats */
} query_state;

/* Parses a decimal quorum size, 1..255 (it travels as one byte). */
static int parse_quorum(const char *s, size_t n, unsigned *out)
{
    unsigned v = 0;
    if (n == 0 || n > 3)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v < 1 || v > 255)
        return -1;
    *out = v;
    return 0;
}

/* Whether the n bytes at a spell `lower`, ignoring ASCII case; n bytes
 * are compared, so a decoded NUL cannot end the comparison early. */
static int ascii_caseeq(const char *a, size_t n, const char *lower)
{
    if (strlen(lower) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char x = a[i] >= 'A' && a[i] <= 'Z' ? (char)(a[i] + 32) : a[i];
        if (x != lower[i])
            return 0;
    }
    return 1;
}

/* ?context=BASE64 (percent-encoded): the causal context of a read, for a
 * DELETE that should supersede what was read. */
static enum MHD_Result context_param(kvi_http_conn *c, const char *raw, size_t len)
{
    if (c->context.len) {
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL, "query parameter \"context\" is given twice");
        return MHD_NO;
    }
    kvi_buf_reset(&c->context);
    kvi_buf_raw(&c->context, raw, len + 1);
    if (c->context.failed) {
        kvi_http_error(c, 500, "INTERNAL", KV_ENOMEM, "out of memory reading the context");
        return MHD_NO;
    }
    size_t n = len;
    if (kvi_http_percent_decode(c->context.data, &n, raw, len) != 0 ||
        kvi_http_base64_decode(c->context.data, &n, (const char *)c->context.data, n) != 0 ||
        n == 0) {
        kvi_buf_reset(&c->context);
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                       "context must be the base64 \"context\" of a read");
        return MHD_NO;
    }
    c->context.len = n;
    c->wopts.context = c->context.data;
    c->wopts.context_len = n;
    return MHD_YES;
}

/* ?cursor=TEXT (percent-encoded): where a scan goes on; its form is checked
 * by the scan itself (kvi_scan_cursor_decode). */
static enum MHD_Result cursor_param(kvi_http_conn *c, const char *raw, size_t len)
{
    if (c->cursor.len) {
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL, "query parameter \"cursor\" is given twice");
        return MHD_NO;
    }
    if (len > 6 * KVI_SCAN_MAX_POSITION) {
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL, "the cursor is too long to be one");
        return MHD_NO;
    }
    kvi_buf_reset(&c->cursor);
    kvi_buf_raw(&c->cursor, raw, len + 1);
    if (c->cursor.failed) {
        kvi_http_error(c, 500, "INTERNAL", KV_ENOMEM, "out of memory reading the cursor");
        return MHD_NO;
    }
    size_t n = len;
    if (kvi_http_percent_decode(c->cursor.data, &n, raw, len) != 0 ||
        memchr(c->cursor.data, 0, n)) {
        kvi_buf_reset(&c->cursor);
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                       "cursor must be the \"cursor\" of an earlier page");
        return MHD_NO;
    }
    c->cursor.data[n] = 0;
    /* len counts the NUL, so that "cursor=" (the start) still counts as
     * given once. */
    c->cursor.len = n + 1;
    return MHD_YES;
}

/* Parses a scan's limit, 1..KV_SCAN_MAX_LIMIT. */
/* 1..9 decimal digits, nothing else. */
static int parse_digits(const char *s, size_t n, size_t *out)
{
    size_t v = 0;
    if (n == 0 || n > 9)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static int parse_limit(const char *s, size_t n, size_t *out)
{
    size_t v = 0;
    if (parse_digits(s, n, &v) != 0 || v < 1 || v > KV_SCAN_MAX_LIMIT)
        return -1;
    *out = v;
    return 0;
}

/* MHD_KeyValueIterator over the query string. Names and values arrive still
 * percent-encoded (our unescape callback leaves them alone), so they are
 * decoded here. Returning MHD_NO stops at the first bad parameter. */
static enum MHD_Result query_param(void *cls, enum MHD_ValueKind kind, const char *rkey,
                                   const char *rvalue)
{
    (void)kind;
    query_state *q = cls;
    kvi_http_conn *c = q->c;
    char name[32], value[32];
    size_t nlen, vlen;
    size_t rklen = strlen(rkey), rvlen = rvalue ? strlen(rvalue) : 0;
    if (rklen >= sizeof name ||
        kvi_http_percent_decode((unsigned char *)name, &nlen, rkey, rklen) != 0 ||
        memchr(name, 0, nlen)) {
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL, "unknown query parameter \"%.31s\"", rkey);
        return MHD_NO;
    }
    name[nlen] = 0;
    if (strcmp(name, "context") == 0)
        return context_param(c, rvalue ? rvalue : "", rvlen);
    if (strcmp(name, "cursor") == 0)
        return cursor_param(c, rvalue ? rvalue : "", rvlen);
    if (rvlen >= sizeof value ||
        kvi_http_percent_decode((unsigned char *)value, &vlen, rvalue ? rvalue : "", rvlen) != 0)
        vlen = sizeof value; /* a length no valid value has */
    else
        value[vlen] = 0;

    static const char *const known[] = {"consistency", "r", "w", "encoding", "policy",
                                        "homeOnly", "limit", "keysOnly", "t", "timeoutMs"};
    unsigned bit = 0;
    for (unsigned i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(name, known[i]) == 0)
            bit = 1u << i;
    if (!bit) {
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                       "unknown query parameter \"%s\" (known: consistency, r, w, encoding, "
                       "policy, homeOnly, context; for a scan, cursor, limit, keysOnly; for a "
                       "prediction, t; for a status, timeoutMs)", name);
        return MHD_NO;
    }
    if (q->seen & bit) {
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL, "query parameter \"%s\" is given twice", name);
        return MHD_NO;
    }
    q->seen |= bit;

    unsigned n;
    if (strcmp(name, "consistency") == 0) {
        kv_consistency level;
        if (ascii_caseeq(value, vlen, "one"))
            level = KV_CONSISTENCY_ONE;
        else if (ascii_caseeq(value, vlen, "quorum"))
            level = KV_CONSISTENCY_QUORUM;
        else if (ascii_caseeq(value, vlen, "all"))
            level = KV_CONSISTENCY_ALL;
        else if (ascii_caseeq(value, vlen, "serial"))
            level = KV_CONSISTENCY_SERIAL;
        else {
            kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                           "consistency must be one, quorum, all or serial");
            return MHD_NO;
        }
        /* An explicit r or w wins over the level for its own direction,
         * whichever order the parameters come in. */
        if (c->ropts.consistency != KV_CONSISTENCY_EXPLICIT)
            c->ropts.consistency = level;
        if (c->wopts.consistency != KV_CONSISTENCY_EXPLICIT)
            c->wopts.consistency = level;
    } else if (strcmp(name, "r") == 0 || strcmp(name, "w") == 0) {
        if (vlen >= sizeof value || parse_quorum(value, vlen, &n) != 0) {
            kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL, "%s must be an integer 1..255", name);
            return MHD_NO;
        }
        if (name[0] == 'r') {
            c->ropts.consistency = KV_CONSISTENCY_EXPLICIT;
            c->ropts.r = n;
        } else {
            c->wopts.consistency = KV_CONSISTENCY_EXPLICIT;
            c->wopts.w = n;
        }
    } else if (strcmp(name, "policy") == 0) {
        kvi_http_policy chosen = !c->server->policies ? KVI_HTTP_POLICY_OWN
                               : ascii_caseeq(value, vlen, "lww") ? KVI_HTTP_POLICY_LWW
                               : ascii_caseeq(value, vlen, "siblings") ? KVI_HTTP_POLICY_SIBLINGS
                                                                       : KVI_HTTP_POLICY_OWN;
        if (chosen == KVI_HTTP_POLICY_OWN) {
            kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                           c->server->policies ? "policy must be lww or siblings"
                                               : "this server has no per-request policy");
            return MHD_NO;
        }
        c->policy = chosen;
    } else if (strcmp(name, "limit") == 0) {
        if (vlen >= sizeof value || parse_limit(value, vlen, &c->limit) != 0) {
            kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL, "limit must be an integer 1..%u",
                           KV_SCAN_MAX_LIMIT);
            return MHD_NO;
        }
    } else if (strcmp(name, "keysOnly") == 0) {
        if (ascii_caseeq(value, vlen, "true") || ascii_caseeq(value, vlen, "1"))
            c->keys_only = 1;
        else if (!ascii_caseeq(value, vlen, "false") && !ascii_caseeq(value, vlen, "0")) {
            kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL, "keysOnly must be true or false");
            return MHD_NO;
        }
    } else if (strcmp(name, "t") == 0) {
        char *end = NULL;
        double t = vlen < sizeof value ? strtod(value, &end) : -1;
        if (vlen == 0 || vlen >= sizeof value || end != value + vlen || !(t >= 0 && t <= 3600000)) {
            kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                           "t must be a number of milliseconds, 0..3600000");
            return MHD_NO;
        }
        c->t_ms = t;
    } else if (strcmp(name, "timeoutMs") == 0) {
        size_t ms = 0;
        if (vlen >= sizeof value || parse_digits(value, vlen, &ms) != 0 || ms < 1 ||
            ms > KVI_HTTP_STATUS_MAX_TIMEOUT_MS) {
            kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                           "timeoutMs must be an integer 1..%u", KVI_HTTP_STATUS_MAX_TIMEOUT_MS);
            return MHD_NO;
        }
        c->timeout_ms = (unsigned)ms;
    } else if (strcmp(name, "homeOnly") == 0) {
        if (ascii_caseeq(value, vlen, "true") || ascii_caseeq(value, vlen, "1"))
            c->wopts.home_only = 1;
        else if (!ascii_caseeq(value, vlen, "false") && !ascii_caseeq(value, vlen, "0")) {
            kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL, "homeOnly must be true or false");
            return MHD_NO;
        }
    } else {
        if (ascii_caseeq(value, vlen, "base64"))
            c->force_base64 = 1;
        else if (!ascii_caseeq(value, vlen, "utf-8") && !ascii_caseeq(value, vlen, "utf8")) {
            kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL, "encoding must be base64 or utf-8");
            return MHD_NO;
        }
    }
    return MHD_YES;
}

/* -------------------------------------------------------- authentication */

/* Whether the n bytes at given are the token, in a time that depends on n
 * alone: every byte is compared, whatever the first difference and whatever
 * the token's length, so timing tells nothing of the token's content. */
static int token_equal(const char *given, size_t n, const kvi_http_token *t)
{
    unsigned diff = n != t->len;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)given[i] ^ (unsigned char)t->text[i % t->len];
    return diff == 0;
}

static void unauthorized(kvi_http_conn *c, const char *why)
{
    kvi_http_error(c, 401, "UNAUTHORIZED", KV_EINVAL, "%s", why);
    c->challenge = "Bearer realm=\"libkv\"";
}

/* Checks "Authorization: Bearer TOKEN" (RFC 6750 section 2.1; the scheme
 * name is case-insensitive, RFC 7235 section 2.1) against every token, with
 * no early exit, so the time does not say which one matched either. A 401
 * says what was wrong, never quoting what was sent. */
static int authorized(kvi_http_conn *c, struct MHD_Connection *mc)
{
    kvi_http *h = c->server;
    const char *v = MHD_lookup_connection_value(mc, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (!v || !*v) {
        unauthorized(c, "a bearer token is required (Authorization: Bearer TOKEN)");
        return 0;
    }
    size_t scheme = strcspn(v, " \t");
    if (!ascii_caseeq(v, scheme, "bearer")) {
        unauthorized(c, "the Authorization header must use the Bearer scheme");
        return 0;
    }
    const char *token = v + scheme + strspn(v + scheme, " \t");
    size_t n = strlen(token);
    while (n && (token[n - 1] == ' ' || token[n - 1] == '\t'))
        n--;
    if (n == 0) {
        unauthorized(c, "the bearer token is missing");
        return 0;
    }
    int match = 0;
    for (size_t i = 0; i < h->n_tokens; i++)
        match |= token_equal(token, n, &h->tokens[i]);
    if (!match)
        unauthorized(c, "the bearer token is wrong");
    return match;
}

/* The endpoints a monitor reads without a token: they show no data. The
 * status page is static; the data it shows comes from /v1/status, which
 * needs the token. */
static int open_endpoint(const char *url)
{
    return strcmp(url, "/v1/health") == 0 || strcmp(url, "/metrics") == 0 ||
           strcmp(url, "/") == 0 || strcmp(url, "/ui") == 0;
}

/* --------------------------------------------------------------- routing */

static kvi_http_method parse_method(const char *m)
{
    if (strcmp(m, "GET") == 0)
        return KVI_HTTP_GET;
    if (strcmp(m, "PUT") == 0)
        return KVI_HTTP_PUT;
    if (strcmp(m, "DELETE") == 0)
        return KVI_HTTP_DELETE;
    if (strcmp(m, "POST") == 0)
        return KVI_HTTP_POST;
    return KVI_HTTP_OTHER;
}

static void not_allowed(kvi_http_conn *c, const char *allow, const char *method)
{
    kvi_http_error(c, 405, "METHOD_NOT_ALLOWED", KV_EINVAL, "method %.16s is not allowed here (allowed: %s)",
                   method, allow);
    c->allow = allow;
}

/* Whether the raw key path has a "." or ".." segment. Clients remove those
 * before sending (RFC 3986 section 5.2.4: curl, browsers, fetch), so such a
 * key could be written by one client and be out of reach of the next, or a
 * read of "a/../b" would reach "b". */
static int has_dot_segment(const char *path, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && path[i] != '/')
            continue;
        size_t n = i - start;
        if ((n == 1 && path[start] == '.') ||
            (n == 2 && path[start] == '.' && path[start + 1] == '.'))
            return 1;
        start = i + 1;
    }
    return 0;
}

/* Decodes the key path (everything after "/v1/kv/", '/' included, without a
 * CAS's "/cas") into c->key; checks it is 1..max_key_size bytes. */
static void decode_key(kvi_http_conn *c, const char *path, size_t len)
{
    kvi_http *h = c->server;
    if (len == 0) {
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                       "the key is empty: the path must be /v1/kv/{key}");
        return;
    }
    /* Each decoded byte takes at most three characters: a path over three
     * times the limit is too big before anything is decoded. */
    if (len / 3 > h->max_key_size) {
        kvi_http_error(c, 413, "TOO_BIG", KV_ETOOBIG, "the key is over the limit of %u bytes",
                       h->max_key_size);
        return;
    }
    if (has_dot_segment(path, len)) {
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                       "the key has a \".\" or \"..\" path segment, which HTTP clients remove "
                       "before sending: write the '/' around it as %%2F");
        return;
    }
    kvi_buf_reset(&c->key);
    kvi_buf_raw(&c->key, path, len); /* room to decode in place */
    if (c->key.failed) {
        kvi_http_error(c, 500, "INTERNAL", KV_ENOMEM, "out of memory");
        return;
    }
    size_t n;
    if (kvi_http_percent_decode(c->key.data, &n, (const char *)c->key.data, len) != 0) {
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                       "the key is not valid percent-encoding ('%%' must be followed by two hex digits)");
        return;
    }
    c->key.len = n;
    if (n == 0)
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL, "the key is empty");
    else if (n > h->max_key_size)
        kvi_http_error(c, 413, "TOO_BIG", KV_ETOOBIG, "the key is %zu bytes, the limit is %u",
                       n, h->max_key_size);
}

static void route_admin(kvi_http_conn *c, kvi_http_route route, const char *method)
{
    c->route = route;
    if (c->method != KVI_HTTP_GET)
        not_allowed(c, "GET", method);
}

/* The body of a backup: {"dir": "..."}, the path JSON-escaped at worst. */
#define BACKUP_BODY_LIMIT (16u * 1024u)

static void route_backup(kvi_http_conn *c, const char *method)
{
    c->route = KVI_HTTP_ROUTE_BACKUP;
    if (c->method != KVI_HTTP_POST) {
        not_allowed(c, "POST", method);
        return;
    }
    c->wants_body = 1;
    c->body_limit = BACKUP_BODY_LIMIT;
}

/* Routes what follows "/v1/kv/", still percent-encoded:
 *   GET, PUT, DELETE  {key}      the whole rest is the key, '/' included
 *   POST              batch      the batch endpoint
 *   POST              {key}/cas  CAS of {key}: the last "/cas" is the endpoint
 * Only POST has endpoints under a key, so "a/cas" is a plain key for GET,
 * PUT and DELETE, and the CAS of the key "a/cas" is POST "a/cas/cas" (or
 * "a%2Fcas/cas"). The structure is read before decoding, so %2F is always
 * part of a key. */
static void route_kv(kvi_http_conn *c, const char *rest, const char *method)
{
    static const char cas[] = "/cas";
    size_t len = strlen(rest);
    int is_cas = len >= sizeof cas - 1 && memcmp(rest + len - (sizeof cas - 1), cas,
                                                 sizeof cas - 1) == 0;
    int is_batch = strcmp(rest, "batch") == 0;
    switch (c->method) {
    case KVI_HTTP_GET:
        c->route = KVI_HTTP_ROUTE_KV;
        c->mop = KVI_MOP_GET;
        break;
    case KVI_HTTP_PUT:
        c->route = KVI_HTTP_ROUTE_KV;
        c->mop = KVI_MOP_PUT;
        c->wants_body = 1;
        break;
    case KVI_HTTP_DELETE:
        c->route = KVI_HTTP_ROUTE_KV;
        c->mop = KVI_MOP_DELETE;
        break;
    case KVI_HTTP_POST:
        if (is_batch) {
            c->route = KVI_HTTP_ROUTE_BATCH;
            c->mop = KVI_MOP_BATCH;
            c->body_limit = c->server->batch_limit;
            c->wants_body = 1;
            return;
        }
        if (!is_cas) { /* POST is only for the batch and CAS */
            c->route = KVI_HTTP_ROUTE_KV;
            not_allowed(c, "GET, PUT, DELETE", method);
            return;
        }
        c->route = KVI_HTTP_ROUTE_CAS;
        c->mop = KVI_MOP_CAS;
        c->wants_body = 1;
        len -= sizeof cas - 1;
        break;
    default:
        c->route = KVI_HTTP_ROUTE_KV;
        not_allowed(c, is_cas || is_batch ? "GET, PUT, DELETE, POST" : "GET, PUT, DELETE", method);
        return;
    }
    decode_key(c, rest, len);
}

void kvi_http_route_request(kvi_http_conn *c, struct MHD_Connection *mc, const char *url,
                            const char *method)
{
    static const char kv_prefix[] = "/v1/kv/";
    c->method = parse_method(method);
    c->body_limit = c->server->body_limit;
    /* Before anything else, so that a request without a token learns
     * nothing (not even whether its key or parameters are valid) and does
     * no work; it counts as a request refused before routing. */
    if (c->server->n_tokens && !open_endpoint(url) && !authorized(c, mc))
        return;
    if (strcmp(url, "/v1/health") == 0)
        route_admin(c, KVI_HTTP_ROUTE_HEALTH, method);
    else if (strcmp(url, "/v1/cluster") == 0)
        route_admin(c, KVI_HTTP_ROUTE_CLUSTER, method);
    else if (strcmp(url, "/metrics") == 0)
        route_admin(c, KVI_HTTP_ROUTE_METRICS, method);
    else if (strcmp(url, "/v1/hotkeys") == 0)
        route_admin(c, KVI_HTTP_ROUTE_HOTKEYS, method);
    else if (strcmp(url, "/v1/consistency/prediction") == 0)
        route_admin(c, KVI_HTTP_ROUTE_PREDICT, method);
    else if (strcmp(url, "/v1/status") == 0)
        route_admin(c, KVI_HTTP_ROUTE_STATUS, method);
    else if (strcmp(url, "/") == 0 || strcmp(url, "/ui") == 0)
        route_admin(c, KVI_HTTP_ROUTE_UI, method);
    else if (strcmp(url, "/v1/admin/backup") == 0)
        route_backup(c, method);
    else if (strcmp(url, "/v1/kv") == 0) {
        c->route = KVI_HTTP_ROUTE_SCAN;
        c->mop = KVI_MOP_OTHER;
        if (c->method != KVI_HTTP_GET)
            not_allowed(c, "GET", method);
    } else if (strncmp(url, kv_prefix, sizeof kv_prefix - 1) == 0)
        route_kv(c, url + sizeof kv_prefix - 1, method);
    else
        kvi_http_error(c, 404, "NOT_FOUND", KV_ENOTFOUND, "no such endpoint");
    if (c->status)
        return;
    query_state q = {c, 0};
    MHD_get_connection_values(mc, MHD_GET_ARGUMENT_KIND, query_param, &q);
    if (!c->status && c->route != KVI_HTTP_ROUTE_SCAN &&
        (c->cursor.len || c->limit || c->keys_only))
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                       "cursor, limit and keysOnly are for a scan (GET /v1/kv) only");
    if (!c->status && c->route != KVI_HTTP_ROUTE_PREDICT && c->t_ms >= 0)
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                       "t is for a prediction (GET /v1/consistency/prediction) only");
    if (!c->status && c->route != KVI_HTTP_ROUTE_STATUS && c->timeout_ms)
        kvi_http_error(c, 400, "BAD_REQUEST", KV_EINVAL,
                       "timeoutMs is for GET /v1/status only");
}

/* -------------------------------------------------------------- handlers */

/* Appends "<name>":"<bytes>" as text, or base64 when asked or when the
 * bytes are not text. Returns 1 when base64 was used. */
static int put_bytes(kvi_buf *b, const char *name, const void *data, size_t n, int base64)
{
    base64 = base64 || !kvi_http_is_text(data, n);
    kvi_http_json_raw(b, "\"");
    kvi_http_json_raw(b, name);
    kvi_http_json_raw(b, "\":");
    if (base64)
        kvi_http_json_base64(b, data, n);
    else
        kvi_http_json_string(b, data, n);
    return base64;
}

/* Appends "siblings":[{"value":...}, ...] as a single GET's 300 has it, each
 * sibling with "encoding":"base64" when base64 is set. */
static void put_siblings(kvi_buf *b, const kv_value *v, int base64)
{
    size_t count = kvi_value_sibling_count(v), n;
    kvi_http_json_raw(b, "\"siblings\":[");
    for (size_t i = 0; i < count; i++) {
        const void *data = kvi_value_sibling(v, i, &n);
        kvi_http_json_raw(b, i ? ",{" : "{");
        if (put_bytes(b, "value", data, n, base64))
            kvi_http_json_raw(b, ",\"encoding\":\"base64\"");
        kvi_http_json_raw(b, "}");
    }
    kvi_http_json_raw(b, "]");
}

/* Whether every sibling of v is text (one sibling: its value). */
static int all_text(const kv_value *v)
{
    size_t count = kvi_value_sibling_count(v), n;
    for (size_t i = 0; i < count; i++) {
        const void *data = kvi_value_sibling(v, i, &n);
        if (!kvi_http_is_text(data, n))
            return 0;
    }
    return 1;
}

static void ok_version(kvi_http_conn *c, uint64_t version)
{
    kvi_http_json_raw(&c->out, "{\"version\":");
    kvi_http_json_u64(&c->out, version);
    kvi_http_json_raw(&c->out, "}");
}

/* A get's answer: its value (or siblings), version, expiry and context. */
static void finish_get(kvi_http_conn *c, kvi_http_result *r)
{
    kv_value *v = r->value;
    r->value = NULL;
    if (r->rc != KV_OK) {
        kvi_value_free(v);
        fail_msg(c, r->rc, r->message ? r->message : "");
        return;
    }
    kvi_buf *b = &c->out;
    size_t count = kvi_value_sibling_count(v);
    size_t n;
    if (count > 1) {
        /* Concurrent writes the resolution policy kept: 300, as in Riak. */
        c->status = 300;
        kvi_http_json_raw(b, "{");
        put_siblings(b, v, c->force_base64);
        kvi_http_json_raw(b, ",");
    } else {
        const void *data = kvi_value_data(v, &n);
        kvi_http_json_raw(b, "{");
        if (put_bytes(b, "value", data, n, c->force_base64))
            kvi_http_json_raw(b, ",\"encoding\":\"base64\"");
        kvi_http_json_raw(b, ",");
    }
    kvi_http_json_raw(b, "\"version\":");
    kvi_http_json_u64(b, kvi_value_version(v));
    if (kvi_value_expiry_ms(v)) {
        kvi_http_json_raw(b, ",\"expiresAt\":");
        kvi_http_json_u64(b, kvi_value_expiry_ms(v));
    }
    const void *ctx = kvi_value_context(v, &n);
    if (n) {
        kvi_http_json_raw(b, ",\"context\":");
        kvi_http_json_base64(b, ctx, n);
    }
    kvi_http_json_raw(b, "}");
    kvi_value_free(v);
}

/* The result of a blocking operation that returned rc, its detail in this
 * thread's kvi_error_last(). */
static kvi_http_result blocking_result(int rc, uint64_t version, kv_value *value)
{
    return (kvi_http_result){.rc = rc, .message = rc != KV_OK ? kvi_error_last() : NULL,
                             .version = version, .value = value};
}

/* Each of the four runs its operation asynchronously when the table has
 * that form and the server can take it (kvi_http_async_begin): the answer
 * is then built by kvi_http_finish when it ends, on whichever thread MHD
 * resumes the connection. Otherwise it blocks here and builds it now. */
static void handle_get(kvi_http_conn *c)
{
    kvi_http *h = c->server;
    kvi_http_async *a = h->ops->get_async ? kvi_http_async_begin(c) : NULL;
    if (a) {
        h->ops->get_async(h->ops_ctx, c->policy, c->key.data, c->key.len, &c->ropts,
                          kvi_http_async_done, a);
        return;
    }
    kv_value *v = NULL;
    int rc = h->ops->get(h->ops_ctx, c->policy, &v, c->key.data, c->key.len, &c->ropts);
    kvi_http_result r = blocking_result(rc, 0, v);
    kvi_http_finish(c, &r);
}

/* The default page of GET /v1/kv without ?limit=. */
#define SCAN_DEFAULT_LIMIT 100u

/* GET /v1/kv: {"items":[{"key":K,"value":V,"version":N}, ...],
 * "cursor":C|null}. Each item is text, or all base64 with
 * "encoding":"base64" (key and value) as a batch result is; siblings as a
 * GET's 300 has them, and "context". */
static void handle_scan(kvi_http_conn *c)
{
    if (!c->server->ops->scan) {
        kvi_http_error(c, 501, "NOT_SUPPORTED", KV_ENOTSUP, "this server cannot scan");
        return;
    }
    kv_scan_options so = KV_SCAN_OPTIONS_INIT;
    so.consistency = c->ropts.consistency;
    so.r = c->ropts.r;
    so.keys_only = c->keys_only;
    kv_scan_page *page = NULL;
    const char *cursor = c->cursor.len ? (const char *)c->cursor.data : NULL;
    int rc = c->server->ops->scan(c->server->ops_ctx, c->policy, &page, cursor,
                                  c->limit ? c->limit : SCAN_DEFAULT_LIMIT, &so);
    if (rc != KV_OK) {
        fail_kv(c, rc);
        return;
    }
    kvi_buf *b = &c->out;
    kvi_http_json_raw(b, "{\"items\":[");
    size_t count = kvi_scan_page_count(page);
    for (size_t i = 0; i < count; i++) {
        size_t klen, n;
        const void *key = kvi_scan_page_key(page, i, &klen);
        const kv_value *v = kvi_scan_page_value(page, i);
        int b64 = c->force_base64 || !kvi_http_is_text((const unsigned char *)key, klen) || (v && !all_text(v));
        kvi_http_json_raw(b, i ? ",{" : "{");
        put_bytes(b, "key", key, klen, b64);
        if (v && kvi_value_sibling_count(v) > 1) {
            kvi_http_json_raw(b, ",");
            put_siblings(b, v, b64);
        } else if (v) {
            const void *data = kvi_value_data(v, &n);
            kvi_http_json_raw(b, ",");
            put_bytes(b, "value", data, n, b64);
        }
        kvi_http_json_raw(b, ",\"version\":");
        kvi_http_json_u64(b, kvi_scan_page_version(page, i));
        if (v && kvi_value_expiry_ms(v)) {
            kvi_http_json_raw(b, ",\"expiresAt\":");
            kvi_http_json_u64(b, kvi_value_expiry_ms(v));
        }
        const void *ctx = v ? kvi_value_context(v, &n) : NULL;
        if (ctx && n) {
            kvi_http_json_raw(b, ",\"context\":");
            kvi_http_json_base64(b, ctx, n);
        }
        if (b64)
            kvi_http_json_raw(b, ",\"encoding\":\"base64\"");
        kvi_http_json_raw(b, "}");
    }
    const char *next = kvi_scan_page_cursor(page);
    kvi_http_json_raw(b, "],\"cursor\":");
    if (next)
        kvi_http_json_string(b, next, strlen(next));
    else
        kvi_http_json_raw(b, "null");
    kvi_http_json_raw(b, "}");
    kvi_scan_page_free(page);
    if (b->failed)
        kvi_http_error(c, 500, "INTERNAL", KV_ENOMEM, "out of memory writing a scan page");
}

static void handle_put(kvi_http_conn *c)
{
    kvi_http_write_body w;
    char err[256];
    int rc = kvi_http_parse_put(&w, (const char *)c->body.data, c->body.len, err, sizeof err);
    if (rc != KV_OK) {
        /* A CAS body sent with PUT to ".../cas" writes the key ".../cas". */
        if (c->key.len >= 4 && memcmp(c->key.data + c->key.len - 4, "/cas", 4) == 0 &&
            strcmp(err, "\"value\" is missing") == 0)
            kvi_http_error(c, 400, "BAD_REQUEST", rc,
                           "\"value\" is missing (a PUT to a path ending in /cas writes that "
                           "key; compare-and-swap is POST /v1/kv/{key}/cas)");
        else
            fail_msg(c, rc, err);
        return;
    }
    c->wopts.ttl_s = w.ttl_s;
    if (w.context_len) {
        c->wopts.context = w.context;
        c->wopts.context_len = w.context_len;
    }
    kvi_http *h = c->server;
    kvi_http_async *a = h->ops->put_async ? kvi_http_async_begin(c) : NULL;
    if (a) {
        /* The operation copies what it keeps: w may go once it returns. */
        h->ops->put_async(h->ops_ctx, c->policy, c->key.data, c->key.len, w.value,
                          w.value_len, &c->wopts, kvi_http_async_done, a);
    } else {
        uint64_t version = 0;
        rc = h->ops->put(h->ops_ctx, c->policy, &version, c->key.data, c->key.len, w.value,
                         w.value_len, &c->wopts);
        kvi_http_result r = blocking_result(rc, version, NULL);
        kvi_http_finish(c, &r);
    }
    /* The context may point into w. */
    c->wopts.context = NULL;
    c->wopts.context_len = 0;
    kvi_http_write_body_free(&w);
}

static void handle_delete(kvi_http_conn *c)
{
    kvi_http *h = c->server;
    kvi_http_async *a = h->ops->del_async ? kvi_http_async_begin(c) : NULL;
    if (a) {
        h->ops->del_async(h->ops_ctx, c->policy, c->key.data, c->key.len, &c->wopts,
                          kvi_http_async_done, a);
        return;
    }
    uint64_t version = 0;
    int rc = h->ops->del(h->ops_ctx, c->policy, &version, c->key.data, c->key.len, &c->wopts);
    kvi_http_result r = blocking_result(rc, version, NULL);
    kvi_http_finish(c, &r);
}

static void handle_cas(kvi_http_conn *c)
{
    kvi_http_write_body w;
    char err[256];
    int rc = kvi_http_parse_cas(&w, (const char *)c->body.data, c->body.len, err, sizeof err);
    if (rc != KV_OK) {
        fail_msg(c, rc, err);
        return;
    }
    c->wopts.ttl_s = w.ttl_s;
    c->expected = w.expected_version;
    kvi_http *h = c->server;
    kvi_http_async *a = h->ops->cas_async ? kvi_http_async_begin(c) : NULL;
    if (a) {
        h->ops->cas_async(h->ops_ctx, c->policy, c->key.data, c->key.len, w.expected_version,
                          w.value, w.value_len, &c->wopts, kvi_http_async_done, a);
    } else {
        uint64_t version = 0;
        rc = h->ops->cas(h->ops_ctx, c->policy, &version, c->key.data, c->key.len,
                         w.expected_version, w.value, w.value_len, &c->wopts);
        kvi_http_result r = blocking_result(rc, version, NULL);
        kvi_http_finish(c, &r);
    }
    kvi_http_write_body_free(&w);
}

/* A CAS's answer. A conflict's error object gets the current version
 * beside it, so the client can retry without another GET. */
static void finish_cas(kvi_http_conn *c, const kvi_http_result *r)
{
    if (r->rc == KV_ECONFLICT) {
        kvi_http_error(c, 409, "CONFLICT", r->rc,
                       "expected version %llu, the current version is %llu",
                       (unsigned long long)c->expected, (unsigned long long)r->version);
        if (c->out.failed || c->out.len == 0)
            return;
        c->out.len--;
        kvi_http_json_raw(&c->out, ",\"version\":");
        kvi_http_json_u64(&c->out, r->version);
        kvi_http_json_raw(&c->out, "}");
        return;
    }
    if (r->rc != KV_OK) {
        fail_msg(c, r->rc, r->message ? r->message : "");
        return;
    }
    ok_version(c, r->version);
}

static void finish_batch(kvi_http_conn *c, const kvi_http_result *r);

void kvi_http_finish(kvi_http_conn *c, kvi_http_result *r)
{
    if (c->route == KVI_HTTP_ROUTE_STATUS) {
        if (r->rc != KV_OK)
            fail_msg(c, r->rc, r->message ? r->message : "");
        else
            kvi_buf_raw(&c->out, r->json, r->json_len);
        free(r->json);
        r->json = NULL;
    } else if (c->route == KVI_HTTP_ROUTE_BATCH) {
        finish_batch(c, r);
    } else if (c->route == KVI_HTTP_ROUTE_CAS) {
        finish_cas(c, r);
    } else if (c->method == KVI_HTTP_GET) {
        finish_get(c, r);
    } else if (r->rc != KV_OK) {
        fail_msg(c, r->rc, r->message ? r->message : "");
    } else {
        ok_version(c, r->version); /* PUT, DELETE */
    }
}

static const char *const op_names[] = {"", "PUT", "GET", "DELETE"};

/* Appends the result of batch operation i. The result's "encoding" covers
 * its key and value (or every sibling) together, as in the request. A GET
 * that found concurrent siblings has them under "siblings", with the
 * read's "context", in the shape of a single GET's 300 answer. */
static void batch_result(kvi_buf *b, const kvi_http_batch_item *it, const kv_batch *batch,
                         size_t i, int force_base64)
{
    const kv_value *v = NULL;
    uint64_t version = 0;
    int rc = kvi_batch_result(&v, &version, batch, i);
    int base64 = force_base64 || it->base64 || !kvi_http_is_text(it->key, it->key_len) ||
                 (v && !all_text(v));
    kvi_http_json_raw(b, i ? ",{\"op\":\"" : "{\"op\":\"");
    kvi_http_json_raw(b, op_names[it->kind]);
    kvi_http_json_raw(b, "\",");
    put_bytes(b, "key", it->key, it->key_len, base64);
    kvi_http_json_raw(b, ",\"status\":\"");
    kvi_http_json_raw(b, status_name(rc));
    kvi_http_json_raw(b, "\"");
    if (rc == KV_OK) {
        kvi_http_json_raw(b, ",\"version\":");
        kvi_http_json_u64(b, version);
    }
    if (v) {
        size_t n;
        kvi_http_json_raw(b, ",");
        if (kvi_value_sibling_count(v) > 1) {
            put_siblings(b, v, base64);
        } else {
            const void *data = kvi_value_data(v, &n);
            put_bytes(b, "value", data, n, base64);
        }
        if (kvi_value_expiry_ms(v)) {
            kvi_http_json_raw(b, ",\"expiresAt\":");
            kvi_http_json_u64(b, kvi_value_expiry_ms(v));
        }
        const void *ctx = kvi_value_context(v, &n);
        if (n) {
            kvi_http_json_raw(b, ",\"context\":");
            kvi_http_json_base64(b, ctx, n);
        }
    }
    if (base64)
        kvi_http_json_raw(b, ",\"encoding\":\"base64\"");
    kvi_http_json_raw(b, "}");
}

/* A batch's answer: the failure of the whole batch (message: why), or each
 * operation's result. The one way to build it, blocking or not. */
static void batch_answer(kvi_http_conn *c, int rc, const char *message, const kv_batch *batch,
                         const kvi_http_batch_body *body)
{
    if (rc != KV_OK) {
        fail_msg(c, rc, message);
        return;
    }
    kvi_http_json_raw(&c->out, "{\"results\":[");
    for (size_t i = 0; i < body->count; i++)
        batch_result(&c->out, &body->items[i], batch, i, c->force_base64);
    kvi_http_json_raw(&c->out, "]}");
}

/* The batch of a parsed body in *out; KV_OK, or the failure, answered
 * (*out NULL). */
static int build_batch(kvi_http_conn *c, kv_batch **out, const kvi_http_batch_body *body)
{
    kv_batch *batch = NULL;
    int rc = kvi_batch_new(&batch);
    if (rc != KV_OK) {
        fail_kv(c, rc);
        *out = NULL;
        return rc;
    }
    for (size_t i = 0; rc == KV_OK && i < body->count; i++) {
        const kvi_http_batch_item *it = &body->items[i];
        if (it->kind == KV_BATCH_PUT)
            rc = kvi_batch_put(batch, it->key, it->key_len, it->value, it->value_len, it->ttl_s);
        else if (it->kind == KV_BATCH_GET)
            rc = kvi_batch_get(batch, it->key, it->key_len);
        else
            rc = kvi_batch_delete(batch, it->key, it->key_len);
        if (rc != KV_OK) {
            char msg[300];
            snprintf(msg, sizeof msg, "operation %zu: %s", i, kvi_error_last());
            fail_msg(c, rc, msg);
        }
    }
    if (rc != KV_OK) {
        kvi_batch_free(batch);
        batch = NULL;
    }
    *out = batch;
    return rc;
}

/* Runs asynchronously as the single-key requests do when the table has
 * batch_async and the server can take it: the record then owns the batch
 * and the body, and kvi_http_finish builds the answer from them once the
 * batch ends. Otherwise it blocks here. */
static void handle_batch(kvi_http_conn *c)
{
    kvi_http_batch_body body;
    char err[256];
    int rc = kvi_http_parse_batch(&body, (const char *)c->body.data, c->body.len,
                                  KV_BATCH_MAX_OPS, err, sizeof err);
    if (rc != KV_OK) {
        fail_msg(c, rc, err);
        return;
    }
    kv_batch *batch = NULL;
    if (build_batch(c, &batch, &body) != KV_OK) {
        kvi_http_batch_body_free(&body);
        return;
    }
    kvi_http *h = c->server;
    kvi_http_async *a = h->ops->batch_async ? kvi_http_async_begin(c) : NULL;
    if (a) {
        /* Set before the start: the batch may end inside it. Nothing here
         * touches them after. */
        a->batch = batch;
        a->body = body;
        h->ops->batch_async(h->ops_ctx, c->policy, batch, &c->wopts, &c->ropts,
                            kvi_http_async_done, a);
        return;
    }
    rc = h->ops->batch(h->ops_ctx, c->policy, batch, &c->wopts, &c->ropts);
    batch_answer(c, rc, rc != KV_OK ? kvi_error_last() : "", batch, &body);
    kvi_batch_free(batch);
    kvi_http_batch_body_free(&body);
}

/* An asynchronous batch's answer, from the batch and body its record
 * holds (the record frees them, whichever side lets go of it last). */
static void finish_batch(kvi_http_conn *c, const kvi_http_result *r)
{
    const kvi_http_async *a = c->async;
    if (!a || !a->batch) {
        /* Not reached: only a batch started asynchronously ends here. */
        kvi_http_error(c, 500, "INTERNAL", KV_EINVAL, "a batch ended without its state");
        return;
    }
    batch_answer(c, r->rc, r->message ? r->message : "", a->batch, &a->body);
}

void kvi_http_async_free(kvi_http_async *a)
{
    kvi_value_free(a->value);
    free(a->json);
    kvi_batch_free(a->batch);
    kvi_http_batch_body_free(&a->body);
    free(a);
}

static void handle_cluster(kvi_http_conn *c)
{
    kvi_http *h = c->server;
    kvi_buf *b = &c->out;
    if (h->describe) {
        h->describe(h->describe_ctx, b);
        return;
    }
    /* A store alone holds one copy of each key. */
    kvi_http_json_raw(b, "{\"nodeId\":");
    kvi_http_json_message(b, h->node_id);
    kvi_http_json_raw(b, ",\"replicas\":1,\"replicationFactor\":1,\"members\":[{\"nodeId\":");
    kvi_http_json_message(b, h->node_id);
    kvi_http_json_raw(b, ",\"address\":");
    if (h->address[0])
        kvi_http_json_message(b, h->address);
    else
        kvi_http_json_raw(b, "null");
    kvi_http_json_raw(b, ",\"httpAddress\":");
    kvi_http_json_message(b, h->http_address);
    kvi_http_json_raw(b, "}]}");
}

/* GET /v1/status of a server that is no node's (h->status NULL): itself
 * alone, its /v1/cluster answer as the description of its one node. */
static void handle_status(kvi_http_conn *c)
{
    kvi_http *h = c->server;
    kvi_buf *b = &c->out;
    if (h->status_async) {
        /* Answered by kvi_http_finish once the members have answered or
         * their time is up; no thread waits meanwhile. */
        kvi_http_async *a = kvi_http_async_begin(c);
        if (!a) {
            kvi_http_error(c, 503, "BUSY", KV_EBUSY,
                           "the server is stopping (or out of memory): no status now");
            return;
        }
        h->status_async(h->describe_ctx, c->timeout_ms ? c->timeout_ms : KVI_HTTP_STATUS_TIMEOUT_MS,
                        kvi_http_async_done, a);
        return;
    }
    kvi_http_json_raw(b, "{\"nodeId\":");
    kvi_http_json_message(b, h->node_id);
    kvi_http_json_raw(b, ",\"nodes\":[{\"nodeId\":");
    kvi_http_json_message(b, h->node_id);
    kvi_http_json_raw(b, ",\"self\":true,\"up\":true,\"error\":null,\"description\":");
    handle_cluster(c);
    kvi_http_json_raw(b, "}]}");
}

/* GET / and /ui: the status page, with a policy that keeps it from loading
 * or sending anything elsewhere. */
static void handle_ui(kvi_http_conn *c)
{
    c->content_type = HTML_TYPE;
    c->csp = UI_CSP;
    kvi_buf_raw(&c->out, kvi_ui_status_html, kvi_ui_status_html_len);
}

/* POST /v1/admin/backup: a snapshot of this server's store (of this node
 * only) into the given directory, on this machine. */
static void handle_backup(kvi_http_conn *c)
{
    char dir[KV_BACKUP_MAX_PATH + 1];
    char err[256];
    int rc = kvi_http_parse_backup(dir, sizeof dir, (const char *)c->body.data, c->body.len,
                                   err, sizeof err);
    if (rc != KV_OK) {
        fail_msg(c, rc, err);
        return;
    }
    if ((rc = kvi_check_backup_dir(dir, strlen(dir), "\"dir\"")) != KV_OK) {
        fail_kv(c, rc);
        return;
    }
    char *report = NULL;
    rc = c->server->ops->backup(c->server->ops_ctx, &report, dir);
    if (rc != KV_OK) {
        fail_kv(c, rc);
    } else if (report) {
        kvi_http_json_raw(&c->out, report);
    } else {
        kvi_http_error(c, 500, "INTERNAL", KV_ENOMEM, "out of memory");
    }
    free(report);
}

static void handle_predict(kvi_http_conn *c)
{
    if (!c->server->predict) {
        kvi_http_error(c, 404, "NOT_FOUND", KV_ENOTFOUND,
                       "this server has no peers to predict staleness from (an embedded store)");
        return;
    }
    const char *why = "the prediction failed";
    int rc = c->server->predict(c->server->describe_ctx, &c->out, &c->ropts, &c->wopts, c->t_ms,
                                &why);
    if (rc == KV_ENOMEM)
        kvi_http_error(c, 500, "INTERNAL", rc, "%s", why);
    else if (rc != KV_OK)
        kvi_http_error(c, 400, "BAD_REQUEST", rc, "%s", why);
}

void kvi_http_handle(kvi_http_conn *c)
{
    c->status = 200;
    c->kv_status = KV_OK;
    c->content_type = JSON_TYPE;
    kvi_buf_reset(&c->out);
    switch (c->route) {
    case KVI_HTTP_ROUTE_KV:
        if (c->method == KVI_HTTP_GET)
            handle_get(c);
        else if (c->method == KVI_HTTP_PUT)
            handle_put(c);
        else
            handle_delete(c);
        break;
    case KVI_HTTP_ROUTE_CAS: handle_cas(c); break;
    case KVI_HTTP_ROUTE_BATCH: handle_batch(c); break;
    case KVI_HTTP_ROUTE_HEALTH: kvi_http_json_raw(&c->out, "{\"status\":\"ok\"}"); break;
    case KVI_HTTP_ROUTE_CLUSTER: handle_cluster(c); break;
    case KVI_HTTP_ROUTE_HOTKEYS:
        if (c->server->hotkeys)
            c->server->hotkeys(c->server->describe_ctx, &c->out);
        else
            kvi_http_error(c, 404, "NOT_FOUND", KV_ENOTFOUND,
                           "this server keeps no hot keys (an embedded store)");
        break;
    case KVI_HTTP_ROUTE_PREDICT: handle_predict(c); break;
    case KVI_HTTP_ROUTE_BACKUP: handle_backup(c); break;
    case KVI_HTTP_ROUTE_SCAN: handle_scan(c); break;
    case KVI_HTTP_ROUTE_STATUS: handle_status(c); break;
    case KVI_HTTP_ROUTE_UI: handle_ui(c); break;
    case KVI_HTTP_ROUTE_METRICS:
        c->content_type = METRICS_TYPE;
        kvi_metrics_render(c->server->metrics, &c->out);
        break;
    default:
        kvi_http_error(c, 404, "NOT_FOUND", KV_ENOTFOUND, "no such endpoint");
    }
}
