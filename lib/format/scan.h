/*
 * format/scan.h - a scan's page (kv_scan_page), its cursor text, and the
 * bodies of the SCAN and SCAN_RANGE answers (pure: no I/O).
 *
 * A scan's position is a storage key (format/record.h: token | user key):
 * the scan goes on with the keys strictly after it in RocksDB order, which
 * is ring-token order. A position may also be a bare 8-byte token, which
 * sorts before every key of that token (keys are never empty). The empty
 * position is the start. The cursor a user sees is the position in
 * lowercase hex: opaque, URL-safe, and checked when it comes back.
 *
 * Answer bodies, integers big-endian, bytes = u32 length + bytes:
 *   SCAN        u32 count, count x (bytes key, u64 version, u64 expiry_ms,
 *               bytes context, u8 n (0..16: 0 for keys only), n x bytes
 *               value), bytes next position (empty: the scan is over)
 *   SCAN_RANGE  u32 count, count x (bytes key, bytes state (format 2, with
 *               empty values for keys only)), u8 more (1: the answer was
 *               cut short by its limit; keys after the last may follow in
 *               the range)
 */
#ifndef KVI_FORMAT_SCAN_H
#define KVI_FORMAT_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include <kv/scan.h>

#include "format/message.h"
#include "format/record.h"

/* Scan flags (requests). */
#define KVI_SCAN_KEYS_ONLY 0x01u
#define KVI_SCAN_SIBLINGS 0x02u /* every live sibling and the context */
#define KVI_SCAN_FLAGS_KNOWN 0x03u

/* The longest position: a token and the largest key any store allows. */
#define KVI_SCAN_MAX_POSITION (KVI_TOKEN_SIZE + 65536u)
/* A page (and a range answer) ends after the item that takes it past this
 * many bytes of keys and values, so it fits a frame whatever the limit. */
#define KVI_SCAN_PAGE_BYTES (1024u * 1024u)

/* Whether a position is acceptable: empty, or a token and at most 64 KiB of
 * key. */
static inline int kvi_scan_position_ok(size_t len)
{
    return len == 0 || (len >= KVI_TOKEN_SIZE && len <= KVI_SCAN_MAX_POSITION);
}

/* ------------------------------------------------------------------ page */

kv_scan_page *kvi_scan_page_new(void);
void kvi_scan_page_free(kv_scan_page *p);
/* Appends a key (copied) with its version and value (taken, may be NULL
 * for keys only; freed on failure too). KV_OK or KV_ENOMEM. */
int kvi_scan_page_add(kv_scan_page *p, const void *key, size_t key_len, uint64_t version,
                      kv_value *value);
/* Sets where the next page starts (len 0: nowhere, the scan is over).
 * KV_OK or KV_ENOMEM. */
int kvi_scan_page_set_next(kv_scan_page *p, const void *position, size_t len);
/* Bytes of keys and values in the page so far. */
size_t kvi_scan_page_bytes(const kv_scan_page *p);

size_t kvi_scan_page_count(const kv_scan_page *p);
const void *kvi_scan_page_key(const kv_scan_page *p, size_t i, size_t *len);
const kv_value *kvi_scan_page_value(const kv_scan_page *p, size_t i);
uint64_t kvi_scan_page_version(const kv_scan_page *p, size_t i);
/* The next cursor (hex text), NULL at the end. */
const char *kvi_scan_page_cursor(const kv_scan_page *p);

/* --------------------------------------------------------------- cursor */

/* Decodes cursor text (NULL or "" is the start) into a position: out must
 * hold KVI_SCAN_MAX_POSITION bytes. KV_OK, or KV_EINVAL (not hex, odd
 * length, a position of the wrong size). */
int kvi_scan_cursor_decode(unsigned char *out, size_t *out_len, const char *text);

/* ---------------------------------------------------------- SCAN answer */

/* Appends a page's SCAN answer body. */
void kvi_scan_page_encode(kvi_buf *b, const kv_scan_page *p);
/* Decodes a SCAN answer body into a new page (copied). KV_OK, KV_EIO for a
 * malformed body, KV_ENOMEM. */
int kvi_scan_page_decode(kv_scan_page **out, const void *body, size_t len);

/* ---------------------------------------------------- SCAN_RANGE answer */

/* Encoding: kvi_buf_u32(count) first, then per item kvi_scan_range_item,
 * then kvi_buf_u8(more); the caller patches the count (kvi_scan_range_count). */
void kvi_scan_range_item(kvi_buf *b, const void *key, size_t key_len, const void *state,
                         size_t state_len);
/* Writes count as the u32 at offset `at` of b (where the answer began). */
void kvi_scan_range_count(kvi_buf *b, size_t at, uint32_t count);
/* Checks a SCAN_RANGE answer body whole: 0 with *count, *more and *items (a
 * reader at the first item), or -1 when malformed. */
int kvi_scan_range_decode(const void *body, size_t len, uint32_t *count, int *more,
                          kvi_reader *items);
/* The next item of a checked answer. */
void kvi_scan_range_next(kvi_reader *items, kvi_bytes *key, kvi_bytes *state);

#endif
