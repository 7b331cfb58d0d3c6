/*
 * cluster/serial.h - SERIAL requests on a node: drives a Paxos round
 * (cluster/paxos_round.h) among the key's home replicas, sending its
 * messages to the other homes over the binary protocol and applying them to
 * this node's own store when it is a home (cluster/paxos_acceptor.h).
 *
 * Today the driver blocks its thread (a coordinator pool thread) while it
 * waits for answers, as the other coordinator paths do; the round itself is
 * a state machine, so the event-driven core can drive it from its loop.
 *
 * Threads: safe from many threads at once.
 */
#ifndef KVI_SERIAL_H
#define KVI_SERIAL_H

#include "cluster/coordinator.h"
#include "cluster/paxos_round.h"

/* Runs one SERIAL request coordinated by this node (env->view->self >= 0,
 * env->local set). req's node and now_ms are filled in here.
 *   GET: *out_value receives the value (KV_ENOTFOUND when none is live).
 *   PUT, DELETE, CAS: *out_version the new version (the current one with
 *   KV_ECONFLICT).
 * KV_OK, KV_ENOTFOUND, KV_ECONFLICT, KV_EUNAVAILABLE (not applied: fewer
 * than a majority of homes reachable, or they disagree about who the homes
 * are), KV_ETIMEDOUT (not applied), KV_EUNKNOWN_OUTCOME (may have been
 * applied; the next SERIAL read settles it), KV_ETOOBIG, KV_ENOMEM. */
int kvi_serial_run(const kvi_coord_env *env, kvi_serial_request *req, kv_value **out_value,
                   uint64_t *out_version);

/* What a PAXOS message carries so that an acceptor can refuse a proposer
 * whose ring gives the key other homes: a hash of the home ids in order. */
uint64_t kvi_serial_homes_hash(const kvi_view *v, const void *key, size_t key_len);

#endif
