/* Dotted version vectors: ordering, merging, the stale-context scenario
 * that plain per-server clocks get wrong, replica merges, and encoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "format/dvv.h"

static void vv_of(kvi_vv *vv, const char *a, uint64_t ca, const char *b, uint64_t cb)
{
    kvi_vv_init(vv);
    if (a)
        assert_int_equal(kvi_vv_raise(vv, a, ca), 0);
    if (b)
        assert_int_equal(kvi_vv_raise(vv, b, cb), 0);
}

static void ordering(void **state)
{
    (void)state;
    kvi_vv a, b;
    vv_of(&a, "n1", 1, NULL, 0);
    vv_of(&b, "n1", 1, NULL, 0);
    assert_int_equal(kvi_vv_compare(&a, &b), KVI_VV_EQUAL);
    vv_of(&b, "n1", 2, NULL, 0);
    assert_int_equal(kvi_vv_compare(&a, &b), KVI_VV_BEFORE);
    assert_int_equal(kvi_vv_compare(&b, &a), KVI_VV_AFTER);
    vv_of(&a, "n1", 1, "n2", 1);
    assert_int_equal(kvi_vv_compare(&a, &b), KVI_VV_CONCURRENT);
    kvi_vv empty;
    kvi_vv_init(&empty);
    assert_int_equal(kvi_vv_compare(&empty, &a), KVI_VV_BEFORE);
    assert_int_equal(kvi_vv_compare(&empty, &empty), KVI_VV_EQUAL);
    /* Merge is the pointwise maximum, and dominates both sides. */
    assert_int_equal(kvi_vv_merge(&a, &b), 0);
    assert_int_equal(kvi_vv_get(&a, "n1"), 2);
    assert_int_equal(kvi_vv_get(&a, "n2"), 1);
    assert_int_equal(kvi_vv_get(&a, "n9"), 0);
    assert_int_equal(kvi_vv_compare(&a, &b), KVI_VV_AFTER);
}

/* A sibling: its dot and a value name. */
typedef struct sib {
    kvi_dot dot;
    const char *value;
} sib;

typedef struct key_state {
    kvi_vv clock;
    sib sibs[8];
    size_t n;
} key_state;

/* What a coordinator does for a write with context ctx. */
static void write(key_state *k, const kvi_vv *ctx, const char *node, const char *value)
{
    size_t kept = 0;
    for (size_t i = 0; i < k->n; i++)
        if (!kvi_dvv_superseded(ctx, &k->sibs[i].dot))
            k->sibs[kept++] = k->sibs[i];
    k->n = kept;
    kvi_dot dot;
    assert_int_equal(kvi_dvv_new_dot(&k->clock, ctx, node, &dot), 0);
    k->sibs[k->n++] = (sib){dot, value};
}

static int holds(const key_state *k, const char *value)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->sibs[i].value, value) == 0)
            return 1;
    return 0;
}

static void stale_contexts_through_one_coordinator_make_siblings(void **state)
{
    (void)state;
    key_state k = {0};
    kvi_vv none;
    kvi_vv_init(&none);
    write(&k, &none, "n1", "v0");
    kvi_vv seen = k.clock; /* both clients read v0 and got this context */
    write(&k, &seen, "n1", "from-alice");
    write(&k, &seen, "n1", "from-bob");
    /* Neither saw the other: both survive (a per-server clock would have
     * let bob's write silently replace alice's). */
    assert_int_equal(k.n, 2);
    assert_true(holds(&k, "from-alice") && holds(&k, "from-bob"));
    /* A write carrying the context of a read of both resolves them. */
    kvi_vv both = k.clock;
    write(&k, &both, "n2", "resolved");
    assert_int_equal(k.n, 1);
    assert_true(holds(&k, "resolved"));
    /* A blind write (no context) is concurrent with everything. */
    write(&k, &none, "n1", "blind");
    assert_int_equal(k.n, 2);
}

/* Merges replica b into a, as anti-entropy or read repair would. */
static void merge(key_state *a, const key_state *b)
{
    key_state out = {0};
    out.clock = a->clock;
    assert_int_equal(kvi_vv_merge(&out.clock, &b->clock), 0);
    kvi_dot bd[8], ad[8];
    for (size_t i = 0; i < b->n; i++)
        bd[i] = b->sibs[i].dot;
    for (size_t i = 0; i < a->n; i++)
        ad[i] = a->sibs[i].dot;
    for (size_t i = 0; i < a->n; i++)
        if (kvi_dvv_survives_merge(&a->sibs[i].dot, &b->clock, bd, b->n))
            out.sibs[out.n++] = a->sibs[i];
    for (size_t i = 0; i < b->n; i++) {
        int dup = 0;
        for (size_t j = 0; j < a->n; j++)
            dup |= kvi_dot_equal(&ad[j], &b->sibs[i].dot);
        if (!dup && kvi_dvv_survives_merge(&b->sibs[i].dot, &a->clock, ad, a->n))
            out.sibs[out.n++] = b->sibs[i];
    }
    *a = out;
}

static void replicas_merge_to_the_same_state(void **state)
{
    (void)state;
    kvi_vv none;
    kvi_vv_init(&none);
    key_state r1 = {0}, r2 = {0};
    write(&r1, &none, "n1", "base");
    r2 = r1; /* replicated */
    kvi_vv ctx = r1.clock;
    write(&r1, &ctx, "n1", "left");   /* partitioned: each side writes */
    write(&r2, &ctx, "n2", "right");
    key_state m1 = r1, m2 = r2;
    merge(&m1, &r2);
    merge(&m2, &r1);
    /* Both sides keep both writes and drop the superseded base... */
    assert_int_equal(m1.n, 2);
    assert_true(holds(&m1, "left") && holds(&m1, "right") && !holds(&m1, "base"));
    assert_int_equal(m2.n, 2);
    assert_int_equal(kvi_vv_compare(&m1.clock, &m2.clock), KVI_VV_EQUAL);
    /* ...and merging again changes nothing. */
    key_state again = m1;
    merge(&again, &m2);
    assert_int_equal(again.n, 2);
    /* A replica that only missed a superseding write catches up whole. */
    key_state stale = r1, fresh = r1;
    kvi_vv c2 = fresh.clock;
    write(&fresh, &c2, "n3", "newer");
    merge(&stale, &fresh);
    assert_int_equal(stale.n, 1);
    assert_true(holds(&stale, "newer"));
}

static void encoding_round_trips_and_rejects_garbage(void **state)
{
    (void)state;
    kvi_vv vv;
    vv_of(&vv, "beta", 7, "alpha", 3);
    kvi_buf b = {0};
    kvi_vv_encode(&b, &vv);
    kvi_reader r = kvi_reader_init(b.data, b.len);
    kvi_vv out;
    assert_int_equal(kvi_vv_decode(&out, &r), 0);
    assert_int_equal(r.left, 0);
    assert_int_equal(kvi_vv_compare(&vv, &out), KVI_VV_EQUAL);
    assert_string_equal(out.entries[0].node, "alpha"); /* sorted */
    for (size_t cut = 0; cut < b.len; cut++) {
        kvi_reader short_r = kvi_reader_init(b.data, cut);
        assert_int_equal(kvi_vv_decode(&out, &short_r), -1);
    }
    /* Unsorted ids, a zero counter and a wrong format are refused. */
    unsigned char swapped[64];
    memcpy(swapped, b.data, b.len);
    swapped[0] = 2;
    kvi_reader bad = kvi_reader_init(swapped, b.len);
    assert_int_equal(kvi_vv_decode(&out, &bad), -1);
    kvi_buf z = {0};
    kvi_buf_u8(&z, 1);
    kvi_buf_u8(&z, 1);
    kvi_buf_u8(&z, 1);
    kvi_buf_raw(&z, "a", 1);
    kvi_buf_u64(&z, 0);
    bad = kvi_reader_init(z.data, z.len);
    assert_int_equal(kvi_vv_decode(&out, &bad), -1);
    kvi_buf_reset(&z);
    kvi_buf_u8(&z, 1);
    kvi_buf_u8(&z, 2);
    kvi_buf_u8(&z, 1);
    kvi_buf_raw(&z, "b", 1);
    kvi_buf_u64(&z, 1);
    kvi_buf_u8(&z, 1);
    kvi_buf_raw(&z, "a", 1);
    kvi_buf_u64(&z, 1);
    bad = kvi_reader_init(z.data, z.len);
    assert_int_equal(kvi_vv_decode(&out, &bad), -1);
    kvi_buf_free(&z);
    kvi_buf_free(&b);
}

static void limits(void **state)
{
    (void)state;
    kvi_vv vv;
    kvi_vv_init(&vv);
    char id[80];
    memset(id, 'x', sizeof id);
    id[KVI_DVV_MAX_ID + 1] = 0;
    assert_int_equal(kvi_vv_raise(&vv, id, 1), -1);
    assert_int_equal(kvi_vv_raise(&vv, "", 1), -1);
    for (unsigned i = 0; i < KVI_DVV_MAX_NODES; i++) {
        char name[16];
        snprintf(name, sizeof name, "n%03u", i);
        assert_int_equal(kvi_vv_raise(&vv, name, 1), 0);
    }
    assert_int_equal(kvi_vv_raise(&vv, "one-too-many", 1), -1);
    assert_int_equal(kvi_vv_raise(&vv, "n000", 5), 0); /* existing entries still grow */
    assert_int_equal(kvi_vv_get(&vv, "n000"), 5);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ordering),
        cmocka_unit_test(stale_contexts_through_one_coordinator_make_siblings),
        cmocka_unit_test(replicas_merge_to_the_same_state),
        cmocka_unit_test(encoding_round_trips_and_rejects_garbage),
        cmocka_unit_test(limits),
    };
    return cmocka_run_group_tests_name("cluster.dvv", tests, NULL, NULL);
}
