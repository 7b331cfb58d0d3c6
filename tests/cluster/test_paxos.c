/* Per-key Paxos, the pure parts (format/paxos.h): ballots compared whole
 * and always increasing, the acceptor's three rules, an unfinished
 * proposal, and the record's codec with its refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <kv/common.h>
#include "format/paxos.h"

static kvi_ballot ballot(uint64_t time_us, const char *node, uint32_t counter)
{
    kvi_ballot b;
    memset(&b, 0, sizeof b);
    b.time_us = time_us;
    snprintf(b.node, sizeof b.node, "%s", node);
    b.counter = counter;
    return b;
}

static void ballots_compare_whole(void **state)
{
    (void)state;
    kvi_ballot zero = ballot(0, "", 0);
    kvi_ballot a = ballot(100, "n1", 0), b = ballot(100, "n2", 0), c = ballot(100, "n1", 1);
    kvi_ballot later = ballot(101, "a", 0);
    assert_true(kvi_ballot_compare(&zero, &a) < 0);
    /* Same time: the node decides, then the counter (not a tie: 6139). */
    assert_true(kvi_ballot_compare(&a, &b) < 0);
    assert_true(kvi_ballot_compare(&b, &a) > 0);
    assert_true(kvi_ballot_compare(&a, &c) < 0);
    assert_true(kvi_ballot_compare(&c, &b) < 0);
    assert_true(kvi_ballot_compare(&b, &later) < 0);
    assert_int_equal(kvi_ballot_compare(&a, &a), 0);
}

static void next_ballots_always_increase(void **state)
{
    (void)state;
    kvi_ballot seen = ballot(0, "", 0), next;
    /* A clock ahead of everything seen: now, counter 0. */
    assert_int_equal(kvi_ballot_next(&next, "n1", 500, &seen), KV_OK);
    assert_int_equal(next.time_us, 500);
    assert_true(kvi_ballot_compare(&next, &seen) > 0);
    /* Behind a rival whose id orders after ours: past it all the same. */
    const char *nodes[] = {"a", "n1", "zz"};
    for (int i = 0; i < 3; i++) {
        kvi_ballot rival = ballot(1000, "n5", 7);
        assert_int_equal(kvi_ballot_next(&next, nodes[i], 10, &rival), KV_OK);
        assert_true(kvi_ballot_compare(&next, &rival) > 0);
        assert_string_equal(next.node, nodes[i]);
    }
    /* Retries of one proposer against itself, many times over, with a
     * clock that stands still: strictly increasing every time. */
    kvi_ballot last = ballot(0, "", 0);
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(kvi_ballot_next(&next, "n3", 42, &last), KV_OK);
        assert_true(kvi_ballot_compare(&next, &last) > 0);
        last = next;
    }
    /* A counter at its top moves the time on. */
    kvi_ballot top = ballot(9, "n3", UINT32_MAX);
    assert_int_equal(kvi_ballot_next(&next, "n3", 1, &top), KV_OK);
    assert_true(kvi_ballot_compare(&next, &top) > 0);
    assert_int_equal(kvi_ballot_next(&next, "", 1, &top), KV_EINVAL);
    char long_id[KVI_DVV_MAX_ID + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    assert_int_equal(kvi_ballot_next(&next, long_id, 1, &top), KV_EINVAL);
}

static void acceptor_rules(void **state)
{
    (void)state;
    kvi_acceptor a;
    kvi_acceptor_init(&a);
    kvi_ballot b1 = ballot(10, "n1", 0), b2 = ballot(20, "n2", 0), b0 = ballot(5, "n3", 0);
    /* Prepare: strictly above the promise. */
    assert_int_equal(kvi_acceptor_prepare(&a, &b1), 1);
    assert_int_equal(kvi_acceptor_prepare(&a, &b1), 0); /* no second promise for b1 */
    assert_int_equal(kvi_acceptor_prepare(&a, &b0), 0);
    kvi_acceptor before = a;
    /* Propose: at or above the promise; a lower ballot changes nothing. */
    assert_int_equal(kvi_acceptor_propose(&a, &b0, "old", 3), 0);
    assert_memory_equal(&a, &before, sizeof a);
    assert_int_equal(kvi_acceptor_propose(&a, &b1, "v1", 2), 1);
    assert_true(kvi_acceptor_unfinished(&a));
    /* A higher prepare is promised, and sees the accepted proposal. */
    assert_int_equal(kvi_acceptor_prepare(&a, &b2), 1);
    assert_int_equal(a.has_accepted, 1);
    assert_int_equal(kvi_ballot_compare(&a.accepted, &b1), 0);
    /* The old proposer's late propose is refused now. */
    assert_int_equal(kvi_acceptor_propose(&a, &b1, "late", 4), 0);
    /* Commit of b1 (chosen before the new promise) is applied and clears
     * the proposal it covers. */
    assert_int_equal(kvi_acceptor_commit(&a, &b1, 1), 1);
    assert_false(kvi_acceptor_unfinished(&a));
    assert_int_equal(a.has_accepted, 0);
    assert_int_equal(a.committed_version, 1);
    /* An older commit after a newer one changes nothing. */
    assert_int_equal(kvi_acceptor_commit(&a, &b0, 9), 0);
    assert_int_equal(a.committed_version, 1);
    /* A proposal newer than the commit is unfinished; a commit below it
     * leaves it in place. */
    assert_int_equal(kvi_acceptor_propose(&a, &b2, "v2", 2), 1);
    kvi_ballot b15 = ballot(15, "n9", 0);
    assert_int_equal(kvi_acceptor_commit(&a, &b15, 1), 1);
    assert_true(kvi_acceptor_unfinished(&a));
    assert_int_equal(kvi_acceptor_commit(&a, &b2, 2), 1);
    assert_false(kvi_acceptor_unfinished(&a));
}

static void record_round_trip_and_refusals(void **state)
{
    (void)state;
    kvi_acceptor a, back;
    kvi_acceptor_init(&a);
    kvi_buf buf = {0};
    /* The empty record. */
    kvi_acceptor_encode(&buf, &a, 77);
    assert_int_equal(kvi_acceptor_decode(&back, buf.data, buf.len, 77), KV_OK);
    assert_int_equal(back.has_accepted, 0);
    /* A full one. */
    a.promised = ballot(30, "n2", 3);
    kvi_acceptor_propose(&a, &a.promised, "state-bytes", 11);
    kvi_acceptor_commit(&a, &(kvi_ballot){.time_us = 20, .node = "n1", .counter = 0}, 6);
    kvi_buf_reset(&buf);
    kvi_acceptor_encode(&buf, &a, 77);
    assert_int_equal(kvi_acceptor_decode(&back, buf.data, buf.len, 77), KV_OK);
    assert_int_equal(kvi_ballot_compare(&back.promised, &a.promised), 0);
    assert_int_equal(back.has_accepted, 1);
    assert_int_equal(kvi_ballot_compare(&back.accepted, &a.accepted), 0);
    assert_int_equal(back.accepted_state.len, 11);
    assert_memory_equal(back.accepted_state.data, "state-bytes", 11);
    assert_int_equal(kvi_ballot_compare(&back.committed, &a.committed), 0);
    assert_int_equal(back.committed_version, 6);
    /* Under another key's token, truncated, or with a flipped byte. */
    assert_int_equal(kvi_acceptor_decode(&back, buf.data, buf.len, 78), KV_ECORRUPT);
    for (size_t cut = 0; cut < buf.len; cut++)
        assert_int_equal(kvi_acceptor_decode(&back, buf.data, cut, 77), KV_ECORRUPT);
    for (size_t i = 0; i < buf.len; i++) {
        buf.data[i] ^= 0x01;
        assert_int_equal(kvi_acceptor_decode(&back, buf.data, buf.len, 77), KV_ECORRUPT);
        buf.data[i] ^= 0x01;
    }
    kvi_buf_free(&buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ballots_compare_whole),
        cmocka_unit_test(next_ballots_always_increase),
        cmocka_unit_test(acceptor_rules),
        cmocka_unit_test(record_round_trip_and_refusals),
    };
    return cmocka_run_group_tests_name("cluster.paxos", tests, NULL, NULL);
}
