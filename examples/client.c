/*
 * examples/client.c - talk to a remote libkv node through the client handle.
 *
 * Build against an installed libkv:
 *     cc client.c $(pkg-config --cflags --libs kv) -o client
 * Run against a node (for example `make run`, which serves 127.0.0.1:7400):
 *     ./client [HOST:PORT ...]
 *
 * The same kv_put / kv_get / kv_cas / batch calls as on an embedded store
 * travel over the binary protocol. One client handle is meant to be shared
 * by all the threads of a program.
 */
#include <stdio.h>
#include <string.h>

#include <kv/kv.h>

static int report(int rc, const char *what)
{
    if (rc != KV_OK)
        fprintf(stderr, "%s: %s (%s)\n", what, kv_strerror(rc), kv_error_last());
    return rc;
}

int main(int argc, char **argv)
{
    const char *fallback[] = {"127.0.0.1:7400"};
    const char *const *endpoints = argc > 1 ? (const char *const *)argv + 1 : fallback;
    size_t count = argc > 1 ? (size_t)(argc - 1) : 1;

    kv_client_options opts = KV_CLIENT_OPTIONS_INIT;
    opts.request_timeout_ms = 2000; /* never wait longer than this for an answer */
    kv *db = NULL;
    if (report(kv_client_open(&db, endpoints, count, &opts), "open"))
        return 1;
    /* kv_client_open does not connect; a ping tells whether a node is there. */
    if (report(kv_ping(db), "ping")) {
        kv_close(db);
        return 1;
    }

    uint64_t version = 0;
    if (report(kv_put(&version, db, "user:7", 6, "grace", 5, NULL), "put") == KV_OK)
        printf("put user:7 -> version %llu\n", (unsigned long long)version);

    kv_value *value = NULL;
    if (report(kv_get(&value, db, "user:7", 6, NULL), "get") == KV_OK) {
        size_t len;
        const char *data = kv_value_data(value, &len);
        printf("get user:7 -> \"%.*s\" (version %llu)\n", (int)len, data,
               (unsigned long long)kv_value_version(value));
        /* CAS on the version just read: fails if anyone wrote in between. */
        uint64_t current = 0;
        int rc = kv_cas(&current, db, "user:7", 6, kv_value_version(value), "hopper", 6, NULL);
        if (rc == KV_OK)
            printf("cas user:7 -> version %llu\n", (unsigned long long)current);
        else if (rc == KV_ECONFLICT)
            printf("cas lost a race: the current version is %llu\n", (unsigned long long)current);
        else
            report(rc, "cas");
        kv_value_free(value);
    }

    /* What the error codes mean over a network:
     *  KV_EUNAVAILABLE     no node reachable; a write was not applied
     *  KV_ETIMEDOUT        a read got no answer in time
     *  KV_EUNKNOWN_OUTCOME a write was sent but its answer was lost: it may
     *                      have been applied, so re-read before retrying. */
    int rc = kv_get(&value, db, "no-such-key", 11, NULL);
    printf("get no-such-key -> %s\n", kv_strerror(rc));

    kv_close(db);
    return 0;
}
