/* A cluster of real kvd processes on loopback (issue 4): replication,
 * consistency levels with killed nodes, read repair, conflicts under the
 * three policies, concurrent writers, scans with writes running (issue
 * 17), a client whose ring is stale, and
 * SERIAL (per-key Paxos: versions, availability, a CAS counter, acceptors
 * refusing what they must), and anti-entropy's digests across restarts.
 * The path of kvd comes from the KVD environment variable (set by ctest).
 * No timing assertions: every wait is a bounded poll for a state. */
#include <arpa/inet.h>
#include <curl/curl.h>
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

#include "client/handle.h"
#include "helpers.h"
#include "integration/http_client.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"
#include "client/router.h"
#include "net/client.h"
#include "cluster/coordinator.h"
#include "format/ae.h"
#include "format/frame.h"
#include "format/paxos.h"
#include "storage/digest.h"
#include <kv/kv.h>

#include "integration/cluster_harness.h"

static int setup_lww(void **state)
{
    make_cluster(state, 3, "lww");
    return 0;
}

static int setup_five(void **state)
{
    make_cluster(state, 5, "lww");
    return 0;
}

static int setup_siblings(void **state)
{
    make_cluster(state, 3, "siblings");
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static int put_at(kv *db, const char *key, const char *value, kv_consistency level)
{
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = level;
    return kv_put(NULL, db, key, strlen(key), value, strlen(value), &wo);
}

/* Reads key at level; KV_OK only when the value is exactly `want`. */
static int get_is(kv *db, const char *key, const char *want, kv_consistency level)
{
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = level;
    kv_value *v = NULL;
    int rc = kv_get(&v, db, key, strlen(key), &ro);
    if (rc == KV_OK) {
        size_t len;
        const char *data = kv_value_data(v, &len);
        if (len != strlen(want) || memcmp(data, want, len) != 0) {
            fprintf(stderr, "%s: got \"%.*s\", want \"%s\"\n", key, (int)len, data, want);
            rc = KV_ECONFLICT;
        }
    }
    kv_value_free(v);
    return rc;
}

static long http(const node *d, const char *method, const char *path, const char *json,
                 body *out)
{
    return http_request(d->http, method, path, json, out, 10000L);
}

/* ------------------------------------------------------------------ tests */

/* After a write at ALL, each replica alone (the other two stopped) returns
 * the value at ONE: over the binary protocol and over HTTP. */
static void replication_reaches_every_replica(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    char key[32], value[32];
    for (int k = 0; k < 20; k++) {
        snprintf(key, sizeof key, "rep-%d", k);
        snprintf(value, sizeof value, "value-%d", k);
        assert_int_equal(put_at(db, key, value, KV_CONSISTENCY_ALL), KV_OK);
    }
    body b;
    assert_int_equal(http(&c->nodes[1], "PUT", "/v1/kv/over-http?consistency=all",
                          "{\"value\":\"h\"}", &b), 200);
    /* Reads at ONE rotate through the replicas: three reads, three nodes. */
    int answered[3] = {0};
    for (int r = 0; r < 3; r++) {
        kv_value *v = NULL;
        char *trace = NULL;
        kv_read_options ro = KV_READ_OPTIONS_INIT;
        ro.consistency = KV_CONSISTENCY_ONE;
        assert_int_equal(kv_get_traced(&v, &trace, db, "rep-0", 5, &ro), KV_OK);
        kv_value_free(v);
        cJSON *root = cJSON_Parse(trace);
        kv_string_free(trace);
        const cJSON *rep;
        cJSON_ArrayForEach(rep, cJSON_GetObjectItem(root, "replicas")) {
            const char *id = cJSON_GetObjectItem(rep, "nodeId")->valuestring;
            if (strcmp(cJSON_GetObjectItem(rep, "status")->valuestring, "OK") == 0)
                answered[id[1] - '1']++;
        }
        cJSON_Delete(root);
    }
    /* (A slow answer can bring a speculative one too: at least once each.) */
    assert_true(answered[0] >= 1 && answered[1] >= 1 && answered[2] >= 1);
    kv_close(db);
    for (int alone = 0; alone < 3; alone++) {
        for (int i = 0; i < 3; i++)
            if (i != alone)
                stop(c, i, SIGTERM);
        db = client_of(c, alone);
        for (int k = 0; k < 20; k++) {
            snprintf(key, sizeof key, "rep-%d", k);
            snprintf(value, sizeof value, "value-%d", k);
            assert_int_equal(get_is(db, key, value, KV_CONSISTENCY_ONE), KV_OK);
        }
        assert_int_equal(get_is(db, "over-http", "h", KV_CONSISTENCY_ONE), KV_OK);
        /* Alone, a QUORUM read cannot be served. */
        assert_int_equal(get_is(db, "rep-0", "value-0", KV_CONSISTENCY_QUORUM),
                         KV_EUNAVAILABLE);
        assert_int_equal(http(&c->nodes[alone], "GET", "/v1/kv/rep-1?consistency=one", NULL,
                              &b), 200);
        assert_non_null(strstr(b.data, "\"value-1\""));
        kv_close(db);
        /* Static membership: a restarted node serves once it has heard
         * from every member, so both start before either is waited for. */
        for (int i = 0; i < 3; i++)
            if (i != alone)
                spawn(c, i);
        for (int i = 0; i < 3; i++)
            wait_complete(c, i);
    }
}

/* One of three killed: QUORUM works, ALL is refused as not applied (503).
 * Two killed: QUORUM is refused, ONE works. */
static void consistency_levels_with_killed_nodes(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    assert_int_equal(put_at(db, "levels", "v1", KV_CONSISTENCY_ALL), KV_OK);
    stop(c, 2, SIGKILL);
    assert_int_equal(put_at(db, "levels", "v2", KV_CONSISTENCY_QUORUM), KV_OK);
    assert_int_equal(get_is(db, "levels", "v2", KV_CONSISTENCY_QUORUM), KV_OK);
    assert_int_equal(put_at(db, "levels", "v3", KV_CONSISTENCY_ALL), KV_EUNAVAILABLE);
    /* Refused before anything was applied: the value is still v2. */
    assert_int_equal(get_is(db, "levels", "v2", KV_CONSISTENCY_QUORUM), KV_OK);
    assert_int_equal(get_is(db, "levels", "v2", KV_CONSISTENCY_ALL), KV_EUNAVAILABLE);
    body b;
    assert_int_equal(http(&c->nodes[0], "PUT", "/v1/kv/levels?consistency=all",
                          "{\"value\":\"v3\"}", &b), 503);
    assert_non_null(strstr(b.data, "UNAVAILABLE"));
    assert_int_equal(http(&c->nodes[0], "PUT", "/v1/kv/levels?consistency=quorum",
                          "{\"value\":\"v3\"}", &b), 200);

    stop(c, 1, SIGKILL);
    assert_int_equal(put_at(db, "levels", "v4", KV_CONSISTENCY_QUORUM), KV_EUNAVAILABLE);
    assert_int_equal(get_is(db, "levels", "v3", KV_CONSISTENCY_QUORUM), KV_EUNAVAILABLE);
    assert_int_equal(http(&c->nodes[0], "GET", "/v1/kv/levels?consistency=quorum", NULL, &b),
                     503);
    assert_int_equal(put_at(db, "levels", "v5", KV_CONSISTENCY_ONE), KV_OK);
    assert_int_equal(get_is(db, "levels", "v5", KV_CONSISTENCY_ONE), KV_OK);
    kv_write_options w1 = KV_WRITE_OPTIONS_INIT;
    w1.consistency = KV_CONSISTENCY_EXPLICIT;
    w1.w = 1;
    assert_int_equal(kv_delete(NULL, db, "levels", 6, &w1), KV_OK);
    assert_int_equal(get_is(db, "levels", "", KV_CONSISTENCY_ONE), KV_ENOTFOUND);
    kv_close(db);
}

/* A replica that missed a write gets it from a QUORUM read that it
 * answers, and then serves it alone. (On a slow machine the hint kept for
 * it may reach it first: then it answers the new version and needs no
 * repair; either way it must end up serving the write alone.) */
static void read_repair_fixes_a_stale_replica(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    assert_int_equal(put_at(db, "repair", "old", KV_CONSISTENCY_ALL), KV_OK);
    assert_int_equal(put_at(db, "gone", "here", KV_CONSISTENCY_ALL), KV_OK);
    stop(c, 2, SIGTERM);
    assert_int_equal(put_at(db, "repair", "new", KV_CONSISTENCY_QUORUM), KV_OK);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    assert_int_equal(kv_delete(NULL, db, "gone", 4, &wo), KV_OK);
    start(c, 2);
    /* n2 down, so the QUORUM read is answered by n1 and the stale n3. */
    stop(c, 1, SIGTERM);
    kv_value *v = NULL;
    char *trace = NULL;
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_QUORUM;
    assert_int_equal(kv_get_traced(&v, &trace, db, "repair", 6, &ro), KV_OK);
    size_t len;
    assert_memory_equal(kv_value_data(v, &len), "new", 3);
    kv_value_free(v);
    /* The trace names each replica: n3 answered with the old version and
     * was repaired, n2 (down) did not answer. */
    cJSON *root = cJSON_Parse(trace);
    kv_string_free(trace);
    assert_int_equal(cJSON_GetObjectItem(root, "required")->valueint, 2);
    const cJSON *r;
    int checked = 0, handed_off = 0;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(root, "replicas")) {
        const char *id = cJSON_GetObjectItem(r, "nodeId")->valuestring;
        const char *status = cJSON_GetObjectItem(r, "status")->valuestring;
        int version = cJSON_GetObjectItem(r, "version")->valueint;
        int repaired = cJSON_IsTrue(cJSON_GetObjectItem(r, "repaired"));
        if (strcmp(id, "n1") == 0)
            assert_true(strcmp(status, "OK") == 0 && version == 2 && !repaired);
        else if (strcmp(id, "n2") == 0) /* down: failed, or not needed */
            assert_true(strcmp(status, "UNAVAILABLE") == 0 || strcmp(status, "NOT_ASKED") == 0);
        else if (version == 2) /* n3: hinted handoff won the race with this read */
            assert_true(strcmp(status, "OK") == 0 && !repaired && (handed_off = 1));
        else
            assert_true(strcmp(status, "OK") == 0 && version == 1 && repaired);
        checked++;
    }
    assert_int_equal(checked, 3);
    if (handed_off)
        printf("n3 had the write from its hint before the read: nothing to repair\n");
    cJSON_Delete(root);
    assert_int_equal(get_is(db, "gone", "", KV_CONSISTENCY_QUORUM), KV_ENOTFOUND);
    kv_close(db);
    stop(c, 0, SIGTERM);
    db = client_of(c, 2);
    assert_int_equal(get_is(db, "repair", "new", KV_CONSISTENCY_ONE), KV_OK);
    /* The delete (a tombstone) was repaired too. */
    assert_int_equal(get_is(db, "gone", "", KV_CONSISTENCY_ONE), KV_ENOTFOUND);
    kv_close(db);
}


/* A figure from node i's "failures" in GET /v1/cluster. */
static double failure_figure(cluster *c, int i, const char *name)
{
    body b;
    assert_int_equal(http(&c->nodes[i], "GET", "/v1/cluster", NULL, &b), 200);
    cJSON *root = cJSON_Parse(b.data);
    assert_non_null(root);
    const cJSON *f = cJSON_GetObjectItem(cJSON_GetObjectItem(root, "failures"), name);
    assert_true(cJSON_IsNumber(f));
    double value = f->valuedouble;
    cJSON_Delete(root);
    return value;
}

/* A read that a node coordinates and that finds a stale replica repairs
 * it and counts it (readRepairs, kv_read_repairs_total, the minute's log
 * line). The stale replica may instead get the write from its hint first:
 * then there is nothing to repair, and the test says so. */
static void a_node_counts_the_repairs_its_reads_make(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    assert_int_equal(put_at(db, "rr", "old", KV_CONSISTENCY_ALL), KV_OK);
    stop(c, 2, SIGTERM);
    assert_int_equal(put_at(db, "rr", "new", KV_CONSISTENCY_QUORUM), KV_OK);
    kv_close(db);
    start(c, 2);
    double before = failure_figure(c, 0, "readRepairs");
    body b;
    /* R = 3: n1 asks every replica, the restarted n3 included. */
    assert_int_equal(http(&c->nodes[0], "GET", "/v1/kv/rr?consistency=all", NULL, &b), 200);
    assert_non_null(strstr(b.data, "\"new\""));
    double repairs = failure_figure(c, 0, "readRepairs") - before;
    double replayed = failure_figure(c, 0, "hintsReplayed") + failure_figure(c, 1, "hintsReplayed");
    if (repairs == 0) {
        /* Only a hint delivered before the read excuses no repair. */
        assert_true(replayed >= 1);
        printf("n3 had the write from its hint before the read: nothing to repair\n");
    } else {
        assert_true(repairs == 1);
    }
    /* Either way n3 now holds the new value: at ONE it reads its own. */
    assert_int_equal(http(&c->nodes[2], "GET", "/v1/kv/rr?consistency=one", NULL, &b), 200);
    assert_non_null(strstr(b.data, "\"new\""));
}

/* Writes the two concurrent values "a" and "b" to key with the same stale
 * context, from two SIBLINGS clients. */
static void make_siblings(cluster *c, const char *key)
{
    kv *x = client_all(c, KV_POLICY_SIBLINGS, NULL);
    kv *y = client_all(c, KV_POLICY_SIBLINGS, NULL);
    assert_int_equal(put_at(x, key, "base", KV_CONSISTENCY_ALL), KV_OK);
    kv_value *seen = NULL;
    assert_int_equal(kv_get(&seen, x, key, strlen(key), NULL), KV_OK);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.context = kv_value_context(seen, &wo.context_len);
    assert_true(wo.context_len > 0);
    assert_int_equal(kv_put(NULL, x, key, strlen(key), "a", 1, &wo), KV_OK);
    sleep_ms(5); /* distinct write times, so LWW has a later write */
    assert_int_equal(kv_put(NULL, y, key, strlen(key), "b", 1, &wo), KV_OK);
    kv_value_free(seen);
    kv_close(x);
    kv_close(y);
}

static void siblings_policy_keeps_and_resolves(void **state)
{
    cluster *c = *state;
    make_siblings(c, "conflict");
    kv *db = client_all(c, KV_POLICY_SIBLINGS, NULL);
    kv_value *v = NULL;
    assert_int_equal(kv_get(&v, db, "conflict", 8, NULL), KV_OK);
    assert_int_equal(kv_value_sibling_count(v), 2);
    int seen_a = 0, seen_b = 0;
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        const char *s = kv_value_sibling(v, i, &len);
        seen_a |= len == 1 && s[0] == 'a';
        seen_b |= len == 1 && s[0] == 'b';
    }
    assert_true(seen_a && seen_b);
    /* The node's HTTP API (policy siblings) answers 300 with both. */
    body b;
    assert_int_equal(http(&c->nodes[1], "GET", "/v1/kv/conflict", NULL, &b), 300);
    assert_non_null(strstr(b.data, "\"siblings\""));
    assert_non_null(strstr(b.data, "\"context\""));
    /* A put with the returned context resolves them to one. */
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.context = kv_value_context(v, &wo.context_len);
    assert_int_equal(kv_put(NULL, db, "conflict", 8, "resolved", 8, &wo), KV_OK);
    kv_value_free(v);
    assert_int_equal(kv_get(&v, db, "conflict", 8, NULL), KV_OK);
    assert_int_equal(kv_value_sibling_count(v), 1);
    size_t len;
    assert_memory_equal(kv_value_data(v, &len), "resolved", 8);
    kv_value_free(v);
    assert_int_equal(http(&c->nodes[2], "GET", "/v1/kv/conflict", NULL, &b), 200);
    /* A write without a context is concurrent: a sibling again. */
    assert_int_equal(put_at(db, "conflict", "blind", KV_CONSISTENCY_QUORUM), KV_OK);
    assert_int_equal(kv_get(&v, db, "conflict", 8, NULL), KV_OK);
    assert_int_equal(kv_value_sibling_count(v), 2);
    kv_value_free(v);
    kv_close(db);

    /* The same over HTTP: the 300's context in a PUT body resolves them. */
    assert_int_equal(http(&c->nodes[0], "GET", "/v1/kv/conflict", NULL, &b), 300);
    cJSON *root = cJSON_Parse(b.data);
    const cJSON *ctx = cJSON_GetObjectItem(root, "context");
    assert_true(cJSON_IsString(ctx));
    char json[512];
    snprintf(json, sizeof json, "{\"value\":\"via-http\",\"context\":\"%s\"}",
             ctx->valuestring);
    cJSON_Delete(root);
    assert_int_equal(http(&c->nodes[0], "PUT", "/v1/kv/conflict", json, &b), 200);
    assert_int_equal(http(&c->nodes[1], "GET", "/v1/kv/conflict", NULL, &b), 200);
    assert_non_null(strstr(b.data, "\"via-http\""));
    /* A DELETE with the read's context (percent-encoded) removes it. */
    root = cJSON_Parse(b.data);
    ctx = cJSON_GetObjectItem(root, "context");
    assert_true(cJSON_IsString(ctx));
    CURL *curl = curl_easy_init();
    char *escaped = curl_easy_escape(curl, ctx->valuestring, 0);
    char path[512];
    snprintf(path, sizeof path, "/v1/kv/conflict?context=%s", escaped);
    curl_free(escaped);
    curl_easy_cleanup(curl);
    cJSON_Delete(root);
    assert_int_equal(http(&c->nodes[2], "DELETE", path, NULL, &b), 200);
    assert_int_equal(http(&c->nodes[0], "GET", "/v1/kv/conflict", NULL, &b), 404);
    /* A context that is not one is refused. */
    assert_int_equal(http(&c->nodes[0], "PUT", "/v1/kv/conflict",
                          "{\"value\":\"x\",\"context\":\"bm90IGEgY29udGV4dA==\"}", &b), 400);
    assert_int_equal(http(&c->nodes[0], "DELETE", "/v1/kv/conflict?context=%%%", NULL, &b),
                     400);

    /* A batch a node coordinates (a manual_loop client has no view of its
     * own: the node runs the batch) returns every sibling and the context,
     * as a single GET does, over the binary protocol too. */
    make_siblings(c, "bsib");
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.policy = KV_POLICY_SIBLINGS;
    co.manual_loop = 1;
    const char *eps[] = {c->nodes[1].listen};
    assert_int_equal(kv_client_open(&db, eps, 1, &co), KV_OK);
    kv_batch *bt = NULL;
    assert_int_equal(kv_batch_new(&bt), KV_OK);
    assert_int_equal(kv_batch_get(bt, "bsib", 4), KV_OK);
    assert_int_equal(kv_batch_get(bt, "bsib-absent", 11), KV_OK);
    assert_int_equal(kv_batch_execute(db, bt, NULL, NULL), KV_OK);
    const kv_value *got = NULL;
    uint64_t ver = 0;
    assert_int_equal(kv_batch_result(&got, &ver, bt, 0), KV_OK);
    assert_int_equal(kv_value_sibling_count(got), 2);
    size_t la = 0, lb = 0, lctx = 0;
    const char *sa = kv_value_sibling(got, 0, &la), *sb = kv_value_sibling(got, 1, &lb);
    assert_true(la == 1 && lb == 1 && sa[0] != sb[0] && (sa[0] == 'a' || sa[0] == 'b') &&
                (sb[0] == 'a' || sb[0] == 'b'));
    const void *bctx = kv_value_context(got, &lctx);
    assert_true(lctx > 0);
    assert_int_equal(kv_batch_result(&got, &ver, bt, 1), KV_ENOTFOUND);
    /* Its context resolves them, as a GET's does. */
    kv_write_options bwo = KV_WRITE_OPTIONS_INIT;
    bwo.context = bctx;
    bwo.context_len = lctx;
    assert_int_equal(kv_put(NULL, db, "bsib", 4, "one", 3, &bwo), KV_OK);
    kv_batch_free(bt);
    kv_value *one = NULL;
    assert_int_equal(kv_get(&one, db, "bsib", 4, NULL), KV_OK);
    assert_int_equal(kv_value_sibling_count(one), 1);
    kv_value_free(one);
    kv_close(db);
}

/* Past the sibling limit a write is refused with a clear error, and a
 * write with the context still resolves the key. */
static void sibling_limit_is_a_clear_error(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_SIBLINGS, NULL);
    int rc = KV_OK, writes = 0;
    while (rc == KV_OK && writes < 40) {
        rc = put_at(db, "many", "blind", KV_CONSISTENCY_ALL);
        writes += rc == KV_OK;
    }
    assert_int_equal(rc, KV_ETOOBIG);
    assert_int_equal(writes, 16);
    assert_non_null(strstr(kv_error_last(), "sibling"));
    kv_value *v = NULL;
    assert_int_equal(kv_get(&v, db, "many", 4, NULL), KV_OK);
    assert_int_equal(kv_value_sibling_count(v), 16);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.context = kv_value_context(v, &wo.context_len);
    assert_int_equal(kv_put(NULL, db, "many", 4, "one", 3, &wo), KV_OK);
    kv_value_free(v);
    assert_int_equal(kv_get(&v, db, "many", 4, NULL), KV_OK);
    assert_int_equal(kv_value_sibling_count(v), 1);
    kv_value_free(v);
    kv_close(db);
}

/* Deletes and expiries replicate: a TTL is an absolute time every replica
 * honours. */
static void ttl_and_deletes_replicate(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = KV_CONSISTENCY_ALL;
    wo.ttl_s = 1;
    assert_int_equal(kv_put(NULL, db, "brief", 5, "x", 1, &wo), KV_OK);
    kv_value *v = NULL;
    assert_int_equal(kv_get(&v, db, "brief", 5, NULL), KV_OK);
    assert_true(kv_value_expiry_ms(v) > 0);
    kv_value_free(v);
    int rc = KV_OK;
    for (int i = 0; i < 60 && rc == KV_OK; i++) { /* bounded: up to ~6 s */
        kv_read_options ro = KV_READ_OPTIONS_INIT;
        ro.consistency = KV_CONSISTENCY_ALL;
        rc = kv_get(&v, db, "brief", 5, &ro);
        kv_value_free(v);
        if (rc == KV_OK)
            sleep_ms(100);
    }
    assert_int_equal(rc, KV_ENOTFOUND);
    kv_close(db);
}

static void lww_policy_keeps_the_later_write(void **state)
{
    cluster *c = *state;
    make_siblings(c, "lww");
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    assert_int_equal(get_is(db, "lww", "b", KV_CONSISTENCY_QUORUM), KV_OK);
    kv_value *v = NULL;
    assert_int_equal(kv_get(&v, db, "lww", 3, NULL), KV_OK);
    assert_int_equal(kv_value_sibling_count(v), 1);
    kv_value_free(v);
    /* An LWW write supersedes both. */
    assert_int_equal(put_at(db, "lww", "c", KV_CONSISTENCY_ALL), KV_OK);
    kv_close(db);
    db = client_all(c, KV_POLICY_SIBLINGS, NULL);
    assert_int_equal(kv_get(&v, db, "lww", 3, NULL), KV_OK);
    assert_int_equal(kv_value_sibling_count(v), 1);
    kv_value_free(v);
    kv_close(db);
}

/* Joins the siblings in byte order with '+'. */
typedef struct async_get {
    int calls;
    int status;
    char value[64];
} async_get;

static void async_got(void *ctx, kv_result *r)
{
    async_get *g = ctx;
    g->calls++;
    g->status = r->status;
    if (r->value) {
        size_t len;
        const char *d = kv_value_data(r->value, &len);
        snprintf(g->value, sizeof g->value, "%.*s", (int)len, d);
        kv_value_free(r->value);
    }
}

static int join_siblings(void *ctx, kv_merge_result *out, const void *key, size_t key_len,
                         const kv_value *sibs)
{
    (void)key;
    (void)key_len;
    int *calls = ctx;
    (*calls)++;
    size_t n = kv_value_sibling_count(sibs);
    char parts[16][64];
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *s = kv_value_sibling(sibs, i, &len);
        snprintf(parts[i], sizeof parts[i], "%.*s", (int)len, s);
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            if (strcmp(parts[j], parts[i]) < 0) {
                char t[64];
                memcpy(t, parts[i], 64);
                memcpy(parts[i], parts[j], 64);
                memcpy(parts[j], t, 64);
            }
    char joined[1024] = "";
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(joined, "+");
        strcat(joined, parts[i]);
    }
    return kv_merge_result_set(out, joined, strlen(joined));
}

static void merge_policy_calls_back_and_writes_back(void **state)
{
    cluster *c = *state;
    make_siblings(c, "merge");
    int calls = 0;
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.policy = KV_POLICY_MERGE;
    co.merge = join_siblings;
    co.merge_ctx = &calls;
    const char *eps[] = {c->nodes[0].listen};
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, 1, &co), KV_OK);
    assert_int_equal(get_is(db, "merge", "a+b", KV_CONSISTENCY_QUORUM), KV_OK);
    assert_int_equal(calls, 1);
    /* Written back: one value for everyone, and no second call. */
    assert_int_equal(get_is(db, "merge", "a+b", KV_CONSISTENCY_QUORUM), KV_OK);
    assert_int_equal(calls, 1);
    kv_close(db);
    kv *sib = client_all(c, KV_POLICY_SIBLINGS, NULL);
    kv_value *v = NULL;
    assert_int_equal(kv_get(&v, sib, "merge", 5, NULL), KV_OK);
    assert_int_equal(kv_value_sibling_count(v), 1);
    kv_value_free(v);
    kv_close(sib);
    /* The asynchronous get runs the same steps (merge, write back, read
     * again) on the client's loop before its callback. */
    make_siblings(c, "merge-async");
    calls = 0;
    co.manual_loop = 1;
    assert_int_equal(kv_client_open(&db, eps, 1, &co), KV_OK);
    async_get got = {0};
    assert_int_equal(kv_get_async(db, "merge-async", 11, NULL, async_got, &got), KV_OK);
    for (int turn = 0; turn < 600 && !got.calls; turn++)
        assert_true(kv_run(db, 100) >= 0);
    assert_int_equal(got.calls, 1);
    assert_int_equal(got.status, KV_OK);
    assert_string_equal(got.value, "a+b");
    assert_int_equal(calls, 1);
    kv_close(db);
    co.manual_loop = 0;
    /* MERGE without a callback is refused at open. */
    co.merge = NULL;
    assert_int_equal(kv_client_open(&db, eps, 1, &co), KV_EINVAL);
}

typedef struct writer {
    kv *db;
    int id;
    int acked;
} writer;

static void *write_distinct(void *arg)
{
    writer *w = arg;
    char key[64];
    for (int k = 0; k < 150; k++) {
        snprintf(key, sizeof key, "w%d-%d", w->id, k);
        if (put_at(w->db, key, key, KV_CONSISTENCY_QUORUM) == KV_OK)
            w->acked++;
    }
    return NULL;
}

/* Four threads on one client and two child processes write distinct keys;
 * every acknowledged write is then readable at QUORUM. */
static void concurrent_writers_lose_nothing(void **state)
{
    cluster *c = *state;
    pid_t kids[2];
    for (int p = 0; p < 2; p++) {
        kids[p] = fork();
        if (kids[p] == 0) {
            kv *db = client_of(c, p);
            writer w = {db, 10 + p, 0};
            write_distinct(&w);
            kv_close(db);
            _exit(w.acked == 150 ? 0 : 1);
        }
    }
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    pthread_t threads[4];
    writer ws[4];
    for (int t = 0; t < 4; t++) {
        ws[t] = (writer){db, t, 0};
        pthread_create(&threads[t], NULL, write_distinct, &ws[t]);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(threads[t], NULL);
        assert_int_equal(ws[t].acked, 150);
    }
    for (int p = 0; p < 2; p++) {
        int status;
        waitpid(kids[p], &status, 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    int lost = 0;
    char key[64];
    for (int id = 0; id < 12; id++) {
        if (id >= 4 && id < 10)
            continue;
        for (int k = 0; k < 150; k++) {
            snprintf(key, sizeof key, "w%d-%d", id, k);
            lost += get_is(db, key, key, KV_CONSISTENCY_QUORUM) != KV_OK;
        }
    }
    printf("concurrent writers: %d acknowledged, %d lost\n", 6 * 150, lost);
    assert_int_equal(lost, 0);
    kv_close(db);
}

/* ------------------------------------------------------------------ scan */

#define SCAN_STABLE 300
#define SCAN_DELETED 50

typedef struct scan_writer {
    kv *db;
    int id;
    atomic_int *stop;
    atomic_int acked; /* new keys w<id>-0 .. w<id>-(acked-1) were acknowledged */
    int overwrites;   /* acknowledged overwrites of stable keys */
} scan_writer;

/* Writes new keys and overwrites stable ones until told to stop (at most
 * 3000 writes: bounded even if the scan never ends). */
static void *scan_write(void *arg)
{
    scan_writer *w = arg;
    char key[64];
    for (int k = 0; k < 3000 && !atomic_load(w->stop); k++) {
        if (k % 3 == 2) {
            snprintf(key, sizeof key, "s-%03d", k % SCAN_STABLE);
            w->overwrites += put_at(w->db, key, "rewritten", KV_CONSISTENCY_QUORUM) == KV_OK;
            continue;
        }
        snprintf(key, sizeof key, "w%d-%d", w->id, atomic_load(&w->acked));
        if (put_at(w->db, key, key, KV_CONSISTENCY_QUORUM) != KV_OK)
            break; /* later keys must stay unwritten for the coverage check */
        atomic_fetch_add(&w->acked, 1);
    }
    return NULL;
}

/* Counts of what one whole scan returned. */
typedef struct scan_tally {
    int stable[SCAN_STABLE];
    int deleted;
    int other;
    int pages;
    char **written; /* keys "w..." seen, for the coverage check */
    int n_written;
} scan_tally;

/* Scans everything through db (pages of `limit`) and tallies it; a key
 * returned twice fails the test. KV_OK or the first page's failure. */
static int scan_everything(kv *db, size_t limit, kv_consistency level, int keys_only,
                           scan_tally *t)
{
    memset(t, 0, sizeof *t);
    t->written = calloc(20000, sizeof *t->written);
    kv_scan_options so = KV_SCAN_OPTIONS_INIT;
    so.consistency = level;
    so.keys_only = keys_only;
    char *cursor = NULL;
    int rc = KV_OK;
    /* Bounded: a page holds at least one key or moves past a stretch. */
    for (int round = 0; round < 20000; round++) {
        kv_scan_page *page = NULL;
        rc = kv_scan(&page, db, cursor, limit, &so);
        if (rc != KV_OK)
            break;
        t->pages++;
        for (size_t i = 0; i < kv_scan_page_count(page); i++) {
            size_t len;
            const char *key = kv_scan_page_key(page, i, &len);
            const kv_value *v = kv_scan_page_value(page, i);
            assert_true(keys_only ? v == NULL : v != NULL);
            if (len == 5 && strncmp(key, "s-", 2) == 0) {
                int k = atoi(key + 2);
                assert_true(k >= 0 && k < SCAN_STABLE);
                if (t->stable[k]++)
                    fail_msg("%s returned twice", key);
            } else if (strncmp(key, "d-", 2) == 0) {
                t->deleted++;
            } else if (key[0] == 'w' && t->n_written < 20000) {
                for (int k = 0; k < t->n_written; k++)
                    if (strcmp(t->written[k], key) == 0)
                        fail_msg("%s returned twice", key);
                t->written[t->n_written++] = strdup(key);
            } else {
                t->other++;
            }
        }
        const char *next = kv_scan_page_cursor(page);
        free(cursor);
        cursor = next ? strdup(next) : NULL;
        kv_scan_page_free(page);
        if (!cursor)
            break;
    }
    assert_null(cursor);
    return rc;
}

static void tally_free(scan_tally *t)
{
    for (int k = 0; k < t->n_written; k++)
        free(t->written[k]);
    free(t->written);
}

static int tally_has(const scan_tally *t, const char *key)
{
    for (int k = 0; k < t->n_written; k++)
        if (strcmp(t->written[k], key) == 0)
            return 1;
    return 0;
}

/* Scans of a three-node cluster while writers run: every stable key exactly
 * once, deleted keys never, new keys at most once; after the writers stop,
 * every acknowledged key. Through client handles to different nodes (each
 * node coordinates), at QUORUM and ALL, keys only, and over HTTP; with a
 * node killed, QUORUM still answers and ALL is unavailable. */
static void scan_with_writes_running(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    char key[64];
    for (int k = 0; k < SCAN_STABLE; k++) {
        snprintf(key, sizeof key, "s-%03d", k);
        assert_int_equal(put_at(db, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
    }
    for (int k = 0; k < SCAN_DELETED; k++) {
        snprintf(key, sizeof key, "d-%03d", k);
        assert_int_equal(put_at(db, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
        kv_write_options wo = KV_WRITE_OPTIONS_INIT;
        assert_int_equal(kv_delete(NULL, db, key, strlen(key), &wo), KV_OK);
    }

    atomic_int stop_flag = 0;
    scan_writer ws[2];
    pthread_t threads[2];
    for (int t = 0; t < 2; t++) {
        ws[t] = (scan_writer){db, t, &stop_flag, 0, 0};
        pthread_create(&threads[t], NULL, scan_write, &ws[t]);
    }
    /* The writers are under way before the first scan (bounded wait). */
    for (int i = 0; i < 1000 && (atomic_load(&ws[0].acked) < 5 || atomic_load(&ws[1].acked) < 5);
         i++)
        sleep_ms(10);
    /* Scans while the writers run, each coordinated by another node. */
    static const struct { size_t limit; kv_consistency level; int keys_only; } runs[] = {
        {17, KV_CONSISTENCY_QUORUM, 0},
        {100, KV_CONSISTENCY_ALL, 1},
        {1, KV_CONSISTENCY_ONE, 0},
    };
    for (int r = 0; r < 3; r++) {
        kv *via = client_of(c, r);
        scan_tally t;
        int rc = scan_everything(via, runs[r].limit, runs[r].level, runs[r].keys_only, &t);
        if (rc != KV_OK)
            fail_msg("scan %d: %s: %s", r, kv_strerror(rc), kv_error_last());
        for (int k = 0; k < SCAN_STABLE; k++)
            if (t.stable[k] != 1)
                fail_msg("scan %d: s-%03d returned %d times", r, k, t.stable[k]);
        assert_int_equal(t.deleted, 0);
        assert_int_equal(t.other, 0);
        printf("scan %d (limit %zu): %d pages, %d new keys seen while written\n", r,
               runs[r].limit, t.pages, t.n_written);
        tally_free(&t);
        kv_close(via);
    }
    atomic_store(&stop_flag, 1);
    for (int t = 0; t < 2; t++)
        pthread_join(threads[t], NULL);
    int acked[2] = {atomic_load(&ws[0].acked), atomic_load(&ws[1].acked)};
    printf("writers: %d and %d new keys, %d and %d overwrites acknowledged\n", acked[0],
           acked[1], ws[0].overwrites, ws[1].overwrites);
    assert_true(acked[0] >= 5 && acked[1] >= 5);

    /* Quiet now: every acknowledged write is in a QUORUM scan. */
    scan_tally t;
    assert_int_equal(scan_everything(db, 500, KV_CONSISTENCY_QUORUM, 0, &t), KV_OK);
    for (int w = 0; w < 2; w++)
        for (int k = 0; k < acked[w]; k++) {
            snprintf(key, sizeof key, "w%d-%d", w, k);
            if (!tally_has(&t, key))
                fail_msg("acknowledged %s missing from the scan", key);
        }
    assert_int_equal(t.n_written, acked[0] + acked[1]);
    int total = SCAN_STABLE + t.n_written;
    tally_free(&t);

    /* Over HTTP: the first page of node 3's. */
    body b = {0};
    assert_int_equal(http(&c->nodes[2], "GET", "/v1/kv?limit=10&keysOnly=true", NULL, &b), 200);
    cJSON *page = cJSON_Parse(b.data);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(page, "items")), 10);
    assert_true(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(page, "cursor")));
    cJSON_Delete(page);
    /* Each node describes its own store's figures (kvctl members). */
    char *json = NULL;
    assert_int_equal(kv_cluster_describe(&json, db), KV_OK);
    cJSON *desc = cJSON_Parse(json);
    cJSON *storage = cJSON_GetObjectItemCaseSensitive(desc, "storage");
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(storage, "estimatedKeys")));
    assert_true(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(storage, "liveSstBytes")));
    cJSON_Delete(desc);
    kv_string_free(json);

    /* One node down: QUORUM scans still see everything; ALL cannot. */
    stop(c, 2, SIGKILL);
    kv *via = client_of(c, 0);
    assert_int_equal(scan_everything(via, 1000, KV_CONSISTENCY_QUORUM, 1, &t), KV_OK);
    assert_int_equal(SCAN_STABLE + t.n_written, total);
    tally_free(&t);
    kv_scan_page *p = NULL;
    kv_scan_options so = KV_SCAN_OPTIONS_INIT;
    so.consistency = KV_CONSISTENCY_ALL;
    int rc = kv_scan(&p, via, NULL, 10, &so);
    assert_true(rc == KV_EUNAVAILABLE || rc == KV_ETIMEDOUT);
    assert_null(p);
    kv_close(via);
    kv_close(db);
}

/* Replicas that differ: n3 holds the keys written before it went down, and
 * misses those written and deleted while it was down (until hints reach
 * it). Small pages through n3 at QUORUM merge its sparse answer with another
 * home's dense one full of tombstones; each page must stop at the shorter
 * answer's last key, or the live keys past it that n3 lacks are skipped:
 * every key exactly once whatever n3 holds yet. */
static void scan_merges_replicas_that_differ(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    char key[64];
    for (int k = 0; k < SCAN_STABLE; k++) {
        if (k == SCAN_STABLE / 3)
            stop(c, 2, SIGKILL);
        snprintf(key, sizeof key, "s-%03d", k);
        assert_int_equal(put_at(db, key, key, k < SCAN_STABLE / 3 ? KV_CONSISTENCY_ALL
                                                                  : KV_CONSISTENCY_QUORUM),
                         KV_OK);
    }
    for (int k = 0; k < 3 * SCAN_DELETED; k++) {
        snprintf(key, sizeof key, "d-%03d", k);
        assert_int_equal(put_at(db, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
        kv_write_options wo = KV_WRITE_OPTIONS_INIT;
        assert_int_equal(kv_delete(NULL, db, key, strlen(key), &wo), KV_OK);
    }
    start(c, 2);
    kv *via = client_of(c, 2);
    static const size_t limits[] = {3, 7, 1000};
    for (int r = 0; r < 3; r++) {
        scan_tally t;
        int rc = scan_everything(via, limits[r], KV_CONSISTENCY_QUORUM, r == 1, &t);
        if (rc != KV_OK)
            fail_msg("scan with pages of %zu: %s: %s", limits[r], kv_strerror(rc),
                     kv_error_last());
        for (int k = 0; k < SCAN_STABLE; k++)
            if (t.stable[k] != 1)
                fail_msg("pages of %zu: s-%03d returned %d times", limits[r], k, t.stable[k]);
        assert_int_equal(t.n_written + t.deleted + t.other, 0);
        tally_free(&t);
    }
    kv_close(via);
    kv_close(db);
}

/* A client learns a 3-member ring, then the cluster grows to 4. Its writes
 * reach a node that forwards them, and its reads make it learn the ring
 * again; a fresh client sees the same data. */
static void stale_ring_still_answers(void **state)
{
    cluster *c = *state;
    kv *old = client_all(c, KV_POLICY_LWW, NULL);
    assert_int_equal(put_at(old, "before", "x", KV_CONSISTENCY_QUORUM), KV_OK);
    for (int i = 0; i < 3; i++)
        stop(c, i, SIGTERM);
    set_peers(c, 4);
    for (int i = 0; i < 4; i++)
        spawn(c, i);
    for (int i = 0; i < 4; i++)
        wait_complete(c, i);
    char key[32];
    for (int k = 0; k < 40; k++) {
        snprintf(key, sizeof key, "grown-%d", k);
        assert_int_equal(put_at(old, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
    }
    for (int k = 0; k < 40; k++) {
        snprintf(key, sizeof key, "grown-%d", k);
        assert_int_equal(get_is(old, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
    }
    kv_close(old);
    kv *fresh = client_of(c, 3);
    for (int k = 0; k < 40; k++) {
        snprintf(key, sizeof key, "grown-%d", k);
        assert_int_equal(get_is(fresh, key, key, KV_CONSISTENCY_ALL), KV_OK);
    }
    kv_close(fresh);
}

/* A node that restarts while another member is down serves at once, from
 * the member ids it saved; a node never started before cannot while no
 * member answers, and takes the cluster's record from the first that does. */
static void restart_while_a_member_is_down(void **state)
{
    cluster *c = *state;
    stop(c, 1, SIGKILL);
    stop(c, 2, SIGTERM);
    start(c, 2); /* n2 is down: n3 completes its ring from the saved ids */
    kv *db = client_of(c, 2);
    assert_int_equal(put_at(db, "after-restart", "yes", KV_CONSISTENCY_QUORUM), KV_OK);
    assert_int_equal(get_is(db, "after-restart", "yes", KV_CONSISTENCY_QUORUM), KV_OK);
    kv_close(db);
    /* n2 comes back and confirms its id; the key reaches it through ALL. */
    start(c, 1);
    db = client_all(c, KV_POLICY_LWW, NULL);
    assert_int_equal(get_is(db, "after-restart", "yes", KV_CONSISTENCY_ALL), KV_OK);
    kv_close(db);
    /* A fresh data directory has nothing saved: alone it stays incomplete.
     * (With n1 up it would fetch n1's record as soon as gossip told it of
     * n1's epoch, so every other member is down.) */
    stop(c, 0, SIGKILL);
    stop(c, 1, SIGKILL);
    stop(c, 2, SIGKILL);
    test_rmtree(c->nodes[2].dir);
    c->nodes[2].dir = test_tempdir();
    spawn(c, 2);
    db = client_of(c, 2);
    char *json = NULL;
    int rc = KV_EUNAVAILABLE;
    for (int i = 0; i < 50 && rc != KV_OK; i++) { /* bounded: until it answers */
        rc = kv_cluster_describe(&json, db);
        if (rc != KV_OK)
            sleep_ms(100);
    }
    assert_int_equal(rc, KV_OK);
    assert_non_null(strstr(json, "\"complete\":false"));
    kv_string_free(json);
    assert_int_equal(put_at(db, "k", "v", KV_CONSISTENCY_ONE), KV_EUNAVAILABLE);
    kv_close(db);
    /* n1 comes back holding the record (epoch 1, three members): n3 takes
     * it, as a member started after the others formed the cluster does. */
    start(c, 0);
    wait_complete(c, 2);
    db = client_of(c, 2);
    assert_int_equal(put_at(db, "k", "v", KV_CONSISTENCY_ONE), KV_OK);
    kv_close(db);
}

/* The status of member `id` as node i reports it ("up", "down", ...), in
 * out; 0 when node i answered. */
static int status_seen_by(const cluster *c, int i, const char *id, char *out, size_t size)
{
    kv *db = client_of(c, i);
    char *json = NULL;
    int rc = kv_cluster_describe(&json, db);
    kv_close(db);
    if (rc != KV_OK)
        return -1;
    cJSON *root = cJSON_Parse(json);
    kv_string_free(json);
    const cJSON *m;
    out[0] = 0;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(root, "members")) {
        const cJSON *mid = cJSON_GetObjectItem(m, "nodeId");
        const cJSON *st = cJSON_GetObjectItem(m, "status");
        if (cJSON_IsString(mid) && strcmp(mid->valuestring, id) == 0 && cJSON_IsString(st))
            snprintf(out, size, "%s", st->valuestring);
    }
    cJSON_Delete(root);
    return 0;
}

/* Polls (bounded, 100 ms steps) until node i sees id as `want`; returns the
 * milliseconds it took, or -1. */
static long wait_status(const cluster *c, int i, const char *id, const char *want, long limit_ms)
{
    char st[32];
    for (long waited = 0; waited <= limit_ms; waited += 100) {
        if (status_seen_by(c, i, id, st, sizeof st) == 0 && strcmp(st, want) == 0)
            return waited;
        sleep_ms(100);
    }
    return -1;
}

/* Gossip and phi: a paused node is marked down within seconds and up again
 * when it resumes; a node stopped cleanly shows as stopped at once, and a
 * killed one as down. */
static void failures_are_detected(void **state)
{
    cluster *c = *state;
    for (int i = 0; i < 3; i++)
        assert_true(wait_status(c, 0, c->nodes[i].id, "up", 10000) >= 0);
    /* A malformed or empty gossip table is refused, and the node goes on. */
    kvi_client *raw = NULL;
    const char *eps[] = {c->nodes[0].listen};
    assert_int_equal(kvi_client_open(&raw, eps, 1, NULL, NULL), KV_OK);
    /* empty; a table cut short; an unknown format; a count of 5 with no
     * entries */
    static const unsigned char bad[4][4] = {{0}, {1, 0}, {9, 0, 0}, {1, 0, 5}};
    static const size_t bad_len[4] = {0, 2, 3, 3};
    for (size_t i = 0; i < 4; i++) {
        kvi_fanout fo;
        kvi_fanout_init(&fo);
        kvi_request req = {.opcode = KVI_OP_GOSSIP, .value = {bad[i], bad_len[i]}};
        kvi_call *call = kvi_call_start(raw, &fo, &req, 0, 0);
        struct timespec deadline = kvi_deadline_after(3000);
        kvi_fanout_wait(&fo, 1, 1, &deadline);
        kvi_frame_header h;
        unsigned char *reply = NULL;
        kvi_response resp;
        assert_int_equal(kvi_call_finish(call, &h, &reply), KV_OK);
        assert_int_equal(kvi_call_decode(&resp, KVI_OP_GOSSIP, &h, reply), KV_EINVAL);
        free(reply);
        kvi_fanout_destroy(&fo);
    }
    kvi_client_close(raw);
    assert_true(wait_status(c, 0, "n2", "up", 5000) >= 0);
    assert_true(kvd_pause(c->nodes[2].pid));
    long down = wait_status(c, 0, "n3", "down", 20000);
    printf("a paused node (SIGSTOP) was marked down after %ld ms\n", down);
    assert_true(down >= 0);
    /* Held down, the paused replica is skipped: QUORUM writes and reads
     * through n1 go on. Without the skip, once the 256 request slots to n3
     * are taken, each write waits 2 s for one, and this loop would not end
     * within the test's time limit. */
    body b;
    char path[64], value[64];
    for (int k = 0; k < 1000; k++) {
        snprintf(path, sizeof path, "/v1/kv/while-paused-%d?consistency=quorum", k);
        snprintf(value, sizeof value, "{\"value\":\"v%d\"}", k);
        assert_int_equal(http(&c->nodes[0], "PUT", path, value, &b), 200);
        assert_int_equal(http(&c->nodes[0], "GET", path, NULL, &b), 200);
    }
    /* A client learns the statuses from the members and sends writes first
     * to replicas that are up. Without that, every key whose first replica
     * is n3 would wait out the timeout and come back as an unknown outcome. */
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    /* A first read makes the client learn the ring (not found is fine). */
    get_is(db, "learn-the-ring", "", KV_CONSISTENCY_ONE);
    int learned = 0;
    for (int t = 0; t < 100 && !learned; t++) { /* bounded: up to ~10 s */
        learned = kvi_router_is_down(db->router, "n3");
        if (!learned)
            sleep_ms(100);
    }
    assert_true(learned);
    char key[32];
    for (int k = 0; k < 300; k++) {
        snprintf(key, sizeof key, "client-while-paused-%d", k);
        assert_int_equal(put_at(db, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
        assert_int_equal(get_is(db, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
    }
    kv_close(db);
    kill(c->nodes[2].pid, SIGCONT);
    long up = wait_status(c, 0, "n3", "up", 10000);
    printf("and up again %ld ms after SIGCONT\n", up);
    assert_true(up >= 0);
    stop(c, 1, SIGTERM);
    long stopped = wait_status(c, 0, "n2", "stopped", 3000);
    printf("a node stopped cleanly showed as stopped after %ld ms\n", stopped);
    assert_true(stopped >= 0);
    stop(c, 2, SIGKILL);
    long killed = wait_status(c, 0, "n3", "down", 20000);
    printf("a killed node (kill -9) was marked down after %ld ms\n", killed);
    assert_true(killed >= 0);
    /* Both still members, not forgotten. */
    db = client_of(c, 0);
    char *json = NULL;
    assert_int_equal(kv_cluster_describe(&json, db), KV_OK);
    assert_non_null(strstr(json, "\"nodeId\":\"n2\""));
    assert_non_null(strstr(json, "\"nodeId\":\"n3\""));
    kv_string_free(json);
    kv_close(db);
}

/* ------------------------------------------------- membership by gossip */

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* How many members node i lists (-1: no answer), and how many of them it
 * says are up, in *up. */
static int members_seen_by(const cluster *c, int i, int *up)
{
    cJSON *root = described_by(c, i);
    if (!root)
        return -1;
    int n = 0;
    *up = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(root, "members")) {
        const cJSON *st = cJSON_GetObjectItem(m, "status");
        n++;
        *up += cJSON_IsString(st) && strcmp(st->valuestring, "up") == 0;
    }
    cJSON_Delete(root);
    return n;
}

/* The generation node i reports for member id, or 0. */
static double generation_seen_by(const cluster *c, int i, const char *id)
{
    cJSON *root = described_by(c, i);
    double gen = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItem(root, "members")) {
        const cJSON *mid = cJSON_GetObjectItem(m, "nodeId");
        const cJSON *g = cJSON_GetObjectItem(m, "generation");
        if (cJSON_IsString(mid) && strcmp(mid->valuestring, id) == 0 && cJSON_IsNumber(g))
            gen = g->valuedouble;
    }
    cJSON_Delete(root);
    return gen;
}

/* Members in a client's view of the ring (0: it has none). */
static size_t client_view_size(kv *db)
{
    kvi_view *v = kvi_router_view(db->router);
    size_t n = v ? v->n : 0;
    kvi_view_unref(v);
    return n;
}

/* Five nodes started with --peers; a sixth started with only --seeds of
 * one of them (a fresh data directory) becomes a member that every node
 * lists as up, and a client opened before it joined learns it. Requests
 * through that client go on during the join and none fails. Then the
 * sixth restarts with its seed stopped: it serves at once, with every
 * member, from what it saved. */
static void a_node_joins_through_seeds(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    char key[32];
    /* Written at ALL: a member joining takes one replica slot of a range,
     * and no data moves to it (no streaming yet), so any two of the three
     * new replicas still include one that has the key. */
    for (int k = 0; k < 100; k++) {
        snprintf(key, sizeof key, "before-%d", k);
        assert_int_equal(put_at(db, key, key, KV_CONSISTENCY_ALL), KV_OK);
    }
    assert_int_equal(client_view_size(db), 5);

    c->nodes[5].seeds = c->nodes[0].listen;
    long t0 = now_ms(), all_know = -1, client_knows = -1;
    spawn_joining(c, 5);
    int requests = 0, during = 0;
    for (int step = 0; step < 600 && (all_know < 0 || client_knows < 0); step++) {
        /* bounded: 600 rounds of a write, a read and the checks (~60 s) */
        snprintf(key, sizeof key, "during-%d", during++);
        int rc = put_at(db, key, key, KV_CONSISTENCY_QUORUM);
        if (rc != KV_OK)
            fprintf(stderr, "put %s during the join: %s\n", key, kv_error_last());
        assert_int_equal(rc, KV_OK);
        snprintf(key, sizeof key, "before-%d", step % 100);
        rc = get_is(db, key, key, KV_CONSISTENCY_QUORUM);
        if (rc != KV_OK)
            fprintf(stderr, "get %s during the join: %s\n", key, kv_error_last());
        assert_int_equal(rc, KV_OK);
        requests += 2;
        if (all_know < 0) {
            int known = 1, up = 0;
            for (int i = 0; i < 6 && known; i++)
                known = members_seen_by(c, i, &up) == 6 && up == 6;
            if (known)
                all_know = now_ms() - t0;
        }
        if (client_knows < 0 && client_view_size(db) == 6)
            client_knows = now_ms() - t0;
        sleep_ms(50);
    }
    printf("join: listed as up by all 6 members after %ld ms; the client's ring had 6 "
           "members after %ld ms; %d requests during the join, none failed\n",
           all_know, client_knows, requests);
    for (int i = 0; i < 6 && all_know < 0; i++) {
        /* Say who did not see whom, before failing. */
        cJSON *root = described_by(c, i);
        char *text = root ? cJSON_PrintUnformatted(root) : NULL;
        fprintf(stderr, "n%d describes: %s\n", i + 1, text ? text : "(no answer)");
        cJSON_free(text);
        cJSON_Delete(root);
    }
    assert_true(all_know >= 0);
    assert_true(client_knows >= 0);

    /* After the join: writes at QUORUM succeed and reads return them. The
     * keys written during the join are read at ALL first: one written
     * through a ring without the sixth member is on two of its old
     * replicas, which a QUORUM of the new ring may miss until repaired
     * (no streaming on join yet); ALL reads every replica and repairs.
     * ALL needs every replica reachable: a joining node that was started
     * again on new ports (a port taken by another test) may still be known
     * at its first address to the client for a moment, so an unavailable
     * read is tried again, for at most 30 s in all; any other answer
     * fails at once. */
    long until = now_ms() + 30000;
    for (int k = 0; k < during; k++) {
        snprintf(key, sizeof key, "during-%d", k);
        int rc;
        while ((rc = get_is(db, key, key, KV_CONSISTENCY_ALL)) == KV_EUNAVAILABLE &&
               now_ms() < until)
            sleep_ms(100);
        if (rc != KV_OK)
            fprintf(stderr, "get %s at ALL after the join: %s\n", key, kv_error_last());
        assert_int_equal(rc, KV_OK);
    }
    for (int k = 0; k < 100; k++) {
        snprintf(key, sizeof key, "after-%d", k);
        assert_int_equal(put_at(db, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
        assert_int_equal(get_is(db, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
    }
    kv_close(db);
    /* A client of the new member alone reads everything. */
    db = client_of(c, 5);
    for (int k = 0; k < 100; k++) {
        snprintf(key, sizeof key, "after-%d", k);
        assert_int_equal(get_is(db, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
        snprintf(key, sizeof key, "before-%d", k);
        assert_int_equal(get_is(db, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
    }
    kv_close(db);

    /* Restart of the joined node with its data directory and only --seeds,
     * its seed stopped: the member list comes from its store. */
    stop(c, 5, SIGTERM);
    stop(c, 0, SIGTERM);
    t0 = now_ms();
    spawn(c, 5);
    cJSON *root = NULL;
    for (int t = 0; t < 150 && !root; t++) { /* bounded: until it answers */
        root = described_by(c, 5);
        if (!root)
            sleep_ms(100);
    }
    assert_non_null(root);
    long answered = now_ms() - t0;
    int n = cJSON_GetArraySize(cJSON_GetObjectItem(root, "members"));
    int complete = cJSON_IsTrue(cJSON_GetObjectItem(root, "complete"));
    cJSON_Delete(root);
    printf("restart of the joined node, its seed down: first answer after %ld ms: %d members, "
           "complete %s\n", answered, n, complete ? "yes" : "no");
    assert_int_equal(n, 6);
    assert_true(complete);
    db = client_of(c, 5);
    for (int k = 0; k < 20; k++) {
        snprintf(key, sizeof key, "restarted-%d", k);
        assert_int_equal(put_at(db, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
        assert_int_equal(get_is(db, key, key, KV_CONSISTENCY_QUORUM), KV_OK);
    }
    kv_close(db);
}

/* A node stopped cleanly stays a member and shows as stopped; restarted,
 * it is up again, with a new generation. */
static void a_stopped_member_is_kept_and_comes_back(void **state)
{
    cluster *c = *state;
    for (int i = 0; i < 3; i++)
        assert_true(wait_status(c, 0, c->nodes[i].id, "up", 10000) >= 0);
    double before = generation_seen_by(c, 0, "n3");
    assert_true(before > 0);
    stop(c, 2, SIGTERM);
    long stopped = wait_status(c, 0, "n3", "stopped", 10000);
    assert_true(stopped >= 0);
    assert_true(wait_status(c, 1, "n3", "stopped", 10000) >= 0);
    int up = 0;
    assert_int_equal(members_seen_by(c, 0, &up), 3); /* not forgotten */
    long t0 = now_ms();
    spawn(c, 2);
    long back = wait_status(c, 0, "n3", "up", 20000);
    assert_true(back >= 0);
    double after = generation_seen_by(c, 0, "n3");
    printf("stopped member: shown as stopped after %ld ms, up again %ld ms after its "
           "restart; generation %.0f -> %.0f\n", stopped, now_ms() - t0, before, after);
    assert_true(after > before);
    assert_true(wait_status(c, 1, "n3", "up", 20000) >= 0);
}

/* CAS in a cluster: against a QUORUM read; a stale expected version is a
 * conflict that reports the current one. */
static void cas_in_a_cluster(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    uint64_t v = 0;
    assert_int_equal(kv_cas(&v, db, "cas", 3, 0, "one", 3, &wo), KV_OK);
    assert_int_equal(v, 1);
    uint64_t cur = 0;
    assert_int_equal(kv_cas(&cur, db, "cas", 3, 0, "two", 3, &wo), KV_ECONFLICT);
    assert_int_equal(cur, 1);
    assert_int_equal(kv_cas(&v, db, "cas", 3, 1, "two", 3, &wo), KV_OK);
    assert_int_equal(v, 2);
    kv *other = client_of(c, 2);
    assert_int_equal(get_is(other, "cas", "two", KV_CONSISTENCY_QUORUM), KV_OK);
    kv_close(other);
    kv_close(db);
}

/* ------------------------------------------------------------ SERIAL */

static int serial_write(kv *db, int kind, uint64_t *version, const char *key,
                        const char *value, uint64_t expected)
{
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = KV_CONSISTENCY_SERIAL;
    if (kind == 'p')
        return kv_put(version, db, key, strlen(key), value, strlen(value), &wo);
    if (kind == 'd')
        return kv_delete(version, db, key, strlen(key), &wo);
    return kv_cas(version, db, key, strlen(key), expected, value, strlen(value), &wo);
}

/* SERIAL through every door: the client handle (which hands each request to
 * a node) and HTTP on each node. Versions go 1, 2, 3 ... across a delete;
 * a SERIAL read sees the latest write whichever node coordinates it; and a
 * CAS with no level given is SERIAL (the acceptors then hold Paxos state:
 * a QUORUM put to that key goes through Paxos too, leaving one value). */
static void serial_everywhere_counts_versions(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    uint64_t v = 0;
    assert_int_equal(serial_write(db, 'p', &v, "ser", "a", 0), KV_OK);
    assert_int_equal(v, 1);
    assert_int_equal(serial_write(db, 'c', &v, "ser", "b", 1), KV_OK);
    assert_int_equal(v, 2);
    assert_int_equal(serial_write(db, 'c', &v, "ser", "x", 1), KV_ECONFLICT);
    assert_int_equal(v, 2);
    assert_int_equal(serial_write(db, 'd', &v, "ser", NULL, 0), KV_OK);
    assert_int_equal(v, 3);
    assert_int_equal(get_is(db, "ser", "", KV_CONSISTENCY_SERIAL), KV_ENOTFOUND);
    body b;
    assert_int_equal(http(&c->nodes[1], "POST", "/v1/kv/ser/cas?consistency=serial",
                          "{\"expectedVersion\":0,\"newValue\":\"c\"}", &b), 200);
    assert_non_null(strstr(b.data, "\"version\":4"));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(http(&c->nodes[i], "GET", "/v1/kv/ser?consistency=serial", NULL, &b),
                         200);
        assert_non_null(strstr(b.data, "\"version\":4"));
        kv *one = client_of(c, i);
        assert_int_equal(get_is(one, "ser", "c", KV_CONSISTENCY_SERIAL), KV_OK);
        /* The commit reached a majority before the answer: QUORUM sees it. */
        assert_int_equal(get_is(one, "ser", "c", KV_CONSISTENCY_QUORUM), KV_OK);
        kv_close(one);
    }
    assert_int_equal(http(&c->nodes[2], "GET", "/v1/kv/ser?consistency=strong", NULL, &b), 400);

    /* A CAS at the default level is SERIAL; a QUORUM put to the same key
     * then goes through Paxos and takes the next version. */
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    assert_int_equal(kv_cas(&v, db, "dflt", 4, 0, "one", 3, &wo), KV_OK);
    assert_int_equal(v, 1);
    assert_int_equal(put_at(db, "dflt", "two", KV_CONSISTENCY_QUORUM), KV_OK);
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_SERIAL;
    kv_value *val = NULL;
    assert_int_equal(kv_get(&val, db, "dflt", 4, &ro), KV_OK);
    assert_int_equal(kv_value_version(val), 2);
    assert_int_equal(kv_value_sibling_count(val), 1);
    kv_value_free(val);
    kv_close(db);
}

/* SERIAL needs a majority of the key's home replicas (here all three
 * nodes): with one down it goes on, with two down it is refused before
 * anything is applied, and the value is still there once they are back. */
static void serial_needs_a_majority_of_homes(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    uint64_t v = 0;
    assert_int_equal(serial_write(db, 'p', &v, "maj", "v1", 0), KV_OK);
    stop(c, 2, SIGKILL);
    assert_int_equal(serial_write(db, 'c', &v, "maj", "v2", 1), KV_OK);
    assert_int_equal(v, 2);
    assert_int_equal(get_is(db, "maj", "v2", KV_CONSISTENCY_SERIAL), KV_OK);
    stop(c, 1, SIGKILL);
    assert_int_equal(serial_write(db, 'c', &v, "maj", "v3", 2), KV_EUNAVAILABLE);
    assert_non_null(strstr(kv_error_last(), "not applied"));
    assert_int_equal(get_is(db, "maj", "v2", KV_CONSISTENCY_SERIAL), KV_EUNAVAILABLE);
    body b;
    assert_int_equal(http(&c->nodes[0], "POST", "/v1/kv/maj/cas?consistency=serial",
                          "{\"expectedVersion\":2,\"newValue\":\"v3\"}", &b), 503);
    kv_close(db);
    start(c, 1);
    start(c, 2);
    db = client_all(c, KV_POLICY_LWW, NULL);
    assert_int_equal(get_is(db, "maj", "v2", KV_CONSISTENCY_SERIAL), KV_OK);
    assert_int_equal(serial_write(db, 'c', &v, "maj", "v3", 2), KV_OK);
    assert_int_equal(v, 3);
    kv_close(db);
}

typedef struct incrementer {
    const cluster *c;
    int node;
    unsigned ok, unknown;
} incrementer;

/* Increments the counter "ctr" 40 times through one node, by a SERIAL read
 * then a CAS (at the default level) of the value it read plus one. */
static void *increment(void *arg)
{
    incrementer *in = arg;
    kv *db = client_of(in->c, in->node);
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_SERIAL;
    for (int done = 0, tries = 0; done < 40 && tries < 4000; tries++) {
        kv_value *val = NULL;
        unsigned long long n = 0;
        uint64_t seen = 0;
        int rc = kv_get(&val, db, "ctr", 3, &ro);
        if (rc == KV_OK) {
            size_t len;
            const char *d = kv_value_data(val, &len);
            char buf[32];
            snprintf(buf, sizeof buf, "%.*s", (int)len, d);
            n = strtoull(buf, NULL, 10);
            seen = kv_value_version(val);
        }
        kv_value_free(val);
        if (rc != KV_OK && rc != KV_ENOTFOUND)
            continue;
        char next[32];
        snprintf(next, sizeof next, "%llu", n + 1);
        rc = kv_cas(NULL, db, "ctr", 3, seen, next, strlen(next), NULL);
        in->ok += rc == KV_OK;
        in->unknown += rc == KV_EUNKNOWN_OUTCOME;
        done += rc == KV_OK || rc == KV_EUNKNOWN_OUTCOME;
    }
    kv_close(db);
    return NULL;
}

/* Issue 11's experiment with the client handle: concurrent increments by
 * CAS through all three nodes lose nothing that was acknowledged. */
static void serial_cas_counter_loses_no_increment(void **state)
{
    cluster *c = *state;
    enum { THREADS = 6 };
    incrementer in[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        in[i] = (incrementer){c, i % 3, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, increment, &in[i]), 0);
    }
    unsigned ok = 0, unknown = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        ok += in[i].ok;
        unknown += in[i].unknown;
    }
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_SERIAL;
    kv_value *val = NULL;
    assert_int_equal(kv_get(&val, db, "ctr", 3, &ro), KV_OK);
    size_t len;
    const char *d = kv_value_data(val, &len);
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)len, d);
    unsigned long long final = strtoull(buf, NULL, 10);
    printf("SERIAL counter: %u acknowledged, %u unknown, final %llu, version %llu\n", ok,
           unknown, final, (unsigned long long)kv_value_version(val));
    assert_true(ok > 0);
    assert_true(final >= ok);
    assert_true(final <= (unsigned long long)ok + unknown);
    /* Every version is one increment: versions are exactly 1, 2, 3 ... */
    assert_int_equal(kv_value_version(val), final);
    kv_value_free(val);
    kv_close(db);
}

/* An acceptor refuses a proposer whose ring gives the key other homes (a
 * ring change in progress must not make two majorities that do not
 * overlap), and a malformed ballot; and it goes on serving. */
static void acceptors_refuse_other_homes_and_bad_ballots(void **state)
{
    cluster *c = *state;
    kvi_client *raw = NULL;
    const char *eps[] = {c->nodes[0].listen};
    assert_int_equal(kvi_client_open(&raw, eps, 1, NULL, NULL), KV_OK);
    kvi_buf ballot = {0};
    kvi_ballot b = {.time_us = 1, .node = "n9", .counter = 0};
    kvi_ballot_encode(&ballot, &b);
    static const unsigned char short_ballot[] = {0, 0, 0};
    struct {
        kvi_bytes ballot;
        int want;
    } cases[] = {
        {{ballot.data, ballot.len}, KVI_ENOT_REPLICA}, /* homes hash 12345: not ours */
        {{short_ballot, sizeof short_ballot}, KV_EINVAL},
        {{NULL, 0}, KV_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kvi_fanout fo;
        kvi_fanout_init(&fo);
        kvi_request req = {.opcode = KVI_OP_PAXOS_PREPARE, .expected_version = 12345,
                           .key = {(const unsigned char *)"k", 1}, .context = cases[i].ballot};
        kvi_call *call = kvi_call_start(raw, &fo, &req, 0, 0);
        struct timespec deadline = kvi_deadline_after(3000);
        kvi_fanout_wait(&fo, 1, 1, &deadline);
        kvi_frame_header h;
        unsigned char *reply = NULL;
        kvi_response resp;
        assert_int_equal(kvi_call_finish(call, &h, &reply), KV_OK);
        assert_int_equal(kvi_call_decode(&resp, KVI_OP_PAXOS_PREPARE, &h, reply),
                         cases[i].want);
        free(reply);
        kvi_fanout_destroy(&fo);
    }
    kvi_buf_free(&ballot);
    kvi_client_close(raw);
    kv *db = client_of(c, 0);
    uint64_t v = 0;
    assert_int_equal(serial_write(db, 'p', &v, "k", "still", 0), KV_OK);
    assert_int_equal(get_is(db, "k", "still", KV_CONSISTENCY_SERIAL), KV_OK);
    kv_close(db);
}

/* ------------------------------------------------------ anti-entropy */

/* Node i's digest in 16 equal ranges (its own, not the cluster's). */
static void digest_of(const cluster *c, int i, uint64_t hashes[16], uint32_t keys[16])
{
    kv *db = client_of(c, i);
    kvi_ae_range ranges[16];
    uint32_t segments = 1u << KVI_DIGEST_DEFAULT_BITS;
    for (uint32_t r = 0; r < 16; r++)
        ranges[r] = (kvi_ae_range){r * (segments / 16), (r + 1) * (segments / 16)};
    kvi_buf req = {0}, answer = {0};
    kvi_ae_digest_request_encode(&req, KVI_DIGEST_DEFAULT_BITS, 1, ranges, 16);
    assert_int_equal(kvi_client_value_call(db->client, KVI_OP_AE_DIGEST, req.data, req.len, &answer),
                     KV_OK);
    assert_int_equal(kvi_ae_digest_answer_decode(hashes, keys, 16, answer.data, answer.len), 0);
    kvi_buf_free(&req);
    kvi_buf_free(&answer);
    kv_close(db);
}

/* How many times node i's log says it built its digest from the data. */
static int digest_builds(const cluster *c, int i)
{
    FILE *f = fopen(c->nodes[i].log_path, "r");
    assert_non_null(f);
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, "built the anti-entropy digest from the data") != NULL;
    fclose(f);
    return n;
}

/* The three replicas' digests are equal and hold `keys` keys. */
static void digests_agree(const cluster *c, uint64_t want_keys)
{
    uint64_t h[3][16];
    uint32_t k[3][16];
    for (int i = 0; i < 3; i++) {
        digest_of(c, i, h[i], k[i]);
        uint64_t total = 0;
        for (int r = 0; r < 16; r++)
            total += k[i][r];
        assert_int_equal(total, want_keys);
    }
    assert_memory_equal(h[0], h[1], sizeof h[0]);
    assert_memory_equal(h[0], h[2], sizeof h[0]);
    assert_memory_equal(k[0], k[1], sizeof k[0]);
    assert_memory_equal(k[0], k[2], sizeof k[0]);
}

/* Writes and deletes at ALL leave three equal digests (a delete keeps its
 * key: a tombstone). A clean restart keeps the digest (no build from the
 * data); a kill -9 loses it, and the restarted node builds it from its
 * data, equal to the others' again. */
static void digests_agree_across_a_clean_restart_and_kill_9(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    char key[32];
    for (int k = 0; k < 300; k++) {
        snprintf(key, sizeof key, "ae-%d", k);
        assert_int_equal(put_at(db, key, "v", KV_CONSISTENCY_ALL), KV_OK);
    }
    kv_write_options all = KV_WRITE_OPTIONS_INIT;
    all.consistency = KV_CONSISTENCY_ALL;
    for (int k = 0; k < 30; k++) {
        snprintf(key, sizeof key, "ae-%d", k);
        assert_int_equal(kv_delete(NULL, db, key, strlen(key), &all), KV_OK);
    }
    digests_agree(c, 300);
    for (int i = 0; i < 3; i++)
        assert_int_equal(digest_builds(c, i), 0); /* empty at the first start: nothing to build */

    stop(c, 1, SIGTERM);
    spawn(c, 1);
    for (int i = 0; i < 3; i++)
        wait_complete(c, i);
    assert_int_equal(digest_builds(c, 1), 0); /* kept, not built again */
    digests_agree(c, 300);

    for (int k = 300; k < 350; k++) {
        snprintf(key, sizeof key, "ae-%d", k);
        assert_int_equal(put_at(db, key, "w", KV_CONSISTENCY_ALL), KV_OK);
    }
    stop(c, 2, SIGKILL);
    spawn(c, 2);
    for (int i = 0; i < 3; i++)
        wait_complete(c, i);
    /* Built from the data in the background, while the node serves. */
    for (int tries = 0; tries < 300 && digest_builds(c, 2) < 1; tries++)
        sleep_ms(100);
    assert_int_equal(digest_builds(c, 2), 1);
    digests_agree(c, 350);
    print_message("anti-entropy: 350 keys (30 deleted); digests equal after a clean restart "
                  "(kept) and a kill -9 (built again in the background)\n");
    kv_close(db);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(replication_reaches_every_replica, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(digests_agree_across_a_clean_restart_and_kill_9,
                                        setup_lww, teardown),
        cmocka_unit_test_setup_teardown(consistency_levels_with_killed_nodes, setup_lww,
                                        teardown),
        cmocka_unit_test_setup_teardown(read_repair_fixes_a_stale_replica, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(a_node_counts_the_repairs_its_reads_make, setup_lww,
                                        teardown),
        cmocka_unit_test_setup_teardown(siblings_policy_keeps_and_resolves, setup_siblings,
                                        teardown),
        cmocka_unit_test_setup_teardown(sibling_limit_is_a_clear_error, setup_siblings,
                                        teardown),
        cmocka_unit_test_setup_teardown(ttl_and_deletes_replicate, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(lww_policy_keeps_the_later_write, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(merge_policy_calls_back_and_writes_back, setup_lww,
                                        teardown),
        cmocka_unit_test_setup_teardown(concurrent_writers_lose_nothing, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(scan_with_writes_running, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(scan_merges_replicas_that_differ, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(cas_in_a_cluster, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(serial_everywhere_counts_versions, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(serial_needs_a_majority_of_homes, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(serial_cas_counter_loses_no_increment, setup_lww,
                                        teardown),
        cmocka_unit_test_setup_teardown(acceptors_refuse_other_homes_and_bad_ballots, setup_lww,
                                        teardown),
        cmocka_unit_test_setup_teardown(stale_ring_still_answers, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(restart_while_a_member_is_down, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(failures_are_detected, setup_lww, teardown),
        cmocka_unit_test_setup_teardown(a_stopped_member_is_kept_and_comes_back, setup_lww,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_node_joins_through_seeds, setup_five, teardown),
    };
    if (getenv("KV_TEST_FILTER")) /* one test by name, when working on it */
        cmocka_set_test_filter(getenv("KV_TEST_FILTER"));
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return failed;
}
