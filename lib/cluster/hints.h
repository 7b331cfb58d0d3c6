/*
 * cluster/hints.h - hinted handoff's durable store: states held by a
 * fallback node for a home replica that was down, until it is back.
 * See docs/design/FAILURES.md.
 *
 * A hint lives in the store's "hints" column family:
 *   key:   u8 target id length, target id, u64 created_ms, u64 sequence
 *          (big-endian, so one target's hints are contiguous and oldest
 *          first)
 *   value: u8 format (1), bytes key, bytes state (record format 2),
 *          u64 checksum: xxh3-64 of the value before it, seeded with the
 *          xxh3-64 of the hint key (a value moved under another key fails)
 * A damaged hint is reported, never replayed.
 *
 * Threads: every function may be called from any thread; a kvi_hints is
 * shared.
 */
#ifndef KVI_HINTS_H
#define KVI_HINTS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/store.h"

typedef struct kvi_hints {
    kvi_store *store;            /* borrowed */
    atomic_uint_fast64_t seq;    /* makes keys unique within a millisecond */
    atomic_uint_fast64_t puts;   /* hints stored since init (handoff looks) */
} kvi_hints;

/* One hint, as read back; pointers are valid during the callback only. */
typedef struct kvi_hint {
    const char *target;          /* NUL-terminated copy */
    uint64_t created_ms;
    const unsigned char *hkey;   /* the hint's own key, for kvi_hints_delete */
    size_t hkey_len;
    const unsigned char *key;    /* the user key */
    size_t key_len;
    const unsigned char *state;  /* record format 2 */
    size_t state_len;
    int damaged;                 /* failed its checks: key/state unusable */
} kvi_hint;

void kvi_hints_init(kvi_hints *h, kvi_store *store, uint64_t seed);

/* Stores a hint for target. KV_OK, KV_EINVAL (bad target), KV_EIO, KV_ENOMEM. */
int kvi_hints_put(kvi_hints *h, const char *target, uint64_t created_ms, const void *key,
                  size_t key_len, const void *state, size_t state_len);

/* Calls fn for target's hints (every target's when target is NULL), oldest
 * first, until it returns non-zero. KV_OK, KV_EIO, KV_ENOMEM. */
typedef int (*kvi_hint_fn)(void *ctx, const kvi_hint *hint);
int kvi_hints_scan(kvi_hints *h, const char *target, kvi_hint_fn fn, void *ctx);

/* Deletes a hint (after its target acknowledged it). */
int kvi_hints_delete(kvi_hints *h, const void *hkey, size_t hkey_len);

/* How many hints are stored and the oldest one's creation time (0 when
 * none). */
int kvi_hints_stats(kvi_hints *h, uint64_t *pending, uint64_t *oldest_ms);

/* Deletes every hint created before cutoff_ms (the hint window), and every
 * damaged one (it can never be replayed); *dropped
 * (may be NULL) gets how many. */
int kvi_hints_drop_before(kvi_hints *h, uint64_t cutoff_ms, uint64_t *dropped);

#endif
