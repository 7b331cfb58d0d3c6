/*
 * cluster/phi.h - the phi accrual failure detector (pure: no I/O, no clock;
 * times are passed in). See docs/design/FAILURES.md.
 *
 * For one monitored member: record the moments its heartbeat is seen to
 * advance (kvi_phi_heartbeat); phi(now) measures how unlikely the current
 * silence is given the intervals seen so far. A member is suspected once phi
 * passes the threshold (8 by default, about one chance in 10^8 of being
 * wrong under the model).
 *
 * The model is Akka's: intervals are normally distributed, with the mean
 * raised by an acceptable pause and the standard deviation floored, and
 * phi = -log10(P(a heartbeat still comes after this silence)), the normal
 * tail from the logistic approximation of its CDF.
 *
 * Threads: a kvi_phi is plain data; guard it as the owner guards the rest
 * of its per-member state.
 */
#ifndef KVI_PHI_H
#define KVI_PHI_H

#include <stddef.h>
#include <stdint.h>

#define KVI_PHI_WINDOW 100u

typedef struct kvi_phi_config {
    double threshold;             /* 0 = 8 */
    uint32_t acceptable_pause_ms; /* 0 = 2000 */
    uint32_t min_stddev_ms;       /* 0 = 200 */
    /* Before any interval is known, the first one is assumed to be this
     * long (the gossip interval); 0 = 1000. */
    uint32_t first_interval_ms;
    /* Longer intervals are not learned (as Cassandra's detector ignores
     * them): a member back from a long pause must not teach the detector
     * to wait that long next time. 0 = 3000. */
    uint32_t max_interval_ms;
} kvi_phi_config;

typedef struct kvi_phi {
    kvi_phi_config cfg;
    uint64_t last_ms;          /* the last heartbeat seen; 0 = none yet */
    double intervals[KVI_PHI_WINDOW];
    size_t n, next;            /* intervals held, and where the next goes */
    double sum, sum_sq;        /* of the intervals held */
} kvi_phi;

/* A detector with cfg's settings (zeros: the defaults). */
void kvi_phi_init(kvi_phi *p, const kvi_phi_config *cfg);
/* The member's heartbeat was seen to advance at now_ms. */
void kvi_phi_heartbeat(kvi_phi *p, uint64_t now_ms);
/* Phi at now_ms: 0 right after a heartbeat, growing with the silence. 0
 * before the first heartbeat (nothing is known to be late yet). */
double kvi_phi_value(const kvi_phi *p, uint64_t now_ms);
/* phi(now_ms) >= the threshold. */
int kvi_phi_suspect(const kvi_phi *p, uint64_t now_ms);
/* The observer itself was paused for pause_ms (stopped, or starved of
 * CPU) and heard nothing in that time: the silence it saw is not the
 * member's, so the last heartbeat is moved forward by pause_ms (never past
 * now_ms). What was learned of the intervals is kept. */
void kvi_phi_forgive(kvi_phi *p, uint64_t pause_ms, uint64_t now_ms);

#endif
