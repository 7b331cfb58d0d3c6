/*
 * storage/expiry_filter.h - the RocksDB compaction filter that reclaims
 * expired values and old tombstones.
 *
 * An expired value becomes a tombstone (its bytes are dropped at once, its
 * version is kept) and is dropped whole once the grace period has passed
 * since it expired; a tombstone is dropped once the grace period has passed
 * since it was written. Keeping the version through the grace period means a
 * replica that still holds an older value cannot resurrect it, and a key
 * rewritten soon after expiring does not reuse old version numbers.
 */
#ifndef KVI_EXPIRY_FILTER_H
#define KVI_EXPIRY_FILTER_H

#include <stdint.h>
#include <rocksdb/c.h>

/* What the filter decides for one record (pure, for tests). */
typedef enum kvi_expiry_action {
    KVI_EXPIRY_KEEP = 0,
    KVI_EXPIRY_TO_TOMBSTONE = 1,
    KVI_EXPIRY_DROP = 2
} kvi_expiry_action;

kvi_expiry_action kvi_expiry_decide(const char *key, size_t key_len,
                                    const char *value, size_t value_len,
                                    uint64_t now_ms, uint64_t grace_ms);

/* A new compaction filter; RocksDB owns it once set on the options. With
 * keep_keys, it never drops a record whole (a store that keeps an
 * anti-entropy digest, storage/digest.h: a record that vanished in a
 * compaction would leave its hash in the digest, and a replica that missed
 * a delete could bring the value back through repair). It still turns an
 * expired format-1 value into a tombstone, which keeps its entry hash
 * (format/entry_hash.h). In a cluster, purges are writes that repair allows
 * (docs/design/ANTI_ENTROPY.md). */
rocksdb_compactionfilter_t *kvi_expiry_filter_create(uint64_t grace_ms, int keep_keys);

#endif
