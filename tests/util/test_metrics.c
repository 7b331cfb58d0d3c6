/* util/metrics: the slow-request window (counted, the slowest kept, taken
 * and restarted) and its counter in the Prometheus text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <stdlib.h>

#include <cJSON.h>
#include <kv/common.h>

#include "util/metrics.h"

static void slow_requests_are_counted_and_taken(void **state)
{
    (void)state;
    kvi_metrics *m = kvi_metrics_new();
    assert_non_null(m);
    kvi_slow_window w;
    /* No threshold: nothing is slow. */
    kvi_metrics_record(m, KVI_PROTO_BINARY, KVI_MOP_GET, KVI_LEVEL_ONE, 0, 10000000000ull);
    kvi_metrics_take_slow(m, &w);
    assert_int_equal(w.count, 0);

    kvi_metrics_set_slow(m, 1000000); /* 1 ms */
    kvi_metrics_record(m, KVI_PROTO_BINARY, KVI_MOP_GET, KVI_LEVEL_ONE, 0, 999999);   /* under */
    kvi_metrics_record(m, KVI_PROTO_BINARY, KVI_MOP_PUT, KVI_LEVEL_QUORUM, 0, 1000000);  /* at */
    kvi_metrics_record(m, KVI_PROTO_HTTP, KVI_MOP_CAS, KVI_LEVEL_SERIAL, 0, 7000000);    /* slowest */
    kvi_metrics_record(m, KVI_PROTO_BINARY, KVI_MOP_BATCH, KVI_LEVEL_QUORUM, 0, 2000000);
    kvi_metrics_take_slow(m, &w);
    assert_int_equal(w.count, 3);
    assert_int_equal(w.slowest_ns, 7000000);
    assert_string_equal(w.slowest_op, "cas");
    assert_string_equal(w.slowest_proto, "http");
    /* Taken: the window starts again; the total does not. */
    kvi_metrics_take_slow(m, &w);
    assert_int_equal(w.count, 0);
    assert_int_equal(w.slowest_ns, 0);
    kvi_metrics_record(m, KVI_PROTO_BINARY, KVI_MOP_DELETE, KVI_LEVEL_ALL, 0, 3000000);
    kvi_metrics_take_slow(m, &w);
    assert_int_equal(w.count, 1);
    assert_string_equal(w.slowest_op, "delete");

    kvi_buf b = {0};
    kvi_metrics_render(m, &b);
    kvi_buf_u8(&b, 0);
    assert_false(b.failed);
    assert_non_null(strstr((const char *)b.data, "\nkv_slow_requests_total 4\n"));
    assert_non_null(strstr((const char *)b.data, "# TYPE kv_slow_requests_total counter\n"));
    kvi_buf_free(&b);
    kvi_metrics_free(m);
}

static const char *render(kvi_metrics *m, kvi_buf *b)
{
    kvi_buf_reset(b);
    kvi_metrics_render(m, b);
    kvi_buf_u8(b, 0);
    assert_false(b->failed);
    return (const char *)b->data;
}

/* The value of the line that starts with `prefix` (-1: no such line). */
static double line_value(const char *text, const char *prefix)
{
    const char *p = strstr(text, prefix);
    return p ? strtod(p + strlen(prefix), NULL) : -1;
}

static void latencies_by_operation_and_level(void **state)
{
    (void)state;
    assert_int_equal(kvi_metric_level_of(KV_CONSISTENCY_DEFAULT), KVI_LEVEL_QUORUM);
    assert_int_equal(kvi_metric_level_of(KV_CONSISTENCY_ONE), KVI_LEVEL_ONE);
    assert_int_equal(kvi_metric_level_of(KV_CONSISTENCY_ALL), KVI_LEVEL_ALL);
    assert_int_equal(kvi_metric_level_of(KV_CONSISTENCY_SERIAL), KVI_LEVEL_SERIAL);
    assert_int_equal(kvi_metric_level_of(KV_CONSISTENCY_EXPLICIT), KVI_LEVEL_EXPLICIT);
    assert_int_equal(kvi_metric_level_of(99), KVI_LEVEL_NONE);

    /* Ten bounds a decade, 1 us to 10 s, each at most 1.34x the last: fine
     * enough for a p999. */
    const uint64_t *bounds;
    size_t n = kvi_metrics_bounds(&bounds);
    assert_int_equal(n, 71);
    assert_int_equal(bounds[0], 1000);
    assert_int_equal(bounds[n - 1], 10000000000ull);
    for (size_t i = 1; i < n; i++) {
        assert_true(bounds[i] > bounds[i - 1]);
        assert_true(bounds[i] * 3 <= bounds[i - 1] * 4);
    }

    kvi_metrics *m = kvi_metrics_new();
    assert_non_null(m);
    /* 1,000 reads at ONE taking 10 us, 20 us, ... 10 ms; one write at ALL
     * slower than the last bound. */
    for (uint64_t i = 1; i <= 1000; i++)
        kvi_metrics_record(m, KVI_PROTO_BINARY, KVI_MOP_GET, KVI_LEVEL_ONE, KV_OK, i * 10000);
    kvi_metrics_record(m, KVI_PROTO_HTTP, KVI_MOP_PUT, KVI_LEVEL_ALL, KV_OK, 20000000000ull);
    kvi_buf b = {0};
    const char *text = render(m, &b);
    const char *get = "kv_request_duration_seconds_bucket{proto=\"binary\",op=\"get\",level=\"one\",";
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%sle=\"0.001\"} ", get);
    assert_true(line_value(text, prefix) == 100); /* 10 us .. 1 ms */
    snprintf(prefix, sizeof prefix, "%sle=\"0.0025\"} ", get);
    assert_true(line_value(text, prefix) == 250);
    snprintf(prefix, sizeof prefix, "%sle=\"+Inf\"} ", get);
    assert_true(line_value(text, prefix) == 1000);
    assert_true(line_value(text, "kv_request_duration_seconds_count{proto=\"binary\",op=\"get\","
                                 "level=\"one\"} ") == 1000);
    assert_true(line_value(text, "kv_request_duration_seconds_sum{proto=\"binary\",op=\"get\","
                                 "level=\"one\"} ") > 5.004);
    /* Past the last bound: only +Inf holds it. */
    assert_true(line_value(text, "kv_request_duration_seconds_bucket{proto=\"http\",op=\"put\","
                                 "level=\"all\",le=\"10\"} ") == 0);
    assert_true(line_value(text, "kv_request_duration_seconds_bucket{proto=\"http\",op=\"put\","
                                 "level=\"all\",le=\"+Inf\"} ") == 1);
    /* Series that served nothing are left out; the counters are not. */
    assert_null(strstr(text, "level=\"quorum\""));
    assert_true(line_value(text, "kv_requests_total{proto=\"binary\",op=\"get\",outcome=\"ok\"} ") ==
                1000);
    assert_true(line_value(text, "kv_requests_total{proto=\"binary\",op=\"put\",outcome=\"ok\"} ") == 0);

    /* The same figures as JSON, for kvctl stats. */
    kvi_buf_reset(&b);
    kvi_metrics_render_json(m, &b);
    kvi_buf_u8(&b, 0);
    cJSON *root = cJSON_Parse((const char *)b.data);
    assert_non_null(root);
    assert_true(cJSON_IsNumber(cJSON_GetObjectItem(root, "atMs")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "boundsUs")), 71);
    cJSON *series = cJSON_GetObjectItem(root, "series");
    assert_int_equal(cJSON_GetArraySize(series), 2);
    cJSON *s0 = cJSON_GetArrayItem(series, 0);
    assert_string_equal(cJSON_GetObjectItem(s0, "op")->valuestring, "get");
    assert_string_equal(cJSON_GetObjectItem(s0, "level")->valuestring, "one");
    assert_int_equal(cJSON_GetObjectItem(s0, "count")->valueint, 1000);
    int total = 0;
    cJSON *bucket;
    cJSON_ArrayForEach(bucket, cJSON_GetObjectItem(s0, "buckets"))
        total += cJSON_GetArrayItem(bucket, 1)->valueint;
    assert_int_equal(total, 1000);
    cJSON *s1 = cJSON_GetArrayItem(series, 1);
    cJSON *only = cJSON_GetArrayItem(cJSON_GetObjectItem(s1, "buckets"), 0);
    assert_int_equal(cJSON_GetArrayItem(only, 0)->valueint, 71); /* +Inf */
    cJSON_Delete(root);
    kvi_buf_free(&b);
    kvi_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slow_requests_are_counted_and_taken),
        cmocka_unit_test(latencies_by_operation_and_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
