/* The HTTP API of a clustered node waits on no replica with a thread
 * (issue 12): its get, put, delete, CAS and batch run as the coordinator's
 * state machines, and the connection is suspended meanwhile. Real kvd
 * processes on loopback, with two HTTP threads each and a long internode
 * timeout: with one member stopped (SIGSTOP), more requests (or batches)
 * at ALL, or status requests (GET /v1/status), than there are HTTP
 * threads wait on it, and a request at ONE, or
 * GET /v1/health, is still answered; clients that hang up while their
 * request waits leave a server that goes on serving, and stops cleanly
 * (run under ASan too). Batches' answers, good and bad, are those the
 * blocking path gave, byte for byte.
 *
 * The path of kvd comes from the KVD environment variable (set by ctest).
 * No timing assertions: every wait is bounded, far below the internode
 * timeout that the waiting requests are held by. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>
#include <cJSON.h>

#include "helpers.h"
#include "integration/http_client.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"
#include <kv/kv.h>

#define NODES 3
/* More than the HTTP threads (2), so that blocked threads would starve the
 * request at ONE. */
#define WAITERS 6
/* A request at ALL waits on the stopped member until this internode
 * timeout; every bound of the test is far below it. */
#define INTERNODE_TIMEOUT "60000"
/* How long the request at ONE may take: far below the internode timeout,
 * far above what it takes (milliseconds). */
#define ONE_BOUND_MS 20000L
/* How long a waiting request may take once the member is back: past the
 * internode timeout, so that a request that was never resumed fails the
 * test rather than hanging it. */
#define WAITER_BOUND_MS 150000L

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
    char peers[256];
} cluster;

static void spawn(cluster *c, int i)
{
    node *d = &c->nodes[i];
    const char *argv[] = {kvd_path(), "--data", d->dir, "--listen", d->listen,
                          "--http", d->http, "--node-id", d->id, "--peers", c->peers,
                          "--internode-timeout", INTERNODE_TIMEOUT, "--http-threads", "2",
                          NULL};
    d->pid = kvd_spawn(argv, d->log_path);
    assert_true(d->pid > 0);
}

static void fresh_nodes(cluster *c)
{
    c->peers[0] = 0;
    for (int i = 0; i < NODES; i++) {
        node *d = &c->nodes[i];
        if (d->dir)
            test_rmtree(d->dir);
        d->dir = test_tempdir();
        snprintf(d->id, sizeof d->id, "n%d", i + 1);
        snprintf(d->listen, sizeof d->listen, "127.0.0.1:%d", free_port());
        snprintf(d->http, sizeof d->http, "127.0.0.1:%d", free_port());
        snprintf(d->log_path, sizeof d->log_path, "%s.log", d->dir);
        if (i)
            strcat(c->peers, ",");
        strcat(c->peers, d->listen);
    }
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

/* Whether every node describes a complete cluster (bounded: about 30 s
 * each). */
static int all_complete(cluster *c)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 3000;
    co.connect_timeout_ms = 500;
    for (int i = 0; i < NODES; i++)
        if (!kvd_wait_complete(c->nodes[i].listen, &co))
            return 0;
    return 1;
}

/* A port picked free may be taken by another test before kvd listens on
 * it: a cluster that does not complete is started again on new ports (at
 * most 3 times). *state is set first, so that teardown cleans up. */
static int setup(void **state)
{
    cluster *c = calloc(1, sizeof *c);
    *state = c;
    for (int attempt = 0; attempt < 3; attempt++) {
        fresh_nodes(c);
        for (int i = 0; i < NODES; i++)
            spawn(c, i);
        if (all_complete(c))
            return 0;
        kill_all(c);
    }
    fail_msg("the cluster never completed (logs: %s ...)", c->nodes[0].log_path);
    return -1;
}

/* Stops each node with SIGTERM: a clean stop exits 0 within 15 s (under
 * ASan, a leak or a use after free would make it fail). */
static int teardown(void **state)
{
    cluster *c = *state;
    int clean = 1;
    /* All go on first: a node stops only once its requests in flight have
     * ended, and those may wait on a member that a failed test left
     * stopped. */
    for (int i = 0; i < NODES; i++)
        if (c->nodes[i].pid > 0)
            kill(c->nodes[i].pid, SIGCONT);
    for (int i = 0; i < NODES; i++) {
        node *d = &c->nodes[i];
        if (d->pid > 0) {
            kill(d->pid, SIGTERM);
            int status = -1, exited = 0;
            for (int t = 0; t < 1500 && !exited; t++) {
                exited = waitpid(d->pid, &status, WNOHANG) == d->pid;
                if (!exited)
                    sleep_ms(10);
            }
            if (!exited) {
                kill(d->pid, SIGKILL);
                waitpid(d->pid, NULL, 0);
            }
            if (!exited || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "%s did not stop cleanly (status %d; log: %s)\n", d->id,
                        status, d->log_path);
                clean = 0;
            }
        }
        d->pid = 0;
        if (clean && !getenv("KV_TEST_KEEP_LOGS"))
            unlink(d->log_path);
        test_rmtree(d->dir);
    }
    free(c);
    return clean ? 0 : -1;
}

/* ------------------------------------------------------------- waiters */

typedef struct waiter {
    const char *http;
    const char *path;
    const char *json; /* a POST's body; NULL: a GET */
    pthread_t thread;
    long status;
    body out;
    atomic_int done;
} waiter;

static void *wait_request(void *arg)
{
    waiter *w = arg;
    w->status = http_request(w->http, w->json ? "POST" : "GET", w->path, w->json, &w->out,
                             WAITER_BOUND_MS);
    atomic_store(&w->done, 1);
    return NULL;
}

static int count_done(waiter *ws, int n)
{
    int done = 0;
    for (int i = 0; i < n; i++)
        done += atomic_load(&ws[i].done);
    return done;
}

/* The member is stopped, so a read at ALL cannot end; sent from a
 * connection of its own, as one client each. */
static void start_waiters(waiter *ws, int n, const char *http, const char *path)
{
    for (int i = 0; i < n; i++) {
        ws[i] = (waiter){.http = http, .path = path};
        assert_int_equal(pthread_create(&ws[i].thread, NULL, wait_request, &ws[i]), 0);
    }
    /* Give them time to reach the server (not an assertion: if one came
     * later, it would only take a thread later). */
    sleep_ms(1000);
}

/* ---------------------------------------------------------------- tests */

/* Writes key at ALL on node 1 (so every replica holds it), then stops
 * node 3: requests at ALL through node 1 wait until it is back. */
static void write_then_pause(cluster *c, const char *key)
{
    char path[128];
    body out;
    snprintf(path, sizeof path, "/v1/kv/%s?consistency=all", key);
    assert_int_equal(http_request(c->nodes[0].http, "PUT", path, "{\"value\":\"v1\"}", &out,
                                  ONE_BOUND_MS), 200);
    assert_true(kvd_pause(c->nodes[2].pid));
}

/* Closes the n sockets while their requests wait: the even ones with a
 * reset (SO_LINGER 0), the odd ones with a FIN. */
static void hang_up(int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        if (i % 2 == 0) {
            struct linger lg = {1, 0};
            setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(fds[i]);
    }
}

/* More reads at ALL than HTTP threads wait on a stopped member; a GET and a
 * PUT at ONE are still answered, and the reads at ALL all end once the
 * member is back. Blocking HTTP threads would hold both threads until the
 * internode timeout (60 s), and the request at ONE would get no answer
 * within its 20 s. */
static void http_threads_do_not_wait_on_replicas(void **state)
{
    cluster *c = *state;
    const char *http = c->nodes[0].http;
    body out;
    write_then_pause(c, "held");

    /* On the heap: a failed assertion leaves the threads running, so they
     * must not point into this frame. */
    waiter *ws = calloc(WAITERS, sizeof *ws);
    assert_non_null(ws);
    start_waiters(ws, WAITERS, http, "/v1/kv/held?consistency=all");

    long got = http_request(http, "GET", "/v1/kv/held?consistency=one", NULL, &out,
                            ONE_BOUND_MS);
    int waiting = WAITERS - count_done(ws, WAITERS);
    if (got != 200 || waiting != WAITERS) {
        fprintf(stderr, "at ONE: %ld %s; %d of %d at ALL still waiting\n", got, out.data,
                waiting, WAITERS);
        for (int i = 0; i < WAITERS; i++)
            if (atomic_load(&ws[i].done))
                fprintf(stderr, "waiter %d: %ld %s\n", i, ws[i].status, ws[i].out.data);
    }
    assert_int_equal(got, 200);
    assert_non_null(strstr(out.data, "\"value\":\"v1\""));
    assert_int_equal(http_request(http, "PUT", "/v1/kv/other?consistency=one",
                                  "{\"value\":\"v2\"}", &out, ONE_BOUND_MS), 200);
    /* They were all still waiting: the answer at ONE did not come after
     * theirs. */
    assert_int_equal(waiting, WAITERS);

    assert_int_equal(kill(c->nodes[2].pid, SIGCONT), 0);
    for (int i = 0; i < WAITERS; i++) {
        pthread_join(ws[i].thread, NULL);
        if (ws[i].status != 200)
            fprintf(stderr, "waiter %d: %ld %s\n", i, ws[i].status, ws[i].out.data);
        assert_int_equal(ws[i].status, 200);
        assert_non_null(strstr(ws[i].out.data, "\"value\":\"v1\""));
    }
    free(ws);
}

/* Sends a GET at ALL on a connection of its own and returns the socket,
 * without reading the answer. */
static int send_raw_get(const char *http, const char *key)
{
    int fd = loopback_connect(http, 5);
    assert_true(fd >= 0);
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET /v1/kv/%s?consistency=all HTTP/1.1\r\nHost: %s\r\n\r\n", key, http);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    return fd;
}

/* Clients hang up while their requests wait (suspended) on a stopped
 * member: some with a reset, some with a plain close. The node goes on
 * serving meanwhile and after the requests end, and stops cleanly
 * (teardown). */
static void clients_that_hang_up_while_waiting(void **state)
{
    cluster *c = *state;
    const char *http = c->nodes[0].http;
    body out;
    write_then_pause(c, "gone");

    int fds[4];
    for (int i = 0; i < 4; i++)
        fds[i] = send_raw_get(http, "gone");
    /* A waiter of our own, to know when the requests at ALL have ended. */
    waiter *w = calloc(1, sizeof *w); /* on the heap: see above */
    assert_non_null(w);
    start_waiters(w, 1, http, "/v1/kv/gone?consistency=all");
    hang_up(fds, 4);
    assert_int_equal(http_request(http, "GET", "/v1/kv/gone?consistency=one", NULL, &out,
                                  ONE_BOUND_MS), 200);
    assert_int_equal(count_done(w, 1), 0);

    assert_int_equal(kill(c->nodes[2].pid, SIGCONT), 0);
    pthread_join(w->thread, NULL);
    assert_int_equal(w->status, 200);
    free(w);
    /* The node answered the hung-up requests into closed sockets, and
     * goes on serving. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(http_request(http, "GET", "/v1/kv/gone?consistency=all", NULL, &out,
                                      ONE_BOUND_MS), 200);
    assert_int_equal(waitpid(c->nodes[0].pid, NULL, WNOHANG), 0);
}

/* The other operations go the same way, with their answers as before: a
 * CAS that conflicts carries the current version, a DELETE's version,
 * errors of a request that never starts. */
static void answers_are_unchanged(void **state)
{
    cluster *c = *state;
    const char *http = c->nodes[1].http;
    body out;
    assert_int_equal(http_request(http, "PUT", "/v1/kv/same?consistency=quorum",
                                  "{\"value\":\"a\",\"ttl\":3600}", &out, ONE_BOUND_MS), 200);
    assert_string_equal(out.data, "{\"version\":1}\n");
    assert_int_equal(http_request(http, "GET", "/v1/kv/same", NULL, &out, ONE_BOUND_MS), 200);
    assert_non_null(strstr(out.data, "\"expiresAt\":"));
    assert_int_equal(http_request(http, "POST", "/v1/kv/same/cas",
                                  "{\"expectedVersion\":7,\"newValue\":\"b\"}", &out,
                                  ONE_BOUND_MS), 409);
    assert_non_null(strstr(out.data, "\"code\":\"CONFLICT\""));
    assert_non_null(strstr(out.data, "\"version\":1}"));
    assert_int_equal(http_request(http, "POST", "/v1/kv/same/cas?consistency=quorum",
                                  "{\"expectedVersion\":1,\"newValue\":\"b\"}", &out,
                                  ONE_BOUND_MS), 200);
    assert_string_equal(out.data, "{\"version\":2}\n");
    assert_int_equal(http_request(http, "DELETE", "/v1/kv/same", NULL, &out, ONE_BOUND_MS),
                     200);
    assert_string_equal(out.data, "{\"version\":3}\n");
    assert_int_equal(http_request(http, "GET", "/v1/kv/same?consistency=serial", NULL, &out,
                                  ONE_BOUND_MS), 404);
    /* Refused by the coordinator, inside the start call. */
    assert_int_equal(http_request(http, "GET", "/v1/kv/same?r=9", NULL, &out, ONE_BOUND_MS),
                     400);
    assert_non_null(strstr(out.data, "\"code\":\"BAD_REQUEST\""));
}

/* ------------------------------------------------------------- batches */

/* The body of batch i: a read of "held" and a write of a key of its own. */
static char *batch_body(int i)
{
    char *json = malloc(160);
    assert_non_null(json);
    snprintf(json, 160,
             "{\"operations\":[{\"op\":\"GET\",\"key\":\"held\"},"
             "{\"op\":\"PUT\",\"key\":\"b%d\",\"value\":\"w%d\"}]}", i, i);
    return json;
}

/* Sends batches at ALL, each from a connection of its own. */
static void start_batch_waiters(waiter *ws, char **bodies, int n, const char *http)
{
    for (int i = 0; i < n; i++) {
        bodies[i] = batch_body(i);
        ws[i] = (waiter){.http = http, .path = "/v1/kv/batch?consistency=all",
                         .json = bodies[i]};
        assert_int_equal(pthread_create(&ws[i].thread, NULL, wait_request, &ws[i]), 0);
    }
    sleep_ms(1000); /* as start_waiters: not an assertion */
}

/* Whether o's member name is the string want. */
static int has_string(const cJSON *o, const char *name, const char *want)
{
    const char *got = cJSON_GetStringValue(cJSON_GetObjectItem(o, name));
    return got && strcmp(got, want) == 0;
}

/* Whether out is batch i's answer, every operation done: the JSON of two
 * results, the read of "held" and the write of "b<i>". */
static int batch_answer_ok(const body *out, int i)
{
    cJSON *root = cJSON_Parse(out->data);
    const cJSON *results = cJSON_GetObjectItem(root, "results");
    const cJSON *get = cJSON_GetArrayItem(results, 0);
    const cJSON *put = cJSON_GetArrayItem(results, 1);
    char key[16];
    snprintf(key, sizeof key, "b%d", i);
    int ok = cJSON_GetArraySize(results) == 2 && has_string(get, "op", "GET") &&
             has_string(get, "key", "held") && has_string(get, "status", "OK") &&
             has_string(get, "value", "v1") && has_string(put, "op", "PUT") &&
             has_string(put, "key", key) && has_string(put, "status", "OK") &&
             cJSON_IsNumber(cJSON_GetObjectItem(put, "version"));
    cJSON_Delete(root);
    return ok;
}

/* More batches at ALL than HTTP threads wait on a stopped member; GET
 * /v1/health and a GET at ONE are still answered, and the batches all end,
 * with every operation done, once the member is back. A batch blocking its
 * HTTP thread would hold both threads until the member came back, and the
 * health check would get no answer within its 20 s. */
static void http_batches_do_not_hold_http_threads(void **state)
{
    cluster *c = *state;
    const char *http = c->nodes[0].http;
    body out;
    write_then_pause(c, "held");

    /* On the heap: see http_threads_do_not_wait_on_replicas. */
    waiter *ws = calloc(WAITERS, sizeof *ws);
    char **bodies = calloc(WAITERS, sizeof *bodies);
    assert_true(ws && bodies);
    start_batch_waiters(ws, bodies, WAITERS, http);

    long health = http_request(http, "GET", "/v1/health", NULL, &out, ONE_BOUND_MS);
    if (health != 200)
        fprintf(stderr, "health: %ld; %d of %d batches at ALL done\n", health,
                count_done(ws, WAITERS), WAITERS);
    assert_int_equal(health, 200);
    assert_string_equal(out.data, "{\"status\":\"ok\"}\n");
    assert_int_equal(http_request(http, "GET", "/v1/kv/held?consistency=one", NULL, &out,
                                  ONE_BOUND_MS), 200);
    /* None could end without the stopped member: they were all waiting
     * while the others were answered. */
    assert_int_equal(count_done(ws, WAITERS), 0);

    assert_int_equal(kill(c->nodes[2].pid, SIGCONT), 0);
    for (int i = 0; i < WAITERS; i++) {
        pthread_join(ws[i].thread, NULL);
        if (ws[i].status != 200 || !batch_answer_ok(&ws[i].out, i))
            fprintf(stderr, "batch %d: %ld %s\n", i, ws[i].status, ws[i].out.data);
        assert_int_equal(ws[i].status, 200);
        assert_true(batch_answer_ok(&ws[i].out, i));
        free(bodies[i]);
    }
    free(bodies);
    free(ws);
}

/* A batch's answer is the one the blocking path gave, byte for byte: the
 * operations on one key in order, each with its status and version, a
 * read with its context (a clock of the coordinator, n2, alone), a binary
 * key in base64. */
static void batch_answers_are_unchanged(void **state)
{
    cluster *c = *state;
    const char *http = c->nodes[1].http;
    body out;
    static const char *const request =
        "{\"operations\":[{\"op\":\"PUT\",\"key\":\"x\",\"value\":\"1\"},"
        "{\"op\":\"GET\",\"key\":\"x\"},{\"op\":\"DELETE\",\"key\":\"x\"},"
        "{\"op\":\"GET\",\"key\":\"nope\"},"
        "{\"op\":\"PUT\",\"key\":\"/w==\",\"value\":\"AAE=\",\"encoding\":\"base64\"}]}";
    static const char *const answer =
        "{\"results\":[{\"op\":\"PUT\",\"key\":\"x\",\"status\":\"OK\",\"version\":1},"
        "{\"op\":\"GET\",\"key\":\"x\",\"status\":\"OK\",\"version\":1,\"value\":\"1\","
        "\"context\":\"CONTEXT\"},"
        "{\"op\":\"DELETE\",\"key\":\"x\",\"status\":\"OK\",\"version\":2},"
        "{\"op\":\"GET\",\"key\":\"nope\",\"status\":\"NOT_FOUND\"},"
        "{\"op\":\"PUT\",\"key\":\"/w==\",\"status\":\"OK\",\"version\":1,"
        "\"encoding\":\"base64\"}]}\n";
    assert_int_equal(http_request(http, "POST", "/v1/kv/batch?consistency=all", request, &out,
                                  ONE_BOUND_MS), 200);
    /* The context: a clock of n2 alone (format 1, one entry, "n2"), whose
     * counter starts from the write's time (cluster/purge.h), so it is
     * compared apart: 20 base64 characters, the first 7 fixed. */
    char *ctx = strstr(out.data, "\"context\":\"");
    assert_non_null(ctx);
    ctx += strlen("\"context\":\"");
    char *end = strchr(ctx, '"');
    assert_non_null(end);
    assert_int_equal(end - ctx, 20);
    assert_memory_equal(ctx, "AQECbjI", 7);
    char seen[1024];
    snprintf(seen, sizeof seen, "%.*sCONTEXT%s", (int)(ctx - out.data), out.data, end);
    assert_string_equal(seen, answer);
}

/* The node answers GET /v1/health. */
static void still_serving(const char *http)
{
    body out;
    assert_int_equal(http_request(http, "GET", "/v1/health", NULL, &out, ONE_BOUND_MS), 200);
}

/* Sends a batch at ALL on a connection of its own and returns the socket,
 * without reading the answer. */
static int send_raw_batch(const char *http, int i)
{
    int fd = loopback_connect(http, 5);
    assert_true(fd >= 0);
    char *json = batch_body(i);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "POST /v1/kv/batch?consistency=all HTTP/1.1\r\nHost: %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     http, strlen(json), json);
    free(json);
    assert_true(n > 0 && (size_t)n < sizeof req);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    return fd;
}

/* A body of n bytes: a batch of count PUTs, padded with spaces. */
static char *big_batch(size_t count, size_t n)
{
    char *json = malloc(n + 1);
    assert_non_null(json);
    size_t len = (size_t)snprintf(json, n + 1, "{\"operations\":[");
    for (size_t i = 0; i < count; i++) {
        assert_true(len < n); /* else n + 1 - len wraps */
        len += (size_t)snprintf(json + len, n + 1 - len,
                                "%s{\"op\":\"PUT\",\"key\":\"k%zu\",\"value\":\"v\"}",
                                i ? "," : "", i);
    }
    assert_true(len < n);
    len += (size_t)snprintf(json + len, n + 1 - len, "]}");
    assert_true(len <= n);
    memset(json + len, ' ', n - len);
    json[n] = 0;
    return json;
}

/* Bad batches are refused as before, and the node goes on serving after
 * each: malformed JSON, an empty body, a body over the 16 MiB limit, more
 * operations than a batch may have, a level the cluster cannot meet. */
static void bad_batches_are_refused(void **state)
{
    cluster *c = *state;
    const char *http = c->nodes[0].http;
    body out;
    static const char *const bad[] = {
        "{\"operations\": [", "", "{\"operations\": 7}", "[]", "{\"operations\": [{}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        long got = http_request(http, "POST", "/v1/kv/batch", bad[i], &out, ONE_BOUND_MS);
        if (got != 400)
            fprintf(stderr, "body \"%s\": %ld %s\n", bad[i], got, out.data);
        assert_int_equal(got, 400);
        assert_non_null(strstr(out.data, "\"code\":\"BAD_REQUEST\""));
        still_serving(http);
    }
    char *json = big_batch(1, 16u * 1024u * 1024u + 1u);
    assert_int_equal(http_request(http, "POST", "/v1/kv/batch", json, &out, ONE_BOUND_MS), 413);
    assert_non_null(strstr(out.data, "\"code\":\"TOO_BIG\""));
    free(json);
    still_serving(http);
    json = big_batch(KV_BATCH_MAX_OPS + 1, (KV_BATCH_MAX_OPS + 1) * 48u);
    assert_int_equal(http_request(http, "POST", "/v1/kv/batch", json, &out, ONE_BOUND_MS), 413);
    free(json);
    still_serving(http);
    /* A key over the node's limit (1024 bytes) after a good operation:
     * the batch is checked whole inside the start call, so it is answered
     * before the connection is suspended, and nothing of it runs. */
    char key[2001];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = 0;
    json = malloc(2200);
    assert_non_null(json);
    snprintf(json, 2200,
             "{\"operations\":[{\"op\":\"PUT\",\"key\":\"first\",\"value\":\"v\"},"
             "{\"op\":\"GET\",\"key\":\"%s\"}]}", key);
    assert_int_equal(http_request(http, "POST", "/v1/kv/batch?consistency=all", json, &out,
                                  ONE_BOUND_MS), 413);
    assert_string_equal(out.data, "{\"error\":{\"code\":\"TOO_BIG\",\"message\":\"batch "
                                  "operation 1: key is 2000 bytes, the limit is 1024\"}}\n");
    free(json);
    still_serving(http);
    assert_int_equal(http_request(http, "GET", "/v1/kv/first", NULL, &out, ONE_BOUND_MS), 404);
}

/* Clients hang up while their batches wait (suspended) on a stopped member:
 * some with a reset, some with a plain close. The node goes on serving
 * meanwhile and after, and stops cleanly (teardown; under ASan, a batch
 * freed twice or never would fail it). */
static void batch_clients_that_hang_up(void **state)
{
    cluster *c = *state;
    const char *http = c->nodes[0].http;
    body out;
    write_then_pause(c, "held");

    int fds[4];
    for (int i = 0; i < 4; i++)
        fds[i] = send_raw_batch(http, i);
    /* A batch of our own, to know when those at ALL have ended. */
    waiter *w = calloc(1, sizeof *w); /* on the heap: see above */
    char *bodies[1];
    assert_non_null(w);
    start_batch_waiters(w, bodies, 1, http);
    hang_up(fds, 4);
    still_serving(http);
    assert_int_equal(http_request(http, "GET", "/v1/kv/held?consistency=one", NULL, &out,
                                  ONE_BOUND_MS), 200);
    assert_int_equal(count_done(w, 1), 0);

    assert_int_equal(kill(c->nodes[2].pid, SIGCONT), 0);
    pthread_join(w->thread, NULL);
    assert_int_equal(w->status, 200);
    assert_true(batch_answer_ok(&w->out, 0));
    free(bodies[0]);
    free(w);
    for (int i = 0; i < 4; i++) {
        char *json = batch_body(i);
        assert_int_equal(http_request(http, "POST", "/v1/kv/batch?consistency=all", json, &out,
                                      ONE_BOUND_MS), 200);
        assert_true(batch_answer_ok(&out, i));
        free(json);
    }
    assert_int_equal(waitpid(c->nodes[0].pid, NULL, WNOHANG), 0);
}

/* A GET whose answer may be long (a status document is tens of KiB): the
 * whole body, malloc'd, into w->doc. */
typedef struct status_waiter {
    const char *http;
    pthread_t thread;
    long status;
    char *doc;
    size_t len;
    atomic_int done;
} status_waiter;

static size_t doc_collect(char *p, size_t size, size_t n, void *ctx)
{
    status_waiter *w = ctx;
    size_t take = size * n;
    char *grown = realloc(w->doc, w->len + take + 1);
    if (!grown)
        return 0; /* curl fails the transfer */
    memcpy(grown + w->len, p, take);
    w->doc = grown;
    w->len += take;
    w->doc[w->len] = 0;
    return take;
}

static void *wait_status(void *arg)
{
    status_waiter *w = arg;
    CURL *curl = curl_easy_init();
    char url[256];
    snprintf(url, sizeof url, "http://%s/v1/status?timeoutMs=60000", w->http);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, doc_collect);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, w);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, WAITER_BOUND_MS);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &w->status);
    curl_easy_cleanup(curl);
    atomic_store(&w->done, 1);
    return NULL;
}

/* GET /v1/status waits for every member's description (here up to its
 * ?timeoutMs=, 60 s), with the connection suspended: more status requests
 * than HTTP threads wait on a stopped member, and a GET at ONE and
 * /v1/health are still answered. Blocking HTTP threads would hold both
 * until the member came back. Once it is back, every status lists all
 * three members up, each with its description. */
static void status_requests_do_not_hold_http_threads(void **state)
{
    cluster *c = *state;
    const char *http = c->nodes[0].http;
    body out;
    write_then_pause(c, "seen");

    status_waiter *ws = calloc(WAITERS, sizeof *ws);
    assert_non_null(ws);
    for (int i = 0; i < WAITERS; i++) {
        ws[i].http = http;
        assert_int_equal(pthread_create(&ws[i].thread, NULL, wait_status, &ws[i]), 0);
    }
    sleep_ms(1000); /* as start_waiters: not an assertion */

    long got = http_request(http, "GET", "/v1/kv/seen?consistency=one", NULL, &out,
                            ONE_BOUND_MS);
    long health = http_request(http, "GET", "/v1/health", NULL, &out, ONE_BOUND_MS);
    int waiting = 0;
    for (int i = 0; i < WAITERS; i++)
        waiting += !atomic_load(&ws[i].done);
    if (got != 200 || health != 200 || waiting != WAITERS)
        fprintf(stderr, "at ONE: %ld, health %ld; %d of %d status requests still waiting\n",
                got, health, waiting, WAITERS);
    assert_int_equal(got, 200);
    assert_int_equal(health, 200);
    assert_int_equal(waiting, WAITERS);

    assert_int_equal(kill(c->nodes[2].pid, SIGCONT), 0);
    for (int i = 0; i < WAITERS; i++) {
        pthread_join(ws[i].thread, NULL);
        if (ws[i].status != 200)
            fprintf(stderr, "status %d: %ld %s\n", i, ws[i].status, ws[i].doc ? ws[i].doc : "");
        assert_int_equal(ws[i].status, 200);
        cJSON *doc = cJSON_Parse(ws[i].doc);
        assert_non_null(doc);
        assert_true(has_string(doc, "nodeId", "n1"));
        const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(doc, "nodes");
        assert_int_equal(cJSON_GetArraySize(nodes), NODES);
        const cJSON *n;
        cJSON_ArrayForEach(n, nodes) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(n, "nodeId");
            if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "up")))
                fprintf(stderr, "status %d: %s is not up: %s\n", i, cJSON_GetStringValue(id),
                        cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(n, "error")));
            assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(n, "up")));
            const cJSON *d = cJSON_GetObjectItemCaseSensitive(n, "description");
            assert_true(cJSON_IsObject(d));
            assert_true(has_string(d, "nodeId", cJSON_GetStringValue(id)));
        }
        cJSON_Delete(doc);
        free(ws[i].doc);
    }
    free(ws);
}

/* A status request waiting on a stopped member (?timeoutMs=60000) does not
 * hold the node's own stop: SIGTERM ends the node within kvd_stop's 15 s,
 * and the request gets its answer then (or its connection closes), the
 * member shown as not answering. Without that, the node would wait out
 * the minute first. */
static void a_waiting_status_does_not_hold_the_stop(void **state)
{
    cluster *c = *state;
    write_then_pause(c, "stopping");
    status_waiter *w = calloc(1, sizeof *w);
    assert_non_null(w);
    w->http = c->nodes[0].http;
    assert_int_equal(pthread_create(&w->thread, NULL, wait_status, w), 0);
    sleep_ms(1000); /* as start_waiters: not an assertion */
    assert_int_equal(atomic_load(&w->done), 0);

    int stopped = kvd_stop(c->nodes[0].pid, SIGTERM);
    c->nodes[0].pid = 0;
    if (!stopped)
        fprintf(stderr, "n1 did not stop within 15 s (log: %s)\n", c->nodes[0].log_path);
    assert_true(stopped);
    pthread_join(w->thread, NULL);
    /* Answered before the server stopped, or cut off with it. */
    if (w->status == 200) {
        assert_non_null(w->doc);
        assert_non_null(strstr(w->doc, "no answer before this node began to stop"));
    } else {
        assert_int_equal(w->status, 0);
    }
    free(w->doc);
    free(w);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(http_threads_do_not_wait_on_replicas, setup, teardown),
        cmocka_unit_test_setup_teardown(clients_that_hang_up_while_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(answers_are_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(http_batches_do_not_hold_http_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_answers_are_unchanged, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_batches_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(batch_clients_that_hang_up, setup, teardown),
        cmocka_unit_test_setup_teardown(status_requests_do_not_hold_http_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(a_waiting_status_does_not_hold_the_stop, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
