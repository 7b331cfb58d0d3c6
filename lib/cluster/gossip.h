/*
 * cluster/gossip.h - membership news by gossip, and failure detection.
 *
 * Every interval (1 s) this node bumps its own heartbeat and exchanges its
 * member table (gossip_table.h) with one member or seed picked at random:
 * it sends its table (GOSSIP), the other merges it and answers with its own,
 * which this node merges in turn (push-pull). Each time a member's
 * heartbeat is seen to advance, that member's phi detector (phi.h) hears a
 * heartbeat; a member whose phi passes the threshold is down, as this node
 * sees it. A node stopping cleanly announces it (status "stopped") to a few
 * members first, so they mark it down at once; it stays a member.
 *
 * See docs/design/FAILURES.md. Threads: every function may be called from
 * any thread, except kvi_gossip_stop.
 */
#ifndef KVI_GOSSIP_H
#define KVI_GOSSIP_H

#include <stddef.h>
#include <stdint.h>

#include "format/gossip_table.h"
#include "cluster/phi.h"
#include "net/auth.h"
#include "net/client.h"
#include "format/message.h"
#include "util/log.h"

typedef struct kvi_gossip_config {
    const char *self_id;
    const char *self_addr;
    const char *self_http;        /* may be NULL */
    uint64_t generation;          /* this run's: its start time in ms */
    const char *const *seeds;     /* addresses to gossip with until known */
    size_t n_seeds;
    uint32_t interval_ms;         /* 0 = 1000 */
    uint32_t timeout_ms;          /* of one exchange; 0 = 1000 */
    kvi_phi_config phi;           /* zeros: the defaults */
    /* The cluster secret its exchanges prove; NULL: none. Borrowed; must
     * outlive the gossip. */
    const kvi_credentials *creds;
    const kvi_logger *log;        /* borrowed */
    /* The loop its exchanges' connections run on (borrowed; must outlive
     * the gossip); NULL: a loop of their own each. */
    kvi_client_loop *loop;
} kvi_gossip_config;

typedef struct kvi_gossip kvi_gossip;

int kvi_gossip_start(kvi_gossip **out, const kvi_gossip_config *cfg);
/* Announces "stopped" to a few members, then stops the thread. */
void kvi_gossip_stop(kvi_gossip *g);

/* This node's own status, as it will be gossiped (joining, up, ...). */
void kvi_gossip_set_status(kvi_gossip *g, kvi_member_status status);

/* When this node was last fully repaired (wall-clock ms), as it will be
 * gossiped; and what member id last said of itself (this node's own for
 * itself; 0: never, or unknown). */
void kvi_gossip_set_repaired(kvi_gossip *g, uint64_t repaired_ms);
uint64_t kvi_gossip_repaired(kvi_gossip *g, const char *id);

/* The epoch of the topology record this node holds, as it will be
 * gossiped (each member's is in the table kvi_gossip_snapshot copies). */
void kvi_gossip_set_epoch(kvi_gossip *g, uint64_t epoch);

/* Serves a GOSSIP request: merges the table in `in` and writes this node's
 * table to out. KV_OK, or KV_EINVAL for a malformed table. */
int kvi_gossip_handle(kvi_gossip *g, const void *in, size_t len, kvi_buf *out);

/* A copy of the member table as this node knows it now (this node's own
 * entry included); free it with kvi_gossip_table_free. KV_OK or
 * KV_ENOMEM. */
int kvi_gossip_snapshot(kvi_gossip *g, kvi_gossip_table *out);

/* The generation member id gossips (this node's own for itself), or 0
 * when unknown. */
uint64_t kvi_gossip_generation(kvi_gossip *g, const char *id);

/* How this node sees member id: "up", "joining", "leaving", "stopped",
 * "down" (phi says so), or "unknown" (no news of it yet). This node itself
 * is "up". */
const char *kvi_gossip_status(kvi_gossip *g, const char *id);

/* How many times a member went from trusted to held down by phi, as seen
 * at the start of each round (kv_failure_suspicions_total). */
uint64_t kvi_gossip_suspicions(kvi_gossip *g);

#endif
