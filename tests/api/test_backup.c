/* kv_backup and kv_restore on an embedded store, through the public API:
 * backup, close, wipe, restore, every key reads back with its version; the
 * snapshot opens as a store of its own; bad directories are refused; a
 * restore never lands on a store, nor a snapshot of another node on a node;
 * an unfinished restore is refused by kv_open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <cJSON.h>

#include "api/fixture.h"

#define N_KEYS 2000

static void key_of(char *buf, size_t cap, int i)
{
    snprintf(buf, cap, "key-%05d", i);
}

/* Puts N_KEYS keys; key i is written (i % 3) + 1 times, so versions vary;
 * every tenth is deleted afterwards (its tombstone must survive too). */
static void fill(kv *db)
{
    char key[32], value[64];
    for (int i = 0; i < N_KEYS; i++) {
        key_of(key, sizeof key, i);
        for (int w = 0; w <= i % 3; w++) {
            snprintf(value, sizeof value, "value-%d-%d", i, w);
            assert_int_equal(kv_put(NULL, db, key, strlen(key), value, strlen(value), NULL),
                             KV_OK);
        }
        if (i % 10 == 0)
            assert_int_equal(kv_delete(NULL, db, key, strlen(key), NULL), KV_OK);
    }
}

/* Every key of fill() reads back: its last value and version, or
 * not-found; and a put after a delete continues from the tombstone. */
static void check(kv *db)
{
    char key[32], value[64];
    for (int i = 0; i < N_KEYS; i++) {
        key_of(key, sizeof key, i);
        kv_value *v = NULL;
        int rc = kv_get(&v, db, key, strlen(key), NULL);
        if (i % 10 == 0) {
            assert_int_equal(rc, KV_ENOTFOUND);
            continue;
        }
        assert_int_equal(rc, KV_OK);
        snprintf(value, sizeof value, "value-%d-%d", i, i % 3);
        size_t len;
        const void *data = kv_value_data(v, &len);
        assert_int_equal(len, strlen(value));
        assert_memory_equal(data, value, len);
        assert_int_equal(kv_value_version(v), (uint64_t)(i % 3) + 1);
        kv_value_free(v);
    }
    uint64_t version = 0;
    assert_int_equal(kv_put(&version, db, "key-00000", 9, "again", 5, NULL), KV_OK);
    assert_int_equal(version, 3); /* 1 put, its tombstone 2 */
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void backup_wipe_restore_reads_every_key(void **state)
{
    fixture *f = *state;
    fill(f->db);
    char *work = test_tempdir();
    char *snap = path_in(work, "nested/snap");
    char *report = NULL;
    assert_int_equal(kv_backup(&report, f->db, snap), KV_OK);
    assert_non_null(report);
    cJSON *r = cJSON_Parse(report);
    assert_non_null(r);
    const cJSON *nodes = cJSON_GetObjectItem(r, "nodes");
    assert_int_equal(cJSON_GetArraySize(nodes), 1);
    const cJSON *e = cJSON_GetArrayItem(nodes, 0);
    assert_string_equal(cJSON_GetObjectItem(e, "status")->valuestring, "OK");
    assert_string_equal(cJSON_GetObjectItem(e, "path")->valuestring, snap);
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(e, "nodeId")));
    assert_true(cJSON_GetObjectItem(e, "bytes")->valuedouble > 0);
    cJSON_Delete(r);
    kv_string_free(report);

    /* The manifest says what it is. */
    char *mpath = path_in(snap, "kv-backup.json");
    FILE *mf = fopen(mpath, "rb");
    assert_non_null(mf);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, mf);
    fclose(mf);
    cJSON *m = cJSON_ParseWithLength(buf, n);
    assert_non_null(m);
    assert_int_equal(cJSON_GetObjectItem(m, "format")->valueint, 1);
    assert_string_equal(cJSON_GetObjectItem(m, "libkvVersion")->valuestring,
                        kv_version(NULL, NULL, NULL));
    assert_non_null(cJSON_GetObjectItem(m, "createdAt"));
    assert_non_null(cJSON_GetObjectItem(m, "estimatedKeys"));
    cJSON_Delete(m);
    free(mpath);

    /* A write after the backup is not in it. */
    assert_int_equal(kv_put(NULL, f->db, "after", 5, "x", 1, NULL), KV_OK);

    /* Close, wipe, restore into the same (now missing) directory. */
    kv_close(f->db);
    f->db = NULL;
    char *data = strdup(f->dir);
    test_rmtree(f->dir);
    f->dir = data;
    assert_int_equal(kv_restore(snap, f->dir, NULL), KV_OK);
    assert_int_equal(kv_open(&f->db, f->dir, NULL), KV_OK);
    check(f->db);
    kv_value *v = NULL;
    assert_int_equal(kv_get(&v, f->db, "after", 5, NULL), KV_ENOTFOUND);

    /* The backup is a copy: it still opens, untouched by the writes of
     * the restored store, as a store of its own. */
    kv *copy = NULL;
    kv_open_options o = KV_OPEN_OPTIONS_INIT;
    o.create_if_missing = 0;
    assert_int_equal(kv_open(&copy, snap, &o), KV_OK);
    assert_int_equal(kv_get(&v, copy, "key-00000", 9, NULL), KV_ENOTFOUND);
    assert_int_equal(kv_get(&v, copy, "key-00001", 9, NULL), KV_OK);
    assert_int_equal(kv_value_version(v), 2);
    kv_value_free(v);
    kv_close(copy);

    free(snap);
    test_rmtree(work);
}

static void backup_refuses_bad_directories(void **state)
{
    fixture *f = *state;
    char *work = test_tempdir();
    char *report = (char *)"untouched";
    /* Exists already (the fixture's own work directory). */
    assert_int_equal(kv_backup(&report, f->db, work), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "already exists"));
    assert_non_null(report); /* the report says so too */
    assert_non_null(strstr(report, "BAD_REQUEST"));
    kv_string_free(report);
    /* Relative, empty, NULL, too long. */
    assert_int_equal(kv_backup(NULL, f->db, "relative/dir"), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "absolute"));
    assert_int_equal(kv_backup(NULL, f->db, ""), KV_EINVAL);
    assert_int_equal(kv_backup(NULL, f->db, NULL), KV_EINVAL);
    char *longdir = malloc(KV_BACKUP_MAX_PATH + 2);
    longdir[0] = '/';
    memset(longdir + 1, 'a', KV_BACKUP_MAX_PATH);
    longdir[KV_BACKUP_MAX_PATH + 1] = 0;
    assert_int_equal(kv_backup(NULL, f->db, longdir), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "limit"));
    free(longdir);
    assert_int_equal(kv_backup(NULL, NULL, "/tmp/x"), KV_EINVAL);
    /* Under a regular file: RocksDB cannot make it. */
    char *file = path_in(work, "file");
    FILE *fp = fopen(file, "w");
    fclose(fp);
    char *under = path_in(file, "snap");
    assert_int_not_equal(kv_backup(NULL, f->db, under), KV_OK);
    free(under);
    free(file);
    /* A trailing slash is the same directory. */
    char *snap = path_in(work, "snap/");
    assert_int_equal(kv_backup(NULL, f->db, snap), KV_OK);
    assert_int_equal(kv_backup(NULL, f->db, snap), KV_EINVAL);
    free(snap);
    /* The store still serves. */
    assert_int_equal(kv_put(NULL, f->db, "k", 1, "v", 1, NULL), KV_OK);
    test_rmtree(work);
}

static void restore_refuses_what_it_must(void **state)
{
    fixture *f = *state;
    assert_int_equal(kv_put(NULL, f->db, "k", 1, "v", 1, NULL), KV_OK);
    char *work = test_tempdir();
    char *snap = path_in(work, "snap");
    assert_int_equal(kv_backup(NULL, f->db, snap), KV_OK);
    /* Into a store: never. */
    assert_int_equal(kv_restore(snap, f->dir, NULL), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "not empty"));
    /* Not a backup. */
    char *target = path_in(work, "target");
    assert_int_equal(kv_restore(work, target, NULL), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "no finished backup"));
    assert_int_equal(kv_restore(NULL, target, NULL), KV_EINVAL);
    assert_int_equal(kv_restore(snap, NULL, NULL), KV_EINVAL);
    /* A cluster layout: <dir>/<node id>, picked by the node id. */
    char *cluster = path_in(work, "cluster");
    char *n1 = path_in(cluster, "n1");
    assert_int_equal(mkdir(cluster, 0700), 0);
    assert_int_equal(rename(snap, n1), 0);
    assert_int_equal(kv_restore(cluster, target, NULL), KV_EINVAL);
    assert_int_equal(kv_restore(cluster, target, "n1"), KV_OK);
    kv *db = NULL;
    assert_int_equal(kv_open(&db, target, NULL), KV_OK);
    kv_value *v = NULL;
    assert_int_equal(kv_get(&v, db, "k", 1, NULL), KV_OK);
    kv_value_free(v);
    kv_close(db);
    /* An unfinished restore (its marker left behind) is refused by
     * kv_open rather than opened with files missing. */
    char *marker = path_in(target, "kv-restore-incomplete");
    FILE *mf = fopen(marker, "w");
    fclose(mf);
    assert_int_equal(kv_open(&db, target, NULL), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "did not finish"));
    free(marker);
    free(target);
    free(n1);
    free(cluster);
    free(snap);
    test_rmtree(work);
}

/* No sync per write: thousands of puts, and kv_close syncs anyway. */
static int open_unsynced(void **state)
{
    kv_open_options o = KV_OPEN_OPTIONS_INIT;
    o.sync = KV_SYNC_NONE;
    return fixture_open_with(state, &o);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, open_unsynced, fixture_close)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(backup_wipe_restore_reads_every_key),
        T(backup_refuses_bad_directories),
        T(restore_refuses_what_it_must),
    };
    return cmocka_run_group_tests_name("api.backup", tests, NULL, NULL);
}
