/*
 * cluster/scan.h - a scan of the cluster's keys, one page at a time, in
 * ring-token order (docs/design/CLUSTER.md, "Scans").
 *
 * The coordinator walks the token space from the page's position in
 * stretches whose keys share their home replicas (kvi_ring_range_last). For
 * each stretch it sends SCAN_RANGE to every home replica (its own store is
 * read in place) and waits for R of them: each answers with up to `limit`
 * key states after the position in the stretch, and whether it stopped
 * short. The answers are merged key by key by causality (kvi_state_merge,
 * as a read merges); only keys up to the smallest last key of an answer
 * that stopped short are used, since past it that replica's keys are not
 * known yet. Live keys go into the page; the walk goes on from the last key
 * used, or the next stretch, until the page is full or the ring ends.
 *
 * Guarantees: a key live on R home replicas for the whole scan and not
 * written during it is returned exactly once (every stretch is read at R,
 * and positions only move forward); a key written during the scan may or
 * may not be returned; there is no snapshot across stretches or pages. A
 * scan does no read repair. If the ring changes during a scan, a key whose
 * homes moved may be missed or returned twice.
 *
 * Concurrency: the requests of one stretch are in flight together; their
 * answers come back as callbacks on the members' client loop, which fill a
 * small reference-counted state record; the calling thread waits on its
 * condition variable (never one thread per replica).
 */
#ifndef KVI_CLUSTER_SCAN_H
#define KVI_CLUSTER_SCAN_H

#include <kv/kv.h>
#include "cluster/coordinator.h"
#include "format/scan.h"
#include "util/buf.h"

/* A page of the cluster's keys after position `after` (format/scan.h),
 * reading each stretch from `r` replicas at `consistency`, with flags
 * KVI_SCAN_*. KV_OK with *out (the caller's); KV_EUNAVAILABLE or
 * KV_ETIMEDOUT when fewer than R replicas of a stretch answered; KV_EINVAL,
 * KV_ENOMEM. */
int kvi_cluster_scan(const kvi_coord_env *env, kv_scan_page **out, const void *after,
                     size_t after_len, size_t limit, kv_consistency consistency, unsigned r,
                     unsigned flags);

/* A replica's answer to SCAN_RANGE from its own store: the states of up to
 * `limit` keys strictly after `after` whose tokens are at most last_token,
 * appended to out as a SCAN_RANGE answer body. With KVI_SCAN_KEYS_ONLY the
 * states' values are left out. Tombstones are included (they may supersede
 * another replica's value); corrupt records are skipped. KV_OK, KV_EIO,
 * KV_ENOMEM. */
int kvi_scan_range_local(kvi_embedded *e, kvi_buf *out, const void *after, size_t after_len,
                         uint64_t last_token, uint32_t limit, unsigned flags);

#endif
