/* kvi_store_engine_figures_get: the memtables, the WAL, the block cache's
 * size and its hits and misses, read from a real RocksDB store. */
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
#include "storage/embedded.h"
#include "storage/store.h"

enum { KEYS = 5000, VALUE = 200 };

typedef struct fixture {
    char *dir;
    kvi_embedded *e;
} fixture;

static int open_store(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = test_tempdir();
    assert_non_null(f->dir);
    /* No row cache: every read goes to RocksDB and its block cache. */
    kvi_store_config cfg = {.path = f->dir, .create_if_missing = 1, .sync = KV_SYNC_NONE,
                            .block_cache_bytes = 8 << 20, .grace_ms = 86400000};
    assert_int_equal(kvi_embedded_open(&f->e, &cfg), KV_OK);
    *state = f;
    return 0;
}

static int close_store(void **state)
{
    fixture *f = *state;
    kvi_embedded_close(f->e);
    test_rmtree(f->dir);
    free(f);
    return 0;
}

static void key_of(char *out, size_t size, int i)
{
    snprintf(out, size, "key-%05d", i);
}

static void read_key(kvi_embedded *e, int i)
{
    char key[32];
    key_of(key, sizeof key, i);
    kv_value *v = NULL;
    assert_int_equal(kvi_embedded_get(e, &v, key, strlen(key)), KV_OK);
    kv_value_free(v);
}

static void figures_follow_writes_flushes_and_reads(void **state)
{
    fixture *f = *state;
    kvi_store *s = kvi_embedded_store(f->e);
    kvi_store_engine_figures before, written, compacted, first, again;
    kvi_store_engine_figures_get(s, &before);
    assert_int_equal(before.block_cache_capacity, 8 << 20);

    char value[VALUE];
    memset(value, 'v', sizeof value);
    for (int i = 0; i < KEYS; i++) {
        char key[32];
        key_of(key, sizeof key, i);
        assert_int_equal(kvi_embedded_put(f->e, NULL, key, strlen(key), value, sizeof value, 0),
                         KV_OK);
    }
    kvi_store_engine_figures_get(s, &written);
    /* Every record is in the memtable and in the WAL's file. */
    assert_true(written.memtable_bytes >= (uint64_t)KEYS * VALUE);
    assert_true(written.wal_bytes >= (uint64_t)KEYS * VALUE);
    assert_true(written.memtable_bytes > before.memtable_bytes);

    /* A compaction flushes the memtable into a file: the memtable is small
     * again. (Whether RocksDB runs or plans a compaction of its own right
     * after is its scheduler's business: CI once saw one running.) */
    assert_int_equal(kvi_store_compact(s), KV_OK);
    kvi_store_engine_figures_get(s, &compacted);
    assert_true(compacted.memtable_bytes < written.memtable_bytes / 4);

    /* The first read of a key finds its data block on disk; the second
     * finds it in the block cache. */
    read_key(f->e, 1234);
    kvi_store_engine_figures_get(s, &first);
    assert_true(first.block_cache_misses > compacted.block_cache_misses);
    assert_true(first.block_cache_bytes > compacted.block_cache_bytes);
    read_key(f->e, 1234);
    kvi_store_engine_figures_get(s, &again);
    assert_int_equal(again.block_cache_misses, first.block_cache_misses);
    assert_true(again.block_cache_hits > first.block_cache_hits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(figures_follow_writes_flushes_and_reads, open_store,
                                        close_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
