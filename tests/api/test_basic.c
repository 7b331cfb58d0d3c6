/* Put, get, delete, versions, binary data and size limits, through the
 * public API only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "api/fixture.h"

static void put_get_round_trip(void **state)
{
    kv *db = DB(state);
    uint64_t v = 0;
    assert_int_equal(kv_put(&v, db, "alpha", 5, "one", 3, NULL), KV_OK);
    assert_int_equal(v, 1);
    kv_value *val = NULL;
    assert_int_equal(kv_get(&val, db, "alpha", 5, NULL), KV_OK);
    size_t len = 0;
    const void *data = kv_value_data(val, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(data, "one", 3);
    assert_int_equal(kv_value_version(val), 1);
    assert_int_equal(kv_value_expiry_ms(val), 0);
    assert_int_equal(kv_value_sibling_count(val), 1);
    size_t ctx_len = 99;
    kv_value_context(val, &ctx_len);
    assert_int_equal(ctx_len, 0);
    kv_value_free(val);
}

static void versions_count_every_write(void **state)
{
    kv *db = DB(state);
    uint64_t v = 0;
    for (uint64_t i = 1; i <= 5; i++) {
        assert_int_equal(kv_put(&v, db, "k", 1, "x", 1, NULL), KV_OK);
        assert_int_equal(v, i);
    }
    /* A delete leaves a tombstone with the next version... */
    assert_int_equal(kv_delete(&v, db, "k", 1, NULL), KV_OK);
    assert_int_equal(v, 6);
    kv_value *val = (kv_value *)&v; /* must be reset to NULL */
    assert_int_equal(kv_get(&val, db, "k", 1, NULL), KV_ENOTFOUND);
    assert_null(val);
    /* ...deleting again finds nothing and writes nothing... */
    assert_int_equal(kv_delete(&v, db, "k", 1, NULL), KV_ENOTFOUND);
    /* ...and a put after the delete continues from the tombstone. */
    assert_int_equal(kv_put(&v, db, "k", 1, "y", 1, NULL), KV_OK);
    assert_int_equal(v, 7);
    assert_int_equal(kv_get(&val, db, "k", 1, NULL), KV_OK);
    assert_int_equal(kv_value_version(val), 7);
    kv_value_free(val);
    /* Other keys have their own versions. */
    assert_int_equal(kv_put(&v, db, "other", 5, "z", 1, NULL), KV_OK);
    assert_int_equal(v, 1);
}

static void versions_survive_reopen(void **state)
{
    fixture *f = *state;
    uint64_t v = 0;
    assert_int_equal(kv_put(&v, f->db, "k", 1, "a", 1, NULL), KV_OK);
    assert_int_equal(kv_put(&v, f->db, "k", 1, "b", 1, NULL), KV_OK);
    kv_close(f->db);
    assert_int_equal(kv_open(&f->db, f->dir, NULL), KV_OK);
    assert_int_equal(kv_put(&v, f->db, "k", 1, "c", 1, NULL), KV_OK);
    assert_int_equal(v, 3);
}

static void binary_keys_and_empty_values(void **state)
{
    kv *db = DB(state);
    const char key1[] = {'a', '\0', 'b'};
    const char key2[] = {'a', '\0', 'c'};
    const char key3[] = {'\0'};
    const unsigned char bin[] = {0, 255, 0, 1, 0};
    assert_int_equal(kv_put(NULL, db, key1, sizeof key1, bin, sizeof bin, NULL), KV_OK);
    assert_int_equal(kv_put(NULL, db, key2, sizeof key2, "", 0, NULL), KV_OK);
    assert_int_equal(kv_put(NULL, db, key3, sizeof key3, NULL, 0, NULL), KV_OK);

    kv_value *val;
    size_t len;
    assert_int_equal(kv_get(&val, db, key1, sizeof key1, NULL), KV_OK);
    const void *data = kv_value_data(val, &len);
    assert_int_equal(len, sizeof bin);
    assert_memory_equal(data, bin, sizeof bin);
    kv_value_free(val);

    /* An empty value is found, with length 0 and a non-NULL pointer. */
    assert_int_equal(kv_get(&val, db, key2, sizeof key2, NULL), KV_OK);
    assert_non_null(kv_value_data(val, &len));
    assert_int_equal(len, 0);
    kv_value_free(val);
    assert_int_equal(kv_get(&val, db, key3, sizeof key3, NULL), KV_OK);
    kv_value_free(val);

    /* "a" and "a\0b" are different keys. */
    assert_int_equal(kv_get(&val, db, "a", 1, NULL), KV_ENOTFOUND);
}

static void check_sizes(kv *db, size_t key_limit, size_t value_limit)
{
    char *big = calloc(1, value_limit + 1);
    assert_non_null(big);
    memset(big, 'k', value_limit + 1);
    kv_value *val;
    /* Keys at limit-1, limit, limit+1. */
    assert_int_equal(kv_put(NULL, db, big, key_limit - 1, "v", 1, NULL), KV_OK);
    assert_int_equal(kv_put(NULL, db, big, key_limit, "v", 1, NULL), KV_OK);
    assert_int_equal(kv_put(NULL, db, big, key_limit + 1, "v", 1, NULL), KV_ETOOBIG);
    assert_non_null(strstr(kv_error_last(), "limit"));
    assert_int_equal(kv_get(&val, db, big, key_limit, NULL), KV_OK);
    kv_value_free(val);
    assert_int_equal(kv_get(&val, db, big, key_limit + 1, NULL), KV_ETOOBIG);
    assert_int_equal(kv_delete(NULL, db, big, key_limit + 1, NULL), KV_ETOOBIG);
    assert_int_equal(kv_cas(NULL, db, big, key_limit + 1, 0, "v", 1, NULL), KV_ETOOBIG);
    /* Values at limit-1, limit, limit+1. */
    assert_int_equal(kv_put(NULL, db, "v1", 2, big, value_limit - 1, NULL), KV_OK);
    assert_int_equal(kv_put(NULL, db, "v2", 2, big, value_limit, NULL), KV_OK);
    assert_int_equal(kv_put(NULL, db, "v3", 2, big, value_limit + 1, NULL), KV_ETOOBIG);
    assert_int_equal(kv_cas(NULL, db, "v3", 2, 0, big, value_limit + 1, NULL), KV_ETOOBIG);
    assert_int_equal(kv_get(&val, db, "v2", 2, NULL), KV_OK);
    size_t len;
    kv_value_data(val, &len);
    assert_int_equal(len, value_limit);
    kv_value_free(val);
    assert_int_equal(kv_get(&val, db, "v3", 2, NULL), KV_ENOTFOUND);
    free(big);
}

static void default_size_limits(void **state)
{
    check_sizes(DB(state), KV_DEFAULT_MAX_KEY_SIZE, KV_DEFAULT_MAX_VALUE_SIZE);
}

static void configured_size_limits(void **state)
{
    (void)state;
    kv_open_options o = KV_OPEN_OPTIONS_INIT;
    o.max_key_size = 16;
    o.max_value_size = 100;
    fixture *f = NULL;
    assert_int_equal(fixture_open_with((void **)&f, &o), 0);
    check_sizes(f->db, 16, 100);
    void *s = f;
    fixture_close(&s);
}

static void oversized_claims_allocate_nothing(void **state)
{
    /* A length far past the limit with a tiny buffer: if the library looked
     * at the bytes before checking, ASan would catch the overread. */
    kv *db = DB(state);
    char tiny[4] = "abc";
    assert_int_equal(kv_put(NULL, db, tiny, SIZE_MAX, "v", 1, NULL), KV_ETOOBIG);
    assert_int_equal(kv_put(NULL, db, "k", 1, tiny, SIZE_MAX, NULL), KV_ETOOBIG);
    assert_int_equal(kv_put(NULL, db, "k", 1, tiny, (size_t)1 << 40, NULL), KV_ETOOBIG);
}

static void invalid_arguments(void **state)
{
    kv *db = DB(state);
    kv_value *val;
    assert_int_equal(kv_put(NULL, NULL, "k", 1, "v", 1, NULL), KV_EINVAL);
    assert_int_equal(kv_put(NULL, db, "", 0, "v", 1, NULL), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "empty"));
    assert_int_equal(kv_put(NULL, db, NULL, 3, "v", 1, NULL), KV_EINVAL);
    assert_int_equal(kv_put(NULL, db, "k", 1, NULL, 3, NULL), KV_EINVAL);
    assert_int_equal(kv_get(NULL, db, "k", 1, NULL), KV_EINVAL);
    assert_int_equal(kv_get(&val, db, "", 0, NULL), KV_EINVAL);
    assert_int_equal(kv_delete(NULL, db, NULL, 0, NULL), KV_EINVAL);

    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.version = 999;
    assert_int_equal(kv_put(NULL, db, "k", 1, "v", 1, &wo), KV_EINVAL);
    wo = (kv_write_options)KV_WRITE_OPTIONS_INIT;
    wo.consistency = (kv_consistency)77;
    assert_int_equal(kv_put(NULL, db, "k", 1, "v", 1, &wo), KV_EINVAL);
    wo = (kv_write_options)KV_WRITE_OPTIONS_INIT;
    wo.ttl_s = UINT64_MAX;
    assert_int_equal(kv_put(NULL, db, "k", 1, "v", 1, &wo), KV_EINVAL);
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.version = 0;
    assert_int_equal(kv_get(&val, db, "k", 1, &ro), KV_EINVAL);
    /* Nothing of that was stored. */
    assert_int_equal(kv_get(&val, db, "k", 1, NULL), KV_ENOTFOUND);
    /* Consistency levels are accepted (a single replica serves them all). */
    ro = (kv_read_options)KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_ALL;
    assert_int_equal(kv_put(NULL, db, "k", 1, "v", 1, NULL), KV_OK);
    assert_int_equal(kv_get(&val, db, "k", 1, &ro), KV_OK);
    kv_value_free(val);
}

static void open_errors(void **state)
{
    fixture *f = *state;
    kv *other = (kv *)f; /* must be reset to NULL */
    /* The directory is locked by the fixture's handle. */
    assert_int_equal(kv_open(&other, f->dir, NULL), KV_EBUSY);
    assert_null(other);
    assert_int_not_equal(strlen(kv_error_last()), 0);

    char *empty = test_tempdir();
    char missing[600];
    snprintf(missing, sizeof missing, "%s/absent", empty);
    kv_open_options o = KV_OPEN_OPTIONS_INIT;
    o.create_if_missing = 0;
    assert_int_equal(kv_open(&other, missing, &o), KV_EINVAL);
    o = (kv_open_options)KV_OPEN_OPTIONS_INIT;
    o.max_key_size = KV_MAX_KEY_SIZE_LIMIT + 1;
    assert_int_equal(kv_open(&other, missing, &o), KV_EINVAL);
    o = (kv_open_options)KV_OPEN_OPTIONS_INIT;
    o.max_value_size = KV_MAX_VALUE_SIZE_LIMIT + 1;
    assert_int_equal(kv_open(&other, missing, &o), KV_EINVAL);
    o = (kv_open_options)KV_OPEN_OPTIONS_INIT;
    o.sync = (kv_sync_policy)9;
    assert_int_equal(kv_open(&other, missing, &o), KV_EINVAL);
    o = (kv_open_options)KV_OPEN_OPTIONS_INIT;
    o.version = 0;
    assert_int_equal(kv_open(&other, missing, &o), KV_EINVAL);
    assert_int_equal(kv_open(&other, NULL, NULL), KV_EINVAL);
    assert_int_equal(kv_open(&other, "", NULL), KV_EINVAL);
    assert_int_equal(kv_open(NULL, missing, NULL), KV_EINVAL);
    /* The ceilings themselves are accepted. */
    o = (kv_open_options)KV_OPEN_OPTIONS_INIT;
    o.max_key_size = KV_MAX_KEY_SIZE_LIMIT;
    o.max_value_size = KV_MAX_VALUE_SIZE_LIMIT;
    assert_int_equal(kv_open(&other, missing, &o), KV_OK);
    kv_close(other);
    test_rmtree(empty);
}

static void node_and_client_constructors_check_arguments(void **state)
{
    (void)state;
    kv *h = (kv *)state; /* must be reset to NULL */
    assert_int_equal(kv_node_start(&h, NULL), KV_EINVAL);
    assert_null(h);
    kv_node_options no = KV_NODE_OPTIONS_INIT;
    assert_int_equal(kv_node_start(NULL, &no), KV_EINVAL);
    h = (kv *)state;
    assert_int_equal(kv_client_open(&h, NULL, 0, NULL), KV_EINVAL);
    assert_null(h);
    const char *eps[] = {"127.0.0.1:7000"};
    assert_int_equal(kv_client_open(NULL, eps, 1, NULL), KV_EINVAL);
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.version = 77;
    assert_int_equal(kv_client_open(&h, eps, 1, &co), KV_EINVAL);
    assert_int_equal(kv_ping(NULL), KV_EINVAL);
}

static void options_init_functions(void **state)
{
    (void)state;
    kv_open_options o;
    memset(&o, 0xff, sizeof o);
    assert_int_equal(kv_open_options_init(&o, KV_OPEN_OPTIONS_VERSION), KV_OK);
    kv_open_options want = KV_OPEN_OPTIONS_INIT;
    assert_int_equal(o.version, want.version);
    assert_int_equal(o.create_if_missing, 1);
    assert_int_equal(o.sync, KV_SYNC_ALWAYS);
    assert_int_equal(o.max_key_size, 0);
    assert_null(o.log_fn);
    assert_int_equal(kv_open_options_init(&o, 99), KV_EINVAL);
    assert_int_equal(kv_open_options_init(NULL, KV_OPEN_OPTIONS_VERSION), KV_EINVAL);
    kv_write_options w;
    assert_int_equal(kv_write_options_init(&w, KV_WRITE_OPTIONS_VERSION), KV_OK);
    assert_int_equal(w.ttl_s, 0);
    assert_null(w.context);
    kv_read_options r;
    assert_int_equal(kv_read_options_init(&r, KV_READ_OPTIONS_VERSION), KV_OK);
    assert_int_equal(r.consistency, KV_CONSISTENCY_DEFAULT);
    kv_node_options n;
    assert_int_equal(kv_node_options_init(&n, KV_NODE_OPTIONS_VERSION), KV_OK);
    kv_client_options c;
    assert_int_equal(kv_client_options_init(&c, KV_CLIENT_OPTIONS_VERSION), KV_OK);
    assert_int_equal(c.policy, KV_POLICY_LWW);
    assert_null(c.merge);
    assert_int_equal(kv_client_options_init(&c, 0), KV_EINVAL);

    /* Version 1 of the grown structs (before the conflict policy): init
     * writes only the v1 prefix, and the library still accepts it. */
    struct {
        kv_client_options opts;
        unsigned char guard[sizeof(kv_client_options)];
    } v1;
    memset(&v1, 0xAB, sizeof v1);
    assert_int_equal(kv_client_options_init(&v1.opts, 1), KV_OK);
    assert_int_equal(v1.opts.version, 1);
    const unsigned char *tail = (const unsigned char *)&v1.opts.policy;
    for (size_t i = 0; i < sizeof v1.opts - offsetof(kv_client_options, policy); i++)
        assert_int_equal(tail[i], 0xAB); /* past the v1 prefix: untouched */
    v1.opts.request_timeout_ms = 100;
    const char *eps[] = {"127.0.0.1:1"};
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, 1, &v1.opts), KV_OK);
    kv_close(db);
    kv_node_options n1;
    memset(&n1, 0xAB, sizeof n1);
    assert_int_equal(kv_node_options_init(&n1, 1), KV_OK);
    assert_int_equal(n1.version, 1);
    assert_int_equal(((const unsigned char *)&n1.policy)[0], 0xAB);
    /* Version 2 (before seeds and the hint settings): the same, and a
     * node started from it gets the defaults of what it lacks. */
    kv_node_options n2;
    memset(&n2, 0xAB, sizeof n2);
    assert_int_equal(kv_node_options_init(&n2, 2), KV_OK);
    assert_int_equal(n2.version, 2);
    assert_int_equal(n2.policy, KV_POLICY_LWW);
    assert_int_equal(n2.internode_timeout_ms, 0);
    tail = (const unsigned char *)&n2 +
           offsetof(kv_node_options, internode_timeout_ms) + sizeof n2.internode_timeout_ms;
    for (size_t i = 0; i < sizeof n2 - (size_t)(tail - (const unsigned char *)&n2); i++)
        assert_int_equal(tail[i], 0xAB); /* past the v2 prefix: untouched */
    char *dir = test_tempdir();
    n2.data_dir = dir;
    n2.node_id = "v2";
    n2.listen_addr = "127.0.0.1:0";
    assert_int_equal(kv_node_start(&db, &n2), KV_OK);
    kv_close(db);
    test_rmtree(dir);
    /* Version 3 (before the security fields): init leaves them alone, and
     * a node started from it has no secret and no tokens (loopback). */
    kv_node_options n3;
    memset(&n3, 0xAB, sizeof n3);
    assert_int_equal(kv_node_options_init(&n3, 3), KV_OK);
    tail = (const unsigned char *)&n3 + offsetof(kv_node_options, failure_pause_ms) +
           sizeof n3.failure_pause_ms;
    for (size_t i = 0; i < sizeof n3 - (size_t)(tail - (const unsigned char *)&n3); i++)
        assert_int_equal(tail[i], 0xAB);
    dir = test_tempdir();
    n3.data_dir = dir;
    n3.node_id = "v3";
    n3.listen_addr = "127.0.0.1:0";
    assert_int_equal(kv_node_start(&db, &n3), KV_OK);
    kv_close(db);
    test_rmtree(dir);
    /* Version 4 (before slow_request_ms): the same, and the node takes
     * the default threshold. */
    kv_node_options n4;
    memset(&n4, 0xAB, sizeof n4);
    assert_int_equal(kv_node_options_init(&n4, 4), KV_OK);
    tail = (const unsigned char *)&n4 + offsetof(kv_node_options, max_buffered_bytes) +
           sizeof n4.max_buffered_bytes;
    for (size_t i = 0; i < sizeof n4 - (size_t)(tail - (const unsigned char *)&n4); i++)
        assert_int_equal(tail[i], 0xAB);
    dir = test_tempdir();
    n4.data_dir = dir;
    n4.node_id = "v4";
    n4.listen_addr = "127.0.0.1:0";
    assert_int_equal(kv_node_start(&db, &n4), KV_OK);
    kv_close(db);
    test_rmtree(dir);
    assert_int_equal(kv_node_options_init(&n2, KV_NODE_OPTIONS_VERSION + 1), KV_EINVAL);
    /* Client options version 3 (before manual_loop) open a client with a
     * thread of its own. */
    kv_client_options c3;
    memset(&c3, 0xAB, sizeof c3);
    assert_int_equal(kv_client_options_init(&c3, 3), KV_OK);
    assert_int_equal(((const unsigned char *)&c3.manual_loop)[0], 0xAB);
    assert_int_equal(kv_client_open(&db, eps, 1, &c3), KV_OK);
    int fd = -1;
    assert_int_equal(kv_fd(&fd, db), KV_EINVAL); /* not a manual loop */
    kv_close(db);
    assert_int_equal(kv_client_options_init(&c3, KV_CLIENT_OPTIONS_VERSION + 1), KV_EINVAL);
    /* Client options version 2 (before auth_token) open a client. */
    struct {
        kv_client_options opts;
        unsigned char guard[64];
    } v2;
    memset(&v2, 0xAB, sizeof v2);
    assert_int_equal(kv_client_options_init(&v2.opts, 2), KV_OK);
    assert_int_equal(((const unsigned char *)&v2.opts.auth_token)[0], 0xAB);
    assert_int_equal(kv_client_open(&db, eps, 1, &v2.opts), KV_OK);
    kv_close(db);
    /* Open options version 1 (before row_cache_bytes): init leaves the
     * field alone, and a store opens from it with the default cache; with
     * KV_ROW_CACHE_NONE, a store without one reads back what it wrote. */
    kv_open_options o1;
    memset(&o1, 0xAB, sizeof o1);
    assert_int_equal(kv_open_options_init(&o1, 1), KV_OK);
    assert_int_equal(o1.version, 1);
    assert_int_equal(((const unsigned char *)&o1.row_cache_bytes)[0], 0xAB);
    o1.sync = KV_SYNC_NONE;
    dir = test_tempdir();
    assert_int_equal(kv_open(&db, dir, &o1), KV_OK);
    assert_int_equal(kv_put(NULL, db, "k", 1, "v1", 2, NULL), KV_OK);
    kv_close(db);
    kv_open_options none;
    assert_int_equal(kv_open_options_init(&none, KV_OPEN_OPTIONS_VERSION), KV_OK);
    assert_int_equal(none.row_cache_bytes, 0);
    none.row_cache_bytes = KV_ROW_CACHE_NONE;
    none.sync = KV_SYNC_NONE;
    assert_int_equal(kv_open(&db, dir, &none), KV_OK);
    kv_value *got;
    assert_int_equal(kv_get(&got, db, "k", 1, NULL), KV_OK);
    assert_memory_equal(kv_value_data(got, NULL), "v1", 2);
    kv_value_free(got);
    assert_int_equal(kv_put(NULL, db, "k", 1, "v2", 2, NULL), KV_OK);
    assert_int_equal(kv_get(&got, db, "k", 1, NULL), KV_OK);
    assert_memory_equal(kv_value_data(got, NULL), "v2", 2);
    assert_int_equal(kv_value_version(got), 2);
    kv_value_free(got);
    kv_close(db);
    test_rmtree(dir);
    assert_int_equal(kv_open_options_init(&o1, KV_OPEN_OPTIONS_VERSION + 1), KV_EINVAL);
    /* Write options version 1 (before home_only): init writes only its
     * prefix, and writes still accept it. */
    kv_write_options w1;
    memset(&w1, 0xAB, sizeof w1);
    assert_int_equal(kv_write_options_init(&w1, 1), KV_OK);
    assert_int_equal(w1.version, 1);
    assert_int_equal(w1.ttl_s, 0);
    assert_int_equal(((const unsigned char *)&w1.home_only)[0], 0xAB);
    assert_int_equal(w.home_only, 0);
    dir = test_tempdir();
    assert_int_equal(kv_open(&db, dir, NULL), KV_OK);
    assert_int_equal(kv_put(NULL, db, "k", 1, "v", 1, &w1), KV_OK);
    w1.version = 3;
    assert_int_equal(kv_put(NULL, db, "k", 1, "v", 1, &w1), KV_EINVAL);
    kv_close(db);
    test_rmtree(dir);
    assert_int_equal(kv_write_options_init(&w1, 3), KV_EINVAL);
    /* A bad policy is refused at open. */
    kv_client_options bad = KV_CLIENT_OPTIONS_INIT;
    bad.policy = (kv_conflict_policy)7;
    assert_int_equal(kv_client_open(&db, eps, 1, &bad), KV_EINVAL);
    bad.policy = KV_POLICY_MERGE;
    assert_int_equal(kv_client_open(&db, eps, 1, &bad), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "merge callback"));
}

static void strerror_and_version(void **state)
{
    (void)state;
    const int codes[] = {KV_OK, KV_ENOTFOUND, KV_ECONFLICT, KV_ETOOBIG, KV_EINVAL,
                         KV_ETIMEDOUT, KV_EUNAVAILABLE, KV_EUNKNOWN_OUTCOME,
                         KV_ECORRUPT, KV_EIO, KV_ECLOSED, KV_ENOMEM, KV_ENOTSUP, KV_EBUSY, KV_EPERM};
    const char *unknown = kv_strerror(12345);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_non_null(kv_strerror(codes[i]));
        assert_string_not_equal(kv_strerror(codes[i]), unknown);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(kv_strerror(codes[i]), kv_strerror(codes[j]));
    }
    int major = -1, minor = -1, patch = -1;
    assert_string_equal(kv_version(&major, &minor, &patch), KV_VERSION_STRING);
    assert_int_equal(major, KV_VERSION_MAJOR);
    assert_int_equal(minor, KV_VERSION_MINOR);
    assert_int_equal(patch, KV_VERSION_PATCH);
    assert_non_null(kv_version(NULL, NULL, NULL));
}

typedef struct log_capture {
    int messages;
    char last[256];
} log_capture;

static void capture(kv_log_level level, const char *message, void *ctx)
{
    (void)level;
    log_capture *c = ctx;
    c->messages++;
    snprintf(c->last, sizeof c->last, "%s", message);
}

static void logs_go_to_the_callback(void **state)
{
    (void)state;
    log_capture cap = {0};
    kv_open_options o = KV_OPEN_OPTIONS_INIT;
    o.log_fn = capture;
    o.log_ctx = &cap;
    fixture *f = NULL;
    assert_int_equal(fixture_open_with((void **)&f, &o), 0);
    assert_true(cap.messages > 0);
    assert_non_null(strstr(cap.last, "opened store"));
    void *s = f;
    fixture_close(&s);
    /* Below the threshold nothing is delivered. */
    log_capture quiet = {0};
    o.log_ctx = &quiet;
    o.log_level = KV_LOG_ERROR;
    assert_int_equal(fixture_open_with((void **)&f, &o), 0);
    assert_int_equal(quiet.messages, 0);
    s = f;
    fixture_close(&s);
}

static void free_functions_accept_null(void **state)
{
    (void)state;
    kv_value_free(NULL);
    kv_batch_free(NULL);
    kv_close(NULL);
    assert_null(kv_value_data(NULL, NULL));
    assert_int_equal(kv_value_version(NULL), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_open, fixture_close)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(put_get_round_trip),
        T(versions_count_every_write),
        T(versions_survive_reopen),
        T(binary_keys_and_empty_values),
        T(default_size_limits),
        cmocka_unit_test(configured_size_limits),
        T(oversized_claims_allocate_nothing),
        T(invalid_arguments),
        T(open_errors),
        cmocka_unit_test(node_and_client_constructors_check_arguments),
        cmocka_unit_test(options_init_functions),
        cmocka_unit_test(strerror_and_version),
        cmocka_unit_test(logs_go_to_the_callback),
        cmocka_unit_test(free_functions_accept_null),
    };
    return cmocka_run_group_tests_name("api.basic", tests, NULL, NULL);
}
