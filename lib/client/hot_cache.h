/*
 * client/hot_cache.h - the client handle's cache of hot keys' values
 * (kv_client_options.hot_cache_staleness_ms): a read hotspot answered in
 * the client, within a staleness bound.
 *
 * A hash table of keys with their last value read, each dropped once it is
 * older than the bound, the least recently read dropped first when full.
 * Values are copies in and out (kv_value is owned by whoever reads it).
 *
 * Threads: every function may be called from any thread at once (one
 * lock), except kvi_hot_cache_free.
 */
#ifndef KVI_HOT_CACHE_H
#define KVI_HOT_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <kv/kv.h>

typedef struct kvi_hot_cache kvi_hot_cache;

/* NULL when out of memory. entries 0 = 1024. */
kvi_hot_cache *kvi_hot_cache_new(uint32_t staleness_ms, uint32_t entries);
void kvi_hot_cache_free(kvi_hot_cache *c);

/* A copy of key's value if it was kept less than the bound before now_ms
 * (the monotonic clock, in ms) and has not expired by its own TTL: 1 and
 * *out set (free it), else 0. */
int kvi_hot_cache_get(kvi_hot_cache *c, const void *key, size_t key_len, uint64_t now_ms,
                      kv_value **out);
/* Keeps a copy of v as key's value read at now_ms. */
void kvi_hot_cache_put(kvi_hot_cache *c, const void *key, size_t key_len, const kv_value *v,
                       uint64_t now_ms);
/* Drops key's entry (a write of it through the handle). */
void kvi_hot_cache_drop(kvi_hot_cache *c, const void *key, size_t key_len);

/* Reads answered from the cache, and reads that missed it. */
void kvi_hot_cache_counts(kvi_hot_cache *c, uint64_t *hits, uint64_t *misses);

#endif
