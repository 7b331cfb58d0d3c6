/* Real kvd processes on loopback: start, serve, crash (kill -9) and restart
 * under load, stop cleanly on SIGTERM, and refuse bad flags and busy ports.
 * The path of kvd comes from the KVD environment variable (set by ctest). */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <cmocka.h>

#include <cJSON.h>

#include "helpers.h"
#include "integration/http_client.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"
#include <kv/kv.h>

typedef struct daemon {
    pid_t pid;
    char *dir;
    char listen[64];
    char http[64];
    char log_path[600];
} daemon;


/* Runs kvd with extra arguments; its stderr goes to d->log_path. */
static pid_t spawn(daemon *d, const char *const *extra)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = kvd_path();
    argv[n++] = "--data";
    argv[n++] = d->dir;
    argv[n++] = "--listen";
    argv[n++] = d->listen;
    argv[n++] = "--http";
    argv[n++] = d->http;
    argv[n++] = "--node-id";
    argv[n++] = "n1";
    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    return kvd_spawn(argv, d->log_path);
}

static kv *client_of(const daemon *d)
{
    const char *eps[] = {d->listen};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 2000;
    co.connect_timeout_ms = 500;
    kv *c = NULL;
    assert_int_equal(kv_client_open(&c, eps, 1, &co), KV_OK);
    return c;
}

/* Waits (bounded) until the node answers a ping. */
static int wait_ready(const daemon *d)
{
    kv *c = client_of(d);
    int rc = KV_EUNAVAILABLE;
    for (int i = 0; i < 100 && rc != KV_OK; i++) {
        rc = kv_ping(c);
        if (rc != KV_OK)
            sleep_ms(100);
    }
    kv_close(c);
    return rc;
}

static void start(daemon *d, const char *const *extra)
{
    d->pid = spawn(d, extra);
    assert_true(d->pid > 0);
    assert_int_equal(wait_ready(d), KV_OK);
}

static int stop(daemon *d, int sig)
{
    int status = 0;
    if (d->pid > 0) {
        kill(d->pid, sig);
        waitpid(d->pid, &status, 0);
        d->pid = 0;
    }
    return status;
}

static int setup(void **state)
{
    daemon *d = calloc(1, sizeof *d);
    d->dir = test_tempdir();
    snprintf(d->listen, sizeof d->listen, "127.0.0.1:%d", free_port());
    snprintf(d->http, sizeof d->http, "127.0.0.1:%d", free_port());
    snprintf(d->log_path, sizeof d->log_path, "%s.log", d->dir);
    *state = d;
    return 0;
}

/* Daemons a test started besides its own (their pids: the daemons live on
 * the test's stack, gone once an assertion ends it), killed by the
 * teardown should an assertion end the test early. */
static pid_t g_others[2];

static int teardown(void **state)
{
    daemon *d = *state;
    for (int i = 0; i < 2; i++)
        if (g_others[i] > 0) {
            kill(g_others[i], SIGKILL);
            waitpid(g_others[i], NULL, 0);
            g_others[i] = 0;
        }
    stop(d, SIGKILL);
    unlink(d->log_path);
    test_rmtree(d->dir);
    free(d);
    return 0;
}

/* ---------------------------------------------------------------- HTTP */

static long http(const daemon *d, const char *method, const char *path, const char *json,
                 body *out)
{
    return http_request(d->http, method, path, json, out, 5000L);
}

/* --------------------------------------------------------------- tests */

static void serves_both_protocols(void **state)
{
    daemon *d = *state;
    start(d, NULL);
    body b;
    assert_int_equal(http(d, "GET", "/v1/health", NULL, &b), 200);
    assert_int_equal(http(d, "PUT", "/v1/kv/greeting", "{\"value\":\"hello\"}", &b), 200);
    assert_non_null(strstr(b.data, "\"version\""));
    /* Written over HTTP, read over the binary protocol, and back. */
    kv *c = client_of(d);
    kv_value *v;
    assert_int_equal(kv_get(&v, c, "greeting", 8, NULL), KV_OK);
    assert_memory_equal(kv_value_data(v, NULL), "hello", 5);
    assert_int_equal(kv_value_version(v), 1);
    kv_value_free(v);
    assert_int_equal(kv_put(NULL, c, "greeting", 8, "again", 5, NULL), KV_OK);
    assert_int_equal(http(d, "GET", "/v1/kv/greeting", NULL, &b), 200);
    assert_non_null(strstr(b.data, "\"again\""));
    assert_non_null(strstr(b.data, "\"version\":2"));
    assert_int_equal(http(d, "GET", "/v1/kv/absent", NULL, &b), 404);
    char *metrics = http_get_all(d->http, "/metrics", 5000L);
    assert_non_null(metrics);
    assert_non_null(strstr(metrics, "kv_requests_total"));
    /* The GETs of a key just written were answered by the row cache. */
    const char *hits = strstr(metrics, "\nkv_row_cache_hits_total ");
    assert_non_null(hits);
    assert_true(strtod(hits + strlen("\nkv_row_cache_hits_total "), NULL) >= 2);
    assert_non_null(strstr(metrics, "\nkv_row_cache_capacity_bytes 67108864\n"));
    /* The store's engine figures: the WAL holds the writes above. */
    const char *wal = strstr(metrics, "\nkv_store_wal_bytes ");
    assert_non_null(wal);
    assert_true(strtod(wal + strlen("\nkv_store_wal_bytes "), NULL) > 0);
    assert_non_null(strstr(metrics, "\nkv_store_pending_compaction_bytes "));
    assert_non_null(strstr(metrics, "\nkv_block_cache_hits_total "));
    free(metrics);
    /* The key read most lately is the node's hottest (binary and HTTP
     * reads both count). */
    char *hot = http_get_all(d->http, "/v1/hotkeys", 5000L);
    assert_non_null(hot);
    assert_non_null(strstr(hot, "\"reads\":{\"total\":"));
    assert_non_null(strstr(hot, "\"keys\":[{\"key\":\"greeting\""));
    free(hot);
    /* A node alone keeps one copy of each key, whatever its N. */
    assert_int_equal(http(d, "GET", "/v1/cluster", NULL, &b), 200);
    assert_non_null(strstr(b.data, "\"replicas\":1,\"replicationFactor\":3,"));
    kv_close(c);
    /* Logs are JSON lines; the sync policy is named. */
    FILE *f = fopen(d->log_path, "r");
    char line[2048];
    int lines = 0, sync_named = 0;
    while (f && fgets(line, sizeof line, f)) {
        assert_true(strncmp(line, "{\"ts\":\"", 7) == 0);
        assert_non_null(strstr(line, "\"msg\":"));
        sync_named += strstr(line, "opened store") && strstr(line, "(sync always:");
        lines++;
    }
    if (f)
        fclose(f);
    assert_true(lines > 0);
    assert_int_equal(sync_named, 1);
}

typedef struct loader {
    const daemon *d;
    atomic_int stop;
    unsigned acked; /* keys 0..acked-1 were acknowledged */
    int unexpected;
} loader;

static void *write_until_stopped(void *arg)
{
    loader *l = arg;
    kv *c = client_of(l->d);
    for (unsigned i = 0; i < 1000000 && !atomic_load(&l->stop); i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "load-%u", i);
        int rc = kv_put(NULL, c, key, (size_t)n, key, (size_t)n, NULL);
        if (rc == KV_OK) {
            l->acked = i + 1;
        } else {
            /* The node died under us: a write in flight is of unknown
             * outcome, later ones find nobody. Stop there. */
            if (rc != KV_EUNKNOWN_OUTCOME && rc != KV_EUNAVAILABLE && rc != KV_ETIMEDOUT)
                l->unexpected = rc;
            break;
        }
    }
    kv_close(c);
    return NULL;
}

static void kill9_under_load_then_restart(void **state)
{
    daemon *d = *state;
    start(d, NULL);
    kv *c = client_of(d);
    assert_int_equal(kv_put(NULL, c, "before", 6, "crash", 5, NULL), KV_OK);

    loader l = {.d = d};
    pthread_t t;
    pthread_create(&t, NULL, write_until_stopped, &l);
    for (int i = 0; i < 100 && l.acked < 200; i++)
        sleep_ms(20);
    int status = stop(d, SIGKILL);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    atomic_store(&l.stop, 1);
    pthread_join(t, NULL);
    assert_int_equal(l.unexpected, 0);
    assert_true(l.acked > 0);

    /* While it is down, calls fail with a clear code. */
    kv_value *v;
    int rc = kv_get(&v, c, "before", 6, NULL);
    assert_true(rc == KV_EUNAVAILABLE || rc == KV_ETIMEDOUT);

    start(d, NULL);
    /* The same client handle reconnects by itself, and every acknowledged
     * write is there. */
    assert_int_equal(kv_get(&v, c, "before", 6, NULL), KV_OK);
    kv_value_free(v);
    unsigned lost = 0;
    for (unsigned i = 0; i < l.acked; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "load-%u", i);
        if (kv_get(&v, c, key, (size_t)n, NULL) != KV_OK) {
            lost++;
            continue;
        }
        kv_value_free(v);
    }
    print_message("kill -9 under load: %u acknowledged writes, %u lost\n", l.acked, lost);
    assert_int_equal(lost, 0);
    kv_close(c);
}

static void sigterm_stops_cleanly(void **state)
{
    daemon *d = *state;
    const char *const unsynced[] = {"--sync", "none", NULL};
    start(d, unsynced);
    kv *c = client_of(d);
    for (int i = 0; i < 100; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "t%d", i);
        assert_int_equal(kv_put(NULL, c, key, (size_t)n, "v", 1, NULL), KV_OK);
    }
    int status = stop(d, SIGTERM);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    start(d, NULL);
    for (int i = 0; i < 100; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "t%d", i);
        kv_value *v;
        assert_int_equal(kv_get(&v, c, key, (size_t)n, NULL), KV_OK);
        kv_value_free(v);
    }
    kv_close(c);
    FILE *f = fopen(d->log_path, "r");
    char line[2048];
    int saw_stop = 0;
    while (f && fgets(line, sizeof line, f))
        saw_stop |= strstr(line, "received SIGTERM") != NULL;
    if (f)
        fclose(f);
    assert_true(saw_stop);
}

/* Runs kvd to completion with the given arguments; returns its exit code
 * and leaves its stderr in d->log_path. */
static int run_to_exit(daemon *d, const char *const *argv_tail, int with_defaults)
{
    const char *argv[32];
    int n = 0;
    argv[n++] = kvd_path();
    if (with_defaults) {
        argv[n++] = "--data";
        argv[n++] = d->dir;
        argv[n++] = "--node-id";
        argv[n++] = "n1";
    }
    for (; *argv_tail; argv_tail++)
        argv[n++] = *argv_tail;
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(d->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 2);
        dup2(fd, 1);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    int status;
    /* Bounded: a kvd that does not exit on bad input is killed and fails. */
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        sleep_ms(50);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* Whether a line of d's log (lines are under 2 KiB) holds needle. */
static int log_contains(const daemon *d, const char *needle)
{
    FILE *f = fopen(d->log_path, "r");
    char line[4096];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    if (f)
        fclose(f);
    return found;
}

static void bad_flags_and_busy_ports(void **state)
{
    daemon *d = *state;
    const char *const none[] = {NULL};
    assert_int_equal(run_to_exit(d, none, 0), 2);
    assert_true(log_contains(d, "required"));
    const char *const unknown[] = {"--listen", d->listen, "--bogus", "1", NULL};
    assert_int_equal(run_to_exit(d, unknown, 1), 2);
    assert_true(log_contains(d, "unknown flag"));
    const char *const bad_sync[] = {"--listen", d->listen, "--sync", "sometimes", NULL};
    assert_int_equal(run_to_exit(d, bad_sync, 1), 2);
    const char *const bad_cache[] = {"--listen", d->listen, "--row-cache-bytes", "lots", NULL};
    assert_int_equal(run_to_exit(d, bad_cache, 1), 2);
    assert_true(log_contains(d, "--row-cache-bytes must be"));
    /* Anti-entropy's flags, each out of its range. */
    const char *const bad_ae[][5] = {
        {"--listen", d->listen, "--digest-bits", "3", NULL},
        {"--listen", d->listen, "--digest-bits", "25", NULL},
        {"--listen", d->listen, "--ae-interval", "604801", NULL},
        {"--listen", d->listen, "--repair-rate", "1023", NULL},
        {"--listen", d->listen, "--tombstone-grace", "-1", NULL},
    };
    const char *const bad_ae_says[] = {"--digest-bits must be", "--digest-bits must be",
                                       "--ae-interval must be", "--repair-rate must be",
                                       "--tombstone-grace must be"};
    for (size_t i = 0; i < sizeof bad_ae / sizeof bad_ae[0]; i++) {
        assert_int_equal(run_to_exit(d, bad_ae[i], 1), 2);
        assert_true(log_contains(d, bad_ae_says[i]));
    }
    /* --replace: another id than --node-id's, or no seeds to fetch the
     * topology from, is refused before anything starts. */
    const char *const replace_other[] = {"--listen", d->listen, "--replace", "n3",
                                         "--seeds", d->listen, NULL};
    assert_int_equal(run_to_exit(d, replace_other, 1), 2);
    assert_true(log_contains(d, "--replace takes the replaced member's id"));
    const char *const replace_alone[] = {"--data", d->dir, "--listen", d->listen,
                                         "--replace", "n3", NULL};
    assert_int_equal(run_to_exit(d, replace_alone, 0), 2);
    assert_true(log_contains(d, "--replace needs --seeds"));
    /* --metadata: only etcd://, a URL that parses, and a node in a
     * cluster (a node alone has no topology to keep). */
    const char *const metadata_http[] = {"--listen", d->listen, "--seeds", d->listen,
                                         "--metadata", "http://127.0.0.1:2379/x", NULL};
    assert_int_equal(run_to_exit(d, metadata_http, 1), 2);
    assert_true(log_contains(d, "--metadata takes etcd://"));
    const char *const metadata_alone[] = {"--listen", d->listen, "--metadata",
                                          "etcd://127.0.0.1:2379/x", NULL};
    assert_true(run_to_exit(d, metadata_alone, 1) != 0);
    assert_true(log_contains(d, "a node alone has none"));
    const char *const metadata_bad[] = {"--listen", d->listen, "--seeds", d->listen,
                                        "--metadata", "etcd://127.0.0.1:99999/x", NULL};
    assert_true(run_to_exit(d, metadata_bad, 1) != 0);
    assert_true(log_contains(d, "--metadata: "));
    const char *const bad_addr[] = {"--listen", "nowhere", NULL};
    assert_int_equal(run_to_exit(d, bad_addr, 1), 1);
    assert_true(log_contains(d, "HOST:PORT"));
    const char *const missing_config[] = {"--config", "/nonexistent/kvd.json", NULL};
    assert_int_equal(run_to_exit(d, missing_config, 1), 2);

    /* A port in use: a clear message and exit 1. */
    start(d, NULL);
    daemon other = *d;
    other.dir = test_tempdir();
    other.pid = 0;
    const char *const same_port[] = {"--listen", d->listen, NULL};
    assert_int_equal(run_to_exit(&other, same_port, 1), 1);
    assert_true(log_contains(&other, "in use"));
    test_rmtree(other.dir);
}

static void config_file_works(void **state)
{
    daemon *d = *state;
    char path[700];
    snprintf(path, sizeof path, "%s.json", d->dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"data\":\"%s\",\"listen\":\"%s\",\"http\":\"%s\",\"nodeId\":\"cfg-node\","
               "\"sync\":\"periodic\",\"maxValueSize\":16,\"logLevel\":\"warn\"}",
            d->dir, d->listen, d->http);
    fclose(f);
    const char *argv[] = {kvd_path(), "--config", path, NULL};
    d->pid = fork();
    if (d->pid == 0) {
        int fd = open(d->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    assert_int_equal(wait_ready(d), KV_OK);
    kv *c = client_of(d);
    /* The config's value limit holds. */
    assert_int_equal(kv_put(NULL, c, "k", 1, "0123456789abcdef", 16, NULL), KV_OK);
    assert_int_equal(kv_put(NULL, c, "k", 1, "0123456789abcdefg", 17, NULL), KV_ETOOBIG);
    kv_close(c);
    body b;
    assert_int_equal(http(d, "GET", "/v1/cluster", NULL, &b), 200);
    assert_non_null(strstr(b.data, "cfg-node"));
    unlink(path);

    /* The config's logLevel holds for kvd's own lines as for the
     * library's: at warn, a clean start and stop log nothing. */
    assert_int_equal(WEXITSTATUS(stop(d, SIGTERM)), 0);
    assert_false(log_contains(d, "\"level\":\"info\""));
    assert_false(log_contains(d, "ready"));

    /* A config with a wrong type is refused with its key named. */
    f = fopen(path, "w");
    fprintf(f, "{\"data\":\"%s\",\"listen\":5}", d->dir);
    fclose(f);
    const char *const args[] = {"--config", path, NULL};
    assert_int_equal(run_to_exit(d, args, 0), 2);
    assert_true(log_contains(d, "listen"));
    unlink(path);
}


/* Reads what the node at d believes about the cluster (bounded wait until
 * it answers at all). */
static cJSON *describe_of(const daemon *d)
{
    kv *c = client_of(d);
    char *json = NULL;
    int rc = KV_EUNAVAILABLE;
    for (int i = 0; i < 50 && rc != KV_OK; i++) {
        rc = kv_cluster_describe(&json, c);
        if (rc != KV_OK)
            sleep_ms(100);
    }
    kv_close(c);
    assert_int_equal(rc, KV_OK);
    cJSON *root = cJSON_Parse(json);
    kv_string_free(json);
    assert_non_null(root);
    return root;
}

static void three_nodes_learn_each_other(void **state)
{
    daemon *first = *state;
    daemon d[3];
    char peers[256];
    for (int i = 0; i < 3; i++) {
        d[i] = *first;
        d[i].pid = 0;
        d[i].dir = i == 0 ? first->dir : test_tempdir();
        if (i > 0) {
            snprintf(d[i].listen, sizeof d[i].listen, "127.0.0.1:%d", free_port());
            snprintf(d[i].http, sizeof d[i].http, "127.0.0.1:%d", free_port());
            snprintf(d[i].log_path, sizeof d[i].log_path, "%s.log", d[i].dir);
        }
    }
    snprintf(peers, sizeof peers, "%s,%s,%s", d[0].listen, d[1].listen, d[2].listen);
    const char *const a0[] = {"--peers", peers, "--node-id", "n1", NULL};
    const char *const a1[] = {"--peers", peers, "--node-id", "n2", NULL};
    const char *const a2[] = {"--peers", peers, "--node-id", "n3", NULL};
    start(&d[0], a0);
    first->pid = d[0].pid; /* the teardown stops it, should an assertion fail */
    start(&d[1], a1);
    g_others[0] = d[1].pid;

    /* n3 is not up: its id is unknown and there is no ring yet. */
    cJSON *root = describe_of(&d[0]);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(root, "complete")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(root, "members")), 3);
    cJSON_Delete(root);

    start(&d[2], a2);
    g_others[1] = d[2].pid;
    int complete = 0;
    for (int i = 0; i < 100 && !complete; i++) {
        root = describe_of(&d[1]);
        complete = cJSON_IsTrue(cJSON_GetObjectItem(root, "complete"));
        if (!complete) {
            cJSON_Delete(root);
            sleep_ms(100);
        }
    }
    assert_true(complete);
    /* Every member known by id, the ring shares adding up. */
    const cJSON *m;
    int seen[3] = {0};
    double primary = 0;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(root, "members")) {
        const char *id = cJSON_GetObjectItem(m, "nodeId")->valuestring;
        assert_true(id[0] == 'n' && id[1] >= '1' && id[1] <= '3' && id[2] == 0);
        seen[id[1] - '1']++;
        primary += cJSON_GetObjectItem(m, "primaryShare")->valuedouble;
        /* N = 3 with three members: each holds every key. */
        assert_true(cJSON_GetObjectItem(m, "replicaShare")->valuedouble > 0.999);
    }
    assert_true(primary > 0.999 && primary < 1.001);
    assert_true(seen[0] == 1 && seen[1] == 1 && seen[2] == 1);
    cJSON_Delete(root);
    /* The same over HTTP, with member ids as JSON strings. */
    body b;
    assert_int_equal(http(&d[2], "GET", "/v1/cluster", NULL, &b), 200);
    assert_non_null(strstr(b.data, "\"nodeId\":\"n1\""));
    assert_non_null(strstr(b.data, "\"complete\":true"));
    assert_non_null(strstr(b.data, "\"replicas\":3,\"replicationFactor\":3,"));

    /* A clean stop is news for the others' logs, once: once n1's gossip
     * has heard of n2 (before, n2 has nobody to tell). */
    int heard = 0;
    for (int i = 0; i < 100 && !heard; i++) {
        root = describe_of(&d[0]);
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(root, "members")) {
            const cJSON *id = cJSON_GetObjectItem(m, "nodeId");
            const cJSON *st = cJSON_GetObjectItem(m, "status");
            heard |= cJSON_IsString(id) && strcmp(id->valuestring, "n2") == 0 &&
                     cJSON_IsString(st) && strcmp(st->valuestring, "up") == 0;
        }
        cJSON_Delete(root);
        if (!heard)
            sleep_ms(100);
    }
    assert_true(heard);
    stop(&d[1], SIGTERM);
    g_others[0] = 0;
    int told = 0;
    for (int i = 0; i < 100 && !told; i++) {
        told = log_contains(&d[0], "member n2 announced a clean stop");
        if (!told)
            sleep_ms(100);
    }
    assert_true(told);
    for (int i = 1; i < 3; i++) {
        stop(&d[i], SIGTERM);
        unlink(d[i].log_path);
        test_rmtree(d[i].dir);
    }
    g_others[0] = g_others[1] = 0;
    first->pid = d[0].pid;
}

static void bad_cluster_flags(void **state)
{
    daemon *d = *state;
    const char *const empty_peer[] = {"--listen", d->listen, "--peers", "a:1,", NULL};
    assert_int_equal(run_to_exit(d, empty_peer, 1), 2);
    const char *const bad_peer[] = {"--listen", d->listen, "--peers", "nowhere", NULL};
    assert_int_equal(run_to_exit(d, bad_peer, 1), 1);
    assert_true(log_contains(d, "peer 1"));
    const char *const zero[] = {"--listen", d->listen, "--replicas", "0", NULL};
    assert_int_equal(run_to_exit(d, zero, 1), 2);
    const char *const many[] = {"--listen", d->listen, "--vnodes", "5000", NULL};
    assert_int_equal(run_to_exit(d, many, 1), 2);
    const char *const no_window[] = {"--listen", d->listen, "--hint-window", "0", NULL};
    assert_int_equal(run_to_exit(d, no_window, 1), 2);
    const char *const no_rate[] = {"--listen", d->listen, "--handoff-rate", "x", NULL};
    assert_int_equal(run_to_exit(d, no_rate, 1), 2);
    const char *const no_pause[] = {"--listen", d->listen, "--failure-pause", "0", NULL};
    assert_int_equal(run_to_exit(d, no_pause, 1), 2);
    const char *const long_pause[] = {"--listen", d->listen, "--failure-pause", "600001", NULL};
    assert_int_equal(run_to_exit(d, long_pause, 1), 2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        T(serves_both_protocols),
        T(kill9_under_load_then_restart),
        T(sigterm_stops_cleanly),
        T(bad_flags_and_busy_ports),
        T(config_file_works),
        T(three_nodes_learn_each_other),
        T(bad_cluster_flags),
    };
    int rc = cmocka_run_group_tests_name("integration.kvd", tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
