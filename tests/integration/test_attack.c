/* Servers that survive any client (issue 10), against real kvd processes:
 * a one-node cluster (a seed of itself) and a three-node cluster. Threads
 * pipeline requests on many connections and reset them (SO_LINGER 0) at
 * every point of a frame: after half a header, in the middle of a body,
 * right after sending, and while the answers are still coming. Under ASan
 * (the suite's second run) a use after free or a double close in a kvd
 * aborts it; either way the test asserts that every kvd is still running
 * and still answers correctly afterwards. Every loop is bounded in count.
 * The path of kvd comes from $KVD. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"
#include "format/frame.h"
#include "format/message.h"
#include <kv/kv.h>

#define MAX_NODES 3
#define THREADS 6
#define CONNECTIONS_PER_THREAD 120
#define FRAMES_PER_CONNECTION 24

typedef struct node {
    pid_t pid;
    char *dir;
    char id[16];
    char listen[64];
    int port;
    char log_path[600];
} node;

typedef struct cluster {
    node nodes[MAX_NODES];
    int n;
} cluster;

static void wait_complete(const cluster *c, int i)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 2000;
    if (!kvd_wait_complete(c->nodes[i].listen, &co))
        fail_msg("node %d never completed its membership (log: %s)", i + 1,
                 c->nodes[i].log_path);
}

/* n = 1: a node that is its own seed (a cluster of one: the clustered
 * request path, with the worker pools). */
static int start_cluster(void **state, int n)
{
    cluster *c = calloc(1, sizeof *c);
    *state = c;
    c->n = n;
    char peers[256] = "";
    for (int i = 0; i < n; i++) {
        node *d = &c->nodes[i];
        d->dir = test_tempdir();
        snprintf(d->id, sizeof d->id, "a%d", i + 1);
        d->port = free_port();
        snprintf(d->listen, sizeof d->listen, "127.0.0.1:%d", d->port);
        snprintf(d->log_path, sizeof d->log_path, "%s.log", d->dir);
        if (i)
            strcat(peers, ",");
        strcat(peers, d->listen);
    }
    for (int i = 0; i < n; i++) {
        node *d = &c->nodes[i];
        const char *argv[] = {kvd_path(), "--data", d->dir, "--listen", d->listen,
                              "--node-id", d->id, n == 1 ? "--seeds" : "--peers",
                              n == 1 ? d->listen : peers, "--sync", "none", NULL};
        d->pid = kvd_spawn(argv, d->log_path);
        assert_true(d->pid > 0);
    }
    for (int i = 0; i < n; i++)
        wait_complete(c, i);
    return 0;
}

static int setup_one(void **state)
{
    return start_cluster(state, 1);
}

static int setup_three(void **state)
{
    return start_cluster(state, 3);
}

static int teardown(void **state)
{
    cluster *c = *state;
    if (!c)
        return 0;
    for (int i = 0; i < c->n; i++) {
        if (c->nodes[i].pid > 0)
            kvd_stop(c->nodes[i].pid, SIGKILL);
        if (!getenv("KV_TEST_KEEP_LOGS"))
            unlink(c->nodes[i].log_path);
        test_rmtree(c->nodes[i].dir);
    }
    free(c);
    return 0;
}

/* ------------------------------------------------------------- the attack */

typedef struct attacker {
    const cluster *c;
    unsigned seed;
    unsigned long frames_sent;
    unsigned long answers_read;
} attacker;

static unsigned next_random(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return *s >> 8;
}

/* A pipeline of GETs and PUTs on keys of this thread, as one buffer. */
static void build_pipeline(kvi_buf *out, unsigned *seed, int frames)
{
    for (int i = 0; i < frames; i++) {
        char key[32];
        snprintf(key, sizeof key, "attack-%u", next_random(seed) % 64);
        int put = next_random(seed) % 3 == 0;
        kvi_request req = {.opcode = put ? KVI_OP_PUT : KVI_OP_GET,
                           .consistency = KV_CONSISTENCY_ONE,
                           .key = {(const unsigned char *)key, strlen(key)},
                           .value = {(const unsigned char *)"payload-payload", 15}};
        size_t start = out->len;
        kvi_frame_begin(out);
        kvi_request_encode(out, &req);
        kvi_frame_finish(out, start, req.opcode, 0, 0, (uint64_t)i + 1);
    }
}

static void reset_close(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

static void *attack(void *arg)
{
    attacker *a = arg;
    kvi_buf pipeline = {0};
    unsigned char sink[4096];
    for (int k = 0; k < CONNECTIONS_PER_THREAD; k++) {
        const node *target = &a->c->nodes[next_random(&a->seed) % (unsigned)a->c->n];
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)target->port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
            close(fd);
            continue; /* counted by the final check: the node must still answer */
        }
        struct timeval tv = {1, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        kvi_buf_reset(&pipeline);
        build_pipeline(&pipeline, &a->seed, FRAMES_PER_CONNECTION);
        size_t cut;
        switch (k % 5) {
        case 0: cut = KVI_FRAME_HEADER / 2; break;               /* half a header */
        case 1: cut = KVI_FRAME_HEADER + 7; break;               /* inside a body */
        case 2: cut = pipeline.len / 2; break;                   /* mid-pipeline */
        default: cut = pipeline.len; break;                      /* everything */
        }
        ssize_t sent = send(fd, pipeline.data, cut, MSG_NOSIGNAL);
        if (sent > 0)
            a->frames_sent += (unsigned long)sent / 40u;
        if (k % 5 == 4) {
            /* Read a little of the answers, then reset while the rest
             * are still being written. */
            ssize_t n = recv(fd, sink, 100, 0);
            if (n > 0)
                a->answers_read++;
        } else if (k % 5 == 3) {
            /* Reset at once, answers or not. */
        } else {
            sleep_ms(1); /* let the node see the partial frame first */
        }
        reset_close(fd);
    }
    kvi_buf_free(&pipeline);
    return NULL;
}

static void assert_serving(const cluster *c)
{
    for (int i = 0; i < c->n; i++) {
        /* Alive: not aborted by a sanitizer, not crashed. */
        int status = 0;
        pid_t w = waitpid(c->nodes[i].pid, &status, WNOHANG);
        if (w == c->nodes[i].pid)
            fail_msg("%s exited during the attack (status %d; log: %s)", c->nodes[i].id,
                     status, c->nodes[i].log_path);
        const char *eps[] = {c->nodes[i].listen};
        kv_client_options co = KV_CLIENT_OPTIONS_INIT;
        co.request_timeout_ms = 5000;
        kv *db = NULL;
        assert_int_equal(kv_client_open(&db, eps, 1, &co), KV_OK);
        char key[32], value[32];
        snprintf(key, sizeof key, "after-%d", i);
        snprintf(value, sizeof value, "value-%d", i);
        kv_write_options wo = KV_WRITE_OPTIONS_INIT;
        wo.consistency = KV_CONSISTENCY_ALL;
        assert_int_equal(kv_put(NULL, db, key, strlen(key), value, strlen(value), &wo), KV_OK);
        kv_read_options ro = KV_READ_OPTIONS_INIT;
        ro.consistency = KV_CONSISTENCY_ALL;
        kv_value *v = NULL;
        assert_int_equal(kv_get(&v, db, key, strlen(key), &ro), KV_OK);
        size_t len;
        const void *data = kv_value_data(v, &len);
        assert_int_equal(len, strlen(value));
        assert_memory_equal(data, value, len);
        kv_value_free(v);
        kv_close(db);
    }
}

static void pipelines_reset_at_every_point(void **state)
{
    cluster *c = *state;
    pthread_t threads[THREADS];
    attacker attackers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        attackers[i] = (attacker){.c = c, .seed = 7919u * (unsigned)(i + 1)};
        assert_int_equal(pthread_create(&threads[i], NULL, attack, &attackers[i]), 0);
    }
    unsigned long answers = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        answers += attackers[i].answers_read;
    }
    /* The attack reached the nodes' request path, not just their accept. */
    assert_true(answers > 0);
    assert_serving(c);
}

int main(void)
{
    const struct CMUnitTest one[] = {
        cmocka_unit_test(pipelines_reset_at_every_point),
    };
    const struct CMUnitTest three[] = {
        cmocka_unit_test(pipelines_reset_at_every_point),
    };
    int failed = cmocka_run_group_tests_name("integration.attack (one node)", one, setup_one,
                                             teardown);
    failed += cmocka_run_group_tests_name("integration.attack (three nodes)", three,
                                          setup_three, teardown);
    return failed;
}
