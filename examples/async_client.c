/*
 * examples/async_client.c - many requests in flight from one thread, with
 * the client's event loop driven from the application's own poll loop.
 *
 * Build against an installed libkv:
 *     cc async_client.c $(pkg-config --cflags --libs kv) -o async_client
 * Run against a node (for example `make run-node`, which serves
 * 127.0.0.1:7400):
 *     ./async_client [HOST:PORT ...]
 *
 * The client is opened with manual_loop: it starts no thread, and its
 * callbacks run inside kv_run, on this thread. kv_fd gives the descriptor to
 * wait on; here it is the only one, but an application would add it to the
 * poll or epoll set it already has. Each callback starts the next request,
 * so DEPTH requests stay in flight until all of them are done.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <kv/kv.h>

#define TOTAL 10000
#define DEPTH 64

typedef struct app {
    kv *db;
    int started, done, failed;
} app;

static void start_next(app *a);

static void on_put(void *ctx, kv_result *r)
{
    app *a = ctx;
    a->done++;
    if (r->status != KV_OK) {
        a->failed++;
        fprintf(stderr, "put: %s (%s)\n", kv_strerror(r->status), r->message);
    }
    start_next(a); /* keeps DEPTH in flight */
}

static void start_next(app *a)
{
    if (a->started >= TOTAL)
        return;
    char key[32], value[32];
    snprintf(key, sizeof key, "async:%d", a->started);
    snprintf(value, sizeof value, "value %d", a->started);
    a->started++;
    /* key and value are copied before the call returns */
    int rc = kv_put_async(a->db, key, strlen(key), value, strlen(value), NULL, on_put, a);
    if (rc != KV_OK) { /* refused: the callback will not run */
        a->done++;
        a->failed++;
        fprintf(stderr, "put: %s (%s)\n", kv_strerror(rc), kv_error_last());
    }
}

static void on_get(void *ctx, kv_result *r)
{
    int *seen = ctx;
    if (r->status == KV_OK) {
        size_t len;
        const char *data = kv_value_data(r->value, &len);
        printf("async:42 = %.*s (version %llu)\n", (int)len, data,
               (unsigned long long)kv_value_version(r->value));
        kv_value_free(r->value); /* the callback owns the value */
    } else {
        fprintf(stderr, "get: %s (%s)\n", kv_strerror(r->status), r->message);
    }
    *seen = 1;
}

int main(int argc, char **argv)
{
    const char *fallback[] = {"127.0.0.1:7400"};
    const char *const *endpoints = argc > 1 ? (const char *const *)argv + 1 : fallback;
    size_t count = argc > 1 ? (size_t)(argc - 1) : 1;

    kv_client_options opts = KV_CLIENT_OPTIONS_INIT;
    opts.manual_loop = 1;
    app a = {0};
    int rc = kv_client_open(&a.db, endpoints, count, &opts);
    int fd = -1;
    if (rc == KV_OK)
        rc = kv_fd(&fd, a.db);
    if (rc != KV_OK) {
        fprintf(stderr, "open: %s (%s)\n", kv_strerror(rc), kv_error_last());
        return 1;
    }
    for (int i = 0; i < DEPTH; i++)
        start_next(&a);
    int turns = 0;
    while (a.done < TOTAL) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1000) < 0)
            break;
        if (kv_run(a.db, 0) < 0)
            break;
        turns++;
    }
    printf("%d puts in %d turns of the loop, %d failed\n", a.done, turns, a.failed);

    int seen = 0;
    rc = kv_get_async(a.db, "async:42", 8, NULL, on_get, &seen);
    while (rc == KV_OK && !seen && kv_run(a.db, 1000) >= 0)
        ;
    kv_close(a.db);
    return a.failed || rc != KV_OK ? 1 : 0;
}
