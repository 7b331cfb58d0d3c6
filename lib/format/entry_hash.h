/*
 * format/entry_hash.h - the 64-bit hash of one stored entry (a storage key
 * and its record) that anti-entropy's digests XOR together (pure: no I/O).
 * See docs/design/ANTI_ENTROPY.md.
 *
 * Two replicas that hold the same replicated state of a key get the same
 * hash, whatever order their siblings are stored in; any difference in
 * that state gives a different hash (with the odds of a 64-bit collision).
 * What is hashed:
 *   - a replicated state (record format 2): the version vector, and each
 *     sibling's dot, tombstone flag, version, expiry and write time, the
 *     siblings combined by XOR so that their order does not count. Not the
 *     value: a dot names one write, and so its value; a changed value
 *     under the same dot is corruption, which the record's checksum finds.
 *   - a record of format 1 (a store that was never replicated): its version
 *     only, which the expiry filter keeps when it turns an expired value
 *     into a tombstone, so that rewrite leaves the hash as it was.
 *   - a record that fails its checksum or format check: a hash of the key
 *     alone under a seed of its own, so it differs from the healthy copy
 *     another replica holds and repair replaces it.
 */
#ifndef KVI_ENTRY_HASH_H
#define KVI_ENTRY_HASH_H

#include <stddef.h>
#include <stdint.h>

/* skey is the storage key (token | user key, format/record.h); rec the
 * record stored under it. Never fails. */
uint64_t kvi_entry_hash(const void *skey, size_t skey_len, const void *rec, size_t rec_len);

/* What kvi_entry_hash gives a record that fails its checks (for tests). */
uint64_t kvi_entry_hash_corrupt(const void *skey, size_t skey_len);

#endif
