/*
 * cluster/membership.h - who the members are, and the ring built from them.
 *
 * The members are this node, the peers it is told about (kvd --peers; their
 * ids learned by asking each one), the members saved in its store by an
 * earlier run, and the members gossip tells of that are up or stopped
 * (cluster/members.h has the rules). A background thread asks every peer
 * whose id is still unknown for its CLUSTER description, a few times a
 * second, until all are known; until then there is no ring. Another takes
 * the members gossip tells of a few times a second: a new member (or one
 * that moved) rebuilds the ring, as a new view (holders of the old one
 * keep it), and is saved in the node's store, so that after a restart the
 * ring is built at once, with every member.
 *
 * In a cluster, the ring is the current ring of the topology record
 * (cluster/topology_service.h, docs/design/TOPOLOGY.md): nodes started
 * together form the first record from their member list; a node joining
 * through seeds fetches the record and joins by recorded steps, streaming
 * what it gains in between (kvi_membership_config.stream_gains).
 *
 * A node given only seeds (kvd --seeds) and nothing saved has no ring until
 * a seed describes a complete cluster (CLUSTER): it then takes the seed's
 * members, builds its ring and says it is up. A node
 * whose own address is among its seeds starts at once, alone if need be.
 *
 * Threads: every function may be called from any thread, except
 * kvi_membership_stop.
 */
#ifndef KVI_MEMBERSHIP_H
#define KVI_MEMBERSHIP_H

#include <stdatomic.h>
#include <stddef.h>

struct kvi_topology;
struct kvi_membership;

#include "net/auth.h"
#include "format/message.h"
#include "util/log.h"

typedef struct kvi_membership_config {
    const char *self_id;
    const char *self_addr;         /* binary protocol, as given */
    const char *self_http;         /* may be NULL */
    const char *const *peers;      /* binary addresses; may include self_addr */
    size_t n_peers;
    /* Binary addresses of members to join through (gossip seeds); may
     * include self_addr (a seed starts at once, alone if need be). With
     * seeds, the node is in a cluster even while alone. */
    const char *const *seeds;
    size_t n_seeds;
    unsigned replicas;             /* N; 0 = 3 */
    unsigned vnodes;               /* 0 = 256 */
    uint32_t connect_timeout_ms;   /* to the other members; 0 = 500 */
    uint32_t request_timeout_ms;   /* of internode requests; 0 = 2000 */
    uint32_t failure_pause_ms;     /* the detector's acceptable pause; 0 = 2000 */
    /* Where learned ids are saved (the node's store), so that a node that
     * restarts while a member is down builds its ring from them at once;
     * NULL: nothing is saved. Borrowed; must outlive the membership. */
    struct kvi_store *store;
    /* The cluster secret every connection to a member proves; NULL: none.
     * Borrowed; must outlive the membership. */
    const kvi_credentials *creds;
    const kvi_logger *log;         /* borrowed */
    /* Streams what this node gains under the topology change of record t
     * (its own join): KV_OK once all of it is in, else why in err. Called
     * on the discovery thread, no lock held. NULL: nothing streams. */
    int (*stream_gains)(void *ctx, struct kvi_membership *m, const struct kvi_topology *t,
                        char *err, size_t err_size);
    void *stream_ctx;
    /* Hints this node still holds for other members (a leaving node hands
     * them off before it is left); NULL: none are kept. */
    uint64_t (*hints_pending)(void *ctx);
    /* Replace the dead member whose id is self_id (kv_node_options.replace):
     * with no record in the store yet, fetch it from the peers and seeds,
     * never form one. */
    int replace;
    /* kv_node_options.metadata: "etcd://HOST:PORT[,...]/PREFIX" keeps the
     * topology record in etcd (cluster/topology_etcd.h) and holds a lease
     * on PREFIX/members/ID while the node runs; NULL: gossip mode. */
    const char *metadata;
    /* Where each member's connections measure the latency of this node's
     * requests to it (kvi_view_config.peer_latency); NULL: not measured.
     * Borrowed; must outlive the membership. */
    struct kvi_latency_set *peer_latency;
} kvi_membership_config;

typedef struct kvi_membership kvi_membership;

/* KV_OK, KV_EINVAL (a peer address that does not parse, bad counts),
 * KV_ENOMEM. */
int kvi_membership_start(kvi_membership **out, const kvi_membership_config *cfg);
void kvi_membership_stop(kvi_membership *m);

/* 1 once every member's id is known and the ring is built. */
int kvi_membership_complete(kvi_membership *m);

/* The cluster view (members, ring, connections) with a reference taken
 * (kvi_view_unref it), or NULL while incomplete. */
struct kvi_view;
struct kvi_view *kvi_membership_view(kvi_membership *m);
/* Serves a GOSSIP request (cluster/gossip.h): KV_OK with this node's table
 * in out, KV_EINVAL for a malformed table, KV_ENOTSUP alone. */
int kvi_membership_gossip(kvi_membership *m, const void *in, size_t len, kvi_buf *out);

/* Serves a TOPOLOGY request (cluster/topology_service.h): KV_OK with the
 * answer in out, KV_EINVAL for a malformed message, KV_ENOTSUP alone. */
int kvi_membership_topology(kvi_membership *m, const void *in, size_t len, kvi_buf *out);
/* A topology change asked for by an operator (kv_topology_change):
 * "leave" (node_id, or this node when NULL, streams its ranges out and is
 * then left), "remove" (node_id, down for good: the others re-replicate
 * its ranges), "abort" (the change in progress). Waits until the change is
 * recorded (not until it is over); *record (may be NULL) gets the record
 * that holds it. KV_OK, or the refusal with why in err: KV_EBUSY (another
 * change in progress), KV_EINVAL, KV_EUNAVAILABLE (no majority answered, or
 * a leaving member that is down), KV_ENOTSUP (not in a cluster). Not on the
 * peers loop. */
int kvi_membership_change(kvi_membership *m, const char *change, const char *node_id,
                          struct kvi_topology *record, char *err, size_t err_size);

/* A view of t's future ring (members at the addresses this node knows),
 * this node its self, on the peers loop: what a joining node checks its
 * streamed ranges with. KV_OK (*out with one reference), KV_EINVAL (this
 * node is not in it), KV_ENOMEM. */
int kvi_membership_future_view(kvi_membership *m, const struct kvi_topology *t,
                               struct kvi_view **out);
/* 1 while the record holds this node's own join in progress (it has no
 * view yet, but is a pending home of what it gains). Any thread. */
int kvi_membership_joining(kvi_membership *m);
/* A copy of the topology record this node holds (out initialised by the
 * caller). KV_OK, KV_ENOTSUP (not in a cluster), KV_ENOMEM. */
int kvi_membership_record(kvi_membership *m, struct kvi_topology *out);
/* A replica at addr refused a request as routed by an older ring than its
 * own: ask it for its record (at most once per 100 ms, however many
 * requests it refused). Any thread. */
void kvi_membership_learn_ring(kvi_membership *m, const char *addr);
/* The epoch of the topology record this node holds; 0: none (or alone). */
uint64_t kvi_membership_epoch(kvi_membership *m);

/* 1 when gossip and the failure detector hold member node_id down (or it
 * announced a clean stop); 0 otherwise, and always alone. */
int kvi_membership_is_down(kvi_membership *m, const char *node_id);

/* The failure detector's suspicions so far (0 alone). */
uint64_t kvi_membership_suspicions(kvi_membership *m);

/* Members known so far, this node included (1: a cluster of one). */
size_t kvi_membership_size(kvi_membership *m);

/* 1 when the node serves a cluster's data (coordinates, replicates):
 * it was given seeds, or knows other members. 0: its store, served over
 * the network. */
int kvi_membership_clustered(kvi_membership *m);

/* The loop the node's connections to its peers run on, and with them the
 * requests it coordinates: lent to the binary server's first I/O thread.
 * Runs until kvi_membership_stop. */
struct kvi_loop;
struct kvi_loop *kvi_membership_loop(kvi_membership *m);
/* The same loop, to open connections on (streams). */
struct kvi_client_loop;
struct kvi_client_loop *kvi_membership_peers(kvi_membership *m);
/* Set once the membership is stopping: a stream gives up. */
const atomic_int *kvi_membership_stopping(kvi_membership *m);

/* Appends the JSON description of the membership:
 * {"nodeId": self, "replicas": N, "vnodes": V, "complete": bool,
 *  "members": [{"nodeId": id or null, "address": ..., "httpAddress": ...,
 *               "state": "normal"|"joining"|"leaving"|"replacing"|"left"|"none",
 *               "status": "up"|"down"|"joining"|"stopped"|"leaving"|"unknown",
 *               "generation": ms, "primaryShare": x, "replicaShare": y}, ...],
 *  "topology": {"epoch": e, "operation": null or
 *               {"kind": "join"|..., "member": id, "sinceEpoch": e}}}
 * (state and topology once the node holds a topology record; status once
 * the id is known, in a cluster; generation once gossip has news of the
 * member; shares once complete). */
void kvi_membership_describe(kvi_membership *m, kvi_buf *out);

/* This node's last full repair, gossiped to the others; and member
 * node_id's, as gossip last told (this node's own for itself). Wall-clock
 * ms, 0: never or unknown. Any thread. */
void kvi_membership_set_repaired(kvi_membership *m, uint64_t repaired_ms);
uint64_t kvi_membership_repaired(kvi_membership *m, const char *node_id);

#endif
