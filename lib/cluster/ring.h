/*
 * cluster/ring.h - the consistent-hashing ring (pure: no I/O, no threads).
 *
 * The token space is 64-bit. Every member owns `vnodes` virtual nodes at
 * tokens derived from its node id alone (xxh3-64 of the id followed by the
 * vnode's index), so any process that knows the member list computes the
 * same ring, and a member joining takes over only ranges that it now owns:
 * nobody else's tokens move.
 *
 * A key's token (kvi_key_token, as in the storage layout) falls in the range
 * ending at the first vnode token at or after it, clockwise. Its preference
 * list is the first `replicas` distinct members met walking clockwise from
 * there; the members after them are the fallbacks for sloppy quorum.
 *
 * Threads: a built ring is immutable; share it freely and replace it whole.
 */
#ifndef KVI_RING_H
#define KVI_RING_H

#include <stddef.h>
#include <stdint.h>

#define KVI_RING_DEFAULT_VNODES 256u
#define KVI_RING_MAX_VNODES 4096u
#define KVI_RING_MAX_MEMBERS 1024u
/* Node ids are at most this long (kv_node_start checks 64). */
#define KVI_RING_MAX_ID 255u

typedef struct kvi_ring kvi_ring;

/* Builds the ring of n members named by node_ids (copied; must be distinct
 * and non-empty) with vnodes tokens each, precomputing for every vnode the
 * preference list of `replicas` distinct members (fewer when the ring has
 * fewer members). Returns KV_OK, KV_EINVAL (duplicate or empty id, counts
 * out of range) or KV_ENOMEM. */
int kvi_ring_build(kvi_ring **out, const char *const *node_ids, size_t n,
                   unsigned vnodes, unsigned replicas);
void kvi_ring_free(kvi_ring *r);

size_t kvi_ring_members(const kvi_ring *r);
unsigned kvi_ring_replicas(const kvi_ring *r);
/* The id of member i (in the order given to kvi_ring_build). */
const char *kvi_ring_member_id(const kvi_ring *r, size_t i);
/* The index of a member by id, or -1. */
int kvi_ring_find(const kvi_ring *r, const char *node_id);

/* The preference list of a token: sets *out to an array of member indexes
 * owned by the ring (valid while it lives) and returns its length,
 * min(replicas, members). */
size_t kvi_ring_preference(const kvi_ring *r, uint64_t token, const uint32_t **out);

/* The last token of the stretch of token space from token on whose keys
 * all have the same home replicas (the members of token's preference list,
 * in any order): at least to the end of token's vnode range, on through the
 * following ranges with the same members, and UINT64_MAX at the top of the
 * token space. A scan walks the ring in these stretches, in token order
 * (with three members and three replicas, one stretch is the whole ring). */
uint64_t kvi_ring_range_last(const kvi_ring *r, uint64_t token);
/* Walks clockwise from token and writes up to max distinct member indexes,
 * the preference list first and then the fallbacks; returns how many. */
size_t kvi_ring_walk(const kvi_ring *r, uint64_t token, uint32_t *out, size_t max);

/* For each member, the fraction of the token space it holds: as primary
 * (first of the preference list) into primary[i], and as any of the
 * `replicas` replicas into replica[i] (these sum to min(replicas, members)).
 * Either array may be NULL; each has kvi_ring_members(r) entries. */
void kvi_ring_shares(const kvi_ring *r, double *primary, double *replica);

/* The token of vnode i of a node id: the rule every member shares. */
uint64_t kvi_ring_vnode_token(const char *node_id, unsigned i);

#endif
