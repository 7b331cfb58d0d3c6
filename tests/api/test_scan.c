/* kv_scan through the public API alone: on an embedded store, and on a node
 * handle and a client handle to it (a node alone, over loopback). Paging
 * returns every live key exactly once, in one stable order; deleted and
 * expired keys never appear; bad arguments are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include <kv/kv.h>
#include "api/fixture.h"

#define N_KEYS 300

static void key_of(char *buf, size_t size, int i)
{
    snprintf(buf, size, "key-%04d", i);
}

static void fill(kv *db, int n)
{
    for (int i = 0; i < n; i++) {
        char key[32], value[32];
        key_of(key, sizeof key, i);
        snprintf(value, sizeof value, "value-%d", i);
        uint64_t v;
        assert_int_equal(kv_put(&v, db, key, strlen(key), value, strlen(value), NULL), KV_OK);
    }
}

/* Scans everything in pages of `limit`, checks each key is one of "key-%04d"
 * below n with its value, seen once; returns the keys in order (malloc'd,
 * n x 9 bytes) and the count in *count. */
static char *scan_all(kv *db, size_t limit, const kv_scan_options *so, int n, size_t *count,
                      size_t *pages)
{
    char *seen_order = calloc((size_t)n + 1, 9);
    char *seen = calloc((size_t)n, 1);
    assert_non_null(seen_order);
    assert_non_null(seen);
    char *cursor = NULL;
    *count = 0;
    *pages = 0;
    /* Bounded: every page but the last moves the cursor forward, and with
     * these limits the scan needs at most n + 2 pages. */
    for (int round = 0; round < n + 3; round++) {
        kv_scan_page *page = NULL;
        assert_int_equal(kv_scan(&page, db, cursor, limit, so), KV_OK);
        (*pages)++;
        size_t m = kv_scan_page_count(page);
        assert_true(m <= limit);
        for (size_t i = 0; i < m; i++) {
            size_t klen;
            const char *key = kv_scan_page_key(page, i, &klen);
            assert_int_equal(klen, 8);
            assert_memory_equal(key, "key-", 4);
            int idx = atoi(key + 4);
            assert_true(idx >= 0 && idx < n);
            assert_int_equal(seen[idx], 0);
            seen[idx] = 1;
            assert_true(*count < (size_t)n);
            memcpy(seen_order + *count * 9, key, 8);
            (*count)++;
            const kv_value *v = kv_scan_page_value(page, i);
            if (so && so->keys_only) {
                assert_null(v);
            } else {
                char want[32];
                snprintf(want, sizeof want, "value-%d", idx);
                size_t len;
                const char *data = kv_value_data(v, &len);
                assert_int_equal(len, strlen(want));
                assert_memory_equal(data, want, len);
                assert_int_equal(kv_value_version(v), kv_scan_page_version(page, i));
            }
            assert_true(kv_scan_page_version(page, i) >= 1);
        }
        free(cursor);
        const char *next = kv_scan_page_cursor(page);
        cursor = next ? strdup(next) : NULL;
        kv_scan_page_free(page);
        if (!cursor)
            break;
    }
    assert_null(cursor);
    free(seen);
    return seen_order;
}

static void empty_store(void **state)
{
    kv_scan_page *page = NULL;
    assert_int_equal(kv_scan(&page, DB(state), NULL, 10, NULL), KV_OK);
    assert_int_equal(kv_scan_page_count(page), 0);
    assert_null(kv_scan_page_cursor(page));
    assert_null(kv_scan_page_key(page, 0, NULL));
    assert_null(kv_scan_page_value(page, 0));
    assert_int_equal(kv_scan_page_version(page, 0), 0);
    kv_scan_page_free(page);
    /* "" is the start too. */
    assert_int_equal(kv_scan(&page, DB(state), "", 1, NULL), KV_OK);
    assert_int_equal(kv_scan_page_count(page), 0);
    kv_scan_page_free(page);
    kv_scan_page_free(NULL);
    assert_int_equal(kv_scan_page_count(NULL), 0);
    assert_null(kv_scan_page_cursor(NULL));
}

static void pages_cover_every_key_once(void **state)
{
    kv *db = DB(state);
    fill(db, N_KEYS);
    size_t count, pages;
    char *order = scan_all(db, 7, NULL, N_KEYS, &count, &pages);
    assert_int_equal(count, N_KEYS);
    assert_true(pages >= N_KEYS / 7);
    /* The order is the same whatever the page size. */
    char *again = scan_all(db, 1000, NULL, N_KEYS, &count, &pages);
    assert_int_equal(count, N_KEYS);
    assert_int_equal(pages, 1);
    assert_memory_equal(order, again, (size_t)N_KEYS * 9);
    /* ... and it is not the keys' byte order (tokens are hashes). */
    int sorted = 1;
    for (int i = 1; i < N_KEYS && sorted; i++)
        sorted = memcmp(order + (size_t)(i - 1) * 9, order + (size_t)i * 9, 8) < 0;
    assert_false(sorted);
    free(order);
    free(again);
}

static void keys_only(void **state)
{
    kv *db = DB(state);
    fill(db, 50);
    kv_scan_options so;
    assert_int_equal(kv_scan_options_init(&so, KV_SCAN_OPTIONS_VERSION), KV_OK);
    so.keys_only = 1;
    size_t count, pages;
    free(scan_all(db, 16, &so, 50, &count, &pages));
    assert_int_equal(count, 50);
}

static void deleted_and_expired_keys_are_skipped(void **state)
{
    kv *db = DB(state);
    fill(db, 40);
    uint64_t v;
    for (int i = 0; i < 40; i += 2) {
        char key[32];
        key_of(key, sizeof key, i);
        assert_int_equal(kv_delete(&v, db, key, strlen(key), NULL), KV_OK);
    }
    /* Written with a TTL of 1 s: gone once it passes (bounded wait). */
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.ttl_s = 1;
    assert_int_equal(kv_put(&v, db, "key-9999", 8, "x", 1, &wo), KV_OK);
    kv_value *gone = NULL;
    for (int i = 0; i < 50 && kv_get(&gone, db, "key-9999", 8, NULL) == KV_OK; i++) {
        kv_value_free(gone);
        gone = NULL;
        struct timespec ts = {0, 100 * 1000000L};
        nanosleep(&ts, NULL);
    }
    assert_null(gone);
    kv_scan_page *page = NULL;
    assert_int_equal(kv_scan(&page, db, NULL, 100, NULL), KV_OK);
    assert_int_equal(kv_scan_page_count(page), 20);
    for (size_t i = 0; i < 20; i++) {
        const char *key = kv_scan_page_key(page, i, NULL);
        assert_int_equal(atoi(key + 4) % 2, 1);
    }
    assert_null(kv_scan_page_cursor(page));
    kv_scan_page_free(page);
}

static void binary_keys_and_values(void **state)
{
    kv *db = DB(state);
    uint64_t v;
    assert_int_equal(kv_put(&v, db, "a\0b", 3, "\0\xff\0", 3, NULL), KV_OK);
    assert_int_equal(kv_put(&v, db, "\xff", 1, "", 0, NULL), KV_OK);
    kv_scan_page *page = NULL;
    assert_int_equal(kv_scan(&page, db, NULL, 10, NULL), KV_OK);
    assert_int_equal(kv_scan_page_count(page), 2);
    int found = 0;
    for (size_t i = 0; i < 2; i++) {
        size_t klen, vlen;
        const void *key = kv_scan_page_key(page, i, &klen);
        const void *val = kv_value_data(kv_scan_page_value(page, i), &vlen);
        if (klen == 3) {
            assert_memory_equal(key, "a\0b", 3);
            assert_int_equal(vlen, 3);
            assert_memory_equal(val, "\0\xff\0", 3);
            found |= 1;
        } else {
            assert_int_equal(klen, 1);
            assert_int_equal(vlen, 0);
            found |= 2;
        }
    }
    assert_int_equal(found, 3);
    kv_scan_page_free(page);
}

/* A cursor stays good when its own key is deleted, and a key written
 * behind the cursor is not seen again. */
static void cursor_survives_writes(void **state)
{
    kv *db = DB(state);
    fill(db, 20);
    kv_scan_page *page = NULL;
    assert_int_equal(kv_scan(&page, db, NULL, 5, NULL), KV_OK);
    assert_int_equal(kv_scan_page_count(page), 5);
    char *cursor = strdup(kv_scan_page_cursor(page));
    size_t klen;
    const char *last = kv_scan_page_key(page, 4, &klen);
    uint64_t v;
    assert_int_equal(kv_delete(&v, db, last, klen, NULL), KV_OK);
    const char *first = kv_scan_page_key(page, 0, &klen);
    assert_int_equal(kv_put(&v, db, first, klen, "new", 3, NULL), KV_OK);
    kv_scan_page_free(page);
    assert_int_equal(kv_scan(&page, db, cursor, 100, NULL), KV_OK);
    assert_int_equal(kv_scan_page_count(page), 15);
    assert_null(kv_scan_page_cursor(page));
    kv_scan_page_free(page);
    free(cursor);
}

static void bad_arguments(void **state)
{
    kv *db = DB(state);
    fill(db, 3);
    kv_scan_page *page = (kv_scan_page *)1;
    assert_int_equal(kv_scan(NULL, db, NULL, 10, NULL), KV_EINVAL);
    assert_int_equal(kv_scan(&page, NULL, NULL, 10, NULL), KV_EINVAL);
    assert_null(page);
    assert_int_equal(kv_scan(&page, db, NULL, 0, NULL), KV_EINVAL);
    assert_int_equal(kv_scan(&page, db, NULL, KV_SCAN_MAX_LIMIT + 1, NULL), KV_EINVAL);
    assert_int_equal(kv_scan(&page, db, NULL, (size_t)-1, NULL), KV_EINVAL);
    const char *bad[] = {"zz", "abc", "00", "0011223344556677x8", "not a cursor",
                         "00112233445566"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(kv_scan(&page, db, bad[i], 10, NULL), KV_EINVAL);
        assert_null(page);
        assert_non_null(strstr(kv_error_last(), "cursor"));
    }
    /* A cursor longer than any key could make. */
    size_t huge = 2 * (8 + 65536) + 2;
    char *long_cursor = malloc(huge + 1);
    memset(long_cursor, 'a', huge);
    long_cursor[huge] = 0;
    assert_int_equal(kv_scan(&page, db, long_cursor, 10, NULL), KV_EINVAL);
    free(long_cursor);
    kv_scan_options so = KV_SCAN_OPTIONS_INIT;
    so.version = 77;
    assert_int_equal(kv_scan(&page, db, NULL, 10, &so), KV_EINVAL);
    so = (kv_scan_options)KV_SCAN_OPTIONS_INIT;
    so.consistency = KV_CONSISTENCY_SERIAL;
    assert_int_equal(kv_scan(&page, db, NULL, 10, &so), KV_EINVAL);
    so.consistency = KV_CONSISTENCY_EXPLICIT;
    so.r = 0;
    assert_int_equal(kv_scan(&page, db, NULL, 10, &so), KV_EINVAL);
    assert_int_equal(kv_scan_options_init(NULL, KV_SCAN_OPTIONS_VERSION), KV_EINVAL);
    assert_int_equal(kv_scan_options_init(&so, 0), KV_EINVAL);
    /* Hand-made positions are cursors too: a bare token. */
    assert_int_equal(kv_scan(&page, db, "0000000000000000", 10, NULL), KV_OK);
    assert_int_equal(kv_scan_page_count(page), 3);
    kv_scan_page_free(page);
    assert_int_equal(kv_scan(&page, db, "FFFFFFFFFFFFFFFF", 10, NULL), KV_OK);
    assert_int_equal(kv_scan_page_count(page), 0);
    assert_null(kv_scan_page_cursor(page));
    kv_scan_page_free(page);
}

/* A node alone, and a client handle to it: the same keys, the same order,
 * the same cursors, over the binary protocol's SCAN. */
typedef struct node_world {
    char *dir;
    kv *node;
    kv *client;
} node_world;

static int node_setup(void **state)
{
    node_world *w = calloc(1, sizeof *w);
    w->dir = test_tempdir();
    kv_open_options store = KV_OPEN_OPTIONS_INIT;
    store.sync = KV_SYNC_NONE;
    kv_node_options o = KV_NODE_OPTIONS_INIT;
    o.data_dir = w->dir;
    o.node_id = "n1";
    o.listen_addr = "127.0.0.1:0";
    o.store = &store;
    if (kv_node_start(&w->node, &o) != KV_OK) {
        fprintf(stderr, "kv_node_start: %s\n", kv_error_last());
        return -1;
    }
    int port = 0;
    kv_node_ports(&port, NULL, w->node);
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
    const char *eps[] = {ep};
    if (kv_client_open(&w->client, eps, 1, NULL) != KV_OK) {
        fprintf(stderr, "kv_client_open: %s\n", kv_error_last());
        return -1;
    }
    *state = w;
    return 0;
}

static int node_teardown(void **state)
{
    node_world *w = *state;
    kv_close(w->client);
    kv_close(w->node);
    test_rmtree(w->dir);
    free(w);
    return 0;
}

static void node_and_client_handles(void **state)
{
    node_world *w = *state;
    kv_scan_page *page = NULL;
    assert_int_equal(kv_scan(&page, w->client, NULL, 10, NULL), KV_OK);
    assert_int_equal(kv_scan_page_count(page), 0);
    assert_null(kv_scan_page_cursor(page));
    kv_scan_page_free(page);
    fill(w->client, 120);
    size_t count, pages;
    char *by_node = scan_all(w->node, 11, NULL, 120, &count, &pages);
    assert_int_equal(count, 120);
    char *by_client = scan_all(w->client, 11, NULL, 120, &count, &pages);
    assert_int_equal(count, 120);
    assert_memory_equal(by_node, by_client, 120 * 9);
    kv_scan_options so = KV_SCAN_OPTIONS_INIT;
    so.keys_only = 1;
    free(scan_all(w->client, 50, &so, 120, &count, &pages));
    assert_int_equal(count, 120);
    /* The node's checks reach the client as the same codes. */
    assert_int_equal(kv_scan(&page, w->client, "xyz", 10, NULL), KV_EINVAL);
    assert_int_equal(kv_scan(&page, w->client, NULL, 0, NULL), KV_EINVAL);
    so.consistency = KV_CONSISTENCY_SERIAL;
    assert_int_equal(kv_scan(&page, w->client, NULL, 10, &so), KV_EINVAL);
    /* A client's cursor works on the node's handle: one format. */
    assert_int_equal(kv_scan(&page, w->client, NULL, 60, NULL), KV_OK);
    char *cursor = strdup(kv_scan_page_cursor(page));
    kv_scan_page_free(page);
    assert_int_equal(kv_scan(&page, w->node, cursor, 100, NULL), KV_OK);
    assert_int_equal(kv_scan_page_count(page), 60);
    kv_scan_page_free(page);
    free(cursor);
    free(by_node);
    free(by_client);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_open, fixture_close)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(empty_store),
        T(pages_cover_every_key_once),
        T(keys_only),
        T(deleted_and_expired_keys_are_skipped),
        T(binary_keys_and_values),
        T(cursor_survives_writes),
        T(bad_arguments),
        cmocka_unit_test_setup_teardown(node_and_client_handles, node_setup, node_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
