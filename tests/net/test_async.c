/* The asynchronous calls (kv_*_async, kv_run, kv_fd) against a node hosted
 * in-process, over real loopback sockets: many requests in flight from one
 * thread, callbacks that start the next request, a loop driven by the
 * application through poll, errors told through the result, timeouts, a
 * close that ends what is in flight, and the inline path of the embedded
 * handle. (MERGE's extra steps need siblings, so a cluster:
 * integration/test_cluster.c.) */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "client/handle.h"
#include "helpers.h"
#include "net/client.h"
#include "silent_listener.h"
#include <kv/kv.h>

typedef struct world {
    char *dir;
    kv *node;
    char endpoint[64];
} world;

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
    if (kv_node_start(&w->node, &o) != KV_OK) {
        fprintf(stderr, "kv_node_start: %s\n", kv_error_last());
        return -1;
    }
    int port;
    kv_node_ports(&port, NULL, w->node);
    snprintf(w->endpoint, sizeof w->endpoint, "127.0.0.1:%d", port);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    kv_close(w->node);
    test_rmtree(w->dir); /* frees it */
    free(w);
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ------------------------------------------- many in flight, own thread */

#define KEYS 5000
#define WINDOW 256

typedef struct tally {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, ok, wrong, in_flight;
    uint64_t versions[KEYS];
} tally;

typedef struct op {
    tally *t;
    int i;
} op;

static void tally_init(tally *t)
{
    memset(t, 0, sizeof *t);
    pthread_mutex_init(&t->lock, NULL);
    pthread_cond_init(&t->cond, NULL);
}

static void count(tally *t, int ok)
{
    pthread_mutex_lock(&t->lock);
    t->done++;
    t->ok += ok;
    t->wrong += !ok;
    t->in_flight--;
    pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static void put_done(void *ctx, kv_result *r)
{
    op *o = ctx;
    o->t->versions[o->i] = r->version;
    count(o->t, r->status == KV_OK && r->version > 0 && r->value == NULL &&
                    strcmp(r->message, "") == 0);
    free(o);
}

static void get_done(void *ctx, kv_result *r)
{
    op *o = ctx;
    char want[32];
    snprintf(want, sizeof want, "value-%d", o->i);
    size_t len = 0;
    const char *got = r->value ? kv_value_data(r->value, &len) : NULL;
    int ok = r->status == KV_OK && got && len == strlen(want) && memcmp(got, want, len) == 0 &&
             kv_value_version(r->value) == o->t->versions[o->i] &&
             r->version == o->t->versions[o->i];
    kv_value_free(r->value);
    count(o->t, ok);
    free(o);
}

/* Waits (bounded) until every call has called back; keeps at most WINDOW
 * in flight while starting them. */
static void window_wait(tally *t, int in_flight_max, int done_min)
{
    uint64_t until = now_ms() + 60000;
    pthread_mutex_lock(&t->lock);
    while (t->in_flight > in_flight_max || t->done < done_min) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_cond_timedwait(&t->cond, &t->lock, &ts);
        if (now_ms() > until)
            break;
    }
    pthread_mutex_unlock(&t->lock);
}

static void many_in_flight_from_one_thread(void **state)
{
    world *w = *state;
    const char *eps[] = {w->endpoint};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.connections_per_node = 2;
    kv *c;
    assert_int_equal(kv_client_open(&c, eps, 1, &co), KV_OK);
    tally *t = malloc(sizeof *t);
    tally_init(t);
    for (int i = 0; i < KEYS; i++) {
        window_wait(t, WINDOW, 0);
        char key[32], value[32];
        snprintf(key, sizeof key, "key-%d", i);
        snprintf(value, sizeof value, "value-%d", i);
        op *o = malloc(sizeof *o);
        *o = (op){t, i};
        pthread_mutex_lock(&t->lock);
        t->in_flight++;
        pthread_mutex_unlock(&t->lock);
        assert_int_equal(kv_put_async(c, key, strlen(key), value, strlen(value), NULL, put_done, o),
                         KV_OK);
    }
    window_wait(t, 0, KEYS);
    assert_int_equal(t->done, KEYS);
    assert_int_equal(t->ok, KEYS);
    for (int i = 0; i < KEYS; i++) {
        window_wait(t, WINDOW, 0);
        char key[32];
        snprintf(key, sizeof key, "key-%d", i);
        op *o = malloc(sizeof *o);
        *o = (op){t, i};
        pthread_mutex_lock(&t->lock);
        t->in_flight++;
        pthread_mutex_unlock(&t->lock);
        assert_int_equal(kv_get_async(c, key, strlen(key), NULL, get_done, o), KV_OK);
    }
    window_wait(t, 0, 2 * KEYS);
    printf("async: %d calls, %d right, %d wrong\n", t->done, t->ok, t->wrong);
    assert_int_equal(t->done, 2 * KEYS);
    assert_int_equal(t->ok, 2 * KEYS);
    /* The blocking calls see the same data. */
    kv_value *v = NULL;
    assert_int_equal(kv_get(&v, c, "key-7", 5, NULL), KV_OK);
    assert_int_equal(kv_value_version(v), t->versions[7]);
    kv_value_free(v);
    kv_close(c);
    pthread_mutex_destroy(&t->lock);
    pthread_cond_destroy(&t->cond);
    free(t);
}

/* ------------------------------------------ manual loop, chained calls */

#define CHAIN_DEPTH 16
#define CHAIN_OPS 4000

typedef struct chain {
    kv *c;
    int started, done, failed;
    int busy_run, busy_blocking, busy_scan; /* what the forbidden calls said */
} chain;

static void chain_next(chain *ch);

static void chain_done(void *ctx, kv_result *r)
{
    chain *ch = ctx;
    ch->done++;
    /* A get may come before the first put of its key. */
    ch->failed += r->status != KV_OK && r->status != KV_ENOTFOUND;
    kv_value_free(r->value);
    if (ch->done == 1) {
        /* Inside a callback: the loop is running on this thread. */
        ch->busy_run = kv_run(ch->c, 0);
        ch->busy_blocking = kv_put(NULL, ch->c, "x", 1, "y", 1, NULL);
        kv_scan_page *page = NULL;
        ch->busy_scan = kv_scan(&page, ch->c, NULL, 10, NULL);
        kv_scan_page_free(page);
    }
    chain_next(ch);
}

/* Starts the next request from the callback of the last one. */
static void chain_next(chain *ch)
{
    if (ch->started >= CHAIN_OPS)
        return;
    int i = ch->started++;
    char key[32];
    snprintf(key, sizeof key, "chain-%d", i % 97);
    int rc = i % 2 ? kv_get_async(ch->c, key, strlen(key), NULL, chain_done, ch)
                   : kv_put_async(ch->c, key, strlen(key), "v", 1, NULL, chain_done, ch);
    if (rc != KV_OK) {
        ch->done++;
        ch->failed++;
    }
}

static void manual_loop_driven_by_poll(void **state)
{
    world *w = *state;
    const char *eps[] = {w->endpoint};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.manual_loop = 1;
    kv *c;
    assert_int_equal(kv_client_open(&c, eps, 1, &co), KV_OK);
    /* A blocking call drives the loop itself. */
    assert_int_equal(kv_put(NULL, c, "chain-0", 7, "v", 1, NULL), KV_OK);
    int fd = -1;
    assert_int_equal(kv_fd(&fd, c), KV_OK);
    assert_true(fd >= 0);
    chain ch = {.c = c};
    for (int i = 0; i < CHAIN_DEPTH; i++)
        chain_next(&ch);
    uint64_t until = now_ms() + 60000;
    int turns = 0;
    while (ch.done < CHAIN_OPS && now_ms() < until) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ready = poll(&p, 1, 1000);
        assert_true(ready >= 0);
        assert_true(kv_run(c, 0) >= 0);
        turns++;
    }
    printf("manual loop: %d calls in %d turns, %d failed\n", ch.done, turns, ch.failed);
    assert_int_equal(ch.done, CHAIN_OPS);
    assert_int_equal(ch.failed, 0);
    /* Many calls per turn: the loop batches. */
    assert_true(turns < CHAIN_OPS);
    assert_int_equal(ch.busy_run, KV_EBUSY);
    assert_int_equal(ch.busy_blocking, KV_EBUSY);
    assert_int_equal(ch.busy_scan, KV_EBUSY);
    kv_close(c);
}

/* ------------------------------------------------------------- errors */

typedef struct one {
    int calls;
    int status;
    uint64_t version;
    int had_value;
    char message[256];
} one;

static void one_done(void *ctx, kv_result *r)
{
    one *o = ctx;
    o->calls++;
    o->status = r->status;
    o->version = r->version;
    o->had_value = r->value != NULL;
    snprintf(o->message, sizeof o->message, "%s", r->message);
    kv_value_free(r->value);
}

/* Runs a manual client's loop until o has called back (bounded). */
static void run_until(kv *c, const one *o)
{
    uint64_t until = now_ms() + 30000;
    while (!o->calls && now_ms() < until)
        assert_true(kv_run(c, 100) >= 0);
    assert_int_equal(o->calls, 1);
}

static void errors_come_through_the_result(void **state)
{
    world *w = *state;
    const char *eps[] = {w->endpoint};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.manual_loop = 1;
    kv *c;
    assert_int_equal(kv_client_open(&c, eps, 1, &co), KV_OK);

    one o = {0};
    assert_int_equal(kv_get_async(c, "absent", 6, NULL, one_done, &o), KV_OK);
    run_until(c, &o);
    assert_int_equal(o.status, KV_ENOTFOUND);
    assert_false(o.had_value);

    memset(&o, 0, sizeof o);
    assert_int_equal(kv_put_async(c, "cas", 3, "1", 1, NULL, one_done, &o), KV_OK);
    run_until(c, &o);
    assert_int_equal(o.status, KV_OK);
    uint64_t current = o.version;
    memset(&o, 0, sizeof o);
    assert_int_equal(kv_cas_async(c, "cas", 3, current + 5, "2", 1, NULL, one_done, &o), KV_OK);
    run_until(c, &o);
    assert_int_equal(o.status, KV_ECONFLICT);
    assert_int_equal(o.version, current);
    assert_true(strlen(o.message) > 0);
    memset(&o, 0, sizeof o);
    assert_int_equal(kv_cas_async(c, "cas", 3, current, "2", 1, NULL, one_done, &o), KV_OK);
    run_until(c, &o);
    assert_int_equal(o.status, KV_OK);
    assert_true(o.version > current);
    memset(&o, 0, sizeof o);
    assert_int_equal(kv_delete_async(c, "cas", 3, NULL, one_done, &o), KV_OK);
    run_until(c, &o);
    assert_int_equal(o.status, KV_OK);

    /* Refused at once, and the callback never runs. */
    memset(&o, 0, sizeof o);
    assert_int_equal(kv_get_async(c, "", 0, NULL, one_done, &o), KV_EINVAL);
    assert_int_equal(kv_put_async(c, "k", 1, "v", 1, NULL, NULL, NULL), KV_EINVAL);
    kv_write_options bad = KV_WRITE_OPTIONS_INIT;
    bad.consistency = (kv_consistency)99;
    assert_int_equal(kv_put_async(c, "k", 1, "v", 1, &bad, one_done, &o), KV_EINVAL);
    assert_int_equal(kv_run(c, 0) >= 0, 1);
    assert_int_equal(o.calls, 0);
    /* The node's own refusal comes through the result. */
    size_t big_len = 2u * 1024u * 1024u;
    char *big = malloc(big_len);
    memset(big, 'x', big_len);
    assert_int_equal(kv_put_async(c, "k", 1, big, big_len, NULL, one_done, &o), KV_OK);
    free(big);
    run_until(c, &o);
    assert_int_equal(o.status, KV_ETOOBIG);
    assert_true(strlen(o.message) > 0);
    assert_int_equal(kv_run(NULL, 0), KV_EINVAL);
    kv_close(c);

    /* A client with a thread of its own has no loop to drive. */
    assert_int_equal(kv_client_open(&c, eps, 1, NULL), KV_OK);
    int fd;
    assert_int_equal(kv_fd(&fd, c), KV_EINVAL);
    assert_int_equal(kv_fd(NULL, c), KV_EINVAL);
    assert_int_equal(kv_run(c, 0), KV_EINVAL);
    kv_close(c);
}

/* A node that never answers: the call times out; closing the client with
 * calls in flight ends every one of them before kv_close returns. */
static void timeouts_and_close_end_every_call(void **state)
{
    (void)state;
    char ep[64];
    int lfd = silent_listener(ep, sizeof ep);
    assert_true(lfd >= 0);
    const char *eps[] = {ep};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 300;
    co.manual_loop = 1;
    kv *c;
    assert_int_equal(kv_client_open(&c, eps, 1, &co), KV_OK);
    one o = {0};
    assert_int_equal(kv_get_async(c, "k", 1, NULL, one_done, &o), KV_OK);
    run_until(c, &o);
    /* The connection's first exchange (a PING that shows a libkv node)
     * gets no answer: the get is never sent. */
    assert_int_equal(o.status, KV_ETIMEDOUT);
    assert_non_null(strstr(o.message, "handshake"));
    kv_close(c);

    /* With a thread of its own, 100 calls waiting on a silent node. */
    co.manual_loop = 0;
    co.request_timeout_ms = 60000;
    co.connect_timeout_ms = 60000;
    assert_int_equal(kv_client_open(&c, eps, 1, &co), KV_OK);
    one many[100];
    memset(many, 0, sizeof many);
    for (int i = 0; i < 100; i++)
        assert_int_equal(kv_put_async(c, "k", 1, "v", 1, NULL, one_done, &many[i]), KV_OK);
    kv_close(c);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(many[i].calls, 1);
        assert_true(many[i].status == KV_EUNAVAILABLE || many[i].status == KV_EUNKNOWN_OUTCOME);
    }
    close(lfd);
}

/* ------------------------------------------- a manual loop handed over */

/* A callback that holds its turn of the loop, and so the loop, until the
 * test opens the gate. */
typedef struct gate {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int entered, open;
    int status;
} gate;

static void gate_done(void *ctx, kv_result *r)
{
    gate *g = ctx;
    kv_value_free(r->value);
    pthread_mutex_lock(&g->lock);
    g->status = r->status;
    g->entered = 1;
    pthread_cond_broadcast(&g->cond);
    while (!g->open)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

typedef struct handover {
    kv *c;
    gate g;
    /* the blocking call's */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, rc;
    char value[16];
} handover;

/* The application drives the loop until the gated callback has run (in
 * its last turn), then never again. */
static void *drive_until_gated(void *arg)
{
    handover *h = arg;
    for (;;) {
        pthread_mutex_lock(&h->g.lock);
        int entered = h->g.entered;
        pthread_mutex_unlock(&h->g.lock);
        if (entered)
            return NULL;
        kv_run(h->c, 100);
    }
}

static void *blocking_get(void *arg)
{
    handover *h = arg;
    kv_value *v = NULL;
    int rc = kv_get(&v, h->c, "k2", 2, NULL);
    pthread_mutex_lock(&h->lock);
    h->rc = rc;
    if (rc == KV_OK) {
        size_t len;
        const void *data = kv_value_data(v, &len);
        snprintf(h->value, sizeof h->value, "%.*s", (int)len, (const char *)data);
    }
    h->done = 1;
    pthread_cond_signal(&h->cond);
    pthread_mutex_unlock(&h->lock);
    kv_value_free(v);
    return NULL;
}

/* A blocking call that waits while another thread drives a manual loop is
 * handed the loop when that thread lets go: here the driver (kv_run in a
 * thread of the application) stops driving for good after its turn, and
 * the call's answer can only be read if the call drives. Deterministic:
 * the driver's turn is held inside a callback until the call is parked
 * (kvi_client_parked), so the call cannot have taken the loop first. A
 * driver that let go without handing over would leave the call asleep
 * for ever: the bounded wait below fails then. */
static void a_parked_call_is_handed_the_loop(void **state)
{
    world *w = *state;
    const char *eps[] = {w->endpoint};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.manual_loop = 1;
    handover h;
    memset(&h, 0, sizeof h);
    pthread_mutex_init(&h.g.lock, NULL);
    pthread_cond_init(&h.g.cond, NULL);
    pthread_mutex_init(&h.lock, NULL);
    pthread_cond_init(&h.cond, NULL);
    assert_int_equal(kv_client_open(&h.c, eps, 1, &co), KV_OK);
    assert_int_equal(kv_put(NULL, h.c, "k2", 2, "two", 3, NULL), KV_OK); /* connects too */

    assert_int_equal(kv_get_async(h.c, "k1", 2, NULL, gate_done, &h.g), KV_OK);
    pthread_t driver, caller;
    assert_int_equal(pthread_create(&driver, NULL, drive_until_gated, &h), 0);
    pthread_mutex_lock(&h.g.lock);
    while (!h.g.entered)
        pthread_cond_wait(&h.g.cond, &h.g.lock);
    pthread_mutex_unlock(&h.g.lock);
    /* The driver is inside its turn now, holding the loop. */
    assert_int_equal(pthread_create(&caller, NULL, blocking_get, &h), 0);
    uint64_t until = now_ms() + 60000;
    while (kvi_client_parked(h.c->client) == 0 && now_ms() < until) {
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    assert_int_equal(kvi_client_parked(h.c->client), 1);
    pthread_mutex_lock(&h.g.lock);
    h.g.open = 1;
    pthread_cond_broadcast(&h.g.cond);
    pthread_mutex_unlock(&h.g.lock);
    assert_int_equal(pthread_join(driver, NULL), 0);
    assert_int_equal(h.g.status, KV_ENOTFOUND);

    /* No one else drives from here: only the hand-over lets it finish. */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    pthread_mutex_lock(&h.lock);
    while (!h.done && pthread_cond_timedwait(&h.cond, &h.lock, &deadline) == 0)
        ;
    int done = h.done;
    pthread_mutex_unlock(&h.lock);
    assert_true(done); /* else the parked call was never handed the loop */
    assert_int_equal(pthread_join(caller, NULL), 0);
    assert_int_equal(h.rc, KV_OK);
    assert_string_equal(h.value, "two");
    assert_int_equal(kvi_client_parked(h.c->client), 0);
    kv_close(h.c);
    pthread_mutex_destroy(&h.g.lock);
    pthread_cond_destroy(&h.g.cond);
    pthread_mutex_destroy(&h.lock);
    pthread_cond_destroy(&h.cond);
}

/* ------------------------------------------------------------ embedded */

static void embedded_calls_back_before_returning(void **state)
{
    (void)state;
    char *dir = test_tempdir();
    kv *db;
    assert_int_equal(kv_open(&db, dir, NULL), KV_OK);
    one o = {0};
    assert_int_equal(kv_put_async(db, "k", 1, "v", 1, NULL, one_done, &o), KV_OK);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, KV_OK);
    assert_true(o.version > 0);
    memset(&o, 0, sizeof o);
    assert_int_equal(kv_get_async(db, "k", 1, NULL, one_done, &o), KV_OK);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, KV_OK);
    assert_true(o.had_value);
    memset(&o, 0, sizeof o);
    assert_int_equal(kv_get_async(db, "nope", 4, NULL, one_done, &o), KV_OK);
    assert_int_equal(o.status, KV_ENOTFOUND);
    assert_true(strlen(o.message) > 0);
    int fd;
    assert_int_equal(kv_fd(&fd, db), KV_EINVAL);
    assert_int_equal(kv_run(db, 0), KV_EINVAL);
    kv_close(db);
    test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_in_flight_from_one_thread),
        cmocka_unit_test(manual_loop_driven_by_poll),
        cmocka_unit_test(errors_come_through_the_result),
        cmocka_unit_test(a_parked_call_is_handed_the_loop),
    };
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(timeouts_and_close_end_every_call),
        cmocka_unit_test(embedded_calls_back_before_returning),
    };
    int failed = cmocka_run_group_tests(tests, setup, teardown);
    return failed + cmocka_run_group_tests(alone, NULL, NULL);
}
