/* A cluster of real kvd processes on loopback for the integration tests:
 * start, stop, restart and wipe members, and clients to them. Include
 * after cmocka.h. Every wait is a bounded poll for a state. */
#ifndef KV_TEST_CLUSTER_HARNESS_H
#define KV_TEST_CLUSTER_HARNESS_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cJSON.h>
#include <kv/kv.h>
#include "helpers.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"

#define MAX_NODES 6

typedef struct node {
    pid_t pid;
    char *dir;
    char id[16];
    char listen[64];
    char http[64];
    char log_path[600];
    const char *seeds; /* set: started with --seeds this instead of --peers */
} node;

typedef struct cluster {
    node nodes[MAX_NODES];
    int n;            /* members in --peers */
    char peers[512];
    const char *policy;
    /* More kvd flags for every member (NULL-terminated; may be NULL). */
    const char *const *extra;
    void *user; /* a test's own (an etcd it started); not freed by teardown */
} cluster;


static inline void set_peers(cluster *c, int n)
{
    c->n = n;
    c->peers[0] = 0;
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(c->peers, ",");
        strcat(c->peers, c->nodes[i].listen);
    }
}

static inline void spawn(cluster *c, int i)
{
    node *d = &c->nodes[i];
    const char *argv[40] = {kvd_path(), "--data", d->dir, "--listen", d->listen,
                            "--http", d->http, "--node-id", d->id,
                            d->seeds ? "--seeds" : "--peers", d->seeds ? d->seeds : c->peers,
                            "--policy", c->policy, "--internode-timeout", "2000", NULL};
    size_t at = 15;
    for (size_t k = 0; c->extra && c->extra[k] && at + 1 < sizeof argv / sizeof argv[0]; k++)
        argv[at++] = c->extra[k];
    argv[at] = NULL;
    pid_t pid = kvd_spawn(argv, d->log_path);
    assert_true(pid > 0);
    d->pid = pid;
}

static inline kv *client_at(const char *const *eps, size_t n, kv_conflict_policy policy,
                     kv_merge_fn merge)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 3000;
    co.connect_timeout_ms = 500;
    co.policy = policy;
    co.merge = merge;
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, n, &co), KV_OK);
    return db;
}

/* A client that knows only node i (it still learns the whole cluster). */
static inline kv *client_of(const cluster *c, int i)
{
    const char *eps[] = {c->nodes[i].listen};
    return client_at(eps, 1, KV_POLICY_LWW, NULL);
}

static inline kv *client_all(const cluster *c, kv_conflict_policy policy, kv_merge_fn merge)
{
    const char *eps[MAX_NODES];
    for (int i = 0; i < c->n; i++)
        eps[i] = c->nodes[i].listen;
    return client_at(eps, (size_t)c->n, policy, merge);
}

/* Node i's description, parsed (cJSON_Delete it), or NULL when it does
 * not answer. */
static inline cJSON *described_by(const cluster *c, int i)
{
    kv *db = client_of(c, i);
    char *json = NULL;
    int rc = kv_cluster_describe(&json, db);
    kv_close(db);
    cJSON *root = rc == KV_OK ? cJSON_Parse(json) : NULL;
    kv_string_free(json);
    return root;
}

/* Prints what node i believes of the cluster and the end of its log, so
 * that a membership that never completes can be told apart later. */
static inline void explain_incomplete(const cluster *c, int i)
{
    kv *db = client_of(c, i);
    char *json = NULL;
    int rc = kv_cluster_describe(&json, db);
    fprintf(stderr, "%s's description (%s): %s\n", c->nodes[i].id, kv_strerror(rc),
            json ? json : kv_error_last());
    kv_string_free(json);
    kv_close(db);
    char cmd[800];
    snprintf(cmd, sizeof cmd, "tail -n 30 '%s' >&2", c->nodes[i].log_path);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log at %s)\n", c->nodes[i].log_path);
}


/* Waits (bounded) until node i says its membership is complete. When it
 * never does, every node is killed before the failure: a per-test setup
 * that fails gets no teardown, and a kvd left running would hold ctest's
 * output open. */
static inline void wait_complete(cluster *c, int i)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 3000;
    co.connect_timeout_ms = 500;
    if (!kvd_wait_complete(c->nodes[i].listen, &co)) {
        explain_incomplete(c, i);
        for (int k = 0; k < MAX_NODES; k++) {
            if (c->nodes[k].pid > 0)
                kvd_stop(c->nodes[k].pid, SIGKILL);
            c->nodes[k].pid = 0;
        }
        fail_msg("%s never completed its membership (log: %s)", c->nodes[i].id,
                 c->nodes[i].log_path);
    }
}

static inline void start(cluster *c, int i)
{
    spawn(c, i);
    wait_complete(c, i);
}

/* Stops node i with sig. A node that does not exit within 15 s is a
 * failure (a hang in shutdown), reported as such, not a stuck test. */
static inline void stop(cluster *c, int i, int sig)
{
    node *d = &c->nodes[i];
    if (d->pid <= 0)
        return;
    int exited = kvd_stop(d->pid, sig);
    d->pid = 0;
    if (!exited)
        fail_msg("%s did not exit within 15 s of signal %d (log: %s)", d->id, sig, d->log_path);
}

/* Waits (bounded: about 10 s) until nodes from..n-1 have each logged
 * "ready"; 0 as soon as one has exited (it is reaped: pid 0). */
static inline int ready_from(cluster *c, int from, int n)
{
    for (int round = 0; round < 200; round++) {
        int ready = 0;
        for (int i = from; i < n; i++) {
            node *d = &c->nodes[i];
            if (d->pid > 0 && waitpid(d->pid, NULL, WNOHANG) == d->pid) {
                d->pid = 0;
                return 0;
            }
            FILE *f = fopen(d->log_path, "r");
            char line[512];
            int seen = 0;
            while (f && !seen && fgets(line, sizeof line, f))
                seen = strstr(line, "\"ready") != NULL;
            if (f)
                fclose(f);
            ready += seen;
        }
        if (ready == n - from)
            return 1;
        sleep_ms(50);
    }
    return 1; /* slow, not dead: wait_complete decides */
}

static inline int all_ready(cluster *c, int n)
{
    return ready_from(c, 0, n);
}

/* Gives node i new ports, a fresh data directory and log. */
static inline void fresh_node(node *d, int i)
{
    if (d->dir)
        test_rmtree(d->dir);
    d->dir = test_tempdir();
    snprintf(d->id, sizeof d->id, "n%d", i + 1);
    snprintf(d->listen, sizeof d->listen, "127.0.0.1:%d", free_port());
    snprintf(d->http, sizeof d->http, "127.0.0.1:%d", free_port());
    snprintf(d->log_path, sizeof d->log_path, "%s.log", d->dir);
}

/* Starts node i, new to a running cluster. A port picked free may be taken
 * by another test before kvd listens on it (seen in CI: the joining node
 * stopped at once and never joined): a start where it exits before it is
 * ready is tried again on new ports and a fresh directory, at most 5
 * times. */
static inline void spawn_joining(cluster *c, int i)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        spawn(c, i);
        if (ready_from(c, i, i + 1))
            return;
        fprintf(stderr, "%s exited before it was ready (log: %s); again on new ports\n",
                c->nodes[i].id, c->nodes[i].log_path);
        fresh_node(&c->nodes[i], i);
    }
    fail_msg("%s could not start in 5 attempts", c->nodes[i].id);
}

/* Runs kvctl (KVCTL) with args against node i; its output goes to out.
 * Returns its exit status as pclose gives it. */
static inline int run_kvctl(const cluster *c, int i, const char *args, char *out, size_t size)
{
    const char *kvctl = getenv("KVCTL");
    assert_non_null(kvctl);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' --endpoints %s %s", kvctl, c->nodes[i].listen, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t len = fread(out, 1, size - 1, p);
    out[len] = 0;
    return pclose(p);
}

/* *state is set first, so that teardown stops what started even when the
 * cluster never completes. */
static inline cluster *make_cluster_with(void **state, int n, const char *policy,
                                        const char *const *extra)
{
    cluster *c = calloc(1, sizeof *c);
    *state = c;
    c->policy = policy;
    c->extra = extra;
    /* A port picked free may be taken by another test before kvd listens
     * on it: a start where a node exits before all are ready is tried
     * again on new ports and fresh directories (at most 5 times). */
    for (int attempt = 0; attempt < 5; attempt++) {
        for (int i = 0; i < MAX_NODES; i++)
            fresh_node(&c->nodes[i], i);
        set_peers(c, n);
        for (int i = 0; i < n; i++)
            spawn(c, i);
        if (all_ready(c, n))
            break;
        for (int i = 0; i < n; i++)
            if (c->nodes[i].pid > 0) {
                kvd_stop(c->nodes[i].pid, SIGKILL);
                c->nodes[i].pid = 0;
            }
    }
    for (int i = 0; i < n; i++)
        wait_complete(c, i);
    return c;
}

static inline cluster *make_cluster(void **state, int n, const char *policy)
{
    return make_cluster_with(state, n, policy, NULL);
}

static inline int teardown(void **state)
{
    cluster *c = *state;
    for (int i = 0; i < MAX_NODES; i++) {
        stop(c, i, SIGKILL);
        if (!getenv("KV_TEST_KEEP_LOGS"))
            unlink(c->nodes[i].log_path);
        test_rmtree(c->nodes[i].dir);
    }
    free(c);
    return 0;
}


#endif
