/* util/hotkeys.c - Space-Saving counters over two generations. */
#include "util/hotkeys.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

typedef struct slot {
    uint64_t count, error;
    size_t key_len;
    unsigned char key[KVI_HOTKEYS_KEY_MAX];
} slot;

/* One shard's counters of one generation: hashes apart, so that a lookup
 * scans 128 contiguous bytes. */
typedef struct table {
    unsigned used;
    uint64_t total;
    uint64_t hash[KVI_HOTKEYS_SLOTS];
    slot slots[KVI_HOTKEYS_SLOTS];
} table;

/* Generations are the windows of the monotonic clock (now_ms / window_ms),
 * the same for every shard, so a reading adds up the same span of each. */
typedef struct shard {
    /* A spin lock, not a mutex: it is held for a few dozen nanoseconds,
     * and a mutex's lock and unlock cost more than that on every request
     * (measured with tools/kvbench/hotkeys_cost). A waiter yields after a
     * while, so a holder that was preempted gets the core back. */
    atomic_flag lock;
    uint64_t gen_no;     /* the window gen[current] counts */
    int current;         /* gen[!current] is the window before it */
    table gen[2][2];     /* [generation][kind] */
} shard;

struct kvi_hotkeys {
    uint32_t window_ms;
    shard shards[KVI_HOTKEYS_SHARDS];
};

static void shard_lock(shard *s)
{
    for (unsigned spins = 0; atomic_flag_test_and_set_explicit(&s->lock, memory_order_acquire);
         spins++)
        if (spins >= 64)
            sched_yield();
}

static void shard_unlock(shard *s)
{
    atomic_flag_clear_explicit(&s->lock, memory_order_release);
}

kvi_hotkeys *kvi_hotkeys_new(uint32_t window_ms)
{
    kvi_hotkeys *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    h->window_ms = window_ms ? window_ms : 10000;
    for (unsigned i = 0; i < KVI_HOTKEYS_SHARDS; i++)
        atomic_flag_clear(&h->shards[i].lock);
    return h;
}

void kvi_hotkeys_free(kvi_hotkeys *h)
{
    if (!h)
        return;
    free(h);
}

/* Moves the shard's generations on to the window of now_ms: the current
 * one becomes the previous when the next window starts; both are
 * forgotten after an idle window. Lock held. */
static void advance(const kvi_hotkeys *h, shard *s, uint64_t now_ms)
{
    uint64_t g = now_ms / h->window_ms;
    if (g <= s->gen_no)
        return;
    int older = !s->current;
    memset(s->gen[older], 0, sizeof s->gen[older]);
    if (g > s->gen_no + 1)
        memset(s->gen[s->current], 0, sizeof s->gen[s->current]);
    else
        s->current = older; /* the emptied one counts from now */
    s->gen_no = g;
}

static void count_in(table *t, uint64_t hash, const void *key, size_t key_len)
{
    t->total++;
    for (unsigned i = 0; i < t->used; i++) {
        if (t->hash[i] == hash) {
            t->slots[i].count++;
            return;
        }
    }
    unsigned at;
    uint64_t error = 0;
    if (t->used < KVI_HOTKEYS_SLOTS) {
        at = t->used++;
    } else {
        at = 0;
        for (unsigned i = 1; i < KVI_HOTKEYS_SLOTS; i++)
            if (t->slots[i].count < t->slots[at].count)
                at = i;
        error = t->slots[at].count;
    }
    slot *sl = &t->slots[at];
    t->hash[at] = hash;
    sl->count = error + 1;
    sl->error = error;
    sl->key_len = key_len;
    memcpy(sl->key, key, key_len < KVI_HOTKEYS_KEY_MAX ? key_len : KVI_HOTKEYS_KEY_MAX);
}

void kvi_hotkeys_record(kvi_hotkeys *h, kvi_hotkey_kind kind, const void *key, size_t key_len,
                        uint64_t now_ms)
{
    if (!h || !key || (kind != KVI_HOTKEY_READ && kind != KVI_HOTKEY_WRITE))
        return;
    uint64_t hash = XXH3_64bits(key, key_len);
    shard *s = &h->shards[hash % KVI_HOTKEYS_SHARDS];
    shard_lock(s);
    advance(h, s, now_ms);
    count_in(&s->gen[s->current][kind], hash, key, key_len);
    shard_unlock(s);
}

static int by_count_desc(const void *a, const void *b)
{
    const kvi_hotkey *x = a, *y = b;
    return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

size_t kvi_hotkeys_top(kvi_hotkeys *h, kvi_hotkey_kind kind, uint64_t now_ms, kvi_hotkey *out,
                       size_t max, uint64_t *total)
{
    *total = 0;
    if (!h || (kind != KVI_HOTKEY_READ && kind != KVI_HOTKEY_WRITE))
        return 0;
    /* Every shard's keys of both generations, summed by key. */
    enum { ALL = KVI_HOTKEYS_SHARDS * KVI_HOTKEYS_SLOTS * 2 };
    kvi_hotkey *merged = calloc(ALL, sizeof *merged);
    uint64_t *hashes = calloc(ALL, sizeof *hashes);
    size_t n = 0;
    if (!merged || !hashes) {
        free(merged);
        free(hashes);
        return 0;
    }
    for (unsigned i = 0; i < KVI_HOTKEYS_SHARDS; i++) {
        shard *s = &h->shards[i];
        shard_lock(s);
        advance(h, s, now_ms);
        size_t first = n; /* a key of this shard is only among its own */
        for (int g = 0; g < 2; g++) {
            const table *t = &s->gen[g][kind];
            *total += t->total;
            for (unsigned k = 0; k < t->used; k++) {
                size_t at = first;
                while (at < n && hashes[at] != t->hash[k])
                    at++;
                if (at == n) {
                    hashes[n] = t->hash[k];
                    merged[n].key_len = t->slots[k].key_len;
                    memcpy(merged[n].key, t->slots[k].key, sizeof merged[n].key);
                    n++;
                }
                merged[at].count += t->slots[k].count;
                merged[at].error += t->slots[k].error;
            }
        }
        shard_unlock(s);
    }
    qsort(merged, n, sizeof *merged, by_count_desc);
    size_t k = n < max ? n : max;
    memcpy(out, merged, k * sizeof *out);
    free(merged);
    free(hashes);
    return k;
}

uint64_t kvi_hotkeys_span_ms(kvi_hotkeys *h, uint64_t now_ms)
{
    return h ? h->window_ms + now_ms % h->window_ms : 0;
}
