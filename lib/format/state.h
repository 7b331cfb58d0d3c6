/*
 * format/state.h - a key's replicated state: a causal clock and its
 * siblings (pure: no I/O). See docs/design/CLUSTER.md.
 *
 * Encoding (record format 2), integers big-endian:
 *   u8 format (2), u8 flags (0), version vector (dvv.h encoding),
 *   u8 sibling count (1..KVI_STATE_MAX_SIBLINGS), then per sibling:
 *     u8 id length, id, u64 counter      its dot
 *     u8 flags                           bit 0: tombstone
 *     u64 version, u64 expiry_ms, u64 write_ms
 *     u32 value length, value            (empty for a tombstone)
 *   u64 checksum: xxh3-64 of everything before it, seeded with the token.
 * Decoding is zero-copy: values point into the buffer.
 */
#ifndef KVI_STATE_H
#define KVI_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "format/dvv.h"
#include "format/message.h"

#define KVI_STATE_FORMAT 2u
/* Concurrent values kept for one key; past it a write is refused with a
 * clear error instead of letting siblings pile up. */
#define KVI_STATE_MAX_SIBLINGS 16u

typedef struct kvi_sibling {
    kvi_dot dot;
    int tombstone;
    uint64_t version;    /* the scalar version the API shows */
    uint64_t expiry_ms;  /* 0 = never */
    uint64_t write_ms;   /* for last-write-wins and tombstone age */
    const unsigned char *value;
    size_t value_len;
} kvi_sibling;

typedef struct kvi_state {
    kvi_vv clock;
    size_t n;
    kvi_sibling sibs[KVI_STATE_MAX_SIBLINGS];
} kvi_state;

void kvi_state_init(kvi_state *s);

/* Applies a write coordinated by node with context ctx (NULL: a blind
 * write, concurrent with every sibling): drops the siblings ctx covers,
 * mints the new sibling's dot, and sets its version to one more than the
 * highest version the state holds. value's dot and version are filled in; its bytes are borrowed.
 * Returns KV_OK, KV_ETOOBIG (the sibling limit), or KV_EINVAL (clock full,
 * bad node id). */
int kvi_state_write(kvi_state *s, const kvi_vv *ctx, const char *node, kvi_sibling *value);

/* Merges other into s (replication, read repair): keeps each side's
 * siblings unless the other side saw and superseded them; the clock is the
 * pointwise maximum. Returns KV_OK, or KV_ETOOBIG / KV_EINVAL as above. */
int kvi_state_merge(kvi_state *s, const kvi_state *other);

/* The highest sibling version (what kv_value_version reports). */
uint64_t kvi_state_version(const kvi_state *s);

/* The version a CAS compares with: the highest version among the siblings
 * live at now_ms (not tombstones, not expired); 0 when none is live. */
uint64_t kvi_state_live_version(const kvi_state *s, uint64_t now_ms);

/* 1 when the two states hold the same siblings and clock. */
int kvi_state_equal(const kvi_state *a, const kvi_state *b);

void kvi_state_encode(kvi_buf *b, const kvi_state *s, uint64_t token);
/* KV_OK, or KV_ECORRUPT for anything malformed (format, flags, counts,
 * lengths, trailing bytes, checksum). */
int kvi_state_decode(kvi_state *s, const void *buf, size_t len, uint64_t token);

#endif
