/* Key states in a real store: coordinated writes, siblings that survive a
 * reopen, merges from other replicas, format-1 records read as states, and
 * damaged states refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "api/fixture.h"
#include "cluster/replica_store.h"
#include "handle.h"
#include "storage/raw.h"

#define EMB(state) (DB(state)->embedded)

static kvi_sibling value_of(const char *text)
{
    kvi_sibling v;
    memset(&v, 0, sizeof v);
    v.value = (const unsigned char *)text;
    v.value_len = strlen(text);
    v.write_ms = 1;
    return v;
}

static int holds(const kvi_state *s, const char *text)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->sibs[i].value_len == strlen(text) &&
            memcmp(s->sibs[i].value, text, s->sibs[i].value_len) == 0)
            return 1;
    return 0;
}

static kvi_state st, other;

static void stale_writers_become_siblings_that_persist(void **state)
{
    fixture *f = *state;
    kvi_buf holder = {0};
    kvi_sibling v = value_of("v0");
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "k", 1, NULL, "n1", &v),
                     KV_OK);
    kvi_vv seen = st.clock;
    kvi_sibling a = value_of("alice"), b = value_of("bob");
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "k", 1, &seen, "n1", &a),
                     KV_OK);
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "k", 1, &seen, "n1", &b),
                     KV_OK);
    assert_int_equal(st.n, 2);
    assert_true(holds(&st, "alice") && holds(&st, "bob"));
    kvi_buf_free(&holder);

    /* Both are on disk. */
    kv_close(f->db);
    assert_int_equal(kv_open(&f->db, f->dir, NULL), KV_OK);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "k", 1), KV_OK);
    assert_int_equal(st.n, 2);
    assert_true(holds(&st, "alice") && holds(&st, "bob"));
    assert_int_equal(kvi_state_version(&st), 3);
    /* A write with the context of that read resolves them. */
    kvi_vv both = st.clock;
    kvi_sibling r = value_of("resolved");
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "k", 1, &both, "n2", &r),
                     KV_OK);
    assert_int_equal(st.n, 1);
    assert_int_equal(r.version, 4);
    kvi_buf_free(&holder);
}

static void merges_change_only_what_is_new(void **state)
{
    fixture *f = *state;
    kvi_buf holder = {0};
    kvi_sibling base = value_of("base");
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "m", 1, NULL, "n1", &base),
                     KV_OK);
    /* Another replica wrote on top of the same base. */
    kvi_state_init(&other);
    int changed = -1;
    assert_int_equal(kvi_replica_merge(&changed, f->db->embedded, "m", 1, &st), KV_OK);
    assert_int_equal(changed, 0); /* the same state: nothing written */
    other = st;
    kvi_vv ctx = other.clock;
    kvi_sibling newer = value_of("newer");
    assert_int_equal(kvi_state_write(&other, &ctx, "n2", &newer), KV_OK);
    assert_int_equal(kvi_replica_merge(&changed, f->db->embedded, "m", 1, &other), KV_OK);
    assert_int_equal(changed, 1);
    kvi_buf_free(&holder);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "m", 1), KV_OK);
    assert_int_equal(st.n, 1);
    assert_true(holds(&st, "newer"));
    /* Merging into an absent key stores the incoming state as is. */
    assert_int_equal(kvi_replica_merge(&changed, f->db->embedded, "fresh", 5, &other), KV_OK);
    assert_int_equal(changed, 1);
    kvi_buf_free(&holder);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "fresh", 5), KV_OK);
    assert_true(kvi_state_equal(&st, &other));
    kvi_buf_free(&holder);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "absent", 6), KV_ENOTFOUND);
    kvi_buf_free(&holder);
}

static void embedded_records_read_as_states(void **state)
{
    fixture *f = *state;
    uint64_t v;
    assert_int_equal(kv_put(&v, f->db, "e", 1, "one", 3, NULL), KV_OK);
    assert_int_equal(kv_put(&v, f->db, "e", 1, "two", 3, NULL), KV_OK);
    kvi_buf holder = {0};
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "e", 1), KV_OK);
    assert_int_equal(st.n, 1);
    assert_true(holds(&st, "two"));
    assert_string_equal(st.sibs[0].dot.node, KVI_LOCAL_NODE);
    assert_int_equal(kvi_state_version(&st), 2);
    /* A cluster write with that context supersedes it and counts on. */
    kvi_vv ctx = st.clock;
    kvi_sibling three = value_of("three");
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "e", 1, &ctx, "n1", &three),
                     KV_OK);
    assert_int_equal(st.n, 1);
    assert_int_equal(three.version, 3);
    kvi_buf_free(&holder);
}

static void damaged_states_are_refused(void **state)
{
    fixture *f = *state;
    kvi_buf holder = {0};
    kvi_sibling v = value_of("precious");
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "d", 1, NULL, "n1", &v),
                     KV_OK);
    kvi_buf_free(&holder);
    kv_close(f->db);
    f->db = NULL;
    raw_db raw;
    assert_int_equal(raw_open(&raw, f->dir), 0);
    size_t len;
    char *rec = raw_get(&raw, "d", 1, &len);
    assert_non_null(rec);
    rec[len / 2] ^= 0x40;
    assert_int_equal(raw_put(&raw, "d", 1, rec, len), 0);
    free(rec);
    raw_close(&raw);
    assert_int_equal(kv_open(&f->db, f->dir, NULL), KV_OK);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "d", 1), KV_ECORRUPT);
    kvi_sibling w = value_of("over");
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "d", 1, NULL, "n1", &w),
                     KV_ECORRUPT);
    kvi_buf_free(&holder);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_open, fixture_close)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(stale_writers_become_siblings_that_persist),
        T(merges_change_only_what_is_new),
        T(embedded_records_read_as_states),
        T(damaged_states_are_refused),
    };
    return cmocka_run_group_tests_name("cluster.replica_store", tests, NULL, NULL);
}
