/*
 * util/pbs.h - Probabilistically Bounded Staleness: how likely a read at R
 * returns the latest write, t milliseconds after that write was
 * acknowledged at W, predicted from measured latencies (Bailis et al.,
 * "Probabilistically Bounded Staleness for Practical Partial Quorums",
 * VLDB 2012; Cassandra 1.2's nodetool predictconsistency).
 *
 * The method is the paper's WARS model, run as a Monte Carlo simulation. A
 * write reaches replica i after W_i and its acknowledgement comes back
 * after A_i; a read reaches replica j after R_j and its answer comes back
 * after S_j. What is measured here is a round trip per peer, not its four
 * legs (the members' clocks are not synchronized), so each round trip is
 * split: the way back (A, S) is the network's one-way time, taken as half
 * the peer's fastest round trips (its first percentile); the rest of the
 * round trip (W, R) is the way there plus the replica's queueing and work,
 * when a write becomes visible. That charges a replica's slowness to the
 * moment its write lands, which errs towards predicting stale reads.
 *
 * Where the coordinators are: the write's coordinator is a replica (its
 * own copy is written at once), and the read's coordinator is another
 * replica (reads its own copy at once, then the others). That is how libkv
 * routes a request, and it is the worst case of it: a read coordinated by
 * the write's own coordinator sees its write.
 *
 * Pure computation: no I/O, no global state; thread-safe on distinct
 * outputs. Compiled into the library and into kvctl.
 */
#ifndef KVI_PBS_H
#define KVI_PBS_H

#include <stddef.h>
#include <stdint.h>

/* One peer's round-trip histogram: counts[i] requests took at most
 * bounds_us[i] (and more than bounds_us[i-1]); counts[n_bounds] is the
 * bucket past the last bound. */
typedef struct kvi_pbs_peer {
    const uint64_t *counts; /* n_bounds + 1 entries */
} kvi_pbs_peer;

typedef struct kvi_pbs_input {
    unsigned n, r, w;         /* replicas, read and write quorums: 1 <= r, w <= n */
    const double *bounds_us;  /* increasing bucket bounds */
    size_t n_bounds;
    const kvi_pbs_peer *peers; /* each peer's round trips; at least one with data */
    size_t n_peers;
    unsigned trials;          /* simulated writes and reads; 0: 20000 */
    uint64_t seed;            /* the same seed, the same answer */
} kvi_pbs_input;

/* What the simulation found for reads t_ms after the acknowledgement. */
typedef struct kvi_pbs_point {
    double t_ms;
    double consistent;        /* the probability the read returns the write */
    /* Versions behind on average, by the paper's k-staleness: a stale read
     * misses each earlier write independently with the same probability,
     * so the number missed is geometric: p / (1 - p). Infinite when every
     * read is stale. */
    double versions_behind;
} kvi_pbs_point;

/* Fills points[i].consistent and .versions_behind for each
 * points[i].t_ms (set by the caller, >= 0). Returns 0, or -1 with why
 * (a static string) when the input cannot give an answer: quorums out of
 * range, no bounds, or no peer with a measured round trip. */
int kvi_pbs_predict(kvi_pbs_point *points, size_t n_points, const kvi_pbs_input *in,
                    const char **why);

#endif
