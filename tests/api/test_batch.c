/* Batches: results in order, effects visible within the batch, atomicity. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "api/fixture.h"

static void expect(const kv_batch *b, size_t i, int status, uint64_t version,
                   const char *value)
{
    const kv_value *val = (const kv_value *)b; /* must be overwritten */
    uint64_t v = 12345;
    assert_int_equal(kv_batch_result(&val, &v, b, i), status);
    assert_int_equal(v, version);
    if (value) {
        size_t len;
        const void *data = kv_value_data(val, &len);
        assert_int_equal(len, strlen(value));
        assert_memory_equal(data, value, len);
        assert_int_equal(kv_value_version(val), version);
    } else {
        assert_null(val);
    }
}

static void results_in_order(void **state)
{
    kv *db = DB(state);
    assert_int_equal(kv_put(NULL, db, "k2", 2, "old", 3, NULL), KV_OK);
    assert_int_equal(kv_put(NULL, db, "k3", 2, "gone", 4, NULL), KV_OK);
    kv_batch *b;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    assert_int_equal(kv_batch_put(b, "k1", 2, "v1", 2, 0), KV_OK);
    assert_int_equal(kv_batch_get(b, "k2", 2), KV_OK);
    assert_int_equal(kv_batch_delete(b, "k3", 2), KV_OK);
    assert_int_equal(kv_batch_get(b, "missing", 7), KV_OK);
    assert_int_equal(kv_batch_delete(b, "missing", 7), KV_OK);
    assert_int_equal(kv_batch_count(b), 5);
    /* Results before execution are refused. */
    assert_int_equal(kv_batch_result(NULL, NULL, b, 0), KV_EINVAL);
    assert_int_equal(kv_batch_execute(db, b, NULL, NULL), KV_OK);
    expect(b, 0, KV_OK, 1, NULL);
    expect(b, 1, KV_OK, 1, "old");
    expect(b, 2, KV_OK, 2, NULL);
    expect(b, 3, KV_ENOTFOUND, 0, NULL);
    expect(b, 4, KV_ENOTFOUND, 0, NULL);
    assert_int_equal(kv_batch_result(NULL, NULL, b, 5), KV_EINVAL);
    kv_batch_free(b);

    kv_value *val;
    assert_int_equal(kv_get(&val, db, "k1", 2, NULL), KV_OK);
    kv_value_free(val);
    assert_int_equal(kv_get(&val, db, "k3", 2, NULL), KV_ENOTFOUND);
}

static void later_operations_see_earlier_ones(void **state)
{
    kv *db = DB(state);
    kv_batch *b;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    kv_batch_put(b, "k", 1, "a", 1, 0);
    kv_batch_get(b, "k", 1);
    kv_batch_put(b, "k", 1, "b", 1, 0);
    kv_batch_get(b, "k", 1);
    kv_batch_delete(b, "k", 1);
    kv_batch_get(b, "k", 1);
    kv_batch_delete(b, "k", 1);
    kv_batch_put(b, "k", 1, "c", 1, 0);
    kv_batch_get(b, "k", 1);
    assert_int_equal(kv_batch_execute(db, b, NULL, NULL), KV_OK);
    expect(b, 0, KV_OK, 1, NULL);
    expect(b, 1, KV_OK, 1, "a");
    expect(b, 2, KV_OK, 2, NULL);
    expect(b, 3, KV_OK, 2, "b");
    expect(b, 4, KV_OK, 3, NULL);
    expect(b, 5, KV_ENOTFOUND, 0, NULL);
    expect(b, 6, KV_ENOTFOUND, 0, NULL);
    expect(b, 7, KV_OK, 4, NULL);
    expect(b, 8, KV_OK, 4, "c");

    /* Running the same batch again continues the versions. */
    assert_int_equal(kv_batch_execute(db, b, NULL, NULL), KV_OK);
    expect(b, 0, KV_OK, 5, NULL);
    expect(b, 8, KV_OK, 8, "c");
    kv_batch_free(b);
    kv_value *val;
    assert_int_equal(kv_get(&val, db, "k", 1, NULL), KV_OK);
    assert_int_equal(kv_value_version(val), 8);
    kv_value_free(val);
}

static void one_bad_operation_applies_nothing(void **state)
{
    kv *db = DB(state);
    assert_int_equal(kv_put(NULL, db, "keep", 4, "original", 8, NULL), KV_OK);
    char *big = calloc(1, KV_DEFAULT_MAX_VALUE_SIZE + 1);
    assert_non_null(big);
    kv_batch *b;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    kv_batch_put(b, "new", 3, "x", 1, 0);
    kv_batch_delete(b, "keep", 4);
    kv_batch_put(b, "big", 3, big, KV_DEFAULT_MAX_VALUE_SIZE + 1, 0);
    assert_int_equal(kv_batch_execute(db, b, NULL, NULL), KV_ETOOBIG);
    assert_non_null(strstr(kv_error_last(), "operation 2"));
    assert_int_equal(kv_batch_result(NULL, NULL, b, 2), KV_ETOOBIG);
    kv_batch_free(b);
    free(big);
    kv_value *val;
    assert_int_equal(kv_get(&val, db, "new", 3, NULL), KV_ENOTFOUND);
    assert_int_equal(kv_get(&val, db, "keep", 4, NULL), KV_OK);
    assert_int_equal(kv_value_version(val), 1);
    kv_value_free(val);
}

static void builder_rejects_bad_input(void **state)
{
    kv *db = DB(state);
    kv_batch *b;
    assert_int_equal(kv_batch_new(NULL), KV_EINVAL);
    assert_int_equal(kv_batch_new(&b), KV_OK);
    assert_int_equal(kv_batch_put(NULL, "k", 1, "v", 1, 0), KV_EINVAL);
    assert_int_equal(kv_batch_put(b, "", 0, "v", 1, 0), KV_EINVAL);
    assert_int_equal(kv_batch_put(b, NULL, 1, "v", 1, 0), KV_EINVAL);
    assert_int_equal(kv_batch_put(b, "k", 1, NULL, 1, 0), KV_EINVAL);
    assert_int_equal(kv_batch_get(b, "k", (size_t)KV_MAX_KEY_SIZE_LIMIT + 1), KV_ETOOBIG);
    assert_int_equal(kv_batch_put(b, "k", 1, "v", SIZE_MAX, 0), KV_ETOOBIG);
    assert_int_equal(kv_batch_count(b), 0);
    /* An empty batch is refused. */
    assert_int_equal(kv_batch_execute(db, b, NULL, NULL), KV_EINVAL);
    for (unsigned i = 0; i < KV_BATCH_MAX_OPS; i++)
        assert_int_equal(kv_batch_get(b, "k", 1), KV_OK);
    assert_int_equal(kv_batch_get(b, "k", 1), KV_ETOOBIG);
    assert_int_equal(kv_batch_execute(db, b, NULL, NULL), KV_OK);
    kv_batch_clear(b);
    assert_int_equal(kv_batch_count(b), 0);
    /* A key over the handle's (lower) limit is caught at execution. */
    char key[KV_DEFAULT_MAX_KEY_SIZE + 1];
    memset(key, 'k', sizeof key);
    assert_int_equal(kv_batch_put(b, key, sizeof key, "v", 1, 0), KV_OK);
    assert_int_equal(kv_batch_execute(db, b, NULL, NULL), KV_ETOOBIG);
    assert_int_equal(kv_batch_execute(NULL, b, NULL, NULL), KV_EINVAL);
    kv_batch_free(b);
}

static void batch_ttl_applies_per_operation(void **state)
{
    kv *db = DB(state);
    kv_batch *b;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    kv_batch_put(b, "ttl", 3, "x", 1, 3600);
    kv_batch_put(b, "plain", 5, "y", 1, 0);
    assert_int_equal(kv_batch_execute(db, b, NULL, NULL), KV_OK);
    kv_batch_free(b);
    kv_value *val;
    assert_int_equal(kv_get(&val, db, "ttl", 3, NULL), KV_OK);
    assert_true(kv_value_expiry_ms(val) > 0);
    kv_value_free(val);
    assert_int_equal(kv_get(&val, db, "plain", 5, NULL), KV_OK);
    assert_int_equal(kv_value_expiry_ms(val), 0);
    kv_value_free(val);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_open, fixture_close)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(results_in_order),
        T(later_operations_see_earlier_ones),
        T(one_bad_operation_applies_nothing),
        T(builder_rejects_bad_input),
        T(batch_ttl_applies_per_operation),
    };
    return cmocka_run_group_tests_name("api.batch", tests, NULL, NULL);
}
