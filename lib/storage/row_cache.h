/*
 * storage/row_cache.h - the latest record of recently used keys, in a hash
 * table in front of RocksDB's data family.
 *
 * Why: a point read from RocksDB searches the memtable's skip list (a
 * cache miss per level) and then the SST files; on a store whose keys fit
 * in memory that search was 35-40% of a node's CPU. A hash lookup costs
 * one or two misses. ScyllaDB reads through a row cache for the same
 * reason; RocksDB's own row_cache covers SST files only, not the memtable.
 *
 * The cache is write-through: the store puts every record it writes into
 * it once RocksDB has the write, and a read that misses fills it. Both are
 * made safe against each other by a generation per shard: a read takes a
 * ticket before it reads RocksDB and its fill is dropped if a write reached
 * the shard meanwhile, so a record read before a write can never replace
 * the record that write put in. Two writes of one key are ordered by the
 * caller's key lock (every writer of the data family holds it across the
 * write), so the cache's last put is RocksDB's last write.
 *
 * What it does not see: compactions. A record the expiry filter drops
 * (expired, or a tombstone past its grace) may stay here until evicted;
 * readers already treat such a record as absent, as they must for the
 * same record still in RocksDB before its compaction.
 *
 * Bounded: the bytes of its entries (key, record and bookkeeping) stay
 * under the capacity, least recently used first out, per shard.
 *
 * Threads: every function may be called from many threads at once, except
 * kvi_row_cache_free.
 */
#ifndef KVI_ROW_CACHE_H
#define KVI_ROW_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct kvi_row_cache kvi_row_cache;

/* A cache of at most capacity bytes; NULL when capacity is 0 (no cache:
 * every function below accepts NULL and does nothing) or memory is short. */
kvi_row_cache *kvi_row_cache_new(uint64_t capacity);
void kvi_row_cache_free(kvi_row_cache *c);

/* A copy of key's record: 1 with *rec malloc'd (the caller frees it) and
 * *rec_len set; 0 on a miss or when memory is short, with *ticket set for
 * kvi_row_cache_fill. */
int kvi_row_cache_get(kvi_row_cache *c, const void *key, size_t key_len, char **rec,
                      size_t *rec_len, uint64_t *ticket);

/* After a miss: the record just read from RocksDB, kept unless a write
 * reached the key's shard since the ticket was taken, or the key is
 * already cached. */
void kvi_row_cache_fill(kvi_row_cache *c, const void *key, size_t key_len, const void *rec,
                        size_t rec_len, uint64_t ticket);

/* After a write RocksDB accepted: the key's new record. */
void kvi_row_cache_put(kvi_row_cache *c, const void *key, size_t key_len, const void *rec,
                       size_t rec_len);

/* kvi_row_cache_put of a record whose entry hash (format/entry_hash.h) the
 * caller already computed: kept beside it for kvi_row_cache_entry_hash. */
void kvi_row_cache_put_hashed(kvi_row_cache *c, const void *key, size_t key_len,
                              const void *rec, size_t rec_len, uint64_t entry_hash);

/* 1 with *entry_hash the entry hash of key's cached record (computed from
 * it once, then kept), without copying the record; 0 on a miss. For the
 * anti-entropy digest, which needs the hash of the record a write
 * replaces. */
int kvi_row_cache_entry_hash(kvi_row_cache *c, const void *key, size_t key_len,
                             uint64_t *entry_hash);

/* After a delete RocksDB accepted (a purge): the key is no longer cached,
 * and a fill that raced the delete is dropped. */
void kvi_row_cache_forget(kvi_row_cache *c, const void *key, size_t key_len);

/* Forgets every key (after a compaction run on request, say). */
void kvi_row_cache_clear(kvi_row_cache *c);

/* Figures for /metrics. */
typedef struct kvi_row_cache_figures {
    uint64_t hits, misses, bytes, entries, capacity;
} kvi_row_cache_figures;
void kvi_row_cache_figures_get(kvi_row_cache *c, kvi_row_cache_figures *out);

#endif
