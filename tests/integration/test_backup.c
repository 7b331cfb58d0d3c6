/* Backup and restore of real kvd processes (issue 17, item 9): a cluster of
 * three backed up through a client handle (what kvctl backup does), stopped,
 * wiped and restarted with --restore-from reads every key back, and a write
 * made after the backup is gone; bad input to POST /v1/admin/backup and to
 * the BACKUP frame gets a clear error while the node keeps serving.
 * The path of kvd comes from the KVD environment variable (set by ctest).
 * No timing assertions: every wait is a bounded poll for a state. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <cJSON.h>

#include "helpers.h"
#include "integration/http_client.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"
#include "format/frame.h"
#include "format/message.h"
#include <kv/kv.h>

#define NODES 3
#define N_KEYS 2000

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
    int n;
    char peers[512];
    char *backups; /* a directory for the backups */
} cluster;

static void spawn(cluster *c, int i, const char *restore_from)
{
    node *d = &c->nodes[i];
    const char *argv[20] = {kvd_path(), "--data", d->dir, "--listen", d->listen,
                            "--http", d->http, "--node-id", d->id,
                            "--internode-timeout", "2000", "--sync", "none"};
    int a = 13;
    if (c->n > 1) {
        argv[a++] = "--peers";
        argv[a++] = c->peers;
    }
    if (restore_from) {
        argv[a++] = "--restore-from";
        argv[a++] = restore_from;
    }
    argv[a] = NULL;
    d->pid = kvd_spawn(argv, d->log_path);
    assert_true(d->pid > 0);
}

static void stop_all(cluster *c, int sig)
{
    for (int i = 0; i < NODES; i++) {
        if (c->nodes[i].pid > 0 && !kvd_stop(c->nodes[i].pid, sig))
            fprintf(stderr, "%s did not exit within 15 s\n", c->nodes[i].id);
        c->nodes[i].pid = 0;
    }
}

/* Waits (bounded) for every node to describe a complete cluster; kills all
 * of them before failing, so no kvd outlives the test. */
static void wait_all(cluster *c)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 3000;
    co.connect_timeout_ms = 500;
    for (int i = 0; i < c->n; i++) {
        if (kvd_wait_complete(c->nodes[i].listen, &co))
            continue;
        char cmd[800];
        snprintf(cmd, sizeof cmd, "tail -n 20 '%s' >&2", c->nodes[i].log_path);
        if (system(cmd) != 0)
            fprintf(stderr, "(no log)\n");
        stop_all(c, SIGKILL);
        fail_msg("%s never completed its membership", c->nodes[i].id);
    }
}

static cluster *make(void **state, int n)
{
    cluster *c = calloc(1, sizeof *c);
    *state = c;
    c->n = n;
    c->backups = test_tempdir();
    for (int i = 0; i < NODES; i++) {
        node *d = &c->nodes[i];
        d->dir = test_tempdir();
        snprintf(d->id, sizeof d->id, "n%d", i + 1);
        snprintf(d->listen, sizeof d->listen, "127.0.0.1:%d", free_port());
        snprintf(d->http, sizeof d->http, "127.0.0.1:%d", free_port());
        snprintf(d->log_path, sizeof d->log_path, "%s.log", d->dir);
    }
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(c->peers, ",");
        strcat(c->peers, c->nodes[i].listen);
    }
    for (int i = 0; i < n; i++)
        spawn(c, i, NULL);
    wait_all(c);
    return c;
}

static int setup_three(void **state)
{
    make(state, NODES);
    return 0;
}

static int setup_one(void **state)
{
    make(state, 1);
    return 0;
}

static int teardown(void **state)
{
    cluster *c = *state;
    stop_all(c, SIGKILL);
    for (int i = 0; i < NODES; i++) {
        if (!getenv("KV_TEST_KEEP_LOGS"))
            unlink(c->nodes[i].log_path);
        test_rmtree(c->nodes[i].dir);
    }
    test_rmtree(c->backups);
    free(c);
    return 0;
}

static kv *client_all(const cluster *c)
{
    const char *eps[NODES];
    for (int i = 0; i < c->n; i++)
        eps[i] = c->nodes[i].listen;
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 5000;
    co.connect_timeout_ms = 500;
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, (size_t)c->n, &co), KV_OK);
    return db;
}

/* A client of the first node alone whose calls drive its loop
 * (manual_loop): it keeps no view of the cluster. */
static kv *client_manual(const cluster *c)
{
    const char *eps[] = {c->nodes[0].listen};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 5000;
    co.connect_timeout_ms = 500;
    co.manual_loop = 1;
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, 1, &co), KV_OK);
    return db;
}

static int put_at(kv *db, const char *key, const char *value, kv_consistency level)
{
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = level;
    return kv_put(NULL, db, key, strlen(key), value, strlen(value), &wo);
}

/* A read at level: KV_OK only when the value is exactly want. Retried a
 * few times (bounded) while the restarted cluster finds its members up. */
static int get_is(kv *db, const char *key, const char *want, kv_consistency level)
{
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = level;
    int rc = KV_EUNAVAILABLE;
    for (int attempt = 0; attempt < 20; attempt++) {
        kv_value *v = NULL;
        rc = kv_get(&v, db, key, strlen(key), &ro);
        if (rc == KV_OK) {
            size_t len;
            const char *data = kv_value_data(v, &len);
            if (len != strlen(want) || memcmp(data, want, len) != 0) {
                fprintf(stderr, "%s: got \"%.*s\", want \"%s\"\n", key, (int)len, data, want);
                rc = KV_ECONFLICT;
            }
        }
        kv_value_free(v);
        if (rc != KV_EUNAVAILABLE && rc != KV_ETIMEDOUT)
            break;
        sleep_ms(200);
    }
    return rc;
}

static void key_value(int i, char *key, size_t kcap, char *value, size_t vcap)
{
    snprintf(key, kcap, "bk-%05d", i);
    snprintf(value, vcap, "value-%d", i * 7);
}

static int file_exists(const char *dir, const char *sub, const char *name)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/%s/%s", dir, sub, name);
    struct stat st;
    return stat(p, &st) == 0;
}

/* ------------------------------------------------------------------ tests */

static void cluster_backup_wipe_restore_reads_every_key(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c);
    char key[32], value[64];
    for (int i = 0; i < N_KEYS; i++) {
        key_value(i, key, sizeof key, value, sizeof value);
        int rc = KV_EUNAVAILABLE;
        for (int attempt = 0; attempt < 10 && rc != KV_OK; attempt++)
            if ((rc = put_at(db, key, value, KV_CONSISTENCY_QUORUM)) != KV_OK)
                sleep_ms(100);
        assert_int_equal(rc, KV_OK);
    }

    char dir[700];
    snprintf(dir, sizeof dir, "%s/cluster-1", c->backups);
    char *report = NULL;
    int rc = kv_backup(&report, db, dir);
    if (rc != KV_OK)
        fprintf(stderr, "kv_backup: %s\nreport: %s\n", kv_error_last(), report ? report : "-");
    assert_int_equal(rc, KV_OK);
    cJSON *r = cJSON_Parse(report);
    kv_string_free(report);
    const cJSON *nodes = cJSON_GetObjectItem(r, "nodes");
    assert_int_equal(cJSON_GetArraySize(nodes), NODES);
    const cJSON *e;
    int seen = 0;
    cJSON_ArrayForEach(e, nodes) {
        assert_string_equal(cJSON_GetObjectItem(e, "status")->valuestring, "OK");
        const char *id = cJSON_GetObjectItem(e, "nodeId")->valuestring;
        char want[800];
        snprintf(want, sizeof want, "%s/%s", dir, id);
        assert_string_equal(cJSON_GetObjectItem(e, "path")->valuestring, want);
        assert_true(cJSON_GetObjectItem(e, "bytes")->valuedouble > 0);
        assert_true(file_exists(dir, id, "kv-backup.json"));
        assert_true(file_exists(dir, id, "CURRENT"));
        seen++;
    }
    assert_int_equal(seen, NODES);
    cJSON_Delete(r);

    /* The same directory again: every node refuses, each named. */
    report = NULL;
    assert_int_equal(kv_backup(&report, db, dir), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "3 of 3 node(s)"));
    assert_non_null(strstr(report, "already exists"));
    kv_string_free(report);

    /* A manual_loop client cannot back the cluster up (it has no view of
     * it), and says why. */
    kv *manual = client_manual(c);
    char manual_dir[700];
    snprintf(manual_dir, sizeof manual_dir, "%s/cluster-manual", c->backups);
    report = NULL;
    assert_int_equal(kv_backup(&report, manual, manual_dir), KV_EUNAVAILABLE);
    assert_non_null(strstr(kv_error_last(), "manual_loop"));
    kv_string_free(report);
    kv_close(manual);

    /* After the backup: a new key and an overwrite, on every replica. */
    assert_int_equal(put_at(db, "after-backup", "x", KV_CONSISTENCY_ALL), KV_OK);
    assert_int_equal(put_at(db, "bk-00000", "overwritten", KV_CONSISTENCY_ALL), KV_OK);
    kv_close(db);

    /* Stop all, wipe their data, restore each from its own subdirectory
     * (kvd picks DIR/<node-id>), start. */
    stop_all(c, SIGTERM);
    for (int i = 0; i < NODES; i++) {
        test_rmtree(c->nodes[i].dir);
        c->nodes[i].dir = test_tempdir(); /* empty: a restore may go there */
    }
    for (int i = 0; i < NODES; i++)
        spawn(c, i, dir);
    wait_all(c);
    for (int i = 0; i < NODES; i++) {
        FILE *f = fopen(c->nodes[i].log_path, "r");
        assert_non_null(f);
        char line[2048];
        int restored = 0;
        while (fgets(line, sizeof line, f))
            restored |= strstr(line, "restored node") != NULL;
        fclose(f);
        assert_true(restored);
    }

    db = client_all(c);
    for (int i = 0; i < N_KEYS; i++) {
        key_value(i, key, sizeof key, value, sizeof value);
        assert_int_equal(get_is(db, key, value, KV_CONSISTENCY_QUORUM), KV_OK);
    }
    /* The backup, not the old data: what came after it is gone. */
    assert_int_equal(get_is(db, "after-backup", "x", KV_CONSISTENCY_ALL), KV_ENOTFOUND);
    /* And the cluster takes writes again. */
    assert_int_equal(put_at(db, "after-restore", "y", KV_CONSISTENCY_ALL), KV_OK);
    assert_int_equal(get_is(db, "after-restore", "y", KV_CONSISTENCY_ALL), KV_OK);
    kv_close(db);

    /* A restarted node whose data dir holds a store refuses another
     * restore (and says why) rather than overwrite it. */
    assert_true(kvd_stop(c->nodes[0].pid, SIGTERM));
    c->nodes[0].pid = 0;
    spawn(c, 0, dir);
    int exited = 0, status = 0;
    for (int t = 0; t < 1500 && !exited; t++) {
        exited = waitpid(c->nodes[0].pid, &status, WNOHANG) == c->nodes[0].pid;
        if (!exited)
            sleep_ms(10);
    }
    assert_true(exited);
    c->nodes[0].pid = 0;
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
}

/* Sends one request frame; returns the answer's status, or 1 when the
 * connection closed without one. */
static int raw_call(int fd, uint8_t opcode, const void *body, size_t len)
{
    kvi_buf f = {0};
    kvi_frame_begin(&f);
    kvi_buf_raw(&f, body, len);
    static uint64_t id = 1;
    uint64_t rid = id++;
    assert_int_equal(kvi_frame_finish(&f, 0, opcode, 0, 0, rid), 0);
    ssize_t sent = send(fd, f.data, f.len, MSG_NOSIGNAL);
    kvi_buf_free(&f);
    if (sent < 0)
        return 1;
    unsigned char header[KVI_FRAME_HEADER];
    if (recv_exact(fd, header, sizeof header) != 0)
        return 1;
    kvi_frame_header h;
    assert_int_equal(kvi_frame_parse_header(&h, header, sizeof header, 1u << 20), KVI_FRAME_OK);
    assert_int_equal(h.request_id, rid);
    unsigned char *b = malloc(h.body_len + 1);
    assert_int_equal(recv_exact(fd, b, h.body_len), 0);
    free(b);
    return h.status;
}

static void serves(const cluster *c)
{
    body out;
    assert_int_equal(http_request(c->nodes[0].http, "PUT", "/v1/kv/still", "{\"value\":\"ok\"}",
                                  &out, 10000L), 200);
    assert_int_equal(http_request(c->nodes[0].http, "GET", "/v1/kv/still", NULL, &out, 10000L),
                     200);
}

static void bad_backup_requests_get_clear_errors(void **state)
{
    cluster *c = *state;
    const char *http = c->nodes[0].http;
    body out;
    struct {
        const char *json;
        const char *says;
    } bad[] = {
        {"{}", "is missing"},
        {"{\"dir\": null}", "is missing"},
        {"{\"dir\": 5}", "must be a string"},
        {"{\"dir\": \"\"}", "empty"},
        {"{\"dir\": \"relative/path\"}", "absolute"},
        {"{\"dir\": \"/tmp/x\", \"other\": 1}", "unknown field"},
        {"{\"dir\": ", "malformed JSON"},
        {"[\"/tmp/x\"]", "JSON object"},
        {"", "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long st = http_request(http, "POST", "/v1/admin/backup", bad[i].json, &out, 10000L);
        if (st != 400 || !strstr(out.data, bad[i].says))
            fprintf(stderr, "body %s: %ld %s\n", bad[i].json, st, out.data);
        assert_int_equal(st, 400);
        assert_non_null(strstr(out.data, bad[i].says));
    }
    /* A directory over the limit. */
    char *json = malloc(KV_BACKUP_MAX_PATH + 64);
    int n = snprintf(json, KV_BACKUP_MAX_PATH + 64, "{\"dir\": \"/");
    memset(json + n, 'a', KV_BACKUP_MAX_PATH);
    snprintf(json + n + KV_BACKUP_MAX_PATH, 8, "\"}");
    assert_int_equal(http_request(http, "POST", "/v1/admin/backup", json, &out, 10000L), 400);
    assert_non_null(strstr(out.data, "limit"));
    free(json);
    /* Only POST. */
    assert_int_equal(http_request(http, "GET", "/v1/admin/backup", NULL, &out, 10000L), 405);
    /* An existing directory: refused, nothing written into it. */
    char ok[800];
    snprintf(ok, sizeof ok, "{\"dir\": \"%s\"}", c->backups);
    assert_int_equal(http_request(http, "POST", "/v1/admin/backup", ok, &out, 10000L), 400);
    assert_non_null(strstr(out.data, "already exists"));
    serves(c);

    /* The binary BACKUP frame: malformed bodies, bad paths. */
    int fd = loopback_connect(c->nodes[0].listen, 5);
    assert_true(fd >= 0);
    assert_int_equal(raw_call(fd, KVI_OP_BACKUP, NULL, 0), KV_EINVAL);          /* no body */
    assert_int_equal(raw_call(fd, KVI_OP_BACKUP, "\0\0\0\5ab", 6), KV_EINVAL);  /* short */
    assert_int_equal(raw_call(fd, KVI_OP_BACKUP, "\0\0\0\1/x", 6), KV_EINVAL);  /* trailing */
    assert_int_equal(raw_call(fd, KVI_OP_BACKUP, "\0\0\0\0", 4), KV_EINVAL);    /* empty */
    assert_int_equal(raw_call(fd, KVI_OP_BACKUP, "\0\0\0\3a/b", 7), KV_EINVAL); /* relative */
    assert_int_equal(raw_call(fd, KVI_OP_BACKUP, "\0\0\0\3/\0b", 7), KV_EINVAL); /* a NUL */
    kvi_buf big = {0};
    char *longdir = malloc(KV_BACKUP_MAX_PATH + 2);
    longdir[0] = '/';
    memset(longdir + 1, 'b', KV_BACKUP_MAX_PATH);
    kvi_buf_bytes(&big, longdir, KV_BACKUP_MAX_PATH + 1);
    assert_int_equal(raw_call(fd, KVI_OP_BACKUP, big.data, big.len), KV_EINVAL);
    kvi_buf_free(&big);
    free(longdir);
    /* A good one on the same connection: DIR/<node id>. */
    char dir[700];
    snprintf(dir, sizeof dir, "%s/raw", c->backups);
    kvi_buf good = {0};
    kvi_buf_bytes(&good, dir, strlen(dir));
    assert_int_equal(raw_call(fd, KVI_OP_BACKUP, good.data, good.len), KV_OK);
    kvi_buf_free(&good);
    assert_true(file_exists(dir, c->nodes[0].id, "kv-backup.json"));
    close(fd);
    serves(c);

    /* Through a manual_loop client of this node alone: its blocking call
     * drives the client's loop (a fan-out's wait would not, and timed out). */
    kv *manual = client_manual(c);
    snprintf(dir, sizeof dir, "%s/manual", c->backups);
    char *report = NULL;
    int rc = kv_backup(&report, manual, dir);
    if (rc != KV_OK)
        fprintf(stderr, "kv_backup: %s\nreport: %s\n", kv_error_last(), report ? report : "-");
    assert_int_equal(rc, KV_OK);
    assert_non_null(strstr(report, "\"status\":\"OK\""));
    kv_string_free(report);
    kv_close(manual);
    assert_true(file_exists(dir, c->nodes[0].id, "kv-backup.json"));
    serves(c);

    /* And a good HTTP backup: into dir itself, this node only. */
    snprintf(ok, sizeof ok, "{\"dir\": \"%s/http\"}", c->backups);
    assert_int_equal(http_request(http, "POST", "/v1/admin/backup", ok, &out, 10000L), 200);
    assert_non_null(strstr(out.data, "\"status\":\"OK\""));
    assert_true(file_exists(c->backups, "http", "kv-backup.json"));
    serves(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(cluster_backup_wipe_restore_reads_every_key,
                                        setup_three, teardown),
        cmocka_unit_test_setup_teardown(bad_backup_requests_get_clear_errors, setup_one,
                                        teardown),
    };
    return cmocka_run_group_tests_name("integration.backup", tests, NULL, NULL);
}
