/*
 * cluster/topology_etcd.h - the topology record kept in etcd (kvd
 * --metadata etcd://...), instead of agreed among the members by Paxos:
 * the record is the value of PREFIX/topology (format/topology.h's
 * encoding), a change is an etcd transaction that compares the key's mod
 * revision with the one the record was read at (so two changes cannot both
 * be recorded), and every node watches the key and takes each newer record
 * into its topology service. See docs/design/TOPOLOGY.md.
 *
 * These run the same transitions as gossip mode (cluster/topology.h) and
 * hand each record to the service (kvi_topo_service_adopt), which keeps it
 * in the store and tells the membership; only where the record is agreed
 * differs. When etcd cannot be reached, a change is refused
 * (KV_EUNAVAILABLE, the message naming etcd) and the node keeps serving on
 * the record it holds.
 *
 * Threads: the change and the first record block on etcd (never call them
 * on the peers loop); the watch's callback runs on the etcd handle's watch
 * thread.
 */
#ifndef KVI_TOPOLOGY_ETCD_H
#define KVI_TOPOLOGY_ETCD_H

#include <stddef.h>

#include "cluster/topology_service.h"
#include "net/etcd.h"

/* The key (under the handle's prefix) holding the record. */
#define KVI_TOPO_ETCD_KEY "topology"

/* kvi_topo_service_change in etcd mode: reads the record from etcd (a
 * newer one is taken first), builds the next from it, and writes it if
 * the key has not changed since it was read; another change recorded
 * first makes it build again (at most 8 rounds). An empty etcd takes the
 * record this node holds as the base. KV_OK with *chosen (may be NULL);
 * build's refusal; KV_EUNAVAILABLE (etcd unreachable, or no record
 * anywhere yet); KV_EBUSY (others kept winning); err says why. */
int kvi_topo_etcd_change(kvi_topo_service *s, kvi_etcd *e, kvi_topo_build_fn build, void *ctx,
                         kvi_topology *chosen, char *err, size_t err_size);

/* A cluster's first record (epoch 1) as this node formed it: written to
 * etcd only if etcd holds none; either way the node takes what etcd holds
 * then. KV_OK (a record taken), KV_EUNAVAILABLE (etcd unreachable: nothing
 * taken; try again later), KV_ECORRUPT (etcd's record does not decode),
 * KV_ENOMEM. */
int kvi_topo_etcd_first(kvi_topo_service *s, kvi_etcd *e, const kvi_topology *first);

/* What the watch takes records into; the caller keeps it alive until the
 * etcd handle is closed (which ends the watch). */
typedef struct kvi_topo_etcd_watcher {
    kvi_topo_service *service;
    const kvi_logger *log;
    kvi_etcd *etcd;
} kvi_topo_etcd_watcher;

/* Starts watching the record: each newer one etcd holds is taken into
 * w->service (one that does not decode, or a deleted key, is logged and
 * ignored). KV_OK or the failure to start (net/etcd.h). */
int kvi_topo_etcd_watch(kvi_topo_etcd_watcher *w);

#endif
