/*
 * cluster/ae_plan.h - the pure steps of an anti-entropy exchange between
 * this node and a peer (no I/O): which token ranges both replicate, which
 * digest segments those cover whole or in part, one step down the digest
 * comparison, and the keys two sorted lists disagree on. The exchange's
 * state machine drives these with the AE_DIGEST and AE_KEYS requests
 * (format/ae.h). See docs/design/ANTI_ENTROPY.md.
 */
#ifndef KVI_AE_PLAN_H
#define KVI_AE_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/ring.h"
#include "format/ae.h"

/* A stretch of token space, both ends included. */
typedef struct kvi_token_range {
    uint64_t first, last;
} kvi_token_range;

/* The token ranges whose keys members a and b (ring indexes) both hold as
 * home replicas, in token order, adjacent ones merged: KV_OK with *out
 * malloc'd (NULL when none) and *n, KV_EINVAL for a bad index, or KV_ENOMEM. */
int kvi_ae_shared_ranges(const kvi_ring *r, int a, int b, kvi_token_range **out, size_t *n);

/* 1 when token lies in one of the n sorted, disjoint ranges. */
int kvi_ae_token_in(const kvi_token_range *ranges, size_t n, uint64_t token);

/* The segments of a digest of 2^bits segments that the n sorted ranges
 * cover: those covered whole, as segment ranges (adjacent ones merged), in
 * whole[] (*n_whole of them), and those covered only in part, whose keys
 * must be compared one by one with kvi_ae_token_in, in partial[]
 * (*n_partial). Both malloc'd (NULL when empty). KV_OK or KV_ENOMEM. */
int kvi_ae_segments(unsigned bits, const kvi_token_range *ranges, size_t n, kvi_ae_range **whole,
                    size_t *n_whole, uint32_t **partial, size_t *n_partial);

/* What to do with a segment range whose digests both sides gave. */
typedef enum kvi_ae_verdict {
    KVI_AE_SAME = 0,    /* equal: nothing to do */
    KVI_AE_FILL = 1,    /* only the peer holds keys there: take its records */
    KVI_AE_PUSH = 2,    /* only this node holds keys there: send them */
    KVI_AE_DESCEND = 3, /* both hold keys and differ, over several segments: compare parts */
    KVI_AE_SEGMENT = 4  /* both hold keys and differ, in one segment: compare keys */
} kvi_ae_verdict;

/* One step down the comparison, for one range (keys: counts modulo 2^32,
 * as AE_DIGEST carries them). */
kvi_ae_verdict kvi_ae_classify(kvi_ae_range r, uint64_t my_hash, uint32_t my_keys,
                               uint64_t their_hash, uint32_t their_keys);

/* The fanout to ask the next level's parts with, given how many ranges
 * differ at this one: wide while few differ (few round trips), narrow once
 * many do (each differing range's parts cost bytes; 4 ways about halves
 * them against 16). */
unsigned kvi_ae_fanout(size_t n_differing);

/* An entry of one side's key list: a storage key and its entry hash. */
typedef struct kvi_ae_key {
    const unsigned char *skey;
    size_t len;
    uint64_t hash;
} kvi_ae_key;

/* What a key-list comparison found for one key. */
typedef enum kvi_ae_diff {
    KVI_AE_ONLY_MINE = 1,   /* the peer lacks it */
    KVI_AE_ONLY_THEIRS = 2, /* this node lacks it */
    KVI_AE_DIFFERENT = 3    /* both hold it, in different states */
} kvi_ae_diff;

/* their_hash: the peer's entry hash of the key (0 for KVI_AE_ONLY_MINE). */
typedef void (*kvi_ae_diff_fn)(void *ctx, const unsigned char *skey, size_t len, kvi_ae_diff d,
                               uint64_t their_hash);

/* Walks two lists sorted by storage key (bytewise, shorter first on a
 * common prefix) and calls fn for each key they disagree on, in key order.
 * Returns how many. */
size_t kvi_ae_compare_keys(const kvi_ae_key *mine, size_t n_mine, const kvi_ae_key *theirs,
                           size_t n_theirs, kvi_ae_diff_fn fn, void *ctx);

#endif
