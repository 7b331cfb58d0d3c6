/* util/metrics: the slow-request window (counted, the slowest kept, taken
 * and restarted) and its counter in the Prometheus text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "util/metrics.h"

static void slow_requests_are_counted_and_taken(void **state)
{
    (void)state;
    kvi_metrics *m = kvi_metrics_new();
    assert_non_null(m);
    kvi_slow_window w;
    /* No threshold: nothing is slow. */
    kvi_metrics_record(m, KVI_PROTO_BINARY, KVI_MOP_GET, 0, 10000000000ull);
    kvi_metrics_take_slow(m, &w);
    assert_int_equal(w.count, 0);

    kvi_metrics_set_slow(m, 1000000); /* 1 ms */
    kvi_metrics_record(m, KVI_PROTO_BINARY, KVI_MOP_GET, 0, 999999);   /* under */
    kvi_metrics_record(m, KVI_PROTO_BINARY, KVI_MOP_PUT, 0, 1000000);  /* at */
    kvi_metrics_record(m, KVI_PROTO_HTTP, KVI_MOP_CAS, 0, 7000000);    /* slowest */
    kvi_metrics_record(m, KVI_PROTO_BINARY, KVI_MOP_BATCH, 0, 2000000);
    kvi_metrics_take_slow(m, &w);
    assert_int_equal(w.count, 3);
    assert_int_equal(w.slowest_ns, 7000000);
    assert_string_equal(w.slowest_op, "cas");
    assert_string_equal(w.slowest_proto, "http");
    /* Taken: the window starts again; the total does not. */
    kvi_metrics_take_slow(m, &w);
    assert_int_equal(w.count, 0);
    assert_int_equal(w.slowest_ns, 0);
    kvi_metrics_record(m, KVI_PROTO_BINARY, KVI_MOP_DELETE, 0, 3000000);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slow_requests_are_counted_and_taken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
