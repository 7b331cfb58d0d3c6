/* Batches a node coordinates on its peers' loop (issue 12, "Batches on the
 * loop"), against a cluster of three real kvd processes on loopback:
 * puts, gets and deletes mixed at QUORUM and at SERIAL, each result
 * checked; a batch larger than the number of operations a batch runs at
 * once; a batch at ALL with a paused replica, which ends with a failure
 * per operation rather than a wait per operation; and many batches held up
 * by a paused replica, which must not keep a batch at ONE from being
 * answered (a batch used to hold one of the node's 16 coordinating threads
 * until it ended).
 *
 * A client opened with manual_loop has no view of the cluster, so its
 * batches go to the node whole (the BATCH request). The path of kvd comes
 * from the KVD environment variable (set by ctest). No timing assertions:
 * every wait is bounded, and generous next to what it waits for. */
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <setjmp.h>
#include <cmocka.h>

#include "helpers.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"
#include "format/frame.h"
#include "format/message.h"
#include <kv/kv.h>

#define NODES 3

typedef struct node {
    pid_t pid;
    char *dir;
    char id[16];
    char listen[64];
    char http[64];
    char log_path[600];
} node;

typedef struct cluster {
    node nodes[NODES];
    char peers[512];
    const char *internode_timeout;
} cluster;

static void spawn(cluster *c, int i)
{
    node *d = &c->nodes[i];
    const char *argv[] = {kvd_path(), "--data", d->dir, "--listen", d->listen,
                          "--http", d->http, "--node-id", d->id, "--peers", c->peers,
                          "--internode-timeout", c->internode_timeout, NULL};
    d->pid = kvd_spawn(argv, d->log_path);
    assert_true(d->pid > 0);
}

static void fresh_node(node *d, int i)
{
    if (d->dir)
        test_rmtree(d->dir);
    d->dir = test_tempdir();
    snprintf(d->id, sizeof d->id, "n%d", i + 1);
    snprintf(d->listen, sizeof d->listen, "127.0.0.1:%d", free_port());
    snprintf(d->http, sizeof d->http, "127.0.0.1:%d", free_port());
    snprintf(d->log_path, sizeof d->log_path, "%s.log", d->dir);
}

static void kill_all(cluster *c)
{
    for (int i = 0; i < NODES; i++) {
        if (c->nodes[i].pid > 0) {
            kill(c->nodes[i].pid, SIGCONT);
            kvd_stop(c->nodes[i].pid, SIGKILL);
        }
        c->nodes[i].pid = 0;
    }
}

/* Whether every node still runs (a port picked free may have been taken
 * by another test before kvd listened on it: that kvd exits at once). */
static int all_running(cluster *c)
{
    for (int i = 0; i < NODES; i++)
        if (c->nodes[i].pid > 0 && waitpid(c->nodes[i].pid, NULL, WNOHANG) == c->nodes[i].pid) {
            c->nodes[i].pid = 0;
            return 0;
        }
    return 1;
}

/* Three nodes whose membership is complete; *state is set first, so that
 * teardown stops what started even when the cluster never completes.
 * Tried again on new ports at most 5 times. */
static void make_cluster(void **state, const char *internode_timeout)
{
    cluster *c = calloc(1, sizeof *c);
    *state = c;
    c->internode_timeout = internode_timeout;
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 3000;
    co.connect_timeout_ms = 500;
    for (int attempt = 0; attempt < 5; attempt++) {
        c->peers[0] = 0;
        for (int i = 0; i < NODES; i++) {
            fresh_node(&c->nodes[i], i);
            if (i)
                strcat(c->peers, ",");
            strcat(c->peers, c->nodes[i].listen);
        }
        for (int i = 0; i < NODES; i++)
            spawn(c, i);
        sleep_ms(300);
        int complete = all_running(c);
        for (int i = 0; i < NODES && complete; i++)
            complete = kvd_wait_complete(c->nodes[i].listen, &co) && all_running(c);
        if (complete)
            return;
        kill_all(c);
    }
    fail_msg("the cluster never completed its membership (logs: %s...)", c->nodes[0].log_path);
}

static int setup(void **state)
{
    make_cluster(state, "2000");
    return 0;
}

/* A long internode timeout: requests to a paused replica wait far longer
 * than the test waits for anything else. */
static int setup_long_timeout(void **state)
{
    make_cluster(state, "30000");
    return 0;
}

static int teardown(void **state)
{
    cluster *c = *state;
    kill_all(c);
    for (int i = 0; i < NODES; i++) {
        if (!getenv("KV_TEST_KEEP_LOGS"))
            unlink(c->nodes[i].log_path);
        test_rmtree(c->nodes[i].dir);
    }
    free(c);
    return 0;
}

/* A client whose batches node i coordinates: a manual_loop client has no
 * view of its own. */
static kv *node_client(const cluster *c, int i, uint32_t timeout_ms)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = timeout_ms;
    co.connect_timeout_ms = 1000;
    co.manual_loop = 1;
    const char *eps[] = {c->nodes[i].listen};
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, 1, &co), KV_OK);
    return db;
}

/* A client that learns the cluster and coordinates batches itself. */
static kv *view_client(const cluster *c)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 10000;
    co.connect_timeout_ms = 1000;
    const char *eps[NODES];
    for (int i = 0; i < NODES; i++)
        eps[i] = c->nodes[i].listen;
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, NODES, &co), KV_OK);
    return db;
}

static void add_put(kv_batch *b, const char *key, const char *value)
{
    assert_int_equal(kv_batch_put(b, key, strlen(key), value, strlen(value), 0), KV_OK);
}

static void add_get(kv_batch *b, const char *key)
{
    assert_int_equal(kv_batch_get(b, key, strlen(key)), KV_OK);
}

static void add_delete(kv_batch *b, const char *key)
{
    assert_int_equal(kv_batch_delete(b, key, strlen(key)), KV_OK);
}

static int run(kv *db, kv_batch *b, kv_consistency level)
{
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    wo.consistency = level;
    ro.consistency = level;
    return kv_batch_execute(db, b, &wo, &ro);
}

/* Operation i's status; with KV_OK, its version in *version (may be NULL)
 * and, for a get, its value must be `want` (NULL: not checked). */
static int result_is(const kv_batch *b, size_t i, const char *want, uint64_t *version)
{
    const kv_value *v = NULL;
    uint64_t ver = 0;
    int rc = kv_batch_result(&v, &ver, b, i);
    if (version)
        *version = ver;
    if (rc == KV_OK && want) {
        size_t len = 0;
        const void *data = v ? kv_value_data(v, &len) : NULL;
        if (!data || len != strlen(want) || memcmp(data, want, len) != 0)
            return -1000;
    }
    return rc;
}

/* Reads key at level through db: KV_OK only when the value is `want`. */
static int get_is(kv *db, const char *key, const char *want, kv_consistency level)
{
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = level;
    kv_value *v = NULL;
    int rc = kv_get(&v, db, key, strlen(key), &ro);
    if (rc == KV_OK) {
        size_t len = 0;
        const void *data = kv_value_data(v, &len);
        if (len != strlen(want) || memcmp(data, want, len) != 0)
            rc = -1000;
    }
    kv_value_free(v);
    return rc;
}

/* ------------------------------------------------------------ the tests */

/* Puts, gets and deletes in one batch, at QUORUM and then at SERIAL, each
 * result checked; operations on one key see the ones before them. */
static void mixed_batches_at_quorum_and_serial(void **state)
{
    cluster *c = *state;
    kv *db = node_client(c, 0, 15000);
    kv *check = view_client(c);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = KV_CONSISTENCY_ALL;
    assert_int_equal(kv_put(NULL, check, "q-old", 5, "old", 3, &wo), KV_OK);

    kv_batch *b = NULL;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    add_put(b, "q-a", "a1");      /* 0 */
    add_put(b, "q-b", "b1");      /* 1 */
    add_get(b, "q-a");            /* 2: sees 0 */
    add_delete(b, "q-old");       /* 3 */
    add_get(b, "q-old");          /* 4: sees 3 */
    add_get(b, "q-never");        /* 5 */
    add_put(b, "q-a", "a2");      /* 6 */
    add_get(b, "q-a");            /* 7: sees 6 */
    assert_int_equal(run(db, b, KV_CONSISTENCY_QUORUM), KV_OK);
    uint64_t v0 = 0, v2 = 0, v6 = 0, v7 = 0, v1 = 0;
    assert_int_equal(result_is(b, 0, NULL, &v0), KV_OK);
    assert_int_equal(result_is(b, 1, NULL, &v1), KV_OK);
    assert_int_equal(result_is(b, 2, "a1", &v2), KV_OK);
    assert_int_equal(result_is(b, 3, NULL, NULL), KV_OK);
    assert_int_equal(result_is(b, 4, NULL, NULL), KV_ENOTFOUND);
    assert_int_equal(result_is(b, 5, NULL, NULL), KV_ENOTFOUND);
    assert_int_equal(result_is(b, 6, NULL, &v6), KV_OK);
    assert_int_equal(result_is(b, 7, "a2", &v7), KV_OK);
    assert_true(v0 > 0 && v1 > 0);
    assert_int_equal(v2, v0);
    assert_true(v6 > v0);
    assert_int_equal(v7, v6);
    /* What the batch wrote is what the cluster holds. */
    assert_int_equal(get_is(check, "q-a", "a2", KV_CONSISTENCY_QUORUM), KV_OK);
    assert_int_equal(get_is(check, "q-b", "b1", KV_CONSISTENCY_QUORUM), KV_OK);
    assert_int_equal(get_is(check, "q-old", "", KV_CONSISTENCY_QUORUM), KV_ENOTFOUND);

    /* At SERIAL: every operation is a Paxos round. */
    kv_batch_clear(b);
    add_put(b, "s-a", "a1");      /* 0 */
    add_get(b, "s-a");            /* 1 */
    add_put(b, "s-a", "a2");      /* 2 */
    add_put(b, "s-b", "b1");      /* 3 */
    add_delete(b, "s-b");         /* 4 */
    add_get(b, "s-b");            /* 5 */
    add_get(b, "s-a");            /* 6 */
    add_get(b, "q-b");            /* 7: written at QUORUM above */
    assert_int_equal(run(db, b, KV_CONSISTENCY_SERIAL), KV_OK);
    uint64_t s0 = 0, s1 = 0, s2 = 0, s6 = 0;
    assert_int_equal(result_is(b, 0, NULL, &s0), KV_OK);
    assert_int_equal(result_is(b, 1, "a1", &s1), KV_OK);
    assert_int_equal(result_is(b, 2, NULL, &s2), KV_OK);
    assert_int_equal(result_is(b, 3, NULL, NULL), KV_OK);
    assert_int_equal(result_is(b, 4, NULL, NULL), KV_OK);
    assert_int_equal(result_is(b, 5, NULL, NULL), KV_ENOTFOUND);
    assert_int_equal(result_is(b, 6, "a2", &s6), KV_OK);
    assert_int_equal(result_is(b, 7, "b1", NULL), KV_OK);
    assert_true(s0 > 0 && s1 == s0 && s2 > s0 && s6 == s2);

    /* At QUORUM again, on keys that have seen SERIAL writes: those writes
     * go through Paxos too, and a SERIAL read sees them. */
    kv_batch_clear(b);
    add_put(b, "s-a", "a3");
    add_get(b, "s-a");
    add_put(b, "q-c", "c1");
    assert_int_equal(run(db, b, KV_CONSISTENCY_QUORUM), KV_OK);
    uint64_t q0 = 0;
    assert_int_equal(result_is(b, 0, NULL, &q0), KV_OK);
    assert_true(q0 > s2);
    assert_int_equal(result_is(b, 1, "a3", NULL), KV_OK);
    assert_int_equal(result_is(b, 2, NULL, NULL), KV_OK);
    assert_int_equal(get_is(db, "s-a", "a3", KV_CONSISTENCY_SERIAL), KV_OK);
    kv_batch_free(b);
    kv_close(check);
    kv_close(db);
}

#define BIG 200

/* 200 operations (more than a batch runs at once): every result checked,
 * through a node and through a client that coordinates itself. */
static void a_batch_larger_than_its_window(void **state)
{
    cluster *c = *state;
    kv *via_node = node_client(c, 1, 30000);
    kv *via_client = view_client(c);
    kv *dbs[2] = {via_node, via_client};
    char key[32], value[32];
    for (int round = 0; round < 2; round++) {
        kv_batch *b = NULL;
        assert_int_equal(kv_batch_new(&b), KV_OK);
        /* Puts of 100 keys, then a get of each. */
        for (int i = 0; i < BIG / 2; i++) {
            snprintf(key, sizeof key, "big-%d-%d", round, i);
            snprintf(value, sizeof value, "v-%d-%d", round, i);
            add_put(b, key, value);
        }
        for (int i = 0; i < BIG / 2; i++) {
            snprintf(key, sizeof key, "big-%d-%d", round, i);
            add_get(b, key);
        }
        assert_int_equal(run(dbs[round], b, KV_CONSISTENCY_QUORUM), KV_OK);
        for (int i = 0; i < BIG / 2; i++) {
            snprintf(value, sizeof value, "v-%d-%d", round, i);
            uint64_t put_v = 0, got_v = 0;
            assert_int_equal(result_is(b, (size_t)i, NULL, &put_v), KV_OK);
            assert_int_equal(result_is(b, (size_t)(BIG / 2 + i), value, &got_v), KV_OK);
            assert_true(put_v > 0);
            assert_int_equal(got_v, put_v);
        }
        /* Then: the even keys deleted and the odd ones read, and all of
         * them read again after. */
        kv_batch_clear(b);
        for (int i = 0; i < BIG / 2; i++) {
            snprintf(key, sizeof key, "big-%d-%d", round, i);
            if (i % 2)
                add_get(b, key);
            else
                add_delete(b, key);
        }
        for (int i = 0; i < BIG / 2; i++) {
            snprintf(key, sizeof key, "big-%d-%d", round, i);
            add_get(b, key);
        }
        assert_int_equal(run(dbs[round], b, KV_CONSISTENCY_QUORUM), KV_OK);
        for (int i = 0; i < BIG / 2; i++) {
            snprintf(value, sizeof value, "v-%d-%d", round, i);
            assert_int_equal(result_is(b, (size_t)i, i % 2 ? value : NULL, NULL), KV_OK);
            assert_int_equal(result_is(b, (size_t)(BIG / 2 + i), value, NULL),
                             i % 2 ? KV_OK : KV_ENOTFOUND);
        }
        kv_batch_free(b);
    }
    kv_close(via_client);
    kv_close(via_node);
}

/* A batch at ALL whose replicas include a paused node: each operation
 * fails once the internode timeout (2 s) passes, all of them together,
 * and the batch is answered. Run one after the other, its 20 operations
 * would take 40 s, four times what the client waits. */
static void a_batch_at_all_with_a_paused_replica(void **state)
{
    cluster *c = *state;
    kv *db = node_client(c, 0, 10000);
    char key[32];
    kv_batch *b = NULL;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "all-%d", i);
        add_put(b, key, "before");
    }
    assert_int_equal(run(db, b, KV_CONSISTENCY_ALL), KV_OK);
    for (size_t i = 0; i < 20; i++)
        assert_int_equal(result_is(b, i, NULL, NULL), KV_OK);

    assert_true(kvd_pause(c->nodes[2].pid));
    kv_batch_clear(b);
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "all-%d", i);
        if (i < 14)
            add_get(b, key);
        else if (i < 17)
            add_put(b, key, "during");
        else
            add_delete(b, key);
    }
    int rc = run(db, b, KV_CONSISTENCY_ALL);
    kill(c->nodes[2].pid, SIGCONT);
    assert_int_equal(rc, KV_OK);
    for (size_t i = 0; i < 20; i++) {
        int st = result_is(b, i, NULL, NULL);
        /* A read: fewer than ALL answered. A write: W not reached. */
        if (st != KV_ETIMEDOUT && st != KV_EUNAVAILABLE && st != KV_EUNKNOWN_OUTCOME)
            fail_msg("operation %zu ended %d (%s)", i, st, kv_strerror(st));
    }
    kv_batch_free(b);
    kv_close(db);
}

/* ------------------------------------- many batches waiting on a replica */

#define WAITING_BATCHES 40
#define ONE_BATCH_ID 1000u
#define ONE_GET_ID 1001u

/* Sends a BATCH request frame with the given id on fd: gets of `gets` keys
 * named prefix-i and one put, at level. */
static void send_batch(int fd, uint64_t id, kv_consistency level, const char *prefix, int gets)
{
    kvi_buf f = {0};
    kvi_frame_begin(&f);
    kvi_request req = {.opcode = KVI_OP_BATCH, .consistency = (uint8_t)level,
                       .batch_count = (uint32_t)gets + 1};
    kvi_request_encode(&f, &req);
    char key[48];
    for (int i = 0; i < gets; i++) {
        snprintf(key, sizeof key, "%s-%d", prefix, i);
        kvi_batch_item it = {.kind = KV_BATCH_GET, .key = {(const unsigned char *)key,
                                                          strlen(key)}};
        kvi_batch_item_encode(&f, &it);
    }
    snprintf(key, sizeof key, "%s-put", prefix);
    kvi_batch_item put = {.kind = KV_BATCH_PUT,
                          .key = {(const unsigned char *)key, strlen(key)},
                          .value = {(const unsigned char *)"x", 1}};
    kvi_batch_item_encode(&f, &put);
    assert_int_equal(kvi_frame_finish(&f, 0, KVI_OP_BATCH, 0, 0, id), 0);
    assert_int_equal(send(fd, f.data, f.len, MSG_NOSIGNAL), (ssize_t)f.len);
    kvi_buf_free(&f);
}

static void send_get(int fd, uint64_t id, const char *key)
{
    kvi_buf f = {0};
    kvi_frame_begin(&f);
    kvi_request req = {.opcode = KVI_OP_GET, .consistency = KV_CONSISTENCY_ONE,
                       .key = {(const unsigned char *)key, strlen(key)}};
    kvi_request_encode(&f, &req);
    assert_int_equal(kvi_frame_finish(&f, 0, KVI_OP_GET, 0, 0, id), 0);
    assert_int_equal(send(fd, f.data, f.len, MSG_NOSIGNAL), (ssize_t)f.len);
    kvi_buf_free(&f);
}

/* Reads the next answer frame on fd (whose reads time out): 0, or -1 when
 * none came. *body is malloc'd. */
static int read_answer(int fd, kvi_frame_header *h, unsigned char **body)
{
    unsigned char header[KVI_FRAME_HEADER];
    *body = NULL;
    if (recv_exact(fd, header, sizeof header) != 0 ||
        kvi_frame_parse_header(h, header, sizeof header, 1u << 24) != KVI_FRAME_OK)
        return -1;
    *body = malloc(h->body_len + 1);
    if (recv_exact(fd, *body, h->body_len) != 0 ||
        kvi_frame_verify(h, header, *body) != KVI_FRAME_OK) {
        free(*body);
        *body = NULL;
        return -1;
    }
    return 0;
}

/* The statuses of a BATCH answer's outcomes; the count, or -1. */
static int batch_statuses(const kvi_frame_header *h, const unsigned char *body, int *st,
                          int max)
{
    kvi_response resp;
    if (h->opcode != KVI_OP_BATCH || h->status != KV_OK ||
        kvi_response_decode_flags(&resp, KVI_OP_BATCH, h->status, h->flags, body,
                                  h->body_len) != 0 ||
        resp.batch_count > (uint32_t)max)
        return -1;
    for (uint32_t i = 0; i < resp.batch_count; i++) {
        kvi_batch_outcome o;
        kvi_response_next_outcome(&resp, &o);
        st[i] = o.status;
    }
    return (int)resp.batch_count;
}

/* 40 batches at ALL wait on a paused replica (whose requests time out
 * after 30 s), more than the node's 16 coordinating threads. A batch at
 * ONE and a GET at ONE sent after them on the same connection are still
 * answered, long before the replica resumes: a batch waiting on replicas
 * holds no thread. */
static void waiting_batches_hold_no_thread(void **state)
{
    cluster *c = *state;
    kv *db = node_client(c, 0, 10000);
    kv_batch *b = NULL;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    add_put(b, "w-0", "zero");
    add_put(b, "w-1", "one");
    add_put(b, "one-0", "first");
    assert_int_equal(run(db, b, KV_CONSISTENCY_ALL), KV_OK);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(result_is(b, i, NULL, NULL), KV_OK);
    kv_batch_free(b);
    kv_close(db);

    /* Reads give up after 20 s: well before the paused replica's requests
     * time out, and far longer than a batch at ONE takes. */
    int fd = loopback_connect(c->nodes[0].listen, 20);
    assert_true(fd >= 0);
    assert_true(kvd_pause(c->nodes[2].pid));
    for (unsigned i = 0; i < WAITING_BATCHES; i++)
        send_batch(fd, i + 1, KV_CONSISTENCY_ALL, "w", 2);
    send_batch(fd, ONE_BATCH_ID, KV_CONSISTENCY_ONE, "one", 1);
    send_get(fd, ONE_GET_ID, "one-0");

    int one_batch = 0, one_get = 0, waiting_answered = 0, st[8];
    for (int frames = 0; frames < WAITING_BATCHES + 2 && !(one_batch && one_get); frames++) {
        kvi_frame_header h;
        unsigned char *body = NULL;
        if (read_answer(fd, &h, &body) != 0)
            break;
        if (h.request_id == ONE_BATCH_ID) {
            assert_int_equal(batch_statuses(&h, body, st, 8), 2);
            assert_int_equal(st[0], KV_OK); /* one-0 */
            assert_int_equal(st[1], KV_OK); /* the put of one-put */
            one_batch = 1;
        } else if (h.request_id == ONE_GET_ID) {
            assert_int_equal(h.status, KV_OK);
            one_get = 1;
        } else {
            waiting_answered++;
        }
        free(body);
    }
    kill(c->nodes[2].pid, SIGCONT);
    assert_true(one_get);
    assert_true(one_batch);
    /* The paused replica's answers now come: every waiting batch is
     * answered, with a result per operation. */
    for (int frames = 0; waiting_answered < WAITING_BATCHES && frames < WAITING_BATCHES;
         frames++) {
        kvi_frame_header h;
        unsigned char *body = NULL;
        assert_int_equal(read_answer(fd, &h, &body), 0);
        assert_true(h.request_id >= 1 && h.request_id <= WAITING_BATCHES);
        assert_int_equal(batch_statuses(&h, body, st, 8), 3);
        free(body);
        waiting_answered++;
    }
    assert_int_equal(waiting_answered, WAITING_BATCHES);
    close(fd);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(mixed_batches_at_quorum_and_serial, setup, teardown),
        cmocka_unit_test_setup_teardown(a_batch_larger_than_its_window, setup, teardown),
        cmocka_unit_test_setup_teardown(a_batch_at_all_with_a_paused_replica, setup, teardown),
        cmocka_unit_test_setup_teardown(waiting_batches_hold_no_thread, setup_long_timeout,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
