/*
 * cluster/purge.h - a cluster's tombstones purged once every replica is
 * known to hold them (docs/design/ANTI_ENTROPY.md, "Purges").
 *
 * A key is dead when each sibling it holds is a tombstone or a value past
 * its expiry; it died at the latest of their write times (tombstones) and
 * expiry times (values). It is safe to purge once the hint window and
 * `margin` have passed since it died. A dead key is purged (removed for
 * good, through the digest) only when it is safe, and every home replica
 * of the key was last fully repaired (an exchange with every member it
 * shares ranges with, each started then or later and ended cleanly) after
 * it became safe.
 * Why that is enough: by the end of the hint window every hint of the
 * delete has been handed off or dropped, so each replica that will ever
 * hold the tombstone without a repair holds it. If one does, its full
 * repair, started later, exchanged with every other replica and sent the
 * tombstone to each that lacked it or held an older value. The margin
 * covers the members' clocks disagreeing. So no replica still holds a
 * value the delete superseded, and none can bring it back.
 *
 * Threads: kvi_purge_pass from one thread at a time (a node's purger); it
 * takes each key's lock around the key's purge.
 */
#ifndef KVI_PURGE_H
#define KVI_PURGE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/view.h"
#include "format/state.h"
#include "storage/embedded.h"

/* 1 when every sibling of s is dead at now_ms (and it has any), with
 * *dead_since when the last of them died; else 0. */
int kvi_purge_dead_since(const kvi_state *s, uint64_t now_ms, uint64_t *dead_since);

/* Whether a key dead since dead_since may be purged at now_ms, given the
 * last full repair of each of its n home replicas (0: never). */
int kvi_purge_allowed(uint64_t dead_since, uint64_t now_ms, uint64_t hint_window_ms,
                      uint64_t margin_ms, const uint64_t *repaired_ms, size_t n);

typedef struct kvi_purge_config {
    kvi_embedded *store;
    uint64_t hint_window_ms;
    uint64_t margin_ms;
    /* Member id's last full repair (wall-clock ms; 0: never or unknown). */
    uint64_t (*repaired)(void *ctx, const char *id);
    void *ctx;
} kvi_purge_config;

typedef struct kvi_purge_figures {
    uint64_t purged;   /* keys purged by the pass */
    uint64_t pending;  /* dead keys it had to keep */
    /* The earliest time one of those may be purged by the clock alone
     * (their replicas' repairs allow it already); 0: none is waiting on
     * the clock only. */
    uint64_t next_due_ms;
} kvi_purge_figures;

/* One pass over the node's data: purges each dead key that may be, under
 * its lock and only if its record is still the one the pass read. The
 * key's replicas are those of view's ring. KV_OK, KV_EIO, KV_ENOMEM. */
int kvi_purge_pass(const kvi_purge_config *cfg, const kvi_view *view, uint64_t now_ms,
                   kvi_purge_figures *out);

#endif
