/* A clustered node's metrics of its own requests to its peers: the
 * latency of each peer's answers, by peer id (kv_peer_request_duration_
 * seconds), measured by the connections of its view. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "helpers.h"
#include "net/nodes_in_process.h"
#include "client/handle.h"
#include "node/node_internal.h"
#include "util/buf.h"
#include <kv/kv.h>

static int setup(void **state)
{
    inproc_nodes *c = calloc(1, sizeof *c);
    *state = c;
    return c && inproc_up(c) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    inproc_nodes *c = *state;
    inproc_down(c);
    free(c);
    return 0;
}

/* The count of node's peer-latency series for peer, or -1 when it has
 * none. */
static double peer_count(kv *node, const char *peer)
{
    kvi_buf b = {0};
    kvi_node_render_metrics(node->node, &b);
    kvi_buf_u8(&b, 0);
    assert_false(b.failed);
    char needle[128];
    snprintf(needle, sizeof needle, "\nkv_peer_request_duration_seconds_count{peer=\"%s\"} ",
             peer);
    const char *p = strstr((const char *)b.data, needle);
    double v = p ? strtod(p + strlen(needle), NULL) : -1;
    kvi_buf_free(&b);
    return v;
}

static void each_peer_answer_is_timed(void **state)
{
    inproc_nodes *c = *state;
    double before2 = peer_count(c->node[0], "n2"), before3 = peer_count(c->node[0], "n3");
    kv_write_options all = KV_WRITE_OPTIONS_INIT;
    all.consistency = KV_CONSISTENCY_ALL;
    enum { WRITES = 40 };
    for (int i = 0; i < WRITES; i++) {
        char key[32];
        snprintf(key, sizeof key, "timed-%d", i);
        assert_int_equal(kv_put(NULL, c->node[0], key, strlen(key), "v", 1, &all), KV_OK);
    }
    /* A write at ALL waited for both peers' answers to each: every answer
     * is counted (gossip and other requests of the view may add more). */
    assert_true(peer_count(c->node[0], "n2") >= (before2 < 0 ? 0 : before2) + WRITES);
    assert_true(peer_count(c->node[0], "n3") >= (before3 < 0 ? 0 : before3) + WRITES);
    /* Never itself. */
    assert_true(peer_count(c->node[0], "n1") < 0);
    /* Rendered as a histogram whose last bucket holds every answer. */
    kvi_buf b = {0};
    kvi_node_render_metrics(c->node[0]->node, &b);
    kvi_buf_u8(&b, 0);
    const char *inf = strstr((const char *)b.data,
                             "kv_peer_request_duration_seconds_bucket{peer=\"n2\",le=\"+Inf\"} ");
    assert_non_null(inf);
    assert_true(strtod(strchr(inf, '}') + 2, NULL) >= WRITES);
    assert_non_null(strstr((const char *)b.data, "# TYPE kv_peer_request_duration_seconds histogram\n"));
    kvi_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(each_peer_answer_is_timed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
