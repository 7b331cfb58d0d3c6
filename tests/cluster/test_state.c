/* A key's replicated state: writes with and without context, scalar
 * versions, the sibling limit, replica merges, and the record encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <kv/common.h>
#include "format/state.h"

static kvi_sibling value_of(const char *text)
{
    kvi_sibling v;
    memset(&v, 0, sizeof v);
    v.value = (const unsigned char *)text;
    v.value_len = strlen(text);
    v.write_ms = 1000;
    return v;
}

static int holds(const kvi_state *s, const char *text)
{
    for (size_t i = 0; i < s->n; i++)
        if (!s->sibs[i].tombstone && s->sibs[i].value_len == strlen(text) &&
            memcmp(s->sibs[i].value, text, s->sibs[i].value_len) == 0)
            return 1;
    return 0;
}

static void versions_follow_causality(void **state)
{
    (void)state;
    kvi_state s;
    kvi_state_init(&s);
    kvi_sibling v = value_of("a");
    assert_int_equal(kvi_state_write(&s, &s.clock, "n1", &v), KV_OK);
    assert_int_equal(v.version, 1);
    kvi_vv ctx = s.clock;
    v = value_of("b");
    assert_int_equal(kvi_state_write(&s, &ctx, "n2", &v), KV_OK);
    assert_int_equal(v.version, 2);
    assert_int_equal(s.n, 1);
    assert_int_equal(kvi_state_version(&s), 2);
    /* Two writers from the same context: both survive as siblings, and the
     * number keeps growing on this replica. */
    ctx = s.clock;
    kvi_sibling x = value_of("x"), y = value_of("y");
    assert_int_equal(kvi_state_write(&s, &ctx, "n1", &x), KV_OK);
    assert_int_equal(kvi_state_write(&s, &ctx, "n1", &y), KV_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(x.version, 3);
    assert_int_equal(y.version, 4);
    assert_true(holds(&s, "x") && holds(&s, "y"));
    /* Resolving both goes one past what it saw. */
    ctx = s.clock;
    kvi_sibling z = value_of("z");
    assert_int_equal(kvi_state_write(&s, &ctx, "n3", &z), KV_OK);
    assert_int_equal(z.version, 5);
    assert_int_equal(s.n, 1);
    /* A blind write supersedes nothing. */
    kvi_sibling blind = value_of("blind");
    assert_int_equal(kvi_state_write(&s, NULL, "n1", &blind), KV_OK);
    assert_int_equal(blind.version, 6);
    assert_int_equal(s.n, 2);
    /* Concurrent writes on two replicas may share a number; merged, the
     * state reports the highest. */
    kvi_state r1 = s, r2 = s;
    ctx = s.clock;
    kvi_sibling p = value_of("p"), q = value_of("q");
    assert_int_equal(kvi_state_write(&r1, &ctx, "n1", &p), KV_OK);
    assert_int_equal(kvi_state_write(&r2, &ctx, "n2", &q), KV_OK);
    assert_int_equal(p.version, 7);
    assert_int_equal(q.version, 7);
    assert_int_equal(kvi_state_merge(&r1, &r2), KV_OK);
    assert_int_equal(r1.n, 2);
    assert_int_equal(kvi_state_version(&r1), 7);
}

static void sibling_limit_is_a_clear_error(void **state)
{
    (void)state;
    kvi_state s;
    kvi_state_init(&s);
    for (unsigned i = 0; i < KVI_STATE_MAX_SIBLINGS; i++) {
        kvi_sibling v = value_of("same");
        assert_int_equal(kvi_state_write(&s, NULL, "n1", &v), KV_OK);
    }
    kvi_state before = s;
    kvi_sibling v = value_of("one-too-many");
    assert_int_equal(kvi_state_write(&s, NULL, "n1", &v), KV_ETOOBIG);
    assert_non_null(strstr(kv_error_last(), "concurrent values"));
    assert_true(kvi_state_equal(&s, &before));
    /* Writing with the context resolves them all. */
    kvi_vv ctx = s.clock;
    assert_int_equal(kvi_state_write(&s, &ctx, "n1", &v), KV_OK);
    assert_int_equal(s.n, 1);
}

static void replicas_converge(void **state)
{
    (void)state;
    kvi_state a, b;
    kvi_state_init(&a);
    kvi_sibling base = value_of("base");
    assert_int_equal(kvi_state_write(&a, NULL, "n1", &base), KV_OK);
    b = a;
    kvi_vv ctx = a.clock;
    kvi_sibling left = value_of("left"), right = value_of("right");
    assert_int_equal(kvi_state_write(&a, &ctx, "n1", &left), KV_OK);
    assert_int_equal(kvi_state_write(&b, &ctx, "n2", &right), KV_OK);
    kvi_state ab = a, ba = b;
    assert_int_equal(kvi_state_merge(&ab, &b), KV_OK);
    assert_int_equal(kvi_state_merge(&ba, &a), KV_OK);
    assert_true(kvi_state_equal(&ab, &ba));
    assert_int_equal(ab.n, 2);
    assert_true(holds(&ab, "left") && holds(&ab, "right") && !holds(&ab, "base"));
    kvi_state again = ab;
    assert_int_equal(kvi_state_merge(&again, &ba), KV_OK);
    assert_true(kvi_state_equal(&again, &ab));
    /* A stale replica takes a newer state whole. */
    kvi_state stale = a;
    kvi_state fresh = ab;
    kvi_vv c = fresh.clock;
    kvi_sibling newest = value_of("newest");
    assert_int_equal(kvi_state_write(&fresh, &c, "n3", &newest), KV_OK);
    assert_int_equal(kvi_state_merge(&stale, &fresh), KV_OK);
    assert_true(kvi_state_equal(&stale, &fresh));
}

static void encoding_round_trips_and_catches_damage(void **state)
{
    (void)state;
    kvi_state s;
    kvi_state_init(&s);
    kvi_sibling v = value_of("hello\0world");
    v.value_len = 11;
    v.expiry_ms = 99;
    assert_int_equal(kvi_state_write(&s, NULL, "node-a", &v), KV_OK);
    kvi_sibling t = value_of("");
    t.tombstone = 1;
    assert_int_equal(kvi_state_write(&s, NULL, "node-b", &t), KV_OK);
    kvi_buf b = {0};
    kvi_state_encode(&b, &s, 42);
    kvi_state out;
    assert_int_equal(kvi_state_decode(&out, b.data, b.len, 42), KV_OK);
    assert_true(kvi_state_equal(&out, &s));
    assert_int_equal(out.sibs[0].value_len, 11);
    assert_memory_equal(out.sibs[0].value, "hello\0world", 11);
    assert_int_equal(out.sibs[0].expiry_ms, 99);
    assert_true(out.sibs[1].tombstone);
    /* Another key's token, every truncation, every flipped byte. */
    assert_int_equal(kvi_state_decode(&out, b.data, b.len, 43), KV_ECORRUPT);
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(kvi_state_decode(&out, b.data, cut, 42), KV_ECORRUPT);
    for (size_t i = 0; i < b.len; i++) {
        b.data[i] ^= 0x10;
        assert_int_equal(kvi_state_decode(&out, b.data, b.len, 42), KV_ECORRUPT);
        b.data[i] ^= 0x10;
    }
    kvi_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(versions_follow_causality),
        cmocka_unit_test(sibling_limit_is_a_clear_error),
        cmocka_unit_test(replicas_converge),
        cmocka_unit_test(encoding_round_trips_and_catches_damage),
    };
    return cmocka_run_group_tests_name("cluster.state", tests, NULL, NULL);
}
