/*
 * storage/digest.h - anti-entropy's digest of a store: the token space cut
 * into 2^bits fixed segments (by the top bits of a key's token), each
 * holding the XOR of the entry hashes (format/entry_hash.h) of the keys in
 * it, and how many keys that is. See docs/design/ANTI_ENTROPY.md.
 *
 * Kept current by every write of the data family, not rebuilt for a
 * repair: a write that replaces a record applies hash(old) XOR hash(new)
 * to its key's segment. XOR combines, so the digest of any run of segments
 * (a vnode range, or what two replicas share) is the XOR of theirs.
 *
 * Threads: kvi_digest_change and the readers may run on any threads at
 * once (each segment is updated with atomic operations). A reader running
 * beside writes sees each segment as of some moment, not the whole table
 * as of one: an exchange checks a differing segment again before it acts.
 * new, free, encode and decode are not concurrent with anything on the
 * same digest.
 */
#ifndef KVI_DIGEST_H
#define KVI_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

#define KVI_DIGEST_MIN_BITS 4u
#define KVI_DIGEST_MAX_BITS 24u
/* 2^18 segments: 4 MiB a node; a million keys make about 4 per segment. */
#define KVI_DIGEST_DEFAULT_BITS 18u

typedef struct kvi_digest kvi_digest;

/* An empty digest of 2^bits segments (bits in MIN..MAX), or NULL when out
 * of memory or bits is out of range. */
kvi_digest *kvi_digest_new(unsigned bits);
void kvi_digest_free(kvi_digest *d);

unsigned kvi_digest_bits(const kvi_digest *d);
size_t kvi_digest_segments(const kvi_digest *d);
/* The segment a token falls in. */
size_t kvi_digest_segment_of(const kvi_digest *d, uint64_t token);

/* One key's entry changed: the key's old entry (had_old: it had one, with
 * hash old_hash) is replaced by its new one (has_new; new_hash). A put of
 * a new key has had_old 0; a purge has has_new 0. */
void kvi_digest_change(kvi_digest *d, uint64_t token, int had_old, uint64_t old_hash,
                       int has_new, uint64_t new_hash);

/* Sets one segment's figures: what a recomputation from the data found,
 * with every writer of the segment's keys held off (their key locks). */
void kvi_digest_set(kvi_digest *d, size_t seg, uint64_t hash, uint64_t count);

/* Whether the digest holds the data's figures: set once it was kept by a
 * clean close or built; a digest built in the background is not ready
 * until its last segment is, and is not compared meanwhile. New digests
 * are not ready. Any thread. */
int kvi_digest_ready(const kvi_digest *d);
void kvi_digest_set_ready(kvi_digest *d, int ready);

/* The XOR of the hashes and the count of keys over segments [first, end). */
void kvi_digest_range(const kvi_digest *d, size_t first, size_t end, uint64_t *hash,
                      uint64_t *count);

/* 1 when a and b have the same segments holding the same figures. */
int kvi_digest_equal(const kvi_digest *a, const kvi_digest *b);

/* The digest's bytes, to keep across a clean restart: "kvdg", a format
 * byte, the bits, each segment's hash and count (big-endian), and an xxh3
 * checksum of all that. Appended to out (check out->failed). */
void kvi_digest_encode(const kvi_digest *d, kvi_buf *out);
/* KV_OK with *out a digest holding what encode wrote, KV_ECORRUPT when the
 * bytes are not that (short, a bad checksum, bits out of range), or
 * KV_ENOMEM. */
int kvi_digest_decode(kvi_digest **out, const void *data, size_t len);

#endif
