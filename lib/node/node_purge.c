/*
 * node/node_purge.c - a clustered node's purger: passes over the data and
 * purges the tombstones every replica is known to hold (cluster/purge.h).
 *
 * A pass reads every record, so it runs only when it may find something:
 * when the oldest last full repair among the members moved (gossip), when
 * the clock reached a key the last pass kept waiting on the hint window
 * alone, or an hour after the last pass (to keep the pending figure fresh).
 */
#include "node/node_internal.h"

#include "cluster/purge.h"
#include "util/clock.h"

#define PURGE_CHECK_MS 1000u
#define PURGE_REFRESH_MS (3600u * 1000u)

static uint64_t member_repaired(void *ctx, const char *id)
{
    kvi_node *n = ctx;
    return kvi_membership_repaired(n->membership, id);
}

uint32_t kvi_node_purge_tick(void *ctx)
{
    kvi_node *n = ctx;
    kvi_view *v = kvi_membership_view(n->membership);
    if (!v)
        return PURGE_CHECK_MS;
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i < v->n; i++) {
        uint64_t r = kvi_membership_repaired(n->membership, v->members[i].id);
        oldest = r < oldest ? r : oldest;
    }
    uint64_t now = kvi_now_ms();
    int due = oldest != UINT64_MAX && oldest > n->purge_seen_repaired;
    due |= n->purge_next_due_ms && now >= n->purge_next_due_ms;
    due |= n->purge_last_pass_ms && now - n->purge_last_pass_ms >= PURGE_REFRESH_MS;
    if (!due) {
        kvi_view_unref(v);
        return PURGE_CHECK_MS;
    }
    kvi_purge_config pc = {.store = n->store, .hint_window_ms = n->purge_window_ms,
                           .margin_ms = n->purge_margin_ms, .repaired = member_repaired,
                           .ctx = n};
    kvi_purge_figures f;
    int rc = kvi_purge_pass(&pc, v, now, &f);
    kvi_view_unref(v);
    n->purge_last_pass_ms = now;
    if (rc != KV_OK) {
        kvi_log(n->log, KV_LOG_WARN, "purging tombstones failed: %s", kvi_error_last());
        return PURGE_CHECK_MS;
    }
    n->purge_seen_repaired = oldest;
    n->purge_next_due_ms = f.next_due_ms;
    atomic_fetch_add(&n->tombstones_purged, f.purged);
    atomic_store(&n->tombstones_pending, f.pending);
    if (f.purged)
        kvi_log(n->log, KV_LOG_INFO, "purged %llu tombstones every replica holds; %llu kept "
                "until their replicas' repairs and the hint window allow",
                (unsigned long long)f.purged, (unsigned long long)f.pending);
    return PURGE_CHECK_MS;
}
