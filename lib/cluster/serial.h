/*
 * cluster/serial.h - SERIAL requests on a node: drives a Paxos round
 * (cluster/paxos_round.h) among the key's home replicas, sending its
 * messages to the other homes over the binary protocol and applying them to
 * this node's own store when it is a home (cluster/paxos_acceptor.h).
 *
 * Each request is a state machine on the loop of the view's connections
 * (cluster/coord_op.h), as reads and writes are: no thread waits.
 *
 * Threads: safe from many threads at once.
 */
#ifndef KVI_SERIAL_H
#define KVI_SERIAL_H

#include "cluster/coordinator.h"
#include "cluster/paxos_round.h"

/* Starts one SERIAL request coordinated by this node (env->view->self >=
 * 0, env->local set); req's key and value are copied, its node and now_ms
 * filled in here. fn runs once, on the loop of the view's connections (or
 * inside this call in a view with no other member), with:
 *   GET: r->value (KV_ENOTFOUND when none is live).
 *   PUT, DELETE, CAS: r->version, the new version (the current one with
 *   KV_ECONFLICT).
 * r->rc: KV_OK, KV_ENOTFOUND, KV_ECONFLICT, KV_EUNAVAILABLE (not applied:
 * fewer than a majority of homes reachable, or they disagree about who the
 * homes are), KV_ETIMEDOUT (not applied), KV_EUNKNOWN_OUTCOME (may have
 * been applied; the next SERIAL read settles it), KV_ETOOBIG, KV_ENOMEM.
 * Returns KV_OK (fn will run), or KV_EINVAL / KV_ENOMEM (it never runs). */
int kvi_serial_start(const kvi_coord_env *env, const kvi_serial_request *req,
                     kvi_coord_done_fn fn, void *ctx);
/* The SERIAL request of a write that needs Paxos (borrows w's buffers). */
kvi_serial_request kvi_coord_serial_request(const kvi_coord_write *w);
/* The members a SERIAL round on key runs with (view member indexes into
 * out, KVI_PX_MAX_HOMES at most): its current homes, then its pending
 * ones (*n_pending of them): while a topology change moves the key, its
 * future homes that are not current ones, and a replacing home (its store
 * forgot its member's promises). A round needs a majority of the others
 * plus every pending one (Cassandra's rule for pending ranges). */
size_t kvi_serial_participants(const kvi_view *v, const void *key, size_t key_len,
                               uint32_t *out, size_t *n_pending);
/* What a PAXOS message carries so that an acceptor can refuse a proposer
 * whose ring gives the key other participants: a hash of their ids in
 * order (pending homes included). */
uint64_t kvi_serial_homes_hash(const kvi_view *v, const void *key, size_t key_len);

#endif
