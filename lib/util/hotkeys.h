/*
 * util/hotkeys.h - the hottest keys of a node's requests, approximately:
 * Space-Saving (Metwally, Agrawal and El Abbadi, 2005) over a sliding
 * window, reads and writes apart, in bounded memory.
 *
 * Each kind keeps KVI_HOTKEYS_SHARDS tables of KVI_HOTKEYS_SLOTS counters;
 * a key always lands in the shard of its hash, so its count is never split,
 * and threads recording keys of different shards do not wait on each
 * other. A table that is full gives a new key the slot of its least
 * counted one, with that count as the new key's possible overcount
 * (`error`): any key with more than total / SLOTS requests of its shard is
 * in the table, and its count is at most `error` too high.
 *
 * The window: counts go to the current generation, the window_ms-long
 * window of the monotonic clock that now_ms falls in; when the next one
 * starts it becomes the previous generation. A reading adds the two, so it
 * covers between one and two windows of the most recent requests.
 *
 * Threads: every function may be called from any thread at once, except
 * kvi_hotkeys_free.
 */
#ifndef KVI_HOTKEYS_H
#define KVI_HOTKEYS_H

#include <stddef.h>
#include <stdint.h>

#define KVI_HOTKEYS_SHARDS 8u
#define KVI_HOTKEYS_SLOTS 16u   /* per shard, kind and generation */
#define KVI_HOTKEYS_KEY_MAX 128u /* bytes of a key kept for showing it */

typedef enum kvi_hotkey_kind { KVI_HOTKEY_READ = 0, KVI_HOTKEY_WRITE = 1 } kvi_hotkey_kind;

typedef struct kvi_hotkeys kvi_hotkeys;

/* window_ms: the length of one generation (0: 10 s). NULL when out of
 * memory. */
kvi_hotkeys *kvi_hotkeys_new(uint32_t window_ms);
void kvi_hotkeys_free(kvi_hotkeys *h);

/* Counts one request of kind for key at now_ms (monotonic). */
void kvi_hotkeys_record(kvi_hotkeys *h, kvi_hotkey_kind kind, const void *key, size_t key_len,
                        uint64_t now_ms);

typedef struct kvi_hotkey {
    unsigned char key[KVI_HOTKEYS_KEY_MAX]; /* its first bytes */
    size_t key_len;                         /* its whole length */
    uint64_t count;                         /* requests counted, at most error too many */
    uint64_t error;
} kvi_hotkey;

/* The hottest keys of kind at now_ms, most counted first: at most max of
 * them into out (the number written), and every request of kind in the
 * same generations into *total. */
size_t kvi_hotkeys_top(kvi_hotkeys *h, kvi_hotkey_kind kind, uint64_t now_ms, kvi_hotkey *out,
                       size_t max, uint64_t *total);

/* The span in ms that a reading at now_ms covers (the previous window and
 * the current one up to now). */
uint64_t kvi_hotkeys_span_ms(kvi_hotkeys *h, uint64_t now_ms);

#endif
