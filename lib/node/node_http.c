/*
 * node/node_http.c - the HTTP API's operations on a node (the kvi_http_ops
 * table node.c gives its HTTP server): the blocking ones over kvi_node_*,
 * and, for get, put, delete, CAS and batch, asynchronous ones. In a cluster
 * those start the same state machines as the binary protocol's requests
 * (node_async.c, node_batch.c), so no HTTP thread waits on a replica;
 * alone, the node's store answers at once, inside the call.
 */
#include <string.h>

#include "format/batch.h"
#include "format/value.h"
#include "node/node_internal.h"
#include "storage/backup.h"
#include "util/error.h"

/* The frame flags of a request under policy p (?policy=, else the node's). */
static unsigned http_flags(const kvi_node *n, kvi_http_policy p)
{
    if (p == KVI_HTTP_POLICY_OWN)
        return kvi_node_flags(n);
    return p == KVI_HTTP_POLICY_SIBLINGS ? KVI_FRAME_FLAG_SIBLINGS : 0;
}

static int http_get(void *ctx, kvi_http_policy p, kv_value **out, const void *key,
                    size_t key_len, const kv_read_options *ro)
{
    kvi_node *n = ctx;
    *out = NULL;
    return kvi_public_status(kvi_node_get(n, out, key, key_len, ro, http_flags(n, p), NULL));
}

static int http_put(void *ctx, kvi_http_policy p, uint64_t *out_version, const void *key,
                    size_t key_len, const void *value, size_t value_len,
                    const kv_write_options *wo)
{
    kvi_node *n = ctx;
    return kvi_public_status(kvi_node_put(n, out_version, key, key_len, value, value_len, wo,
                                          http_flags(n, p)));
}

static int http_delete(void *ctx, kvi_http_policy p, uint64_t *out_version, const void *key,
                       size_t key_len, const kv_write_options *wo)
{
    kvi_node *n = ctx;
    return kvi_public_status(kvi_node_delete(n, out_version, key, key_len, wo,
                                             http_flags(n, p)));
}

static int http_cas(void *ctx, kvi_http_policy p, uint64_t *out_version, const void *key,
                    size_t key_len, uint64_t expected, const void *value, size_t value_len,
                    const kv_write_options *wo)
{
    kvi_node *n = ctx;
    return kvi_public_status(kvi_node_cas(n, out_version, key, key_len, expected, value,
                                          value_len, wo, http_flags(n, p)));
}

static int http_batch(void *ctx, kvi_http_policy p, kv_batch *b, const kv_write_options *wo,
                      const kv_read_options *ro)
{
    kvi_node *n = ctx;
    int rc = kvi_node_batch(n, b, wo, ro, http_flags(n, p));
    kvi_batch_public_results(b);
    return kvi_public_status(rc);
}

/* The report's one entry: this node's own store. */
static int backup_fill(void *ctx, const char *dir, cJSON *nodes)
{
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddItemToArray(nodes, entry);
    return kvi_node_backup(ctx, dir, strlen(dir), 0, entry);
}

static int http_backup(void *ctx, char **report, const char *dir)
{
    return kvi_public_status(kvi_backup_report(report, dir, backup_fill, ctx));
}

/* ------------------------------------------------- the asynchronous ones */

/* Gives done the result of a blocking call that returned rc (a node of its
 * own: its store answered inside the call). */
static void done_now(kvi_http_done_fn done, void *done_ctx, int rc, uint64_t version,
                     kv_value *value)
{
    kvi_http_result r = {.rc = rc, .message = rc != KV_OK ? kvi_error_last() : NULL,
                         .version = version, .value = value};
    done(done_ctx, &r);
    kvi_value_free(r.value); /* not taken */
}

/* A write as the binary protocol carries it, so that it starts exactly as
 * a binary request does. The quorum travels as one byte there; the HTTP
 * API's w is at most 255 already. */
static kvi_request write_request(uint8_t opcode, const void *key, size_t key_len,
                                 const void *value, size_t value_len, uint64_t expected,
                                 const kv_write_options *wo)
{
    return (kvi_request){
        .opcode = opcode, .consistency = (uint8_t)wo->consistency, .quorum = (uint8_t)wo->w,
        .ttl_s = wo->ttl_s, .expected_version = expected,
        .key = {key, key_len}, .value = {value, value_len},
        .context = {wo->context, wo->context ? wo->context_len : 0},
    };
}

/* The flags of a write: the policy's, and ?homeOnly= (on the wire, a
 * flag). */
static unsigned write_flags(const kvi_node *n, kvi_http_policy p, const kv_write_options *wo)
{
    return http_flags(n, p) | (wo->home_only ? KVI_FRAME_FLAG_HOME_ONLY : 0);
}

static void http_get_async(void *ctx, kvi_http_policy p, const void *key, size_t key_len,
                           const kv_read_options *ro, kvi_http_done_fn done, void *done_ctx)
{
    kvi_node *n = ctx;
    if (!kvi_node_clustered(n)) {
        kv_value *v = NULL;
        int rc = http_get(ctx, p, &v, key, key_len, ro);
        done_now(done, done_ctx, rc, 0, v);
        return;
    }
    kvi_request req = {.opcode = KVI_OP_GET, .consistency = (uint8_t)ro->consistency,
                       .quorum = (uint8_t)ro->r, .key = {key, key_len}};
    kvi_node_async_http(n, KVI_OP_GET, http_flags(n, p), &req, done, done_ctx);
}

static void http_put_async(void *ctx, kvi_http_policy p, const void *key, size_t key_len,
                           const void *value, size_t value_len, const kv_write_options *wo,
                           kvi_http_done_fn done, void *done_ctx)
{
    kvi_node *n = ctx;
    if (!kvi_node_clustered(n)) {
        uint64_t version = 0;
        int rc = http_put(ctx, p, &version, key, key_len, value, value_len, wo);
        done_now(done, done_ctx, rc, version, NULL);
        return;
    }
    kvi_request req = write_request(KVI_OP_PUT, key, key_len, value, value_len, 0, wo);
    kvi_node_async_http(n, KVI_OP_PUT, write_flags(n, p, wo), &req, done, done_ctx);
}

static void http_delete_async(void *ctx, kvi_http_policy p, const void *key, size_t key_len,
                              const kv_write_options *wo, kvi_http_done_fn done,
                              void *done_ctx)
{
    kvi_node *n = ctx;
    if (!kvi_node_clustered(n)) {
        uint64_t version = 0;
        int rc = http_delete(ctx, p, &version, key, key_len, wo);
        done_now(done, done_ctx, rc, version, NULL);
        return;
    }
    kvi_request req = write_request(KVI_OP_DELETE, key, key_len, NULL, 0, 0, wo);
    kvi_node_async_http(n, KVI_OP_DELETE, write_flags(n, p, wo), &req, done, done_ctx);
}

static void http_cas_async(void *ctx, kvi_http_policy p, const void *key, size_t key_len,
                           uint64_t expected, const void *value, size_t value_len,
                           const kv_write_options *wo, kvi_http_done_fn done, void *done_ctx)
{
    kvi_node *n = ctx;
    if (!kvi_node_clustered(n)) {
        uint64_t version = 0;
        int rc = http_cas(ctx, p, &version, key, key_len, expected, value, value_len, wo);
        done_now(done, done_ctx, rc, version, NULL);
        return;
    }
    kvi_request req = write_request(KVI_OP_CAS, key, key_len, value, value_len, expected, wo);
    kvi_node_async_http(n, KVI_OP_CAS, write_flags(n, p, wo), &req, done, done_ctx);
}

static void http_batch_async(void *ctx, kvi_http_policy p, kv_batch *b,
                             const kv_write_options *wo, const kv_read_options *ro,
                             kvi_http_done_fn done, void *done_ctx)
{
    kvi_node *n = ctx;
    if (!kvi_node_clustered(n)) {
        /* Atomic in the node's own store, as the blocking batch is. */
        int rc = http_batch(ctx, p, b, wo, ro);
        done_now(done, done_ctx, rc, 0, NULL);
        return;
    }
    kvi_node_batch_http(n, b, wo, ro, http_flags(n, p), done, done_ctx);
}

const kvi_http_ops kvi_node_http_ops = {
    .get = http_get, .put = http_put, .del = http_delete, .cas = http_cas,
    .batch = http_batch, .backup = http_backup, .scan = kvi_node_http_scan,
    .get_async = http_get_async, .put_async = http_put_async,
    .del_async = http_delete_async, .cas_async = http_cas_async,
    .batch_async = http_batch_async,
};
