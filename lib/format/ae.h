/*
 * format/ae.h - the bodies of anti-entropy's two requests between nodes
 * (pure: no I/O). See docs/design/ANTI_ENTROPY.md.
 *
 * Each travels as the `bytes value` of its request and of its answer
 * (format/message.h). Integers big-endian; `bytes` is u32 length + bytes.
 *
 *   AE_DIGEST  request  u8 bits, u8 fanout (1..KVI_AE_MAX_FANOUT), u32 count
 *                       (1..KVI_AE_MAX_RANGES), count x (u32 first, u32 end):
 *                       segment ranges of the asker's digest of 2^bits
 *                       segments, first < end <= 2^bits, each to be answered
 *                       cut into the parts kvi_ae_parts makes of it (fanout
 *                       1: the range itself); at most KVI_AE_MAX_RANGES parts
 *              answer   u32 parts, parts x (u64 hash, u32 keys): the XOR of
 *                       the entry hashes of each part and its key count
 *                       (modulo 2^32), in order
 *   AE_KEYS    request  u8 bits, u32 first, u32 end (a segment range as
 *                       above), bytes after (a storage key inside the range
 *                       to start after; empty: from the range's start),
 *                       u32 max_keys (1..KVI_AE_MAX_KEYS), u8 flags
 *                       (KVI_AE_KEYS_RECORDS: send each key's record too)
 *              answer   u32 count, count x (bytes storage key, u64 entry
 *                       hash [, bytes record when asked]) in key order,
 *                       u8 more (1: ask again after the last key)
 *
 * Asking for parts rather than naming each one halves a comparison's bytes:
 * the asker sends the ranges that differed, and both sides cut them alike.
 */
#ifndef KVI_AE_H
#define KVI_AE_H

#include <stddef.h>
#include <stdint.h>

#include "format/message.h"
#include "util/buf.h"

#define KVI_AE_MAX_RANGES 4096u
#define KVI_AE_MAX_FANOUT 64u
#define KVI_AE_MAX_KEYS 65536u
/* AE_KEYS flag: each key's stored record follows its hash. */
#define KVI_AE_KEYS_RECORDS 1u

typedef struct kvi_ae_range {
    uint32_t first, end; /* segments [first, end) */
} kvi_ae_range;

/* ------------------------------------------------------------ AE_DIGEST */

/* The parts of n ranges cut `fanout` ways: a range of s segments becomes
 * min(fanout, s) parts of (nearly) equal size, in order. Writes at most
 * room parts to out and returns how many there are in all. */
size_t kvi_ae_parts(kvi_ae_range *out, size_t room, const kvi_ae_range *ranges, size_t n,
                    unsigned fanout);

void kvi_ae_digest_request_encode(kvi_buf *b, unsigned bits, unsigned fanout,
                                  const kvi_ae_range *ranges, size_t n);
/* 0 with *bits, *fanout, *n and ranges[0, *n) (ranges holds
 * KVI_AE_MAX_RANGES), or -1 for a malformed body: short, trailing bytes, a
 * count of 0 or over the limit, bits over 32, a fanout of 0 or over
 * KVI_AE_MAX_FANOUT, a range empty or past 2^bits, more than
 * KVI_AE_MAX_RANGES parts. */
int kvi_ae_digest_request_decode(unsigned *bits, unsigned *fanout, kvi_ae_range *ranges,
                                 size_t *n, const void *body, size_t len);

void kvi_ae_digest_answer_encode(kvi_buf *b, const uint64_t *hashes, const uint32_t *keys,
                                 size_t n);
/* 0 with hashes[0, n) and keys[0, n) when the answer holds exactly n
 * parts, else -1. */
int kvi_ae_digest_answer_decode(uint64_t *hashes, uint32_t *keys, size_t n, const void *body,
                                size_t len);

/* -------------------------------------------------------------- AE_KEYS */

typedef struct kvi_ae_keys_request {
    unsigned bits;
    uint32_t first, end;
    kvi_bytes after;    /* borrowed from the body it was decoded from */
    uint32_t max_keys;
    unsigned flags;     /* KVI_AE_KEYS_RECORDS */
} kvi_ae_keys_request;

void kvi_ae_keys_request_encode(kvi_buf *b, const kvi_ae_keys_request *req);
/* 0, or -1 for a malformed body (as for AE_DIGEST, max_keys 0 or over the
 * limit, an unknown flag). */
int kvi_ae_keys_request_decode(kvi_ae_keys_request *out, const void *body, size_t len);

/* An answer is built in place: start it, add each key (with its record
 * when they were asked for: record non-NULL), finish it with whether more
 * may follow. */
size_t kvi_ae_keys_answer_start(kvi_buf *b);
void kvi_ae_keys_answer_add(kvi_buf *b, const void *skey, size_t skey_len, uint64_t hash,
                            const void *record, size_t record_len);
void kvi_ae_keys_answer_finish(kvi_buf *b, size_t start, uint32_t count, int more);

/* Checks an answer whole (records: the request asked for them): 0 with
 * *count, *more and *items (a reader at the first key, for
 * kvi_ae_keys_answer_next), or -1 when malformed (short, trailing bytes, an
 * empty key, keys not in increasing order, more not 0 or 1). */
int kvi_ae_keys_answer_check(uint32_t *count, int *more, kvi_reader *items, const void *body,
                             size_t len, int records);
/* The next key of a checked answer; call it count times. record may be
 * NULL when the answer has no records. */
void kvi_ae_keys_answer_next(kvi_reader *items, kvi_bytes *skey, uint64_t *hash,
                             kvi_bytes *record);

#endif
