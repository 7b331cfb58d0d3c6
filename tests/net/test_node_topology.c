/* Writes during a topology change, on three nodes in this process: while a
 * join is in progress (recorded by an outside proposer, as an operator's
 * tool would), every write also reaches the joining member for the keys
 * it will hold, and succeeds only with W acknowledgements among the
 * future homes as well as the current ones; aborting the change stops
 * it. The joining member is a stand-in server that records the keys it
 * is sent. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <cJSON.h>
#include <kv/kv.h>
#include "cluster/coordinator.h"
#include "cluster/ring.h"
#include "cluster/topology.h"
#include "cluster/topology_service.h"
#include "format/frame.h"
#include "format/message.h"
#include "format/record.h"
#include "net/client.h"
#include "net/server.h"
#include "net/nodes_in_process.h"

#define KEYS 300

/* The stand-in for the joining member: answers REPLICATE, remembers the
 * keys. */
typedef struct joiner {
    kvi_server *server;
    char addr[64];
    pthread_mutex_t lock;
    char seen[KEYS];
    unsigned other;
    uint64_t min_epoch; /* the lowest epoch a write was routed with */
    unsigned unrouted;  /* writes without a route */
    /* Per key, the last write's body (route left out) and route hash. */
    unsigned char *body[KEYS];
    size_t body_len[KEYS];
    uint64_t route_hash[KEYS];
} joiner;

static void joiner_handle(void *ctx, const kvi_frame_header *h, const unsigned char *body,
                          kvi_buf *out)
{
    joiner *j = ctx;
    kvi_request req;
    if (h->opcode != KVI_OP_REPLICATE ||
        kvi_request_decode_frame(&req, h, body) != 0) {
        kvi_error_frame(out, h->opcode, h->request_id, KV_ENOTSUP, 0, "a stand-in");
        return;
    }
    int k = -1;
    if (req.key.len > 2 && req.key.len < 16 && memcmp(req.key.data, "k-", 2) == 0) {
        char num[16];
        memcpy(num, req.key.data + 2, req.key.len - 2);
        num[req.key.len - 2] = 0;
        k = atoi(num);
    }
    pthread_mutex_lock(&j->lock);
    if (!req.routed)
        j->unrouted++;
    else if (!j->min_epoch || req.route_epoch < j->min_epoch)
        j->min_epoch = req.route_epoch;
    if (k >= 0 && k < KEYS) {
        j->seen[k] = 1;
        size_t len = h->body_len - (req.routed ? 16u : 0u);
        free(j->body[k]);
        j->body[k] = malloc(len);
        assert_non_null(j->body[k]);
        memcpy(j->body[k], body, len);
        j->body_len[k] = len;
        j->route_hash[k] = req.route_hash;
    }
    else
        j->other++;
    pthread_mutex_unlock(&j->lock);
    kvi_response r = {.opcode = h->opcode, .version = 1};
    size_t start = out->len;
    kvi_frame_begin(out);
    kvi_response_encode(out, &r);
    kvi_frame_finish(out, start, h->opcode, KVI_FRAME_FLAG_RESPONSE, 0, h->request_id);
}

static void joiner_up(joiner *j)
{
    pthread_mutex_init(&j->lock, NULL);
    kvi_server_config cfg = {
        .listen_addr = "127.0.0.1:0", .io_threads = 1, .max_body = KVI_FRAME_DEFAULT_MAX_BODY,
        .idle_timeout_ms = 30000, .max_connections = 64, .handler = joiner_handle,
        .handler_ctx = j,
    };
    assert_int_equal(kvi_server_start(&j->server, &cfg), KV_OK);
    snprintf(j->addr, sizeof j->addr, "127.0.0.1:%d", kvi_server_port(j->server));
}

static int build_join(void *ctx, const kvi_topology *cur, kvi_topology *next, char *err,
                      size_t size)
{
    const joiner *j = ctx;
    return kvi_topology_begin(next, cur, KVI_TOPO_OP_JOIN, "n4", j->addr, NULL, err, size);
}

static int build_abort(void *ctx, const kvi_topology *cur, kvi_topology *next, char *err,
                       size_t size)
{
    (void)ctx;
    return kvi_topology_abort(next, cur, err, size);
}

/* Waits (bounded, 15 s) until node i describes an operation in progress
 * (want 1) or none (want 0), and routes with that record. */
static int wait_operation(inproc_nodes *c, int i, int want)
{
    for (int t = 0; t < 150; t++) {
        char *json = NULL;
        int found = -1;
        if (kv_cluster_describe(&json, c->node[i]) == KV_OK) {
            cJSON *root = cJSON_Parse(json);
            const cJSON *topo = cJSON_GetObjectItem(root, "topology");
            const cJSON *op = cJSON_GetObjectItem(topo, "operation");
            /* The node routes with that record already (its view). */
            int routed = cJSON_GetObjectItem(topo, "epoch") &&
                         cJSON_GetObjectItem(topo, "epoch")->valuedouble ==
                             cJSON_GetObjectItem(topo, "viewEpoch")->valuedouble;
            found = op && routed ? !cJSON_IsNull(op) : -1;
            cJSON_Delete(root);
        }
        kv_string_free(json);
        if (found == want)
            return 1;
        sleep_ms(100);
    }
    return 0;
}

/* Sends node addr a REPLICATE of body with the route (epoch, hash), as a
 * member would; the status of its answer, its message in kv_error_last. */
static int replicate_routed(const char *addr, const unsigned char *body, size_t len,
                            uint64_t epoch, uint64_t hash)
{
    kvi_client *cl;
    const char *eps[] = {addr};
    assert_int_equal(kvi_client_open(&cl, eps, 1, NULL, NULL), KV_OK);
    kvi_buf routed = {0};
    kvi_buf_raw(&routed, body, len);
    kvi_request route = {.routed = 1, .route_epoch = epoch, .route_hash = hash};
    kvi_request_encode_route(&routed, &route);
    assert_false(routed.failed);
    kvi_fanout fo;
    kvi_fanout_init(&fo);
    kvi_call *call = kvi_call_start_raw(cl, &fo, KVI_OP_REPLICATE, routed.data, routed.len,
                                        KVI_FRAME_FLAG_ROUTED, 1);
    struct timespec deadline = kvi_deadline_after(5000);
    (void)kvi_fanout_wait(&fo, 1, 1, &deadline); /* until it ended, either way */
    kvi_frame_header h;
    unsigned char *answer = NULL;
    kvi_response resp;
    assert_int_equal(kvi_call_finish(call, &h, &answer), KV_OK);
    int rc = kvi_call_decode(&resp, KVI_OP_REPLICATE, &h, answer);
    free(answer);
    kvi_fanout_destroy(&fo);
    kvi_buf_free(&routed);
    kvi_client_close(cl);
    return rc;
}

static void writes_reach_the_homes_of_both_rings_during_a_join(void **state)
{
    (void)state;
    inproc_nodes c = {0};
    assert_int_equal(inproc_up(&c), 0);
    joiner j = {0};
    joiner_up(&j);

    /* An outside proposer (an operator's tool) records the join of n4. */
    kvi_client_loop *loop;
    assert_int_equal(kvi_client_loop_new(&loop), KV_OK);
    kvi_topo_service_config tc = {.self_id = "admin", .loop = loop, .request_timeout_ms = 2000};
    kvi_topo_service *admin;
    assert_int_equal(kvi_topo_service_open(&admin, &tc), KV_OK);
    kvi_topo_service_fetch(admin, c.listen[0]);
    for (int t = 0; t < 100 && kvi_topo_service_epoch(admin) == 0; t++)
        sleep_ms(50);
    assert_true(kvi_topo_service_epoch(admin) >= 1);
    char err[256] = "";
    kvi_topology joining;
    kvi_topology_init(&joining);
    int rc = kvi_topo_service_change(admin, build_join, &j, &joining, err, sizeof err);
    if (rc != KV_OK)
        fprintf(stderr, "join: %s\n", err);
    assert_int_equal(rc, KV_OK);
    for (int i = 0; i < INPROC_NODES; i++)
        assert_true(wait_operation(&c, i, 1));

    /* Every write at QUORUM succeeds, and reaches n4 exactly for the keys
     * it will hold. */
    kvi_ring *future;
    assert_int_equal(kvi_topology_build_ring(&future, &joining, KVI_TOPO_FUTURE), KV_OK);
    int n4 = kvi_ring_find(future, "n4");
    kv *db = c.node[0];
    char key[32];
    unsigned expected = 0;
    char gains[KEYS];
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "k-%d", k);
        kv_write_options wo = KV_WRITE_OPTIONS_INIT;
        wo.consistency = KV_CONSISTENCY_QUORUM;
        rc = kv_put(NULL, db, key, strlen(key), "v", 1, &wo);
        if (rc != KV_OK)
            fprintf(stderr, "put %s: %s\n", key, kv_error_last());
        assert_int_equal(rc, KV_OK);
        const uint32_t *pref;
        size_t n = kvi_ring_preference(future, kvi_key_token(key, strlen(key)), &pref);
        gains[k] = 0;
        for (size_t i = 0; i < n; i++)
            gains[k] |= (int)pref[i] == n4;
        expected += (unsigned)gains[k];
    }
    /* The replies may trail the answers (W of 3 is enough): wait for
     * them, bounded. */
    unsigned got = 0, wrong = 0;
    for (int t = 0; t < 100; t++) {
        got = wrong = 0;
        pthread_mutex_lock(&j.lock);
        for (int k = 0; k < KEYS; k++) {
            got += (unsigned)(gains[k] && j.seen[k]);
            wrong += (unsigned)(!gains[k] && j.seen[k]);
        }
        pthread_mutex_unlock(&j.lock);
        if (got == expected)
            break;
        sleep_ms(50);
    }
    printf("during the join: %u of %u keys went to n4 as a future home (n4 gains %u), "
           "%u to it wrongly\n", got, KEYS, expected, wrong);
    assert_true(expected > KEYS / 2);
    assert_int_equal(got, expected);
    assert_int_equal(wrong, 0);
    /* Each write carried the route it was sent by: the join's epoch. */
    pthread_mutex_lock(&j.lock);
    assert_int_equal(j.unrouted, 0);
    assert_true(j.min_epoch == joining.epoch);
    pthread_mutex_unlock(&j.lock);

    /* A replica on the join's epoch refuses a write routed by an older
     * ring that sends the key elsewhere (here: a route hash unlike its
     * own), and takes one routed as its own ring would, or by a newer
     * ring (it is the one behind). */
    int g = 0;
    while (!gains[g])
        g++;
    const unsigned char *gbody = j.body[g];
    size_t glen = j.body_len[g];
    uint64_t ghash = j.route_hash[g], e = joining.epoch;
    assert_int_equal(replicate_routed(c.listen[1], gbody, glen, e - 1, ghash), KV_OK);
    rc = replicate_routed(c.listen[1], gbody, glen, e - 1, ghash ^ 1);
    printf("a write routed by the ring of epoch %llu, its replicas unlike n2's: %s\n",
           (unsigned long long)(e - 1), kv_error_last());
    assert_int_equal(rc, KVI_ENOT_REPLICA);
    assert_int_equal(replicate_routed(c.listen[1], gbody, glen, e + 1, ghash ^ 1), KV_OK);

    /* n4 gone: a write at ALL reaches all three current homes but not W=3
     * of the future ones: not a success. One at QUORUM still is. */
    kvi_server_stop(j.server);
    int k = 0;
    while (!gains[k])
        k++;
    snprintf(key, sizeof key, "k-%d", k);
    kv_write_options all = KV_WRITE_OPTIONS_INIT;
    all.consistency = KV_CONSISTENCY_ALL;
    rc = kv_put(NULL, db, key, strlen(key), "w", 1, &all);
    printf("at ALL with the joining member down: %s (%s)\n", kv_strerror(rc), kv_error_last());
    assert_int_equal(rc, KV_EUNKNOWN_OUTCOME);
    assert_non_null(strstr(kv_error_last(), "topology change in progress"));
    kv_write_options quorum = KV_WRITE_OPTIONS_INIT;
    quorum.consistency = KV_CONSISTENCY_QUORUM;
    rc = kv_put(NULL, db, key, strlen(key), "x", 1, &quorum);
    if (rc != KV_OK)
        fprintf(stderr, "at QUORUM: %s\n", kv_error_last());
    assert_int_equal(rc, KV_OK);

    /* Aborted: the change is over, writes at ALL succeed again. */
    rc = kvi_topo_service_change(admin, build_abort, NULL, NULL, err, sizeof err);
    if (rc != KV_OK)
        fprintf(stderr, "abort: %s\n", err);
    assert_int_equal(rc, KV_OK);
    for (int i = 0; i < INPROC_NODES; i++)
        assert_true(wait_operation(&c, i, 0));
    assert_int_equal(kv_put(NULL, db, key, strlen(key), "y", 1, &all), KV_OK);

    kvi_ring_free(future);
    kvi_topology_free(&joining);
    kvi_topo_service_close(admin);
    kvi_client_loop_release(loop);
    pthread_mutex_destroy(&j.lock);
    for (int i = 0; i < KEYS; i++)
        free(j.body[i]);
    inproc_down(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writes_reach_the_homes_of_both_rings_during_a_join),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
