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

/* The consistency level a request asked for, for the latency histograms:
 * DEFAULT counts as QUORUM (what it means); requests that take no level
 * (ping, cluster, health, refusals before routing) are NONE. */
typedef enum kvi_metric_level {
    KVI_LEVEL_NONE = 0,
    KVI_LEVEL_ONE = 1,
    KVI_LEVEL_QUORUM = 2,
    KVI_LEVEL_ALL = 3,
    KVI_LEVEL_SERIAL = 4,
    KVI_LEVEL_EXPLICIT = 5, /* an explicit R or W */
    KVI_LEVEL_COUNT = 6
} kvi_metric_level;

/* The level of a kv_consistency value (NONE for one out of range). */
kvi_metric_level kvi_metric_level_of(int consistency);

typedef struct kvi_metrics kvi_metrics;

kvi_metrics *kvi_metrics_new(void);
void kvi_metrics_free(kvi_metrics *m);

/* Counts one request and its latency. status is the request's KV_* code. */
void kvi_metrics_record(kvi_metrics *m, kvi_metric_proto proto, kvi_metric_op op,
                        kvi_metric_level level, int status, uint64_t latency_ns);

/* The latency histograms' bucket upper bounds in nanoseconds, ten a decade
 * from 1 us to 10 s (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8 times a power of
 * ten): a quantile read from them is within 25% of the true one, fine
 * enough for a p999. Past the last bound is the +Inf bucket. */
size_t kvi_metrics_bounds(const uint64_t **bounds_ns);

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

/* Appends the latency histograms as a JSON object, for the cluster
 * description (kvctl stats reads two and takes the difference):
 * {"atMs": monotonic ms now, "boundsUs": [...], "series": [{"proto",
 * "op", "level", "count", "sumUs", "buckets": [[index, count], ...]}]},
 * only the series and buckets that counted a request, the +Inf bucket at
 * index len(boundsUs). */
void kvi_metrics_render_json(kvi_metrics *m, kvi_buf *b);

/* One latency histogram with the buckets above, for a figure other than
 * the requests served (a node's requests to one peer). Recording is
 * lock-free, from any thread. */
typedef struct kvi_latency kvi_latency;
void kvi_latency_record(kvi_latency *l, uint64_t latency_ns);

/* Latency histograms by name (a peer's id), created on first use and kept
 * until the set is freed, so a pointer from kvi_latency_set_get stays valid
 * as long as the set: a histogram outlives the connections that feed it.
 * Thread-safe. */
typedef struct kvi_latency_set kvi_latency_set;
kvi_latency_set *kvi_latency_set_new(void);
void kvi_latency_set_free(kvi_latency_set *set);
/* The histogram of name; NULL when out of memory (then nothing is kept). */
kvi_latency *kvi_latency_set_get(kvi_latency_set *set, const char *name);
/* Appends, in the Prometheus text format, a histogram `metric` (with its
 * HELP line) with one series per name that recorded something, labelled
 * label="name". */
void kvi_latency_set_render(kvi_latency_set *set, kvi_buf *b, const char *metric,
                            const char *label, const char *help);

/* Appends the set's histograms as JSON: {"boundsUs": [...], "peers":
 * [{"nodeId": name, "buckets": [[index, count], ...]}]}, the buckets as in
 * kvi_metrics_render_json, only histograms that recorded something. */
void kvi_latency_set_render_json(kvi_latency_set *set, kvi_buf *b);

/* Calls fn with the name and bucket counts (kvi_metrics_bounds + 1 of
 * them, the +Inf bucket last; valid for the call only) of each histogram
 * of the set that recorded something. Holds the set's lock meanwhile: fn
 * must not call back into the set. */
typedef void (*kvi_latency_each_fn)(void *ctx, const char *name, const uint64_t *counts,
                                    size_t n_counts);
void kvi_latency_set_each(kvi_latency_set *set, kvi_latency_each_fn fn, void *ctx);

/* Monotonic nanoseconds, for latencies. */
uint64_t kvi_metrics_now_ns(void);

#endif
