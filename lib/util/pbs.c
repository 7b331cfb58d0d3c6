/* util/pbs.c - Probabilistically Bounded Staleness by simulation (pbs.h). */
#include "util/pbs.h"

#include <math.h>
#include <stdlib.h>

#define MAX_REPLICAS 64u
#define DEFAULT_TRIALS 20000u

/* xorshift64*: small, fast, and the same sequence for the same seed. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Uniform in [0, 1). */
static double uniform(uint64_t *s)
{
    return (double)(next_random(s) >> 11) / 9007199254740992.0;
}

/* A peer with round trips to sample from. */
typedef struct sampler {
    const uint64_t *counts;
    uint64_t total;
    double one_way_us; /* the way back: half the fastest round trips */
} sampler;

typedef struct model {
    const kvi_pbs_input *in;
    sampler *peers;
    size_t n;
    uint64_t rng;
} model;

static double bucket_low(const kvi_pbs_input *in, size_t i)
{
    return i == 0 ? 0.0 : in->bounds_us[i - 1];
}

/* The last bucket has no upper bound: a quarter above the last bound, the
 * buckets' own spacing. */
static double bucket_high(const kvi_pbs_input *in, size_t i)
{
    return i < in->n_bounds ? in->bounds_us[i] : in->bounds_us[in->n_bounds - 1] * 1.25;
}

/* One round trip of peer p, in microseconds: a bucket drawn by its count,
 * a point drawn uniformly inside it. */
static double sample_round_trip(model *m, const sampler *p)
{
    uint64_t pick = (uint64_t)(uniform(&m->rng) * (double)p->total);
    size_t i = 0;
    while (i < m->in->n_bounds && pick >= p->counts[i]) {
        pick -= p->counts[i];
        i++;
    }
    double lo = bucket_low(m->in, i), hi = bucket_high(m->in, i);
    return lo + uniform(&m->rng) * (hi - lo);
}

static const sampler *any_peer(model *m)
{
    size_t i = (size_t)(uniform(&m->rng) * (double)m->n);
    return &m->peers[i < m->n ? i : m->n - 1];
}

/* Half the lower bound of the bucket holding the first percentile. */
static double one_way(const kvi_pbs_input *in, const uint64_t *counts, uint64_t total)
{
    uint64_t seen = 0, first_percentile = total / 100;
    for (size_t i = 0; i <= in->n_bounds; i++) {
        seen += counts[i];
        if (seen > first_percentile)
            return bucket_low(in, i) / 2.0;
    }
    return 0.0;
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* One write and one read at each t. Replica 0 coordinates the write,
 * replica 1 the read; visible[i] is when the write lands on replica i,
 * counted from when it started. Adds 1 to stale[k] for each point k the
 * read misses the write at. */
static void trial(model *m, const kvi_pbs_point *points, size_t n_points, uint64_t *stale)
{
    const kvi_pbs_input *in = m->in;
    double visible[MAX_REPLICAS], acked[MAX_REPLICAS];
    visible[0] = acked[0] = 0.0; /* the coordinator's own copy */
    for (unsigned i = 1; i < in->n; i++) {
        const sampler *p = any_peer(m);
        double rtt = sample_round_trip(m, p);
        visible[i] = rtt > p->one_way_us ? rtt - p->one_way_us : 0.0;
        acked[i] = rtt;
    }
    qsort(acked, in->n, sizeof acked[0], compare_doubles);
    double ack = acked[in->w - 1];

    /* The read's coordinator reads its own copy, and asks r - 1 of the
     * others (in an order that is random from this write's point of view)
     * what they hold when the question reaches them. */
    unsigned others[MAX_REPLICAS], n_others = 0;
    others[n_others++] = 0;
    for (unsigned i = 2; i < in->n; i++)
        others[n_others++] = i;
    double reach[MAX_REPLICAS];
    for (unsigned k = 0; k + 1 < in->r; k++) {
        unsigned pick = k + (unsigned)(uniform(&m->rng) * (double)(n_others - k));
        if (pick >= n_others)
            pick = n_others - 1;
        unsigned tmp = others[k];
        others[k] = others[pick];
        others[pick] = tmp;
        const sampler *p = any_peer(m);
        double rtt = sample_round_trip(m, p);
        reach[k] = rtt > p->one_way_us ? rtt - p->one_way_us : 0.0;
    }
    for (size_t k = 0; k < n_points; k++) {
        double read_at = ack + points[k].t_ms * 1000.0;
        int seen = visible[1] <= read_at;
        for (unsigned j = 0; !seen && j + 1 < in->r; j++)
            seen = visible[others[j]] <= read_at + reach[j];
        if (!seen)
            stale[k]++;
    }
}

static const char *check_input(const kvi_pbs_input *in)
{
    if (in->n < 1 || in->n > MAX_REPLICAS)
        return "the number of replicas must be 1 to 64";
    if (in->r < 1 || in->r > in->n || in->w < 1 || in->w > in->n)
        return "R and W must each be between 1 and the number of replicas";
    if (!in->bounds_us || in->n_bounds == 0)
        return "no latency buckets";
    return NULL;
}

int kvi_pbs_predict(kvi_pbs_point *points, size_t n_points, const kvi_pbs_input *in,
                    const char **why)
{
    const char *bad = check_input(in);
    if (bad) {
        *why = bad;
        return -1;
    }
    model m = {in, calloc(in->n_peers ? in->n_peers : 1, sizeof(sampler)), 0,
               in->seed ? in->seed : 0x9e3779b97f4a7c15ull};
    if (!m.peers) {
        *why = "out of memory";
        return -1;
    }
    for (size_t i = 0; i < in->n_peers; i++) {
        uint64_t total = 0;
        for (size_t b = 0; b <= in->n_bounds; b++)
            total += in->peers[i].counts[b];
        if (total == 0)
            continue;
        m.peers[m.n++] = (sampler){in->peers[i].counts, total,
                                   one_way(in, in->peers[i].counts, total)};
    }
    if (m.n == 0 && in->n > 1) {
        free(m.peers);
        *why = "no round trip to another member has been measured yet";
        return -1;
    }
    uint64_t *stale = calloc(n_points ? n_points : 1, sizeof *stale);
    if (!stale) {
        free(m.peers);
        *why = "out of memory";
        return -1;
    }
    unsigned trials = in->trials ? in->trials : DEFAULT_TRIALS;
    for (unsigned t = 0; in->n > 1 && t < trials; t++)
        trial(&m, points, n_points, stale);
    for (size_t k = 0; k < n_points; k++) {
        double p = (double)stale[k] / (double)trials;
        points[k].consistent = 1.0 - p;
        points[k].versions_behind = p < 1.0 ? p / (1.0 - p) : INFINITY;
    }
    free(stale);
    free(m.peers);
    return 0;
}
