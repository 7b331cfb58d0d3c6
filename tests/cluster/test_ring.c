/* The consistent-hashing ring: deterministic from the member list,
 * preference lists of distinct members, balanced shares, and a join that
 * moves only the keys the new member now owns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <kv/common.h>
#include "cluster/ring.h"
#include "format/record.h"

#define MAX_IDS 32

typedef struct ids {
    char text[MAX_IDS][32];
    const char *ptr[MAX_IDS];
} ids;

static const char *const *make_ids(ids *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(s->text[i], sizeof s->text[i], "n%zu", i + 1);
        s->ptr[i] = s->text[i];
    }
    return s->ptr;
}

static uint64_t key_token(unsigned k)
{
    char key[32];
    int len = snprintf(key, sizeof key, "key-%u", k);
    return kvi_key_token(key, (size_t)len);
}

static void preference_lists_hold_distinct_members(void **state)
{
    (void)state;
    ids s;
    kvi_ring *r;
    assert_int_equal(kvi_ring_build(&r, make_ids(&s, 5), 5, 256, 3), KV_OK);
    for (unsigned k = 0; k < 10000; k++) {
        const uint32_t *list;
        assert_int_equal(kvi_ring_preference(r, key_token(k), &list), 3);
        assert_true(list[0] != list[1] && list[1] != list[2] && list[0] != list[2]);
        /* The walk starts with the preference list, then the fallbacks. */
        uint32_t walk[5];
        assert_int_equal(kvi_ring_walk(r, key_token(k), walk, 5), 5);
        assert_memory_equal(walk, list, 3 * sizeof *list);
    }
    kvi_ring_free(r);
    /* Fewer members than replicas: every member, once. */
    assert_int_equal(kvi_ring_build(&r, make_ids(&s, 2), 2, 16, 3), KV_OK);
    const uint32_t *list;
    assert_int_equal(kvi_ring_preference(r, 12345, &list), 2);
    assert_true(list[0] != list[1]);
    kvi_ring_free(r);
}

static void same_members_same_ring_in_any_order(void **state)
{
    (void)state;
    const char *forward[] = {"alpha", "beta", "gamma", "delta"};
    const char *backward[] = {"delta", "gamma", "beta", "alpha"};
    kvi_ring *a, *b;
    assert_int_equal(kvi_ring_build(&a, forward, 4, 64, 3), KV_OK);
    assert_int_equal(kvi_ring_build(&b, backward, 4, 64, 3), KV_OK);
    for (unsigned k = 0; k < 5000; k++) {
        const uint32_t *la, *lb;
        kvi_ring_preference(a, key_token(k), &la);
        kvi_ring_preference(b, key_token(k), &lb);
        for (int i = 0; i < 3; i++)
            assert_string_equal(kvi_ring_member_id(a, la[i]), kvi_ring_member_id(b, lb[i]));
    }
    assert_int_equal(kvi_ring_find(a, "gamma"), 2);
    assert_int_equal(kvi_ring_find(b, "gamma"), 1);
    assert_int_equal(kvi_ring_find(a, "omega"), -1);
    kvi_ring_free(a);
    kvi_ring_free(b);
}

/* Prints and checks the shares of an n-member ring with 256 vnodes. */
static void check_balance(size_t n)
{
    ids s;
    kvi_ring *r;
    assert_int_equal(kvi_ring_build(&r, make_ids(&s, n), n, 256, 3), KV_OK);
    double primary[MAX_IDS], replica[MAX_IDS], psum = 0, rsum = 0, pmax = 0, rmax = 0;
    kvi_ring_shares(r, primary, replica);
    for (size_t i = 0; i < n; i++) {
        psum += primary[i];
        rsum += replica[i];
        pmax = primary[i] > pmax ? primary[i] : pmax;
        rmax = replica[i] > rmax ? replica[i] : rmax;
    }
    double copies = n < 3 ? (double)n : 3.0;
    assert_true(psum > 0.999999 && psum < 1.000001);
    assert_true(rsum > copies - 0.00001 && rsum < copies + 0.00001);
    double pratio = pmax / (psum / (double)n), rratio = rmax / (rsum / (double)n);
    print_message("%zu members, 256 vnodes: most loaded primary share %.3fx the mean, "
                  "replica share %.3fx\n", n, pratio, rratio);
    assert_true(rratio <= 1.1);
    assert_true(pratio <= 1.2);
    kvi_ring_free(r);
}

/* The load a member carries with N = 3 is its replica share: the keys it
 * stores and serves. That is the share held to 1.1x the mean. Tokens are
 * hashes, so each member's share varies by about 1/sqrt(256) = 6% per
 * range; summed over three replicas that evens out (over 12 random sets of
 * 20 ids the most loaded replica share stayed within 1.03x-1.08x), while the
 * primary share alone does not (median about 1.12x at 20 members, up to
 * 1.17x), so that one is only bounded at 1.2x. A token allocation that looks
 * at the ring (as Cassandra's does) would tighten it; see the cluster
 * issue's notes. */
static void balanced_with_3_5_and_20_members(void **state)
{
    (void)state;
    check_balance(3);
    check_balance(5);
    check_balance(20);
}

static void joining_moves_only_keys_the_newcomer_owns(void **state)
{
    (void)state;
    const size_t sizes[] = {3, 5, 20};
    for (size_t s_i = 0; s_i < 3; s_i++) {
        size_t n = sizes[s_i];
        ids s;
        kvi_ring *before, *after;
        assert_int_equal(kvi_ring_build(&before, make_ids(&s, n + 1), n, 256, 3), KV_OK);
        assert_int_equal(kvi_ring_build(&after, make_ids(&s, n + 1), n + 1, 256, 3), KV_OK);
        unsigned moved = 0, keys = 200000;
        for (unsigned k = 0; k < keys; k++) {
            const uint32_t *a, *b;
            kvi_ring_preference(before, key_token(k), &a);
            kvi_ring_preference(after, key_token(k), &b);
            if (a[0] != b[0]) {
                moved++;
                assert_int_equal(b[0], n); /* only to the new member */
            }
            /* A replica set changes only by letting the newcomer in. */
            for (unsigned i = 0; i < 3 && i < n; i++) {
                int kept = 0;
                for (unsigned j = 0; j < 3 && j < n + 1; j++)
                    kept |= a[i] == b[j];
                if (!kept) {
                    int newcomer = 0;
                    for (unsigned j = 0; j < 3; j++)
                        newcomer |= b[j] == n;
                    assert_true(newcomer);
                }
            }
        }
        double fraction = (double)moved / keys, expected = 1.0 / (double)(n + 1);
        print_message("%zu -> %zu members: %.4f of the keys moved, 1/(n+1) = %.4f\n", n, n + 1,
                      fraction, expected);
        assert_true(fraction >= expected * 0.9 && fraction <= expected * 1.1);
        kvi_ring_free(before);
        kvi_ring_free(after);
    }
}

static void bad_member_lists_are_refused(void **state)
{
    (void)state;
    kvi_ring *r = (kvi_ring *)state;
    const char *dup[] = {"a", "b", "a"};
    assert_int_equal(kvi_ring_build(&r, dup, 3, 8, 3), KV_EINVAL);
    assert_null(r);
    const char *empty[] = {"a", ""};
    assert_int_equal(kvi_ring_build(&r, empty, 2, 8, 3), KV_EINVAL);
    const char *one[] = {"a"};
    assert_int_equal(kvi_ring_build(&r, one, 0, 8, 3), KV_EINVAL);
    assert_int_equal(kvi_ring_build(&r, one, 1, 0, 3), KV_EINVAL);
    assert_int_equal(kvi_ring_build(&r, one, 1, KVI_RING_MAX_VNODES + 1, 3), KV_EINVAL);
    assert_int_equal(kvi_ring_build(&r, one, 1, 8, 0), KV_EINVAL);
    assert_int_equal(kvi_ring_build(&r, one, 1, 8, 3), KV_OK);
    const uint32_t *list;
    assert_int_equal(kvi_ring_preference(r, 0, &list), 1);
    assert_int_equal(list[0], 0);
    double share;
    kvi_ring_shares(r, &share, NULL);
    assert_true(share > 0.999999);
    kvi_ring_free(r);
}

/* Whether two tokens' preference lists hold the same members. */
static int same_homes(const kvi_ring *r, uint64_t a, uint64_t b)
{
    const uint32_t *x, *y;
    size_t n = kvi_ring_preference(r, a, &x);
    kvi_ring_preference(r, b, &y);
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < n && y[k] != x[i])
            k++;
        if (k == n)
            return 0;
    }
    return 1;
}

/* A scan's stretches (kvi_ring_range_last): from 0 to the top of the token
 * space in order, each holding one set of homes at its ends and at keys
 * inside it, each the longest such (the next token has other homes); with
 * as many replicas as members, one stretch is everything. */
static void scan_stretches_cover_the_ring(void **state)
{
    (void)state;
    ids s;
    kvi_ring *r;
    assert_int_equal(kvi_ring_build(&r, make_ids(&s, 3), 3, 256, 3), KV_OK);
    assert_true(kvi_ring_range_last(r, 0) == UINT64_MAX);
    assert_true(kvi_ring_range_last(r, UINT64_MAX) == UINT64_MAX);
    kvi_ring_free(r);
    assert_int_equal(kvi_ring_build(&r, make_ids(&s, 5), 5, 64, 3), KV_OK);
    uint64_t t = 0;
    size_t stretches = 0;
    for (;;) {
        uint64_t last = kvi_ring_range_last(r, t);
        assert_true(last >= t);
        assert_true(same_homes(r, t, last));
        stretches++;
        assert_true(stretches <= 5 * 64 + 1);
        if (last == UINT64_MAX)
            break;
        /* Longest: the next token starts other homes, unless it is where
         * the wrap-around range begins again (never: that is 0). */
        assert_false(same_homes(r, last, last + 1));
        t = last + 1;
    }
    assert_true(stretches > 1);
    /* Keys inside a stretch have its homes. */
    for (unsigned k = 0; k < 2000; k++) {
        uint64_t kt = key_token(k);
        uint64_t last = kvi_ring_range_last(r, kt);
        assert_true(last >= kt);
        assert_true(same_homes(r, kt, last));
    }
    kvi_ring_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(preference_lists_hold_distinct_members),
        cmocka_unit_test(same_members_same_ring_in_any_order),
        cmocka_unit_test(balanced_with_3_5_and_20_members),
        cmocka_unit_test(joining_moves_only_keys_the_newcomer_owns),
        cmocka_unit_test(bad_member_lists_are_refused),
        cmocka_unit_test(scan_stretches_cover_the_ring),
    };
    return cmocka_run_group_tests_name("cluster.ring", tests, NULL, NULL);
}
