/*
 * storage/embedded.h - the embedded store: versions, CAS, TTL and batches on top of
 * the RocksDB wrapper.
 *
 * Arguments arrive validated by api.c (sizes within the handle's limits,
 * pointers non-NULL where lengths are non-zero).
 *
 * Threads: every function may be called from many threads at once, except
 * kvi_embedded_close. Writers of one key are serialised by a striped lock;
 * readers take no lock.
 */
#ifndef KVI_EMBEDDED_H
#define KVI_EMBEDDED_H

#include <kv/kv.h>
#include "storage/store.h"

/* kv_open_options.tombstone_grace_s when 0: a day. In a cluster, the
 * margin a purge keeps past the hint window and the replicas' repairs. */
#define KVI_DEFAULT_TOMBSTONE_GRACE_S 86400u

typedef struct kvi_embedded kvi_embedded;

/* Checks the open options o and fills cfg's settings from them (path and
 * log are the caller's): KV_OK or KV_EINVAL. */
int kvi_embedded_config(kvi_store_config *cfg, const kv_open_options *o);
int kvi_embedded_open(kvi_embedded **out, const kvi_store_config *cfg);
void kvi_embedded_close(kvi_embedded *e);

int kvi_embedded_put(kvi_embedded *e, uint64_t *out_version, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     uint64_t ttl_s);
int kvi_embedded_get(kvi_embedded *e, kv_value **out, const void *key,
                     size_t key_len);
int kvi_embedded_delete(kvi_embedded *e, uint64_t *out_version,
                        const void *key, size_t key_len);
int kvi_embedded_cas(kvi_embedded *e, uint64_t *out_version, const void *key,
                     size_t key_len, uint64_t expected_version,
                     const void *value, size_t value_len, uint64_t ttl_s);
/* A write of kvi_embedded_write_many: in, what put, cas or delete take;
 * out, how it ended. */
typedef enum kvi_embedded_write_kind {
    KVI_EMBEDDED_PUT,
    KVI_EMBEDDED_CAS,
    KVI_EMBEDDED_DELETE
} kvi_embedded_write_kind;

typedef struct kvi_embedded_write {
    kvi_embedded_write_kind kind;
    const void *key;
    size_t key_len;
    const void *value; /* put, cas */
    size_t value_len;
    uint64_t expected_version; /* cas */
    uint64_t ttl_s;            /* put, cas */
    int status;                /* as kvi_embedded_put, _cas, _delete return */
    uint64_t version;          /* the new version; with KV_ECONFLICT, the current one */
    char why[200];             /* status != KV_OK: the message */
} kvi_embedded_write;

/* Independent writes (the ones a node alone read in one loop iteration)
 * made as put, cas and delete make them, in order (a later write of a key
 * builds on an earlier one), each succeeding or failing alone, in one
 * WriteBatch: unsynced when `unsynced` (the caller waits for the store's
 * group committer before it acknowledges them), else under the store's
 * policy. If that write fails, so does every write that had succeeded. */
void kvi_embedded_write_many(kvi_embedded *e, kvi_embedded_write *ws, size_t n, int unsynced);
/* Runs a batch whose operations were validated against the handle's limits. */
int kvi_embedded_batch(kvi_embedded *e, kv_batch *b);
int kvi_embedded_compact(kvi_embedded *e);
/* A page of a scan of this store (embedded_scan.c): the live keys strictly
 * after the position `after` (a storage key, format/scan.h; empty: from the
 * start), at most `limit` of them and about KVI_SCAN_PAGE_BYTES, with their
 * values unless flags has KVI_SCAN_KEYS_ONLY (KVI_SCAN_SIBLINGS: every live
 * sibling of a replicated state, else the latest write). Tombstones,
 * expired and corrupt records are skipped, and count toward a bound on the
 * records one page examines. *out (the caller's) has a next cursor unless
 * the store has nothing after the page. KV_OK, KV_EIO, KV_ENOMEM. */
struct kv_scan_page;
int kvi_embedded_scan(kvi_embedded *e, struct kv_scan_page **out, const void *after,
                      size_t after_len, size_t limit, unsigned flags);

/* The store and the key locks underneath, for the replica operations
 * (cluster/replica_store.c), which must serialise with local writers. */
struct kvi_keylock;
kvi_store *kvi_embedded_store(kvi_embedded *e);
struct kvi_keylock *kvi_embedded_locks(kvi_embedded *e);

#endif
