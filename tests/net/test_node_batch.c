/* Batches in a cluster of three nodes hosted in this process (issue 12,
 * "Batches on the loop"): a BATCH request a node starts on its peers' loop,
 * and a node handle's batch, which waits for the same state machine. In
 * process, so that the sanitizers see the batches' lives whole: nodes
 * stopped with batches still running must free everything they used. */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <setjmp.h>
#include <cmocka.h>

#include "helpers.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"
#include "net/nodes_in_process.h"
#include "format/frame.h"
#include "format/message.h"
#include <kv/kv.h>

#define NODES INPROC_NODES

typedef inproc_nodes world;

static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    *state = w;
    return inproc_up(w);
}

static int teardown(void **state)
{
    world *w = *state;
    inproc_down(w);
    free(w);
    return 0;
}

/* A client whose batches node i runs (a manual_loop client has no view of
 * its own). */
static kv *node_client(const world *w, int i)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 15000;
    co.connect_timeout_ms = 1000;
    co.manual_loop = 1;
    const char *eps[] = {w->listen[i]};
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, 1, &co), KV_OK);
    return db;
}

/* Operation i's status; a get's value must be `want` (NULL: unchecked). */
static int result_is(const kv_batch *b, size_t i, const char *want)
{
    const kv_value *v = NULL;
    int rc = kv_batch_result(&v, NULL, b, i);
    if (rc == KV_OK && want) {
        size_t len = 0;
        const void *data = v ? kv_value_data(v, &len) : NULL;
        if (!data || len != strlen(want) || memcmp(data, want, len) != 0)
            return -1000;
    }
    return rc;
}

/* 150 operations through a node's BATCH, then read back through another
 * node's handle (whose batch waits on its loop). */
static void batches_through_a_node_and_a_node_handle(void **state)
{
    world *w = *state;
    kv *db = node_client(w, 0);
    kv_batch *b = NULL;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    char key[32], value[32];
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(value, sizeof value, "v%d", i);
        assert_int_equal(kv_batch_put(b, key, strlen(key), value, strlen(value), 0), KV_OK);
        assert_int_equal(kv_batch_get(b, key, strlen(key)), KV_OK);
        if (i % 5 == 0)
            assert_int_equal(kv_batch_delete(b, key, strlen(key)), KV_OK);
        else
            assert_int_equal(kv_batch_get(b, "absent", 6), KV_OK);
    }
    assert_int_equal(kv_batch_execute(db, b, NULL, NULL), KV_OK);
    for (int i = 0; i < 50; i++) {
        snprintf(value, sizeof value, "v%d", i);
        assert_int_equal(result_is(b, (size_t)i * 3, NULL), KV_OK);
        assert_int_equal(result_is(b, (size_t)i * 3 + 1, value), KV_OK);
        assert_int_equal(result_is(b, (size_t)i * 3 + 2, NULL), i % 5 ? KV_ENOTFOUND : KV_OK);
    }
    kv_batch_clear(b);
    for (int i = 0; i < 50; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(kv_batch_get(b, key, strlen(key)), KV_OK);
    }
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_QUORUM;
    assert_int_equal(kv_batch_execute(w->node[1], b, NULL, &ro), KV_OK);
    for (int i = 0; i < 50; i++) {
        snprintf(value, sizeof value, "v%d", i);
        assert_int_equal(result_is(b, (size_t)i, value), i % 5 ? KV_OK : KV_ENOTFOUND);
    }
    kv_batch_free(b);
    kv_close(db);
}

/* Nodes stopped while batches they took are still running: the stop
 * waits for their answers, and everything they held is freed (the
 * sanitizers' leak check says so). */
static void nodes_stop_with_batches_running(void **state)
{
    world *w = *state;
    int fd = loopback_connect(w->listen[0], 20);
    assert_true(fd >= 0);
    char key[32];
    for (uint64_t id = 1; id <= 20; id++) {
        kvi_buf f = {0};
        kvi_frame_begin(&f);
        kvi_request req = {.opcode = KVI_OP_BATCH, .consistency = KV_CONSISTENCY_ALL,
                           .batch_count = 60};
        kvi_request_encode(&f, &req);
        for (int i = 0; i < 60; i++) {
            snprintf(key, sizeof key, "run-%d", i);
            kvi_batch_item it = {.kind = i % 2 ? KV_BATCH_GET : KV_BATCH_PUT,
                                 .key = {(const unsigned char *)key, strlen(key)},
                                 .value = {(const unsigned char *)"x", i % 2 ? 0 : 1}};
            kvi_batch_item_encode(&f, &it);
        }
        assert_int_equal(kvi_frame_finish(&f, 0, KVI_OP_BATCH, 0, 0, id), 0);
        assert_int_equal(send(fd, f.data, f.len, MSG_NOSIGNAL), (ssize_t)f.len);
        kvi_buf_free(&f);
    }
    /* At least the first answer, so that the batches have started. */
    unsigned char header[KVI_FRAME_HEADER];
    assert_int_equal(recv_exact(fd, header, sizeof header), 0);
    inproc_stop_all(w);
    close(fd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(batches_through_a_node_and_a_node_handle, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(nodes_stop_with_batches_running, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
