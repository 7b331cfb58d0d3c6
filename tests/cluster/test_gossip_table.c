/* The gossiped member table: the merge rules (new ids, restarts, newer
 * heartbeats, old news), convergence whatever the order of exchanges, and
 * the codec's round trip and refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "format/gossip_table.h"

static kvi_gossip_entry entry(const char *id, uint64_t gen, uint64_t hb, uint8_t status)
{
    kvi_gossip_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%s", id);
    snprintf(e.addr, sizeof e.addr, "127.0.0.1:%d", 7400 + (int)strlen(id));
    e.generation = gen;
    e.heartbeat = hb;
    e.status = status;
    return e;
}

static void merge_rules(void **state)
{
    (void)state;
    kvi_gossip_table t;
    kvi_gossip_table_init(&t);
    kvi_gossip_entry a = entry("n1", 100, 5, KVI_MEMBER_UP);
    assert_int_equal(kvi_gossip_merge_entry(&t, &a), 1);
    assert_int_equal(kvi_gossip_merge_entry(&t, &a), 0); /* the same news */
    kvi_gossip_entry older = entry("n1", 100, 4, KVI_MEMBER_JOINING);
    assert_int_equal(kvi_gossip_merge_entry(&t, &older), 0);
    kvi_gossip_entry newer = entry("n1", 100, 9, KVI_MEMBER_STOPPED);
    assert_int_equal(kvi_gossip_merge_entry(&t, &newer), 1);
    assert_int_equal(kvi_gossip_find(&t, "n1")->status, KVI_MEMBER_STOPPED);
    /* A restart: a new generation wins even with a lower heartbeat. */
    kvi_gossip_entry restarted = entry("n1", 200, 1, KVI_MEMBER_JOINING);
    assert_int_equal(kvi_gossip_merge_entry(&t, &restarted), 1);
    assert_int_equal(kvi_gossip_find(&t, "n1")->generation, 200);
    assert_int_equal(kvi_gossip_merge_entry(&t, &newer), 0); /* the old life */
    /* Invalid entries are refused. */
    kvi_gossip_entry bad = entry("n2", 1, 1, 9);
    assert_int_equal(kvi_gossip_merge_entry(&t, &bad), -1);
    bad = entry("", 1, 1, KVI_MEMBER_UP);
    assert_int_equal(kvi_gossip_merge_entry(&t, &bad), -1);
    bad = entry("n2", 1, 1, KVI_MEMBER_UP);
    bad.addr[0] = 0;
    assert_int_equal(kvi_gossip_merge_entry(&t, &bad), -1);
    assert_null(kvi_gossip_find(&t, "n2"));
    kvi_gossip_table_free(&t);
}

/* Five nodes each know their own entry; random pairwise push-pull merges
 * in two different orders end with every table equal. */
static void exchanges_converge(void **state)
{
    (void)state;
    for (int order = 0; order < 2; order++) {
        kvi_gossip_table t[5];
        for (int i = 0; i < 5; i++) {
            kvi_gossip_table_init(&t[i]);
            char id[8];
            snprintf(id, sizeof id, "n%d", i + 1);
            kvi_gossip_entry e = entry(id, 1000 + (uint64_t)i, (uint64_t)i * 3, KVI_MEMBER_UP);
            assert_int_equal(kvi_gossip_merge_entry(&t[i], &e), 1);
        }
        uint64_t seed = 7 + (uint64_t)order;
        for (int round = 0; round < 40; round++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            int a = (int)((seed >> 33) % 5), b = (int)((seed >> 13) % 5);
            kvi_gossip_merge(&t[a], &t[b]); /* push-pull */
            kvi_gossip_merge(&t[b], &t[a]);
        }
        /* One more full pass: everyone hears from everyone. */
        for (int a = 0; a < 5; a++)
            for (int b = 0; b < 5; b++)
                kvi_gossip_merge(&t[a], &t[b]);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(t[i].n, 5);
            assert_memory_equal(t[i].entries, t[0].entries, 5 * sizeof *t[0].entries);
        }
        for (int i = 0; i < 5; i++)
            kvi_gossip_table_free(&t[i]);
    }
}

static void codec_round_trip_and_refusals(void **state)
{
    (void)state;
    kvi_gossip_table t, back;
    kvi_gossip_table_init(&t);
    kvi_gossip_entry e = entry("n2", 5, 6, KVI_MEMBER_LEAVING);
    snprintf(e.http, sizeof e.http, "127.0.0.1:8082");
    assert_int_equal(kvi_gossip_merge_entry(&t, &e), 1);
    e = entry("n1", 7, 8, KVI_MEMBER_UP);
    e.repaired_ms = 1700000000123ull;
    assert_int_equal(kvi_gossip_merge_entry(&t, &e), 1);
    kvi_buf b = {0};
    kvi_gossip_encode(&b, &t);
    assert_int_equal(kvi_gossip_decode(&back, b.data, b.len), KV_OK);
    assert_int_equal(back.n, 2);
    assert_memory_equal(back.entries, t.entries, 2 * sizeof *t.entries);
    kvi_gossip_table_free(&back);
    /* Every truncation, and a trailing byte, is refused. */
    for (size_t cut = 0; cut < b.len; cut++) {
        assert_int_equal(kvi_gossip_decode(&back, b.data, cut), KV_EINVAL);
        assert_int_equal(back.n, 0);
    }
    kvi_buf_u8(&b, 0);
    assert_int_equal(kvi_gossip_decode(&back, b.data, b.len), KV_EINVAL);
    /* Entries out of order, or repeated, are refused. */
    kvi_buf swapped = {0};
    kvi_gossip_table rev = {2, 2, (kvi_gossip_entry[]){t.entries[1], t.entries[0]}};
    kvi_gossip_encode(&swapped, &rev);
    assert_int_equal(kvi_gossip_decode(&back, swapped.data, swapped.len), KV_EINVAL);
    kvi_buf twice = {0};
    kvi_gossip_table dup = {2, 2, (kvi_gossip_entry[]){t.entries[0], t.entries[0]}};
    kvi_gossip_encode(&twice, &dup);
    assert_int_equal(kvi_gossip_decode(&back, twice.data, twice.len), KV_EINVAL);
    /* An unknown format byte. */
    b.data[0] = 4;
    assert_int_equal(kvi_gossip_decode(&back, b.data, b.len - 1), KV_EINVAL);
    b.data[0] = 3;
    /* Format 1 (no last full repair) is still read, as 0. */
    kvi_buf one = {0};
    kvi_buf_u8(&one, 1);
    kvi_buf_u16(&one, 1);
    kvi_buf_bytes(&one, "n1", 2);
    kvi_buf_bytes(&one, t.entries[0].addr, strlen(t.entries[0].addr));
    kvi_buf_bytes(&one, "", 0);
    kvi_buf_u64(&one, 7);
    kvi_buf_u64(&one, 8);
    kvi_buf_u8(&one, KVI_MEMBER_UP);
    assert_int_equal(kvi_gossip_decode(&back, one.data, one.len), KV_OK);
    assert_int_equal(back.n, 1);
    assert_int_equal(back.entries[0].heartbeat, 8);
    assert_int_equal(back.entries[0].repaired_ms, 0);
    kvi_gossip_table_free(&back);
    /* ...but not format 1 with format 2's field after it. */
    kvi_buf_u64(&one, 5);
    assert_int_equal(kvi_gossip_decode(&back, one.data, one.len), KV_EINVAL);
    /* Format 2 (no topology epoch) is read, as epoch 0; format 3 has it. */
    one.data[0] = 2;
    assert_int_equal(kvi_gossip_decode(&back, one.data, one.len), KV_OK);
    assert_int_equal(back.entries[0].repaired_ms, 5);
    assert_int_equal(back.entries[0].epoch, 0);
    kvi_gossip_table_free(&back);
    kvi_buf_u64(&one, 9);
    assert_int_equal(kvi_gossip_decode(&back, one.data, one.len), KV_EINVAL);
    one.data[0] = 3;
    assert_int_equal(kvi_gossip_decode(&back, one.data, one.len), KV_OK);
    assert_int_equal(back.entries[0].epoch, 9);
    kvi_gossip_table_free(&back);
    kvi_buf_free(&one);
    kvi_buf_free(&b);
    kvi_buf_free(&swapped);
    kvi_buf_free(&twice);
    kvi_gossip_table_free(&t);
}

/* News that no member may bring, authenticated or not. */
static void implausible_news_is_refused(void **state)
{
    (void)state;
    kvi_gossip_table t;
    kvi_gossip_table_init(&t);
    uint64_t now = 1700000000000ull;
    kvi_gossip_entry self = entry("me", now - 5000, 3, KVI_MEMBER_UP);
    snprintf(self.addr, sizeof self.addr, "127.0.0.1:7398"); /* apart from n1's */
    kvi_gossip_entry n1 = entry("n1", now - 9000, 7, KVI_MEMBER_UP);
    assert_int_equal(kvi_gossip_merge_entry(&t, &self), 1);
    assert_int_equal(kvi_gossip_merge_entry(&t, &n1), 1);
    /* Newer news of a member, same addresses: believable. */
    kvi_gossip_entry beat = entry("n1", now - 9000, 8, KVI_MEMBER_UP);
    assert_null(kvi_gossip_implausible(&t, &beat, "me", now));
    /* Someone else speaking for this node, even with a newer generation. */
    kvi_gossip_entry forged_self = entry("me", now, 1, KVI_MEMBER_STOPPED);
    assert_non_null(kvi_gossip_implausible(&t, &forged_self, "me", now));
    /* Re-addressing a member without a restart. */
    kvi_gossip_entry moved = beat;
    snprintf(moved.addr, sizeof moved.addr, "127.0.0.9:1");
    assert_non_null(kvi_gossip_implausible(&t, &moved, "me", now));
    kvi_gossip_entry moved_http = beat;
    snprintf(moved_http.http, sizeof moved_http.http, "127.0.0.9:2");
    assert_non_null(kvi_gossip_implausible(&t, &moved_http, "me", now));
    /* ...but a restart (a new generation) may move it. */
    moved.generation = now - 100;
    assert_null(kvi_gossip_implausible(&t, &moved, "me", now));
    /* A new id at a member's address, not newer than the member. */
    kvi_gossip_entry usurper = entry("zz", now - 9000, 1, KVI_MEMBER_UP);
    snprintf(usurper.addr, sizeof usurper.addr, "%s", n1.addr);
    assert_non_null(kvi_gossip_implausible(&t, &usurper, "me", now));
    usurper.generation = now - 10; /* a later start there: a rename by restart */
    assert_null(kvi_gossip_implausible(&t, &usurper, "me", now));
    /* A start time far in the future would outrank every real restart. */
    kvi_gossip_entry future = entry("n1", now + KVI_GOSSIP_MAX_CLOCK_AHEAD_MS + 1, 1,
                                    KVI_MEMBER_UP);
    assert_non_null(kvi_gossip_implausible(&t, &future, "me", now));
    future.generation = now + 1000; /* a little skew is fine */
    assert_null(kvi_gossip_implausible(&t, &future, "me", now));
    /* A last full repair from the future would let tombstones go early. */
    kvi_gossip_entry early = entry("n1", now - 9000, 9, KVI_MEMBER_UP);
    early.repaired_ms = now + KVI_GOSSIP_MAX_CLOCK_AHEAD_MS + 1;
    assert_non_null(kvi_gossip_implausible(&t, &early, "me", now));
    early.repaired_ms = now - 10;
    assert_null(kvi_gossip_implausible(&t, &early, "me", now));
    /* A new member at a new address. */
    kvi_gossip_entry fresh = entry("n2", now - 1000, 1, KVI_MEMBER_JOINING);
    snprintf(fresh.addr, sizeof fresh.addr, "127.0.0.1:7499");
    assert_null(kvi_gossip_implausible(&t, &fresh, "me", now));
    kvi_gossip_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(merge_rules),
        cmocka_unit_test(exchanges_converge),
        cmocka_unit_test(codec_round_trip_and_refusals),
        cmocka_unit_test(implausible_news_is_refused),
    };
    return cmocka_run_group_tests_name("cluster.gossip_table", tests, NULL, NULL);
}
