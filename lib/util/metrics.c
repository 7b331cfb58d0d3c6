/* util/metrics.c - counters and histograms for /metrics. */
#include "util/metrics.h"
#include "util/clock.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <kv/common.h>

/* Histogram bucket upper bounds, in nanoseconds (Prometheus "le"). */
static const uint64_t bucket_ns[] = {
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
    25000000, 50000000, 100000000, 250000000, 500000000, 1000000000,
    2500000000ull, 5000000000ull,
};
#define N_BUCKETS (sizeof bucket_ns / sizeof bucket_ns[0])

/* Outcome classes, so the counter has a handful of label values. */
typedef enum outcome { OUT_OK, OUT_NOT_FOUND, OUT_CONFLICT, OUT_CLIENT_ERROR,
                       OUT_SERVER_ERROR, OUT_COUNT } outcome;
static const char *const outcome_names[OUT_COUNT] = {
    "ok", "not_found", "conflict", "client_error", "server_error"};
static const char *const proto_names[KVI_PROTO_COUNT] = {"binary", "http"};
static const char *const op_names[KVI_MOP_COUNT] = {"get", "put", "delete", "cas", "batch", "other"};

typedef struct series {
    atomic_uint_fast64_t requests[OUT_COUNT];
    atomic_uint_fast64_t buckets[N_BUCKETS + 1]; /* last: +Inf */
    atomic_uint_fast64_t sum_ns;
} series;

struct kvi_metrics {
    series s[KVI_PROTO_COUNT][KVI_MOP_COUNT];
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

void kvi_metrics_record(kvi_metrics *m, kvi_metric_proto proto, kvi_metric_op op,
                        int status, uint64_t latency_ns)
{
    if (!m || proto >= KVI_PROTO_COUNT || op >= KVI_MOP_COUNT)
        return;
    series *s = &m->s[proto][op];
    atomic_fetch_add_explicit(&s->requests[classify(status)], 1, memory_order_relaxed);
    size_t b = 0;
    while (b < N_BUCKETS && latency_ns > bucket_ns[b])
        b++;
    atomic_fetch_add_explicit(&s->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->sum_ns, latency_ns, memory_order_relaxed);
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
                        (unsigned long long)atomic_load_explicit(&m->s[p][o].requests[r],
                                                                 memory_order_relaxed));
    appendf(b, "# HELP kv_request_duration_seconds Time from a request's arrival to its answer.\n");
    appendf(b, "# TYPE kv_request_duration_seconds histogram\n");
    for (int p = 0; p < KVI_PROTO_COUNT; p++) {
        for (int o = 0; o < KVI_MOP_COUNT; o++) {
            series *s = &m->s[p][o];
            unsigned long long cumulative = 0;
            for (size_t i = 0; i <= N_BUCKETS; i++) {
                cumulative += atomic_load_explicit(&s->buckets[i], memory_order_relaxed);
                if (i < N_BUCKETS)
                    appendf(b, "kv_request_duration_seconds_bucket{proto=\"%s\",op=\"%s\",le=\"%g\"} %llu\n",
                            proto_names[p], op_names[o], (double)bucket_ns[i] / 1e9, cumulative);
                else
                    appendf(b, "kv_request_duration_seconds_bucket{proto=\"%s\",op=\"%s\",le=\"+Inf\"} %llu\n",
                            proto_names[p], op_names[o], cumulative);
            }
            appendf(b, "kv_request_duration_seconds_sum{proto=\"%s\",op=\"%s\"} %.9f\n",
                    proto_names[p], op_names[o],
                    (double)atomic_load_explicit(&s->sum_ns, memory_order_relaxed) / 1e9);
            appendf(b, "kv_request_duration_seconds_count{proto=\"%s\",op=\"%s\"} %llu\n",
                    proto_names[p], op_names[o], cumulative);
        }
    }
}
