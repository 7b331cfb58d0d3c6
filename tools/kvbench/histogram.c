/*
 * histogram.c - log-linear latency histogram (see histogram.h).
 *
 * Bucket index of a value v:
 *   v < 64:  the index is v itself.
 *   v >= 64: let m = floor(log2 v) (6..63) and s = m - 6. Then v >> s lies in
 *            [64, 128): its top 7 bits, whose low 6 bits pick one of the 64
 *            linear sub-buckets of [2^m, 2^(m+1)). The index is
 *            (s << 6) + (v >> s), which continues the exact range without a
 *            gap (m = 6 gives s = 0 and index v) and ends at
 *            (57 << 6) + 127 = 3775 = KVB_HIST_BUCKETS - 1 for m = 63.
 */
#include "histogram.h"

#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    if (v < KVB_HIST_SUB_COUNT)
        return (unsigned)v;
    unsigned m = 63u - (unsigned)__builtin_clzll(v); /* v != 0 here */
    unsigned s = m - KVB_HIST_SUB_BITS;
    return (s << KVB_HIST_SUB_BITS) + (unsigned)(v >> s);
}

/* The largest value that falls in bucket i (the inverse of bucket_of). */
static uint64_t bucket_high(unsigned i)
{
    if (i < 2u * KVB_HIST_SUB_COUNT) /* 0..127: buckets of width 1 */
        return i;
    unsigned s = (i >> KVB_HIST_SUB_BITS) - 1u;
    uint64_t top = (uint64_t)((i & (KVB_HIST_SUB_COUNT - 1u)) + KVB_HIST_SUB_COUNT);
    /* low + (width - 1); written this way so s = 57 cannot overflow. */
    return (top << s) + (((uint64_t)1 << s) - 1u);
}

void kvb_hist_init(kvb_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

void kvb_hist_record(kvb_hist *h, uint64_t value)
{
    h->buckets[bucket_of(value)]++;
    h->count++;
    h->sum += value;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

void kvb_hist_merge(kvb_hist *dst, const kvb_hist *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < KVB_HIST_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t kvb_hist_percentile(const kvb_hist *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p <= 0.0)
        return h->min;
    if (p >= 100.0)
        return h->max;
    /* rank = ceil(p/100 * count), at least 1: the rank-th smallest value. */
    double want = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want)
        rank++;
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < KVB_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = bucket_high(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max; /* not reached: the buckets add up to count */
}

uint64_t kvb_hist_count(const kvb_hist *h) { return h->count; }

uint64_t kvb_hist_min(const kvb_hist *h) { return h->count ? h->min : 0; }

uint64_t kvb_hist_max(const kvb_hist *h) { return h->max; }

double kvb_hist_mean(const kvb_hist *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
