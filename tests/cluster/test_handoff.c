/* Hinted handoff against a real node in this process: hints for a member
 * that is up are delivered (the member then holds the state) and deleted;
 * a hint the member refuses for good is dropped and counted; nothing goes
 * to a member held down; hints past the window are dropped and counted.
 * Waits are bounded polls, no timing assertions. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "net/client.h"
#include "cluster/handoff.h"
#include "cluster/hints.h"
#include "format/state.h"
#include "cluster/view.h"
#include "integration/loopback.h"
#include "format/record.h"
#include "storage/embedded.h"
#include "client/handle.h"
#include "helpers.h"
#include "util/clock.h"

typedef struct world {
    char *dir, *target_dir;
    kv *db;          /* the store keeping the hints */
    kv *target;      /* a node, the hints' owner ("t") */
    char target_addr[64];
    kvi_view *view;  /* {"self", "t"} */
    int target_down;
    kvi_hints hints;
} world;

static kvi_view *get_view(void *ctx)
{
    world *w = ctx;
    if (!w->view)
        return NULL;
    kvi_view_ref(w->view);
    return w->view;
}

static int is_down(void *ctx, const char *id)
{
    world *w = ctx;
    return w->target_down && strcmp(id, "t") == 0;
}

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    w->dir = test_tempdir();
    w->target_dir = test_tempdir();
    assert_int_equal(kv_open(&w->db, w->dir, NULL), KV_OK);
    kvi_hints_init(&w->hints, kvi_embedded_store(w->db->embedded), 1);
    kv_node_options o = KV_NODE_OPTIONS_INIT;
    o.data_dir = w->target_dir;
    o.node_id = "t";
    o.listen_addr = "127.0.0.1:0";
    assert_int_equal(kv_node_start(&w->target, &o), KV_OK);
    int port = 0;
    kv_node_ports(&port, NULL, w->target);
    snprintf(w->target_addr, sizeof w->target_addr, "127.0.0.1:%d", port);
    const char *ids[] = {"self", "t"};
    const char *addrs[] = {"127.0.0.1:1", w->target_addr};
    kvi_view_config vc = {.ids = ids, .addrs = addrs, .n = 2, .self = 0, .replicas = 2,
                          .vnodes = 8};
    assert_int_equal(kvi_view_build(&w->view, &vc), KV_OK);
    *state = w;
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    kvi_view_unref(w->view);
    kv_close(w->target);
    kv_close(w->db);
    test_rmtree(w->dir);
    test_rmtree(w->target_dir);
    free(w);
    return 0;
}

/* A hint holding a one-sibling state of key written by "c". */
static void put_hint(world *w, const char *key, const char *value, uint64_t created_ms)
{
    kvi_state st;
    kvi_state_init(&st);
    kvi_sibling sib = {.write_ms = kvi_now_ms(), .value = (const unsigned char *)value,
                       .value_len = strlen(value)};
    assert_int_equal(kvi_state_write(&st, NULL, "c", &sib), KV_OK);
    kvi_buf enc = {0};
    kvi_state_encode(&enc, &st, kvi_key_token(key, strlen(key)));
    assert_int_equal(kvi_hints_put(&w->hints, "t", created_ms, key, strlen(key), enc.data,
                                   enc.len),
                     KV_OK);
    kvi_buf_free(&enc);
}

/* What the target holds for key: 1 the value, 0 nothing. */
static int target_holds(world *w, const char *key, const char *value)
{
    const char *eps[] = {w->target_addr};
    kvi_client *c = NULL;
    assert_int_equal(kvi_client_open(&c, eps, 1, NULL, NULL), KV_OK);
    kvi_state st;
    kvi_buf holder = {0};
    int rc = kvi_client_get_state(c, &st, &holder, key, strlen(key));
    int found = rc == KV_OK && st.n == 1 && st.sibs[0].value_len == strlen(value) &&
                memcmp(st.sibs[0].value, value, strlen(value)) == 0;
    kvi_buf_free(&holder);
    kvi_client_close(c);
    return found;
}

/* The log lines of a handoff, for the replay's one line. */
typedef struct log_capture {
    pthread_mutex_t lock;
    char lines[16][1024];
    int n;
} log_capture;

static void capture(kv_log_level level, const char *msg, void *ctx)
{
    log_capture *c = ctx;
    pthread_mutex_lock(&c->lock);
    if (level <= KV_LOG_INFO && c->n < 16)
        snprintf(c->lines[c->n++], sizeof c->lines[0], "%s", msg);
    pthread_mutex_unlock(&c->lock);
}

/* How many captured lines contain needle. */
static int captured(log_capture *c, const char *needle)
{
    int found = 0;
    pthread_mutex_lock(&c->lock);
    for (int i = 0; i < c->n; i++)
        found += strstr(c->lines[i], needle) != NULL;
    pthread_mutex_unlock(&c->lock);
    return found;
}

static kvi_handoff_stats wait_stats(kvi_handoff *h, uint64_t pending, uint64_t replayed,
                                    uint64_t dropped)
{
    kvi_handoff_stats s = {0};
    for (int i = 0; i < 200; i++) {
        kvi_handoff_get_stats(h, &s);
        if (s.pending == pending && s.replayed == replayed && s.dropped == dropped)
            break;
        sleep_ms(50);
    }
    return s;
}

static void delivers_to_an_up_member_and_deletes(void **state)
{
    world *w = *state;
    w->target_down = 1;
    put_hint(w, "k1", "v1", kvi_now_ms());
    put_hint(w, "k2", "v2", kvi_now_ms());
    /* A hint whose state the target cannot decode: refused for good. */
    assert_int_equal(kvi_hints_put(&w->hints, "t", kvi_now_ms(), "k3", 2, "garbage", 7), KV_OK);
    log_capture logs = {.lock = PTHREAD_MUTEX_INITIALIZER};
    kvi_logger log = {capture, &logs, KV_LOG_INFO};
    kvi_handoff_config cfg = {.hints = &w->hints, .view = get_view, .is_down = is_down,
                              .ctx = w, .log = &log};
    kvi_handoff *h = NULL;
    assert_int_equal(kvi_handoff_start(&h, &cfg), KV_OK);
    /* Held down: counted, not sent. */
    kvi_handoff_stats s = wait_stats(h, 3, 0, 0);
    assert_int_equal(s.pending, 3);
    assert_true(s.oldest_ms > 0);
    sleep_ms(300);
    assert_false(target_holds(w, "k1", "v1"));
    /* Up: delivered, then deleted; the bad one dropped. */
    w->target_down = 0;
    s = wait_stats(h, 0, 2, 1);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.replayed, 2);
    assert_int_equal(s.dropped, 1);
    assert_int_equal(s.oldest_ms, 0);
    assert_true(target_holds(w, "k1", "v1"));
    assert_true(target_holds(w, "k2", "v2"));
    uint64_t left = 99;
    assert_int_equal(kvi_hints_stats(&w->hints, &left, NULL), KV_OK);
    assert_int_equal(left, 0);
    /* The replay is logged once, at info, with its counts. */
    for (int i = 0; i < 100 && !captured(&logs, "hinted handoff to t done"); i++)
        sleep_ms(50);
    assert_int_equal(captured(&logs, "hinted handoff to t done: 2 hints replayed, 1 dropped"), 1);
    sleep_ms(300);
    assert_int_equal(captured(&logs, "hinted handoff to t"), 1);
    kvi_handoff_stop(h);
}

static void drops_hints_past_the_window(void **state)
{
    world *w = *state;
    w->target_down = 1;
    uint64_t now = kvi_now_ms();
    put_hint(w, "old1", "x", now - 2 * 3600 * 1000);
    put_hint(w, "old2", "x", now - 3 * 3600 * 1000);
    put_hint(w, "fresh", "y", now);
    kvi_handoff_config cfg = {.hints = &w->hints, .view = get_view, .is_down = is_down,
                              .ctx = w, .window_s = 3600};
    kvi_handoff *h = NULL;
    assert_int_equal(kvi_handoff_start(&h, &cfg), KV_OK);
    kvi_handoff_stats s = wait_stats(h, 1, 0, 2);
    assert_int_equal(s.dropped, 2);
    assert_int_equal(s.pending, 1);
    assert_true(s.oldest_ms >= now);
    kvi_handoff_stop(h);
}

/* A hint for a member no longer in the ring (it left: its writes reached
 * its new homes too) is dropped, not kept pending for the hint window;
 * the ring's members' hints stay. */
static void drops_hints_of_members_that_left(void **state)
{
    world *w = *state;
    w->target_down = 1;
    put_hint(w, "k1", "v1", kvi_now_ms());
    kvi_state st;
    kvi_state_init(&st);
    kvi_sibling sib = {.write_ms = kvi_now_ms(), .value = (const unsigned char *)"x",
                       .value_len = 1};
    assert_int_equal(kvi_state_write(&st, NULL, "c", &sib), KV_OK);
    kvi_buf enc = {0};
    kvi_state_encode(&enc, &st, kvi_key_token("k2", 2));
    assert_int_equal(kvi_hints_put(&w->hints, "gone", kvi_now_ms(), "k2", 2, enc.data, enc.len),
                     KV_OK);
    kvi_buf_free(&enc);
    kvi_handoff_config cfg = {.hints = &w->hints, .view = get_view, .is_down = is_down,
                              .ctx = w};
    kvi_handoff *h = NULL;
    assert_int_equal(kvi_handoff_start(&h, &cfg), KV_OK);
    kvi_handoff_stats s = wait_stats(h, 1, 0, 1);
    assert_int_equal(s.dropped, 1);
    assert_int_equal(s.pending, 1); /* t's, held down, kept */
    kvi_handoff_stop(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(delivers_to_an_up_member_and_deletes, setup, teardown),
        cmocka_unit_test_setup_teardown(drops_hints_past_the_window, setup, teardown),
        cmocka_unit_test_setup_teardown(drops_hints_of_members_that_left, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
