/* The member list and what gossip may change in it: new members, moves,
 * a node restarted under a new id at the same address, configured peers
 * left to discovery, joining and leaving members not taken, and nothing
 * ever removed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cluster/members.h"

static kvi_gossip_entry entry(const char *id, const char *addr, uint64_t gen, uint8_t status)
{
    kvi_gossip_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%s", id);
    snprintf(e.addr, sizeof e.addr, "%s", addr);
    snprintf(e.http, sizeof e.http, "http-%s", addr);
    e.generation = gen;
    e.heartbeat = 1;
    e.status = status;
    return e;
}

static void table_of(kvi_gossip_table *t, const kvi_gossip_entry *es, size_t n)
{
    kvi_gossip_table_init(t);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(kvi_gossip_merge_entry(t, &es[i]), 1);
}

static void list_with_self(kvi_member_list *l)
{
    kvi_members_init(l);
    assert_int_equal(kvi_members_add(l, "self", "h:1", NULL, 0), 0);
}

static void up_and_stopped_members_are_taken(void **state)
{
    (void)state;
    kvi_member_list l;
    list_with_self(&l);
    kvi_gossip_entry es[] = {
        entry("self", "h:1", 10, KVI_MEMBER_UP),      /* this node: not again */
        entry("a", "h:2", 10, KVI_MEMBER_UP),
        entry("b", "h:3", 10, KVI_MEMBER_STOPPED),    /* stopped: still a member */
        entry("c", "h:4", 10, KVI_MEMBER_JOINING),    /* not until it is up */
        entry("d", "h:5", 10, KVI_MEMBER_LEAVING),    /* on its way out */
    };
    kvi_gossip_table t;
    table_of(&t, es, 5);
    assert_int_equal(kvi_members_merge_gossip(&l, &t), 2);
    assert_int_equal(l.n, 3);
    assert_true(kvi_members_find_id(&l, "a") > 0);
    assert_true(kvi_members_find_id(&l, "b") > 0);
    assert_int_equal(kvi_members_find_id(&l, "c"), -1);
    assert_int_equal(kvi_members_find_id(&l, "d"), -1);
    assert_string_equal(l.items[kvi_members_find_id(&l, "a")].http, "http-h:2");
    assert_true(kvi_members_complete(&l));
    /* The same news again changes nothing: the ring is not rebuilt. */
    assert_int_equal(kvi_members_merge_gossip(&l, &t), 0);
    /* c comes up: taken now. */
    kvi_gossip_entry c_up = entry("c", "h:4", 10, KVI_MEMBER_UP);
    c_up.heartbeat = 2;
    assert_int_equal(kvi_gossip_merge_entry(&t, &c_up), 1);
    assert_int_equal(kvi_members_merge_gossip(&l, &t), 1);
    assert_int_equal(l.n, 4);
    /* A member never heard of again (or down) is not removed. */
    kvi_gossip_table empty;
    kvi_gossip_table_init(&empty);
    assert_int_equal(kvi_members_merge_gossip(&l, &empty), 0);
    assert_int_equal(l.n, 4);
    kvi_gossip_table_free(&t);
    kvi_members_free(&l);
}

static void moves_and_replacements(void **state)
{
    (void)state;
    kvi_member_list l;
    list_with_self(&l);
    assert_int_equal(kvi_members_add(&l, "a", "h:2", NULL, 0), 0);
    assert_int_equal(kvi_members_add(&l, "old", "h:3", NULL, 0), 0);
    /* a restarted at another address: it moves. */
    kvi_gossip_entry es[] = {
        entry("a", "h:9", 20, KVI_MEMBER_UP),
        entry("new", "h:3", 30, KVI_MEMBER_UP),
        entry("old", "h:3", 10, KVI_MEMBER_STOPPED),
    };
    kvi_gossip_table t;
    table_of(&t, es, 3);
    assert_int_equal(kvi_members_merge_gossip(&l, &t), 2);
    assert_int_equal(l.n, 3);
    assert_string_equal(l.items[kvi_members_find_id(&l, "a")].addr, "h:9");
    /* A later generation under a new id at old's address replaces it... */
    assert_int_equal(kvi_members_find_id(&l, "old"), -1);
    assert_string_equal(l.items[kvi_members_find_id(&l, "new")].addr, "h:3");
    /* ...and the old entry, still gossiped, does not come back. */
    assert_int_equal(kvi_members_merge_gossip(&l, &t), 0);
    assert_int_equal(l.n, 3);
    kvi_gossip_table_free(&t);

    /* A node that never knew old: it takes new only, and so ends with the
     * same list as the node that knew old first. */
    kvi_member_list other;
    list_with_self(&other);
    kvi_gossip_entry older_first[] = {
        entry("old", "h:3", 10, KVI_MEMBER_STOPPED),
        entry("new", "h:3", 30, KVI_MEMBER_UP),
    };
    table_of(&t, older_first, 2);
    assert_int_equal(kvi_members_merge_gossip(&other, &t), 1);
    assert_int_equal(other.n, 2);
    assert_string_equal(other.items[1].id, "new");
    kvi_gossip_table_free(&t);
    kvi_members_free(&other);
    kvi_members_free(&l);
}

static void configured_peers_are_left_to_discovery(void **state)
{
    (void)state;
    kvi_member_list l;
    list_with_self(&l);
    assert_int_equal(kvi_members_add(&l, NULL, "h:2", NULL, 1), 0);  /* id unknown */
    assert_int_equal(kvi_members_add(&l, "b", "h:3", NULL, 1), 0);   /* id known */
    assert_false(kvi_members_complete(&l));
    kvi_gossip_entry es[] = {
        entry("a", "h:2", 10, KVI_MEMBER_UP),   /* at an unconfirmed peer's address */
        entry("b", "h:7", 10, KVI_MEMBER_UP),   /* a peer elsewhere: the operator's word */
        entry("x", "h:1", 10, KVI_MEMBER_UP),   /* this node's address: an earlier life */
    };
    kvi_gossip_table t;
    table_of(&t, es, 3);
    assert_int_equal(kvi_members_merge_gossip(&l, &t), 0);
    assert_int_equal(l.n, 3);
    assert_null(l.items[1].id);
    assert_string_equal(l.items[2].addr, "h:3");
    assert_false(kvi_members_complete(&l));
    kvi_gossip_table_free(&t);
    kvi_members_free(&l);
}

static void removal_keeps_the_rest(void **state)
{
    (void)state;
    kvi_member_list l;
    list_with_self(&l);
    for (int i = 0; i < 20; i++) {
        char id[8], addr[16];
        snprintf(id, sizeof id, "m%d", i);
        snprintf(addr, sizeof addr, "h:%d", 100 + i);
        assert_int_equal(kvi_members_add(&l, id, addr, NULL, 0), 0);
    }
    kvi_members_remove(&l, 3);
    assert_int_equal(l.n, 20);
    assert_int_equal(kvi_members_find_id(&l, "m2"), -1);
    assert_int_equal(kvi_members_find_id(&l, "m19"), 3);
    assert_int_equal(kvi_members_find_addr(&l, "h:1"), 0);
    kvi_members_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(up_and_stopped_members_are_taken),
        cmocka_unit_test(moves_and_replacements),
        cmocka_unit_test(configured_peers_are_left_to_discovery),
        cmocka_unit_test(removal_keeps_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
