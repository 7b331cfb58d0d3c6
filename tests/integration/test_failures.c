/* Surviving failures (issue 5), with five real kvd processes: a node killed
 * under a QUORUM write load, a network partition {n1,n2} | {n3,n4,n5}
 * under load with sloppy quorum, and a node paused with SIGSTOP.
 *
 * The test runs in a network namespace of its own (ctest starts it through
 * tests/integration/in_netns.sh, i.e. `unshare -n`), where node i listens
 * on 127.0.0.(11+i) and connects from that address, so nft rules on the
 * namespace's loopback can cut the cluster in two. The test's own requests
 * come from 127.0.0.1, on neither side.
 *
 * No timing assertions: waits are bounded polls for a state. The figures
 * (writes acknowledged, writes lost, time to detect, time until the hints
 * drain) are printed. The path of kvd comes from the KVD environment
 * variable. */
#include <curl/curl.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "net/client.h"
#include "cluster/coordinator.h"
#include "format/state.h"
#include "helpers.h"
#include "integration/http_client.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"
#include <kv/kv.h>

#define NODES 5
#define BINARY_PORT 7400
#define HTTP_PORT 8080
#define INTERNODE_TIMEOUT_MS 1000
/* The failure detector's acceptable pause (kvd --failure-pause). A
 * sanitizer build runs every process several times slower, five kvd and
 * the load on two cores, so the test sets the pause for that slower
 * machine, as a deployment on one would; other builds keep the default. */
#ifdef KV_TEST_SANITIZED
#define FAILURE_PAUSE "3000"
#else
#define FAILURE_PAUSE "2000"
#endif
#define MAX_KEYS 200000

typedef struct node {
    pid_t pid;
    char *dir;
    char id[16];
    char ip[32];
    char listen[64];
    char http[64];
    char log_path[600];
} node;

typedef struct cluster {
    node nodes[NODES];
    char peers[512];
    const char *policy;
} cluster;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void spawn(cluster *c, int i)
{
    node *d = &c->nodes[i];
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", INTERNODE_TIMEOUT_MS);
    const char *argv[] = {kvd_path(), "--data", d->dir, "--listen", d->listen,
                          "--http", d->http, "--node-id", d->id, "--peers", c->peers,
                          "--policy", c->policy, "--internode-timeout", timeout,
                          "--failure-pause", FAILURE_PAUSE, NULL};
    pid_t pid = kvd_spawn(argv, d->log_path);
    assert_true(pid > 0);
    d->pid = pid;
}

/* Stops node i with sig and reaps it; a node that does not exit within
 * 15 s is a failure (a hang in shutdown), not a stuck test. */
static void stop(cluster *c, int i, int sig)
{
    node *d = &c->nodes[i];
    if (d->pid <= 0)
        return;
    if (sig == SIGSTOP) {
        if (!kvd_pause(d->pid))
            fail_msg("%s did not stop within 10 s of SIGSTOP", d->id);
        return;
    }
    int exited = kvd_stop(d->pid, sig);
    d->pid = 0;
    if (!exited)
        fail_msg("%s did not exit within 15 s of signal %d (log: %s)", d->id, sig, d->log_path);
}

/* How node `viewer` sees node `subject` ("up", "down", ...), from GET
 * /v1/cluster; "" when it does not answer. */
static void status_of(const cluster *c, int viewer, int subject, char *out, size_t cap)
{
    body b;
    out[0] = 0;
    if (http_request(c->nodes[viewer].http, "GET", "/v1/cluster", NULL, &b, 2000) != 200)
        return;
    char needle[64];
    snprintf(needle, sizeof needle, "\"nodeId\":\"%s\"", c->nodes[subject].id);
    const char *p = strstr(b.data, needle);
    const char *s = p ? strstr(p, "\"status\":\"") : NULL;
    if (!s)
        return;
    s += strlen("\"status\":\"");
    size_t n = 0;
    while (s[n] && s[n] != '"' && n + 1 < cap) {
        out[n] = s[n];
        n++;
    }
    out[n] = 0;
}

/* Waits (bounded by limit_ms) until every node in `viewers` (a bitmask)
 * sees `subject` with status `want`; returns the ms it took, or -1. */
static long wait_status(const cluster *c, unsigned viewers, int subject, const char *want,
                        long limit_ms)
{
    uint64_t start = now_ms();
    while ((long)(now_ms() - start) < limit_ms) {
        int all = 1;
        for (int v = 0; v < NODES && all; v++) {
            if (!(viewers & (1u << v)))
                continue;
            char st[32];
            status_of(c, v, subject, st, sizeof st);
            all = strcmp(st, want) == 0;
        }
        if (all)
            return (long)(now_ms() - start);
        sleep_ms(100);
    }
    return -1;
}

static cluster *make_cluster(const char *policy)
{
    cluster *c = calloc(1, sizeof *c);
    c->policy = policy;
    for (int i = 0; i < NODES; i++) {
        node *d = &c->nodes[i];
        d->dir = test_tempdir();
        snprintf(d->id, sizeof d->id, "n%d", i + 1);
        char ip[32];
        snprintf(ip, sizeof ip, "127.0.0.%d", 11 + i);
        memcpy(d->ip, ip, sizeof ip);
        snprintf(d->listen, sizeof d->listen, "%s:%d", ip, BINARY_PORT);
        snprintf(d->http, sizeof d->http, "%s:%d", ip, HTTP_PORT);
        snprintf(d->log_path, sizeof d->log_path, "%s.log", d->dir);
        if (i)
            strcat(c->peers, ",");
        strcat(c->peers, d->listen);
    }
    for (int i = 0; i < NODES; i++)
        spawn(c, i);
    /* Serving once every node sees every other up. */
    for (int s = 0; s < NODES; s++)
        assert_true(wait_status(c, ((1u << NODES) - 1u) & ~(1u << s), s, "up", 30000) >= 0);
    return c;
}

static int setup_lww(void **state)
{
    *state = make_cluster("lww");
    return 0;
}

static int setup_siblings(void **state)
{
    *state = make_cluster("siblings");
    return 0;
}

static void heal(void)
{
    if (system("nft delete table inet kvtest 2>/dev/null") != 0) {
        /* Nothing to delete. */
    }
}

static int teardown(void **state)
{
    cluster *c = *state;
    heal();
    for (int i = 0; i < NODES; i++) {
        if (c->nodes[i].pid > 0)
            kill(c->nodes[i].pid, SIGCONT);
        stop(c, i, SIGKILL);
        if (getenv("KV_TEST_KEEP_LOGS"))
            print_message("kept %s\n", c->nodes[i].log_path);
        else
            unlink(c->nodes[i].log_path);
        test_rmtree(c->nodes[i].dir);
    }
    free(c);
    return 0;
}

/* Drops all traffic between the nodes in mask_a and those in mask_b. */
static void partition(const cluster *c, unsigned mask_a, unsigned mask_b)
{
    char a[256] = "", b[256] = "", cmd[2048];
    for (int i = 0; i < NODES; i++) {
        char *set = (mask_a & (1u << i)) ? a : (mask_b & (1u << i)) ? b : NULL;
        if (!set)
            continue;
        if (*set)
            strcat(set, ", ");
        strcat(set, c->nodes[i].ip);
    }
    snprintf(cmd, sizeof cmd,
             "nft add table inet kvtest && "
             "nft add chain inet kvtest out '{ type filter hook output priority 0; }' && "
             "nft add rule inet kvtest out ip saddr '{ %s }' ip daddr '{ %s }' drop && "
             "nft add rule inet kvtest out ip saddr '{ %s }' ip daddr '{ %s }' drop",
             a, b, b, a);
    assert_int_equal(system(cmd), 0);
}

/* A metric's value from node i's GET /metrics; -1 when it cannot be read. */
/* Sends node i a HINT request with the given parts (or raw body bytes when
 * raw is set); returns the status it answered. */
static int send_hint(const cluster *c, int i, const char *key, const void *state,
                     size_t state_len, const char *target, const void *raw, size_t raw_len)
{
    const char *eps[] = {c->nodes[i].listen};
    kvi_client *cl = NULL;
    assert_int_equal(kvi_client_open(&cl, eps, 1, NULL, NULL), KV_OK);
    kvi_fanout fo;
    kvi_fanout_init(&fo);
    kvi_request req = {.opcode = KVI_OP_HINT,
                       .key = {(const unsigned char *)key, strlen(key)},
                       .value = {state, state_len},
                       .context = {(const unsigned char *)target, strlen(target)}};
    kvi_call *call = raw ? kvi_call_start_raw(cl, &fo, KVI_OP_HINT, raw, raw_len, 0, 1)
                         : kvi_call_start(cl, &fo, &req, 0, 1);
    struct timespec deadline = kvi_deadline_after(5000);
    kvi_fanout_wait(&fo, 1, 1, &deadline);
    kvi_frame_header h;
    unsigned char *resp_body = NULL;
    int rc = kvi_call_finish(call, &h, &resp_body);
    if (rc == KV_OK) {
        kvi_response resp;
        rc = kvi_call_decode(&resp, KVI_OP_HINT, &h, resp_body);
    }
    free(resp_body);
    kvi_fanout_destroy(&fo);
    kvi_client_close(cl);
    return rc;
}

static double metric(const cluster *c, int i, const char *name)
{
    char *all = http_get_all(c->nodes[i].http, "/metrics", 2000);
    if (!all)
        return -1;
    char needle[128];
    snprintf(needle, sizeof needle, "\n%s ", name);
    const char *p = strstr(all, needle);
    double value = p ? strtod(p + strlen(needle), NULL) : -1;
    free(all);
    return value;
}

/* Waits (bounded) until no node holds a hint; returns the ms it took, or
 * -1. */
static long wait_hints_drained(const cluster *c, long limit_ms)
{
    uint64_t start = now_ms();
    while ((long)(now_ms() - start) < limit_ms) {
        int pending = 0;
        for (int i = 0; i < NODES; i++)
            if (c->nodes[i].pid > 0)
                pending |= metric(c, i, "kv_hints_pending") != 0;
        if (!pending)
            return (long)(now_ms() - start);
        sleep_ms(200);
    }
    return -1;
}

/* ------------------------------------------------------------- the load */

typedef struct load {
    const cluster *c;
    int via;              /* HTTP through this node; -1: a binary client */
    kv *db;               /* the binary client */
    char prefix[16];
    volatile int stop;
    unsigned attempted, acked, failed;
    unsigned long worst_ms;
    char (*keys)[32];     /* acknowledged keys; the value is the key */
} load;

static int put_http(const cluster *c, int via, const char *key, const char *value,
                    const char *query)
{
    char path[128], json[128];
    snprintf(path, sizeof path, "/v1/kv/%s?consistency=quorum%s", key, query ? query : "");
    snprintf(json, sizeof json, "{\"value\":\"%s\"}", value);
    body b;
    long st = http_request(c->nodes[via].http, "PUT", path, json, &b, 15000);
    if (st != 200 && st != 201 && query)
        print_message("PUT %s via %s: HTTP %ld %s\n", path, c->nodes[via].id, st, b.data);
    return st == 200 || st == 201;
}

static void *run_load(void *arg)
{
    load *l = arg;
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = KV_CONSISTENCY_QUORUM;
    for (unsigned i = 0; !l->stop && l->attempted < MAX_KEYS; i++) {
        char key[32];
        snprintf(key, sizeof key, "%s-%u", l->prefix, i);
        uint64_t t0 = now_ms();
        int ok = l->via >= 0 ? put_http(l->c, l->via, key, key, NULL)
                             : kv_put(NULL, l->db, key, strlen(key), key, strlen(key), &wo) == KV_OK;
        unsigned long took = (unsigned long)(now_ms() - t0);
        if (took > l->worst_ms)
            l->worst_ms = took;
        l->attempted++;
        if (ok)
            memcpy(l->keys[l->acked++], key, sizeof key);
        else
            l->failed++;
    }
    return NULL;
}

static void load_start(load *l, pthread_t *t, const cluster *c, int via, kv *db,
                       const char *prefix)
{
    memset(l, 0, sizeof *l);
    l->c = c;
    l->via = via;
    l->db = db;
    snprintf(l->prefix, sizeof l->prefix, "%s", prefix);
    l->keys = calloc(MAX_KEYS, sizeof *l->keys);
    assert_non_null(l->keys);
    assert_int_equal(pthread_create(t, NULL, run_load, l), 0);
}

static kv *client_all(const cluster *c)
{
    const char *eps[NODES];
    for (int i = 0; i < NODES; i++)
        eps[i] = c->nodes[i].listen;
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 5000;
    co.connect_timeout_ms = 500;
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, NODES, &co), KV_OK);
    return db;
}

/* What node i alone holds for key: 1 the value, 0 not there, -1 it is not a
 * replica of the key, -2 no answer. */
static int held_by(const cluster *c, int i, const char *key, const char *value)
{
    const char *eps[] = {c->nodes[i].listen};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    kvi_client *cl = NULL;
    if (kvi_client_open(&cl, eps, 1, &co, NULL) != KV_OK)
        return -2;
    kvi_state st;
    kvi_buf holder = {0};
    int rc = kvi_client_get_state(cl, &st, &holder, key, strlen(key));
    int found = -2;
    if (rc == KVI_ENOT_REPLICA)
        found = -1;
    else if (rc == KV_ENOTFOUND)
        found = 0;
    else if (rc == KV_OK) {
        found = 0;
        for (size_t s = 0; s < st.n; s++)
            found |= st.sibs[s].value_len == strlen(value) &&
                     memcmp(st.sibs[s].value, value, st.sibs[s].value_len) == 0;
    }
    kvi_buf_free(&holder);
    kvi_client_close(cl);
    return found;
}

/* Prints what node i's failure detector logged (members held down and up
 * again), and counts the members it held down: those named `id`, and all
 * others. The log names each member, where the metric only counts. */
static void read_verdicts(const cluster *c, int i, const char *id, unsigned *of_id,
                          unsigned *of_others)
{
    *of_id = *of_others = 0;
    FILE *f = fopen(c->nodes[i].log_path, "r");
    if (!f)
        return;
    char line[512], named[64];
    snprintf(named, sizeof named, "member %s is now held down", id);
    while (fgets(line, sizeof line, f)) {
        if (!strstr(line, "held down") && !strstr(line, "up again"))
            continue;
        print_message("%s log: %s", c->nodes[i].id, line);
        if (strstr(line, named))
            (*of_id)++;
        else if (strstr(line, "is now held down"))
            (*of_others)++;
    }
    fclose(f);
}

/* ---------------------------------------------------------------- tests */

/* Five nodes under a QUORUM write load; n3 is killed with SIGKILL. Writes
 * keep succeeding; once n3 is back, every write it missed reaches it (by
 * hinted handoff: checked on n3 alone) and no node holds hints. */
static void test_kill9_under_load_then_handoff(void **state)
{
    cluster *c = *state;
    const int victim = 2;
    kv *db = client_all(c);
    load l;
    pthread_t t;
    load_start(&l, &t, c, -1, db, "k9");
    /* A key n3 is a home replica of, for the consistency checks below. */
    char probe[32] = "";
    for (int i = 0; i < 1000 && !probe[0]; i++) {
        char key[32];
        snprintf(key, sizeof key, "probe-%d", i);
        if (held_by(c, victim, key, "") == 0)
            memcpy(probe, key, sizeof key);
    }
    assert_true(probe[0] != 0);
    sleep_ms(1500);
    unsigned before = l.acked;
    stop(c, victim, SIGKILL);
    long detect = wait_status(c, 0x1bu, victim, "down", 30000);
    /* With a home down, ALL is met by a stand-in, unless the write asks
     * for home replicas only. */
    kv_write_options all = KV_WRITE_OPTIONS_INIT;
    all.consistency = KV_CONSISTENCY_ALL;
    assert_int_equal(kv_put(NULL, db, probe, strlen(probe), "all", 3, &all), KV_OK);
    all.home_only = 1;
    assert_int_equal(kv_put(NULL, db, probe, strlen(probe), "home", 4, &all), KV_EUNAVAILABLE);
    char path[96];
    body hb;
    snprintf(path, sizeof path, "/v1/kv/%s?consistency=all&homeOnly=true", probe);
    assert_int_equal(http_request(c->nodes[0].http, "PUT", path, "{\"value\":\"h\"}", &hb,
                                  15000), 503);
    snprintf(path, sizeof path, "/v1/kv/%s?consistency=all", probe);
    assert_int_equal(http_request(c->nodes[0].http, "PUT", path, "{\"value\":\"s\"}", &hb,
                                  15000), 200);
    sleep_ms(3000);
    unsigned during_attempted = l.attempted;
    unsigned during_failed = l.failed;
    sleep_ms(3000);
    l.stop = 1;
    pthread_join(t, NULL);
    unsigned after_detect_attempts = l.attempted - during_attempted;
    unsigned after_detect_failures = l.failed - during_failed;

    spawn(c, victim);
    uint64_t restarted = now_ms();
    assert_true(wait_status(c, 0x1bu, victim, "up", 30000) >= 0);
    uint64_t seen_up = now_ms() - restarted;
    long drain = wait_hints_drained(c, 120000);

    /* Little flapping: each survivor held the victim down (once, or twice
     * if it saw the restarted node late), and a healthy member at most once
     * (seen in CI: a kill under this load delayed one member's gossip
     * enough for one survivor to hold it down for a second). */
    double suspicions[NODES] = {0};
    unsigned of_victim[NODES] = {0}, of_others[NODES] = {0};
    for (int i = 0; i < NODES; i++) {
        if (i == victim)
            continue;
        suspicions[i] = metric(c, i, "kv_failure_suspicions_total");
        read_verdicts(c, i, c->nodes[victim].id, &of_victim[i], &of_others[i]);
    }
    print_message("kill -9: failure-detector suspicions per node: %.0f %.0f %.0f %.0f %.0f\n",
                  suspicions[0], suspicions[1], suspicions[2], suspicions[3], suspicions[4]);
    unsigned on_victim = 0, missing = 0;
    for (unsigned i = 0; i < l.acked; i++) {
        int h = held_by(c, victim, l.keys[i], l.keys[i]);
        on_victim += h == 1;
        missing += h == 0 || h == -2;
        if (h == 0 && missing <= 3)
            print_message("missing on n3: %s\n", l.keys[i]);
    }
    print_message("kill -9: %u writes acknowledged (%u before the kill), %u failed of %u "
                  "attempted; n3 held down after %ld ms; after that %u "
                  "failed of %u; hints drained %ld ms after the restart (restart took "
                  "%llu ms to be seen up); %u of the acknowledged keys belong on n3, %u of "
                  "them missing there (lost: must be 0)\n",
                  l.acked, before, l.failed, l.attempted, detect, after_detect_failures,
                  after_detect_attempts, drain,
                  (unsigned long long)seen_up, on_victim + missing, missing);
    assert_true(detect >= 0);
    assert_true(drain >= 0);
    /* Every survivor suspected the victim, and a healthy member at most
     * once; the metric counts what the log names. */
    for (int i = 0; i < NODES; i++) {
        if (i == victim)
            continue;
        assert_true(of_others[i] <= 1);
        assert_true(of_victim[i] >= 1 && of_victim[i] <= 2);
        assert_true(suspicions[i] == of_victim[i] + of_others[i]);
    }
    assert_int_equal(missing, 0);
    assert_true(on_victim > 0);
    assert_true(l.acked > before);
    /* Once n3 is known down, writes keep succeeding. */
    assert_int_equal(after_detect_failures, 0);
    kv_close(db);
    free(l.keys);
}

/* {n1,n2} | {n3,n4,n5} for 20 s under a QUORUM load through each side
 * (HTTP to n1 and to n3), with sloppy quorum. Each side takes the writes
 * it can; after healing and handoff, every acknowledged write is readable
 * at QUORUM, and one key written on both sides comes back as two siblings
 * (SIBLINGS) and as the later write (LWW). */
static void test_partition_sloppy_quorum(void **state)
{
    cluster *c = *state;
    load a, b;
    pthread_t ta, tb;
    load_start(&a, &ta, c, 0, NULL, "pa");
    load_start(&b, &tb, c, 2, NULL, "pb");
    sleep_ms(1000);
    partition(c, 0x03u, 0x1cu);
    uint64_t cut = now_ms();
    /* Each side holds the other down. */
    long detect = wait_status(c, 0x03u, 2, "down", 30000);
    assert_true(detect >= 0);
    /* Then every member of each side holds every member of the other
     * down, so the writes below go to stand-ins at once rather than
     * waiting out a member not yet known to be cut off. */
    for (int i = 0; i < NODES; i++)
        assert_true(wait_status(c, i < 2 ? 0x1cu : 0x03u, i, "down", 30000) >= 0);
    /* And holds the members of its own side up: while a side's members
     * gossip into the cut, a round can wait out a member of the other side
     * and a member of its own can look down for a while (seen in CI: n1
     * and n2 held each other down for 9 s, refusing every write of side
     * A). Once the other side is held down they gossip with each other
     * alone, and that is over. */
    for (int i = 0; i < NODES; i++) {
        unsigned side = i < 2 ? 0x03u : 0x1cu;
        assert_true(wait_status(c, side & ~(1u << i), i, "up", 30000) >= 0);
    }
    /* One key written on both sides, under each policy; the B side writes
     * last, so under LWW its value wins. That holds only if side A's write
     * succeeded at its first try: a try that failed (timed out) may still
     * be applied later, and then it is the later write. So the LWW pair is
     * tried on fresh keys until side A's write takes at once. */
    int sib_a = 0, sib_b = 0, lww_a = 0, lww_b = 0;
    for (int tries = 0; tries < 20 && !sib_a; tries++)
        sib_a = put_http(c, 0, "both-sides", "from-a", NULL);
    for (int tries = 0; tries < 20 && !sib_b; tries++)
        sib_b = put_http(c, 2, "both-sides", "from-b", NULL);
    char lww_key[32] = "";
    for (int pair = 0; pair < 10 && !lww_a; pair++) {
        snprintf(lww_key, sizeof lww_key, "both-lww-%d", pair);
        lww_a = put_http(c, 0, lww_key, "lww-a", "&policy=lww");
        if (!lww_a) {
            print_message("partition: side A's LWW write to %s failed; trying a fresh key\n",
                          lww_key);
            /* A refusal is immediate; spread the tries over a few seconds
             * so that a passing moment (seen under stress: n1 briefly
             * finding n2 unreachable, refusing a few writes of the load
             * too) does not use them all up. */
            sleep_ms(500);
        }
    }
    sleep_ms(50);
    for (int tries = 0; tries < 20 && lww_a && !lww_b; tries++)
        lww_b = put_http(c, 2, lww_key, "lww-b", "&policy=lww");
    while (now_ms() - cut < 20000)
        sleep_ms(100);
    unsigned a_during = a.acked, b_during = b.acked;
    double sloppy = 0;
    for (int i = 0; i < NODES; i++)
        sloppy += metric(c, i, "kv_sloppy_writes_total");
    heal();
    uint64_t healed = now_ms();
    sleep_ms(1000);
    a.stop = b.stop = 1;
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_true(wait_status(c, 0x03u, 2, "up", 30000) >= 0);
    long drain = wait_hints_drained(c, 120000);

    /* Every acknowledged write, read at QUORUM (through n2, a node of the
     * smaller side). */
    unsigned lost = 0;
    load *loads[] = {&a, &b};
    for (int s = 0; s < 2; s++) {
        for (unsigned i = 0; i < loads[s]->acked; i++) {
            char path[96], want[64];
            snprintf(path, sizeof path, "/v1/kv/%s?consistency=quorum", loads[s]->keys[i]);
            snprintf(want, sizeof want, "\"value\":\"%s\"", loads[s]->keys[i]);
            body r;
            long st = http_request(c->nodes[1].http, "GET", path, NULL, &r, 15000);
            if (st != 200 || !strstr(r.data, want)) {
                if (++lost <= 3)
                    print_message("lost: %s (HTTP %ld %s)\n", loads[s]->keys[i], st, r.data);
            }
        }
    }
    body sib, lww;
    long sib_status = http_request(c->nodes[4].http, "GET", "/v1/kv/both-sides?consistency=quorum",
                                   NULL, &sib, 15000);
    char lww_path[96];
    snprintf(lww_path, sizeof lww_path, "/v1/kv/%s?consistency=quorum&policy=lww", lww_key);
    long lww_status = http_request(c->nodes[4].http, "GET", lww_path, NULL, &lww, 15000);
    print_message("partition 20 s: side A took %u of %u writes (%u during the cut), side B "
                  "%u of %u (%u during); %.0f acknowledged by stand-ins; detected in %ld ms; "
                  "hints drained %ld ms after healing (+%llu ms); lost: %u (must be 0); "
                  "both sides' key: HTTP %ld %s; LWW key: HTTP %ld %s\n",
                  a.acked, a.attempted, a_during, b.acked, b.attempted, b_during, sloppy,
                  detect, drain, (unsigned long long)(now_ms() - healed), lost, sib_status,
                  sib.data, lww_status, lww.data);
    /* What the two members of the smaller side concluded, for the record
     * (a write refused there with "1 of 3 replicas reachable" would show
     * whether one held the other down). */
    unsigned held_named, held_others;
    read_verdicts(c, 0, c->nodes[1].id, &held_named, &held_others);
    read_verdicts(c, 1, c->nodes[0].id, &held_named, &held_others);
    assert_true(sib_a && sib_b && lww_a && lww_b);
    assert_true(drain >= 0);
    assert_int_equal(lost, 0);
    assert_true(a.acked > 0 && b.acked > 0);
    assert_true(sloppy > 0);
    assert_int_equal(sib_status, 300);
    assert_non_null(strstr(sib.data, "from-a"));
    assert_non_null(strstr(sib.data, "from-b"));
    assert_int_equal(lww_status, 200);
    assert_non_null(strstr(lww.data, "\"value\":\"lww-b\""));
    free(a.keys);
    free(b.keys);
}

/* n4 paused with SIGSTOP for 15 s under load: it is held down, no request
 * waits past its timeout, and it is up again after SIGCONT. */
static void test_sigstop_15s(void **state)
{
    cluster *c = *state;
    const int victim = 3;
    kv *db = client_all(c);
    load l;
    pthread_t t;
    load_start(&l, &t, c, -1, db, "ss");
    sleep_ms(1000);
    stop(c, victim, SIGSTOP);
    uint64_t paused = now_ms();
    long detect = wait_status(c, 0x17u, victim, "down", 30000);
    while (now_ms() - paused < 15000)
        sleep_ms(100);
    kill(c->nodes[victim].pid, SIGCONT);
    long back = wait_status(c, 0x17u, victim, "up", 30000);
    l.stop = 1;
    pthread_join(t, NULL);
    long drain = wait_hints_drained(c, 120000);
    /* The paused node heard nothing for 15 s, but the silence was its own:
     * it must not hold the others down for it. */
    double paused_suspicions = metric(c, victim, "kv_failure_suspicions_total");
    unsigned of_self = 0, of_others = 0;
    read_verdicts(c, victim, c->nodes[victim].id, &of_self, &of_others);
    print_message("SIGSTOP 15 s: held down after %ld ms; up %ld ms after SIGCONT; %u of %u "
                  "writes acknowledged, %u failed; the slowest took %lu ms (client timeout "
                  "5000 ms); hints drained after %ld ms; the paused node held %.0f members "
                  "down after it resumed\n",
                  detect, back, l.acked, l.attempted, l.failed, l.worst_ms, drain,
                  paused_suspicions);
    assert_true(detect >= 0);
    assert_true(back >= 0);
    assert_true(drain >= 0);
    assert_true(paused_suspicions == 0);
    assert_int_equal(of_others, 0);
    /* Nothing hangs: each request ends by its timeout (5 s), give or take
     * a scheduling delay on a busy machine. */
    assert_true(l.worst_ms < 5000 + 1000);
    assert_true(l.acked > 0);
    kv_close(db);
    free(l.keys);
}

/* A node refuses malformed hints (no target, a damaged state, a truncated
 * body) with KV_EINVAL, keeps none of them, and keeps serving. */
static void test_malformed_hints_refused(void **state)
{
    cluster *c = *state;
    assert_int_equal(send_hint(c, 0, "k", "garbage", 7, "n2", NULL, 0), KV_EINVAL);
    assert_int_equal(send_hint(c, 0, "k", "garbage", 7, "", NULL, 0), KV_EINVAL);
    assert_int_equal(send_hint(c, 0, "", "garbage", 7, "n2", NULL, 0), KV_EINVAL);
    static const unsigned char truncated[] = {0, 0, 0, 9, 'k'};
    assert_int_equal(send_hint(c, 0, "", NULL, 0, "", truncated, sizeof truncated), KV_EINVAL);
    assert_int_equal(send_hint(c, 0, "", NULL, 0, "", NULL, 0), KV_EINVAL);
    assert_true(metric(c, 0, "kv_hints_pending") == 0);
    assert_true(put_http(c, 0, "after-bad-hints", "ok", NULL));
    /* The HTTP parameters of this issue: bad values are 400, and nothing
     * is written; good ones work, in any case. */
    body b;
    assert_int_equal(http_request(c->nodes[0].http, "PUT", "/v1/kv/p?policy=newest",
                                  "{\"value\":\"x\"}", &b, 15000), 400);
    assert_int_equal(http_request(c->nodes[0].http, "PUT", "/v1/kv/p?homeOnly=2",
                                  "{\"value\":\"x\"}", &b, 15000), 400);
    assert_int_equal(http_request(c->nodes[0].http, "GET", "/v1/kv/p", NULL, &b, 15000), 404);
    assert_true(put_http(c, 0, "p", "y", "&policy=LWW&homeOnly=false"));
    assert_int_equal(http_request(c->nodes[0].http, "GET", "/v1/kv/p?policy=siblings", NULL, &b,
                                  15000), 200);
    assert_non_null(strstr(b.data, "\"value\":\"y\""));
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* KV_TEST_FILTER=test_sigstop_15s runs one test alone. */
    if (getenv("KV_TEST_FILTER"))
        cmocka_set_test_filter(getenv("KV_TEST_FILTER"));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_kill9_under_load_then_handoff, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(test_partition_sloppy_quorum, setup_siblings, teardown),
        cmocka_unit_test_setup_teardown(test_sigstop_15s, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_hints_refused, setup_lww, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
