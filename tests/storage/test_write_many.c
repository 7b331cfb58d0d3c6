/* kvi_embedded_write_many: independent writes in one WriteBatch, each
 * answered as put, cas or delete would answer it alone, in order, a
 * failure (a conflict, a missing value, a corrupt or replicated record)
 * failing that write only. */
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
#include "format/record.h"
#include "storage/embedded.h"
#include "storage/store.h"

typedef struct fixture {
    char *dir;
    kvi_embedded *e;
} fixture;

static int open_store(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    f->dir = test_tempdir();
    assert_non_null(f->dir);
    kvi_store_config cfg = {.path = f->dir, .create_if_missing = 1, .sync = KV_SYNC_ALWAYS,
                            .block_cache_bytes = 8 << 20, .row_cache_bytes = 8 << 20,
                            .grace_ms = 86400000};
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

static kvi_embedded_write op(kvi_embedded_write_kind kind, const char *key, const char *value,
                             uint64_t expected)
{
    return (kvi_embedded_write){.kind = kind, .key = key, .key_len = strlen(key),
                                .value = value, .value_len = value ? strlen(value) : 0,
                                .expected_version = expected};
}

static void assert_value(kvi_embedded *e, const char *key, const char *want, uint64_t version)
{
    kv_value *v = NULL;
    assert_int_equal(kvi_embedded_get(e, &v, key, strlen(key)), KV_OK);
    size_t len;
    const void *data = kv_value_data(v, &len);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(data, want, len);
    assert_int_equal(kv_value_version(v), version);
    kv_value_free(v);
}

static void writes_are_made_in_order_each_alone(void **state)
{
    kvi_embedded *e = ((fixture *)*state)->e;
    uint64_t v;
    assert_int_equal(kvi_embedded_put(e, &v, "old", 3, "x", 1, 0), KV_OK);
    kvi_embedded_write ws[] = {
        op(KVI_EMBEDDED_PUT, "a", "1", 0),
        op(KVI_EMBEDDED_CAS, "a", "2", 1),
        op(KVI_EMBEDDED_CAS, "a", "lost", 1),   /* the version is 2 by now */
        op(KVI_EMBEDDED_DELETE, "b", NULL, 0),  /* nothing to delete */
        op(KVI_EMBEDDED_PUT, "b", "3", 0),
        op(KVI_EMBEDDED_DELETE, "old", NULL, 0),
        op(KVI_EMBEDDED_CAS, "old", "back", 0), /* deleted: expects 0 */
        op(KVI_EMBEDDED_PUT, "a", "4", 0),
    };
    const size_t n = sizeof ws / sizeof ws[0];
    kvi_embedded_write_many(e, ws, n, 1);
    const int status[] = {KV_OK, KV_OK, KV_ECONFLICT, KV_ENOTFOUND, KV_OK, KV_OK, KV_OK, KV_OK};
    const uint64_t version[] = {1, 2, 2, 0, 1, 2, 3, 3};
    for (size_t i = 0; i < n; i++) {
        if (ws[i].status != status[i])
            fail_msg("write %zu: %d (%s), expected %d", i, ws[i].status, ws[i].why, status[i]);
        assert_int_equal(ws[i].version, version[i]);
    }
    assert_non_null(strstr(ws[2].why, "expected version 1"));
    assert_non_null(strstr(ws[3].why, "no live value"));
    assert_value(e, "a", "4", 3);
    assert_value(e, "b", "3", 1);
    assert_value(e, "old", "back", 3);
}

static void a_bad_record_fails_its_own_writes_only(void **state)
{
    kvi_embedded *e = ((fixture *)*state)->e;
    kvi_store *s = kvi_embedded_store(e);
    /* "bad": a record that fails its checksum; "rep": a replicated state
     * (format 2), which only the cluster's coordinator writes. */
    unsigned char skey[KVI_TOKEN_SIZE + 3];
    kvi_storage_key(skey, kvi_key_token("bad", 3), "bad", 3);
    assert_int_equal(kvi_store_put(s, skey, sizeof skey, "\x01garbage", 8), KV_OK);
    kvi_storage_key(skey, kvi_key_token("rep", 3), "rep", 3);
    assert_int_equal(kvi_store_put(s, skey, sizeof skey, "\x02whatever", 9), KV_OK);
    kvi_embedded_write ws[] = {
        op(KVI_EMBEDDED_PUT, "bad", "v", 0),
        op(KVI_EMBEDDED_PUT, "good", "v", 0),
        op(KVI_EMBEDDED_PUT, "rep", "v", 0),
        op(KVI_EMBEDDED_PUT, "bad", "again", 0), /* the same record: the same failure */
    };
    kvi_embedded_write_many(e, ws, 4, 0);
    assert_int_equal(ws[0].status, KV_ECORRUPT);
    assert_int_equal(ws[1].status, KV_OK);
    assert_int_equal(ws[1].version, 1);
    assert_int_equal(ws[2].status, KV_ENOTSUP);
    assert_non_null(strstr(ws[2].why, "replicated"));
    assert_int_equal(ws[3].status, KV_ECORRUPT);
    assert_value(e, "good", "v", 1);
}

static void many_writes_of_few_keys(void **state)
{
    kvi_embedded *e = ((fixture *)*state)->e;
    enum { N = 300 };
    kvi_embedded_write ws[N];
    char keys[N][8];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "m%d", i % 7);
        ws[i] = op(KVI_EMBEDDED_PUT, keys[i], keys[i], 0);
    }
    kvi_embedded_write_many(e, ws, N, 1);
    uint64_t next[7] = {0};
    for (int i = 0; i < N; i++) {
        assert_int_equal(ws[i].status, KV_OK);
        assert_int_equal(ws[i].version, ++next[i % 7]);
    }
    assert_value(e, "m3", "m3", next[3]);
    kvi_embedded_write_many(e, ws, 0, 1); /* nothing: nothing happens */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(writes_are_made_in_order_each_alone, open_store,
                                        close_store),
        cmocka_unit_test_setup_teardown(a_bad_record_fails_its_own_writes_only, open_store,
                                        close_store),
        cmocka_unit_test_setup_teardown(many_writes_of_few_keys, open_store, close_store),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
