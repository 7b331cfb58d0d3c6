/* The cluster view a client builds from a node's CLUSTER description:
 * members, ring and connections agree; incomplete, malformed, oversized and
 * inconsistent descriptions are refused with distinct codes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cluster/serial.h"
#include "cluster/view.h"
#include "format/record.h"

static int from(kvi_view **v, const char *json)
{
    return kvi_view_from_json(v, json, strlen(json), NULL, 0, NULL, NULL);
}

static void a_complete_description_builds_the_ring(void **state)
{
    (void)state;
    kvi_view *v = NULL;
    assert_int_equal(from(&v, "{\"nodeId\":\"b\",\"replicas\":2,\"vnodes\":16,\"complete\":true,"
                              "\"members\":[{\"nodeId\":\"b\",\"address\":\"127.0.0.1:7402\","
                              "\"httpAddress\":null},{\"nodeId\":\"a\",\"address\":"
                              "\"127.0.0.1:7401\",\"httpAddress\":\"127.0.0.1:8081\"},"
                              "{\"nodeId\":\"c\",\"address\":\"127.0.0.1:7403\"}]}"),
                     KV_OK);
    assert_int_equal(v->n, 3);
    assert_int_equal(v->self, -1);
    assert_int_equal(v->replicas, 2);
    for (size_t i = 0; i < v->n; i++) {
        assert_string_equal(kvi_ring_member_id(v->ring, i), v->members[i].id);
        assert_non_null(v->members[i].client); /* a client has no self */
    }
    assert_string_equal(v->members[1].http, "127.0.0.1:8081");
    assert_null(v->members[0].http);
    /* The same ring as a node computes from the same ids. */
    const char *ids[] = {"a", "b", "c"};
    kvi_ring *r = NULL;
    assert_int_equal(kvi_ring_build(&r, ids, 3, 16, 2), KV_OK);
    for (uint64_t t = 1; t < 64; t++) {
        const uint32_t *p1, *p2;
        uint64_t token = t * 0x9e3779b97f4a7c15ull;
        size_t n1 = kvi_ring_preference(v->ring, token, &p1);
        size_t n2 = kvi_ring_preference(r, token, &p2);
        assert_int_equal(n1, 2);
        assert_int_equal(n2, 2);
        for (size_t i = 0; i < 2; i++)
            assert_string_equal(kvi_ring_member_id(v->ring, p1[i]), kvi_ring_member_id(r, p2[i]));
    }
    kvi_ring_free(r);
    kvi_view_ref(v);
    kvi_view_unref(v);
    kvi_view_unref(v); /* the last reference frees it (ASan checks) */
}

/* N is "replicationFactor" when the node sends it ("replicas" then counts
 * the copies a key has, fewer while the ring is small); else "replicas", as
 * an older node sent N. */
static void replication_factor_is_preferred(void **state)
{
    (void)state;
    kvi_view *v = NULL;
    assert_int_equal(from(&v, "{\"replicas\":2,\"replicationFactor\":3,\"vnodes\":8,"
                              "\"complete\":true,\"members\":[{\"nodeId\":\"a\",\"address\":"
                              "\"127.0.0.1:7401\"},{\"nodeId\":\"b\",\"address\":\"127.0.0.1:7402\"}]}"),
                     KV_OK);
    assert_int_equal(v->replicas, 3);
    kvi_view_unref(v);
    assert_int_equal(from(&v, "{\"replicas\":1,\"replicationFactor\":17,\"vnodes\":8,"
                              "\"complete\":true,\"members\":[{\"nodeId\":\"a\",\"address\":"
                              "\"127.0.0.1:7401\"}]}"),
                     KV_EIO);
    assert_null(v);
}

/* Member states: a joining or left member is no ring member; a replacing
 * one is, but answers no reads (kvi_view.no_reads). */
static void member_states_shape_the_ring_and_reads(void **state)
{
    (void)state;
    kvi_view *v = NULL;
    assert_int_equal(from(&v, "{\"replicas\":3,\"vnodes\":8,\"complete\":true,\"members\":["
                              "{\"nodeId\":\"a\",\"state\":\"normal\",\"address\":\"127.0.0.1:7401\"},"
                              "{\"nodeId\":\"b\",\"state\":\"replacing\",\"address\":\"127.0.0.1:7402\"},"
                              "{\"nodeId\":\"c\",\"state\":\"joining\",\"address\":\"127.0.0.1:7403\"},"
                              "{\"nodeId\":\"d\",\"state\":\"leaving\",\"address\":\"127.0.0.1:7404\"},"
                              "{\"nodeId\":\"e\",\"state\":\"left\",\"address\":\"127.0.0.1:7405\"}]}"),
                     KV_OK);
    assert_int_equal(v->n, 3);
    assert_non_null(v->no_reads);
    for (size_t i = 0; i < v->n; i++)
        assert_int_equal(v->no_reads[i], strcmp(v->members[i].id, "b") == 0);
    kvi_view_unref(v);
    /* Every member readable: no flags at all. */
    assert_int_equal(from(&v, "{\"replicas\":1,\"vnodes\":8,\"complete\":true,\"members\":["
                              "{\"nodeId\":\"a\",\"state\":\"normal\",\"address\":\"127.0.0.1:7401\"}]}"),
                     KV_OK);
    assert_null(v->no_reads);
    kvi_view_unref(v);
}

/* While a fourth member joins three, a SERIAL round on a key it gains runs
 * with the key's three homes and the joining one, and its homes hash
 * differs from the same ring's without the change (an acceptor whose view
 * lacks the join refuses the proposer). */
static void a_serial_round_during_a_join_includes_the_pending_home(void **state)
{
    (void)state;
    const char *ids[] = {"a", "b", "c"};
    const char *addrs[] = {"127.0.0.1:7401", "127.0.0.1:7402", "127.0.0.1:7403"};
    const char *fut[] = {"a", "b", "c", "d"};
    const char *extra_ids[] = {"d"}, *extra_addrs[] = {"127.0.0.1:7404"};
    kvi_view_config cfg = {.ids = ids, .addrs = addrs, .n = 3, .self = 0, .replicas = 3,
                           .vnodes = 16};
    kvi_view *plain = NULL, *moving = NULL;
    assert_int_equal(kvi_view_build(&plain, &cfg), KV_OK);
    cfg.future_ids = fut;
    cfg.n_future = 4;
    cfg.extra_ids = extra_ids;
    cfg.extra_addrs = extra_addrs;
    cfg.n_extra = 1;
    assert_int_equal(kvi_view_build(&moving, &cfg), KV_OK);
    int gained = 0, kept = 0;
    for (int k = 0; k < 200; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        uint32_t p[16];
        size_t pending;
        size_t n = kvi_serial_participants(moving, key, strlen(key), p, &pending);
        int d_home = kvi_coord_future_home(moving, kvi_key_token(key, strlen(key)), 3);
        if (d_home) {
            /* a, b, c (all three are homes with three members) and d */
            assert_int_equal(n, 4);
            assert_int_equal(pending, 1);
            assert_int_equal(p[3], 3); /* d: the first extra member */
            assert_string_equal(kvi_view_member_at(moving, p[3])->id, "d");
            assert_true(kvi_serial_homes_hash(moving, key, strlen(key)) !=
                        kvi_serial_homes_hash(plain, key, strlen(key)));
            gained++;
        } else {
            assert_int_equal(n, 3);
            assert_int_equal(pending, 0);
            assert_true(kvi_serial_homes_hash(moving, key, strlen(key)) ==
                        kvi_serial_homes_hash(plain, key, strlen(key)));
            kept++;
        }
    }
    assert_true(gained > 0 && kept > 0);
    kvi_view_unref(plain);
    kvi_view_unref(moving);
}

static void bad_descriptions_are_refused(void **state)
{
    (void)state;
    kvi_view *v = NULL;
    assert_int_equal(from(&v, "{\"nodeId\":\"a\",\"replicas\":3,\"vnodes\":8,\"complete\":false,"
                              "\"members\":[{\"nodeId\":\"a\",\"address\":\"h:1\"},"
                              "{\"nodeId\":null,\"address\":\"h:2\"}]}"),
                     KV_EUNAVAILABLE);
    assert_null(v);
    const char *malformed[] = {
        "",
        "not json",
        "{\"complete\":true}",
        "{\"replicas\":3,\"vnodes\":8,\"complete\":true,\"members\":[]}",
        "{\"replicas\":0,\"vnodes\":8,\"complete\":true,\"members\":[{\"nodeId\":\"a\",\"address\":\"h:1\"}]}",
        "{\"replicas\":3,\"vnodes\":8,\"complete\":true,\"members\":[{\"nodeId\":5,\"address\":\"h:1\"}]}",
        "{\"replicas\":3,\"vnodes\":8,\"complete\":true,\"members\":[{\"nodeId\":\"a\"}]}",
        /* 2 members x 4096 vnodes is within the limits; 1024 x 4096 is not */
        "{\"replicas\":3,\"vnodes\":99999,\"complete\":true,\"members\":[{\"nodeId\":\"a\",\"address\":\"h:1\"}]}",
    };
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        assert_int_equal(from(&v, malformed[i]), KV_EIO);
        assert_null(v);
    }
    /* Well-formed but inconsistent: a duplicate id, an unparsable address. */
    assert_int_equal(from(&v, "{\"replicas\":3,\"vnodes\":8,\"complete\":true,\"members\":["
                              "{\"nodeId\":\"a\",\"address\":\"h:1\"},"
                              "{\"nodeId\":\"a\",\"address\":\"h:2\"}]}"),
                     KV_EINVAL);
    assert_int_equal(from(&v, "{\"replicas\":3,\"vnodes\":8,\"complete\":true,\"members\":["
                              "{\"nodeId\":\"a\",\"address\":\"nowhere\"}]}"),
                     KV_EINVAL);
    assert_null(v);
}

static void a_ring_too_large_is_refused(void **state)
{
    (void)state;
    /* 300 members of 1024 vnodes would be 307200 tokens: over the cap. */
    char *json = malloc(64 * 1024);
    size_t len = (size_t)sprintf(json, "{\"replicas\":3,\"vnodes\":1024,\"complete\":true,"
                                       "\"members\":[");
    for (int i = 0; i < 300; i++)
        len += (size_t)sprintf(json + len, "%s{\"nodeId\":\"n%d\",\"address\":\"h:%d\"}",
                               i ? "," : "", i, i + 1);
    strcpy(json + len, "]}");
    kvi_view *v = NULL;
    assert_int_equal(from(&v, json), KV_EIO);
    assert_null(v);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_complete_description_builds_the_ring),
        cmocka_unit_test(replication_factor_is_preferred),
        cmocka_unit_test(member_states_shape_the_ring_and_reads),
        cmocka_unit_test(a_serial_round_during_a_join_includes_the_pending_home),
        cmocka_unit_test(bad_descriptions_are_refused),
        cmocka_unit_test(a_ring_too_large_is_refused),
    };
    return cmocka_run_group_tests_name("cluster.view", tests, NULL, NULL);
}
