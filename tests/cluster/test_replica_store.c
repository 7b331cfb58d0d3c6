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
#include "cluster/state_values.h"
#include "cluster/replica_store.h"
#include "client/handle.h"
#include "storage/raw.h"
#include "storage/store.h"

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
    assert_int_equal(kvi_replica_merge(&changed, NULL, f->db->embedded, "m", 1, &st), KV_OK);
    assert_int_equal(changed, 0); /* the same state: nothing written */
    other = st;
    kvi_vv ctx = other.clock;
    kvi_sibling newer = value_of("newer");
    assert_int_equal(kvi_state_write(&other, &ctx, "n2", &newer), KV_OK);
    assert_int_equal(kvi_replica_merge(&changed, NULL, f->db->embedded, "m", 1, &other), KV_OK);
    assert_int_equal(changed, 1);
    kvi_buf_free(&holder);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "m", 1), KV_OK);
    assert_int_equal(st.n, 1);
    assert_true(holds(&st, "newer"));
    /* Merging into an absent key stores the incoming state as is. */
    assert_int_equal(kvi_replica_merge(&changed, NULL, f->db->embedded, "fresh", 5, &other), KV_OK);
    assert_int_equal(changed, 1);
    kvi_buf_free(&holder);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "fresh", 5), KV_OK);
    assert_true(kvi_state_equal(&st, &other));
    kvi_buf_free(&holder);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "absent", 6), KV_ENOTFOUND);
    kvi_buf_free(&holder);
}

/* States from several writers at once: merged in one store write, the
 * same key's items in order, and an item that fails (the sibling limit)
 * failing alone. */
static kvi_state a1, a2, b1, full;

static void many_states_merge_in_one_write(void **state)
{
    fixture *f = *state;
    kvi_state_init(&a1);
    kvi_state_init(&a2);
    kvi_state_init(&b1);
    kvi_state_init(&full);
    kvi_sibling x = value_of("from-n1"), y = value_of("from-n2"), z = value_of("b");
    assert_int_equal(kvi_state_write(&a1, NULL, "n1", &x), KV_OK);
    assert_int_equal(kvi_state_write(&a2, NULL, "n2", &y), KV_OK); /* concurrent with a1 */
    assert_int_equal(kvi_state_write(&b1, NULL, "n1", &z), KV_OK);
    /* A key already holding the sibling limit, and a state adding one more. */
    kvi_buf holder = {0};
    for (unsigned i = 0; i < KVI_STATE_MAX_SIBLINGS; i++) {
        char node[8];
        snprintf(node, sizeof node, "w%u", i);
        kvi_sibling v = value_of("many");
        assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "full", 4, NULL, node,
                                           &v),
                         KV_OK);
    }
    kvi_buf_free(&holder);
    kvi_sibling extra = value_of("one too many");
    assert_int_equal(kvi_state_write(&full, NULL, "w99", &extra), KV_OK);

    kvi_merge_item items[] = {
        {.key = "a", .key_len = 1, .incoming = &a1, .status = -1},
        {.key = "full", .key_len = 4, .incoming = &full, .status = -1},
        {.key = "b", .key_len = 1, .incoming = &b1, .status = -1},
        {.key = "a", .key_len = 1, .incoming = &a2, .status = -1},
    };
    assert_int_equal(kvi_replica_merge_many(f->db->embedded, items, 4, 0), KV_OK);
    assert_int_equal(items[0].status, KV_OK);
    assert_int_equal(items[1].status, KV_ETOOBIG);
    assert_int_equal(items[2].status, KV_OK);
    assert_int_equal(items[3].status, KV_OK);
    assert_int_equal(items[2].version, 1);

    /* Both writers' values of "a" are there, as siblings; "b" too; "full"
     * is as it was. */
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "a", 1), KV_OK);
    assert_int_equal(st.n, 2);
    assert_true(holds(&st, "from-n1") && holds(&st, "from-n2"));
    kvi_buf_free(&holder);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "b", 1), KV_OK);
    assert_true(holds(&st, "b"));
    kvi_buf_free(&holder);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "full", 4), KV_OK);
    assert_int_equal(st.n, KVI_STATE_MAX_SIBLINGS);
    assert_false(holds(&st, "one too many"));
    kvi_buf_free(&holder);
}

/* Coordinated writes and merges in one batch (a loop iteration's writes):
 * writes of one key apply in order, each to the state the one before left,
 * so their versions count on; a CAS compares against that state and a
 * refused one says why without touching the key; a replicated state merges
 * into the coordinated one. */
static void coordinated_writes_and_merges_share_one_write(void **state)
{
    fixture *f = *state;
    kvi_sibling w1 = value_of("first"), w2 = value_of("second"), w3 = value_of("cas-bad"),
                w4 = value_of("cas-good"), r = value_of("from-n2");
    kvi_replica_write_args lww = {.node = "n1", .supersede_held = 1};
    kvi_replica_write_args cas_bad = {.node = "n1", .supersede_held = 1, .check_version = 1,
                                      .expected_version = 7};
    kvi_replica_write_args cas_good = {.node = "n1", .supersede_held = 1, .check_version = 1,
                                       .expected_version = 2};
    kvi_state incoming;
    kvi_state_init(&incoming);
    assert_int_equal(kvi_state_write(&incoming, NULL, "n2", &r), KV_OK);
    char why[200] = "";
    kvi_merge_item items[] = {
        {.key = "k", .key_len = 1, .args = &lww, .value = &w1},
        {.key = "k", .key_len = 1, .args = &lww, .value = &w2},
        {.key = "k", .key_len = 1, .args = &cas_bad, .value = &w3, .why = why,
         .why_size = sizeof why},
        {.key = "k", .key_len = 1, .args = &cas_good, .value = &w4},
        {.key = "j", .key_len = 1, .args = &lww, .value = &w1},
        {.key = "j", .key_len = 1, .incoming = &incoming},
    };
    assert_int_equal(kvi_replica_merge_many(f->db->embedded, items, 6, 0), KV_OK);
    assert_int_equal(items[0].status, KV_OK);
    assert_int_equal(w1.version, 1);
    assert_int_equal(items[1].status, KV_OK);
    assert_int_equal(w2.version, 2);
    assert_int_equal(items[2].status, KV_ECONFLICT);
    assert_int_equal(items[2].current_version, 2);
    assert_non_null(strstr(why, "expected version 7"));
    assert_int_equal(items[3].status, KV_OK);
    assert_int_equal(items[3].current_version, 2);
    assert_int_equal(w4.version, 3);
    assert_int_equal(items[3].version, 3);
    assert_int_equal(items[5].status, KV_OK);

    kvi_buf holder = {0};
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "k", 1), KV_OK);
    assert_int_equal(st.n, 1);
    assert_true(holds(&st, "cas-good"));
    assert_int_equal(kvi_state_version(&st), 3);
    kvi_buf_free(&holder);
    /* "j": the coordinated write and the concurrent replicated one, both. */
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "j", 1), KV_OK);
    assert_int_equal(st.n, 2);
    assert_true(holds(&st, "first") && holds(&st, "from-n2"));
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

/* Closes the store, flips a bit in the middle of key's record (one byte
 * key), and opens it again. */
static void damage_on_disk(fixture *f, const char *key)
{
    kv_close(f->db);
    f->db = NULL;
    raw_db raw;
    assert_int_equal(raw_open(&raw, f->dir), 0);
    size_t len;
    char *rec = raw_get(&raw, key, 1, &len);
    assert_non_null(rec);
    rec[len / 2] ^= 0x40;
    assert_int_equal(raw_put(&raw, key, 1, rec, len), 0);
    free(rec);
    raw_close(&raw);
    assert_int_equal(kv_open(&f->db, f->dir, NULL), KV_OK);
}

static void damaged_states_are_refused(void **state)
{
    fixture *f = *state;
    kvi_buf holder = {0};
    kvi_sibling v = value_of("precious");
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "d", 1, NULL, "n1", &v),
                     KV_OK);
    kvi_buf_free(&holder);
    damage_on_disk(f, "d");
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "d", 1), KV_ECORRUPT);
    kvi_sibling w = value_of("over");
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "d", 1, NULL, "n1", &w),
                     KV_ECORRUPT);
    kvi_buf_free(&holder);
}

/* ...but a merge (replication, read repair, anti-entropy) replaces the
 * damaged record with the state it brings, and counts it. */
static void a_merge_replaces_a_damaged_record(void **state)
{
    fixture *f = *state;
    kvi_buf holder = {0};
    kvi_sibling v = value_of("precious");
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "d", 1, NULL, "n1", &v),
                     KV_OK);
    static kvi_state good;
    good = st; /* the state a replica that holds it whole would send */
    kvi_buf keep = {0};
    kvi_buf_raw(&keep, holder.data, holder.len);
    assert_int_equal(kvi_state_decode(&good, keep.data, keep.len, kvi_key_token("d", 1)),
                     KV_OK);
    kvi_buf_free(&holder);
    damage_on_disk(f, "d");
    kvi_store *store = kvi_embedded_store(f->db->embedded);
    assert_int_equal(kvi_store_corrupt_replaced(store), 0);
    int changed = 0;
    assert_int_equal(kvi_replica_merge(&changed, NULL, f->db->embedded, "d", 1, &good), KV_OK);
    assert_true(changed);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "d", 1), KV_OK);
    assert_true(holds(&st, "precious"));
    assert_int_equal(kvi_store_corrupt_replaced(store), 1);
    /* The same through a batch of merges. */
    kvi_buf_free(&holder);
    damage_on_disk(f, "d");
    kvi_merge_item item = {.key = "d", .key_len = 1, .incoming = &good};
    assert_int_equal(kvi_replica_merge_many(f->db->embedded, &item, 1, 0), KV_OK);
    assert_int_equal(item.status, KV_OK);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "d", 1), KV_OK);
    assert_true(holds(&st, "precious"));
    assert_int_equal(kvi_store_corrupt_replaced(kvi_embedded_store(f->db->embedded)), 1);
    kvi_buf_free(&holder);
    kvi_buf_free(&keep);
}

/* A node's first write of a key starts its counter from the write's time,
 * so that it never reuses a dot of the key's purged past (cluster/purge.h);
 * later writes count on by one. */
static void a_nodes_first_dot_of_a_key_starts_from_its_write_time(void **state)
{
    fixture *f = *state;
    kvi_buf holder = {0};
    kvi_sibling v = value_of("first");
    v.write_ms = 5000;
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "t", 1, NULL, "n1", &v),
                     KV_OK);
    assert_int_equal(v.dot.counter, (5000ull << 10) + 1);
    assert_int_equal(v.version, 1); /* the version the API shows is not affected */
    kvi_vv seen = st.clock;
    kvi_sibling w = value_of("second");
    w.write_ms = 6000;
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "t", 1, &seen, "n1", &w),
                     KV_OK);
    assert_int_equal(w.dot.counter, (5000ull << 10) + 2);
    /* Another node's first write of the same key: from its write time. */
    seen = st.clock;
    kvi_sibling x = value_of("third");
    x.write_ms = 7000;
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "t", 1, &seen, "n2", &x),
                     KV_OK);
    assert_int_equal(x.dot.counter, (7000ull << 10) + 1);
    assert_int_equal(st.n, 1);
    kvi_buf_free(&holder);
}

static void the_embedded_paths_read_states_and_refuse_to_write_them(void **state)
{
    fixture *f = *state;
    kvi_buf holder = {0};
    kvi_sibling v0 = value_of("v0");
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "s", 1, NULL, "n1", &v0),
                     KV_OK);
    kvi_vv seen = st.clock;
    kvi_sibling a = value_of("older"), b = value_of("newer");
    a.write_ms = 10;
    b.write_ms = 20;
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "s", 1, &seen, "n1", &a),
                     KV_OK);
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "s", 1, &seen, "n2", &b),
                     KV_OK);
    kvi_buf_free(&holder);

    kv_value *v;
    assert_int_equal(kv_get(&v, f->db, "s", 1, NULL), KV_OK);
    assert_int_equal(kv_value_sibling_count(v), 2);
    size_t len;
    const char *first = kv_value_data(v, &len);
    assert_int_equal(len, 5);
    assert_memory_equal(first, "newer", 5); /* the latest write first */
    assert_memory_equal(kv_value_sibling(v, 1, &len), "older", 5);
    assert_null(kv_value_sibling(v, 2, &len));
    assert_int_equal(kv_value_version(v), 3);
    kv_value_context(v, &len);
    assert_true(len > 0);
    kv_value_free(v);

    /* Writes without a context would lose a sibling: refused, nothing
     * changes. */
    assert_int_equal(kv_put(NULL, f->db, "s", 1, "x", 1, NULL), KV_ENOTSUP);
    assert_non_null(strstr(kv_error_last(), "cluster"));
    assert_int_equal(kv_delete(NULL, f->db, "s", 1, NULL), KV_ENOTSUP);
    assert_int_equal(kv_cas(NULL, f->db, "s", 1, 3, "x", 1, NULL), KV_ENOTSUP);
    kv_batch *batch;
    assert_int_equal(kv_batch_new(&batch), KV_OK);
    kv_batch_get(batch, "s", 1);
    kv_batch_get(batch, "s", 1);
    assert_int_equal(kv_batch_execute(f->db, batch, NULL, NULL), KV_OK);
    const kv_value *got;
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(kv_batch_result(&got, NULL, batch, i), KV_OK);
        assert_int_equal(kv_value_sibling_count(got), 2);
    }
    kv_batch_clear(batch);
    kv_batch_put(batch, "plain", 5, "p", 1, 0);
    kv_batch_put(batch, "s", 1, "x", 1, 0);
    assert_int_equal(kv_batch_execute(f->db, batch, NULL, NULL), KV_ENOTSUP);
    kv_batch_free(batch);
    assert_int_equal(kv_get(&v, f->db, "plain", 5, NULL), KV_ENOTFOUND);
    assert_int_equal(kvi_replica_read(&st, &holder, f->db->embedded, "s", 1), KV_OK);
    assert_int_equal(st.n, 2);

    /* A state whose siblings are all tombstones reads as not found. */
    kvi_vv all = st.clock;
    kvi_sibling gone = value_of("");
    gone.tombstone = 1;
    assert_int_equal(kvi_replica_write(&st, &holder, f->db->embedded, "s", 1, &all, "n3", &gone),
                     KV_OK);
    kvi_buf_free(&holder);
    assert_int_equal(kv_get(&v, f->db, "s", 1, NULL), KV_ENOTFOUND);
    assert_null(v);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_open, fixture_close)


int main(void)
{
    const struct CMUnitTest tests[] = {
        T(stale_writers_become_siblings_that_persist),
        T(merges_change_only_what_is_new),
        T(many_states_merge_in_one_write),
        T(coordinated_writes_and_merges_share_one_write),
        T(embedded_records_read_as_states),
        T(damaged_states_are_refused),
        T(a_merge_replaces_a_damaged_record),
        T(a_nodes_first_dot_of_a_key_starts_from_its_write_time),
        T(the_embedded_paths_read_states_and_refuse_to_write_them),
    };
    return cmocka_run_group_tests_name("cluster.replica_store", tests, NULL, NULL);
}
