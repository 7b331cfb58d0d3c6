/* The client handle's cache of hot keys (kv_client_options.hot_cache_*):
 * reads within the staleness bound may be answered from it; writes through
 * the handle, reads at ALL or SERIAL and traced reads are not; entries go
 * after the bound and when the cache is full. Against a node hosted in the
 * test's process, changed behind the cached handle's back by a second
 * handle. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "helpers.h"
#include <kv/kv.h>

typedef struct world {
    char *dir;
    kv *node;
    char endpoint[64];
    kv *other; /* no cache: the writes behind the cached handle's back */
} world;

static kv *open_client(world *w, uint32_t staleness_ms, uint32_t entries)
{
    const char *eps[] = {w->endpoint};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.hot_cache_staleness_ms = staleness_ms;
    co.hot_cache_entries = entries;
    kv *c = NULL;
    assert_int_equal(kv_client_open(&c, eps, 1, &co), KV_OK);
    return c;
}

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    w->dir = test_tempdir();
    kv_open_options store = KV_OPEN_OPTIONS_INIT;
    store.sync = KV_SYNC_NONE;
    kv_node_options o = KV_NODE_OPTIONS_INIT;
    o.data_dir = w->dir;
    o.node_id = "n1";
    o.listen_addr = "127.0.0.1:0";
    o.store = &store;
    if (kv_node_start(&w->node, &o) != KV_OK)
        return -1;
    int port;
    kv_node_ports(&port, NULL, w->node);
    snprintf(w->endpoint, sizeof w->endpoint, "127.0.0.1:%d", port);
    const char *eps[] = {w->endpoint};
    if (kv_client_open(&w->other, eps, 1, NULL) != KV_OK)
        return -1;
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    kv_close(w->other);
    kv_close(w->node);
    test_rmtree(w->dir);
    free(w);
    return 0;
}

static void put(kv *c, const char *key, const char *value)
{
    assert_int_equal(kv_put(NULL, c, key, strlen(key), value, strlen(value), NULL), KV_OK);
}

/* key's value through c (at level), checked to be want. */
static void read_is(kv *c, const char *key, kv_consistency level, const char *want)
{
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = level;
    kv_value *v = NULL;
    assert_int_equal(kv_get(&v, c, key, strlen(key), &ro), KV_OK);
    size_t len;
    const char *data = kv_value_data(v, &len);
    if (len != strlen(want) || memcmp(data, want, len) != 0)
        fail_msg("%s: got \"%.*s\", want \"%s\"", key, (int)len, data, want);
    kv_value_free(v);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Within the bound (a minute: no machine is that slow between two reads),
 * a read is the cached value; ALL, SERIAL and the handle's own write are
 * not served from it. */
static void reads_within_the_bound_are_served_from_the_cache(void **state)
{
    world *w = *state;
    kv *c = open_client(w, 60000, 0);
    put(w->other, "hot", "v1");
    read_is(c, "hot", KV_CONSISTENCY_DEFAULT, "v1"); /* kept */
    put(w->other, "hot", "v2");
    read_is(c, "hot", KV_CONSISTENCY_ONE, "v1");     /* from the cache */
    read_is(c, "hot", KV_CONSISTENCY_ALL, "v2");     /* never from it */
    read_is(c, "hot", KV_CONSISTENCY_SERIAL, "v2");
    char *trace = NULL;
    kv_value *v = NULL;
    assert_int_equal(kv_get_traced(&v, &trace, c, "hot", 3, NULL), KV_OK);
    assert_memory_equal(kv_value_data(v, NULL), "v2", 2);
    kv_value_free(v);
    kv_string_free(trace);
    /* The handle's own write: read back at once. */
    put(c, "hot", "v3");
    read_is(c, "hot", KV_CONSISTENCY_DEFAULT, "v3");
    kv_close(c);

    /* Off by default: every read asks the node. */
    kv *plain = open_client(w, 0, 0);
    read_is(plain, "hot", KV_CONSISTENCY_DEFAULT, "v3");
    put(w->other, "hot", "v4");
    read_is(plain, "hot", KV_CONSISTENCY_DEFAULT, "v4");
    kv_close(plain);
}

/* After the bound, the next read asks the node. */
static void entries_go_after_the_bound(void **state)
{
    world *w = *state;
    kv *c = open_client(w, 50, 0);
    put(w->other, "brief", "old");
    read_is(c, "brief", KV_CONSISTENCY_DEFAULT, "old");
    put(w->other, "brief", "new");
    sleep_ms(300); /* past the 50 ms bound, whatever the machine */
    read_is(c, "brief", KV_CONSISTENCY_DEFAULT, "new");
    kv_close(c);
}

/* Full: the least recently read key goes first. */
static void the_least_recently_read_goes_when_full(void **state)
{
    world *w = *state;
    kv *c = open_client(w, 60000, 2);
    put(w->other, "a", "a1");
    put(w->other, "b", "b1");
    put(w->other, "c", "c1");
    read_is(c, "a", KV_CONSISTENCY_DEFAULT, "a1");
    read_is(c, "b", KV_CONSISTENCY_DEFAULT, "b1");
    read_is(c, "a", KV_CONSISTENCY_DEFAULT, "a1"); /* a is now the newer */
    read_is(c, "c", KV_CONSISTENCY_DEFAULT, "c1"); /* b goes */
    put(w->other, "a", "a2");
    put(w->other, "b", "b2");
    read_is(c, "a", KV_CONSISTENCY_DEFAULT, "a1"); /* still kept */
    read_is(c, "b", KV_CONSISTENCY_DEFAULT, "b2"); /* asked again */
    kv_close(c);
}

typedef struct waiter {
    atomic_int done;
    int status;
} waiter;

static void on_done(void *ctx, kv_result *r)
{
    waiter *wt = ctx;
    wt->status = r->status;
    kv_value_free(r->value);
    atomic_store(&wt->done, 1);
}

/* Writes the cache must forget: a batch's, and an asynchronous put's. */
static void batches_and_asynchronous_writes_drop_their_keys(void **state)
{
    world *w = *state;
    kv *c = open_client(w, 60000, 0);
    put(w->other, "bk", "b1");
    read_is(c, "bk", KV_CONSISTENCY_DEFAULT, "b1");
    kv_batch *b = NULL;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    assert_int_equal(kv_batch_put(b, "bk", 2, "b2", 2, 0), KV_OK);
    assert_int_equal(kv_batch_execute(c, b, NULL, NULL), KV_OK);
    kv_batch_free(b);
    read_is(c, "bk", KV_CONSISTENCY_DEFAULT, "b2");

    put(w->other, "ak", "a1");
    read_is(c, "ak", KV_CONSISTENCY_DEFAULT, "a1");
    waiter wt = {0};
    assert_int_equal(kv_put_async(c, "ak", 2, "a2", 2, NULL, on_done, &wt), KV_OK);
    for (int i = 0; i < 2000 && !atomic_load(&wt.done); i++) /* up to ~20 s */
        sleep_ms(10);
    assert_true(atomic_load(&wt.done));
    assert_int_equal(wt.status, KV_OK);
    read_is(c, "ak", KV_CONSISTENCY_DEFAULT, "a2");
    kv_close(c);
}

static void bad_options_are_refused(void **state)
{
    world *w = *state;
    const char *eps[] = {w->endpoint};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    kv *c = NULL;
    co.hot_cache_staleness_ms = 3600001;
    assert_int_equal(kv_client_open(&c, eps, 1, &co), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "hot_cache_staleness_ms"));
    co.hot_cache_staleness_ms = 100;
    co.hot_cache_entries = 1048577;
    assert_int_equal(kv_client_open(&c, eps, 1, &co), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "hot_cache_entries"));
    assert_null(c);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(reads_within_the_bound_are_served_from_the_cache),
        T(entries_go_after_the_bound),
        T(the_least_recently_read_goes_when_full),
        T(batches_and_asynchronous_writes_drop_their_keys),
        T(bad_options_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
