/*
 * consumer/main.c - a program of the public API alone, built against an
 * installed libkv (pkg-config kv, or find_package(kv) in CMake).
 *
 * usage: consumer [PARENT_DIR]   (default $TMPDIR, else /tmp)
 *
 * Opens an embedded store in a fresh mkdtemp directory, puts, gets, checks the
 * value and the version, prints kv_version(), closes and removes the directory.
 * Exits non-zero on any mismatch.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include <kv/kv.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "consumer: %s:%d: check failed: %s (%s)\n",     \
                    __FILE__, __LINE__, #cond, kv_error_last());            \
            failures++;                                                     \
        }                                                                   \
    } while (0)

static int remove_entry(const char *path, const struct stat *sb, int flag,
                        struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int check_value(kv *db, const char *key, const char *want,
                       uint64_t want_version)
{
    kv_value *v = NULL;
    size_t len = 0;
    const void *data;
    int rc = kv_get(&v, db, key, strlen(key), NULL);

    CHECK(rc == KV_OK);
    if (rc != KV_OK) {
        fprintf(stderr, "consumer: kv_get: %s\n", kv_strerror(rc));
        return -1;
    }
    data = kv_value_data(v, &len);
    CHECK(data != NULL);
    CHECK(len == strlen(want));
    CHECK(data != NULL && len == strlen(want) && memcmp(data, want, len) == 0);
    CHECK(kv_value_version(v) == want_version);
    kv_value_free(v);
    return 0;
}

static void exercise(kv *db)
{
    static const char key[] = "consumer-key";
    kv_value *v = (kv_value *)&v; /* must be reset to NULL on failure */
    uint64_t version = 0;
    int rc;

    rc = kv_put(&version, db, key, strlen(key), "hello", 5, NULL);
    CHECK(rc == KV_OK);
    CHECK(version == 1);
    check_value(db, key, "hello", 1);

    rc = kv_put(&version, db, key, strlen(key), "world!", 6, NULL);
    CHECK(rc == KV_OK);
    CHECK(version == 2);
    check_value(db, key, "world!", 2);

    rc = kv_get(&v, db, "absent", 6, NULL);
    CHECK(rc == KV_ENOTFOUND);
    CHECK(v == NULL);
}

int main(int argc, char **argv)
{
    const char *parent = argc > 1 ? argv[1] : getenv("TMPDIR");
    char dir[4096];
    kv_open_options opts = KV_OPEN_OPTIONS_INIT;
    kv *db = NULL;
    int major = -1, minor = -1, patch = -1;
    const char *version = kv_version(&major, &minor, &patch);
    int rc;

    printf("libkv %s (compiled against %s)\n", version, KV_VERSION_STRING);
    CHECK(strcmp(version, KV_VERSION_STRING) == 0);
    CHECK(major == KV_VERSION_MAJOR && minor == KV_VERSION_MINOR &&
          patch == KV_VERSION_PATCH);

    if (parent == NULL || parent[0] == '\0')
        parent = "/tmp";
    if (snprintf(dir, sizeof dir, "%s/kv-consumer-XXXXXX", parent) >=
            (int)sizeof dir ||
        mkdtemp(dir) == NULL) {
        perror("consumer: mkdtemp");
        return 1;
    }

    opts.sync = KV_SYNC_NONE; /* durability is not under test here */
    rc = kv_open(&db, dir, &opts);
    CHECK(rc == KV_OK);
    if (rc == KV_OK) {
        exercise(db);
        kv_close(db);
    } else {
        fprintf(stderr, "consumer: kv_open(%s): %s\n", dir, kv_strerror(rc));
    }

    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0) {
        perror("consumer: removing the store directory");
        failures++;
    }

    if (failures != 0) {
        fprintf(stderr, "consumer: %d check(s) failed\n", failures);
        return 1;
    }
    printf("consumer: ok\n");
    return 0;
}
