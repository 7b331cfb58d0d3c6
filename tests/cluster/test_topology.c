/* The topology record and what it means: its codec and its refusals, the
 * two rings, each change and what it refuses (one at a time), the members
 * that gain ranges, and the stream plans: exactly the ranges a member
 * gains, each from the replica it displaces or, when that one is down or
 * removed, from a surviving replica. */
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
#include "cluster/topology.h"
#include "format/topology.h"

static void cluster_of(kvi_topology *t, size_t n)
{
    const char *ids[8], *addrs[8], *https[8];
    char id_buf[8][24], addr_buf[8][40], http_buf[8][40];
    for (size_t i = 0; i < n; i++) {
        snprintf(id_buf[i], sizeof id_buf[i], "n%zu", i + 1);
        snprintf(addr_buf[i], sizeof addr_buf[i], "127.0.0.1:%zu", 7400 + i);
        snprintf(http_buf[i], sizeof http_buf[i], "127.0.0.1:%zu", 8400 + i);
        ids[i] = id_buf[i];
        addrs[i] = addr_buf[i];
        https[i] = http_buf[i];
    }
    kvi_topology_init(t);
    assert_int_equal(kvi_topology_first(t, 3, 64, ids, addrs, https, n), KV_OK);
}

static void round_trip(const kvi_topology *t)
{
    kvi_buf b = {0};
    kvi_topology_encode(&b, t);
    kvi_topology back;
    assert_int_equal(kvi_topology_decode(&back, b.data, b.len), KV_OK);
    assert_true(kvi_topology_equal(&back, t));
    kvi_topology_free(&back);
    /* Every truncation, and one byte too many, is refused. */
    for (size_t cut = 0; cut < b.len; cut++) {
        assert_int_equal(kvi_topology_decode(&back, b.data, cut), KV_EINVAL);
        kvi_topology_free(&back);
    }
    kvi_buf_u8(&b, 0);
    assert_int_equal(kvi_topology_decode(&back, b.data, b.len), KV_EINVAL);
    kvi_topology_free(&back);
    kvi_buf_free(&b);
}

static void the_codec_round_trips_and_refuses_what_is_inconsistent(void **state)
{
    (void)state;
    kvi_topology t, next;
    cluster_of(&t, 3);
    kvi_topology_init(&next);
    assert_null(kvi_topology_invalid(&t));
    assert_int_equal(t.epoch, 1);
    round_trip(&t);
    char err[256];
    assert_int_equal(kvi_topology_begin(&next, &t, KVI_TOPO_OP_JOIN, "n4", "127.0.0.1:7404",
                                        NULL, err, sizeof err), KV_OK);
    round_trip(&next);

    /* Inconsistent records are refused by the decoder, not only built
     * ones: each broken by hand, then encoded. */
    kvi_topology bad;
    kvi_topology_init(&bad);
    kvi_buf b = {0};
    kvi_topology back;

    assert_int_equal(kvi_topology_copy(&bad, &next), KV_OK);
    bad.op = KVI_TOPO_OP_NONE; /* n4 joining with no operation */
    assert_non_null(kvi_topology_invalid(&bad));
    kvi_topology_encode(&b, &bad);
    assert_int_equal(kvi_topology_decode(&back, b.data, b.len), KV_EINVAL);
    kvi_topology_free(&back);

    assert_int_equal(kvi_topology_copy(&bad, &next), KV_OK);
    snprintf(bad.op_member, sizeof bad.op_member, "n1"); /* n1 is normal */
    assert_non_null(kvi_topology_invalid(&bad));

    assert_int_equal(kvi_topology_copy(&bad, &t), KV_OK);
    bad.members[2].done = 1; /* done with no operation */
    assert_non_null(kvi_topology_invalid(&bad));

    assert_int_equal(kvi_topology_copy(&bad, &t), KV_OK);
    memcpy(bad.members[0].id, "n9", 3); /* out of order */
    assert_non_null(kvi_topology_invalid(&bad));
    b.len = 0;
    kvi_topology_encode(&b, &bad);
    assert_int_equal(kvi_topology_decode(&back, b.data, b.len), KV_EINVAL);
    kvi_topology_free(&back);

    assert_int_equal(kvi_topology_copy(&bad, &t), KV_OK);
    bad.members[1].state = 9;
    assert_non_null(kvi_topology_invalid(&bad));
    assert_int_equal(kvi_topology_copy(&bad, &t), KV_OK);
    bad.replicas = 0;
    assert_non_null(kvi_topology_invalid(&bad));

    kvi_buf_free(&b);
    kvi_topology_free(&bad);
    kvi_topology_free(&next);
    kvi_topology_free(&t);
}

/* A token drawn from a fixed generator. */
static uint64_t next_token(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static int in_list(const kvi_ring *r, uint64_t token, const char *id)
{
    const uint32_t *p;
    size_t n = kvi_ring_preference(r, token, &p);
    for (size_t i = 0; i < n; i++)
        if (strcmp(kvi_ring_member_id(r, p[i]), id) == 0)
            return 1;
    return 0;
}

static const kvi_stream_range *range_of(const kvi_stream_range *rs, size_t n, uint64_t token)
{
    for (size_t i = 0; i < n; i++)
        if (token >= rs[i].first && token <= rs[i].last)
            return &rs[i];
    return NULL;
}

/* The plan of `id` holds a token exactly when id is a future home of it
 * and no current one (or, replacing, a home at all), and names a source
 * that is a current home of it. Checked at 20000 tokens, plus the total
 * width against the ring's own shares. */
static void check_plan(const kvi_topology *t, const char *id, const kvi_stream_range *rs,
                       size_t n, const char *never_source)
{
    kvi_ring *cur, *fut;
    assert_int_equal(kvi_topology_build_ring(&cur, t, KVI_TOPO_CURRENT), KV_OK);
    assert_int_equal(kvi_topology_build_ring(&fut, t, KVI_TOPO_FUTURE), KV_OK);
    const kvi_topo_member *m = kvi_topology_find(t, id);
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 20000; i++) {
        uint64_t token = next_token(&s);
        int gains = m->state == KVI_TOPO_REPLACING
                        ? in_list(cur, token, id)
                        : in_list(fut, token, id) && !in_list(cur, token, id);
        const kvi_stream_range *r = range_of(rs, n, token);
        assert_int_equal(gains, r != NULL);
        if (r) {
            assert_true(r->source[0]);
            assert_true(in_list(cur, token, r->source));
            assert_string_not_equal(r->source, id);
            if (never_source)
                assert_string_not_equal(r->source, never_source);
            if (!r->substitute)
                assert_false(in_list(fut, token, r->source)); /* displaced */
        }
    }
    for (size_t i = 0; i + 1 < n; i++)
        assert_true(rs[i].last < rs[i + 1].first);
    kvi_ring_free(cur);
    kvi_ring_free(fut);
}

static double width(const kvi_stream_range *rs, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++)
        w += ((double)(rs[i].last - rs[i].first) + 1.0) / 18446744073709551616.0;
    return w;
}

static double replica_share(const kvi_topology *t, kvi_topo_ring which, const char *id)
{
    kvi_ring *r;
    assert_int_equal(kvi_topology_build_ring(&r, t, which), KV_OK);
    double shares[16];
    kvi_ring_shares(r, NULL, shares);
    double s = shares[kvi_ring_find(r, id)];
    kvi_ring_free(r);
    return s;
}

static int down_set(void *ctx, const char *id)
{
    return strcmp((const char *)ctx, id) == 0;
}

static void a_join_streams_exactly_what_the_new_member_gains(void **state)
{
    (void)state;
    kvi_topology t, j, d, d2, f, other;
    cluster_of(&t, 3);
    kvi_topology_init(&j);
    kvi_topology_init(&d);
    kvi_topology_init(&d2);
    kvi_topology_init(&f);
    kvi_topology_init(&other);
    char err[256];
    assert_int_equal(kvi_topology_begin(&j, &t, KVI_TOPO_OP_JOIN, "n4", "127.0.0.1:7404",
                                        "127.0.0.1:8404", err, sizeof err), KV_OK);
    assert_int_equal(j.epoch, 2);
    assert_int_equal(j.op_epoch, 2);
    const kvi_topo_member *n4 = kvi_topology_find(&j, "n4");
    assert_int_equal(n4->state, KVI_TOPO_JOINING);
    assert_false(kvi_topology_in_ring(&j, n4, KVI_TOPO_CURRENT));
    assert_true(kvi_topology_in_ring(&j, n4, KVI_TOPO_FUTURE));
    assert_false(kvi_topology_readable(n4));
    assert_false(kvi_topology_acceptor(&j, n4));

    size_t *g, ng;
    assert_int_equal(kvi_topology_gainers(&j, &g, &ng), KV_OK);
    assert_int_equal(ng, 1);
    assert_string_equal(j.members[g[0]].id, "n4");
    free(g);

    kvi_stream_range *rs;
    size_t n;
    assert_int_equal(kvi_topology_stream_plan(&j, "n4", NULL, NULL, &rs, &n), KV_OK);
    assert_true(n > 0);
    check_plan(&j, "n4", rs, n, NULL);
    for (size_t i = 0; i < n; i++)
        assert_false(rs[i].substitute);
    /* What it streams is its replica share of the new ring, exactly. */
    double w = width(rs, n), share = replica_share(&j, KVI_TOPO_FUTURE, "n4");
    printf("n4 gains %zu ranges, %.4f of the token space (replica share %.4f)\n", n, w, share);
    assert_true(w > share - 1e-9 && w < share + 1e-9);
    free(rs);
    /* A member that gains nothing has no plan. */
    assert_int_equal(kvi_topology_stream_plan(&j, "n1", NULL, NULL, &rs, &n), KV_OK);
    assert_int_equal(n, 0);

    /* One change at a time. */
    assert_int_equal(kvi_topology_begin(&other, &j, KVI_TOPO_OP_JOIN, "n5", "127.0.0.1:7405",
                                        NULL, err, sizeof err), KV_EBUSY);
    assert_non_null(strstr(err, "join of n4 is in progress since epoch 2"));
    assert_int_equal(other.n, 0);
    assert_int_equal(kvi_topology_begin(&other, &j, KVI_TOPO_OP_LEAVE, "n1", NULL, NULL, err,
                                        sizeof err), KV_EBUSY);

    /* Finishing waits for the gainer. */
    assert_int_equal(kvi_topology_finish(&f, &j, err, sizeof err), KV_EBUSY);
    assert_non_null(strstr(err, "n4 has not finished streaming"));
    int changed;
    assert_int_equal(kvi_topology_mark_done(&d, &changed, &j, "n1", err, sizeof err), KV_EINVAL);
    assert_int_equal(kvi_topology_mark_done(&d, &changed, &j, "n4", err, sizeof err), KV_OK);
    assert_true(changed);
    assert_int_equal(d.epoch, 3);
    assert_int_equal(kvi_topology_mark_done(&d2, &changed, &d, "n4", err, sizeof err), KV_OK);
    assert_false(changed);
    assert_int_equal(d2.epoch, 3);
    round_trip(&d);
    assert_int_equal(kvi_topology_finish(&f, &d, err, sizeof err), KV_OK);
    assert_int_equal(f.epoch, 4);
    assert_int_equal(f.op, KVI_TOPO_OP_NONE);
    assert_int_equal(kvi_topology_find(&f, "n4")->state, KVI_TOPO_NORMAL);
    assert_int_equal(kvi_topology_find(&f, "n4")->done, 0);
    assert_null(kvi_topology_invalid(&f));
    assert_int_equal(kvi_topology_gainers(&f, &g, &ng), KV_OK);
    assert_int_equal(ng, 0);
    /* Joining twice is refused; so is an address in use. */
    assert_int_equal(kvi_topology_begin(&other, &f, KVI_TOPO_OP_JOIN, "n4", "127.0.0.1:7499",
                                        NULL, err, sizeof err), KV_EINVAL);
    assert_non_null(strstr(err, "already a member"));
    assert_int_equal(kvi_topology_begin(&other, &f, KVI_TOPO_OP_JOIN, "n9", "127.0.0.1:7401",
                                        NULL, err, sizeof err), KV_EINVAL);
    assert_non_null(strstr(err, "belongs to member n2"));

    kvi_topology_free(&t);
    kvi_topology_free(&j);
    kvi_topology_free(&d);
    kvi_topology_free(&d2);
    kvi_topology_free(&f);
    kvi_topology_free(&other);
}

static void a_leave_streams_from_the_leaving_member_while_it_is_up(void **state)
{
    (void)state;
    kvi_topology t, l;
    cluster_of(&t, 4);
    kvi_topology_init(&l);
    char err[256];
    assert_int_equal(kvi_topology_begin(&l, &t, KVI_TOPO_OP_LEAVE, "n2", NULL, NULL, err,
                                        sizeof err), KV_OK);
    assert_int_equal(kvi_topology_find(&l, "n2")->state, KVI_TOPO_LEAVING);
    size_t *g, ng;
    assert_int_equal(kvi_topology_gainers(&l, &g, &ng), KV_OK);
    assert_int_equal(ng, 3); /* with N=3 of 4, each other member gains some */
    double total = 0;
    for (size_t k = 0; k < ng; k++) {
        const char *id = l.members[g[k]].id;
        assert_string_not_equal(id, "n2");
        kvi_stream_range *rs;
        size_t n;
        assert_int_equal(kvi_topology_stream_plan(&l, id, NULL, NULL, &rs, &n), KV_OK);
        check_plan(&l, id, rs, n, NULL);
        for (size_t i = 0; i < n; i++) {
            assert_string_equal(rs[i].source, "n2");
            assert_false(rs[i].substitute);
        }
        total += width(rs, n);
        free(rs);
        /* n2 down: a surviving replica instead, marked for repair. */
        assert_int_equal(kvi_topology_stream_plan(&l, id, down_set, "n2", &rs, &n), KV_OK);
        check_plan(&l, id, rs, n, "n2");
        for (size_t i = 0; i < n; i++)
            assert_true(rs[i].substitute);
        free(rs);
    }
    free(g);
    /* Everything n2 held moves: its replica share, once. */
    double share = replica_share(&l, KVI_TOPO_CURRENT, "n2");
    printf("leave of n2: %.4f streamed, its replica share %.4f\n", total, share);
    assert_true(total > share - 1e-9 && total < share + 1e-9);

    kvi_topology done, f;
    kvi_topology_init(&f);
    kvi_topology_init(&done);
    assert_int_equal(kvi_topology_copy(&done, &l), KV_OK);
    for (size_t i = 0; i < done.n; i++) {
        int changed;
        kvi_topology next;
        kvi_topology_init(&next);
        int rc = kvi_topology_mark_done(&next, &changed, &done, done.members[i].id, err,
                                        sizeof err);
        if (strcmp(done.members[i].id, "n2") == 0) {
            assert_int_equal(rc, KV_EINVAL);
        } else {
            assert_int_equal(rc, KV_OK);
            assert_int_equal(kvi_topology_copy(&done, &next), KV_OK);
        }
        kvi_topology_free(&next);
    }
    assert_int_equal(done.epoch, 5);
    assert_int_equal(kvi_topology_finish(&f, &done, err, sizeof err), KV_OK);
    assert_int_equal(kvi_topology_find(&f, "n2")->state, KVI_TOPO_LEFT);
    assert_false(kvi_topology_in_ring(&f, kvi_topology_find(&f, "n2"), KVI_TOPO_CURRENT));
    round_trip(&f);
    /* A member that left may join again (its store wiped). */
    kvi_topology again;
    kvi_topology_init(&again);
    assert_int_equal(kvi_topology_begin(&again, &f, KVI_TOPO_OP_JOIN, "n2", "127.0.0.1:7401",
                                        NULL, err, sizeof err), KV_OK);
    assert_int_equal(kvi_topology_find(&again, "n2")->state, KVI_TOPO_JOINING);
    /* Leaving below N members is refused. */
    kvi_topology three, refused;
    cluster_of(&three, 3);
    kvi_topology_init(&refused);
    assert_int_equal(kvi_topology_begin(&refused, &three, KVI_TOPO_OP_LEAVE, "n1", NULL, NULL,
                                        err, sizeof err), KV_EINVAL);
    assert_non_null(strstr(err, "would leave 2 member(s) for 3 replicas"));
    assert_int_equal(kvi_topology_begin(&refused, &three, KVI_TOPO_OP_REMOVE, "n7", NULL, NULL,
                                        err, sizeof err), KV_EINVAL);
    assert_non_null(strstr(err, "n7 is not a member"));
    kvi_topology_free(&three);
    kvi_topology_free(&refused);
    kvi_topology_free(&again);
    kvi_topology_free(&done);
    kvi_topology_free(&f);
    kvi_topology_free(&t);
    kvi_topology_free(&l);
}

static void a_removed_or_replaced_member_is_never_a_source(void **state)
{
    (void)state;
    kvi_topology t, r, p, a;
    cluster_of(&t, 5);
    kvi_topology_init(&r);
    kvi_topology_init(&p);
    kvi_topology_init(&a);
    char err[256];
    /* Remove: the dead member's ranges come from the survivors. */
    assert_int_equal(kvi_topology_begin(&r, &t, KVI_TOPO_OP_REMOVE, "n3", NULL, NULL, err,
                                        sizeof err), KV_OK);
    size_t *g, ng;
    assert_int_equal(kvi_topology_gainers(&r, &g, &ng), KV_OK);
    assert_true(ng >= 2);
    for (size_t k = 0; k < ng; k++) {
        kvi_stream_range *rs;
        size_t n;
        assert_int_equal(kvi_topology_stream_plan(&r, r.members[g[k]].id, NULL, NULL, &rs, &n),
                         KV_OK);
        check_plan(&r, r.members[g[k]].id, rs, n, "n3");
        for (size_t i = 0; i < n; i++)
            assert_true(rs[i].substitute);
        free(rs);
    }
    free(g);
    /* Abort: n3 normal again, no operation. */
    assert_int_equal(kvi_topology_abort(&a, &r, err, sizeof err), KV_OK);
    assert_int_equal(kvi_topology_find(&a, "n3")->state, KVI_TOPO_NORMAL);
    assert_int_equal(a.op, KVI_TOPO_OP_NONE);
    assert_int_equal(a.epoch, 3);

    /* Replace: the same id (the same tokens) at a new address; it gains
     * every range it is a home of, from the others. */
    assert_int_equal(kvi_topology_begin(&p, &t, KVI_TOPO_OP_REPLACE, "n3", "127.0.0.1:7499",
                                        "127.0.0.1:8499", err, sizeof err), KV_OK);
    const kvi_topo_member *n3 = kvi_topology_find(&p, "n3");
    assert_int_equal(n3->state, KVI_TOPO_REPLACING);
    assert_string_equal(n3->addr, "127.0.0.1:7499");
    assert_false(kvi_topology_readable(n3));
    assert_false(kvi_topology_acceptor(&p, n3));
    assert_true(kvi_topology_in_ring(&p, n3, KVI_TOPO_CURRENT));
    assert_int_equal(kvi_topology_gainers(&p, &g, &ng), KV_OK);
    assert_int_equal(ng, 1);
    assert_string_equal(p.members[g[0]].id, "n3");
    free(g);
    kvi_stream_range *rs;
    size_t n;
    assert_int_equal(kvi_topology_stream_plan(&p, "n3", NULL, NULL, &rs, &n), KV_OK);
    check_plan(&p, "n3", rs, n, "n3");
    double w = width(rs, n), share = replica_share(&p, KVI_TOPO_CURRENT, "n3");
    assert_true(w > share - 1e-9 && w < share + 1e-9);
    free(rs);
    /* Every other source down: no source, and the plan says so. */
    kvi_topology lone;
    kvi_topology_init(&lone);
    const char *ids[] = {"a", "b"}, *addrs[] = {"127.0.0.1:1", "127.0.0.1:2"};
    assert_int_equal(kvi_topology_first(&lone, 2, 16, ids, addrs, NULL, 2), KV_OK);
    kvi_topology lp;
    kvi_topology_init(&lp);
    assert_int_equal(kvi_topology_begin(&lp, &lone, KVI_TOPO_OP_REPLACE, "b", "127.0.0.1:3",
                                        NULL, err, sizeof err), KV_OK);
    assert_int_equal(kvi_topology_stream_plan(&lp, "b", down_set, "a", &rs, &n), KV_OK);
    assert_true(n >= 1);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(rs[i].source, "");
    free(rs);
    /* Replacing needs an address; a member in motion cannot be replaced. */
    kvi_topology refused;
    kvi_topology_init(&refused);
    assert_int_equal(kvi_topology_begin(&refused, &t, KVI_TOPO_OP_REPLACE, "n3", NULL, NULL,
                                        err, sizeof err), KV_EINVAL);
    assert_int_equal(kvi_topology_abort(&refused, &t, err, sizeof err), KV_EINVAL);
    assert_non_null(strstr(err, "no topology change is in progress"));
    kvi_topology_free(&refused);
    kvi_topology_free(&lone);
    kvi_topology_free(&lp);
    kvi_topology_free(&t);
    kvi_topology_free(&r);
    kvi_topology_free(&p);
    kvi_topology_free(&a);
}

/* Random sequences of changes, each carried to its end or aborted: every
 * record is consistent, round-trips, and is one epoch past the last. */
/* A cleanup's ranges: exactly the tokens of which the member is no home,
 * in order, merged; refused while a change runs or for a non-member. */
static void foreign_ranges_are_the_complement_of_a_members_homes(void **state)
{
    (void)state;
    kvi_topology t, j;
    cluster_of(&t, 5);
    kvi_topology_init(&j);
    kvi_ring *ring;
    assert_int_equal(kvi_topology_build_ring(&ring, &t, KVI_TOPO_CURRENT), KV_OK);
    kvi_token_range *r;
    size_t n;
    assert_int_equal(kvi_topology_foreign_ranges(&t, "n2", &r, &n), KV_OK);
    assert_true(n > 0);
    int self = kvi_ring_find(ring, "n2");
    uint64_t covered = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(r[i].first <= r[i].last);
        if (i) /* in order, and not adjacent (those are merged) */
            assert_true(r[i].first > r[i - 1].last + 1);
        covered += r[i].last - r[i].first + 1;
    }
    /* Each sampled token: foreign exactly when n2 is not among its homes. */
    uint64_t token = 0x1234567;
    for (int k = 0; k < 20000; k++, token = token * 6364136223846793005ull + 1442695040888963407ull) {
        const uint32_t *pref;
        size_t np = kvi_ring_preference(ring, token, &pref);
        int home = 0;
        for (size_t i = 0; i < np; i++)
            home |= (int)pref[i] == self;
        int foreign = 0;
        for (size_t i = 0; i < n; i++)
            foreign |= token >= r[i].first && token <= r[i].last;
        assert_int_equal(foreign, !home);
    }
    /* With N=3 of 5 members, about 2/5 of the token space is foreign. */
    double share = (double)covered / 18446744073709551616.0;
    assert_true(share > 0.25 && share < 0.55);
    free(r);
    kvi_ring_free(ring);
    char err[256];
    assert_int_equal(kvi_topology_begin(&j, &t, KVI_TOPO_OP_LEAVE, "n5", NULL, NULL, err,
                                        sizeof err), KV_OK);
    assert_int_equal(kvi_topology_foreign_ranges(&j, "n2", &r, &n), KV_EBUSY);
    assert_null(r);
    assert_int_equal(kvi_topology_foreign_ranges(&t, "n9", &r, &n), KV_EINVAL);
    kvi_topology_free(&t);
    kvi_topology_free(&j);
}

static void any_sequence_of_changes_keeps_the_record_consistent(void **state)
{
    (void)state;
    kvi_topology t, next;
    cluster_of(&t, 4);
    kvi_topology_init(&next);
    uint64_t s = 12345;
    char err[256];
    int joined = 0;
    for (int step = 0; step < 60; step++) {
        uint64_t roll = next_token(&s);
        uint64_t before = t.epoch;
        int rc;
        if (t.op != KVI_TOPO_OP_NONE) {
            if (roll % 5 == 0) {
                rc = kvi_topology_abort(&next, &t, err, sizeof err);
            } else {
                size_t *g, ng;
                assert_int_equal(kvi_topology_gainers(&t, &g, &ng), KV_OK);
                size_t pending = ng;
                for (size_t k = 0; k < ng; k++)
                    pending -= t.members[g[k]].done;
                if (pending) {
                    size_t k = 0;
                    while (t.members[g[k]].done)
                        k++;
                    int changed;
                    rc = kvi_topology_mark_done(&next, &changed, &t, t.members[g[k]].id, err,
                                                sizeof err);
                    assert_true(changed);
                } else {
                    rc = kvi_topology_finish(&next, &t, err, sizeof err);
                }
                free(g);
            }
            assert_int_equal(rc, KV_OK);
        } else {
            /* A member chosen at random, or a new one. */
            const kvi_topo_member *m = &t.members[roll % t.n];
            kvi_topo_op op = (kvi_topo_op)(1 + (roll >> 8) % 4);
            char id[16], addr[32];
            snprintf(id, sizeof id, "j%d", joined);
            snprintf(addr, sizeof addr, "127.0.0.2:%d", 7000 + joined);
            if (op == KVI_TOPO_OP_JOIN)
                rc = kvi_topology_begin(&next, &t, op, id, addr, NULL, err, sizeof err);
            else
                rc = kvi_topology_begin(&next, &t, op, m->id,
                                        op == KVI_TOPO_OP_REPLACE ? addr : NULL, NULL, err,
                                        sizeof err);
            joined += op == KVI_TOPO_OP_JOIN || op == KVI_TOPO_OP_REPLACE;
            if (rc != KV_OK) {
                /* Refused for the member's state or the member count only. */
                assert_int_equal(rc, KV_EINVAL);
                assert_int_equal(next.n, 0);
                continue;
            }
        }
        assert_int_equal(next.epoch, before + 1);
        assert_null(kvi_topology_invalid(&next));
        round_trip(&next);
        assert_int_equal(kvi_topology_copy(&t, &next), KV_OK);
    }
    printf("after 60 steps: epoch %llu, %zu members\n", (unsigned long long)t.epoch, t.n);
    assert_true(t.epoch > 20);
    kvi_topology_free(&t);
    kvi_topology_free(&next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_codec_round_trips_and_refuses_what_is_inconsistent),
        cmocka_unit_test(a_join_streams_exactly_what_the_new_member_gains),
        cmocka_unit_test(a_leave_streams_from_the_leaving_member_while_it_is_up),
        cmocka_unit_test(a_removed_or_replaced_member_is_never_a_source),
        cmocka_unit_test(foreign_ranges_are_the_complement_of_a_members_homes),
        cmocka_unit_test(any_sequence_of_changes_keeps_the_record_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
