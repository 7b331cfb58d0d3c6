/*
 * examples/embedded.c - libkv as a local store inside your program.
 *
 * Build against an installed libkv:
 *     cc embedded.c $(pkg-config --cflags --libs kv) -o embedded
 * Run:
 *     ./embedded [DIRECTORY]      (default: ./embedded-demo.kv)
 *
 * It opens a store, writes a value with a TTL, reads it back, increments a
 * counter with compare-and-swap, runs an atomic batch, and shows how errors
 * are reported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kv/kv.h>

/* Every libkv call returns an int status: KV_OK (0) or a negative KV_E* code.
 * kv_strerror() names the code; kv_error_last() says what exactly failed. */
static int check(int rc, const char *what)
{
    if (rc != KV_OK)
        fprintf(stderr, "%s: %s (%s)\n", what, kv_strerror(rc), kv_error_last());
    return rc;
}

/* Adds one to a decimal counter stored under key, retrying on conflicts. */
static int increment(kv *db, const char *key, long *result)
{
    for (;;) {
        kv_value *current = NULL;
        uint64_t expected = 0; /* 0 = "only if the key does not exist" */
        long n = 0;
        int rc = kv_get(&current, db, key, strlen(key), NULL);
        if (rc == KV_OK) {
            size_t len;
            const char *data = kv_value_data(current, &len);
            n = strtol(data, NULL, 10); /* kv_value data is NUL-padded, safe for text */
            expected = kv_value_version(current);
            kv_value_free(current);
        } else if (rc != KV_ENOTFOUND) {
            return check(rc, "get counter");
        }
        char text[32];
        int len = snprintf(text, sizeof text, "%ld", n + 1);
        rc = kv_cas(NULL, db, key, strlen(key), expected, text, (size_t)len, NULL);
        if (rc == KV_OK) {
            *result = n + 1;
            return KV_OK;
        }
        if (rc != KV_ECONFLICT) /* someone else won the race: read again */
            return check(rc, "cas counter");
    }
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "embedded-demo.kv";

    printf("libkv %s (compiled against %s)\n", kv_version(NULL, NULL, NULL),
           KV_VERSION_STRING);

    /* Options are versioned structs: start from the _INIT macro. */
    kv_open_options open_opts = KV_OPEN_OPTIONS_INIT;
    open_opts.sync = KV_SYNC_ALWAYS; /* fsync every write (the default) */
    kv *db = NULL;
    if (check(kv_open(&db, path, &open_opts), "open"))
        return 1;
    printf("opened store at %s\n", path);

    /* Put with a TTL: the value disappears after 60 seconds. */
    kv_write_options with_ttl = KV_WRITE_OPTIONS_INIT;
    with_ttl.ttl_s = 60;
    uint64_t version = 0;
    const char *session = "token-4f2a";
    if (check(kv_put(&version, db, "session:42", 10, session, strlen(session), &with_ttl), "put"))
        goto fail;
    printf("put session:42 -> version %llu\n", (unsigned long long)version);

    /* Get: the value is ours until kv_value_free. */
    kv_value *value = NULL;
    if (check(kv_get(&value, db, "session:42", 10, NULL), "get"))
        goto fail;
    size_t len;
    const char *data = kv_value_data(value, &len);
    printf("get session:42 -> \"%.*s\" (version %llu, expires at %llu ms)\n", (int)len,
           data, (unsigned long long)kv_value_version(value),
           (unsigned long long)kv_value_expiry_ms(value));
    kv_value_free(value);

    /* Compare-and-swap: a counter that never loses an increment. */
    long count = 0;
    if (increment(db, "visits", &count) || increment(db, "visits", &count))
        goto fail;
    printf("visits counter is now %ld\n", count);

    /* A CAS with a stale version fails and reports the current version. */
    uint64_t current = 0;
    int rc = kv_cas(&current, db, "visits", 6, 1, "0", 1, NULL);
    if (rc == KV_ECONFLICT)
        printf("cas with version 1 refused: current version is %llu\n",
               (unsigned long long)current);

    /* A batch is atomic on the embedded store: all of it lands, or none. */
    kv_batch *batch = NULL;
    if (check(kv_batch_new(&batch), "batch"))
        goto fail;
    kv_batch_put(batch, "user:1", 6, "ada", 3, 0);
    kv_batch_put(batch, "user:2", 6, "grace", 5, 0);
    kv_batch_get(batch, "user:1", 6);
    kv_batch_delete(batch, "user:2", 6);
    if (check(kv_batch_execute(db, batch, NULL, NULL), "batch")) {
        kv_batch_free(batch);
        goto fail;
    }
    for (size_t i = 0; i < kv_batch_count(batch); i++) {
        const kv_value *got = NULL;
        uint64_t v = 0;
        int status = kv_batch_result(&got, &v, batch, i);
        printf("batch op %zu: %s, version %llu", i, kv_strerror(status),
               (unsigned long long)v);
        if (got) {
            data = kv_value_data(got, &len);
            printf(", value \"%.*s\"", (int)len, data);
        }
        printf("\n");
    }
    kv_batch_free(batch);

    /* Errors are codes, never crashes: an empty key is invalid, a missing
     * key is KV_ENOTFOUND (not a NULL value). */
    rc = kv_put(NULL, db, "", 0, "x", 1, NULL);
    printf("empty key -> %s: %s\n", kv_strerror(rc), kv_error_last());
    rc = kv_get(&value, db, "user:2", 6, NULL);
    printf("get user:2 after delete -> %s\n", kv_strerror(rc));

    kv_close(db);
    printf("done\n");
    return 0;
fail:
    kv_close(db);
    return 1;
}
