/* Topology changes on real kvd processes (docs/design/TOPOLOGY.md):
 *   - a fourth node joins three holding data, under a background load of
 *     QUORUM writes and reads: it streams its ranges in and checks them by
 *     anti-entropy against their other homes, no request fails,
 *     no acknowledged write is lost, and afterwards it holds every key it
 *     is a home of (asked directly);
 *   - a joining node killed -9 half-way resumes its stream where it
 *     stopped rather than from the start;
 *   - one of four decommissions under the same load: every key ends on its
 *     three new homes, nothing acknowledged is lost; a second change asked
 *     for meanwhile is refused, naming the first;
 *   - one of four killed for good is removed: the others re-replicate its
 *     ranges from the surviving replicas;
 *   - one of four killed and its data directory deleted is replaced by a
 *     new process (kvd --replace) on another address, under load: it
 *     streams and repairs its ranges from the survivors, answers no read
 *     meanwhile, then holds every key it is a home of;
 *   - with the topology in a real etcd (kvd --metadata): a fourth node
 *     joins under load while etcd is killed and started again (the cluster
 *     serves meanwhile, changes are refused saying why, the join waits and
 *     then goes through), and two changes asked of two members at the same
 *     moment: one is recorded, the other refused. */
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
#include "cluster/ring.h"
#include "format/record.h"
#include "format/state.h"
#include "net/client.h"

#include "integration/cluster_harness.h"
#include "integration/http_client.h"
#include "integration/etcd_process.h"

#ifdef KV_TEST_SANITIZED
#define KEYS 1500
#define SLOW_RATE "8192" /* bytes/s: the stream of a tenth of the keys lasts as long */
#else
#define KEYS 12000
#define SLOW_RATE "65536"
#endif

static int setup_three(void **state)
{
    make_cluster(state, 3, "lww");
    return 0;
}

static void put_all(cluster *c, int n)
{
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    char key[32], value[64];
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = KV_CONSISTENCY_ALL;
    for (int k = 0; k < n; k++) {
        snprintf(key, sizeof key, "key-%d", k);
        snprintf(value, sizeof value, "value-%d-%040d", k, k);
        int rc = kv_put(NULL, db, key, strlen(key), value, strlen(value), &wo);
        if (rc != KV_OK)
            fail_msg("put %s: %s", key, kv_error_last());
    }
    kv_close(db);
}

/* 1 when node i holds a record with no change in progress in which
 * `normal` members are normal (and `gone`, when set, has left). */
static int settled_as(const cluster *c, int i, int normal, const char *gone)
{
    cJSON *root = described_by(c, i);
    if (!root)
        return 0;
    const cJSON *topo = cJSON_GetObjectItem(root, "topology");
    const cJSON *op = cJSON_GetObjectItem(topo, "operation");
    const cJSON *epoch = cJSON_GetObjectItem(topo, "epoch");
    const cJSON *routed = cJSON_GetObjectItem(topo, "viewEpoch");
    /* ... and routes its requests with that record already. */
    int ok = cJSON_IsNull(op) && cJSON_IsNumber(epoch) && cJSON_IsNumber(routed) &&
             epoch->valuedouble == routed->valuedouble;
    int seen = 0, left = !gone;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(root, "members")) {
        const cJSON *st = cJSON_GetObjectItem(m, "state");
        const cJSON *id = cJSON_GetObjectItem(m, "nodeId");
        seen += cJSON_IsString(st) && strcmp(st->valuestring, "normal") == 0;
        left |= gone && cJSON_IsString(id) && strcmp(id->valuestring, gone) == 0 &&
                cJSON_IsString(st) && strcmp(st->valuestring, "left") == 0;
    }
    cJSON_Delete(root);
    return ok && seen == normal && left;
}

/* 1 when node i's record has a change of that kind in progress. */
static int operation_is(const cluster *c, int i, const char *kind)
{
    cJSON *root = described_by(c, i);
    const cJSON *op = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "topology"), "operation");
    const cJSON *k = cJSON_GetObjectItem(op, "kind");
    int is = cJSON_IsString(k) && strcmp(k->valuestring, kind) == 0;
    cJSON_Delete(root);
    return is;
}

/* Waits (bounded) until every node of `asked` (a bit per node) is settled
 * as above. */
static int wait_settled_as(const cluster *c, unsigned asked, int normal, const char *gone,
                           long limit_ms)
{
    for (long waited = 0; waited <= limit_ms; waited += 200) {
        int all = 1;
        for (int i = 0; i < MAX_NODES && all; i++)
            all = !(asked & (1u << i)) || settled_as(c, i, normal, gone);
        if (all)
            return 1;
        sleep_ms(200);
    }
    /* Not settled: what each node says, for the failure's reader. */
    for (int i = 0; i < MAX_NODES; i++) {
        if (!(asked & (1u << i)) || settled_as(c, i, normal, gone))
            continue;
        cJSON *root = described_by(c, i);
        char *text = root ? cJSON_PrintUnformatted(root) : NULL;
        fprintf(stderr, "%s is not settled: %s\n", c->nodes[i].id, text ? text : "(no answer)");
        free(text);
        cJSON_Delete(root);
    }
    return 0;
}

static int wait_settled(const cluster *c, int n, long limit_ms)
{
    return wait_settled_as(c, (1u << n) - 1, n, NULL, limit_ms);
}

/* The line of node i's log that starts with `what` (the first or the
 * last), copied into out; 0 when there is none. */
static int log_line(const cluster *c, int i, const char *what, int last, char *out,
                    size_t size)
{
    FILE *f = fopen(c->nodes[i].log_path, "r");
    if (!f)
        return 0;
    char line[2048];
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        const char *at = strstr(line, what);
        if (at && (last || !found)) {
            snprintf(out, size, "%s", at);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/* The background load: QUORUM writes of fresh keys and reads of the keys
 * written before the join, counted. */
typedef struct load {
    cluster *c;
    volatile int stop;
    int written, reads, failed_writes, failed_reads, stale;
    /* A counter kept by SERIAL reads and CAS (one writer): increments
     * acknowledged, and those whose outcome is unknown or that failed. */
    int serial_ok, serial_unknown, serial_failed;
    char why[256], serial_why[256];
} load;

#define COUNTER_KEY "serial-counter"

/* The decimal number a value holds. */
static long number_in(const kv_value *v)
{
    size_t len;
    const char *data = kv_value_data(v, &len);
    char text[32] = "";
    memcpy(text, data, len < sizeof text - 1 ? len : sizeof text - 1);
    return strtol(text, NULL, 10);
}

/* One SERIAL increment of the counter: read it, CAS it one up. */
static void serial_increment(kv *db, load *l)
{
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_SERIAL;
    kv_value *v = NULL;
    int rc = kv_get(&v, db, COUNTER_KEY, strlen(COUNTER_KEY), &ro);
    long count = 0;
    uint64_t version = 0;
    if (rc == KV_OK) {
        count = number_in(v);
        version = kv_value_version(v);
        kv_value_free(v);
    } else if (rc != KV_ENOTFOUND) {
        if (!l->serial_failed++)
            snprintf(l->serial_why, sizeof l->serial_why, "get: %s", kv_error_last());
        return;
    }
    char next[32];
    snprintf(next, sizeof next, "%ld", count + 1);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = KV_CONSISTENCY_SERIAL;
    rc = kv_cas(NULL, db, COUNTER_KEY, strlen(COUNTER_KEY), version, next, strlen(next), &wo);
    if (rc == KV_OK)
        l->serial_ok++;
    else if (rc == KV_EUNKNOWN_OUTCOME || rc == KV_ETIMEDOUT)
        l->serial_unknown++;
    else if (!l->serial_failed++)
        snprintf(l->serial_why, sizeof l->serial_why, "cas: %s", kv_error_last());
}

/* The counter read at SERIAL holds every acknowledged increment, and at
 * most those whose outcome was unknown besides (none lost, none made up). */
static void check_serial(cluster *c, const load *l)
{
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_SERIAL;
    kv_value *v = NULL;
    int rc = kv_get(&v, db, COUNTER_KEY, strlen(COUNTER_KEY), &ro);
    long count = 0;
    if (rc == KV_OK) {
        count = number_in(v);
        kv_value_free(v);
    }
    kv_close(db);
    printf("SERIAL counter: %d increments acknowledged, %d unknown, %d failed%s%s%s; it reads "
           "%ld\n", l->serial_ok, l->serial_unknown, l->serial_failed,
           l->serial_why[0] ? " (first: " : "", l->serial_why, l->serial_why[0] ? ")" : "",
           count);
    assert_true(rc == KV_OK);
    assert_true(l->serial_ok > 0);
    assert_true(count >= l->serial_ok);
    assert_true(count <= l->serial_ok + l->serial_unknown);
}

static void *run_load(void *p)
{
    load *l = p;
    kv *db = client_all(l->c, KV_POLICY_LWW, NULL);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = KV_CONSISTENCY_QUORUM;
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_QUORUM;
    char key[32], value[64];
    for (int step = 0; !l->stop && step < 100000; step++) {
        snprintf(key, sizeof key, "live-%d", step);
        int rc = kv_put(NULL, db, key, strlen(key), key, strlen(key), &wo);
        if (rc == KV_OK) {
            l->written = step + 1;
        } else {
            if (!l->failed_writes++)
                snprintf(l->why, sizeof l->why, "put %s: %s", key, kv_error_last());
            l->written = step + 1; /* a failed write is not checked afterwards */
        }
        int k = (step * 7919) % KEYS;
        snprintf(key, sizeof key, "key-%d", k);
        snprintf(value, sizeof value, "value-%d-%040d", k, k);
        kv_value *v = NULL;
        rc = kv_get(&v, db, key, strlen(key), &ro);
        l->reads++;
        if (rc != KV_OK) {
            if (!l->failed_reads++)
                snprintf(l->why, sizeof l->why, "get %s: %s", key, kv_error_last());
        } else {
            size_t len;
            const void *data = kv_value_data(v, &len);
            l->stale += len != strlen(value) || memcmp(data, value, len) != 0;
            kv_value_free(v);
        }
        if (step % 8 == 0)
            serial_increment(db, l);
        sleep_ms(2);
    }
    kv_close(db);
    return NULL;
}

/* Prints what the load saw during `what`, then requires that no request
 * failed and no read was stale. */
static void check_load(const load *l, const char *what)
{
    printf("load during %s: %d writes (%d failed), %d reads (%d failed, %d stale)%s%s\n",
           what, l->written, l->failed_writes, l->reads, l->failed_reads, l->stale,
           l->why[0] ? "; first: " : "", l->why);
    assert_int_equal(l->failed_writes, 0);
    assert_int_equal(l->failed_reads, 0);
    assert_int_equal(l->stale, 0);
    check_serial(l->c, l);
}

/* How many of the keys fmt % 0..n-1 have `who` among their homes in the
 * ring of ids. */
static int homes_among(const char *const *ids, size_t n_ids, const char *who, const char *fmt,
                       int n)
{
    kvi_ring *ring;
    assert_int_equal(kvi_ring_build(&ring, ids, n_ids, 256, 3), KV_OK);
    int idx = kvi_ring_find(ring, who), homes = 0;
    char key[32];
    for (int k = 0; k < n; k++) {
        snprintf(key, sizeof key, fmt, k);
        const uint32_t *pref;
        size_t np = kvi_ring_preference(ring, kvi_key_token(key, strlen(key)), &pref);
        for (size_t i = 0; i < np; i++)
            homes += (int)pref[i] == idx;
    }
    kvi_ring_free(ring);
    return homes;
}

/* How many of the keys whose homes in the ring of ids include `who` node
 * `at` holds, asked directly (GET_STATE); *homes gets how many there are. */
static int held_by(const cluster *c, int at, const char *who, const char *const *ids, size_t n,
                   int *homes)
{
    kvi_ring *ring;
    assert_int_equal(kvi_ring_build(&ring, ids, n, 256, 3), KV_OK);
    int idx = kvi_ring_find(ring, who);
    kvi_client *cl;
    const char *eps[] = {c->nodes[at].listen};
    assert_int_equal(kvi_client_open(&cl, eps, 1, NULL, NULL), KV_OK);
    int held = 0;
    *homes = 0;
    char key[32];
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "key-%d", k);
        const uint32_t *pref;
        size_t np = kvi_ring_preference(ring, kvi_key_token(key, strlen(key)), &pref);
        int home = 0;
        for (size_t i = 0; i < np; i++)
            home |= (int)pref[i] == idx;
        if (!home)
            continue;
        (*homes)++;
        kvi_state st;
        kvi_buf holder = {0};
        held += kvi_client_get_state(cl, &st, &holder, key, strlen(key)) == KV_OK;
        kvi_buf_free(&holder);
    }
    kvi_client_close(cl);
    kvi_ring_free(ring);
    return held;
}

/* How many of the KEYS keys are missing from one of their homes in the
 * ring of ids (members at nodes[idx[k]]), asked directly. */
static int missing_from_homes(const cluster *c, const char *const *ids, const int *idx, size_t n)
{
    kvi_ring *ring;
    assert_int_equal(kvi_ring_build(&ring, ids, n, 256, 3), KV_OK);
    kvi_client *cl[MAX_NODES] = {0};
    for (size_t i = 0; i < n; i++) {
        const char *eps[] = {c->nodes[idx[i]].listen};
        assert_int_equal(kvi_client_open(&cl[i], eps, 1, NULL, NULL), KV_OK);
    }
    int missing = 0;
    char key[32];
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "key-%d", k);
        const uint32_t *pref;
        size_t np = kvi_ring_preference(ring, kvi_key_token(key, strlen(key)), &pref);
        for (size_t i = 0; i < np; i++) {
            kvi_state st;
            kvi_buf holder = {0};
            int rc = kvi_client_get_state(cl[pref[i]], &st, &holder, key, strlen(key));
            if (rc != KV_OK && missing++ < 3)
                fprintf(stderr, "%s missing on %s: %s\n", key, ids[pref[i]], kv_strerror(rc));
            kvi_buf_free(&holder);
        }
    }
    for (size_t i = 0; i < n; i++)
        kvi_client_close(cl[i]);
    kvi_ring_free(ring);
    return missing;
}

/* Every write the load made (but those that failed) reads back at QUORUM. */
static int lost_writes(cluster *c, const load *l)
{
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_QUORUM;
    int lost = 0;
    char key[32];
    for (int k = 0; k < l->written; k++) {
        snprintf(key, sizeof key, "live-%d", k);
        kv_value *v = NULL;
        if (kv_get(&v, db, key, strlen(key), &ro) != KV_OK)
            lost++;
        else
            kv_value_free(v);
    }
    kv_close(db);
    return lost;
}

static void a_joining_node_streams_its_ranges_under_load(void **state)
{
    cluster *c = *state;
    put_all(c, KEYS);
    load l = {.c = c};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_load, &l), 0);
    sleep_ms(300);
    c->nodes[3].seeds = c->nodes[0].listen;
    spawn_joining(c, 3);
    int ok = wait_settled(c, 4, 60000);
    sleep_ms(500); /* the load goes on past the switch */
    l.stop = 1;
    pthread_join(t, NULL);
    char line[2048] = "";
    log_line(c, 3, "stream done", 1, line, sizeof line);
    printf("join under load: %s", line);
    assert_true(ok);
    assert_non_null(strstr(line, "stream done"));
    /* Before it was done, anti-entropy checked what it streamed against
     * each other future home of it. */
    char checked[2048] = "";
    log_line(c, 3, "join: the streamed ranges checked", 1, checked, sizeof checked);
    printf("%s", checked);
    assert_non_null(strstr(checked, "checked against 3 member(s)"));
    check_load(&l, "the join");

    /* The new node holds every key it is a home of. */
    const char *ids[] = {"n1", "n2", "n3", "n4"};
    int homes;
    int held = held_by(c, 3, "n4", ids, 4, &homes);
    printf("n4 holds %d of the %d keys (of %d) it is a home of\n", held, homes, KEYS);
    assert_true(homes > KEYS / 2);
    assert_int_equal(held, homes);
    /* What streamed is its share, give or take the records pulled twice
     * where two of its ranges share a digest segment: within 10%. Its
     * share: the keys written before the join it is a home of, and at
     * most those of the load's keys (some were written after their page
     * was read: those came by the writes themselves). */
    const char *rec = strstr(line, " range(s), ");
    assert_non_null(rec);
    long records = strtol(rec + strlen(" range(s), "), NULL, 10);
    int live = homes_among(ids, 4, "n4", "live-%d", l.written);
    printf("streamed %ld records for %d keys (+ at most %d of the load's): %.3fx\n", records,
           homes, live, (double)records / homes);
    assert_true(records >= homes);
    assert_true(records <= (homes + live) + (homes + live) / 10);

    /* Its metrics say so: the epoch after the join's three steps, and the
     * bytes the log line gives. */
    char *metrics = http_get_all(c->nodes[3].http, "/metrics", 5000L);
    assert_non_null(metrics);
    const char *epoch = strstr(metrics, "\nkv_ring_epoch ");
    const char *bytes = strstr(metrics, "\nkv_stream_bytes_total ");
    const char *logged = strstr(line, " record(s), ");
    printf("n4's metrics: %.*s, %.*s\n", (int)strcspn(epoch ? epoch + 1 : "", "\n"),
           epoch ? epoch + 1 : "", (int)strcspn(bytes ? bytes + 1 : "", "\n"),
           bytes ? bytes + 1 : "");
    assert_non_null(epoch);
    assert_non_null(bytes);
    assert_non_null(logged);
    assert_int_equal(strtol(epoch + strlen("\nkv_ring_epoch "), NULL, 10), 4);
    assert_true(strtod(bytes + strlen("\nkv_stream_bytes_total "), NULL) ==
                strtod(logged + strlen(" record(s), "), NULL));
    assert_non_null(strstr(metrics, "\nkv_streams_active 0\n"));
    free(metrics);

    /* Every write acknowledged during the join reads back at QUORUM. */
    int lost = lost_writes(c, &l);
    printf("%d writes acknowledged during the join, %d not read back\n", l.written, lost);
    assert_int_equal(lost, 0);

    /* kvctl cleanup: each member drops what it is no home of any more;
     * what stays is three copies of every key, no more. */
    char out[8192];
    int status = run_kvctl(c, 0, "cleanup -w json", out, sizeof out);
    printf("kvctl cleanup: %s\n", out);
    assert_int_equal(status, 0);
    cJSON *report = cJSON_Parse(out);
    const cJSON *e;
    double before = 0, after = 0;
    int cleaned = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(report, "nodes")) {
        before += cJSON_GetObjectItem(e, "keysBefore")->valuedouble;
        after += cJSON_GetObjectItem(e, "keysAfter")->valuedouble;
        cleaned++;
    }
    cJSON_Delete(report);
    double unique = KEYS + l.written + (l.serial_ok > 0); /* and the SERIAL counter */
    printf("kvctl cleanup on %d nodes: %.0f keys stored before, %.0f after, for %.0f keys "
           "x 3 = %.0f (%.4fx)\n", cleaned, before, after, unique, 3 * unique,
           after / (3 * unique));
    assert_int_equal(cleaned, 4);
    assert_true(after < before);
    assert_true(after <= 3 * unique);
    assert_true(after >= 0.95 * 3 * unique);
    /* A cleanup asked of one node for another is refused, saying so. */
    kv *one = client_of(c, 0);
    assert_int_equal(kv_topology_change(NULL, one, "cleanup", "n2"), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "a cleanup runs on the node asked"));
    kv_close(one);
    /* Nothing a home holds went: still every key on each of its homes. */
    const int idx[] = {0, 1, 2, 3};
    assert_int_equal(missing_from_homes(c, ids, idx, 4), 0);
}

static const char *const slow_stream[] = {"--stream-rate", SLOW_RATE, NULL};

static int setup_three_slow(void **state)
{
    make_cluster_with(state, 3, "lww", slow_stream);
    return 0;
}

static void a_killed_joining_node_resumes_its_stream(void **state)
{
    cluster *c = *state;
    put_all(c, KEYS);
    c->nodes[3].seeds = c->nodes[0].listen;
    spawn_joining(c, 3);
    /* Half-way: a few pages in, at the slow rate. */
    char line[2048];
    int streaming = 0;
    for (int t = 0; t < 300 && !streaming; t++) {
        streaming = log_line(c, 3, "streaming ", 0, line, sizeof line);
        sleep_ms(100);
    }
    assert_true(streaming);
    sleep_ms(2500);
    /* kvctl streams shows it: target, change, sources, progress. */
    char out[4096];
    assert_int_equal(run_kvctl(c, 0, "streams -w json", out, sizeof out), 0);
    cJSON *shown = cJSON_Parse(out);
    const cJSON *st = cJSON_GetArrayItem(cJSON_GetObjectItem(shown, "streams"), 0);
    printf("kvctl streams: %s\n", out);
    assert_non_null(st);
    assert_string_equal(cJSON_GetObjectItem(st, "target")->valuestring, "n4");
    assert_string_equal(cJSON_GetObjectItem(st, "change")->valuestring, "join of n4");
    assert_true(cJSON_GetObjectItem(st, "ranges")->valuedouble > 0);
    assert_true(cJSON_GetObjectItem(st, "bytes")->valuedouble > 0);
    double fraction = cJSON_GetObjectItem(st, "fractionDone")->valuedouble;
    assert_true(fraction > 0 && fraction < 1);
    cJSON_Delete(shown);
    stop(c, 3, SIGKILL);
    assert_false(log_line(c, 3, "stream done", 1, line, sizeof line));
    spawn(c, 3);
    int ok = wait_settled(c, 4, 120000);
    assert_true(log_line(c, 3, "stream done", 1, line, sizeof line));
    printf("after kill -9 and restart: %s", line);
    assert_true(ok);
    /* It went on from its cursor: not from the start of the token space. */
    const char *at = strstr(line, "resumed at token ");
    assert_non_null(at);
    unsigned long long token = strtoull(at + strlen("resumed at token "), NULL, 16);
    assert_true(token > 0);
    const char *ids[] = {"n1", "n2", "n3", "n4"};
    int homes;
    int held = held_by(c, 3, "n4", ids, 4, &homes);
    printf("n4 holds %d of the %d keys it is a home of\n", held, homes);
    assert_int_equal(held, homes);
    /* Both runs together streamed its share once, give or take the page
     * the kill cut short and the records two ranges' digest segments share:
     * within 1.15x. */
    const char *total = strstr(line, "every run of this change: ");
    assert_non_null(total);
    long records = strtol(total + strlen("every run of this change: "), NULL, 10);
    printf("streamed in both runs: %ld records for %d keys: %.3fx\n", records, homes,
           (double)records / homes);
    assert_true(records >= homes);
    assert_true(records <= homes + homes * 15 / 100);
}

static int setup_four(void **state)
{
    make_cluster(state, 4, "lww");
    return 0;
}

/* A figure of node i's "failures" in its description; -1 when absent. */
static double failure_figure(const cluster *c, int i, const char *name)
{
    cJSON *root = described_by(c, i);
    const cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "failures"), name);
    double x = cJSON_IsNumber(v) ? v->valuedouble : -1;
    cJSON_Delete(root);
    return x;
}

/* Every member of idx that streamed ranges for the change `kind` (a leave,
 * a removal) checked them by anti-entropy before its part was done (its
 * log says so); returns how many streamed. */
static int gainers_checked(const cluster *c, const int *idx, size_t n, const char *kind)
{
    char streaming[64], checked[64], line[2048];
    snprintf(streaming, sizeof streaming, "for the %s of", kind);
    snprintf(checked, sizeof checked, "%s: the streamed ranges checked against", kind);
    int gainers = 0;
    for (size_t k = 0; k < n; k++) {
        if (!log_line(c, idx[k], streaming, 0, line, sizeof line))
            continue;
        gainers++;
        int ok = log_line(c, idx[k], checked, 1, line, sizeof line);
        printf("%s, a gainer of the %s: %s", c->nodes[idx[k]].id, kind,
               ok ? line : "no check logged\n");
        assert_true(ok);
    }
    return gainers;
}

#define HINTED 20

static void a_member_decommissions_under_load(void **state)
{
    cluster *c = *state;
    put_all(c, KEYS);
    /* n2, which will leave, holds hints: writes it coordinated (over HTTP)
     * while n3 was paused. */
    assert_true(kvd_pause(c->nodes[2].pid));
    /* Before n2 holds n3 down, a write it coordinates waits for n3, times
     * out, and keeps a hint for it. Such a write may end with an unknown
     * outcome (504): only the acknowledged ones are checked at the end. */
    int acked[HINTED] = {0};
    for (int k = 0; k < HINTED; k++) {
        char path[64];
        snprintf(path, sizeof path, "/v1/kv/hinted-%d?consistency=quorum", k);
        body b;
        long st = http_request(c->nodes[1].http, "PUT", path, "{\"value\":\"h\"}", &b, 15000);
        acked[k] = st == 200 || st == 201;
    }
    double hints = 0;
    for (int i = 0; i < 200 && hints < 1; i++) {
        hints = failure_figure(c, 1, "hintsPending");
        if (hints < 1)
            sleep_ms(100);
    }
    printf("n2 holds %.0f hint(s) for n3, paused\n", hints);
    assert_true(hints >= 1);
    load l = {.c = c};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_load, &l), 0);
    sleep_ms(300);
    kv *admin = client_of(c, 0);
    char *json = NULL;
    int rc = kv_topology_change(&json, admin, "leave", "n2");
    if (rc != KV_OK)
        fprintf(stderr, "leave: %s\n", kv_error_last());
    assert_int_equal(rc, KV_OK);
    printf("decommission of n2: %s\n", json);
    kv_string_free(json);
    /* One change at a time: a second one is refused, naming the first. */
    rc = kv_topology_change(NULL, admin, "leave", "n4");
    printf("a second change meanwhile: %s (%s)\n", kv_strerror(rc), kv_error_last());
    assert_int_equal(rc, KV_EBUSY);
    assert_non_null(strstr(kv_error_last(), "leave of n2 is in progress"));
    /* And no cleanup while it runs: what it would drop may still stream. */
    rc = kv_topology_change(NULL, admin, "cleanup", NULL);
    printf("a cleanup meanwhile: %s (%s)\n", kv_strerror(rc), kv_error_last());
    assert_int_equal(rc, KV_EBUSY);
    assert_non_null(strstr(kv_error_last(), "a cleanup waits until it ends"));
    kv_close(admin);
    /* n3 back a moment into the leave: n2 hands its hints off to it before
     * it is left. */
    sleep_ms(1500);
    assert_int_equal(kill(c->nodes[2].pid, SIGCONT), 0);
    int ok = wait_settled_as(c, 0xd /* n1, n3, n4 */, 3, "n2", 90000);
    sleep_ms(500);
    l.stop = 1;
    pthread_join(t, NULL);
    assert_true(ok);
    check_load(&l, "the decommission");
    const char *ids[] = {"n1", "n3", "n4"};
    const int idx[] = {0, 2, 3};
    int missing = missing_from_homes(c, ids, idx, 3);
    printf("after the decommission: %d of %d keys x 3 homes missing\n", missing, KEYS);
    assert_int_equal(missing, 0);
    assert_true(gainers_checked(c, idx, 3, "leave") >= 1);
    assert_int_equal(lost_writes(c, &l), 0);
    /* The node that left has no hints left: it handed them off, and the
     * hinted writes are on all their homes. */
    double pending = failure_figure(c, 1, "hintsPending");
    double replayed = failure_figure(c, 1, "hintsReplayed");
    printf("n2 after it left: %.0f hint(s) pending, %.0f replayed\n", pending, replayed);
    assert_true(pending == 0);
    assert_true(replayed >= 1);
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    kv_read_options all = KV_READ_OPTIONS_INIT;
    all.consistency = KV_CONSISTENCY_ALL;
    for (int k = 0; k < HINTED; k++) {
        if (!acked[k])
            continue;
        char key[32];
        snprintf(key, sizeof key, "hinted-%d", k);
        kv_value *v = NULL;
        int rc2 = kv_get(&v, db, key, strlen(key), &all);
        if (rc2 != KV_OK)
            fail_msg("%s at ALL after the leave: %s", key, kv_error_last());
        kv_value_free(v);
    }
    kv_close(db);
    /* The node that left says so, and a restart refuses to rejoin. */
    stop(c, 1, SIGTERM);
    spawn(c, 1);
    int exited = 0;
    for (int i = 0; i < 100 && !exited; i++) {
        exited = waitpid(c->nodes[1].pid, NULL, WNOHANG) == c->nodes[1].pid;
        if (!exited)
            sleep_ms(100);
    }
    if (exited)
        c->nodes[1].pid = 0;
    char line[2048] = "";
    log_line(c, 1, "left its cluster", 1, line, sizeof line);
    printf("restart of the node that left: %s", line);
    assert_true(exited);
    assert_non_null(strstr(line, "left its cluster"));
}

static void a_dead_member_is_removed(void **state)
{
    cluster *c = *state;
    put_all(c, KEYS);
    stop(c, 2, SIGKILL);
    kv *admin = client_of(c, 0);
    /* Removed only once the others hold it down. */
    int rc = KV_EINVAL;
    for (int i = 0; i < 150 && rc == KV_EINVAL; i++) {
        rc = kv_topology_change(NULL, admin, "remove", "n3");
        if (rc == KV_EINVAL)
            sleep_ms(200);
    }
    if (rc != KV_OK)
        fprintf(stderr, "remove: %s\n", kv_error_last());
    assert_int_equal(rc, KV_OK);
    kv_close(admin);
    assert_true(wait_settled_as(c, 0xb /* n1, n2, n4 */, 3, "n3", 60000));
    const char *ids[] = {"n1", "n2", "n4"};
    const int idx[] = {0, 1, 3};
    int missing = missing_from_homes(c, ids, idx, 3);
    printf("after the removal of n3: %d of %d keys x 3 homes missing\n", missing, KEYS);
    assert_int_equal(missing, 0);
    assert_true(gainers_checked(c, idx, 3, "remove") >= 1);
}

static void a_dead_member_is_replaced_on_an_empty_disk(void **state)
{
    cluster *c = *state;
    put_all(c, KEYS);
    static const char *const replace[] = {"--replace", "n3", "--stream-rate", SLOW_RATE, NULL};
    /* While n3 runs, a process that would replace it is refused. */
    fresh_node(&c->nodes[4], 2);
    c->extra = replace;
    spawn(c, 4);
    c->extra = NULL;
    char line[2048] = "";
    int refused = 0;
    for (int i = 0; i < 150 && !refused; i++) {
        refused = log_line(c, 4, "still answers", 1, line, sizeof line);
        if (!refused)
            sleep_ms(100);
    }
    printf("a replace of n3 while it runs: %s", line);
    assert_true(refused);
    stop(c, 4, SIGKILL);
    stop(c, 2, SIGKILL);
    /* Its data directory is gone; a new process takes its id and tokens
     * at another address. */
    fresh_node(&c->nodes[2], 2);
    load l = {.c = c};
    pthread_t t;
    c->extra = replace;
    spawn_joining(c, 2);
    c->extra = NULL;
    assert_int_equal(pthread_create(&t, NULL, run_load, &l), 0);
    /* While it streams (slowly), it answers no reads: reads at ONE of keys
     * written at ALL all find them, though it holds few of them yet. */
    int replacing = 0;
    for (int i = 0; i < 300 && !replacing; i++) {
        replacing = operation_is(c, 0, "replace");
        if (!replacing)
            sleep_ms(100);
    }
    assert_true(replacing);
    kv *reader = client_all(c, KV_POLICY_LWW, NULL);
    kv_read_options one = KV_READ_OPTIONS_INIT;
    one.consistency = KV_CONSISTENCY_ONE;
    int reads = 0, misses = 0, asked_n3 = 0;
    for (int k = 0; k < KEYS && operation_is(c, 0, "replace"); k += 7) {
        for (int j = k; j < k + 7 && j < KEYS; j++, reads++) {
            char key[32];
            snprintf(key, sizeof key, "key-%d", j);
            kv_value *v = NULL;
            char *trace = NULL;
            int rc = kv_get_traced(&v, &trace, reader, key, strlen(key), &one);
            if (rc != KV_OK && misses++ < 3)
                fprintf(stderr, "read of %s at ONE during the replace: %s\n", key,
                        kv_strerror(rc));
            /* n3 is no replica of the read at all, not even one not asked. */
            if (trace && strstr(trace, "\"n3\"") && asked_n3++ < 3)
                fprintf(stderr, "n3 is a replica of the read of %s: %s\n", key, trace);
            kv_string_free(trace);
            kv_value_free(v);
        }
    }
    kv_close(reader);
    printf("reads at ONE during the replace: %d, %d missed, %d with n3 a replica\n", reads,
           misses,
           asked_n3);
    assert_true(reads > 0);
    assert_int_equal(misses, 0);
    assert_int_equal(asked_n3, 0);
    int ok = wait_settled(c, 4, 120000);
    sleep_ms(500); /* the load goes on past the switch */
    l.stop = 1;
    pthread_join(t, NULL);
    char streamed[2048] = "", repaired[2048] = "";
    log_line(c, 2, "stream done", 1, streamed, sizeof streamed);
    log_line(c, 2, "replace: repaired against", 1, repaired, sizeof repaired);
    printf("replace of n3: %s  %s", streamed, repaired);
    assert_true(ok);
    assert_non_null(strstr(streamed, "stream done"));
    assert_non_null(strstr(repaired, "repaired against 3 member(s)"));
    check_load(&l, "the replace");
    const char *ids[] = {"n1", "n2", "n3", "n4"};
    const int idx[] = {0, 1, 2, 3};
    int homes;
    int held = held_by(c, 2, "n3", ids, 4, &homes);
    printf("the new n3 holds %d of the %d keys it is a home of\n", held, homes);
    /* The others reach n3 at its new address, though --peers named the old. */
    for (int i = 0; i < 4; i++) {
        if (i == 2)
            continue;
        cJSON *root = described_by(c, i);
        const cJSON *m;
        const char *at = NULL;
        cJSON_ArrayForEach(m, cJSON_GetObjectItem(root, "members")) {
            const cJSON *id = cJSON_GetObjectItem(m, "nodeId");
            if (cJSON_IsString(id) && strcmp(id->valuestring, "n3") == 0)
                at = cJSON_GetObjectItem(m, "address")->valuestring;
        }
        assert_non_null(at);
        assert_string_equal(at, c->nodes[2].listen);
        cJSON_Delete(root);
    }
    assert_true(homes > KEYS / 2);
    assert_int_equal(held, homes);
    assert_int_equal(missing_from_homes(c, ids, idx, 4), 0);
    assert_int_equal(lost_writes(c, &l), 0);
}

/* ------------------------------------------------------------ etcd mode */

/* An etcd the test started, and the kvd flag naming it. */
typedef struct etcd_cluster {
    etcd_proc etcd;
    const char *extra[3];
} etcd_cluster;

static int setup_etcd(void **state, int n)
{
    etcd_cluster *ec = calloc(1, sizeof *ec);
    assert_non_null(ec);
    etcd_start(&ec->etcd, "kvtest");
    ec->extra[0] = "--metadata";
    ec->extra[1] = ec->etcd.url;
    cluster *c = make_cluster_with(state, n, "lww", ec->extra);
    c->user = ec;
    return 0;
}

static int setup_etcd_three(void **state)
{
    return setup_etcd(state, 3);
}

static int setup_etcd_four(void **state)
{
    return setup_etcd(state, 4);
}

static int teardown_etcd(void **state)
{
    cluster *c = *state;
    etcd_cluster *ec = c->user;
    teardown(state);
    etcd_destroy(&ec->etcd);
    free(ec);
    return 0;
}

/* Node i's "metadata" in its description's topology: 1 when it names the
 * etcd at client and says whether the node's lease is held (*lease). */
static int metadata_of(const cluster *c, int i, const char *client, int *lease)
{
    cJSON *root = described_by(c, i);
    const cJSON *md = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "topology"), "metadata");
    const cJSON *at = cJSON_GetObjectItem(md, "etcd");
    int named = cJSON_IsString(at) && strstr(at->valuestring, client) != NULL;
    *lease = cJSON_IsTrue(cJSON_GetObjectItem(md, "leaseHeld"));
    cJSON_Delete(root);
    return named;
}

/* Waits (bounded) until etcd holds `want` member leases. */
static long wait_members_in_etcd(const etcd_proc *e, long want)
{
    long n = -1;
    for (int t = 0; t < 150 && n != want; t++) {
        n = etcd_count(e, "/kvtest/members/");
        if (n != want)
            sleep_ms(100);
    }
    return n;
}

static void a_node_joins_with_the_topology_in_etcd_down_a_while(void **state)
{
    cluster *c = *state;
    etcd_cluster *ec = c->user;
    put_all(c, KEYS);
    /* Every member says where the record is kept and holds its lease; etcd
     * holds the record and the three members. */
    for (int i = 0; i < 3; i++) {
        int lease = 0;
        for (int t = 0; t < 100 && !lease; t++)
            if (metadata_of(c, i, ec->etcd.client, &lease) && !lease)
                sleep_ms(100);
        assert_true(metadata_of(c, i, ec->etcd.client, &lease));
        assert_true(lease);
    }
    assert_int_equal(wait_members_in_etcd(&ec->etcd, 3), 3);
    assert_int_equal(etcd_count(&ec->etcd, "/kvtest/topology"), 1);

    /* etcd dies; the cluster serves on, under load, and a fourth node
     * asks to join meanwhile. */
    load l = {.c = c};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, run_load, &l), 0);
    sleep_ms(300);
    etcd_kill(&ec->etcd, SIGKILL);
    c->nodes[3].seeds = c->nodes[0].listen;
    spawn_joining(c, 3);
    /* Its join cannot be recorded: it says why, and tries again. */
    char line[2048] = "";
    for (int w = 0; w < 300 && !log_line(c, 3, "cannot join the cluster yet", 0, line,
                                         sizeof line); w++)
        sleep_ms(100);
    printf("n4 while etcd is down: %s", line);
    assert_non_null(strstr(line, "metadata store"));
    /* Any other change is refused, saying why; data is still served. */
    kv *admin = client_of(c, 1);
    int rc = kv_topology_change(NULL, admin, "leave", "n3");
    printf("a leave while etcd is down: %s (%s)\n", kv_strerror(rc), kv_error_last());
    assert_int_equal(rc, KV_EUNAVAILABLE);
    assert_non_null(strstr(kv_error_last(), "cannot be reached"));
    kv_close(admin);
    int lease = 1;
    for (int w = 0; w < 300 && lease; w++) /* the lease's keepalive fails soon */
        if (metadata_of(c, 0, ec->etcd.client, &lease) && lease)
            sleep_ms(100);
    assert_false(lease);
    assert_true(operation_is(c, 0, "join") == 0); /* nothing recorded */

    /* etcd back on its data: the join goes through. */
    etcd_run(&ec->etcd);
    int ok = wait_settled(c, 4, 90000);
    sleep_ms(500);
    l.stop = 1;
    pthread_join(t, NULL);
    assert_true(ok);
    check_load(&l, "the join with etcd down a while");
    const char *ids[] = {"n1", "n2", "n3", "n4"};
    int homes;
    int held = held_by(c, 3, "n4", ids, 4, &homes);
    printf("n4 holds %d of the %d keys it is a home of; etcd holds %ld member leases\n", held,
           homes, wait_members_in_etcd(&ec->etcd, 4));
    assert_true(homes > KEYS / 2);
    assert_int_equal(held, homes);
    assert_int_equal(wait_members_in_etcd(&ec->etcd, 4), 4);
    assert_int_equal(lost_writes(c, &l), 0);
}

/* Two changes asked of two members at once. */
typedef struct asked_change {
    const cluster *c;
    int at;
    const char *member;
    int rc;
    char why[512];
} asked_change;

static void *ask_leave(void *p)
{
    asked_change *a = p;
    kv *db = client_of(a->c, a->at);
    a->rc = kv_topology_change(NULL, db, "leave", a->member);
    snprintf(a->why, sizeof a->why, "%s", a->rc == KV_OK ? "" : kv_error_last());
    kv_close(db);
    return NULL;
}

static void two_changes_at_once_in_etcd_one_is_recorded(void **state)
{
    cluster *c = *state;
    asked_change a = {.c = c, .at = 0, .member = "n3"}, b = {.c = c, .at = 1, .member = "n4"};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, ask_leave, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, ask_leave, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    printf("leave of n3 through n1: %s %s\nleave of n4 through n2: %s %s\n", kv_strerror(a.rc),
           a.why, kv_strerror(b.rc), b.why);
    asked_change *won = a.rc == KV_OK ? &a : &b, *lost = a.rc == KV_OK ? &b : &a;
    assert_int_equal(won->rc, KV_OK);
    assert_int_equal(lost->rc, KV_EBUSY);
    char expected[64];
    snprintf(expected, sizeof expected, "leave of %s is in progress", won->member);
    assert_non_null(strstr(lost->why, expected));
    /* The one recorded runs to its end. */
    unsigned stay = won == &a ? 0xb /* n1, n2, n4 */ : 0x7 /* n1, n2, n3 */;
    assert_true(wait_settled_as(c, stay, 3, won->member, 90000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_joining_node_streams_its_ranges_under_load,
                                        setup_three, teardown),
        cmocka_unit_test_setup_teardown(a_killed_joining_node_resumes_its_stream,
                                        setup_three_slow, teardown),
        cmocka_unit_test_setup_teardown(a_member_decommissions_under_load, setup_four,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_dead_member_is_removed, setup_four, teardown),
        cmocka_unit_test_setup_teardown(a_dead_member_is_replaced_on_an_empty_disk, setup_four,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_node_joins_with_the_topology_in_etcd_down_a_while,
                                        setup_etcd_three, teardown_etcd),
        cmocka_unit_test_setup_teardown(two_changes_at_once_in_etcd_one_is_recorded,
                                        setup_etcd_four, teardown_etcd),
    };
    if (getenv("KV_TEST_FILTER")) /* one test by name, when working on it */
        cmocka_set_test_filter(getenv("KV_TEST_FILTER"));
    if (getenv("KV_TEST_SKIP")) /* ctest runs the etcd ones as a test of their own */
        cmocka_set_skip_filter(getenv("KV_TEST_SKIP"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
