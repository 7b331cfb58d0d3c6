/* tests/net/http_ops.h - the HTTP server's operations (net/http.h) over a
 * kv handle, as the tests serve an embedded store over HTTP. The handle is
 * the ops' context; ?policy= is refused (policies 0), so p is always
 * KVI_HTTP_POLICY_OWN. With TEST_HTTP_ASYNC_OPS defined, also
 * handle_http_async_ops (below). */
#ifndef TEST_HTTP_OPS_H
#define TEST_HTTP_OPS_H

#include <kv/kv.h>
#include "net/http.h"

static int handle_get(void *ctx, kvi_http_policy p, kv_value **out, const void *key,
                      size_t key_len, const kv_read_options *ro)
{
    (void)p;
    return kv_get(out, ctx, key, key_len, ro);
}

static int handle_put(void *ctx, kvi_http_policy p, uint64_t *out_version, const void *key,
                      size_t key_len, const void *value, size_t value_len,
                      const kv_write_options *wo)
{
    (void)p;
    return kv_put(out_version, ctx, key, key_len, value, value_len, wo);
}

static int handle_delete(void *ctx, kvi_http_policy p, uint64_t *out_version, const void *key,
                         size_t key_len, const kv_write_options *wo)
{
    (void)p;
    return kv_delete(out_version, ctx, key, key_len, wo);
}

static int handle_cas(void *ctx, kvi_http_policy p, uint64_t *out_version, const void *key,
                      size_t key_len, uint64_t expected, const void *value, size_t value_len,
                      const kv_write_options *wo)
{
    (void)p;
    return kv_cas(out_version, ctx, key, key_len, expected, value, value_len, wo);
}

static int handle_batch(void *ctx, kvi_http_policy p, kv_batch *b, const kv_write_options *wo,
                        const kv_read_options *ro)
{
    (void)p;
    return kv_batch_execute(ctx, b, wo, ro);
}

static int handle_backup(void *ctx, char **report, const char *dir)
{
    return kv_backup(report, ctx, dir);
}

static int handle_scan(void *ctx, kvi_http_policy p, kv_scan_page **out, const char *cursor,
                       size_t limit, const kv_scan_options *so)
{
    (void)p;
    return kv_scan(out, ctx, cursor, limit, so);
}

static const kvi_http_ops handle_http_ops = {
    .get = handle_get, .put = handle_put, .del = handle_delete, .cas = handle_cas,
    .batch = handle_batch, .backup = handle_backup, .scan = handle_scan,
};

#ifdef TEST_HTTP_ASYNC_OPS
/* The same operations with asynchronous forms of get, put, delete, CAS and
 * batch,
 * for the server's suspend and resume: each runs the call at once, then
 * gives its result inside the call (one in three), or from a thread of its
 * own, at once or after a millisecond, so that the completion comes both
 * before and after the server suspends the connection. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

typedef struct deferred {
    kvi_http_done_fn done;
    void *done_ctx;
    kvi_http_result r;
    long delay_ns;
    char message[512];
} deferred;

static void *deferred_run(void *arg)
{
    deferred *d = arg;
    struct timespec ts = {0, d->delay_ns};
    if (d->delay_ns)
        nanosleep(&ts, NULL);
    d->r.message = d->r.rc != KV_OK ? d->message : NULL;
    d->done(d->done_ctx, &d->r);
    kv_value_free(d->r.value); /* not taken */
    free(d);
    return NULL;
}

static void complete(kvi_http_done_fn done, void *done_ctx, int rc, uint64_t version,
                     kv_value *v)
{
    static atomic_uint turn;
    unsigned t = atomic_fetch_add(&turn, 1);
    deferred *d = calloc(1, sizeof *d);
    if (!d)
        abort();
    *d = (deferred){.done = done, .done_ctx = done_ctx,
                    .r = {.rc = rc, .version = version, .value = v},
                    .delay_ns = t % 3 == 2 ? 1000000L : 0};
    snprintf(d->message, sizeof d->message, "%s", rc != KV_OK ? kv_error_last() : "");
    pthread_attr_t attr;
    pthread_t th;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (t % 3 == 0 || pthread_create(&th, &attr, deferred_run, d) != 0)
        deferred_run(d);
    pthread_attr_destroy(&attr);
}

static void handle_get_async(void *ctx, kvi_http_policy p, const void *key, size_t key_len,
                             const kv_read_options *ro, kvi_http_done_fn done, void *done_ctx)
{
    kv_value *v = NULL;
    int rc = handle_get(ctx, p, &v, key, key_len, ro);
    complete(done, done_ctx, rc, 0, v);
}

static void handle_put_async(void *ctx, kvi_http_policy p, const void *key, size_t key_len,
                             const void *value, size_t value_len, const kv_write_options *wo,
                             kvi_http_done_fn done, void *done_ctx)
{
    uint64_t version = 0;
    int rc = handle_put(ctx, p, &version, key, key_len, value, value_len, wo);
    complete(done, done_ctx, rc, version, NULL);
}

static void handle_delete_async(void *ctx, kvi_http_policy p, const void *key, size_t key_len,
                                const kv_write_options *wo, kvi_http_done_fn done,
                                void *done_ctx)
{
    uint64_t version = 0;
    int rc = handle_delete(ctx, p, &version, key, key_len, wo);
    complete(done, done_ctx, rc, version, NULL);
}

static void handle_cas_async(void *ctx, kvi_http_policy p, const void *key, size_t key_len,
                             uint64_t expected, const void *value, size_t value_len,
                             const kv_write_options *wo, kvi_http_done_fn done, void *done_ctx)
{
    uint64_t version = 0;
    int rc = handle_cas(ctx, p, &version, key, key_len, expected, value, value_len, wo);
    complete(done, done_ctx, rc, version, NULL);
}

/* The batch ran into b before complete hands it back: the server reads
 * its results only after done. */
static void handle_batch_async(void *ctx, kvi_http_policy p, kv_batch *b,
                               const kv_write_options *wo, const kv_read_options *ro,
                               kvi_http_done_fn done, void *done_ctx)
{
    int rc = handle_batch(ctx, p, b, wo, ro);
    complete(done, done_ctx, rc, 0, NULL);
}

static const kvi_http_ops handle_http_async_ops = {
    .get = handle_get, .put = handle_put, .del = handle_delete, .cas = handle_cas,
    .batch = handle_batch, .backup = handle_backup, .scan = handle_scan,
    .get_async = handle_get_async, .put_async = handle_put_async,
    .del_async = handle_delete_async, .cas_async = handle_cas_async,
    .batch_async = handle_batch_async,
};
#endif

#endif
