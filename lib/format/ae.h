/*
 * format/ae.h - the bodies of anti-entropy's two requests between nodes
 * (pure: no I/O). See docs/design/ANTI_ENTROPY.md.
 *
 * Each travels as the `bytes value` of its request and of its answer
 * (format/message.h). Integers big-endian; `bytes` is u32 length + bytes.
 *
 *   AE_DIGEST  request  u8 bits, u32 count (1..KVI_AE_MAX_RANGES),
 *                       count x (u32 first, u32 end): segment ranges of the
 *                       asker's digest of 2^bits segments, first < end <= 2^bits
 *              answer   u32 count, count x (u64 hash, u64 keys): the XOR of
 *                       the entry hashes and the keys of each range, in order
 *   AE_KEYS    request  u8 bits, u32 first, u32 end (a segment range as
 *                       above), bytes after (a storage key inside the range
 *                       to start after; empty: from the range's start),
 *                       u32 max_keys (1..KVI_AE_MAX_KEYS)
 *              answer   u32 count, count x (bytes storage key, u64 entry
 *                       hash) in key order, u8 more (1: ask again after the
 *                       last key)
 */
#ifndef KVI_AE_H
#define KVI_AE_H

#include <stddef.h>
#include <stdint.h>

#include "format/message.h"
#include "util/buf.h"

#define KVI_AE_MAX_RANGES 4096u
#define KVI_AE_MAX_KEYS 65536u

typedef struct kvi_ae_range {
    uint32_t first, end; /* segments [first, end) */
} kvi_ae_range;

/* ------------------------------------------------------------ AE_DIGEST */

void kvi_ae_digest_request_encode(kvi_buf *b, unsigned bits, const kvi_ae_range *ranges,
                                  size_t n);
/* 0 with *bits, *n and ranges[0, *n) (ranges holds KVI_AE_MAX_RANGES), or
 * -1 for a malformed body: short, trailing bytes, a count of 0 or over the
 * limit, bits over 32, a range empty or past 2^bits. */
int kvi_ae_digest_request_decode(unsigned *bits, kvi_ae_range *ranges, size_t *n,
                                 const void *body, size_t len);

void kvi_ae_digest_answer_encode(kvi_buf *b, const uint64_t *hashes, const uint64_t *keys,
                                 size_t n);
/* 0 with hashes[0, n) and keys[0, n) when the answer holds exactly n
 * ranges, else -1. */
int kvi_ae_digest_answer_decode(uint64_t *hashes, uint64_t *keys, size_t n, const void *body,
                                size_t len);

/* -------------------------------------------------------------- AE_KEYS */

typedef struct kvi_ae_keys_request {
    unsigned bits;
    uint32_t first, end;
    kvi_bytes after;    /* borrowed from the body it was decoded from */
    uint32_t max_keys;
} kvi_ae_keys_request;

void kvi_ae_keys_request_encode(kvi_buf *b, const kvi_ae_keys_request *req);
/* 0, or -1 for a malformed body (as for AE_DIGEST, and max_keys 0 or over
 * the limit). */
int kvi_ae_keys_request_decode(kvi_ae_keys_request *out, const void *body, size_t len);

/* An answer is built in place: start it, add each key, finish it with
 * whether more may follow. */
size_t kvi_ae_keys_answer_start(kvi_buf *b);
void kvi_ae_keys_answer_add(kvi_buf *b, const void *skey, size_t skey_len, uint64_t hash);
void kvi_ae_keys_answer_finish(kvi_buf *b, size_t start, uint32_t count, int more);

/* Checks an answer whole: 0 with *count, *more and *items (a reader at the
 * first key, for kvi_ae_keys_answer_next), or -1 when malformed (short,
 * trailing bytes, an empty key, keys not in increasing order, more not 0
 * or 1). */
int kvi_ae_keys_answer_check(uint32_t *count, int *more, kvi_reader *items, const void *body,
                             size_t len);
/* The next key of a checked answer; call it count times. */
void kvi_ae_keys_answer_next(kvi_reader *items, kvi_bytes *skey, uint64_t *hash);

#endif
