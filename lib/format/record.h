/*
 * format/record.h - the on-disk encoding of one stored value (pure, no I/O).
 *
 * RocksDB key:   token (8 bytes, big-endian) | user key
 *   The token is the key's 64-bit ring position (xxh3), so that every vnode
 *   range of the ring is one contiguous RocksDB range.
 *
 * RocksDB value (format 1):
 *   off  0  u8   format      KVI_RECORD_FORMAT_1
 *   off  1  u8   flags       bit 0: tombstone
 *   off  2  u64  version     big-endian
 *   off 10  u64  expiry_ms   Unix ms, 0 = never
 *   off 18  u64  write_ms    Unix ms of the write (tombstone age, later LWW)
 *   off 26  ...  value bytes (none for a tombstone)
 *   end-8   u64  checksum    xxh3-64 of everything before it, seeded with
 *                            the token, so a record copied under another
 *                            key fails too.
 */
#ifndef KVI_RECORD_H
#define KVI_RECORD_H

#include <stddef.h>
#include <stdint.h>

#define KVI_RECORD_FORMAT_1 1u
#define KVI_RECORD_FLAG_TOMBSTONE 0x01u
#define KVI_RECORD_HEADER 26u
#define KVI_RECORD_TRAILER 8u
#define KVI_RECORD_OVERHEAD (KVI_RECORD_HEADER + KVI_RECORD_TRAILER)

#define KVI_TOKEN_SIZE 8u

typedef struct kvi_record {
    uint64_t version;
    uint64_t expiry_ms;
    uint64_t write_ms;
    int tombstone;
    const unsigned char *value; /* borrowed from the encoded buffer */
    size_t value_len;
} kvi_record;

/* The ring token of a user key. */
uint64_t kvi_key_token(const void *key, size_t key_len);

/* Writes token | key into out (KVI_TOKEN_SIZE + key_len bytes). */
void kvi_storage_key(unsigned char *out, uint64_t token, const void *key,
                     size_t key_len);

/* Bytes needed to encode a record holding value_len bytes. */
static inline size_t kvi_record_size(size_t value_len)
{
    return KVI_RECORD_OVERHEAD + value_len;
}

/* Encodes rec (its value pointer and length included) into out, which holds
 * kvi_record_size(rec->value_len) bytes. */
void kvi_record_encode(unsigned char *out, const kvi_record *rec, uint64_t token);

/* Decodes and verifies buf. On success fills rec (value points into buf) and
 * returns KV_OK; a short buffer, unknown format, unknown flags, a tombstone
 * with a value or a checksum mismatch give KV_ECORRUPT. */
int kvi_record_decode(kvi_record *rec, const void *buf, size_t len, uint64_t token);

/* True when rec holds a live value at now_ms (not a tombstone, not expired). */
static inline int kvi_record_live(const kvi_record *rec, uint64_t now_ms)
{
    return !rec->tombstone && (rec->expiry_ms == 0 || rec->expiry_ms > now_ms);
}

#endif
