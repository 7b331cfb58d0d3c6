/* TTL: expired values are never returned, and compaction reclaims them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "api/fixture.h"
#include "storage/raw.h"
#include "util/clock.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A value no other record contains, to look for in the SST files. */
#define SECRET "ttl-secret-value-7f3e9a"

static void put_with_ttl(kv *db, const char *key, uint64_t ttl_s, uint64_t *version)
{
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.ttl_s = ttl_s;
    assert_int_equal(kv_put(version, db, key, strlen(key), SECRET, strlen(SECRET), &wo), KV_OK);
}

static void expired_value_is_gone_and_compacted_away(void **state)
{
    (void)state;
    kv_open_options o = KV_OPEN_OPTIONS_INIT;
    o.tombstone_grace_s = KV_GRACE_NONE;
    o.sync = KV_SYNC_NONE;
    fixture *f = NULL;
    assert_int_equal(fixture_open_with((void **)&f, &o), 0);

    uint64_t before = kvi_now_ms();
    uint64_t v;
    put_with_ttl(f->db, "short", 1, &v);
    assert_int_equal(kv_put(NULL, f->db, "forever", 7, "stays", 5, NULL), KV_OK);
    kv_value *val;
    assert_int_equal(kv_get(&val, f->db, "short", 5, NULL), KV_OK);
    uint64_t expiry = kv_value_expiry_ms(val);
    assert_true(expiry >= before + 1000 && expiry <= kvi_now_ms() + 1000);
    kv_value_free(val);
    /* Make the record reach an SST file, so compaction has it to drop. */
    assert_int_equal(kv_compact(f->db), KV_OK);

    while (kvi_now_ms() <= expiry)
        sleep_ms(100);
    assert_int_equal(kv_get(&val, f->db, "short", 5, NULL), KV_ENOTFOUND);
    assert_null(val);
    /* An expired key counts as absent for CAS and delete. */
    uint64_t current = 1;
    assert_int_equal(kv_cas(&current, f->db, "short", 5, 1, "x", 1, NULL), KV_ECONFLICT);
    assert_int_equal(current, 0);
    assert_int_equal(kv_delete(NULL, f->db, "short", 5, NULL), KV_ENOTFOUND);

    assert_int_equal(kv_compact(f->db), KV_OK);
    kv_close(f->db);
    f->db = NULL;

    raw_db raw;
    assert_int_equal(raw_open(&raw, f->dir), 0);
    size_t len;
    char *rec = raw_get(&raw, "short", 5, &len);
    assert_null(rec);
    char *kept = raw_get(&raw, "forever", 7, &len);
    assert_non_null(kept);
    free(kept);
    assert_int_equal(raw_count(&raw), 1);
    raw_close(&raw);
    void *s = f;
    assert_int_equal(kv_open(&f->db, f->dir, &o), KV_OK);
    fixture_close(&s);
}

static void within_grace_the_value_goes_but_the_version_stays(void **state)
{
    (void)state;
    kv_open_options o = KV_OPEN_OPTIONS_INIT; /* default grace: one day */
    o.sync = KV_SYNC_NONE;
    fixture *f = NULL;
    assert_int_equal(fixture_open_with((void **)&f, &o), 0);
    uint64_t v;
    put_with_ttl(f->db, "short", 1, &v);
    put_with_ttl(f->db, "short", 1, &v);
    assert_int_equal(v, 2);
    /* The search below can see the bytes when they are there. */
    assert_true(raw_files_contain(f->dir, SECRET));
    uint64_t expiry = kvi_now_ms() + 1000;
    while (kvi_now_ms() <= expiry + 10)
        sleep_ms(100);
    assert_int_equal(kv_compact(f->db), KV_OK);
    kv_close(f->db);
    f->db = NULL;

    raw_db raw;
    assert_int_equal(raw_open(&raw, f->dir), 0);
    size_t len;
    char *rec = raw_get(&raw, "short", 5, &len);
    assert_non_null(rec);
    kvi_record r;
    assert_int_equal(kvi_record_decode(&r, rec, len, kvi_key_token("short", 5)), KV_OK);
    assert_true(r.tombstone);
    assert_int_equal(r.version, 2);
    free(rec);
    raw_close(&raw);
    /* The value's bytes are gone from every file of the store. */
    assert_false(raw_files_contain(f->dir, SECRET));

    /* A new write continues the version instead of restarting at 1. */
    assert_int_equal(kv_open(&f->db, f->dir, &o), KV_OK);
    assert_int_equal(kv_put(&v, f->db, "short", 5, "new", 3, NULL), KV_OK);
    assert_int_equal(v, 3);
    void *s = f;
    fixture_close(&s);
}

static void ttl_zero_never_expires_and_rewrite_clears_ttl(void **state)
{
    kv *db = DB(state);
    uint64_t v;
    put_with_ttl(db, "k", 3600, &v);
    kv_value *val;
    assert_int_equal(kv_get(&val, db, "k", 1, NULL), KV_OK);
    assert_true(kv_value_expiry_ms(val) > kvi_now_ms());
    kv_value_free(val);
    assert_int_equal(kv_put(&v, db, "k", 1, "plain", 5, NULL), KV_OK);
    assert_int_equal(kv_get(&val, db, "k", 1, NULL), KV_OK);
    assert_int_equal(kv_value_expiry_ms(val), 0);
    kv_value_free(val);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(expired_value_is_gone_and_compacted_away),
        cmocka_unit_test(within_grace_the_value_goes_but_the_version_stays),
        cmocka_unit_test_setup_teardown(ttl_zero_never_expires_and_rewrite_clears_ttl,
                                        fixture_open, fixture_close),
    };
    return cmocka_run_group_tests_name("api.ttl", tests, NULL, NULL);
}
