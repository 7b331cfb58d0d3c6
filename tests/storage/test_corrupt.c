/* A record damaged under libkv (through RocksDB directly) is reported as
 * KV_ECORRUPT by every path that reads it, and never returned as data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "api/fixture.h"
#include "storage/raw.h"

/* Writes good records, closes the store, damages "victim" as damage() says,
 * and reopens it. */
static void damage_and_reopen(fixture *f, void (*damage)(char *rec, size_t *len))
{
    assert_int_equal(kv_put(NULL, f->db, "victim", 6, "precious", 8, NULL), KV_OK);
    assert_int_equal(kv_put(NULL, f->db, "bystander", 9, "fine", 4, NULL), KV_OK);
    kv_close(f->db);
    f->db = NULL;
    raw_db raw;
    assert_int_equal(raw_open(&raw, f->dir), 0);
    size_t len;
    char *rec = raw_get(&raw, "victim", 6, &len);
    assert_non_null(rec);
    char copy[256];
    assert_true(len <= sizeof copy);
    memcpy(copy, rec, len);
    free(rec);
    damage(copy, &len);
    assert_int_equal(raw_put(&raw, "victim", 6, copy, len), 0);
    raw_close(&raw);
    assert_int_equal(kv_open(&f->db, f->dir, NULL), KV_OK);
}

static void flip_value_byte(char *rec, size_t *len)
{
    (void)len;
    rec[KVI_RECORD_HEADER + 2] ^= 0x20; /* "precious" -> "prEcious" */
}

static void truncate_record(char *rec, size_t *len)
{
    (void)rec;
    *len = 5;
}

static void bump_version(char *rec, size_t *len)
{
    (void)len;
    rec[9] ^= 1;
}

static void unknown_format(char *rec, size_t *len)
{
    (void)len;
    rec[0] = 77;
}

static void every_path_reports_corruption(void **state, void (*damage)(char *, size_t *))
{
    fixture *f = *state;
    damage_and_reopen(f, damage);
    kv_value *val = (kv_value *)f;
    assert_int_equal(kv_get(&val, f->db, "victim", 6, NULL), KV_ECORRUPT);
    assert_null(val);
    assert_non_null(strstr(kv_error_last(), "checksum"));
    /* Writes over it refuse too: they would lose the version history. */
    uint64_t v = 0;
    assert_int_equal(kv_put(&v, f->db, "victim", 6, "x", 1, NULL), KV_ECORRUPT);
    assert_int_equal(kv_delete(&v, f->db, "victim", 6, NULL), KV_ECORRUPT);
    assert_int_equal(kv_cas(&v, f->db, "victim", 6, 1, "x", 1, NULL), KV_ECORRUPT);
    /* In a batch, a get fails alone; a write fails the batch. */
    kv_batch *b;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    kv_batch_get(b, "victim", 6);
    kv_batch_get(b, "bystander", 9);
    assert_int_equal(kv_batch_execute(f->db, b, NULL, NULL), KV_OK);
    assert_int_equal(kv_batch_result(NULL, NULL, b, 0), KV_ECORRUPT);
    assert_int_equal(kv_batch_result(NULL, NULL, b, 1), KV_OK);
    kv_batch_clear(b);
    kv_batch_put(b, "other", 5, "x", 1, 0);
    kv_batch_put(b, "victim", 6, "x", 1, 0);
    assert_int_equal(kv_batch_execute(f->db, b, NULL, NULL), KV_ECORRUPT);
    kv_batch_free(b);
    assert_int_equal(kv_get(&val, f->db, "other", 5, NULL), KV_ENOTFOUND);
    /* The rest of the store is unaffected and the handle keeps serving. */
    assert_int_equal(kv_get(&val, f->db, "bystander", 9, NULL), KV_OK);
    assert_memory_equal(kv_value_data(val, NULL), "fine", 4);
    kv_value_free(val);
    /* Compaction keeps the evidence: still corrupt, not silently dropped. */
    assert_int_equal(kv_compact(f->db), KV_OK);
    assert_int_equal(kv_get(&val, f->db, "victim", 6, NULL), KV_ECORRUPT);
}

static void flipped_value_byte(void **state) { every_path_reports_corruption(state, flip_value_byte); }
static void truncated_record(void **state) { every_path_reports_corruption(state, truncate_record); }
static void altered_version(void **state) { every_path_reports_corruption(state, bump_version); }
static void unknown_record_format(void **state) { every_path_reports_corruption(state, unknown_format); }

static void unknown_store_format_is_refused(void **state)
{
    fixture *f = *state;
    kv_close(f->db);
    f->db = NULL;
    raw_db raw;
    assert_int_equal(raw_open(&raw, f->dir), 0);
    rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
    char *err = NULL;
    rocksdb_put_cf(raw.db, wo, raw.cf[0], KVI_META_FORMAT_KEY, strlen(KVI_META_FORMAT_KEY),
                   "99", 2, &err);
    assert_null(err);
    rocksdb_writeoptions_destroy(wo);
    raw_close(&raw);
    assert_int_equal(kv_open(&f->db, f->dir, NULL), KV_ECORRUPT);
    assert_null(f->db);
    assert_non_null(strstr(kv_error_last(), "format"));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_open, fixture_close)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(flipped_value_byte),
        T(truncated_record),
        T(altered_version),
        T(unknown_record_format),
        T(unknown_store_format_is_refused),
    };
    return cmocka_run_group_tests_name("storage.corrupt", tests, NULL, NULL);
}
