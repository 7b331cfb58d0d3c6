/*
 * node/node_digest.c - a clustered node's digest keeper: builds the
 * anti-entropy digest from the data in the background when no clean close
 * kept one, then re-verifies it against the data, slowly, for ever
 * (docs/design/ANTI_ENTROPY.md, "A restart" and "Damaged records").
 *
 * Both walk the segments in order, a run at a time: with every key lock
 * held (no write of the data family can be between its store write and
 * its digest change then), recompute the run's figures from the data and
 * compare them with the digest's. The build sets them; the verification
 * counts and logs each segment that differs (bits that rotted on disk
 * under an unchanged digest, or a bug) and sets it, so that exchanges find
 * its keys. The node serves meanwhile; it takes part in no exchange until
 * the build is done (its digest is not ready).
 */
#include "node/node_internal.h"

#include <stdlib.h>

#include "storage/digest.h"
#include "storage/keylock.h"
#include "storage/store.h"
#include "util/clock.h"

/* A run covers about BUILD_KEYS (VERIFY_KEYS) keys: it grows while runs
 * find fewer and shrinks while they find more, between MIN_RUN and MAX_RUN
 * segments. Writers wait at most one run's reads: about 0.7 ms for 256
 * keys here, 0.2 ms for 64. The build pauses a millisecond between runs;
 * the verification 25 ms (a million keys in about 7 minutes). */
#define BUILD_KEYS 256u
#define VERIFY_KEYS 64u
#define MIN_RUN 1u
#define MAX_RUN 8192u
#define BUILD_PAUSE_MS 1u
#define VERIFY_PAUSE_MS 25u

/* Recomputes segments [first, end) with every key lock held; sets those
 * that differ (all of them while building). Returns how many differed, or
 * -1 when the data could not be read; *keys receives the keys found. */
static long check_run(kvi_node *n, kvi_digest *d, uint64_t *scratch, uint32_t first,
                      uint32_t end, uint64_t *keys)
{
    uint64_t *hashes = scratch, *counts = scratch + MAX_RUN;
    struct kvi_keylock *locks = kvi_embedded_locks(n->store);
    size_t held = KVI_KEYLOCK_STRIPES;
    kvi_keylock_lock_stripes(locks, n->digest_stripes, &held);
    int rc = kvi_store_digest_recompute(kvi_embedded_store(n->store), first, end, hashes,
                                        counts);
    long differ = 0;
    *keys = 0;
    for (uint32_t s = first; rc == KV_OK && s < end; s++) {
        uint64_t h, c;
        kvi_digest_range(d, s, s + 1, &h, &c);
        *keys += counts[s - first];
        if (h != hashes[s - first] || c != counts[s - first]) {
            kvi_digest_set(d, s, hashes[s - first], counts[s - first]);
            differ++;
        }
    }
    kvi_keylock_unlock_stripes(locks, n->digest_stripes, held);
    return rc == KV_OK ? differ : -1;
}

uint32_t kvi_node_digest_tick(void *ctx)
{
    kvi_node *n = ctx;
    kvi_digest *d = kvi_store_digest(kvi_embedded_store(n->store));
    if (!d)
        return 0; /* no digest: nothing to keep */
    if (!n->digest_scratch && !(n->digest_scratch = malloc(2 * MAX_RUN * sizeof(uint64_t))))
        return 1000u;
    if (!n->digest_run)
        n->digest_run = 64u;
    int building = !kvi_digest_ready(d);
    uint32_t segments = (uint32_t)kvi_digest_segments(d);
    uint32_t first = n->digest_next;
    uint32_t end = first + n->digest_run > segments ? segments : first + n->digest_run;
    if (building && first == 0)
        n->digest_started_ms = kvi_monotonic_ms();
    uint64_t keys;
    long differ = check_run(n, d, n->digest_scratch, first, end, &keys);
    uint64_t want = building ? BUILD_KEYS : VERIFY_KEYS;
    if (keys < want / 2 && n->digest_run < MAX_RUN)
        n->digest_run *= 2;
    else if (keys > want * 2 && n->digest_run > MIN_RUN)
        n->digest_run /= 2;
    if (differ < 0) {
        kvi_log(n->log, KV_LOG_WARN, "anti-entropy digest %s: %s",
                building ? "build" : "verification", kvi_error_last());
        return 1000u; /* try the same run again later */
    }
    if (!building && differ) {
        atomic_fetch_add(&n->digest_mismatches, (uint64_t)differ);
        kvi_log(n->log, KV_LOG_WARN, "the anti-entropy digest differed from the data in %ld "
                "segment(s) from %u on (a record changed on disk, or a bug): corrected, so "
                "that the next exchanges repair those keys", differ, first);
    }
    n->digest_next = end == segments ? 0 : end;
    if (building && end == segments) {
        kvi_digest_set_ready(d, 1);
        uint64_t h, keys;
        kvi_digest_range(d, 0, segments, &h, &keys);
        kvi_log(n->log, KV_LOG_INFO, "built the anti-entropy digest from the data: %llu keys, "
                "in the background in %.1f s", (unsigned long long)keys,
                (double)(kvi_monotonic_ms() - n->digest_started_ms) / 1000.0);
    }
    if (!building && end == segments)
        atomic_fetch_add(&n->digest_passes, 1);
    return building ? BUILD_PAUSE_MS : VERIFY_PAUSE_MS;
}

int kvi_node_digest_recheck(kvi_node *n, uint32_t first, uint32_t end)
{
    kvi_digest *d = kvi_store_digest(kvi_embedded_store(n->store));
    if (!d)
        return KV_OK;
    uint64_t *scratch = malloc(2 * MAX_RUN * sizeof(uint64_t));
    if (!scratch)
        return kvi_error(KV_ENOMEM, "out of memory recomputing the digest");
    int rc = KV_OK;
    for (uint32_t at = first; rc == KV_OK && at < end;) {
        uint32_t stop = end - at > MAX_RUN ? at + MAX_RUN : end;
        uint64_t keys;
        if (check_run(n, d, scratch, at, stop, &keys) < 0)
            rc = KV_EIO;
        at = stop;
    }
    free(scratch);
    return rc;
}
