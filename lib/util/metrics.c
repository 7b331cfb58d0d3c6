/* util/metrics.c - counters and histograms for /metrics. */
#include "util/metrics.h"
#include "util/clock.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kv/common.h>

/* Histogram bucket upper bounds, in nanoseconds (Prometheus "le"): ten a
 * decade, 1 us to 10 s (a read the node answers from its row cache takes a
 * few microseconds). */
#define DECADE(x)                                                                           \
    (x), (x) * 5 / 4, (x) * 3 / 2, (x) * 2, (x) * 5 / 2, (x) * 3, (x) * 4, (x) * 5, (x) * 6, \
        (x) * 8
static const uint64_t bucket_ns[] = {
    DECADE(1000ull),      DECADE(10000ull),      DECADE(100000ull),     DECADE(1000000ull),
    DECADE(10000000ull),  DECADE(100000000ull),  DECADE(1000000000ull),
    10000000000ull,
};
#undef DECADE
#define N_BUCKETS (sizeof bucket_ns / sizeof bucket_ns[0])

/* Outcome classes, so the counter has a handful of label values. */
typedef enum outcome { OUT_OK, OUT_NOT_FOUND, OUT_CONFLICT, OUT_CLIENT_ERROR,
                       OUT_SERVER_ERROR, OUT_COUNT } outcome;
static const char *const outcome_names[OUT_COUNT] = {
    "ok", "not_found", "conflict", "client_error", "server_error"};
static const char *const proto_names[KVI_PROTO_COUNT] = {"binary", "http"};
static const char *const op_names[KVI_MOP_COUNT] = {"get", "put", "delete", "cas", "batch", "other"};
static const char *const level_names[KVI_LEVEL_COUNT] = {"none",   "one",    "quorum",
                                                         "all",    "serial", "explicit"};

/* The outcomes of one protocol's operation. */
typedef struct counters {
    atomic_uint_fast64_t requests[OUT_COUNT];
} counters;

/* The latencies of one protocol's operation at one level. */
typedef struct histogram {
    atomic_uint_fast64_t buckets[N_BUCKETS + 1]; /* last: +Inf */
    atomic_uint_fast64_t sum_ns;
} histogram;

/* Its requests: the sum of its buckets, read when rendering rather than
 * counted apart on every request. */
static uint64_t histogram_count(histogram *h)
{
    uint64_t n = 0;
    for (size_t i = 0; i <= N_BUCKETS; i++)
        n += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
    return n;
}

struct kvi_metrics {
    counters c[KVI_PROTO_COUNT][KVI_MOP_COUNT];
    histogram h[KVI_PROTO_COUNT][KVI_MOP_COUNT][KVI_LEVEL_COUNT];
    uint64_t slow_ns;                 /* 0: no request is slow */
    atomic_uint_fast64_t slow_total;
    atomic_uint_fast64_t slow_window; /* since the last kvi_metrics_take_slow */
    /* The window's slowest: latency, and (proto << 8 | op) of it. Updated
     * without a lock, so the two may come from different requests when two
     * slow ones race; the count is exact. */
    atomic_uint_fast64_t slowest_ns;
    atomic_uint slowest_what;
    kvi_metrics_extra_fn extra;
    void *extra_ctx;
};

void kvi_metrics_set_extra(kvi_metrics *m, kvi_metrics_extra_fn fn, void *ctx)
{
    m->extra = fn;
    m->extra_ctx = ctx;
}

void kvi_metrics_set_slow(kvi_metrics *m, uint64_t slow_ns)
{
    m->slow_ns = slow_ns;
}

static void record_slow(kvi_metrics *m, kvi_metric_proto proto, kvi_metric_op op,
                        uint64_t latency_ns)
{
    atomic_fetch_add_explicit(&m->slow_total, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->slow_window, 1, memory_order_relaxed);
    uint_fast64_t seen = atomic_load_explicit(&m->slowest_ns, memory_order_relaxed);
    while (latency_ns > seen) {
        if (atomic_compare_exchange_weak_explicit(&m->slowest_ns, &seen, latency_ns,
                                                  memory_order_relaxed, memory_order_relaxed)) {
            atomic_store_explicit(&m->slowest_what, (unsigned)proto << 8 | (unsigned)op,
                                  memory_order_relaxed);
            break;
        }
    }
}

void kvi_metrics_take_slow(kvi_metrics *m, kvi_slow_window *out)
{
    out->count = atomic_exchange(&m->slow_window, 0);
    out->slowest_ns = atomic_exchange(&m->slowest_ns, 0);
    unsigned what = atomic_load(&m->slowest_what);
    unsigned proto = what >> 8, op = what & 0xffu;
    out->slowest_proto = proto_names[proto < KVI_PROTO_COUNT ? proto : 0];
    out->slowest_op = op_names[op < KVI_MOP_COUNT ? op : KVI_MOP_OTHER];
}

kvi_metrics *kvi_metrics_new(void)
{
    return calloc(1, sizeof(kvi_metrics));
}

void kvi_metrics_free(kvi_metrics *m)
{
    free(m);
}

uint64_t kvi_metrics_now_ns(void)
{
    return kvi_monotonic_ns();
}

static outcome classify(int status)
{
    switch (status) {
    case KV_OK: return OUT_OK;
    case KV_ENOTFOUND: return OUT_NOT_FOUND;
    case KV_ECONFLICT: return OUT_CONFLICT;
    case KV_EINVAL:
    case KV_ETOOBIG:
    case KV_ENOTSUP: return OUT_CLIENT_ERROR;
    default: return OUT_SERVER_ERROR;
    }
}

kvi_metric_level kvi_metric_level_of(int consistency)
{
    switch (consistency) {
    case KV_CONSISTENCY_ONE: return KVI_LEVEL_ONE;
    case KV_CONSISTENCY_DEFAULT:
    case KV_CONSISTENCY_QUORUM: return KVI_LEVEL_QUORUM;
    case KV_CONSISTENCY_ALL: return KVI_LEVEL_ALL;
    case KV_CONSISTENCY_SERIAL: return KVI_LEVEL_SERIAL;
    case KV_CONSISTENCY_EXPLICIT: return KVI_LEVEL_EXPLICIT;
    default: return KVI_LEVEL_NONE;
    }
}

size_t kvi_metrics_bounds(const uint64_t **bounds_ns)
{
    *bounds_ns = bucket_ns;
    return N_BUCKETS;
}

/* The first bucket whose bound is at least latency_ns (N_BUCKETS: +Inf). */
static size_t bucket_of(uint64_t latency_ns)
{
    size_t lo = 0, hi = N_BUCKETS;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (latency_ns > bucket_ns[mid])
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void histogram_record(histogram *h, uint64_t latency_ns)
{
    atomic_fetch_add_explicit(&h->buckets[bucket_of(latency_ns)], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_ns, latency_ns, memory_order_relaxed);
}

void kvi_metrics_record(kvi_metrics *m, kvi_metric_proto proto, kvi_metric_op op,
                        kvi_metric_level level, int status, uint64_t latency_ns)
{
    if (!m || proto >= KVI_PROTO_COUNT || op >= KVI_MOP_COUNT)
        return;
    if (level >= KVI_LEVEL_COUNT)
        level = KVI_LEVEL_NONE;
    atomic_fetch_add_explicit(&m->c[proto][op].requests[classify(status)], 1,
                              memory_order_relaxed);
    histogram_record(&m->h[proto][op][level], latency_ns);
    if (m->slow_ns && latency_ns >= m->slow_ns)
        record_slow(m, proto, op, latency_ns);
}

static void appendf(kvi_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void appendf(kvi_buf *b, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n > 0)
        kvi_buf_raw(b, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

/* One histogram's lines, when it counted a request. */
static void render_histogram(kvi_buf *b, histogram *h, const char *proto, const char *op,
                             const char *level)
{
    if (!histogram_count(h))
        return;
    unsigned long long cumulative = 0;
    for (size_t i = 0; i <= N_BUCKETS; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < N_BUCKETS)
            appendf(b, "kv_request_duration_seconds_bucket{proto=\"%s\",op=\"%s\",level=\"%s\","
                       "le=\"%g\"} %llu\n",
                    proto, op, level, (double)bucket_ns[i] / 1e9, cumulative);
        else
            appendf(b, "kv_request_duration_seconds_bucket{proto=\"%s\",op=\"%s\",level=\"%s\","
                       "le=\"+Inf\"} %llu\n",
                    proto, op, level, cumulative);
    }
    /* The count is the +Inf bucket's, so that the two agree in one scrape
     * while writers go on. */
    appendf(b, "kv_request_duration_seconds_sum{proto=\"%s\",op=\"%s\",level=\"%s\"} %.9f\n",
            proto, op, level,
            (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
    appendf(b, "kv_request_duration_seconds_count{proto=\"%s\",op=\"%s\",level=\"%s\"} %llu\n",
            proto, op, level, cumulative);
}

void kvi_metrics_render(kvi_metrics *m, kvi_buf *b)
{
    /* The owner's few gauges first, ahead of the long histograms. */
    if (m->extra)
        m->extra(m->extra_ctx, b);
    appendf(b, "# HELP kv_slow_requests_total Requests that took the slow-request threshold "
               "or longer.\n");
    appendf(b, "# TYPE kv_slow_requests_total counter\n");
    appendf(b, "kv_slow_requests_total %llu\n",
            (unsigned long long)atomic_load_explicit(&m->slow_total, memory_order_relaxed));
    appendf(b, "# HELP kv_requests_total Requests served, by protocol, operation and outcome.\n");
    appendf(b, "# TYPE kv_requests_total counter\n");
    for (int p = 0; p < KVI_PROTO_COUNT; p++)
        for (int o = 0; o < KVI_MOP_COUNT; o++)
            for (int r = 0; r < OUT_COUNT; r++)
                appendf(b, "kv_requests_total{proto=\"%s\",op=\"%s\",outcome=\"%s\"} %llu\n",
                        proto_names[p], op_names[o], outcome_names[r],
                        (unsigned long long)atomic_load_explicit(&m->c[p][o].requests[r],
                                                                 memory_order_relaxed));
    appendf(b, "# HELP kv_request_duration_seconds Time from a request's arrival to its answer, "
               "by protocol, operation and consistency level (only those that served a "
               "request).\n");
    appendf(b, "# TYPE kv_request_duration_seconds histogram\n");
    for (int p = 0; p < KVI_PROTO_COUNT; p++)
        for (int o = 0; o < KVI_MOP_COUNT; o++)
            for (int l = 0; l < KVI_LEVEL_COUNT; l++)
                render_histogram(b, &m->h[p][o][l], proto_names[p], op_names[o], level_names[l]);
}

/* "boundsUs": [...], the buckets' upper bounds in microseconds. */
static void append_bounds_json(kvi_buf *b)
{
    appendf(b, "\"boundsUs\":[");
    for (size_t i = 0; i < N_BUCKETS; i++)
        appendf(b, "%s%g", i ? "," : "", (double)bucket_ns[i] / 1e3);
    appendf(b, "]");
}

/* [index, count] of each bucket of h that counted something. */
static void append_buckets_json(kvi_buf *b, histogram *h)
{
    int first = 1;
    for (size_t i = 0; i <= N_BUCKETS; i++) {
        uint64_t n = atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (!n)
            continue;
        appendf(b, "%s[%zu,%llu]", first ? "" : ",", i, (unsigned long long)n);
        first = 0;
    }
}

void kvi_metrics_render_json(kvi_metrics *m, kvi_buf *b)
{
    appendf(b, "{\"atMs\":%llu,", (unsigned long long)(kvi_metrics_now_ns() / 1000000));
    append_bounds_json(b);
    appendf(b, ",\"series\":[");
    int first = 1;
    for (int p = 0; p < KVI_PROTO_COUNT; p++) {
        for (int o = 0; o < KVI_MOP_COUNT; o++) {
            for (int l = 0; l < KVI_LEVEL_COUNT; l++) {
                histogram *h = &m->h[p][o][l];
                uint64_t count = histogram_count(h);
                if (!count)
                    continue;
                appendf(b, "%s{\"proto\":\"%s\",\"op\":\"%s\",\"level\":\"%s\",\"count\":%llu,"
                           "\"sumUs\":%.3f,\"buckets\":[",
                        first ? "" : ",", proto_names[p], op_names[o], level_names[l],
                        (unsigned long long)count,
                        (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e3);
                first = 0;
                append_buckets_json(b, h);
                appendf(b, "]}");
            }
        }
    }
    appendf(b, "]}");
}

/* ------------------------------------------------ latencies by name */

struct kvi_latency {
    histogram h;
    struct kvi_latency *next;
    char name[]; /* NUL-terminated */
};

struct kvi_latency_set {
    pthread_mutex_t lock;
    kvi_latency *first; /* never removed until the set is freed */
};

void kvi_latency_record(kvi_latency *l, uint64_t latency_ns)
{
    if (l)
        histogram_record(&l->h, latency_ns);
}

kvi_latency_set *kvi_latency_set_new(void)
{
    kvi_latency_set *set = calloc(1, sizeof *set);
    if (set)
        pthread_mutex_init(&set->lock, NULL);
    return set;
}

void kvi_latency_set_free(kvi_latency_set *set)
{
    if (!set)
        return;
    for (kvi_latency *l = set->first, *next; l; l = next) {
        next = l->next;
        free(l);
    }
    pthread_mutex_destroy(&set->lock);
    free(set);
}

kvi_latency *kvi_latency_set_get(kvi_latency_set *set, const char *name)
{
    if (!set || !name)
        return NULL;
    pthread_mutex_lock(&set->lock);
    kvi_latency *l = set->first;
    while (l && strcmp(l->name, name) != 0)
        l = l->next;
    if (!l) {
        size_t len = strlen(name);
        l = calloc(1, sizeof *l + len + 1);
        if (l) {
            memcpy(l->name, name, len + 1);
            l->next = set->first;
            set->first = l;
        }
    }
    pthread_mutex_unlock(&set->lock);
    return l;
}

void kvi_latency_set_each(kvi_latency_set *set, kvi_latency_each_fn fn, void *ctx)
{
    if (!set)
        return;
    uint64_t counts[N_BUCKETS + 1];
    pthread_mutex_lock(&set->lock);
    for (kvi_latency *l = set->first; l; l = l->next) {
        uint64_t total = 0;
        for (size_t i = 0; i <= N_BUCKETS; i++)
            total += counts[i] = atomic_load_explicit(&l->h.buckets[i], memory_order_relaxed);
        if (total)
            fn(ctx, l->name, counts, N_BUCKETS + 1);
    }
    pthread_mutex_unlock(&set->lock);
}

void kvi_latency_set_render_json(kvi_latency_set *set, kvi_buf *b)
{
    appendf(b, "{");
    append_bounds_json(b);
    appendf(b, ",\"peers\":[");
    int first = 1;
    if (set) {
        pthread_mutex_lock(&set->lock);
        for (kvi_latency *l = set->first; l; l = l->next) {
            if (!histogram_count(&l->h))
                continue;
            /* Names are member ids: [A-Za-z0-9._-], nothing to escape. */
            appendf(b, "%s{\"nodeId\":\"%s\",\"buckets\":[", first ? "" : ",", l->name);
            append_buckets_json(b, &l->h);
            appendf(b, "]}");
            first = 0;
        }
        pthread_mutex_unlock(&set->lock);
    }
    appendf(b, "]}");
}

void kvi_latency_set_render(kvi_latency_set *set, kvi_buf *b, const char *metric,
                            const char *label, const char *help)
{
    if (!set)
        return;
    appendf(b, "# HELP %s %s\n", metric, help);
    appendf(b, "# TYPE %s histogram\n", metric);
    pthread_mutex_lock(&set->lock);
    for (kvi_latency *l = set->first; l; l = l->next) {
        if (!histogram_count(&l->h))
            continue;
        unsigned long long cumulative = 0;
        for (size_t i = 0; i <= N_BUCKETS; i++) {
            cumulative += atomic_load_explicit(&l->h.buckets[i], memory_order_relaxed);
            if (i < N_BUCKETS)
                appendf(b, "%s_bucket{%s=\"%s\",le=\"%g\"} %llu\n", metric, label, l->name,
                        (double)bucket_ns[i] / 1e9, cumulative);
            else
                appendf(b, "%s_bucket{%s=\"%s\",le=\"+Inf\"} %llu\n", metric, label, l->name,
                        cumulative);
        }
        appendf(b, "%s_sum{%s=\"%s\"} %.9f\n", metric, label, l->name,
                (double)atomic_load_explicit(&l->h.sum_ns, memory_order_relaxed) / 1e9);
        appendf(b, "%s_count{%s=\"%s\"} %llu\n", metric, label, l->name, cumulative);
    }
    pthread_mutex_unlock(&set->lock);
}
