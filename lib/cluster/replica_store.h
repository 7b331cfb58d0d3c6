/*
 * cluster/replica_store.h - a node's replicated key states in its store.
 *
 * The cluster keeps each key as a state (cluster/state.h: a clock and its
 * siblings) in record format 2. These calls read, write and merge states
 * under the same striped key locks as the embedded store's own writes, so
 * local and replicated writes of one key never interleave.
 *
 * A format-1 record (written by the embedded path) reads as a state with one
 * sibling whose dot is (KVI_LOCAL_NODE, its version), so the two paths agree
 * on what a key holds.
 *
 * Values in a returned state point into the caller's holder buffer; free it
 * with kvi_buf_free once the state is no longer needed.
 *
 * Threads: safe from any thread.
 */
#ifndef KVI_REPLICA_STORE_H
#define KVI_REPLICA_STORE_H

#include "cluster/state.h"
#include "embedded.h"

/* The dot node of values written by the embedded path. Node ids cannot
 * contain '~', so it never collides with a real member. */
#define KVI_LOCAL_NODE "~local"

/* Reads a key's state: KV_OK, KV_ENOTFOUND (no record), KV_ECORRUPT. */
int kvi_replica_read(kvi_state *out, kvi_buf *holder, kvi_embedded *e, const void *key,
                     size_t key_len);

/* Coordinates a write at `node` with context ctx (NULL: blind): under the
 * key lock, applies value to the stored state and stores the result, which
 * is returned for replication. value's dot and version are filled in.
 * KV_OK, KV_ETOOBIG (sibling limit), KV_ECORRUPT, KV_EINVAL, KV_EIO. */
int kvi_replica_write(kvi_state *out, kvi_buf *holder, kvi_embedded *e, const void *key,
                      size_t key_len, const kvi_vv *ctx, const char *node, kvi_sibling *value);

/* Merges an incoming state (from replication or read repair) into the
 * stored one under the key lock; *changed says whether the store was
 * written and *version is the merged state's version (either may be NULL).
 * KV_OK, KV_ETOOBIG, KV_ECORRUPT, KV_EIO. */
int kvi_replica_merge(int *changed, uint64_t *version, kvi_embedded *e, const void *key,
                      size_t key_len, const kvi_state *incoming);

#endif
