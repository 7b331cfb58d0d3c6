/*
 * cluster/quorum.h - how many replicas a request needs, and what a write
 * that got fewer means (pure).
 */
#ifndef KVI_QUORUM_H
#define KVI_QUORUM_H

#include <kv/common.h>

/* The replicas a request must hear from: ONE 1, QUORUM floor(n/2)+1, ALL n,
 * EXPLICIT `explicit_count` (1..n), DEFAULT as QUORUM. Returns KV_OK, or
 * KV_EINVAL (unknown level, explicit count out of range, n == 0). */
int kvi_quorum_required(unsigned *out, kv_consistency level, unsigned explicit_count,
                        unsigned n_replicas);

/* The result of a write sent towards `required` acknowledgements:
 *   acked   replicas that answered OK (they applied it);
 *   unknown replicas it was sent to that did not answer in time (they may
 *           have applied it);
 * the rest are known not to have it (refused, or never reached).
 * KV_OK when acked >= required; KV_EUNAVAILABLE when no replica has or may
 * have it; otherwise KV_EUNKNOWN_OUTCOME: some replica may hold it, and it
 * can surface later through read repair, so it must not be reported as
 * "not applied". */
int kvi_quorum_write_outcome(unsigned acked, unsigned unknown, unsigned required);

#endif
