/* Replica counts per consistency level and the outcome of short writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cluster/quorum.h"

static unsigned required(kv_consistency level, unsigned explicit_count, unsigned n)
{
    unsigned out = 999;
    assert_int_equal(kvi_quorum_required(&out, level, explicit_count, n), KV_OK);
    return out;
}

static void levels(void **state)
{
    (void)state;
    assert_int_equal(required(KV_CONSISTENCY_ONE, 0, 3), 1);
    assert_int_equal(required(KV_CONSISTENCY_QUORUM, 0, 3), 2);
    assert_int_equal(required(KV_CONSISTENCY_DEFAULT, 0, 3), 2);
    assert_int_equal(required(KV_CONSISTENCY_ALL, 0, 3), 3);
    assert_int_equal(required(KV_CONSISTENCY_QUORUM, 0, 1), 1);
    assert_int_equal(required(KV_CONSISTENCY_QUORUM, 0, 4), 3);
    assert_int_equal(required(KV_CONSISTENCY_QUORUM, 0, 5), 3);
    assert_int_equal(required(KV_CONSISTENCY_EXPLICIT, 2, 3), 2);
    /* R + W > N at QUORUM for every N: reads see acknowledged writes. */
    for (unsigned n = 1; n <= 16; n++)
        assert_true(2 * required(KV_CONSISTENCY_QUORUM, 0, n) > n);
    unsigned out;
    assert_int_equal(kvi_quorum_required(&out, KV_CONSISTENCY_EXPLICIT, 0, 3), KV_EINVAL);
    assert_int_equal(kvi_quorum_required(&out, KV_CONSISTENCY_EXPLICIT, 4, 3), KV_EINVAL);
    assert_int_equal(kvi_quorum_required(&out, (kv_consistency)9, 0, 3), KV_EINVAL);
    assert_int_equal(kvi_quorum_required(&out, KV_CONSISTENCY_ONE, 0, 0), KV_EINVAL);
}

static void short_writes(void **state)
{
    (void)state;
    assert_int_equal(kvi_quorum_write_outcome(2, 0, 2), KV_OK);
    assert_int_equal(kvi_quorum_write_outcome(3, 0, 2), KV_OK);
    /* Nobody has it: known not applied. */
    assert_int_equal(kvi_quorum_write_outcome(0, 0, 2), KV_EUNAVAILABLE);
    /* One replica applied it, or may have: never "not applied". */
    assert_int_equal(kvi_quorum_write_outcome(1, 0, 2), KV_EUNKNOWN_OUTCOME);
    assert_int_equal(kvi_quorum_write_outcome(0, 1, 2), KV_EUNKNOWN_OUTCOME);
    assert_int_equal(kvi_quorum_write_outcome(2, 1, 3), KV_EUNKNOWN_OUTCOME);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(levels),
        cmocka_unit_test(short_writes),
    };
    return cmocka_run_group_tests_name("cluster.quorum", tests, NULL, NULL);
}
