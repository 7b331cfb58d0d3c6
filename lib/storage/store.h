/*
 * storage/store.h - the RocksDB wrapper: one database, its column families,
 * its options, durability policy and the expiry compaction filter.
 *
 * It stores opaque records under storage keys (see record.h) and knows
 * nothing of versions; embedded.c builds the semantics on top.
 *
 * Threads: every function may be called from many threads at once, except
 * kvi_store_close.
 */
#ifndef KVI_STORE_H
#define KVI_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <kv/options.h>
#include "util/log.h"

/* Column families. Data lives in its own family so that hints, Paxos state
 * and metadata can get theirs without sharing compaction settings. */
#define KVI_CF_META "default"
#define KVI_CF_DATA "data"
#define KVI_CF_HINTS "hints"
#define KVI_CF_PAXOS "paxos"
/* Key in the meta family naming the on-disk format of the store. */
#define KVI_META_FORMAT_KEY "kv.format"
#define KVI_META_FORMAT_VALUE "1"
/* A file kv_restore writes first into the directory it restores into and
 * removes last (backup.c): a store directory that still holds it was not
 * restored whole, and kvi_store_open refuses it. */
#define KVI_RESTORE_MARKER "kv-restore-incomplete"

typedef struct kvi_store kvi_store;

typedef struct kvi_store_config {
    const char *path;
    int create_if_missing;
    kv_sync_policy sync;
    uint32_t sync_interval_ms;
    uint64_t block_cache_bytes;
    uint64_t row_cache_bytes; /* storage/row_cache.h; 0: none */
    uint64_t grace_ms; /* tombstone grace period */
    /* Keep anti-entropy's digest of the data family (digest.h) in 2^bits
     * segments; 0: none. With one, compactions never drop a record whole
     * (expiry_filter.h). */
    unsigned digest_bits;
    /* Without a digest kept by the last clean close: open with an empty
     * one, not ready, for the caller to build from the data in the
     * background (kvi_store_digest_recompute); 0: build it at open. */
    int digest_in_background;
    const kvi_logger *log;  /* borrowed; must outlive the store */
} kvi_store_config;

struct kvi_digest;
int kvi_store_open(kvi_store **out, const kvi_store_config *cfg);
void kvi_store_close(kvi_store *s);

/* The store's anti-entropy digest (storage/digest.h), kept current by every
 * write of the data family; NULL when opened without one. Built from the
 * data at open unless the last close was clean and kept it. */
struct kvi_digest *kvi_store_digest(kvi_store *s);
/* Recomputes the digest's figures of segments [first, end) from the data:
 * hashes[i] and counts[i] for segment first + i. Reads each record as the
 * scan reaches it: the caller holds off the writers of those keys (every
 * key lock) for the figures to be those of one moment. KV_OK, KV_EINVAL (no
 * digest, a range past its end), KV_EIO, KV_ENOMEM. */
int kvi_store_digest_recompute(kvi_store *s, uint32_t first, uint32_t end, uint64_t *hashes,
                               uint64_t *counts);

/* Counts records that failed their checks and that a merge replaced with
 * a replica's state (the repair of corruption); and reads the count. Any
 * thread. */
void kvi_store_count_corrupt_replaced(kvi_store *s, uint64_t n);
uint64_t kvi_store_corrupt_replaced(kvi_store *s);

/* A value read from the store, pinned in RocksDB's memory (or copied out
 * of the row cache) until released. */
typedef struct kvi_slice {
    const char *data;
    size_t len;
    void *pin;
    char *copy;
} kvi_slice;

/* KV_OK (out filled; release it), KV_ENOTFOUND, or KV_EIO. */
int kvi_store_get(kvi_store *s, const void *skey, size_t skey_len, kvi_slice *out);
void kvi_slice_release(kvi_slice *slice);

/* kvi_store_get of n keys at once (one RocksDB MultiGet, which looks the
 * keys up together): rcs[i] is KV_OK (out[i] filled; release it),
 * KV_ENOTFOUND or KV_EIO. KV_OK, or KV_ENOMEM (nothing filled). */
int kvi_store_multi_get(kvi_store *s, size_t n, const unsigned char *const *skeys,
                        const size_t *skey_lens, kvi_slice *out, int *rcs);

/* Removes a data record for good (a tombstone purged once every replica
 * has it: cluster/purge.h), through the digest and the row cache, under
 * the store's sync policy. The caller holds the key's lock. KV_OK (also
 * when there was no record), KV_EIO. */
int kvi_store_purge(kvi_store *s, const void *skey, size_t skey_len);
/* Deletes every data record whose token is in [first, last] (a RocksDB
 * range delete: the space comes back at compaction, kvi_store_compact) and
 * clears the row cache. The digest is NOT kept by it: the caller
 * recomputes the segments the range covers (kvi_store_digest_recompute)
 * with the writers of those keys held off. KV_OK, KV_EIO, KV_ENOMEM. */
int kvi_store_delete_tokens(kvi_store *s, uint64_t first, uint64_t last);
int kvi_store_put(kvi_store *s, const void *skey, size_t skey_len,
                  const void *rec, size_t rec_len);

/* A put without a sync whatever the policy; under KV_SYNC_ALWAYS the
 * writer asks the committer (kvi_store_committer) before it acknowledges. */
int kvi_store_put_unsynced(kvi_store *s, const void *skey, size_t skey_len, const void *rec,
                           size_t rec_len);
/* The store's group committer (storage/group_commit.h). */
struct kvi_group_commit *kvi_store_committer(kvi_store *s);
/* Whether every write must be durable before it is acknowledged. */
int kvi_store_sync_always(const kvi_store *s);

/* A group of puts written atomically by kvi_store_write. */
typedef struct kvi_store_batch kvi_store_batch;
kvi_store_batch *kvi_store_batch_new(kvi_store *s);
void kvi_store_batch_put(kvi_store_batch *b, const void *skey, size_t skey_len,
                         const void *rec, size_t rec_len);
/* A put into the Paxos family (format/paxos.h records), in the same
 * atomic write as the batch's data. */
void kvi_store_batch_put_paxos(kvi_store_batch *b, const void *skey, size_t skey_len,
                               const void *rec, size_t rec_len);
/* Writes the batch under the store's sync policy. */
int kvi_store_write(kvi_store *s, kvi_store_batch *b);
/* Writes it synced whatever the policy: a Paxos promise or accept must
 * survive a crash before it is answered. */
int kvi_store_write_synced(kvi_store *s, kvi_store_batch *b);
/* Writes it to the log without a sync whatever the policy: a Paxos commit,
 * whose value is already synced on a majority in their accepts. */
int kvi_store_write_unsynced(kvi_store *s, kvi_store_batch *b);
void kvi_store_batch_free(kvi_store_batch *b);

/* Small metadata values (the cluster's member ids, ...) in the meta family,
 * under names that do not start with "kv.format". get: KV_OK with *out
 * malloc'd (the caller frees it), KV_ENOTFOUND, KV_EIO, KV_ENOMEM. put is
 * synced whatever the store's policy. */
int kvi_store_meta_get(kvi_store *s, const char *name, char **out, size_t *len);
int kvi_store_meta_put(kvi_store *s, const char *name, const void *value, size_t len);

/* The hints family (cluster/hints.h gives the keys and values their
 * meaning): put and delete follow the store's sync policy; scan calls fn
 * for every entry whose key starts with prefix, in key order, until fn
 * returns non-zero. KV_OK, KV_EIO, KV_ENOMEM. */
typedef int (*kvi_store_scan_fn)(void *ctx, const void *key, size_t key_len,
                                 const void *value, size_t value_len);
int kvi_store_hint_put(kvi_store *s, const void *hkey, size_t hkey_len, const void *value,
                       size_t value_len);
int kvi_store_hint_delete(kvi_store *s, const void *hkey, size_t hkey_len);
int kvi_store_hint_scan(kvi_store *s, const void *prefix, size_t prefix_len,
                        kvi_store_scan_fn fn, void *ctx);

/* The data family in key order (ring-token order), from the first storage
 * key strictly after `after` (after_len 0: the first), until fn returns
 * non-zero. Records are handed over as stored (either format), with
 * tombstones and expired ones. Each record is read by a point get as the
 * iterator reaches its key (memtable records are updated in place, which
 * only a get reads safely), so the scan sees no single point in time: a
 * record is as of the moment its key is reached. KV_OK, KV_EIO, KV_ENOMEM. */
int kvi_store_data_scan(kvi_store *s, const void *after, size_t after_len,
                        kvi_store_scan_fn fn, void *ctx);
/* The data family's figures for /metrics and the cluster description:
 * RocksDB's estimate of its keys (tombstones and versions not yet compacted
 * count too), and the bytes of its live and of all its SST files on disk
 * (the memtables are not counted). 0 when a property is unknown. */
void kvi_store_data_figures(kvi_store *s, uint64_t *estimated_keys, uint64_t *live_sst_bytes,
                            uint64_t *total_sst_bytes);
/* The store's memory, disk and compaction figures for /metrics: the
 * seed's "disk usage and compaction lag". 0 where RocksDB does not say. */
typedef struct kvi_store_engine_figures {
    uint64_t memtable_bytes;           /* every family's memtables, active and immutable */
    uint64_t wal_bytes;                /* the write-ahead log's files on disk */
    uint64_t pending_compaction_bytes; /* what RocksDB estimates compactions must rewrite */
    uint64_t running_compactions;
    uint64_t running_flushes;
    uint64_t block_cache_bytes;        /* the block cache's usage */
    uint64_t block_cache_capacity;
    uint64_t block_cache_hits;   /* blocks the data family's point reads found in it */
    uint64_t block_cache_misses; /* ... and read from the files */
} kvi_store_engine_figures;
void kvi_store_engine_figures_get(kvi_store *s, kvi_store_engine_figures *out);
/* The row cache's figures (storage/row_cache.h; all 0 without one). */
struct kvi_row_cache_figures;
void kvi_store_row_cache_figures(kvi_store *s, struct kvi_row_cache_figures *out);
/* A key's Paxos record, under its storage key: KV_OK (out filled; release
 * it), KV_ENOTFOUND, KV_EIO. */
int kvi_store_paxos_get(kvi_store *s, const void *skey, size_t skey_len, kvi_slice *out);

/* Every Paxos record in key order, until fn returns non-zero; and the
 * removal of one (under the store's sync policy). */
int kvi_store_paxos_scan(kvi_store *s, kvi_store_scan_fn fn, void *ctx);
int kvi_store_paxos_delete(kvi_store *s, const void *skey, size_t skey_len);

/* Compacts the data family, running the expiry filter over every record. */
int kvi_store_compact(kvi_store *s);

/* A RocksDB checkpoint of every column family into dir, which must not
 * exist (its parent must): the memtables are flushed first, then the live
 * files are hard-linked (copied across file systems), so the checkpoint is
 * one consistent point of the whole store and costs little space until
 * the store compacts away the files it shares. Runs in the calling thread;
 * writers are not blocked beyond the flush. KV_OK, KV_EIO, KV_EINVAL. */
int kvi_store_checkpoint(kvi_store *s, const char *dir);
/* RocksDB's estimate of the data family's keys (tombstones and versions
 * not yet compacted count too); 0 when it has none. */
uint64_t kvi_store_estimate_keys(kvi_store *s);

#endif
