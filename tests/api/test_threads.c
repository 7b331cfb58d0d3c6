/* Handles shared between threads: batches are atomic against concurrent
 * batches, the error detail is per thread, and plain puts from many threads
 * lose nothing. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "api/fixture.h"

#define WRITERS 3
#define READERS 3
#define ROUNDS 500

typedef struct worker {
    kv *db;
    int id;
    int torn;   /* reader: batches that saw a and b from different writes */
    int errors;
} worker;

/* Writers set both keys to the same value in one batch. */
static void *write_pairs(void *arg)
{
    worker *w = arg;
    kv_batch *b;
    if (kv_batch_new(&b) != KV_OK) {
        w->errors++;
        return NULL;
    }
    for (int i = 0; i < ROUNDS; i++) {
        char value[32];
        int len = snprintf(value, sizeof value, "w%d-%d", w->id, i);
        kv_batch_clear(b);
        kv_batch_put(b, "pair-a", 6, value, (size_t)len, 0);
        kv_batch_put(b, "pair-b", 6, value, (size_t)len, 0);
        if (kv_batch_execute(w->db, b, NULL, NULL) != KV_OK)
            w->errors++;
    }
    kv_batch_free(b);
    return NULL;
}

/* Readers get both keys in one batch: they must always match. */
static void *read_pairs(void *arg)
{
    worker *w = arg;
    kv_batch *b;
    if (kv_batch_new(&b) != KV_OK) {
        w->errors++;
        return NULL;
    }
    kv_batch_get(b, "pair-a", 6);
    kv_batch_get(b, "pair-b", 6);
    for (int i = 0; i < ROUNDS; i++) {
        if (kv_batch_execute(w->db, b, NULL, NULL) != KV_OK) {
            w->errors++;
            continue;
        }
        const kv_value *a, *bv;
        int ra = kv_batch_result(&a, NULL, b, 0), rb = kv_batch_result(&bv, NULL, b, 1);
        if (ra != rb) {
            w->torn++;
        } else if (ra == KV_OK) {
            size_t la, lb;
            const void *da = kv_value_data(a, &la), *db = kv_value_data(bv, &lb);
            if (la != lb || memcmp(da, db, la) != 0 ||
                kv_value_version(a) != kv_value_version(bv))
                w->torn++;
        }
    }
    kv_batch_free(b);
    return NULL;
}

static void batches_never_interleave(void **state)
{
    kv *db = DB(state);
    worker workers[WRITERS + READERS];
    pthread_t threads[WRITERS + READERS];
    for (int i = 0; i < WRITERS + READERS; i++) {
        workers[i] = (worker){db, i, 0, 0};
        assert_int_equal(pthread_create(&threads[i], NULL,
                                        i < WRITERS ? write_pairs : read_pairs,
                                        &workers[i]), 0);
    }
    for (int i = 0; i < WRITERS + READERS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(workers[i].errors, 0);
        assert_int_equal(workers[i].torn, 0);
    }
    kv_value *a;
    assert_int_equal(kv_get(&a, db, "pair-a", 6, NULL), KV_OK);
    assert_int_equal(kv_value_version(a), WRITERS * ROUNDS);
    kv_value_free(a);
}

#define PUTTERS 4
#define PUTS 500

static void *put_distinct_keys(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < PUTS; i++) {
        char key[32];
        int len = snprintf(key, sizeof key, "t%d-k%d", w->id, i);
        if (kv_put(NULL, w->db, key, (size_t)len, key, (size_t)len, NULL) != KV_OK)
            w->errors++;
    }
    return NULL;
}

static void concurrent_puts_lose_nothing(void **state)
{
    kv *db = DB(state);
    worker workers[PUTTERS];
    pthread_t threads[PUTTERS];
    for (int i = 0; i < PUTTERS; i++) {
        workers[i] = (worker){db, i, 0, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, put_distinct_keys, &workers[i]), 0);
    }
    for (int i = 0; i < PUTTERS; i++) {
        pthread_join(threads[i], NULL);
        assert_int_equal(workers[i].errors, 0);
    }
    for (int t = 0; t < PUTTERS; t++) {
        for (int i = 0; i < PUTS; i++) {
            char key[32];
            int len = snprintf(key, sizeof key, "t%d-k%d", t, i);
            kv_value *v;
            assert_int_equal(kv_get(&v, db, key, (size_t)len, NULL), KV_OK);
            size_t vl;
            const void *data = kv_value_data(v, &vl);
            assert_int_equal(vl, (size_t)len);
            assert_memory_equal(data, key, vl);
            kv_value_free(v);
        }
    }
}

typedef struct error_probe {
    kv *db;
    int code;
    char message[512];
} error_probe;

static void *fail_once(void *arg)
{
    error_probe *p = arg;
    p->code = kv_put(NULL, p->db, "", 0, "v", 1, NULL);
    snprintf(p->message, sizeof p->message, "%s", kv_error_last());
    return NULL;
}

static void error_detail_is_per_thread(void **state)
{
    kv *db = DB(state);
    char big[KV_DEFAULT_MAX_KEY_SIZE + 1] = {0};
    assert_int_equal(kv_put(NULL, db, big, sizeof big, "v", 1, NULL), KV_ETOOBIG);
    char mine[512];
    snprintf(mine, sizeof mine, "%s", kv_error_last());
    error_probe p = {db, 0, ""};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, fail_once, &p), 0);
    pthread_join(t, NULL);
    assert_int_equal(p.code, KV_EINVAL);
    assert_non_null(strstr(p.message, "empty"));
    /* This thread's message is still its own. */
    assert_string_equal(kv_error_last(), mine);
    assert_non_null(strstr(mine, "limit"));
}

static int open_unsynced(void **state)
{
    kv_open_options o = KV_OPEN_OPTIONS_INIT;
    o.sync = KV_SYNC_NONE;
    return fixture_open_with(state, &o);
}

static int open_periodic(void **state)
{
    kv_open_options o = KV_OPEN_OPTIONS_INIT;
    o.sync = KV_SYNC_PERIODIC;
    o.sync_interval_ms = 5;
    return fixture_open_with(state, &o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(batches_never_interleave, open_unsynced, fixture_close),
        cmocka_unit_test_setup_teardown(concurrent_puts_lose_nothing, open_periodic, fixture_close),
        cmocka_unit_test_setup_teardown(error_detail_is_per_thread, fixture_open, fixture_close),
    };
    return cmocka_run_group_tests_name("api.threads", tests, NULL, NULL);
}
