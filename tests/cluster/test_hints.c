/* Hints in a real store: stored per target oldest first, counted, deleted
 * after acknowledgement, dropped past the window, kept across a reopen, and
 * a damaged one reported (and dropped), never handed over as data. */
#include <rocksdb/c.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "helpers.h"
#include "cluster/hints.h"
#include "storage/embedded.h"
#include "client/handle.h"
#include "storage/raw.h"

typedef struct seen {
    int n, damaged;
    char keys[16][32];
    char targets[16][16];
    uint64_t created[16];
    unsigned char hkey[16][96];
    size_t hkey_len[16];
} seen;

static int collect(void *ctx, const kvi_hint *h)
{
    seen *s = ctx;
    if (s->n == 16)
        return 1;
    if (h->damaged) {
        s->damaged++;
        return 0;
    }
    snprintf(s->keys[s->n], sizeof s->keys[0], "%.*s", (int)h->key_len, (const char *)h->key);
    snprintf(s->targets[s->n], sizeof s->targets[0], "%s", h->target);
    s->created[s->n] = h->created_ms;
    memcpy(s->hkey[s->n], h->hkey, h->hkey_len);
    s->hkey_len[s->n] = h->hkey_len;
    assert_int_equal(h->state_len, 5);
    assert_memory_equal(h->state, "state", 5);
    s->n++;
    return 0;
}

static kv *open_store(const char *dir)
{
    kv *db = NULL;
    assert_int_equal(kv_open(&db, dir, NULL), KV_OK);
    return db;
}

static void hints_per_target_oldest_first(void **state)
{
    (void)state;
    char *dir = test_tempdir();
    kv *db = open_store(dir);
    kvi_hints h;
    kvi_hints_init(&h, kvi_embedded_store(db->embedded), 1);
    assert_int_equal(kvi_hints_put(&h, "n2", 3000, "c", 1, "state", 5), KV_OK);
    assert_int_equal(kvi_hints_put(&h, "n2", 1000, "a", 1, "state", 5), KV_OK);
    assert_int_equal(kvi_hints_put(&h, "n3", 500, "x", 1, "state", 5), KV_OK);
    assert_int_equal(kvi_hints_put(&h, "n2", 2000, "b", 1, "state", 5), KV_OK);
    /* Same key, same millisecond: two hints, not one. */
    assert_int_equal(kvi_hints_put(&h, "n2", 2000, "b", 1, "state", 5), KV_OK);
    assert_int_equal(kvi_hints_put(&h, "", 1, "k", 1, "state", 5), KV_EINVAL);
    seen s = {0};
    assert_int_equal(kvi_hints_scan(&h, "n2", collect, &s), KV_OK);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.keys[0], "a");
    assert_string_equal(s.keys[1], "b");
    assert_string_equal(s.keys[2], "b");
    assert_string_equal(s.keys[3], "c");
    assert_int_equal(s.created[0], 1000);
    uint64_t pending = 0, oldest = 0;
    assert_int_equal(kvi_hints_stats(&h, &pending, &oldest), KV_OK);
    assert_int_equal(pending, 5);
    assert_int_equal(oldest, 500);
    /* Acknowledged: deleted. */
    assert_int_equal(kvi_hints_delete(&h, s.hkey[0], s.hkey_len[0]), KV_OK);
    assert_int_equal(kvi_hints_stats(&h, &pending, NULL), KV_OK);
    assert_int_equal(pending, 4);
    /* "n2" is not a prefix match for "n20". */
    assert_int_equal(kvi_hints_put(&h, "n20", 100, "z", 1, "state", 5), KV_OK);
    memset(&s, 0, sizeof s);
    assert_int_equal(kvi_hints_scan(&h, "n2", collect, &s), KV_OK);
    assert_int_equal(s.n, 3);
    /* Durable: still there after a reopen. */
    kv_close(db);
    db = open_store(dir);
    kvi_hints_init(&h, kvi_embedded_store(db->embedded), 1000);
    assert_int_equal(kvi_hints_stats(&h, &pending, &oldest), KV_OK);
    assert_int_equal(pending, 5);
    assert_int_equal(oldest, 100);
    /* The window: everything created before 2000 goes. */
    uint64_t dropped = 0;
    assert_int_equal(kvi_hints_drop_before(&h, 2000, &dropped), KV_OK);
    assert_int_equal(dropped, 2); /* n3's at 500 and n20's at 100 */
    assert_int_equal(kvi_hints_stats(&h, &pending, &oldest), KV_OK);
    assert_int_equal(pending, 3);
    assert_int_equal(oldest, 2000);
    kv_close(db);
    test_rmtree(dir);
}

static void a_damaged_hint_is_reported_not_replayed(void **state)
{
    (void)state;
    char *dir = test_tempdir();
    kv *db = open_store(dir);
    kvi_hints h;
    kvi_hints_init(&h, kvi_embedded_store(db->embedded), 1);
    assert_int_equal(kvi_hints_put(&h, "n2", 1000, "a", 1, "state", 5), KV_OK);
    assert_int_equal(kvi_hints_put(&h, "n2", 2000, "b", 1, "state", 5), KV_OK);
    kv_close(db);
    /* Flip a byte of the first hint's value under libkv. */
    raw_db r;
    assert_int_equal(raw_open(&r, dir), 0);
    rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
    rocksdb_iterator_t *it = rocksdb_create_iterator_cf(r.db, ro, r.cf[2]);
    rocksdb_iter_seek_to_first(it);
    assert_true(rocksdb_iter_valid(it));
    size_t klen, vlen;
    const char *k = rocksdb_iter_key(it, &klen);
    const char *v = rocksdb_iter_value(it, &vlen);
    char key[128], val[128];
    memcpy(key, k, klen);
    memcpy(val, v, vlen);
    val[7] ^= 0x20;
    rocksdb_iter_destroy(it);
    rocksdb_readoptions_destroy(ro);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *err = NULL;
    rocksdb_put_cf(r.db, wo, r.cf[2], key, klen, val, vlen, &err);
    assert_null(err);
    rocksdb_writeoptions_destroy(wo);
    raw_close(&r);

    db = open_store(dir);
    kvi_hints_init(&h, kvi_embedded_store(db->embedded), 1);
    seen s = {0};
    assert_int_equal(kvi_hints_scan(&h, "n2", collect, &s), KV_OK);
    assert_int_equal(s.damaged, 1);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.keys[0], "b");
    /* Damaged hints are dropped whatever their age. */
    uint64_t dropped = 0;
    assert_int_equal(kvi_hints_drop_before(&h, 0, &dropped), KV_OK);
    assert_int_equal(dropped, 1);
    uint64_t pending = 0;
    assert_int_equal(kvi_hints_stats(&h, &pending, NULL), KV_OK);
    assert_int_equal(pending, 1);
    kv_close(db);
    test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hints_per_target_oldest_first),
        cmocka_unit_test(a_damaged_hint_is_reported_not_replayed),
    };
    return cmocka_run_group_tests_name("cluster.hints", tests, NULL, NULL);
}
