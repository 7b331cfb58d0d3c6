/* The pure steps of an anti-entropy exchange: the token ranges two members
 * share (checked against the ring's preference lists for random tokens),
 * the digest segments those ranges cover whole or in part (checked token
 * by token), one step down the digest comparison, and the keys two sorted
 * lists disagree on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <kv/common.h>
#include "cluster/ae_plan.h"
#include "cluster/ring.h"

static uint64_t rand64(void)
{
    return ((uint64_t)rand() << 62) ^ ((uint64_t)rand() << 31) ^ (uint64_t)rand();
}

static int in_preference(const kvi_ring *r, uint64_t token, int who)
{
    const uint32_t *pref;
    size_t k = kvi_ring_preference(r, token, &pref);
    for (size_t i = 0; i < k; i++)
        if (pref[i] == (uint32_t)who)
            return 1;
    return 0;
}

static void shared_ranges_are_where_both_are_replicas(void **state)
{
    (void)state;
    const char *three[] = {"n1", "n2", "n3"};
    kvi_ring *r;
    assert_int_equal(kvi_ring_build(&r, three, 3, 64, 3), KV_OK);
    kvi_token_range *ranges;
    size_t n;
    assert_int_equal(kvi_ae_shared_ranges(r, 0, 2, &ranges, &n), KV_OK);
    assert_int_equal(n, 1); /* three replicas of three: everything */
    assert_int_equal(ranges[0].first, 0);
    assert_true(ranges[0].last == UINT64_MAX);
    free(ranges);
    assert_int_equal(kvi_ae_shared_ranges(r, 0, 3, &ranges, &n), KV_EINVAL);
    assert_int_equal(kvi_ae_shared_ranges(r, -1, 0, &ranges, &n), KV_EINVAL);
    kvi_ring_free(r);

    const char *five[] = {"n1", "n2", "n3", "n4", "n5"};
    assert_int_equal(kvi_ring_build(&r, five, 5, 32, 3), KV_OK);
    assert_int_equal(kvi_ae_shared_ranges(r, 1, 3, &ranges, &n), KV_OK);
    assert_true(n > 1);
    for (size_t i = 1; i < n; i++)
        assert_true(ranges[i - 1].last + 1 < ranges[i].first); /* sorted, merged */
    srand(7);
    int inside = 0;
    for (int t = 0; t < 5000; t++) {
        uint64_t token = rand64();
        int both = in_preference(r, token, 1) && in_preference(r, token, 3);
        assert_int_equal(kvi_ae_token_in(ranges, n, token), both);
        inside += both;
    }
    assert_true(inside > 0 && inside < 5000);
    /* The ends of every range are in, the token before and after out. */
    for (size_t i = 0; i < n; i++) {
        assert_true(kvi_ae_token_in(ranges, n, ranges[i].first));
        assert_true(kvi_ae_token_in(ranges, n, ranges[i].last));
        if (ranges[i].first > 0)
            assert_false(kvi_ae_token_in(ranges, n, ranges[i].first - 1));
    }
    free(ranges);
    kvi_ring_free(r);
}

#define BITS 4u
#define SHIFT (64u - BITS)
static uint64_t seg_start(uint32_t s) { return (uint64_t)s << SHIFT; }
static uint64_t seg_last(uint32_t s) { return seg_start(s) | (((uint64_t)1 << SHIFT) - 1); }

static void segments_whole_and_partial(void **state)
{
    (void)state;
    kvi_ae_range *whole;
    uint32_t *partial;
    size_t nw, np;
    kvi_token_range all = {0, UINT64_MAX};
    assert_int_equal(kvi_ae_segments(BITS, &all, 1, &whole, &nw, &partial, &np), KV_OK);
    assert_int_equal(nw, 1);
    assert_int_equal(whole[0].first, 0);
    assert_int_equal(whole[0].end, 16);
    assert_int_equal(np, 0);
    free(whole);
    free(partial);

    /* Part of 2, all of 3..5; part of 9 twice; all of 12 and 13, then 14
     * from an adjacent range: merged. */
    kvi_token_range some[] = {{seg_start(2) + 5, seg_last(5)},
                              {seg_start(9) + 1, seg_start(9) + 10},
                              {seg_start(9) + 20, seg_start(9) + 30},
                              {seg_start(12), seg_last(13)},
                              {seg_start(14), seg_last(14) - 1}};
    assert_int_equal(kvi_ae_segments(BITS, some, 5, &whole, &nw, &partial, &np), KV_OK);
    assert_int_equal(nw, 2);
    assert_int_equal(whole[0].first, 3);
    assert_int_equal(whole[0].end, 6);
    assert_int_equal(whole[1].first, 12);
    assert_int_equal(whole[1].end, 14);
    assert_int_equal(np, 3);
    assert_int_equal(partial[0], 2);
    assert_int_equal(partial[1], 9);
    assert_int_equal(partial[2], 14);
    free(whole);
    free(partial);
}

/* For random sorted ranges: a covered token's segment is listed; a whole
 * segment's every token is covered. */
static void segments_cover_exactly_the_ranges(void **state)
{
    (void)state;
    srand(11);
    for (int round = 0; round < 200; round++) {
        uint64_t cuts[8];
        for (int i = 0; i < 8; i++)
            cuts[i] = rand64();
        for (int i = 0; i < 8; i++) /* sort */
            for (int j = i + 1; j < 8; j++)
                if (cuts[j] < cuts[i]) {
                    uint64_t t = cuts[i];
                    cuts[i] = cuts[j];
                    cuts[j] = t;
                }
        kvi_token_range ranges[4];
        size_t n = 0;
        for (int i = 0; i < 8; i += 2)
            if (cuts[i] < cuts[i + 1] && (n == 0 || ranges[n - 1].last + 1 < cuts[i]))
                ranges[n++] = (kvi_token_range){cuts[i], cuts[i + 1]};
        kvi_ae_range *whole;
        uint32_t *partial;
        size_t nw, np;
        assert_int_equal(kvi_ae_segments(BITS, ranges, n, &whole, &nw, &partial, &np), KV_OK);
        for (uint32_t s = 0; s < 16; s++) {
            int is_whole = 0, is_partial = 0;
            for (size_t i = 0; i < nw; i++)
                is_whole |= s >= whole[i].first && s < whole[i].end;
            for (size_t i = 0; i < np; i++)
                is_partial |= partial[i] == s;
            assert_false(is_whole && is_partial);
            int start_in = kvi_ae_token_in(ranges, n, seg_start(s));
            int last_in = kvi_ae_token_in(ranges, n, seg_last(s));
            if (is_whole)
                assert_true(start_in && last_in);
            for (int probe = 0; probe < 20; probe++) {
                uint64_t token = seg_start(s) + (rand64() & (((uint64_t)1 << SHIFT) - 1));
                if (kvi_ae_token_in(ranges, n, token))
                    assert_true(is_whole || is_partial);
                else
                    assert_false(is_whole);
            }
        }
        free(whole);
        free(partial);
    }
}

static void classify_says_what_to_do_with_a_range(void **state)
{
    (void)state;
    kvi_ae_range many = {0, 256}, one = {256, 257};
    assert_int_equal(kvi_ae_classify(many, 7, 3, 7, 3), KVI_AE_SAME);
    assert_int_equal(kvi_ae_classify(many, 7, 3, 8, 3), KVI_AE_DESCEND);
    /* The count alone differing is a difference too. */
    assert_int_equal(kvi_ae_classify(many, 7, 3, 7, 4), KVI_AE_DESCEND);
    assert_int_equal(kvi_ae_classify(one, 7, 3, 8, 3), KVI_AE_SEGMENT);
    /* One side empty: no need to go down, whatever the range. */
    assert_int_equal(kvi_ae_classify(many, 0, 0, 8, 3), KVI_AE_FILL);
    assert_int_equal(kvi_ae_classify(one, 0, 0, 8, 3), KVI_AE_FILL);
    assert_int_equal(kvi_ae_classify(many, 8, 3, 0, 0), KVI_AE_PUSH);
    /* Wide while few ranges differ, narrow once many do. */
    assert_int_equal(kvi_ae_fanout(1), 16);
    assert_int_equal(kvi_ae_fanout(16), 16);
    assert_int_equal(kvi_ae_fanout(17), 4);
}

static void parts_cut_ranges_evenly_and_in_order(void **state)
{
    (void)state;
    kvi_ae_range ranges[] = {{0, 256}, {256, 257}, {400, 403}};
    kvi_ae_range parts[64];
    /* 16 parts of 16, the one segment alone, and 3 parts (not 16 parts of
     * nothing) of a range of 3. */
    size_t n = kvi_ae_parts(parts, 64, ranges, 3, 16);
    assert_int_equal(n, 20);
    assert_int_equal(parts[0].first, 0);
    assert_int_equal(parts[0].end, 16);
    for (size_t i = 1; i < 16; i++)
        assert_int_equal(parts[i].first, parts[i - 1].end);
    assert_int_equal(parts[15].end, 256);
    assert_int_equal(parts[16].first, 256);
    assert_int_equal(parts[16].end, 257);
    assert_int_equal(parts[19].first, 402);
    assert_int_equal(parts[19].end, 403);
    /* Counted in full even without room; fanout 1 is the ranges as given. */
    assert_int_equal(kvi_ae_parts(NULL, 0, ranges, 3, 16), 20);
    assert_int_equal(kvi_ae_parts(parts, 64, ranges, 3, 1), 3);
    assert_int_equal(parts[0].end, 256);
    /* An uneven cut still covers the range exactly. */
    kvi_ae_range odd = {5, 105};
    n = kvi_ae_parts(parts, 64, &odd, 1, 16);
    assert_int_equal(n, 16);
    assert_int_equal(parts[0].first, 5);
    assert_int_equal(parts[15].end, 105);
    for (size_t i = 1; i < 16; i++) {
        assert_int_equal(parts[i].first, parts[i - 1].end);
        assert_true(parts[i].end - parts[i].first >= 6 && parts[i].end - parts[i].first <= 7);
    }
}

typedef struct seen {
    char keys[8][8];
    kvi_ae_diff diffs[8];
    uint64_t hashes[8];
    int n;
} seen;

static void note(void *ctx, const unsigned char *skey, size_t len, kvi_ae_diff d,
                 uint64_t their_hash)
{
    seen *s = ctx;
    s->hashes[s->n] = their_hash;
    memcpy(s->keys[s->n], skey, len);
    s->keys[s->n][len] = 0;
    s->diffs[s->n++] = d;
}

#define K(s, h) {(const unsigned char *)(s), sizeof(s) - 1, (h)}

static void key_lists_disagree_where_they_should(void **state)
{
    (void)state;
    kvi_ae_key mine[] = {K("a", 1), K("b", 2), K("bb", 3), K("d", 4), K("f", 6)};
    kvi_ae_key theirs[] = {K("b", 2), K("bb", 30), K("c", 5), K("d", 4), K("g", 7)};
    seen s = {0};
    assert_int_equal(kvi_ae_compare_keys(mine, 5, theirs, 5, note, &s), 5);
    const char *want_keys[] = {"a", "bb", "c", "f", "g"};
    kvi_ae_diff want[] = {KVI_AE_ONLY_MINE, KVI_AE_DIFFERENT, KVI_AE_ONLY_THEIRS,
                          KVI_AE_ONLY_MINE, KVI_AE_ONLY_THEIRS};
    /* The peer's hash where it holds the key, for the repair to compare. */
    uint64_t want_hash[] = {0, 30, 5, 0, 7};
    for (int i = 0; i < 5; i++) {
        assert_string_equal(s.keys[i], want_keys[i]);
        assert_int_equal(s.diffs[i], want[i]);
        assert_int_equal(s.hashes[i], want_hash[i]);
    }
    memset(&s, 0, sizeof s);
    assert_int_equal(kvi_ae_compare_keys(mine, 5, mine, 5, note, &s), 0);
    assert_int_equal(kvi_ae_compare_keys(NULL, 0, theirs, 2, note, &s), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shared_ranges_are_where_both_are_replicas),
        cmocka_unit_test(segments_whole_and_partial),
        cmocka_unit_test(segments_cover_exactly_the_ranges),
        cmocka_unit_test(classify_says_what_to_do_with_a_range),
        cmocka_unit_test(parts_cut_ranges_evenly_and_in_order),
        cmocka_unit_test(key_lists_disagree_where_they_should),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
