/* tests/net/http_ops.h - the HTTP server's operations (net/http.h) over a
 * kv handle, as the tests serve an embedded store over HTTP. The handle is
 * the ops' context; ?policy= is refused (policies 0), so p is always
 * KVI_HTTP_POLICY_OWN. */
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

#endif
