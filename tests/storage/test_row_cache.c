/* The row cache: a put is read back, a fill that raced a put is dropped,
 * memory stays under the capacity with the least recently used out first,
 * a record that cannot be kept leaves no older one behind; and through the
 * store: every kind of write is read back through the cache, multi-get
 * mixes hits and misses, a scan does not fill it, a compaction clears it. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <kv/kv.h>
#include "helpers.h"
#include "format/entry_hash.h"
#include "storage/row_cache.h"
#include "storage/store.h"

/* key's cached record as a string, or NULL on a miss (the caller frees). */
static char *cached(kvi_row_cache *c, const char *key, uint64_t *ticket)
{
    char *rec = NULL;
    size_t len = 0;
    uint64_t t;
    if (!kvi_row_cache_get(c, key, strlen(key), &rec, &len, ticket ? ticket : &t))
        return NULL;
    char *s = malloc(len + 1);
    assert_non_null(s);
    memcpy(s, rec, len);
    s[len] = 0;
    free(rec);
    return s;
}

static void assert_cached(kvi_row_cache *c, const char *key, const char *want)
{
    char *got = cached(c, key, NULL);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void assert_missing(kvi_row_cache *c, const char *key)
{
    char *got = cached(c, key, NULL);
    assert_null(got);
}

static void put(kvi_row_cache *c, const char *key, const char *rec)
{
    kvi_row_cache_put(c, key, strlen(key), rec, strlen(rec));
}

static void a_put_is_read_back_and_replaced_whatever_its_size(void **state)
{
    (void)state;
    kvi_row_cache *c = kvi_row_cache_new(1 << 20);
    assert_non_null(c);
    assert_missing(c, "k");
    put(c, "k", "first record");
    assert_cached(c, "k", "first record");
    put(c, "k", "short");
    assert_cached(c, "k", "short");
    put(c, "k", "a record longer than any before it");
    assert_cached(c, "k", "a record longer than any before it");
    put(c, "k", "");
    assert_cached(c, "k", "");
    assert_missing(c, "k2");
    kvi_row_cache_figures f;
    kvi_row_cache_figures_get(c, &f);
    assert_int_equal(f.entries, 1);
    assert_int_equal(f.hits, 4);
    assert_int_equal(f.misses, 2);
    kvi_row_cache_free(c);
}

static void a_fill_that_raced_a_put_is_dropped(void **state)
{
    (void)state;
    kvi_row_cache *c = kvi_row_cache_new(1 << 20);
    uint64_t ticket;
    /* A read misses and goes to RocksDB; a write lands meanwhile; the
     * read's (older) record must not replace the write's. */
    assert_null(cached(c, "k", &ticket));
    put(c, "k", "written");
    kvi_row_cache_fill(c, "k", 1, "read before", 11, ticket);
    assert_cached(c, "k", "written");

    /* The same with the write's entry gone again (cleared): still dropped. */
    assert_null(cached(c, "j", &ticket));
    put(c, "j", "written");
    kvi_row_cache_clear(c);
    kvi_row_cache_fill(c, "j", 1, "read before", 11, ticket);
    assert_missing(c, "j");

    /* Without a write in between, the fill is kept, and a second fill
     * with the same ticket does not replace the first. */
    assert_null(cached(c, "m", &ticket));
    kvi_row_cache_fill(c, "m", 1, "from disk", 9, ticket);
    assert_cached(c, "m", "from disk");
    kvi_row_cache_fill(c, "m", 1, "another", 7, ticket);
    assert_cached(c, "m", "from disk");
    kvi_row_cache_free(c);
}

static void memory_stays_under_the_capacity_oldest_out_first(void **state)
{
    (void)state;
    const uint64_t capacity = 256 << 10;
    kvi_row_cache *c = kvi_row_cache_new(capacity);
    char key[32], rec[100];
    memset(rec, 'r', sizeof rec - 1);
    rec[sizeof rec - 1] = 0;
    put(c, "kept", "read between every put");
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof key, "key-%d", i);
        put(c, key, rec);
        assert_cached(c, "kept", "read between every put");
        kvi_row_cache_figures f;
        kvi_row_cache_figures_get(c, &f);
        assert_true(f.bytes <= capacity);
    }
    assert_missing(c, "key-0");
    assert_cached(c, "key-19999", rec);
    kvi_row_cache_figures f;
    kvi_row_cache_figures_get(c, &f);
    assert_true(f.entries > 500);
    assert_true(f.entries < 20000);
    assert_int_equal(f.capacity, capacity);
    kvi_row_cache_free(c);
}

static void a_record_too_large_to_keep_leaves_no_older_one(void **state)
{
    (void)state;
    kvi_row_cache *c = kvi_row_cache_new(64 << 10); /* 1 KiB a shard */
    put(c, "k", "small");
    char big[4096];
    memset(big, 'b', sizeof big - 1);
    big[sizeof big - 1] = 0;
    put(c, "k", big);
    assert_missing(c, "k");
    kvi_row_cache_free(c);
}

static void no_capacity_is_no_cache(void **state)
{
    (void)state;
    kvi_row_cache *c = kvi_row_cache_new(0);
    assert_null(c);
    put(c, "k", "v");
    assert_missing(c, "k");
    kvi_row_cache_clear(c);
    kvi_row_cache_free(c);
}

/* ------------------------------------------------------ through the store */

typedef struct fixture {
    char *dir;
    kvi_store *store;
} fixture;

static int open_store(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = test_tempdir();
    assert_non_null(f->dir);
    kvi_store_config cfg = {.path = f->dir, .create_if_missing = 1, .sync = KV_SYNC_NONE,
                            .block_cache_bytes = 8 << 20, .row_cache_bytes = 8 << 20};
    assert_int_equal(kvi_store_open(&f->store, &cfg), KV_OK);
    *state = f;
    return 0;
}

static int close_store(void **state)
{
    fixture *f = *state;
    kvi_store_close(f->store);
    test_rmtree(f->dir);
    free(f);
    return 0;
}

static void assert_stored(kvi_store *s, const char *key, const char *want)
{
    kvi_slice got;
    assert_int_equal(kvi_store_get(s, key, strlen(key), &got), KV_OK);
    assert_int_equal(got.len, strlen(want));
    assert_memory_equal(got.data, want, got.len);
    kvi_slice_release(&got);
}

static kvi_row_cache_figures store_cache(kvi_store *s)
{
    kvi_row_cache_figures f;
    kvi_store_row_cache_figures(s, &f);
    return f;
}

static void every_write_is_read_back_through_the_cache(void **state)
{
    kvi_store *s = ((fixture *)*state)->store;
    assert_int_equal(kvi_store_put(s, "a", 1, "put", 3), KV_OK);
    assert_int_equal(kvi_store_put_unsynced(s, "b", 1, "unsynced", 8), KV_OK);
    kvi_store_batch *b = kvi_store_batch_new(s);
    kvi_store_batch_put(b, "c", 1, "batch one", 9);
    kvi_store_batch_put(b, "c", 1, "batch two", 9); /* the last put of a key wins */
    kvi_store_batch_put(b, "d", 1, "batch", 5);
    kvi_store_batch_put_paxos(b, "paxos-key", 9, "paxos state", 11); /* not cached */
    assert_int_equal(kvi_store_write(s, b), KV_OK);
    kvi_store_batch_free(b);
    b = kvi_store_batch_new(s); /* Paxos records only: nothing for the cache */
    kvi_store_batch_put_paxos(b, "paxos-key", 9, "paxos state", 11);
    assert_int_equal(kvi_store_write_synced(s, b), KV_OK);
    kvi_store_batch_free(b);
    b = kvi_store_batch_new(s);
    kvi_store_batch_put(b, "e", 1, "synced", 6);
    assert_int_equal(kvi_store_write_synced(s, b), KV_OK);
    kvi_store_batch_free(b);
    b = kvi_store_batch_new(s);
    kvi_store_batch_put(b, "a", 1, "rewritten", 9);
    assert_int_equal(kvi_store_write_unsynced(s, b), KV_OK);
    kvi_store_batch_free(b);

    /* Every one of them is held: the reads are hits. */
    kvi_row_cache_figures before = store_cache(s);
    assert_int_equal(before.entries, 5);
    assert_stored(s, "a", "rewritten");
    assert_stored(s, "b", "unsynced");
    assert_stored(s, "c", "batch two");
    assert_stored(s, "d", "batch");
    assert_stored(s, "e", "synced");
    kvi_row_cache_figures after = store_cache(s);
    assert_int_equal(after.hits - before.hits, 5);
    assert_int_equal(after.misses, before.misses);

    /* And RocksDB holds the same: after a compaction, which empties the
     * cache, the reads are misses that come back with the same records. */
    assert_int_equal(kvi_store_compact(s), KV_OK);
    assert_int_equal(store_cache(s).entries, 0);
    assert_stored(s, "a", "rewritten");
    assert_stored(s, "c", "batch two");
    kvi_row_cache_figures refilled = store_cache(s);
    assert_int_equal(refilled.misses - after.misses, 2);
    assert_int_equal(refilled.entries, 2);
    kvi_slice paxos;
    assert_int_equal(kvi_store_paxos_get(s, "paxos-key", 9, &paxos), KV_OK);
    assert_memory_equal(paxos.data, "paxos state", 11);
    kvi_slice_release(&paxos);
}

static void multi_get_mixes_hits_misses_and_absent_keys(void **state)
{
    kvi_store *s = ((fixture *)*state)->store;
    assert_int_equal(kvi_store_put(s, "x", 1, "ex", 2), KV_OK);
    assert_int_equal(kvi_store_put(s, "y", 1, "why", 3), KV_OK);
    assert_int_equal(kvi_store_compact(s), KV_OK); /* both on disk only */
    assert_stored(s, "x", "ex");                    /* x cached again */
    const unsigned char *keys[3] = {(const unsigned char *)"x", (const unsigned char *)"y",
                                    (const unsigned char *)"z"};
    size_t lens[3] = {1, 1, 1};
    kvi_slice out[3];
    int rcs[3];
    kvi_row_cache_figures before = store_cache(s);
    assert_int_equal(kvi_store_multi_get(s, 3, keys, lens, out, rcs), KV_OK);
    assert_int_equal(rcs[0], KV_OK);
    assert_memory_equal(out[0].data, "ex", 2);
    assert_int_equal(rcs[1], KV_OK);
    assert_memory_equal(out[1].data, "why", 3);
    assert_int_equal(rcs[2], KV_ENOTFOUND);
    for (int i = 0; i < 3; i++)
        kvi_slice_release(&out[i]);
    kvi_row_cache_figures after = store_cache(s);
    assert_int_equal(after.hits - before.hits, 1);
    assert_int_equal(after.misses - before.misses, 2);
    assert_int_equal(after.entries, 2); /* y filled; z absent, not cached */
}

static int count_record(void *ctx, const void *key, size_t key_len, const void *value,
                        size_t value_len)
{
    (void)key;
    (void)key_len;
    (void)value;
    (void)value_len;
    (*(int *)ctx)++;
    return 0;
}

static void a_scan_reads_through_without_filling(void **state)
{
    kvi_store *s = ((fixture *)*state)->store;
    for (int i = 0; i < 50; i++) {
        char key[8];
        snprintf(key, sizeof key, "s%02d", i);
        assert_int_equal(kvi_store_put(s, key, strlen(key), "v", 1), KV_OK);
    }
    assert_int_equal(kvi_store_compact(s), KV_OK);
    int seen = 0;
    assert_int_equal(kvi_store_data_scan(s, NULL, 0, count_record, &seen), KV_OK);
    assert_int_equal(seen, 50);
    assert_int_equal(store_cache(s).entries, 0);
}

/* Writers (each owning its keys, as a key lock would make them) and
 * readers (whose misses fill the cache) at once: at the end every key
 * reads its last write, from the cache and from RocksDB alike. */
#define RACE_KEYS 64
#define RACE_WRITES 3000

typedef struct racer {
    kvi_store *s;
    int first_key;  /* writers: keys first_key, first_key + 2, ... */
    int failures;
} racer;

static void race_key(char *out, size_t n, int k)
{
    snprintf(out, n, "race-%02d", k);
}

static void *race_writer(void *arg)
{
    racer *r = arg;
    for (int i = 1; i <= RACE_WRITES; i++) {
        for (int k = r->first_key; k < RACE_KEYS; k += 2) {
            char key[32], rec[16];
            race_key(key, sizeof key, k);
            snprintf(rec, sizeof rec, "%d", i);
            if (kvi_store_put(r->s, key, strlen(key), rec, strlen(rec)) != KV_OK)
                r->failures++;
        }
        if (i % 500 == 0 && kvi_store_compact(r->s) != KV_OK) /* clears the cache */
            r->failures++;
    }
    return NULL;
}

static void *race_reader(void *arg)
{
    racer *r = arg;
    for (int i = 0; i < RACE_WRITES * 4; i++) {
        char key[32];
        race_key(key, sizeof key, (i * 7) % RACE_KEYS);
        kvi_slice got;
        int rc = kvi_store_get(r->s, key, strlen(key), &got);
        if (rc == KV_OK)
            kvi_slice_release(&got);
        else if (rc != KV_ENOTFOUND)
            r->failures++;
    }
    return NULL;
}

static void reads_racing_writes_never_leave_an_old_record(void **state)
{
    kvi_store *s = ((fixture *)*state)->store;
    racer writers[2] = {{s, 0, 0}, {s, 1, 0}}, readers[2] = {{s, 0, 0}, {s, 0, 0}};
    pthread_t t[4];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, race_writer, &writers[i]), 0);
        assert_int_equal(pthread_create(&t[2 + i], NULL, race_reader, &readers[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_join(t[i], NULL), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(writers[i].failures, 0);
        assert_int_equal(readers[i].failures, 0);
    }
    char last[16];
    snprintf(last, sizeof last, "%d", RACE_WRITES);
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 0; k < RACE_KEYS; k++) {
            char key[32];
            race_key(key, sizeof key, k);
            assert_stored(s, key, last);
        }
        /* First pass: as cached (each key was written last, so each is
         * held); second pass: as RocksDB holds them. */
        if (pass == 0)
            assert_int_equal(kvi_store_compact(s), KV_OK);
    }
}

static void an_entry_hash_is_kept_or_computed_and_forgotten_on_a_put(void **state)
{
    (void)state;
    kvi_row_cache *c = kvi_row_cache_new(1 << 20);
    assert_non_null(c);
    uint64_t h = 0;
    assert_int_equal(kvi_row_cache_entry_hash(c, "absent", 6, &h), 0);
    /* Given with the put: returned as given. */
    kvi_row_cache_put_hashed(c, "k", 1, "rec", 3, 0x1234);
    assert_int_equal(kvi_row_cache_entry_hash(c, "k", 1, &h), 1);
    assert_int_equal(h, 0x1234);
    /* A plain put forgets it: computed from the record now. */
    put(c, "k", "rec2");
    assert_int_equal(kvi_row_cache_entry_hash(c, "k", 1, &h), 1);
    assert_int_equal(h, kvi_entry_hash("k", 1, "rec2", 4));
    /* So does a fill of a key not yet cached. */
    uint64_t ticket;
    char *rec;
    size_t len;
    assert_int_equal(kvi_row_cache_get(c, "f", 1, &rec, &len, &ticket), 0);
    kvi_row_cache_fill(c, "f", 1, "filled", 6, ticket);
    assert_int_equal(kvi_row_cache_entry_hash(c, "f", 1, &h), 1);
    assert_int_equal(h, kvi_entry_hash("f", 1, "filled", 6));
    kvi_row_cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(an_entry_hash_is_kept_or_computed_and_forgotten_on_a_put),
        cmocka_unit_test(a_put_is_read_back_and_replaced_whatever_its_size),
        cmocka_unit_test(a_fill_that_raced_a_put_is_dropped),
        cmocka_unit_test(memory_stays_under_the_capacity_oldest_out_first),
        cmocka_unit_test(a_record_too_large_to_keep_leaves_no_older_one),
        cmocka_unit_test(no_capacity_is_no_cache),
        cmocka_unit_test_setup_teardown(every_write_is_read_back_through_the_cache, open_store,
                                        close_store),
        cmocka_unit_test_setup_teardown(multi_get_mixes_hits_misses_and_absent_keys,
                                        open_store, close_store),
        cmocka_unit_test_setup_teardown(a_scan_reads_through_without_filling, open_store,
                                        close_store),
        cmocka_unit_test_setup_teardown(reads_racing_writes_never_leave_an_old_record,
                                        open_store, close_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
