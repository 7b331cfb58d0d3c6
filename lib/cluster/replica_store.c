/* cluster/replica_store.c - read, write and merge key states in the store. */
#include "cluster/replica_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/keylock.h"
#include "storage/store.h"
#include "format/record.h"
#include "util/error.h"

/* The storage key of a user key, in a heap buffer (replica operations are
 * not the embedded hot path). */
static unsigned char *storage_key(const void *key, size_t key_len, uint64_t token)
{
    unsigned char *skey = malloc(KVI_TOKEN_SIZE + key_len);
    if (skey)
        kvi_storage_key(skey, token, key, key_len);
    return skey;
}

/* Presents a format-1 record as a one-sibling state. */
static int state_from_record(kvi_state *out, const kvi_record *rec)
{
    kvi_state_init(out);
    if (kvi_vv_raise(&out->clock, KVI_LOCAL_NODE, rec->version) != 0)
        return KV_ECORRUPT;
    kvi_sibling *x = &out->sibs[0];
    memset(x, 0, sizeof *x);
    memcpy(x->dot.node, KVI_LOCAL_NODE, sizeof KVI_LOCAL_NODE);
    x->dot.counter = rec->version;
    x->tombstone = rec->tombstone;
    x->version = rec->version;
    x->expiry_ms = rec->expiry_ms;
    x->write_ms = rec->write_ms;
    x->value = rec->value;
    x->value_len = rec->value_len;
    out->n = rec->version ? 1 : 0;
    return KV_OK;
}

int kvi_replica_state_decode(kvi_state *out, const void *rec, size_t len, uint64_t token)
{
    const unsigned char *p = rec;
    if (len > 0 && p[0] == KVI_STATE_FORMAT)
        return kvi_state_decode(out, p, len, token);
    kvi_record r;
    int rc = kvi_record_decode(&r, p, len, token);
    return rc == KV_OK ? state_from_record(out, &r) : rc;
}

/* A stored record (state or older record format) copied into holder and
 * decoded into out, which points into holder. */
static int decode_stored(kvi_state *out, kvi_buf *holder, const char *data, size_t len,
                         uint64_t token)
{
    int rc;
    kvi_buf_reset(holder);
    kvi_buf_raw(holder, data, len);
    if (holder->failed)
        return kvi_error(KV_ENOMEM, "out of memory reading a key's state");
    const unsigned char *p = holder->data;
    if (holder->len > 0 && p[0] == KVI_STATE_FORMAT)
        rc = kvi_state_decode(out, p, holder->len, token);
    else {
        kvi_record rec;
        rc = kvi_record_decode(&rec, p, holder->len, token);
        if (rc == KV_OK)
            rc = state_from_record(out, &rec);
    }
    if (rc != KV_OK)
        return kvi_error(KV_ECORRUPT, "the stored state of this key failed its checks");
    return KV_OK;
}

/* Reads the record of skey into holder and decodes it (either format);
 * called with the key's stripe lock held or not, as the caller needs. */
static int load(kvi_state *out, kvi_buf *holder, kvi_embedded *e, const unsigned char *skey,
                size_t skey_len, uint64_t token)
{
    kvi_slice slice = {0};
    int rc = kvi_store_get(kvi_embedded_store(e), skey, skey_len, &slice);
    if (rc != KV_OK)
        return rc;
    rc = decode_stored(out, holder, slice.data, slice.len, token);
    kvi_slice_release(&slice);
    return rc;
}


/* Encodes s, stores it under skey, and re-reads it into holder so that the
 * returned state points only into holder. */
static int store(kvi_state *s, kvi_buf *holder, kvi_embedded *e, const unsigned char *skey,
                 size_t skey_len, uint64_t token, int unsynced)
{
    kvi_buf encoded = {0};
    kvi_state_encode(&encoded, s, token);
    kvi_store *st = kvi_embedded_store(e);
    int rc = encoded.failed ? kvi_error(KV_ENOMEM, "out of memory encoding a key's state")
           : unsynced ? kvi_store_put_unsynced(st, skey, skey_len, encoded.data, encoded.len)
                      : kvi_store_put(st, skey, skey_len, encoded.data, encoded.len);
    if (rc == KV_OK) {
        kvi_buf_free(holder);
        *holder = encoded;
        return kvi_state_decode(s, holder->data, holder->len, token);
    }
    kvi_buf_free(&encoded);
    return rc;
}

int kvi_replica_read(kvi_state *out, kvi_buf *holder, kvi_embedded *e, const void *key,
                     size_t key_len)
{
    uint64_t token = kvi_key_token(key, key_len);
    unsigned char *skey = storage_key(key, key_len, token);
    if (!skey)
        return kvi_error(KV_ENOMEM, "out of memory reading a key's state");
    kvi_state_init(out);
    int rc = load(out, holder, e, skey, KVI_TOKEN_SIZE + key_len, token);
    free(skey);
    return rc;
}

/* A coordinated write applied to the state s holds (the stored one, or
 * empty), under the key lock: merge_first, the CAS check, the context,
 * the new sibling, then on_state. scratch is a clock's room. */
static int coordinate_state(kvi_state *s, const kvi_replica_write_args *args, kvi_sibling *value,
                            uint64_t *current_version, kvi_vv *scratch)
{
    int rc = KV_OK;
    if (args->merge_first)
        rc = kvi_state_merge(s, args->merge_first);
    if (rc == KV_OK && args->check_version) {
        uint64_t current = kvi_state_live_version(s, value->write_ms);
        if (current_version)
            *current_version = current;
        if (current != args->expected_version)
            rc = kvi_error(KV_ECONFLICT, "expected version %llu, the current version is %llu",
                           (unsigned long long)args->expected_version,
                           (unsigned long long)current);
    }
    if (rc == KV_OK) {
        const kvi_vv *use = args->ctx;
        if (args->supersede_held) {
            /* What this replica holds, plus what the caller saw. */
            *scratch = s->clock;
            if (args->ctx && kvi_vv_merge(scratch, args->ctx) != 0)
                rc = kvi_error(KV_EINVAL, "the causal context has too many entries");
            use = scratch;
        }
        /* A key this node has not written in its lifetime (absent, or
         * recreated by another member after a purge) starts this node's
         * counter from the write's time, not from 1: a replica that still
         * remembers the key's purged past (a tombstone not purged there
         * yet) has seen this node's dots of that past, and would take a
         * reused one for a write it already has. The past's counters began
         * at an earlier write time (times 1024) and grew by one a write; a
         * purge comes at least the hint window plus the margin after it,
         * so the new start is beyond them unless the clock went back by
         * that much or the key took over 1024 writes a millisecond. */
        if (rc == KV_OK && kvi_vv_get(&s->clock, args->node) == 0 && value->write_ms &&
            kvi_vv_raise(&s->clock, args->node, value->write_ms << 10) != 0)
            rc = kvi_error(KV_EINVAL, "the key's clock has too many entries");
        if (rc == KV_OK)
            rc = kvi_state_write(s, use, args->node, value);
    }
    if (rc == KV_OK && args->on_state)
        args->on_state(args->on_state_ctx, s);
    return rc;
}

int kvi_replica_coordinate(kvi_state *out, kvi_buf *holder, kvi_embedded *e, const void *key,
                           size_t key_len, const kvi_replica_write_args *args,
                           kvi_sibling *value, uint64_t *current_version)
{
    if (current_version)
        *current_version = 0;
    uint64_t token = kvi_key_token(key, key_len);
    unsigned char *skey = storage_key(key, key_len, token);
    kvi_vv *ctx = malloc(sizeof *ctx);
    if (!skey || !ctx) {
        free(skey);
        free(ctx);
        return kvi_error(KV_ENOMEM, "out of memory writing a key's state");
    }
    size_t skey_len = KVI_TOKEN_SIZE + key_len;
    struct kvi_keylock *locks = kvi_embedded_locks(e);
    kvi_keylock_lock(locks, token);
    int rc = load(out, holder, e, skey, skey_len, token);
    if (rc == KV_ENOTFOUND) {
        kvi_state_init(out);
        rc = KV_OK;
    }
    if (rc == KV_OK)
        rc = coordinate_state(out, args, value, current_version, ctx);
    if (rc == KV_OK)
        rc = store(out, holder, e, skey, skey_len, token, args->unsynced);
    kvi_keylock_unlock(locks, token);
    free(ctx);
    free(skey);
    return rc;
}

int kvi_replica_write(kvi_state *out, kvi_buf *holder, kvi_embedded *e, const void *key,
                      size_t key_len, const kvi_vv *ctx, const char *node, kvi_sibling *value)
{
    kvi_replica_write_args args = {.ctx = ctx, .node = node};
    return kvi_replica_coordinate(out, holder, e, key, key_len, &args, value, NULL);
}

int kvi_replica_merge(int *changed, uint64_t *version, kvi_embedded *e, const void *key,
                      size_t key_len, const kvi_state *incoming)
{
    if (changed)
        *changed = 0;
    if (version)
        *version = 0;
    uint64_t token = kvi_key_token(key, key_len);
    unsigned char *skey = storage_key(key, key_len, token);
    if (!skey)
        return kvi_error(KV_ENOMEM, "out of memory merging a key's state");
    size_t skey_len = KVI_TOKEN_SIZE + key_len;
    static const kvi_state empty_state; /* zero: an empty clock, no siblings */
    kvi_state *current = malloc(sizeof *current);
    kvi_buf holder = {0};
    int rc = current ? KV_OK : kvi_error(KV_ENOMEM, "out of memory merging a key's state");
    struct kvi_keylock *locks = kvi_embedded_locks(e);
    kvi_keylock_lock(locks, token);
    int replacing_corrupt = 0;
    if (rc == KV_OK) {
        rc = load(current, &holder, e, skey, skey_len, token);
        /* A record that fails its checks is lost here: the incoming state
         * (another replica's) replaces it, and repairs the key. */
        replacing_corrupt = rc == KV_ECORRUPT;
        if (rc == KV_ENOTFOUND || rc == KV_ECORRUPT) {
            *current = empty_state;
            rc = KV_OK;
        }
    }
    if (rc == KV_OK) {
        kvi_state *merged = malloc(sizeof *merged);
        if (!merged) {
            rc = kvi_error(KV_ENOMEM, "out of memory merging a key's state");
        } else {
            *merged = *current;
            rc = kvi_state_merge(merged, incoming);
            if (rc == KV_OK && version)
                *version = kvi_state_version(merged);
            if (rc == KV_OK && (replacing_corrupt || !kvi_state_equal(merged, current))) {
                rc = store(merged, &holder, e, skey, skey_len, token, 0);
                if (rc == KV_OK && changed)
                    *changed = 1;
                if (rc == KV_OK && replacing_corrupt)
                    kvi_store_count_corrupt_replaced(kvi_embedded_store(e), 1);
            }
            free(merged);
        }
    }
    kvi_keylock_unlock(locks, token);
    kvi_buf_free(&holder);
    free(current);
    free(skey);
    return rc;
}

/* first[i]: the index of the first item (the earliest) with i's key, or
 * SIZE_MAX when i is that item. The earliest, not the nearest: an item
 * applies to the state the last successful one of its key left, and the
 * nearest may have failed. Found through a table of the tokens (a loop
 * iteration stages hundreds of items), KV_OK or KV_ENOMEM. */
static int find_firsts(const kvi_merge_item *items, unsigned char *const *skeys,
                       const uint64_t *tokens, size_t n, size_t *first)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    size_t *slot = malloc(cap * sizeof *slot);
    if (!slot)
        return kvi_error(KV_ENOMEM, "out of memory merging %zu states", n);
    for (size_t k = 0; k < cap; k++)
        slot[k] = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t skey_len = KVI_TOKEN_SIZE + items[i].key_len;
        size_t k = (size_t)tokens[i] & (cap - 1);
        first[i] = SIZE_MAX;
        for (; slot[k] != SIZE_MAX; k = (k + 1) & (cap - 1)) {
            size_t j = slot[k];
            if (items[j].key_len == items[i].key_len &&
                memcmp(skeys[j], skeys[i], skey_len) == 0) {
                first[i] = j;
                break;
            }
        }
        if (first[i] == SIZE_MAX)
            slot[k] = i;
    }
    free(slot);
    return KV_OK;
}

/* The stored states of the batch's keys, read with one multi-get, each key
 * once: first[i] is the first item with i's key (SIZE_MAX: i is), and for
 * a first item loaded[i] is KV_OK (holders[i] and stored[i] filled),
 * KV_ENOTFOUND or an error. */
static int load_many(kvi_embedded *e, const kvi_merge_item *items, unsigned char *const *skeys,
                     const uint64_t *tokens, size_t n, size_t *first, int *loaded,
                     kvi_state *stored, kvi_buf *holders)
{
    const unsigned char **keys = malloc(n * sizeof *keys);
    size_t *lens = malloc(n * sizeof *lens), *which = malloc(n * sizeof *which);
    kvi_slice *slices = malloc(n * sizeof *slices);
    int *rcs = malloc(n * sizeof *rcs);
    int rc = keys && lens && which && slices && rcs
                 ? KV_OK : kvi_error(KV_ENOMEM, "out of memory merging %zu states", n);
    if (rc == KV_OK)
        rc = find_firsts(items, skeys, tokens, n, first);
    size_t m = 0;
    for (size_t i = 0; rc == KV_OK && i < n; i++) {
        loaded[i] = -1;
        if (first[i] != SIZE_MAX)
            continue;
        keys[m] = skeys[i];
        lens[m] = KVI_TOKEN_SIZE + items[i].key_len;
        which[m++] = i;
    }
    if (rc == KV_OK && m)
        rc = kvi_store_multi_get(kvi_embedded_store(e), m, keys, lens, slices, rcs);
    for (size_t k = 0; rc == KV_OK && k < m; k++) {
        size_t i = which[k];
        loaded[i] = rcs[k];
        if (rcs[k] == KV_OK) {
            loaded[i] = decode_stored(&stored[i], &holders[i], slices[k].data, slices[k].len,
                                      tokens[i]);
            kvi_slice_release(&slices[k]);
        }
    }
    free(keys);
    free(lens);
    free(which);
    free(slices);
    free(rcs);
    return rc;
}

/* A failed item's message, where the caller wants it: the next item's
 * failure would replace this thread's. */
static void keep_why(kvi_merge_item *it)
{
    if (it->why && it->why_size)
        snprintf(it->why, it->why_size, "%s", kvi_error_last());
}

int kvi_replica_merge_many(kvi_embedded *e, kvi_merge_item *items, size_t n, int unsynced)
{
    uint64_t *tokens = malloc(n * sizeof *tokens);
    unsigned *stripes = malloc(n * sizeof *stripes);
    unsigned char **skeys = calloc(n, sizeof *skeys);
    kvi_state *states = malloc(n * sizeof *states); /* each item's merged state */
    kvi_state *stored = malloc(n * sizeof *stored); /* as read, for first items */
    kvi_buf *holders = calloc(n, sizeof *holders);
    size_t *first = malloc(n * sizeof *first);
    int *loaded = malloc(n * sizeof *loaded);
    kvi_store_batch *wb = kvi_store_batch_new(kvi_embedded_store(e));
    kvi_vv *scratch = NULL; /* a coordinated write's context */
    for (size_t i = 0; i < n && !scratch; i++)
        if (!items[i].incoming)
            scratch = malloc(sizeof *scratch);
    int rc = tokens && stripes && skeys && states && stored && holders && first && loaded && wb
                 ? KV_OK : kvi_error(KV_ENOMEM, "out of memory merging %zu states", n);
    for (size_t i = 0; rc == KV_OK && i < n; i++) {
        items[i].status = KV_OK;
        items[i].version = 0;
        items[i].current_version = 0;
        tokens[i] = kvi_key_token(items[i].key, items[i].key_len);
        stripes[i] = kvi_keylock_stripe(tokens[i]);
        skeys[i] = storage_key(items[i].key, items[i].key_len, tokens[i]);
        if (!skeys[i])
            rc = kvi_error(KV_ENOMEM, "out of memory merging %zu states", n);
    }
    if (rc != KV_OK)
        goto out;
    size_t locked = n;
    struct kvi_keylock *locks = kvi_embedded_locks(e);
    kvi_keylock_lock_stripes(locks, stripes, &locked);
    rc = load_many(e, items, skeys, tokens, n, first, loaded, stored, holders);
    int writes = 0;
    uint64_t corrupt_replaced = 0;
    for (size_t i = 0; rc == KV_OK && i < n; i++) {
        kvi_merge_item *it = &items[i];
        size_t skey_len = KVI_TOKEN_SIZE + it->key_len;
        /* A key met earlier in the batch merges into that item's state
         * (the newest merged), not into the stored one, so both count. */
        size_t f = first[i] == SIZE_MAX ? i : first[i], prev = SIZE_MAX;
        for (size_t j = i; j-- > f;)
            if ((j == f || first[j] == f) && items[j].status == KV_OK) {
                prev = j;
                break;
            }
        kvi_state current;
        int replacing_corrupt = 0;
        if (prev != SIZE_MAX) {
            current = states[prev];
        } else if (loaded[f] == KV_ENOTFOUND) {
            kvi_state_init(&current);
        } else if (loaded[f] == KV_ECORRUPT && it->incoming) {
            /* Lost here: another replica's state replaces it (a
             * coordinated write still fails on it, rather than drop the
             * siblings it may have held). */
            kvi_state_init(&current);
            replacing_corrupt = 1;
        } else if (loaded[f] != KV_OK) {
            it->status = loaded[f];
            continue;
        } else {
            current = stored[f];
        }
        states[i] = current;
        if (it->incoming) {
            it->status = kvi_state_merge(&states[i], it->incoming);
        } else {
            it->status = scratch ? coordinate_state(&states[i], it->args, it->value,
                                                    &it->current_version, scratch)
                                 : kvi_error(KV_ENOMEM, "out of memory writing a key's state");
        }
        if (it->status != KV_OK) {
            keep_why(it);
            continue;
        }
        it->version = kvi_state_version(&states[i]);
        if (it->incoming && !replacing_corrupt && kvi_state_equal(&states[i], &current))
            continue;
        corrupt_replaced += replacing_corrupt;
        kvi_buf encoded = {0};
        kvi_state_encode(&encoded, &states[i], tokens[i]);
        if (encoded.failed) {
            it->status = kvi_error(KV_ENOMEM, "out of memory encoding a key's state");
            kvi_buf_free(&encoded);
            continue;
        }
        /* The batch copies it; a later item of the same key overwrites it. */
        kvi_store_batch_put(wb, skeys[i], skey_len, encoded.data, encoded.len);
        kvi_buf_free(&encoded);
        writes++;
    }
    if (rc == KV_OK && writes)
        rc = unsynced ? kvi_store_write_unsynced(kvi_embedded_store(e), wb)
                      : kvi_store_write(kvi_embedded_store(e), wb);
    if (rc == KV_OK && corrupt_replaced)
        kvi_store_count_corrupt_replaced(kvi_embedded_store(e), corrupt_replaced);
    kvi_keylock_unlock_stripes(locks, stripes, locked);
out:
    if (rc != KV_OK)
        for (size_t i = 0; i < n; i++)
            if (items[i].status == KV_OK) {
                items[i].status = rc;
                keep_why(&items[i]);
            }
    for (size_t i = 0; skeys && i < n; i++)
        free(skeys[i]);
    for (size_t i = 0; holders && i < n; i++)
        kvi_buf_free(&holders[i]);
    kvi_store_batch_free(wb);
    free(scratch);
    free(loaded);
    free(first);
    free(holders);
    free(stored);
    free(states);
    free(skeys);
    free(stripes);
    free(tokens);
    return rc;
}
