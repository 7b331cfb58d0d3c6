/*
 * cluster/ae_exchange.h - one anti-entropy exchange between this node and a
 * peer: find what their stores disagree on, over the token ranges both
 * replicate, and repair it in both directions through the merge path.
 *
 * A message-driven state machine on the loop of the view's connections (a
 * node's peers loop), like the coordinator's requests: no thread waits on
 * the peer. Its steps (docs/design/ANTI_ENTROPY.md, "The exchange"):
 *
 *  1. Digests, top down. The segment ranges both replicate whole are asked
 *     for their digests (AE_DIGEST); each range that differs is cut into
 *     parts and asked again, until the differing segments are known. A
 *     range only the peer holds keys in is filled from the peer's records
 *     at once (AE_KEYS with records); one only this node holds keys in is
 *     sent (REPLICATE), without descending further.
 *  2. A moment later the differing segments are asked once more, and only
 *     those that still differ go on: a segment that differed only because
 *     of writes in flight is left alone.
 *  3. Keys. For each differing segment, and each segment the shared ranges
 *     cover in part, the peer's keys and entry hashes (AE_KEYS) are
 *     compared with this node's.
 *  4. Repair. A key the peer lacks or holds differently is sent to it
 *     (REPLICATE); one this node lacks or holds differently is fetched
 *     (GET_STATE) and merged here, then the merged state goes back when
 *     both held something. Merges are idempotent, so repairing both ways
 *     is safe.
 *
 * Throttled to a byte rate over everything it sends and receives. Any
 * request that fails ends the exchange with that failure (what it repaired
 * stays repaired): an exchange that ends KV_OK has compared every shared
 * range.
 *
 * Threads: kvi_ae_exchange_start from any thread; the exchange runs on the
 * view's loop, and its callback runs there.
 */
#ifndef KVI_AE_EXCHANGE_H
#define KVI_AE_EXCHANGE_H

#include <stdatomic.h>
#include <stdint.h>

#include "cluster/coordinator.h"

/* The phases whose bytes are counted apart (kv_ae_bytes_total{phase}). */
enum { KVI_AE_PHASE_DIGEST = 0, KVI_AE_PHASE_KEYS = 1, KVI_AE_PHASE_REPAIR = 2,
       KVI_AE_PHASES = 3 };

/* What an exchange did. */
typedef struct kvi_ae_figures {
    uint64_t bytes[KVI_AE_PHASES]; /* frames sent and received, headers included */
    uint64_t requests;             /* requests sent */
    uint64_t segments_differing;   /* segments whose keys were compared */
    uint64_t keys_compared;        /* keys in the peer's lists */
    uint64_t keys_received;        /* states taken in from the peer and merged here */
    uint64_t keys_sent;            /* states sent to the peer */
    uint64_t records_damaged;      /* the peer's records that failed their checksum */
    /* The write time of the oldest write found missing on either side (the
     * newest write of each repaired state; 0: none): the replication lag. */
    uint64_t oldest_difference_ms;
} kvi_ae_figures;

typedef void (*kvi_ae_done_fn)(void *ctx, int rc, const char *why, const kvi_ae_figures *f);

typedef struct kvi_ae_exchange_config {
    uint32_t peer;             /* the peer's member index in env->view */
    uint32_t recheck_ms;       /* before asking differing segments again; 0 = 500 */
    uint64_t rate_bytes;       /* bytes a second, sent and received; 0 = no limit */
    /* Read at each step: once set, nothing more is sent and the exchange
     * ends (KV_EUNAVAILABLE) when what is in flight has. May be NULL. */
    const atomic_int *stop;
} kvi_ae_exchange_config;

/* Starts an exchange with a peer, over env (copied; its view referenced for
 * the exchange's life, counted by env->tracker). env->local must keep a
 * digest. KV_OK: fn runs exactly once, on the view's loop, when it ends;
 * otherwise (KV_EINVAL: no digest, the peer is this node or not a member;
 * KV_EUNAVAILABLE: the digest is still being built; KV_ENOMEM) it never
 * does. */
int kvi_ae_exchange_start(const kvi_coord_env *env, const kvi_ae_exchange_config *cfg,
                          kvi_ae_done_fn fn, void *ctx);

#endif
