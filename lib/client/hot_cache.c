/* client/hot_cache.c - a bounded, staleness-limited map of keys to values. */
#include "client/hot_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "format/value.h"
#include "util/clock.h"

typedef struct entry {
    struct entry *chain;            /* in its bucket */
    struct entry *newer, *older;    /* recency list */
    uint64_t hash;
    uint64_t kept_ms;
    kv_value *value;
    size_t key_len;
    unsigned char key[];
} entry;

struct kvi_hot_cache {
    pthread_mutex_t lock;
    uint32_t staleness_ms;
    size_t capacity, count;
    size_t nbuckets; /* a power of two, at least 2 x capacity */
    entry **buckets;
    entry *newest, *oldest;
    uint64_t hits, misses;
};

kvi_hot_cache *kvi_hot_cache_new(uint32_t staleness_ms, uint32_t entries)
{
    kvi_hot_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->staleness_ms = staleness_ms;
    c->capacity = entries ? entries : 1024;
    c->nbuckets = 1;
    while (c->nbuckets < 2 * c->capacity)
        c->nbuckets <<= 1;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

static void free_entry(entry *e)
{
    kvi_value_free(e->value);
    free(e);
}

void kvi_hot_cache_free(kvi_hot_cache *c)
{
    if (!c)
        return;
    for (entry *e = c->newest, *next; e; e = next) {
        next = e->older;
        free_entry(e);
    }
    free(c->buckets);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static entry **slot_of(kvi_hot_cache *c, uint64_t hash, const void *key, size_t key_len)
{
    entry **slot = &c->buckets[hash & (c->nbuckets - 1)];
    for (; *slot; slot = &(*slot)->chain) {
        entry *e = *slot;
        if (e->hash == hash && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            break;
    }
    return slot;
}

static void unlink_recency(kvi_hot_cache *c, entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void make_newest(kvi_hot_cache *c, entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    c->newest = e;
    if (!c->oldest)
        c->oldest = e;
}

/* Removes the entry at *slot. Lock held. */
static void remove_at(kvi_hot_cache *c, entry **slot)
{
    entry *e = *slot;
    *slot = e->chain;
    unlink_recency(c, e);
    c->count--;
    free_entry(e);
}

int kvi_hot_cache_get(kvi_hot_cache *c, const void *key, size_t key_len, uint64_t now_ms,
                      kv_value **out)
{
    *out = NULL;
    uint64_t hash = XXH3_64bits(key, key_len);
    pthread_mutex_lock(&c->lock);
    entry **slot = slot_of(c, hash, key, key_len);
    entry *e = *slot;
    uint64_t expiry = e ? kvi_value_expiry_ms(e->value) : 0; /* wall clock */
    if (e && (now_ms >= e->kept_ms + c->staleness_ms || (expiry && kvi_now_ms() >= expiry))) {
        remove_at(c, slot); /* too old, or expired by its own TTL */
        e = NULL;
    }
    if (e) {
        *out = kvi_value_dup(e->value);
        unlink_recency(c, e);
        make_newest(c, e);
    }
    if (*out)
        c->hits++;
    else
        c->misses++;
    pthread_mutex_unlock(&c->lock);
    return *out != NULL;
}

void kvi_hot_cache_put(kvi_hot_cache *c, const void *key, size_t key_len, const kv_value *v,
                       uint64_t now_ms)
{
    kv_value *copy = kvi_value_dup(v);
    entry *fresh = copy ? malloc(sizeof *fresh + key_len) : NULL;
    if (!fresh) {
        kvi_value_free(copy);
        return; /* nothing kept: the next read asks the cluster */
    }
    uint64_t hash = XXH3_64bits(key, key_len);
    *fresh = (entry){.hash = hash, .kept_ms = now_ms, .value = copy, .key_len = key_len};
    memcpy(fresh->key, key, key_len);
    pthread_mutex_lock(&c->lock);
    entry **slot = slot_of(c, hash, key, key_len);
    if (*slot)
        remove_at(c, slot); /* slot now holds what followed it */
    else if (c->count == c->capacity)
        remove_at(c, slot_of(c, c->oldest->hash, c->oldest->key, c->oldest->key_len));
    slot = &c->buckets[hash & (c->nbuckets - 1)];
    fresh->chain = *slot;
    *slot = fresh;
    make_newest(c, fresh);
    c->count++;
    pthread_mutex_unlock(&c->lock);
}

void kvi_hot_cache_drop(kvi_hot_cache *c, const void *key, size_t key_len)
{
    uint64_t hash = XXH3_64bits(key, key_len);
    pthread_mutex_lock(&c->lock);
    entry **slot = slot_of(c, hash, key, key_len);
    if (*slot)
        remove_at(c, slot);
    pthread_mutex_unlock(&c->lock);
}

void kvi_hot_cache_counts(kvi_hot_cache *c, uint64_t *hits, uint64_t *misses)
{
    pthread_mutex_lock(&c->lock);
    *hits = c->hits;
    *misses = c->misses;
    pthread_mutex_unlock(&c->lock);
}
