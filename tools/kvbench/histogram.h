/*
 * histogram.h - a log-linear latency histogram for kvbench.
 *
 * The layout follows HdrHistogram with 64 sub-buckets per power of two:
 *
 *   - values 0..63 each have their own bucket (exact);
 *   - every range [2^m, 2^(m+1)) with m >= 6 is split into 64 linear
 *     sub-buckets of width 2^(m-6).
 *
 * So any recorded value is known to within 1/64 of itself (< 1.6 %), over the
 * whole uint64 range, with a fixed array of KVB_HIST_BUCKETS counters. The
 * histogram is a plain struct: no global state, no allocation, and recording
 * is a handful of integer operations. A histogram is not thread-safe; give
 * each thread its own and merge them.
 *
 * Values are nanoseconds in kvbench, but nothing here depends on the unit.
 */
#ifndef KVBENCH_HISTOGRAM_H
#define KVBENCH_HISTOGRAM_H

#include <stdint.h>

/* log2 of the number of linear sub-buckets per power-of-two range. */
#define KVB_HIST_SUB_BITS 6
#define KVB_HIST_SUB_COUNT (1u << KVB_HIST_SUB_BITS) /* 64 */
/* 64 exact buckets for 0..63, then 64 sub-buckets for each of the
 * power-of-two ranges m = 6..63. */
#define KVB_HIST_BUCKETS \
    (KVB_HIST_SUB_COUNT + (64u - KVB_HIST_SUB_BITS) * KVB_HIST_SUB_COUNT)

typedef struct kvb_hist {
    uint64_t count; /* number of recorded values */
    uint64_t sum;   /* sum of recorded values (for the mean) */
    uint64_t min;   /* UINT64_MAX while empty */
    uint64_t max;   /* 0 while empty */
    uint64_t buckets[KVB_HIST_BUCKETS];
} kvb_hist;

/* kvb_hist_init - make h empty. Also used to reset it. */
void kvb_hist_init(kvb_hist *h);

/* kvb_hist_record - add one value. */
void kvb_hist_record(kvb_hist *h, uint64_t value);

/* kvb_hist_merge - add every value of src to dst. */
void kvb_hist_merge(kvb_hist *dst, const kvb_hist *src);

/*
 * kvb_hist_percentile - the value at percentile p (0..100): the smallest
 * recorded value v such that at least p % of the values are <= v, reported
 * as the upper end of v's bucket (clamped to [min, max]), so it is never
 * below the true percentile and at most 1/64 above it. p <= 0 gives the
 * minimum, p >= 100 the maximum; an empty histogram gives 0.
 */
uint64_t kvb_hist_percentile(const kvb_hist *h, double p);

uint64_t kvb_hist_count(const kvb_hist *h);
uint64_t kvb_hist_min(const kvb_hist *h); /* 0 when empty */
uint64_t kvb_hist_max(const kvb_hist *h); /* 0 when empty */
double kvb_hist_mean(const kvb_hist *h);  /* 0 when empty */

#endif /* KVBENCH_HISTOGRAM_H */
