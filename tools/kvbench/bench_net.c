/*
 * bench_net.c - kvbench's network modes: a remote node through the binary
 * protocol (kv_client_open) or through the HTTP/JSON API (libcurl).
 *
 *   kvbench binary --endpoints HOST:PORT[,...] [flags]
 *   kvbench http --url http://HOST:PORT [flags]
 *   kvbench etcd --url http://HOST:PORT [flags]
 *
 * etcd mode drives an etcd server (the anchor of the cluster benchmark)
 * through its v3 JSON gateway: a PUT is POST /v3/kv/put, a GET is POST
 * /v3/kv/range and a CAS is POST /v3/kv/txn comparing the key's mod_revision
 * (success: the put; failure: a range, which tells the current revision),
 * keys and values in base64, as etcd's docs show. In http and etcd modes
 * --url may list several servers: thread t talks to the (t mod n)-th.
 *
 * Workload: --threads client threads draw keys uniformly from a key space of
 * --keys keys and do a CAS with probability --cas-ratio, else a GET with
 * probability --read-ratio, else a PUT of a --value-size value. A preload
 * phase first writes every key once (each thread a stride of the key space),
 * so that GETs find something; a GET of an absent or expired key is a "miss",
 * a valid answer, not an error.
 *
 * CAS: the process keeps one table, key -> the version (etcd: mod_revision)
 * last seen for it in any answer (preload put, put, get, CAS success or
 * conflict), shared by its threads like a client's cache. A CAS expects that
 * version (0, "only if absent", for a key never seen). A conflict answer
 * carries the current version: it is counted as a conflict (its own latency
 * row, neither a success nor an error), and the thread retries the same key
 * with that version at once, up to MAX_CAS_RETRIES times in a row; every
 * attempt is one request. With uniform keys, conflicts need two threads on
 * the same key at once, so --keys sets the contention.
 *
 * Connections: in binary mode all threads share one client handle with
 * --connections connections (kv_client_options.connections_per_node), many
 * requests in flight on each; in http mode each thread owns one curl easy
 * handle and so one keep-alive connection, one request at a time.
 *
 * The run lasts --duration seconds (default 10) or --requests requests in all,
 * whichever comes first when both are given. Each request is timed with
 * CLOCK_MONOTONIC into per-thread, per-operation histograms (histogram.h),
 * merged for a progress line a second on stderr and for the final table.
 * Failed requests are counted per kind and reported, never folded into the
 * latencies; any failure makes the exit status 1 unless --allow-errors.
 *
 * Traffic goes only to the given endpoints or URL: curl is told to use no
 * proxy, to follow no redirect and to speak plain HTTP only.
 */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <kv/kv.h>

#include "../common/credentials.h"
#include "histogram.h"
#include "kvbench.h"

#define FLUSH_INTERVAL_NS 100000000ull /* worker -> progress reporter */
#define MAX_ENDPOINTS 64
#define MAX_ERROR_KINDS 16
#define MAX_KEY_SIZE 64
#define MAX_CAS_RETRIES 8 /* conflicts in a row on one key before a new draw */
#define MAX_CAS_KEYS (UINT64_C(1) << 27) /* the version table: 8 bytes a key */

enum proto { PROTO_BINARY, PROTO_HTTP, PROTO_ETCD };
/* OP_CONFLICT is no request kind: it holds the CAS attempts that got a
 * conflict answer (their count and latencies), apart from the successes. */
enum op { OP_GET, OP_PUT, OP_CAS, OP_CONFLICT, OP_COUNT };
static const char *const op_names[OP_COUNT] = {"GET", "PUT", "CAS", "CONFLICT"};
static const char *const op_json_names[OP_COUNT] = {"get", "put", "cas", "cas_conflict"};
enum outcome { OUT_OK, OUT_MISS, OUT_CONFLICT, OUT_ERROR };
enum phase { PHASE_PRELOAD, PHASE_RUN };

struct net_config {
    enum proto proto;
    const char *mode;
    char *endpoints;      /* binary: the --endpoints list, copied */
    const char *ep[MAX_ENDPOINTS];
    size_t nep;
    char url[512];        /* http, etcd: the --url list as given, for messages */
    char *urls[MAX_ENDPOINTS]; /* each base URL without a trailing '/' */
    size_t nurl;
    unsigned threads;
    unsigned connections;
    unsigned depth;       /* binary: requests in flight per connection, async (0 = blocking) */
    double rate;          /* --rate: requests/s of the run in all (async); 0 = no limit */
    int server_pids[8];   /* --server-pids: whose CPU time to report */
    size_t n_server_pids;
    double duration_s;    /* 0 = no time limit (--requests only) */
    uint64_t requests;    /* 0 = no request limit */
    uint64_t keys;
    uint32_t key_size;
    uint32_t value_size;
    double read_ratio;
    double cas_ratio;
    uint64_t ttl_s;
    kv_consistency consistency; /* --consistency; DEFAULT = the server's */
    kv_consistency preload_consistency; /* --preload-consistency, else the same */
    bool have_preload_consistency;
    uint32_t timeout_ms;
    bool preload;
    bool allow_errors;
    bool json;
    uint64_t seed;
    char **tokens;        /* --token-file: tokens[0] is shown to the nodes */
    size_t n_tokens;
    char auth_header[1100]; /* http: "Authorization: Bearer TOKEN", or "" */
    const char *tls_ca_file; /* --tls-ca: binary and https */
    char *tls_ca_pem;
    double zipf;          /* --zipf S: keys drawn with P(rank r) ~ 1/r^S; 0 = uniform */
    double *zipf_cdf;     /* keys entries: the cumulative probabilities of the ranks */
    uint32_t hot_cache_ms; /* --hot-cache-ms: the client's cache of hot keys (binary) */
};

/* A key of rank r (0 = the hottest) by the Zipf distribution's CDF. */
static uint64_t zipf_pick(const struct net_config *cfg, uint64_t random)
{
    double u = (double)(random >> 11) / 9007199254740992.0; /* [0, 1) */
    uint64_t lo = 0, hi = cfg->keys - 1;
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (cfg->zipf_cdf[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* Errors of one kind ("UNAVAILABLE", "HTTP 503", "curl: Timeout was reached"). */
struct error_kind {
    char name[64];
    uint64_t count;
};

struct errors {
    struct error_kind kinds[MAX_ERROR_KINDS];
    size_t n;
    uint64_t other; /* beyond MAX_ERROR_KINDS distinct kinds */
};

static void errors_add(struct errors *e, const char *name, uint64_t count)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->kinds[i].name, name) == 0) {
            e->kinds[i].count += count;
            return;
        }
    if (e->n == MAX_ERROR_KINDS) {
        e->other += count;
        return;
    }
    snprintf(e->kinds[e->n].name, sizeof e->kinds[e->n].name, "%s", name);
    e->kinds[e->n++].count = count;
}

struct buf {
    char *data;
    size_t len, cap;
};

struct net_run;

struct net_worker {
    pthread_t thread;
    unsigned idx;
    struct net_run *run;
    uint64_t rng;
    char key[MAX_KEY_SIZE + 1];
    size_t vpos;
    /* http */
    CURL *curl;
    struct curl_slist *headers;
    const char *url;      /* this thread's base URL (cfg->urls[idx % nurl]) */
    char *urlbuf;         /* base URL + "/v1/kv/" + key [+ "/cas"] [+ "?consistency=..."] */
    size_t url_prefix;    /* length of base URL + "/v1/kv/" */
    char etcd_put[600], etcd_range[600], etcd_txn[600]; /* etcd: the endpoints */
    /* CAS: the key number of the current request, and the retry state */
    uint64_t k;
    unsigned cas_retries;
    bool retry_cas;
    struct buf body, resp;
    /* results of the current phase */
    kvb_hist total[OP_COUNT];
    kvb_hist interval[OP_COUNT];
    uint64_t ok[OP_COUNT], misses, errs[OP_COUNT];
    struct errors errors;
    uint64_t t_start, t_end;
    struct async_state *async; /* --depth: the async worker's state */
};

struct net_run {
    const struct net_config *cfg;
    kv *db; /* binary */
    const char *valbuf;
    size_t vallen;
    /* CAS workload: key -> last version (etcd: mod_revision) seen, or 0 */
    atomic_uint_fast64_t *versions;
    enum phase phase;
    atomic_bool stop;          /* the phase is over (time, requests, signal) */
    atomic_uint_fast64_t claimed; /* requests handed out in PHASE_RUN */
    atomic_uint_fast64_t interval_errors;
    atomic_bool error_printed; /* the first error message went to stderr */
    /* Progress: workers merge their interval histograms here every
     * FLUSH_INTERVAL_NS; the main thread prints and resets it every second.
     * Guarded by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kvb_hist interval;
    unsigned running;
};

/* ----------------------------------------------------------------- helpers */

/* Key number k as exactly key_size decimal digits, zero-padded: URL-safe. */
static void make_key(char *key, uint32_t len, uint64_t k)
{
    for (uint32_t i = len; i > 0; i--) {
        key[i - 1] = (char)('0' + k % 10);
        k /= 10;
    }
    key[len] = '\0';
}

/* Random alphanumeric bytes, so values need no escaping inside JSON. */
static char *make_value_buffer(uint32_t value_size, uint64_t seed, size_t *len_out)
{
    static const char alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    size_t len = (size_t)value_size + (1u << 20);
    char *buf = malloc(len);
    if (buf == NULL)
        return NULL;
    uint64_t rng = seed ^ 0x5eedf00dull;
    for (size_t i = 0; i < len; i++)
        buf[i] = alnum[splitmix64(&rng) % (sizeof alnum - 1)];
    *len_out = len;
    return buf;
}

static const char *next_value(struct net_worker *w)
{
    const struct net_run *r = w->run;
    uint32_t vs = r->cfg->value_size;
    if (w->vpos + vs > r->vallen)
        w->vpos = 0;
    const char *v = r->valbuf + w->vpos;
    w->vpos += vs + 1; /* shift by one so consecutive values differ */
    return v;
}

static bool buf_reserve(struct buf *b, size_t need)
{
    if (need <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (d == NULL)
        return false;
    b->data = d;
    b->cap = cap;
    return true;
}

/* The CAS table: the version last seen for the current key (0 = none). An
 * answer's version is stored as is, not as a maximum: a conflict answer is
 * the server's word on the current version. A race between two threads can
 * leave an older one, which costs one more conflict, nothing else. */
static uint64_t seen_version(const struct net_worker *w)
{
    return w->run->versions ? atomic_load_explicit(&w->run->versions[w->k],
                                                   memory_order_relaxed)
                            : 0;
}

static void see_version(struct net_worker *w, uint64_t version)
{
    if (w->run->versions)
        atomic_store_explicit(&w->run->versions[w->k], version, memory_order_relaxed);
}

/* The unsigned number after the first `"name":` in a JSON text, bare or
 * quoted (etcd's gateway quotes its int64s). false when absent. */
static bool json_u64_after(const char *json, const char *name, uint64_t *out)
{
    if (json == NULL)
        return false;
    const char *p = strstr(json, name);
    if (p == NULL)
        return false;
    p += strlen(name);
    while (*p == ' ')
        p++;
    if (*p == '"')
        p++;
    if (*p < '0' || *p > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno != 0)
        return false;
    *out = v;
    return true;
}

/* Record a failed request: count it by kind, print the first of the run. */
static void note_error(struct net_worker *w, enum op op, const char *kind, const char *detail)
{
    w->errs[op]++;
    errors_add(&w->errors, kind, 1);
    atomic_fetch_add(&w->run->interval_errors, 1);
    if (!atomic_exchange(&w->run->error_printed, true))
        fprintf(stderr, PROG ": first failed request (%s %s): %s%s%s\n", op_names[op], w->key,
                kind, detail[0] ? ": " : "", detail);
}

/* ------------------------------------------------------------- transports */

static const char *kv_code_name(int rc)
{
    switch (rc) {
    case KV_ENOTFOUND: return "NOT_FOUND";
    case KV_ECONFLICT: return "CONFLICT";
    case KV_ETOOBIG: return "TOO_BIG";
    case KV_EINVAL: return "INVALID_ARGUMENT";
    case KV_ETIMEDOUT: return "TIMEOUT";
    case KV_EUNAVAILABLE: return "UNAVAILABLE";
    case KV_EUNKNOWN_OUTCOME: return "UNKNOWN_OUTCOME";
    case KV_ECORRUPT: return "CORRUPT";
    case KV_EIO: return "IO_ERROR";
    case KV_ECLOSED: return "CLOSED";
    case KV_ENOMEM: return "OUT_OF_MEMORY";
    case KV_EPERM: return "NOT_PERMITTED";
    case KV_ENOTSUP: return "NOT_SUPPORTED";
    case KV_EBUSY: return "BUSY";
    }
    return "ERROR";
}

/* The consistency level of the phase's requests. */
static kv_consistency level(const struct net_run *r)
{
    return r->phase == PHASE_PRELOAD ? r->cfg->preload_consistency : r->cfg->consistency;
}

static enum outcome op_binary(struct net_worker *w, enum op op)
{
    const struct net_run *r = w->run;
    const struct net_config *cfg = r->cfg;
    int rc;
    if (op == OP_PUT || op == OP_CAS) {
        kv_write_options wo = KV_WRITE_OPTIONS_INIT;
        wo.ttl_s = cfg->ttl_s;
        wo.consistency = level(r);
        uint64_t version = 0;
        if (op == OP_PUT)
            rc = kv_put(&version, r->db, w->key, cfg->key_size, next_value(w),
                        cfg->value_size, &wo);
        else
            rc = kv_cas(&version, r->db, w->key, cfg->key_size, seen_version(w),
                        next_value(w), cfg->value_size, &wo);
        if (rc == KV_OK || rc == KV_ECONFLICT)
            see_version(w, version);
        if (rc == KV_ECONFLICT && op == OP_CAS)
            return OUT_CONFLICT;
    } else {
        kv_value *v = NULL;
        kv_read_options ro = KV_READ_OPTIONS_INIT;
        ro.consistency = level(r);
        rc = kv_get(&v, r->db, w->key, cfg->key_size, &ro);
        if (rc == KV_OK)
            see_version(w, kv_value_version(v));
        kv_value_free(v);
        if (rc == KV_ENOTFOUND)
            return OUT_MISS;
    }
    if (rc == KV_OK)
        return OUT_OK;
    char detail[600];
    snprintf(detail, sizeof detail, "%s (%d): %s", kv_strerror(rc), rc, kv_error_last());
    note_error(w, op, kv_code_name(rc), detail);
    return OUT_ERROR;
}

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct buf *b = ctx;
    size_t len = size * n;
    if (!buf_reserve(b, b->len + len + 1))
        return 0; /* curl reports CURLE_WRITE_ERROR */
    memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return len;
}

static const char *consistency_query(kv_consistency level)
{
    switch (level) {
    case KV_CONSISTENCY_ONE: return "?consistency=one";
    case KV_CONSISTENCY_QUORUM: return "?consistency=quorum";
    case KV_CONSISTENCY_ALL: return "?consistency=all";
    case KV_CONSISTENCY_SERIAL: return "?consistency=serial";
    default: return "";
    }
}

static void base64_append(struct buf *b, const unsigned char *in, size_t n)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = b->data + b->len;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = abc[v >> 18];
        *o++ = abc[(v >> 12) & 63];
        *o++ = abc[(v >> 6) & 63];
        *o++ = abc[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0);
        *o++ = abc[v >> 18];
        *o++ = abc[(v >> 12) & 63];
        *o++ = i + 1 < n ? abc[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    b->len = (size_t)(o - b->data);
}

/* Runs the request set up on w->curl; the HTTP status in *status, or
 * false (the failure noted) when curl itself failed. */
static bool perform(struct net_worker *w, enum op op, long *status)
{
    w->resp.len = 0;
    if (w->resp.data != NULL)
        w->resp.data[0] = '\0';
    CURLcode cc = curl_easy_perform(w->curl);
    if (cc != CURLE_OK) {
        char kind[64];
        snprintf(kind, sizeof kind, "curl: %s", curl_easy_strerror(cc));
        note_error(w, op, kind, "");
        return false;
    }
    *status = 0;
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, status);
    return true;
}

/* Notes an unexpected HTTP answer, with the start of its body. */
static enum outcome http_failure(struct net_worker *w, enum op op, long status)
{
    char kind[32];
    snprintf(kind, sizeof kind, "HTTP %ld", status);
    char detail[300];
    snprintf(detail, sizeof detail, "%.280s", w->resp.data ? w->resp.data : "");
    note_error(w, op, kind, detail);
    return OUT_ERROR;
}

static void buf_lit(struct buf *b, const char *lit)
{
    size_t n = strlen(lit);
    memcpy(b->data + b->len, lit, n);
    b->len += n;
}

/* etcd's v3 JSON gateway, keys and values in base64:
 *   GET  POST /v3/kv/range {"key"}; found when the answer has "kvs"
 *   PUT  POST /v3/kv/put {"key","value"}
 *   CAS  POST /v3/kv/txn {"compare":[{"key","target":"MOD","mod_revision"}],
 *                         "success":[{"request_put":{"key","value"}}],
 *                         "failure":[{"request_range":{"key"}}]}
 * A txn that applied says "succeeded":true (the gateway leaves out a false);
 * its header's revision is then the key's new mod_revision. One that did
 * not answers the range: the kvs' mod_revision, or none for an absent key
 * (mod_revision 0, which a compare with 0 matches). A put's header revision
 * and a range's mod_revision feed the CAS table too. */
static enum outcome op_etcd(struct net_worker *w, enum op op)
{
    const struct net_config *cfg = w->run->cfg;
    CURL *c = w->curl;
    struct buf *b = &w->body;
    const unsigned char *key = (const unsigned char *)w->key;
    b->len = 0;
    if (op == OP_CAS) {
        buf_lit(b, "{\"compare\":[{\"key\":\"");
        base64_append(b, key, cfg->key_size);
        b->len += (size_t)sprintf(b->data + b->len,
                                  "\",\"target\":\"MOD\",\"mod_revision\":\"%" PRIu64
                                  "\"}],\"success\":[{\"request_put\":{\"key\":\"",
                                  seen_version(w));
        base64_append(b, key, cfg->key_size);
        buf_lit(b, "\",\"value\":\"");
        base64_append(b, (const unsigned char *)next_value(w), cfg->value_size);
        buf_lit(b, "\"}}],\"failure\":[{\"request_range\":{\"key\":\"");
        base64_append(b, key, cfg->key_size);
        buf_lit(b, "\"}}]}");
    } else {
        buf_lit(b, "{\"key\":\"");
        base64_append(b, key, cfg->key_size);
        if (op == OP_PUT) {
            buf_lit(b, "\",\"value\":\"");
            base64_append(b, (const unsigned char *)next_value(w), cfg->value_size);
        }
        buf_lit(b, "\"}");
    }
    b->data[b->len] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, op == OP_PUT   ? w->etcd_put
                                     : op == OP_CAS ? w->etcd_txn
                                                    : w->etcd_range);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, b->data);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
    long status;
    if (!perform(w, op, &status))
        return OUT_ERROR;
    const char *resp = w->resp.data;
    if (status != 200 || resp == NULL || strstr(resp, "\"header\"") == NULL)
        return http_failure(w, op, status);
    uint64_t version = 0;
    switch (op) {
    case OP_GET:
        if (strstr(resp, "\"kvs\"") == NULL)
            return OUT_MISS;
        if (json_u64_after(resp, "\"mod_revision\":", &version))
            see_version(w, version);
        return OUT_OK;
    case OP_PUT:
        if (json_u64_after(resp, "\"revision\":", &version))
            see_version(w, version);
        return OUT_OK;
    default:
        if (strstr(resp, "\"succeeded\":true") != NULL) {
            if (!json_u64_after(resp, "\"revision\":", &version)) {
                note_error(w, op, "malformed response", resp);
                return OUT_ERROR;
            }
            see_version(w, version);
            return OUT_OK;
        }
        if (strstr(resp, "\"response_range\"") == NULL) {
            note_error(w, op, "malformed response", resp);
            return OUT_ERROR;
        }
        if (!json_u64_after(resp, "\"mod_revision\":", &version))
            version = 0; /* no kvs: the key is absent */
        see_version(w, version);
        return OUT_CONFLICT;
    }
}

/* kvd's HTTP API: GET and PUT /v1/kv/{key}; CAS is POST /v1/kv/{key}/cas
 * {"expectedVersion":N,"newValue":"..."}: 200 {"version":N} or 409 with the
 * current version beside the error object. --consistency goes in the query. */
static enum outcome op_http(struct net_worker *w, enum op op)
{
    const struct net_config *cfg = w->run->cfg;
    CURL *c = w->curl;
    char *end = w->urlbuf + w->url_prefix;
    memcpy(end, w->key, cfg->key_size);
    end += cfg->key_size;
    if (op == OP_CAS) {
        memcpy(end, "/cas", 4);
        end += 4;
    }
    strcpy(end, consistency_query(level(w->run)));
    curl_easy_setopt(c, CURLOPT_URL, w->urlbuf);
    if (op == OP_PUT || op == OP_CAS) {
        /* {"value":"...","ttl":N}, or {"expectedVersion":N,"newValue":"...",
         * "ttl":N}; values are alphanumeric (no escaping) */
        struct buf *b = &w->body;
        b->len = 0;
        if (op == OP_PUT)
            buf_lit(b, "{\"value\":\"");
        else
            b->len += (size_t)sprintf(b->data, "{\"expectedVersion\":%" PRIu64
                                      ",\"newValue\":\"", seen_version(w));
        memcpy(b->data + b->len, next_value(w), cfg->value_size);
        b->len += cfg->value_size;
        if (cfg->ttl_s != 0)
            b->len += (size_t)sprintf(b->data + b->len, "\",\"ttl\":%" PRIu64 "}", cfg->ttl_s);
        else
            b->len += (size_t)sprintf(b->data + b->len, "\"}");
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, op == OP_PUT ? "PUT" : "POST");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, b->data);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->len);
    } else {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, NULL);
    }
    long status;
    if (!perform(w, op, &status))
        return OUT_ERROR;
    if (op == OP_GET && status == 404)
        return OUT_MISS;
    uint64_t version = 0;
    if (op == OP_CAS && status == 409) {
        if (!json_u64_after(w->resp.data, "\"version\":", &version)) {
            note_error(w, op, "409 without the current version",
                       w->resp.data ? w->resp.data : "(empty)");
            return OUT_ERROR;
        }
        see_version(w, version);
        return OUT_CONFLICT;
    }
    if (status == 200 || (op == OP_PUT && (status == 201 || status == 204))) {
        /* A 200 without the expected field is not a success. */
        const char *want = op == OP_GET ? "\"value\"" : "\"version\"";
        if (status != 200)
            return OUT_OK;
        if (w->resp.data != NULL && strstr(w->resp.data, want) != NULL) {
            if (json_u64_after(w->resp.data, "\"version\":", &version))
                see_version(w, version);
            return OUT_OK;
        }
        note_error(w, op, "malformed response", w->resp.data ? w->resp.data : "(empty)");
        return OUT_ERROR;
    }
    return http_failure(w, op, status);
}

/* Per-thread curl state; returns false (message printed) on failure. */
static bool http_setup(struct net_worker *w)
{
    const struct net_config *cfg = w->run->cfg;
    w->url = cfg->urls[w->idx % cfg->nurl];
    size_t base = strlen(w->url);
    w->url_prefix = base + strlen("/v1/kv/");
    w->urlbuf = malloc(w->url_prefix + MAX_KEY_SIZE + 32);
    snprintf(w->etcd_put, sizeof w->etcd_put, "%s/v3/kv/put", w->url);
    snprintf(w->etcd_range, sizeof w->etcd_range, "%s/v3/kv/range", w->url);
    snprintf(w->etcd_txn, sizeof w->etcd_txn, "%s/v3/kv/txn", w->url);
    /* the largest body: an etcd txn, the key three times and the value in
     * base64, plus the JSON around them */
    size_t body = ((size_t)cfg->value_size / 3 + 1) * 4 + 3 * ((MAX_KEY_SIZE / 3 + 1) * 4) + 512;
    w->curl = curl_easy_init();
    w->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (w->headers != NULL)
        /* no "Expect: 100-continue" round trip before a body */
        w->headers = curl_slist_append(w->headers, "Expect:");
    if (w->headers != NULL && cfg->auth_header[0])
        w->headers = curl_slist_append(w->headers, cfg->auth_header);
    if (w->urlbuf == NULL || w->curl == NULL || w->headers == NULL ||
        !buf_reserve(&w->body, body) ||
        !buf_reserve(&w->resp, 4096)) {
        fprintf(stderr, PROG ": out of memory setting up curl\n");
        return false;
    }
    memcpy(w->urlbuf, w->url, base);
    memcpy(w->urlbuf + base, "/v1/kv/", strlen("/v1/kv/"));
    CURL *c = w->curl;
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    if (cfg->tls_ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->tls_ca_file);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, w->headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &w->resp);
    return true;
}

static void http_teardown(struct net_worker *w)
{
    if (w->curl != NULL)
        curl_easy_cleanup(w->curl);
    curl_slist_free_all(w->headers);
    free(w->urlbuf);
    free(w->body.data);
    free(w->resp.data);
}

/* One GET /v1/health (etcd: /health) of the thread's URL before the run, so
 * an unreachable URL fails at once. */
static bool http_check(struct net_worker *w)
{
    char url[600];
    snprintf(url, sizeof url, "%s%s", w->url,
             w->run->cfg->proto == PROTO_ETCD ? "/health" : "/v1/health");
    curl_easy_setopt(w->curl, CURLOPT_URL, url);
    curl_easy_setopt(w->curl, CURLOPT_HTTPGET, 1L);
    w->resp.len = 0;
    CURLcode cc = curl_easy_perform(w->curl);
    long status = 0;
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &status);
    if (cc == CURLE_OK && status == 200)
        return true;
    if (cc != CURLE_OK)
        fprintf(stderr, PROG ": cannot reach %s: %s\n", url, curl_easy_strerror(cc));
    else
        fprintf(stderr, PROG ": %s answered HTTP %ld\n", url, status);
    return false;
}

/* ----------------------------------------------------------------- workers */

static void flush_interval(struct net_worker *w)
{
    pthread_mutex_lock(&w->run->mu);
    for (int o = 0; o < OP_COUNT; o++) {
        kvb_hist_merge(&w->total[o], &w->interval[o]);
        kvb_hist_merge(&w->run->interval, &w->interval[o]);
    }
    pthread_mutex_unlock(&w->run->mu);
    for (int o = 0; o < OP_COUNT; o++)
        kvb_hist_init(&w->interval[o]);
}

static bool should_stop(struct net_run *r)
{
    return atomic_load_explicit(&r->stop, memory_order_relaxed) ||
           atomic_load_explicit(&g_stop, memory_order_relaxed);
}

/* The next request of worker w: its operation in *op and its key in w->k
 * and w->key. false when the phase is over for it. */
static bool pick_request(struct net_worker *w, uint64_t *next_key, enum op *op)
{
    struct net_run *r = w->run;
    const struct net_config *cfg = r->cfg;
    const uint64_t read_threshold = (uint64_t)(cfg->read_ratio * 9007199254740992.0); /* 2^53 */
    const uint64_t cas_threshold = (uint64_t)(cfg->cas_ratio * 9007199254740992.0);
    uint64_t k;
    if (should_stop(r))
        return false;
    if (r->phase == PHASE_PRELOAD) {
        if (*next_key >= cfg->keys)
            return false;
        k = *next_key;
        *next_key += cfg->threads;
        *op = OP_PUT;
    } else {
        if (cfg->requests != 0 && atomic_fetch_add(&r->claimed, 1) >= cfg->requests)
            return false;
        if (w->retry_cas) {
            k = w->k; /* the CAS again, with the version the conflict told */
            *op = OP_CAS;
        } else {
            k = cfg->zipf_cdf ? zipf_pick(cfg, splitmix64(&w->rng))
                              : splitmix64(&w->rng) % cfg->keys;
            /* the extra draw only with CAS on, so that the GET/PUT
             * streams of a seed stay what they were */
            if (cas_threshold != 0 && (splitmix64(&w->rng) >> 11) < cas_threshold)
                *op = OP_CAS;
            else
                *op = (splitmix64(&w->rng) >> 11) < read_threshold ? OP_GET : OP_PUT;
        }
    }
    w->k = k;
    make_key(w->key, cfg->key_size, k);
    return true;
}

/* Counts one request's outcome and latency; sets the CAS retry state. */
static void record_outcome(struct net_worker *w, enum op op, enum outcome out, uint64_t ns)
{
    if (out == OUT_CONFLICT) {
        kvb_hist_record(&w->interval[OP_CONFLICT], ns);
        w->ok[OP_CONFLICT]++;
        w->retry_cas = ++w->cas_retries <= MAX_CAS_RETRIES;
    } else {
        w->retry_cas = false;
        w->cas_retries = 0;
    }
    if (out != OUT_ERROR && out != OUT_CONFLICT) {
        kvb_hist_record(&w->interval[op], ns);
        w->ok[op]++;
        if (out == OUT_MISS)
            w->misses++;
    }
}

/* ------------------------------------------------------- the async worker
 *
 * --depth D: one thread keeps connections x D requests in flight through the
 * asynchronous API (kv_*_async) on a client opened with manual_loop, and
 * drives the client's loop itself (kv_run); each callback records its
 * request and starts the next one in the same slot. A slot carries its own
 * CAS retry state, so a conflict is retried on the same key by the slot
 * that saw it. */

struct slot {
    struct net_worker *w;
    enum op op;
    uint64_t k;
    uint64_t t0;
    unsigned cas_retries;
    bool retry_cas;
};

/* --rate: a request due within this goes now, with the others due by
 * then; the loop sleeps until the next is due, to the microsecond (ppoll on
 * the client's descriptor, timer slack cut to 1 ns). Sleeping in whole
 * milliseconds (kv_run's timeout) woke up to a millisecond late, and the
 * requests then due were charged for it: the client's own oversleep showed
 * as the server's p99. */
#define PACE_AHEAD_NS 100000ull

struct async_state {
    uint64_t next_key; /* preload */
    uint64_t last_flush;
    unsigned active;   /* slots with a request in flight */
    /* --rate: when the next request is due, and the slots waiting for
     * their turn (a stack). */
    uint64_t next_send_ns, interval_ns;
    struct slot **idle;
    unsigned n_idle;
};

static void slot_start(struct slot *sl, struct async_state *as);

static enum outcome async_outcome(struct slot *sl, const kv_result *res)
{
    struct net_worker *w = sl->w;
    w->k = sl->k;
    int rc = res->status;
    if (rc == KV_OK || (rc == KV_ECONFLICT && sl->op == OP_CAS))
        see_version(w, rc == KV_OK && res->value ? kv_value_version(res->value) : res->version);
    kv_value_free(res->value);
    if (rc == KV_OK)
        return OUT_OK;
    if (rc == KV_ECONFLICT && sl->op == OP_CAS)
        return OUT_CONFLICT;
    if (rc == KV_ENOTFOUND && sl->op == OP_GET)
        return OUT_MISS;
    char detail[600];
    snprintf(detail, sizeof detail, "%s (%d): %s", kv_strerror(rc), rc, res->message);
    note_error(w, sl->op, kv_code_name(rc), detail);
    return OUT_ERROR;
}

static void slot_done(void *ctx, kv_result *res)
{
    struct slot *sl = ctx;
    struct net_worker *w = sl->w;
    uint64_t t1 = now_ns();
    enum outcome out = async_outcome(sl, res);
    /* the worker's retry state is the slot's while it is recorded */
    w->retry_cas = sl->retry_cas;
    w->cas_retries = sl->cas_retries;
    record_outcome(w, sl->op, out, t1 - sl->t0);
    sl->retry_cas = w->retry_cas;
    sl->cas_retries = w->cas_retries;
    struct async_state *as = w->async;
    as->active--;
    if (t1 - as->last_flush >= FLUSH_INTERVAL_NS) {
        flush_interval(w);
        as->last_flush = t1;
    }
    slot_start(sl, as);
}

static void slot_start(struct slot *sl, struct async_state *as)
{
    struct net_worker *w = sl->w;
    struct net_run *r = w->run;
    const struct net_config *cfg = r->cfg;
    w->retry_cas = sl->retry_cas;
    w->k = sl->k;
    uint64_t t0 = now_ns();
    bool paced = as->interval_ns && r->phase == PHASE_RUN;
    /* Requests due within PACE_AHEAD_NS go now, so the loop wakes once
     * for those rather than once per request. */
    if (paced && t0 + PACE_AHEAD_NS < as->next_send_ns && !should_stop(r)) {
        as->idle[as->n_idle++] = sl; /* started when its turn comes */
        return;
    }
    enum op op;
    if (!pick_request(w, &as->next_key, &op))
        return;
    if (paced) {
        /* Latency counts from when the request was due, not from when it
         * was sent: a server that falls behind the rate is charged for the
         * wait (no coordinated omission). */
        if (as->next_send_ns < t0)
            t0 = as->next_send_ns; /* late: from when it was due */
        /* early (by under PACE_AHEAD_NS): from now */
        as->next_send_ns += as->interval_ns;
    }
    sl->op = op;
    sl->k = w->k;
    sl->t0 = t0;
    int rc;
    if (op == OP_GET) {
        kv_read_options ro = KV_READ_OPTIONS_INIT;
        ro.consistency = level(r);
        rc = kv_get_async(r->db, w->key, cfg->key_size, &ro, slot_done, sl);
    } else {
        kv_write_options wo = KV_WRITE_OPTIONS_INIT;
        wo.ttl_s = cfg->ttl_s;
        wo.consistency = level(r);
        if (op == OP_PUT)
            rc = kv_put_async(r->db, w->key, cfg->key_size, next_value(w), cfg->value_size, &wo,
                              slot_done, sl);
        else
            rc = kv_cas_async(r->db, w->key, cfg->key_size, seen_version(w), next_value(w),
                              cfg->value_size, &wo, slot_done, sl);
    }
    if (rc == KV_OK) {
        as->active++;
        return;
    }
    char detail[600];
    snprintf(detail, sizeof detail, "%s (%d): %s", kv_strerror(rc), rc, kv_error_last());
    note_error(w, op, kv_code_name(rc), detail);
}

static void *async_worker_main(struct net_worker *w)
{
    struct net_run *r = w->run;
    const struct net_config *cfg = r->cfg;
    unsigned n = cfg->connections * cfg->depth;
    struct slot *slots = calloc(n, sizeof *slots);
    struct async_state as = {.next_key = w->idx};
    as.idle = calloc(n ? n : 1, sizeof *as.idle);
    if (cfg->rate > 0)
        as.interval_ns = (uint64_t)(1e9 / cfg->rate);
    w->async = &as;
    w->t_start = now_ns();
    as.last_flush = w->t_start;
    as.next_send_ns = w->t_start;
    for (unsigned i = 0; slots && i < n; i++) {
        slots[i].w = w;
        slot_start(&slots[i], &as);
    }
    if (!slots)
        fprintf(stderr, PROG ": out of memory\n");
    /* Each request ends within the client's timeout, and idle slots are
     * dropped once the phase is over, so this ends too. */
    int kv_desc = -1;
    if (as.interval_ns) {
        if (kv_fd(&kv_desc, r->db) != KV_OK)
            kv_desc = -1; /* paced by kv_run's milliseconds then */
        prctl(PR_SET_TIMERSLACK, 1ul, 0ul, 0ul, 0ul);
    }
    while (as.active > 0 || as.n_idle > 0) {
        int wait_ms = 100;
        if (as.n_idle) {
            uint64_t now = now_ns(), due = as.next_send_ns - PACE_AHEAD_NS;
            wait_ms = due > now ? 1 + (int)((due - now) / 1000000u) : 0;
            if (due > now && kv_desc >= 0) {
                /* Until the next request is due or an answer comes. */
                struct pollfd pfd = {.fd = kv_desc, .events = POLLIN};
                uint64_t left = due - now;
                struct timespec ts = {.tv_sec = (time_t)(left / 1000000000u),
                                      .tv_nsec = (long)(left % 1000000000u)};
                ppoll(&pfd, 1, &ts, NULL);
                wait_ms = 0;
            }
        }
        int rc = kv_run(r->db, wait_ms);
        if (rc < 0) {
            fprintf(stderr, PROG ": kv_run: %s\n", kv_error_last());
            break;
        }
        uint64_t now = now_ns();
        while (as.n_idle && (now + PACE_AHEAD_NS >= as.next_send_ns || should_stop(r)))
            slot_start(as.idle[--as.n_idle], &as);
    }
    free(as.idle);
    w->t_end = now_ns();
    flush_interval(w);
    free(slots);
    w->async = NULL;

    pthread_mutex_lock(&r->mu);
    r->running--;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

static void *worker_main(void *arg)
{
    struct net_worker *w = arg;
    struct net_run *r = w->run;
    const struct net_config *cfg = r->cfg;
    if (cfg->depth)
        return async_worker_main(w);
    enum outcome (*do_op)(struct net_worker *, enum op) =
        cfg->proto == PROTO_BINARY ? op_binary : cfg->proto == PROTO_ETCD ? op_etcd : op_http;

    w->t_start = now_ns();
    uint64_t last_flush = w->t_start;
    uint64_t next_key = w->idx; /* preload: this thread's stride */
    for (;;) {
        if (should_stop(r))
            break;
        enum op op;
        if (!pick_request(w, &next_key, &op))
            break;
        uint64_t t0 = now_ns();
        enum outcome out = do_op(w, op);
        uint64_t t1 = now_ns();
        record_outcome(w, op, out, t1 - t0);
        if (t1 - last_flush >= FLUSH_INTERVAL_NS) {
            flush_interval(w);
            last_flush = t1;
        }
    }
    w->t_end = now_ns();
    flush_interval(w);

    pthread_mutex_lock(&r->mu);
    r->running--;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Main thread: a progress line a second until the workers are done; ends the
 * phase at the deadline (deadline_ns 0 = none).
 *
 * Watchdog: every request is bounded by --timeout (curl's timeout, the
 * client's request_timeout_ms), so a second with neither a completed request
 * nor an error, for longer than the timeout plus STALL_GRACE_NS, means a
 * request that will never return: say so and exit 1 rather than hang. */
#define STALL_GRACE_NS 10000000000ull
static void report_progress(struct net_run *r, uint64_t deadline_ns)
{
    const char *label = r->phase == PHASE_PRELOAD ? "preload" : r->cfg->mode;
    uint64_t t0 = now_ns(), last = t0, next = t0 + 1000000000ull, active = t0;
    const uint64_t stall_ns = (uint64_t)r->cfg->timeout_ms * 1000000ull + STALL_GRACE_NS;
    pthread_mutex_lock(&r->mu);
    while (r->running > 0) {
        uint64_t wake = next;
        if (deadline_ns != 0 && deadline_ns < wake)
            wake = deadline_ns;
        struct timespec ts = {(time_t)(wake / 1000000000ull), (long)(wake % 1000000000ull)};
        int rc = 0;
        while (r->running > 0 && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&r->cv, &r->mu, &ts);
        if (r->running == 0)
            break;
        uint64_t now = now_ns();
        if (deadline_ns != 0 && now >= deadline_ns) {
            atomic_store(&r->stop, true);
            deadline_ns = 0; /* workers finish their request in flight */
        }
        if (now < next)
            continue;
        uint64_t n = kvb_hist_count(&r->interval);
        uint64_t errs = atomic_exchange(&r->interval_errors, 0);
        fprintf(stderr,
                PROG ": %-8s %6.1f s %9.0f ops/s  p50 %8.2f us  p99 %8.2f us  errors %" PRIu64
                "\n",
                label, (double)(now - t0) / 1e9, (double)n * 1e9 / (double)(now - last),
                us(kvb_hist_percentile(&r->interval, 50.0)),
                us(kvb_hist_percentile(&r->interval, 99.0)), errs);
        kvb_hist_init(&r->interval);
        last = now;
        next += 1000000000ull;
        if (n != 0 || errs != 0) {
            active = now;
        } else if (now - active > stall_ns) {
            fprintf(stderr, PROG ": no request completed or failed for %.1f s, longer than "
                    "the %" PRIu32 " ms request timeout: a request is stuck; giving up\n",
                    (double)(now - active) / 1e9, r->cfg->timeout_ms);
            fflush(stdout);
            _exit(1); /* the stuck threads cannot be joined */
        }
    }
    pthread_mutex_unlock(&r->mu);
}

/* Results of one phase, all threads together. */
struct phase_result {
    kvb_hist hist[OP_COUNT];
    kvb_hist all;
    uint64_t ok[OP_COUNT], errs[OP_COUNT], misses;
    struct errors errors;
    double seconds;
    /* CPU seconds over the phase: kvbench's own, and the --server-pids'
     * (-1 when a pid could not be read). */
    double self_cpu_s, server_cpu_s;
};

/* User + system CPU seconds of this process. */
static double self_cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* User + system CPU seconds of the --server-pids together; -1 if one of
 * them cannot be read. */
static double servers_cpu(const struct net_config *cfg)
{
    double sum = 0;
    long tick = sysconf(_SC_CLK_TCK);
    for (size_t i = 0; i < cfg->n_server_pids; i++) {
        char path[64], line[2048];
        snprintf(path, sizeof path, "/proc/%d/stat", cfg->server_pids[i]);
        FILE *f = fopen(path, "r");
        if (!f)
            return -1;
        size_t n = fread(line, 1, sizeof line - 1, f);
        fclose(f);
        line[n] = 0;
        /* fields after the ")" that ends the command name: state is the
         * 3rd field, utime the 14th, stime the 15th */
        char *p = strrchr(line, ')');
        unsigned long long ut, st;
        if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
                         &st) != 2)
            return -1;
        sum += (double)(ut + st) / (double)tick;
    }
    return sum;
}

static void reset_workers(struct net_worker *ws, unsigned n)
{
    for (unsigned t = 0; t < n; t++) {
        struct net_worker *w = &ws[t];
        for (int o = 0; o < OP_COUNT; o++) {
            kvb_hist_init(&w->total[o]);
            kvb_hist_init(&w->interval[o]);
            w->ok[o] = w->errs[o] = 0;
        }
        w->misses = 0;
        w->retry_cas = false;
        w->cas_retries = 0;
        memset(&w->errors, 0, sizeof w->errors);
    }
}

/* Run one phase with every worker; returns false if threads could not start. */
static bool run_phase(struct net_run *r, struct net_worker *ws, enum phase phase,
                      struct phase_result *res)
{
    const struct net_config *cfg = r->cfg;
    r->phase = phase;
    atomic_store(&r->stop, false);
    atomic_store(&r->claimed, 0);
    atomic_store(&r->interval_errors, 0);
    kvb_hist_init(&r->interval);
    reset_workers(ws, cfg->threads);

    bool ok = true;
    unsigned started = 0;
    pthread_mutex_lock(&r->mu);
    r->running = cfg->threads;
    pthread_mutex_unlock(&r->mu);
    uint64_t t_begin = now_ns();
    double self0 = self_cpu(), servers0 = servers_cpu(cfg);
    for (; started < cfg->threads; started++) {
        int rc = pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]);
        if (rc != 0) {
            fprintf(stderr, PROG ": pthread_create: %s\n", strerror(rc));
            atomic_store(&r->stop, true);
            pthread_mutex_lock(&r->mu);
            r->running -= cfg->threads - started;
            pthread_mutex_unlock(&r->mu);
            ok = false;
            break;
        }
    }
    uint64_t deadline = 0;
    if (phase == PHASE_RUN && cfg->duration_s > 0)
        deadline = t_begin + (uint64_t)(cfg->duration_s * 1e9);
    report_progress(r, deadline);
    for (unsigned t = 0; t < started; t++)
        pthread_join(ws[t].thread, NULL);
    double self1 = self_cpu(), servers1 = servers_cpu(cfg);

    memset(res, 0, sizeof *res);
    res->self_cpu_s = self1 - self0;
    res->server_cpu_s = servers0 < 0 || servers1 < 0 ? -1 : servers1 - servers0;
    kvb_hist_init(&res->all);
    uint64_t first = UINT64_MAX, last = 0;
    for (int o = 0; o < OP_COUNT; o++)
        kvb_hist_init(&res->hist[o]);
    for (unsigned t = 0; t < started; t++) {
        struct net_worker *w = &ws[t];
        for (int o = 0; o < OP_COUNT; o++) {
            kvb_hist_merge(&res->hist[o], &w->total[o]);
            kvb_hist_merge(&res->all, &w->total[o]);
            res->ok[o] += w->ok[o];
            res->errs[o] += w->errs[o];
        }
        res->misses += w->misses;
        for (size_t k = 0; k < w->errors.n; k++)
            errors_add(&res->errors, w->errors.kinds[k].name, w->errors.kinds[k].count);
        res->errors.other += w->errors.other;
        if (w->t_start < first)
            first = w->t_start;
        if (w->t_end > last)
            last = w->t_end;
    }
    res->seconds = last > first ? (double)(last - first) / 1e9 : 0.0;
    return ok;
}

/* ------------------------------------------------------------------ output */

static uint64_t total_errors(const struct phase_result *p)
{
    uint64_t n = 0;
    for (int o = 0; o < OP_COUNT; o++)
        n += p->errs[o];
    return n;
}

static void print_text(const struct net_config *cfg, const char *target,
                       const struct phase_result *pre, const struct phase_result *res)
{
    printf("%s %s: threads %u, connections %u, depth %u, %" PRIu64 " keys, values %" PRIu32
           " bytes, read ratio %.2f, cas ratio %.2f\n",
           cfg->mode, target, cfg->threads,
           cfg->proto == PROTO_BINARY ? cfg->connections : cfg->threads, cfg->depth ? cfg->depth : 1,
           cfg->keys, cfg->value_size, cfg->read_ratio, cfg->cas_ratio);
    if (cfg->zipf > 0 || cfg->hot_cache_ms)
        printf("keys by %s%.2f, client cache of hot keys %s%u ms\n",
               cfg->zipf > 0 ? "Zipf, exponent " : "uniform", cfg->zipf > 0 ? cfg->zipf : 0.0,
               cfg->hot_cache_ms ? "on, " : "off", cfg->hot_cache_ms);
    if (cfg->preload) {
        printf("preload      %" PRIu64 " puts in %.3f s, %.0f ops/s, %" PRIu64 " errors\n",
               pre->ok[OP_PUT], pre->seconds,
               pre->seconds > 0 ? (double)pre->ok[OP_PUT] / pre->seconds : 0.0,
               total_errors(pre));
    }
    printf("%-6s %10s %10s %9s %9s %9s %9s %9s %9s\n", "op", "count", "ops/s", "p50 us",
           "p90 us", "p99 us", "p99.9 us", "max us", "errors");
    for (int o = 0; o <= OP_COUNT; o++) {
        if ((o == OP_CAS || o == OP_CONFLICT) && cfg->cas_ratio == 0)
            continue;
        const kvb_hist *h = o < OP_COUNT ? &res->hist[o] : &res->all;
        uint64_t n = kvb_hist_count(h);
        uint64_t e = o < OP_COUNT ? res->errs[o] : total_errors(res);
        printf("%-6s %10" PRIu64 " %10.0f %9.2f %9.2f %9.2f %9.2f %9.2f %9" PRIu64 "\n",
               o < OP_COUNT ? op_names[o] : "total", n,
               res->seconds > 0 ? (double)n / res->seconds : 0.0,
               us(kvb_hist_percentile(h, 50.0)), us(kvb_hist_percentile(h, 90.0)),
               us(kvb_hist_percentile(h, 99.0)), us(kvb_hist_percentile(h, 99.9)),
               us(kvb_hist_max(h)), e);
    }
    printf("%.3f s; GET misses (absent or expired keys): %" PRIu64 "\n", res->seconds,
           res->misses);
    uint64_t ops = kvb_hist_count(&res->all);
    if (ops) {
        printf("CPU per operation: kvbench %.2f us (%.0f%% of a core)", res->self_cpu_s * 1e6 / (double)ops,
               res->seconds > 0 ? 100.0 * res->self_cpu_s / res->seconds : 0.0);
        if (cfg->n_server_pids && res->server_cpu_s >= 0)
            printf(", servers %.2f us (%.0f%% of a core)", res->server_cpu_s * 1e6 / (double)ops,
                   res->seconds > 0 ? 100.0 * res->server_cpu_s / res->seconds : 0.0);
        printf("\n");
    }
    if (cfg->cas_ratio > 0)
        printf("CAS: %" PRIu64 " succeeded, %" PRIu64 " conflicts (each retried on the same key, "
               "up to %d in a row), %" PRIu64 " errors\n", res->ok[OP_CAS], res->ok[OP_CONFLICT],
               MAX_CAS_RETRIES, res->errs[OP_CAS]);
}

static void print_errors(const struct phase_result *p, const char *phase)
{
    for (size_t k = 0; k < p->errors.n; k++)
        fprintf(stderr, PROG ": %s errors: %" PRIu64 " x %s\n", phase, p->errors.kinds[k].count,
                p->errors.kinds[k].name);
    if (p->errors.other != 0)
        fprintf(stderr, PROG ": %s errors: %" PRIu64 " of other kinds\n", phase,
                p->errors.other);
}

static void json_hist(const char *name, const kvb_hist *h, double seconds, uint64_t errs)
{
    uint64_t n = kvb_hist_count(h);
    printf("\"%s\":{\"ops\":%" PRIu64 ",\"ops_per_sec\":%.1f,\"errors\":%" PRIu64
           ",\"mean_us\":%.3f,\"p50_us\":%.3f,\"p90_us\":%.3f,\"p99_us\":%.3f,"
           "\"p999_us\":%.3f,\"max_us\":%.3f}",
           name, n, seconds > 0 ? (double)n / seconds : 0.0, errs, kvb_hist_mean(h) / 1000.0,
           us(kvb_hist_percentile(h, 50.0)), us(kvb_hist_percentile(h, 90.0)),
           us(kvb_hist_percentile(h, 99.0)), us(kvb_hist_percentile(h, 99.9)),
           us(kvb_hist_max(h)));
}

static void json_errors(const struct errors *e)
{
    printf("{");
    for (size_t k = 0; k < e->n; k++) {
        printf("%s", k ? "," : "");
        json_string(stdout, e->kinds[k].name);
        printf(":%" PRIu64, e->kinds[k].count);
    }
    if (e->other != 0)
        printf("%s\"other\":%" PRIu64, e->n ? "," : "", e->other);
    printf("}");
}

static void print_json(const struct net_config *cfg, const char *target,
                       const struct phase_result *pre, const struct phase_result *res)
{
    printf("{\"tool\":\"kvbench\",\"mode\":\"%s\",\"libkv_version\":\"%s\",\"target\":",
           cfg->mode, kv_version(NULL, NULL, NULL));
    json_string(stdout, target);
    printf(",\"threads\":%u,\"connections\":%u,\"keys\":%" PRIu64 ",\"key_size\":%" PRIu32
           ",\"value_size\":%" PRIu32 ",\"read_ratio\":%.4f,\"cas_ratio\":%.4f,\"ttl\":%" PRIu64
           ",\"duration_limit_s\":%.3f,\"request_limit\":%" PRIu64 ",\"timeout_ms\":%" PRIu32,
           cfg->threads, cfg->proto == PROTO_BINARY ? cfg->connections : cfg->threads, cfg->keys,
           cfg->key_size, cfg->value_size, cfg->read_ratio, cfg->cas_ratio, cfg->ttl_s,
           cfg->duration_s,
           cfg->requests, cfg->timeout_ms);
    printf(",\"preload\":");
    if (cfg->preload) {
        printf("{\"seconds\":%.6f,", pre->seconds);
        json_hist("put", &pre->hist[OP_PUT], pre->seconds, pre->errs[OP_PUT]);
        printf(",\"error_kinds\":");
        json_errors(&pre->errors);
        printf("}");
    } else {
        printf("null");
    }
    printf(",\"depth\":%u,\"rate\":%.1f", cfg->depth ? cfg->depth : 1, cfg->rate);
    uint64_t ops = kvb_hist_count(&res->all);
    printf(",\"cpu_us_per_op\":{\"kvbench\":%.3f", ops ? res->self_cpu_s * 1e6 / (double)ops : 0.0);
    if (cfg->n_server_pids && res->server_cpu_s >= 0)
        printf(",\"servers\":%.3f", ops ? res->server_cpu_s * 1e6 / (double)ops : 0.0);
    printf("}");
    printf(",\"seconds\":%.6f,\"misses\":%" PRIu64 ",\"errors\":%" PRIu64
           ",\"conflicts\":%" PRIu64 ",", res->seconds, res->misses, total_errors(res),
           res->ok[OP_CONFLICT]);
    json_hist("total", &res->all, res->seconds, total_errors(res));
    /* cas: the successful CAS; cas_conflict: the attempts that got a
     * conflict answer (present with --cas-ratio only) */
    printf(",\"operations\":{");
    for (int o = 0; o < OP_COUNT; o++) {
        if ((o == OP_CAS || o == OP_CONFLICT) && cfg->cas_ratio == 0)
            continue;
        printf("%s", o ? "," : "");
        json_hist(op_json_names[o], &res->hist[o], res->seconds, res->errs[o]);
    }
    printf("},\"error_kinds\":");
    json_errors(&res->errors);
    printf("}\n");
}

/* --------------------------------------------------------------- arguments */

void kvb_net_usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " binary --endpoints HOST:PORT[,HOST:PORT...] [flags]\n"
        "       " PROG " http --url http://HOST:PORT[,http://HOST:PORT...] [flags]\n"
        "       " PROG " etcd --url http://HOST:PORT[,http://HOST:PORT...] [flags]\n"
        "\n"
        "Benchmarks a remote node: binary through kv_client_open (the binary\n"
        "protocol), http through its HTTP/JSON API (PUT/GET /v1/kv/{key}, POST\n"
        "/v1/kv/{key}/cas, libcurl); etcd benchmarks an etcd server through its v3\n"
        "JSON gateway (POST /v3/kv/put, /v3/kv/range, and /v3/kv/txn on the key's\n"
        "mod_revision for CAS), with the same workload. With several URLs, thread t\n"
        "talks to the (t mod n)-th.\n"
        "\n"
        "  --threads N           client threads (default 4); in http and etcd modes\n"
        "                        each is one keep-alive connection\n"
        "  --connections C       binary only: connections of the one client handle\n"
        "                        shared by all threads (default 1)\n"
        "  --depth D             binary only: one thread keeps C x D requests in flight\n"
        "                        (C = --connections) through the asynchronous API\n"
        "                        (kv_*_async on a manual_loop client); the client puts\n"
        "                        those started in one loop iteration on one connection\n"
        "  --rate R              with --depth: start R requests a second in all (an\n"
        "                        open loop: latency counts from when a request was\n"
        "                        due); the slots bound what is in flight\n"
        "  --server-pids P,...   report these processes' CPU time per operation beside\n"
        "                        kvbench's own (from /proc/PID/stat over the run)\n"
        "  --duration S          run for S seconds (default 10)\n"
        "  --requests N          run N requests in all (with --duration: whichever\n"
        "                        comes first)\n"
        "  --keys K              key space (default 100000)\n"
        "  --zipf S              draw keys by a Zipf distribution of exponent S (0.01..5;\n"
        "                        key 0 the hottest: P(rank r) ~ 1/r^S); default uniform\n"
        "  --hot-cache-ms MS     binary, blocking (no --depth): the client's cache of hot\n"
        "                        keys, values up to MS ms stale (kv_client_options\n"
        "                        hot_cache_staleness_ms); default off\n"
        "  --key-size B          key length, zero-padded decimal (default 16)\n"
        "  --value-size B        value length in bytes (default 200)\n"
        "  --read-ratio R        fraction of GETs, 0..1 (default 0.9), among the\n"
        "                        requests that are not CAS\n"
        "  --cas-ratio R         fraction of compare-and-swaps, 0..1 (default 0; 1 =\n"
        "                        CAS only). A CAS expects the version last seen for\n"
        "                        the key by any thread (preload, answers; 0 = absent);\n"
        "                        binary: kv_cas at --consistency (a cluster's default\n"
        "                        for CAS is serial; quorum is the old non-linearizable\n"
        "                        path); http: POST /v1/kv/{key}/cas; etcd: a txn on\n"
        "                        mod_revision. A conflict (it tells the current\n"
        "                        version) is counted apart, neither success nor\n"
        "                        error, and retried on the same key at once (up to\n"
        "                        8 in a row). CAS ops/s count successes only\n"
        "  --ttl S               TTL of every PUT in seconds (default 0 = none)\n"
        "  --consistency L       one, quorum, all or serial for every request (binary and\n"
        "                        http; default the server's: QUORUM, SERIAL for CAS)\n"
        "  --preload-consistency L  the level of the preload's puts (default\n"
        "                        --consistency's), e.g. quorum before a serial run\n"
        "  --timeout MS          request timeout (default 5000)\n"
        "  --token-file FILE     the client token to show (kvd --client-token-file):\n"
        "                        binary and http modes\n"
        "  --tls-ca FILE         TLS: the CA that signed the nodes' certificates\n"
        "                        (binary; http mode takes an https:// --url)\n"
        "  --no-preload          skip writing the key space before the run\n"
        "  --allow-errors        exit 0 even if requests failed\n"
        "  --seed S              seed of the key and operation streams (default 1)\n"
        "  --json                the results as one JSON object on stdout\n"
        "  -h, --help            this help\n"
        "\n"
        "Progress goes to stderr once a second. Exit status: 0 ok, 1 a request failed\n"
        "(without --allow-errors) or the target is unreachable, 2 bad usage.\n");
}

/* One base URL of the --url list, checked, without its trailing '/'s. */
static char *parse_url(const char *url)
{
    size_t scheme = strncmp(url, "https://", 8) == 0 ? 8 : strncmp(url, "http://", 7) == 0 ? 7 : 0;
    if (scheme == 0 || url[scheme] == '\0' || url[scheme] == '/')
        bad_usage("--url must be http://HOST:PORT or https://HOST:PORT, got '%s'", url);
    size_t len = strlen(url);
    while (len > scheme && url[len - 1] == '/')
        len--;
    if (memchr(url + scheme, '/', len - scheme) != NULL || memchr(url, '?', len) != NULL ||
        memchr(url, '#', len) != NULL)
        bad_usage("--url must be http://HOST:PORT without a path, got '%s'", url);
    if (len >= 512)
        bad_usage("--url is too long: '%s'", url);
    char *copy = strndup(url, len);
    if (copy == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(1);
    }
    return copy;
}

static void parse_urls(struct net_config *cfg, const char *list)
{
    if (strlen(list) >= sizeof cfg->url)
        bad_usage("--url is too long: '%s'", list);
    snprintf(cfg->url, sizeof cfg->url, "%s", list);
    for (size_t i = 0; i < cfg->nurl; i++)
        free(cfg->urls[i]);
    cfg->nurl = 0;
    char one[sizeof cfg->url];
    for (const char *p = list; p != NULL;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        memcpy(one, p, n);
        one[n] = '\0';
        if (n != 0) {
            if (cfg->nurl == MAX_ENDPOINTS)
                bad_usage("more than %s URLs", "64");
            cfg->urls[cfg->nurl++] = parse_url(one);
        }
        p = comma ? comma + 1 : NULL;
    }
    if (cfg->nurl == 0)
        bad_usage("--url needs http://HOST:PORT[,...], got '%s'", list);
}

static void parse_endpoints(struct net_config *cfg, const char *list)
{
    free(cfg->endpoints);
    cfg->endpoints = strdup(list);
    if (cfg->endpoints == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        exit(1);
    }
    cfg->nep = 0;
    for (char *p = cfg->endpoints; p != NULL;) {
        char *comma = strchr(p, ',');
        if (comma != NULL)
            *comma = '\0';
        if (*p != '\0') {
            if (cfg->nep == MAX_ENDPOINTS)
                bad_usage("more than %s endpoints", "64");
            if (strchr(p, ':') == NULL)
                bad_usage("an endpoint is HOST:PORT, got '%s'", p);
            cfg->ep[cfg->nep++] = p;
        }
        p = comma ? comma + 1 : NULL;
    }
    if (cfg->nep == 0)
        bad_usage("--endpoints needs HOST:PORT[,...], got '%s'", list);
}

static void parse_args(int argc, char **argv, struct net_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->mode = argv[1];
    cfg->proto = strcmp(argv[1], "binary") == 0 ? PROTO_BINARY
               : strcmp(argv[1], "etcd") == 0  ? PROTO_ETCD
                                               : PROTO_HTTP;
    cfg->threads = 4;
    cfg->connections = 1;
    cfg->keys = 100000;
    cfg->key_size = 16;
    cfg->value_size = 200;
    cfg->read_ratio = 0.9;
    cfg->timeout_ms = 5000;
    cfg->preload = true;
    cfg->seed = 1;
    bool have_duration = false, have_connections = false, have_threads = false;

    static const char *const bools[] = {"--json", "--no-preload", "--allow-errors", NULL};
    static const char *const valued[] = {
        "--endpoints", "--url", "--threads", "--connections", "--duration", "--requests",
        "--keys", "--key-size", "--value-size", "--read-ratio", "--cas-ratio", "--ttl", "--timeout",
        "--seed", "--consistency", "--preload-consistency", "--token-file", "--tls-ca",
        "--depth", "--server-pids", "--rate", "--zipf", "--hot-cache-ms", NULL};
    for (int i = 2; i < argc; i++) {
        char name[64];
        const char *val;
        kvb_next_flag(argc, argv, &i, bools, valued, kvb_net_usage, name, &val);
        if (val == NULL) {
            if (strcmp(name, "--json") == 0)
                cfg->json = true;
            else if (strcmp(name, "--no-preload") == 0)
                cfg->preload = false;
            else
                cfg->allow_errors = true;
            continue;
        }
        if (strcmp(name, "--tls-ca") == 0) {
            char err[512];
            unsigned char *pem = NULL;
            size_t len = 0;
            if (kvt_read_secret_file(val, &pem, &len, NULL, err, sizeof err) != 0)
                bad_usage("--tls-ca: %s", err);
            pem[len] = 0;
            free(cfg->tls_ca_pem);
            cfg->tls_ca_pem = (char *)pem;
            cfg->tls_ca_file = val;
        } else if (strcmp(name, "--token-file") == 0) {
            char err[512];
            int warning = 0;
            if (kvt_read_token_file(val, &cfg->tokens, &cfg->n_tokens, &warning, err,
                                    sizeof err) != 0)
                bad_usage("--token-file: %s", err);
            snprintf(cfg->auth_header, sizeof cfg->auth_header, "Authorization: Bearer %s",
                     cfg->tokens[0]);
        } else if (strcmp(name, "--endpoints") == 0) {
            if (cfg->proto != PROTO_BINARY)
                bad_usage("--endpoints is for binary mode; http mode takes --url%s", "");
            parse_endpoints(cfg, val);
        } else if (strcmp(name, "--url") == 0) {
            if (cfg->proto == PROTO_BINARY)
                bad_usage("--url is for http and etcd modes; binary mode takes --endpoints%s",
                          "");
            parse_urls(cfg, val);
        } else if (strcmp(name, "--threads") == 0) {
            cfg->threads = (unsigned)parse_u64(name, val, 1, 1024);
            have_threads = true;
        } else if (strcmp(name, "--rate") == 0) {
            cfg->rate = parse_double(name, val, 1.0, 1e8);
        } else if (strcmp(name, "--depth") == 0) {
            cfg->depth = (unsigned)parse_u64(name, val, 1, 4096);
        } else if (strcmp(name, "--server-pids") == 0) {
            char *copy = strdup(val), *save = NULL;
            for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                if (cfg->n_server_pids == 8)
                    bad_usage("--server-pids takes at most 8 pids%s", "");
                cfg->server_pids[cfg->n_server_pids++] = (int)parse_u64(name, t, 1, 1u << 30);
            }
            free(copy);
        } else if (strcmp(name, "--connections") == 0) {
            cfg->connections = (unsigned)parse_u64(name, val, 1, 1024);
            have_connections = true;
        } else if (strcmp(name, "--duration") == 0) {
            cfg->duration_s = parse_double(name, val, 0.001, 1e6);
            have_duration = true;
        } else if (strcmp(name, "--requests") == 0) {
            cfg->requests = parse_u64(name, val, 1, UINT64_C(1) << 50);
        } else if (strcmp(name, "--keys") == 0) {
            cfg->keys = parse_u64(name, val, 1, UINT64_C(1) << 40);
        } else if (strcmp(name, "--zipf") == 0) {
            cfg->zipf = parse_double(name, val, 0.01, 5.0);
        } else if (strcmp(name, "--hot-cache-ms") == 0) {
            cfg->hot_cache_ms = (uint32_t)parse_u64(name, val, 1, 3600000);
        } else if (strcmp(name, "--key-size") == 0) {
            cfg->key_size = (uint32_t)parse_u64(name, val, 1, MAX_KEY_SIZE);
        } else if (strcmp(name, "--value-size") == 0) {
            cfg->value_size = (uint32_t)parse_u64(name, val, 0, KV_MAX_VALUE_SIZE_LIMIT);
        } else if (strcmp(name, "--read-ratio") == 0) {
            cfg->read_ratio = parse_double(name, val, 0.0, 1.0);
        } else if (strcmp(name, "--cas-ratio") == 0) {
            cfg->cas_ratio = parse_double(name, val, 0.0, 1.0);
        } else if (strcmp(name, "--ttl") == 0) {
            cfg->ttl_s = parse_u64(name, val, 0, UINT64_C(1) << 40);
        } else if (strcmp(name, "--timeout") == 0) {
            cfg->timeout_ms = (uint32_t)parse_u64(name, val, 1, 3600000);
        } else if (strcmp(name, "--seed") == 0) {
            cfg->seed = parse_u64(name, val, 0, UINT64_MAX);
        } else if (strcmp(name, "--consistency") == 0 ||
                   strcmp(name, "--preload-consistency") == 0) {
            kv_consistency l;
            if (strcmp(val, "one") == 0)
                l = KV_CONSISTENCY_ONE;
            else if (strcmp(val, "quorum") == 0)
                l = KV_CONSISTENCY_QUORUM;
            else if (strcmp(val, "all") == 0)
                l = KV_CONSISTENCY_ALL;
            else if (strcmp(val, "serial") == 0)
                l = KV_CONSISTENCY_SERIAL;
            else
                bad_usage("--consistency and --preload-consistency must be one, quorum, all "
                          "or serial, got '%s'", val);
            if (name[2] == 'c') {
                cfg->consistency = l;
            } else {
                cfg->preload_consistency = l;
                cfg->have_preload_consistency = true;
            }
        }
    }
    if (!cfg->have_preload_consistency)
        cfg->preload_consistency = cfg->consistency;
    if (cfg->proto == PROTO_BINARY && cfg->nep == 0)
        bad_usage("binary mode needs --endpoints HOST:PORT[,...]%s", "");
    if (cfg->proto != PROTO_BINARY && cfg->nurl == 0)
        bad_usage("http and etcd modes need --url http://HOST:PORT%s", "");
    if (cfg->proto != PROTO_BINARY && cfg->threads < cfg->nurl)
        bad_usage("--threads must be at least the number of URLs (each URL gets a "
                  "thread)%s", "");
    if (cfg->cas_ratio > 0 && cfg->keys > MAX_CAS_KEYS)
        bad_usage("--cas-ratio keeps a version per key: at most %s --keys",
                  "134217728");
    if (cfg->proto == PROTO_ETCD &&
        (cfg->consistency != KV_CONSISTENCY_DEFAULT || cfg->have_preload_consistency))
        bad_usage("--consistency is for libkv; etcd reads and writes through its quorum%s", "");
    if (cfg->proto == PROTO_ETCD && cfg->ttl_s != 0)
        bad_usage("--ttl is not supported in etcd mode (etcd uses leases)%s", "");
    if (cfg->proto != PROTO_BINARY && have_connections)
        bad_usage("--connections is for binary mode; in http mode each thread is one "
                  "connection%s", "");
    if (cfg->depth && cfg->proto != PROTO_BINARY)
        bad_usage("--depth is for binary mode (the asynchronous client)%s", "");
    if (cfg->depth && have_threads && cfg->threads != 1)
        bad_usage("--depth runs one thread that keeps connections x depth requests in "
                  "flight; leave --threads out%s", "");
    if (cfg->depth)
        cfg->threads = 1;
    if (cfg->rate > 0 && !cfg->depth)
        bad_usage("--rate paces the asynchronous load: give --depth too%s", "");
    if (!have_duration && cfg->requests == 0)
        cfg->duration_s = 10.0;
    if (cfg->hot_cache_ms && (cfg->proto != PROTO_BINARY || cfg->depth))
        bad_usage("--hot-cache-ms is the blocking binary client's cache: binary mode, no "
                  "--depth%s", "");
    if (cfg->zipf > 0 && cfg->keys > (UINT64_C(1) << 27))
        bad_usage("--zipf keeps a table of every key's probability: at most %s --keys",
                  "134217728");
    if (cfg->zipf > 0) {
        cfg->zipf_cdf = malloc(cfg->keys * sizeof *cfg->zipf_cdf);
        if (!cfg->zipf_cdf)
            bad_usage("out of memory for the --zipf table%s", "");
        double sum = 0;
        for (uint64_t r = 0; r < cfg->keys; r++)
            sum += pow((double)(r + 1), -cfg->zipf);
        double acc = 0;
        for (uint64_t r = 0; r < cfg->keys; r++) {
            acc += pow((double)(r + 1), -cfg->zipf) / sum;
            cfg->zipf_cdf[r] = acc;
        }
        cfg->zipf_cdf[cfg->keys - 1] = 1.0; /* no rank past the last */
    }
    /* every key of the space must have its own key_size-digit name */
    uint64_t space = 1;
    for (uint32_t d = 0; d < cfg->key_size && space < cfg->keys; d++)
        space = space > UINT64_MAX / 10 ? UINT64_MAX : space * 10;
    if (space < cfg->keys)
        bad_usage("--key-size is too small for --keys (%s)", "decimal keys");
}

/* -------------------------------------------------------------------- mode */

int kvb_net_main(int argc, char **argv)
{
    struct net_config cfg;
    parse_args(argc, argv, &cfg);
    kvb_install_signals();

    char target[600];
    if (cfg.proto == PROTO_BINARY) {
        size_t off = 0;
        target[0] = '\0';
        for (size_t i = 0; i < cfg.nep; i++)
            off += (size_t)snprintf(target + off, off < sizeof target ? sizeof target - off : 0,
                                    "%s%s", i ? "," : "", cfg.ep[i]);
    } else {
        snprintf(target, sizeof target, "%s", cfg.url);
    }

    int status = 0;
    struct net_run *r = calloc(1, sizeof *r);
    struct net_worker *ws = calloc(cfg.threads, sizeof *ws);
    struct phase_result *pre = calloc(1, sizeof *pre);
    struct phase_result *res = calloc(1, sizeof *res);
    size_t vallen = 0;
    char *valbuf = make_value_buffer(cfg.value_size, cfg.seed, &vallen);
    if (r == NULL || ws == NULL || pre == NULL || res == NULL || valbuf == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        free(r), free(ws), free(pre), free(res), free(valbuf), free(cfg.endpoints), kvt_free_tokens(cfg.tokens, cfg.n_tokens);
        return 1;
    }
    r->cfg = &cfg;
    r->valbuf = valbuf;
    r->vallen = vallen;
    if (cfg.cas_ratio > 0) {
        r->versions = calloc(cfg.keys, sizeof *r->versions); /* zero: never seen */
        if (r->versions == NULL) {
            fprintf(stderr, PROG ": out of memory for the CAS version table\n");
            free(r), free(ws), free(pre), free(res), free(valbuf), free(cfg.endpoints);
            kvt_free_tokens(cfg.tokens, cfg.n_tokens);
            return 1;
        }
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    for (unsigned t = 0; t < cfg.threads; t++) {
        ws[t].idx = t;
        ws[t].run = r;
        ws[t].rng = cfg.seed + 0x632be59bd9b4e019ull * (t + 1);
        ws[t].vpos = (size_t)t * 7919 % (vallen - cfg.value_size);
    }

    fprintf(stderr,
            PROG ": %s %s, libkv %s; threads %u, connections %u, %" PRIu64 " keys of %" PRIu32
            " bytes, values %" PRIu32 " bytes, read ratio %.2f, cas ratio %.2f, ttl %" PRIu64
            " s, ",
            cfg.mode, target, kv_version(NULL, NULL, NULL), cfg.threads,
            cfg.proto == PROTO_BINARY ? cfg.connections : cfg.threads, cfg.keys, cfg.key_size,
            cfg.value_size, cfg.read_ratio, cfg.cas_ratio, cfg.ttl_s);
    if (cfg.requests != 0)
        fprintf(stderr, "%" PRIu64 " requests%s", cfg.requests, cfg.duration_s > 0 ? " or " : "");
    if (cfg.duration_s > 0)
        fprintf(stderr, "%.1f s", cfg.duration_s);
    fprintf(stderr, "%s\n", cfg.preload ? "" : ", no preload");

    bool curl_inited = false;
    if (cfg.proto == PROTO_BINARY) {
        kv_client_options co = KV_CLIENT_OPTIONS_INIT;
        co.connections_per_node = cfg.connections;
        co.request_timeout_ms = cfg.timeout_ms;
        co.connect_timeout_ms = cfg.timeout_ms;
        co.auth_token = cfg.tokens ? cfg.tokens[0] : NULL;
        co.tls_ca_pem = cfg.tls_ca_pem;
        co.manual_loop = cfg.depth != 0; /* the async worker drives the loop */
        co.max_inflight = cfg.depth ? cfg.depth * 2 : 0;
        co.hot_cache_staleness_ms = cfg.hot_cache_ms;
        int rc = kv_client_open(&r->db, cfg.ep, cfg.nep, &co);
        if (rc == KV_OK)
            rc = kv_ping(r->db);
        if (rc != KV_OK) {
            fprintf(stderr, PROG ": cannot reach %s: %s (%d): %s\n", target, kv_strerror(rc), rc,
                    kv_error_last());
            status = 1;
        }
    } else {
        CURLcode cc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (cc != CURLE_OK) {
            fprintf(stderr, PROG ": curl_global_init: %s\n", curl_easy_strerror(cc));
            status = 1;
        } else {
            curl_inited = true;
            for (unsigned t = 0; status == 0 && t < cfg.threads; t++)
                if (!http_setup(&ws[t]))
                    status = 1;
            /* threads 0 .. nurl-1 cover every URL once */
            for (size_t u = 0; status == 0 && u < cfg.nurl; u++)
                if (!http_check(&ws[u]))
                    status = 1;
        }
    }

    if (status == 0 && cfg.preload) {
        bool started = run_phase(r, ws, PHASE_PRELOAD, pre);
        /* a mark for scripts that time the measured phase from outside */
        fprintf(stderr, PROG ": preload done: %" PRIu64 " puts in %.3f s\n", pre->ok[OP_PUT],
                pre->seconds);
        if (!started)
            status = 1;
        else if (total_errors(pre) != 0) {
            print_errors(pre, "preload");
            if (!cfg.allow_errors) {
                fprintf(stderr, PROG ": %" PRIu64 " preload requests failed; stopping "
                        "(--allow-errors to go on)\n", total_errors(pre));
                status = 1;
            }
        }
    }
    if (status == 0 && !atomic_load(&g_stop)) {
        if (!run_phase(r, ws, PHASE_RUN, res))
            status = 1;
        if (cfg.json)
            print_json(&cfg, target, pre, res);
        else
            print_text(&cfg, target, pre, res);
        fflush(stdout);
        print_errors(res, "run");
        uint64_t errs = total_errors(res);
        if (errs != 0 && !cfg.allow_errors) {
            fprintf(stderr, PROG ": %" PRIu64 " requests failed (--allow-errors to exit 0)\n",
                    errs);
            status = 1;
        }
    }

    for (unsigned t = 0; t < cfg.threads; t++)
        http_teardown(&ws[t]);
    if (curl_inited)
        curl_global_cleanup();
    kv_close(r->db);
    free(r->versions);
    for (size_t i = 0; i < cfg.nurl; i++)
        free(cfg.urls[i]);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
    free(ws);
    free(pre);
    free(res);
    free(valbuf);
    free(cfg.endpoints);
    kvt_free_tokens(cfg.tokens, cfg.n_tokens);
    free(cfg.tls_ca_pem);
    free(cfg.zipf_cdf);
    if (g_signal != 0) {
        fprintf(stderr, PROG ": interrupted\n");
        return 128 + g_signal;
    }
    return status;
}
