/*
 * cluster/replica_store.h - a node's replicated key states in its store.
 *
 * The cluster keeps each key as a state (format/state.h: a clock and its
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

#include "format/state.h"
#include "storage/embedded.h"

/* The dot node of values written by the embedded path. Node ids cannot
 * contain '~', so it never collides with a real member. */
#define KVI_LOCAL_NODE "~local"

/* Decodes a stored record of either format (len bytes at rec, as stored
 * under a key of this token) into a state pointing into rec. KV_OK or
 * KV_ECORRUPT. */
int kvi_replica_state_decode(kvi_state *out, const void *rec, size_t len, uint64_t token);
/* Reads a key's state: KV_OK, KV_ENOTFOUND (no record), KV_ECORRUPT. */
int kvi_replica_read(kvi_state *out, kvi_buf *holder, kvi_embedded *e, const void *key,
                     size_t key_len);

/* Coordinates a write at `node` with context ctx (NULL: blind): under the
 * key lock, applies value to the stored state and stores the result, which
 * is returned for replication. value's dot and version are filled in.
 * KV_OK, KV_ETOOBIG (sibling limit), KV_ECORRUPT, KV_EINVAL, KV_EIO. */
int kvi_replica_write(kvi_state *out, kvi_buf *holder, kvi_embedded *e, const void *key,
                      size_t key_len, const kvi_vv *ctx, const char *node, kvi_sibling *value);

/* How a coordinator writes (kvi_replica_coordinate). */
typedef struct kvi_replica_write_args {
    const char *node;              /* the coordinator's id, minting the dot */
    const kvi_vv *ctx;             /* the caller's context; NULL: none */
    /* Also supersede every sibling this replica holds (the LWW policy, and
     * CAS): the context becomes the held clock plus ctx. */
    int supersede_held;
    /* Merged into the held state first (CAS: the quorum read's result). */
    const kvi_state *merge_first;
    /* CAS: refuse with KV_ECONFLICT unless the highest live version (0 when
     * nothing is live) is expected_version. */
    int check_version;
    uint64_t expected_version;
    /* Called under the key lock with the new state once it is computed and
     * before it is stored (a coordinator keeps it, encoded, for the
     * replicas). It must not take locks or run other requests' work. May
     * be NULL. */
    void (*on_state)(void *ctx, const kvi_state *state);
    void *on_state_ctx;
    /* Write without a sync whatever the policy: the caller makes it
     * durable through the store's group committer before it counts. */
    int unsynced;
} kvi_replica_write_args;

/* Coordinates a write under the key lock: loads the state, merges
 * merge_first, checks the version, applies value with the context, stores
 * the result and returns it for replication. value's dot and version are
 * filled in; value->write_ms must be set (it is also "now" for expiry).
 * *current_version (may be NULL) receives the live version a CAS compared.
 * KV_OK, KV_ECONFLICT, KV_ETOOBIG, KV_ECORRUPT, KV_EINVAL, KV_EIO. */
int kvi_replica_coordinate(kvi_state *out, kvi_buf *holder, kvi_embedded *e, const void *key,
                           size_t key_len, const kvi_replica_write_args *args,
                           kvi_sibling *value, uint64_t *current_version);

/* Merges an incoming state (from replication or read repair) into the
 * stored one under the key lock; *changed says whether the store was
 * written and *version is the merged state's version (either may be NULL).
 * KV_OK, KV_ETOOBIG, KV_ECORRUPT, KV_EIO. */
int kvi_replica_merge(int *changed, uint64_t *version, kvi_embedded *e, const void *key,
                      size_t key_len, const kvi_state *incoming);

/* One item of kvi_replica_merge_many: a state to merge in (incoming), or
 * a write this node coordinates (incoming NULL; args and value as
 * kvi_replica_coordinate takes them). */
typedef struct kvi_merge_item {
    const void *key;
    size_t key_len;
    const kvi_state *incoming;
    const kvi_replica_write_args *args; /* a coordinated write: its arguments */
    kvi_sibling *value;                 /* ... and its value (dot and version filled) */
    uint64_t current_version; /* out, coordinated: the live version a CAS compared */
    int status;          /* out: KV_OK, KV_ECONFLICT (coordinated), KV_ETOOBIG, KV_EINVAL,
                          * KV_ECORRUPT, KV_EIO, KV_ENOMEM */
    uint64_t version;    /* out: the merged state's version */
    char *why;           /* NULL, or room (why_size bytes) for a failed item's message */
    size_t why_size;
} kvi_merge_item;

/* kvi_replica_merge (or kvi_replica_coordinate) for many items at once
 * (what an I/O loop's iteration gathered): every key locked, the stored
 * states read with one multi-get, merged, and written in one atomic store
 * write, so one sync serves them all (unsynced: the write is not synced
 * whatever the policy; the caller asks the group committer before it
 * acknowledges). Items of the same key apply in order, each to the state
 * the one before left. Each item gets its own status; the return is KV_OK,
 * or the failure of the common write (then every item carries it). */
int kvi_replica_merge_many(kvi_embedded *e, kvi_merge_item *items, size_t n, int unsynced);

#endif
