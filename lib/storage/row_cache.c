/* storage/row_cache.c - a sharded, bounded hash table of records (see
 * row_cache.h for what it promises). */
#define _GNU_SOURCE /* PTHREAD_MUTEX_ADAPTIVE_NP */
#include "storage/row_cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "format/entry_hash.h"

/* Shards cut lock contention between the I/O threads and HTTP's; the top
 * bits of a key's hash pick one, the low bits its bucket. */
#define SHARD_BITS 6
#define SHARDS (1u << SHARD_BITS)
#define FIRST_BUCKETS 256u

/* A place in a shard's recency list. */
typedef struct lru_link {
    struct lru_link *newer, *older;
} lru_link;

typedef struct entry {
    lru_link link;                /* first: an entry's link is the entry */
    struct entry *chain;          /* next in its bucket */
    uint64_t hash;
    uint32_t key_len;
    uint32_t rec_len;
    uint32_t rec_room;            /* bytes the record may grow to in place */
    uint32_t hashed;              /* entry_hash is known */
    uint64_t entry_hash;          /* the record's format/entry_hash.h hash */
    unsigned char bytes[];        /* the key, then the record */
} entry;

typedef struct shard {
    pthread_mutex_t lock;
    entry **buckets;
    size_t nbuckets;              /* a power of two */
    size_t count;
    uint64_t bytes;
    uint64_t capacity;
    /* Bumped by every put: a fill whose ticket is older may hold a record
     * read before that put, and is dropped. */
    uint64_t gen;
    lru_link lru;                 /* sentinel: lru.newer is the oldest */
    uint64_t hits, misses;
} shard;

struct kvi_row_cache {
    shard shards[SHARDS];
    uint64_t capacity;
};

static uint64_t charge(const entry *e)
{
    return sizeof *e + e->key_len + e->rec_room;
}

static void unlink_lru(entry *e)
{
    e->link.newer->older = e->link.older;
    e->link.older->newer = e->link.newer;
}

/* Makes e the most recently used: the sentinel's `older` side. */
static void link_newest(shard *sh, entry *e)
{
    e->link.newer = &sh->lru;
    e->link.older = sh->lru.older;
    sh->lru.older->newer = &e->link;
    sh->lru.older = &e->link;
}

kvi_row_cache *kvi_row_cache_new(uint64_t capacity)
{
    if (capacity == 0)
        return NULL;
    kvi_row_cache *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->capacity = capacity;
    for (unsigned i = 0; i < SHARDS; i++) {
        shard *sh = &c->shards[i];
        sh->buckets = calloc(FIRST_BUCKETS, sizeof *sh->buckets);
        if (!sh->buckets) {
            for (unsigned j = 0; j < i; j++) {
                free(c->shards[j].buckets);
                pthread_mutex_destroy(&c->shards[j].lock);
            }
            free(c);
            return NULL;
        }
        /* Held for a lookup or a copy of one record: a thread that finds
         * it taken spins a little rather than sleeping in the kernel. */
        pthread_mutexattr_t attr;
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
        pthread_mutex_init(&sh->lock, &attr);
        pthread_mutexattr_destroy(&attr);
        sh->nbuckets = FIRST_BUCKETS;
        sh->capacity = capacity / SHARDS;
        sh->lru.newer = sh->lru.older = &sh->lru;
    }
    return c;
}

static void drop_all(shard *sh)
{
    for (lru_link *l = sh->lru.newer, *next; l != &sh->lru; l = next) {
        next = l->newer;
        free((entry *)l);
    }
    memset(sh->buckets, 0, sh->nbuckets * sizeof *sh->buckets);
    sh->lru.newer = sh->lru.older = &sh->lru;
    sh->count = 0;
    sh->bytes = 0;
}

void kvi_row_cache_free(kvi_row_cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < SHARDS; i++) {
        drop_all(&c->shards[i]);
        free(c->shards[i].buckets);
        pthread_mutex_destroy(&c->shards[i].lock);
    }
    free(c);
}

static shard *shard_of(kvi_row_cache *c, uint64_t hash)
{
    return &c->shards[hash >> (64 - SHARD_BITS)];
}

/* The bucket slot holding key's entry, or the empty slot ending its chain. */
static entry **find(shard *sh, uint64_t hash, const void *key, size_t key_len)
{
    entry **slot = &sh->buckets[hash & (sh->nbuckets - 1)];
    for (; *slot; slot = &(*slot)->chain) {
        entry *e = *slot;
        if (e->hash == hash && e->key_len == key_len && memcmp(e->bytes, key, key_len) == 0)
            break;
    }
    return slot;
}

static void remove_entry(shard *sh, entry **slot)
{
    entry *e = *slot;
    *slot = e->chain;
    unlink_lru(e);
    sh->count--;
    sh->bytes -= charge(e);
    free(e);
}

/* Doubles the buckets when entries outnumber them; stays as it is when
 * memory is short (chains only get longer). */
static void maybe_grow(shard *sh)
{
    if (sh->count <= sh->nbuckets)
        return;
    size_t n = sh->nbuckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < sh->nbuckets; i++) {
        for (entry *e = sh->buckets[i], *next; e; e = next) {
            next = e->chain;
            entry **slot = &b[e->hash & (n - 1)];
            e->chain = *slot;
            *slot = e;
        }
    }
    free(sh->buckets);
    sh->buckets = b;
    sh->nbuckets = n;
}

static void evict(shard *sh)
{
    while (sh->bytes > sh->capacity && sh->lru.newer != &sh->lru) {
        entry *oldest = (entry *)sh->lru.newer;
        remove_entry(sh, find(sh, oldest->hash, oldest->bytes, oldest->key_len));
    }
}

/* A new entry at the empty slot find() returned; nothing when memory is
 * short or the record alone would not fit the shard. */
static void insert(shard *sh, entry **slot, uint64_t hash, const void *key, size_t key_len,
                   const void *rec, size_t rec_len, const uint64_t *entry_hash)
{
    if (sizeof(entry) + key_len + rec_len > sh->capacity || rec_len > UINT32_MAX)
        return;
    entry *e = malloc(sizeof *e + key_len + rec_len);
    if (!e)
        return;
    e->chain = NULL;
    e->hash = hash;
    e->key_len = (uint32_t)key_len;
    e->rec_len = e->rec_room = (uint32_t)rec_len;
    e->hashed = entry_hash != NULL;
    e->entry_hash = entry_hash ? *entry_hash : 0;
    memcpy(e->bytes, key, key_len);
    memcpy(e->bytes + key_len, rec, rec_len);
    *slot = e;
    link_newest(sh, e);
    sh->count++;
    sh->bytes += charge(e);
    evict(sh);
    maybe_grow(sh);
}

int kvi_row_cache_get(kvi_row_cache *c, const void *key, size_t key_len, char **rec,
                      size_t *rec_len, uint64_t *ticket)
{
    *ticket = 0;
    if (!c)
        return 0;
    uint64_t hash = XXH3_64bits(key, key_len);
    shard *sh = shard_of(c, hash);
    pthread_mutex_lock(&sh->lock);
    entry *e = *find(sh, hash, key, key_len);
    char *copy = e ? malloc(e->rec_len ? e->rec_len : 1) : NULL;
    if (copy) {
        memcpy(copy, e->bytes + e->key_len, e->rec_len);
        *rec = copy;
        *rec_len = e->rec_len;
        unlink_lru(e);
        link_newest(sh, e);
        sh->hits++;
    } else {
        *ticket = sh->gen;
        sh->misses++;
    }
    pthread_mutex_unlock(&sh->lock);
    return copy != NULL;
}

void kvi_row_cache_fill(kvi_row_cache *c, const void *key, size_t key_len, const void *rec,
                        size_t rec_len, uint64_t ticket)
{
    if (!c)
        return;
    uint64_t hash = XXH3_64bits(key, key_len);
    shard *sh = shard_of(c, hash);
    pthread_mutex_lock(&sh->lock);
    if (sh->gen == ticket) {
        entry **slot = find(sh, hash, key, key_len);
        if (!*slot)
            insert(sh, slot, hash, key, key_len, rec, rec_len, NULL);
    }
    pthread_mutex_unlock(&sh->lock);
}

static void put_record(kvi_row_cache *c, const void *key, size_t key_len, const void *rec,
                       size_t rec_len, const uint64_t *entry_hash)
{
    if (!c)
        return;
    uint64_t hash = XXH3_64bits(key, key_len);
    shard *sh = shard_of(c, hash);
    pthread_mutex_lock(&sh->lock);
    sh->gen++;
    entry **slot = find(sh, hash, key, key_len);
    entry *e = *slot;
    if (e && rec_len <= e->rec_room) {
        memcpy(e->bytes + e->key_len, rec, rec_len);
        e->rec_len = (uint32_t)rec_len;
        e->hashed = entry_hash != NULL;
        e->entry_hash = entry_hash ? *entry_hash : 0;
        unlink_lru(e);
        link_newest(sh, e);
    } else {
        /* Out with the old record first: if the new one cannot be kept,
         * the key must miss rather than read the old one. The slot is
         * looked up again: removing may have changed it, and inserting
         * may evict others and regrow the buckets, so nothing of the
         * table is touched after it. */
        if (e)
            remove_entry(sh, slot);
        insert(sh, find(sh, hash, key, key_len), hash, key, key_len, rec, rec_len, entry_hash);
    }
    pthread_mutex_unlock(&sh->lock);
}

void kvi_row_cache_forget(kvi_row_cache *c, const void *key, size_t key_len)
{
    if (!c)
        return;
    uint64_t hash = XXH3_64bits(key, key_len);
    shard *sh = shard_of(c, hash);
    pthread_mutex_lock(&sh->lock);
    sh->gen++; /* a fill that read the record before it went is dropped */
    entry **slot = find(sh, hash, key, key_len);
    if (*slot)
        remove_entry(sh, slot);
    pthread_mutex_unlock(&sh->lock);
}

void kvi_row_cache_put(kvi_row_cache *c, const void *key, size_t key_len, const void *rec,
                       size_t rec_len)
{
    put_record(c, key, key_len, rec, rec_len, NULL);
}

void kvi_row_cache_put_hashed(kvi_row_cache *c, const void *key, size_t key_len,
                              const void *rec, size_t rec_len, uint64_t entry_hash)
{
    put_record(c, key, key_len, rec, rec_len, &entry_hash);
}

int kvi_row_cache_entry_hash(kvi_row_cache *c, const void *key, size_t key_len,
                             uint64_t *entry_hash)
{
    if (!c)
        return 0;
    uint64_t hash = XXH3_64bits(key, key_len);
    shard *sh = shard_of(c, hash);
    pthread_mutex_lock(&sh->lock);
    entry *e = *find(sh, hash, key, key_len);
    if (e) {
        if (!e->hashed) {
            e->entry_hash = kvi_entry_hash(key, key_len, e->bytes + e->key_len, e->rec_len);
            e->hashed = 1;
        }
        *entry_hash = e->entry_hash;
    }
    pthread_mutex_unlock(&sh->lock);
    return e != NULL;
}

void kvi_row_cache_clear(kvi_row_cache *c)
{
    if (!c)
        return;
    for (unsigned i = 0; i < SHARDS; i++) {
        shard *sh = &c->shards[i];
        pthread_mutex_lock(&sh->lock);
        sh->gen++;
        drop_all(sh);
        pthread_mutex_unlock(&sh->lock);
    }
}

void kvi_row_cache_figures_get(kvi_row_cache *c, kvi_row_cache_figures *out)
{
    memset(out, 0, sizeof *out);
    if (!c)
        return;
    out->capacity = c->capacity;
    for (unsigned i = 0; i < SHARDS; i++) {
        shard *sh = &c->shards[i];
        pthread_mutex_lock(&sh->lock);
        out->hits += sh->hits;
        out->misses += sh->misses;
        out->bytes += sh->bytes;
        out->entries += sh->count;
        pthread_mutex_unlock(&sh->lock);
    }
}
