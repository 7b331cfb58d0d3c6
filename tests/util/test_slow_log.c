/* util/slow_log: one line per slow request, its key hashed, its replicas'
 * times, at most SLOW_LOG_LINES_PER_S a second. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <cJSON.h>

#include "util/slow_log.h"

typedef struct captured {
    unsigned n;
    char last[2048];
    kv_log_level level;
} captured;

static void capture(kv_log_level level, const char *message, void *ctx)
{
    captured *c = ctx;
    c->n++;
    c->level = level;
    snprintf(c->last, sizeof c->last, "%s", message);
}

#define MS 1000000ull

static void a_slow_request_is_one_json_line(void **state)
{
    (void)state;
    captured c = {0};
    kvi_logger log = {capture, &c, KV_LOG_DEBUG};
    kvi_slow_log s;
    kvi_slow_log_init(&s, 100, &log);
    assert_false(kvi_slow_log_is_slow(&s, 5 * MS, 104 * MS));
    assert_true(kvi_slow_log_is_slow(&s, 5 * MS, 105 * MS));
    assert_false(kvi_slow_log_is_slow(NULL, 0, 1000 * MS));

    const char *key = "user:alice@example.com";
    kvi_slow_replica r[] = {{"n2", 10 * MS, 12 * MS, 0},
                            {"n3", 10 * MS, 0, 0},
                            {"n4", 10 * MS, 510 * MS, KV_ETIMEDOUT}};
    kvi_slow_log_write(&s, "put", "all", key, strlen(key), 5 * MS, 605 * MS, r, 3);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.level, KV_LOG_WARN);
    assert_null(strstr(c.last, "alice")); /* the key never appears */
    cJSON *j = cJSON_Parse(c.last);
    assert_non_null(j);
    assert_string_equal(cJSON_GetObjectItem(j, "event")->valuestring, "slow_request");
    assert_string_equal(cJSON_GetObjectItem(j, "op")->valuestring, "put");
    assert_string_equal(cJSON_GetObjectItem(j, "consistency")->valuestring, "all");
    assert_true(cJSON_GetObjectItem(j, "ms")->valuedouble == 600.0);
    const char *hash = cJSON_GetObjectItem(j, "keyHash")->valuestring;
    assert_int_equal(strlen(hash), 16);
    assert_int_equal(strspn(hash, "0123456789abcdef"), 16);
    cJSON *reps = cJSON_GetObjectItem(j, "replicas");
    assert_int_equal(cJSON_GetArraySize(reps), 3);
    cJSON *n2 = cJSON_GetArrayItem(reps, 0), *n3 = cJSON_GetArrayItem(reps, 1),
          *n4 = cJSON_GetArrayItem(reps, 2);
    assert_string_equal(cJSON_GetObjectItem(n2, "node")->valuestring, "n2");
    assert_true(cJSON_GetObjectItem(n2, "ms")->valuedouble == 2.0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(n3, "pending")));
    assert_true(cJSON_GetObjectItem(n4, "ms")->valuedouble == 500.0);
    assert_non_null(cJSON_GetObjectItem(n4, "error"));

    /* The same key, the same hash; another key, another. */
    char first[17];
    snprintf(first, sizeof first, "%s", hash);
    cJSON_Delete(j);
    kvi_slow_log_write(&s, "get", "one", key, strlen(key), 5 * MS, 605 * MS, NULL, 0);
    j = cJSON_Parse(c.last);
    assert_string_equal(cJSON_GetObjectItem(j, "keyHash")->valuestring, first);
    cJSON_Delete(j);
    kvi_slow_log_write(&s, "get", "one", "other", 5, 5 * MS, 605 * MS, NULL, 0);
    j = cJSON_Parse(c.last);
    assert_string_not_equal(cJSON_GetObjectItem(j, "keyHash")->valuestring, first);
    cJSON_Delete(j);
}

/* Ten lines a second at most, whatever the load; the next second has its
 * own ten. */
static void lines_are_rationed_by_the_second(void **state)
{
    (void)state;
    captured c = {0};
    kvi_logger log = {capture, &c, KV_LOG_DEBUG};
    kvi_slow_log s;
    kvi_slow_log_init(&s, 1, &log);
    uint64_t second = 7000 * MS;
    for (unsigned i = 0; i < 50; i++)
        kvi_slow_log_write(&s, "get", "one", "k", 1, second, second + 500 * MS, NULL, 0);
    assert_int_equal(c.n, SLOW_LOG_LINES_PER_S);
    for (unsigned i = 0; i < 50; i++)
        kvi_slow_log_write(&s, "get", "one", "k", 1, second, second + 1500 * MS, NULL, 0);
    assert_int_equal(c.n, 2 * SLOW_LOG_LINES_PER_S);
}

/* Many replicas with the longest ids: the line stays whole JSON and says
 * how many it left out. */
static void a_long_line_stays_json(void **state)
{
    (void)state;
    captured c = {0};
    kvi_logger log = {capture, &c, KV_LOG_DEBUG};
    kvi_slow_log s;
    kvi_slow_log_init(&s, 1, &log);
    char id[65];
    memset(id, 'x', 64);
    id[64] = 0;
    kvi_slow_replica r[16];
    for (int i = 0; i < 16; i++)
        r[i] = (kvi_slow_replica){id, 1, 2 * MS, KV_EUNAVAILABLE};
    kvi_slow_log_write(&s, "put", "quorum", "k", 1, 0, 900 * MS, r, 16);
    cJSON *j = cJSON_Parse(c.last);
    assert_non_null(j);
    int shown = cJSON_GetArraySize(cJSON_GetObjectItem(j, "replicas"));
    cJSON *more = cJSON_GetObjectItem(j, "replicasNotShown");
    assert_true(shown > 0);
    assert_non_null(more);
    assert_int_equal(shown + more->valueint, 16);
    cJSON_Delete(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_slow_request_is_one_json_line),
        cmocka_unit_test(lines_are_rationed_by_the_second),
        cmocka_unit_test(a_long_line_stays_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
