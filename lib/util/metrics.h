/*
 * util/metrics.h - request counters and latency histograms, rendered in the
 * Prometheus text format for GET /metrics.
 *
 * Threads: kvi_metrics_record is lock-free (relaxed atomics) and may be
 * called from any thread; kvi_metrics_render reads a consistent-enough
 * snapshot without stopping writers.
 */
#ifndef KVI_METRICS_H
#define KVI_METRICS_H

#include <stdint.h>

#include "util/buf.h"

typedef enum kvi_metric_proto {
    KVI_PROTO_BINARY = 0,
    KVI_PROTO_HTTP = 1,
    KVI_PROTO_COUNT = 2
} kvi_metric_proto;

typedef enum kvi_metric_op {
    KVI_MOP_GET = 0,
    KVI_MOP_PUT = 1,
    KVI_MOP_DELETE = 2,
    KVI_MOP_CAS = 3,
    KVI_MOP_BATCH = 4,
    KVI_MOP_OTHER = 5, /* ping, cluster, health, errors before routing */
    KVI_MOP_COUNT = 6
} kvi_metric_op;

typedef struct kvi_metrics kvi_metrics;

kvi_metrics *kvi_metrics_new(void);
void kvi_metrics_free(kvi_metrics *m);

/* Counts one request and its latency. status is the request's KV_* code. */
void kvi_metrics_record(kvi_metrics *m, kvi_metric_proto proto, kvi_metric_op op,
                        int status, uint64_t latency_ns);

/* Requests that took slow_ns or longer (0: none are slow) are counted in
 * kv_slow_requests_total and in a window that kvi_metrics_take_slow reads
 * and restarts. Set before recording starts. */
void kvi_metrics_set_slow(kvi_metrics *m, uint64_t slow_ns);
/* The slow requests since the last call: how many, and the slowest one's
 * latency and operation (names as in the metrics: "get", "put", ...). */
typedef struct kvi_slow_window {
    uint64_t count;
    uint64_t slowest_ns;
    const char *slowest_op;
    const char *slowest_proto;
} kvi_slow_window;
void kvi_metrics_take_slow(kvi_metrics *m, kvi_slow_window *out);

/* More metrics from the metrics' owner (a node's cluster figures),
 * appended by kvi_metrics_render. Set before rendering starts. */
typedef void (*kvi_metrics_extra_fn)(void *ctx, kvi_buf *b);
void kvi_metrics_set_extra(kvi_metrics *m, kvi_metrics_extra_fn fn, void *ctx);

/* Appends the Prometheus text exposition of every metric to b. */
void kvi_metrics_render(kvi_metrics *m, kvi_buf *b);

/* Monotonic nanoseconds, for latencies. */
uint64_t kvi_metrics_now_ns(void);

#endif
