/* client/remote.c - a client handle's data calls. */
#include "client/remote.h"

#include <stdlib.h>
#include <string.h>

#include "format/batch.h"
#include "client/handle.h"
#include "client/hot_cache.h"
#include "client/router.h"
#include "format/value.h"
#include "util/clock.h"
#include "util/error.h"

static int write_call(kv *db, kvi_write_kind kind, uint64_t *out_version, const void *key,
                      size_t key_len, const void *value, size_t value_len, uint64_t expected,
                      const kv_write_options *opts)
{
    kvi_view *v = kvi_router_view(db->router);
    if (!v) {
        if (kind == KVI_WRITE_PUT)
            return kvi_client_put(db->client, out_version, key, key_len, value, value_len, opts);
        if (kind == KVI_WRITE_DELETE)
            return kvi_client_delete(db->client, out_version, key, key_len, opts);
        return kvi_client_cas(db->client, out_version, key, key_len, expected, value,
                              value_len, opts);
    }
    kv_write_options defaults = KV_WRITE_OPTIONS_INIT;
    if (!opts)
        opts = &defaults;
    kvi_coord_env env = {.view = v, .log = &db->log, .is_down = kvi_router_is_down,
                         .is_down_ctx = db->router,
                         .tracker = kvi_router_tracker(db->router)};
    kvi_coord_write w = {
        .kind = kind, .key = key, .key_len = key_len, .value = value, .value_len = value_len,
        .ttl_s = opts->ttl_s, .expected_version = expected,
        .context = opts->context, .context_len = opts->context ? opts->context_len : 0,
        .consistency = opts->consistency, .w = opts->w,
        .siblings = db->policy != KV_POLICY_LWW, .home_only = opts->home_only,
    };
    int rc = kvi_coord_write_run(&env, &w, out_version);
    kvi_view_unref(v);
    return rc;
}

/* A write of key through this handle: the cache forgets it before the
 * write and again once it is answered, so that a read after it, on this
 * handle, asks the cluster (a read of another thread in flight meanwhile
 * may still keep the older value, within the staleness bound). */
static int write_through(kv *db, kvi_write_kind kind, uint64_t *out_version, const void *key,
                         size_t key_len, const void *value, size_t value_len,
                         uint64_t expected, const kv_write_options *opts)
{
    if (db->hot_cache)
        kvi_hot_cache_drop(db->hot_cache, key, key_len);
    int rc = write_call(db, kind, out_version, key, key_len, value, value_len, expected, opts);
    if (db->hot_cache)
        kvi_hot_cache_drop(db->hot_cache, key, key_len);
    return rc;
}

int kvi_remote_put(kv *db, uint64_t *out_version, const void *key, size_t key_len,
                   const void *value, size_t value_len, const kv_write_options *opts)
{
    return write_through(db, KVI_WRITE_PUT, out_version, key, key_len, value, value_len, 0, opts);
}

int kvi_remote_delete(kv *db, uint64_t *out_version, const void *key, size_t key_len,
                      const kv_write_options *opts)
{
    return write_through(db, KVI_WRITE_DELETE, out_version, key, key_len, NULL, 0, 0, opts);
}

int kvi_remote_cas(kv *db, uint64_t *out_version, const void *key, size_t key_len,
                   uint64_t expected, const void *value, size_t value_len,
                   const kv_write_options *opts)
{
    return write_through(db, KVI_WRITE_CAS, out_version, key, key_len, value, value_len, expected,
                      opts);
}

/* A read through the view; a replica saying the ring changed makes the
 * router learn it again (from that replica, which knows the newer ring),
 * and the read is tried once more. */
static int read_call(kv *db, kv_value **out, const void *key, size_t key_len,
                     const kv_read_options *opts, kvi_read_report *report)
{
    int rc = KV_EUNAVAILABLE;
    kvi_read_report local;
    if (!report)
        report = &local; /* to know who said the ring changed */
    for (int attempt = 0; attempt < 2; attempt++) {
        kvi_view *v = kvi_router_view(db->router);
        /* A SERIAL read is a Paxos round, which a node runs: send it as a
         * GET, as writes are sent. */
        if (v && opts && opts->consistency == KV_CONSISTENCY_SERIAL) {
            kvi_view_unref(v);
            v = NULL;
        }
        if (!v)
            return kvi_client_get(db->client, out, key, key_len, opts);
        kvi_coord_env env = {.view = v, .log = &db->log, .is_down = kvi_router_is_down,
                         .is_down_ctx = db->router,
                         .tracker = kvi_router_tracker(db->router)};
        report->n = 0;
        rc = kvi_coord_read(&env, out, key, key_len,
                            opts ? opts->consistency : KV_CONSISTENCY_DEFAULT,
                            opts ? opts->r : 0, db->policy != KV_POLICY_LWW, report);
        if (rc == KVI_ENOT_REPLICA) {
            const char *from = NULL;
            for (size_t i = 0; i < report->n && !from; i++)
                if (report->answers[i].status == KVI_ENOT_REPLICA)
                    from = report->answers[i].node;
            kvi_router_invalidate(db->router, v, from);
        }
        kvi_view_unref(v);
        if (rc != KVI_ENOT_REPLICA)
            return rc;
    }
    return kvi_error(KV_EUNAVAILABLE, "the replicas disagree with every view of the ring");
}

struct kv_merge_result {
    unsigned char *data;
    size_t len;
    int set;
};

int kvi_merge_result_set(kv_merge_result *result, const void *data, size_t len)
{
    if (!result || (!data && len))
        return kvi_error(KV_EINVAL, "kv_merge_result_set: NULL result, or NULL data with a "
                                    "length");
    unsigned char *copy = malloc(len ? len : 1);
    if (!copy)
        return kvi_error(KV_ENOMEM, "out of memory copying a merged value");
    if (len)
        memcpy(copy, data, len);
    free(result->data);
    result->data = copy;
    result->len = len;
    result->set = 1;
    return KV_OK;
}

int kvi_merge_run(kv *db, kv_merge_result **out, const unsigned char **data, size_t *len,
                  const void *key, size_t key_len, const kv_value *siblings)
{
    *data = NULL;
    *len = 0;
    kv_merge_result *res = calloc(1, sizeof *res);
    if (!(*out = res))
        return kvi_error(KV_ENOMEM, "out of memory merging siblings");
    int rc = db->merge(db->merge_ctx, res, key, key_len, siblings);
    if (rc == KV_OK && !res->set)
        return kvi_error(KV_EINVAL, "the merge callback returned no value "
                                    "(call kv_merge_result_set)");
    if (rc != KV_OK)
        return kvi_error(rc, "the merge callback failed: %s", kvi_strerror(rc));
    *data = res->data;
    *len = res->len;
    return KV_OK;
}

void kvi_merge_result_free(kv_merge_result *res)
{
    if (res)
        free(res->data);
    free(res);
}

/* MERGE: fold the siblings with the application's callback and write the
 * result back with the read's context, so the siblings are gone for every
 * later reader; then read once more for the new version and context. */
static int merge_siblings(kv *db, kv_value **out, const void *key, size_t key_len,
                          const kv_read_options *opts)
{
    kv_merge_result *res;
    const unsigned char *data;
    size_t len;
    int rc = kvi_merge_run(db, &res, &data, &len, key, key_len, *out);
    if (rc == KV_OK) {
        kv_write_options wo = KV_WRITE_OPTIONS_INIT;
        wo.context = kvi_value_context(*out, &wo.context_len);
        if (opts && opts->consistency != KV_CONSISTENCY_EXPLICIT)
            wo.consistency = opts->consistency;
        rc = kvi_remote_put(db, NULL, key, key_len, data, len, &wo);
    }
    kvi_merge_result_free(res);
    kvi_value_free(*out);
    *out = NULL;
    if (rc != KV_OK)
        return rc;
    return read_call(db, out, key, key_len, opts, NULL);
}

/* Whether a read may be answered from the cache of hot keys: not a traced
 * read (it asks what each replica says), not at SERIAL (linearizable) or
 * ALL (every replica). */
static int cacheable(const kv *db, const kv_read_options *opts, const kvi_read_report *report)
{
    kv_consistency level = opts ? opts->consistency : KV_CONSISTENCY_DEFAULT;
    return db->hot_cache && !report && level != KV_CONSISTENCY_SERIAL &&
           level != KV_CONSISTENCY_ALL;
}

int kvi_remote_get(kv *db, kv_value **out, const void *key, size_t key_len,
                   const kv_read_options *opts, kvi_read_report *report)
{
    int cache = cacheable(db, opts, report);
    if (cache && kvi_hot_cache_get(db->hot_cache, key, key_len, kvi_monotonic_ns() / 1000000u,
                                   out))
        return KV_OK;
    uint64_t asked_ms = kvi_monotonic_ns() / 1000000u; /* the value is at least this fresh */
    int rc = read_call(db, out, key, key_len, opts, report);
    if (rc == KV_OK && db->policy == KV_POLICY_MERGE && kvi_value_sibling_count(*out) > 1)
        rc = merge_siblings(db, out, key, key_len, opts);
    if (rc == KV_OK && cache)
        kvi_hot_cache_put(db->hot_cache, key, key_len, *out, asked_ms);
    return rc;
}

static int batch_call(kv *db, kv_batch *b, const kv_write_options *wopts,
                      const kv_read_options *ropts);

/* Forgets every key a batch writes (see write_through). */
static void drop_written(kv *db, const kv_batch *b)
{
    for (size_t i = 0; db->hot_cache && i < b->count; i++)
        if (b->ops[i].kind != KV_BATCH_GET)
            kvi_hot_cache_drop(db->hot_cache, b->ops[i].key, b->ops[i].key_len);
}

int kvi_remote_batch(kv *db, kv_batch *b, const kv_write_options *wopts,
                     const kv_read_options *ropts)
{
    drop_written(db, b);
    int rc = batch_call(db, b, wopts, ropts);
    drop_written(db, b);
    return rc;
}

static int batch_call(kv *db, kv_batch *b, const kv_write_options *wopts,
                      const kv_read_options *ropts)
{
    kvi_view *v = kvi_router_view(db->router);
    /* SERIAL operations are Paxos rounds that a node runs: the batch goes
     * to a node whole. */
    if (v && ((ropts && ropts->consistency == KV_CONSISTENCY_SERIAL) ||
              (wopts && wopts->consistency == KV_CONSISTENCY_SERIAL))) {
        kvi_view_unref(v);
        v = NULL;
    }
    if (!v)
        return kvi_client_batch(db->client, b, wopts, ropts);
    /* Checked whole against the nodes' own limits first: the operations
     * then run one by one, and a batch with a bad one must be refused
     * before any runs, as every other door does. */
    int rc = KV_OK;
    if (v->max_key_size) {
        kvi_limits l = {v->max_key_size, v->max_value_size};
        rc = kvi_batch_prepare(&l, b, wopts, ropts);
    }
    if (rc == KV_OK) {
        kvi_coord_env env = {.view = v, .log = &db->log, .is_down = kvi_router_is_down,
                             .is_down_ctx = db->router,
                         .tracker = kvi_router_tracker(db->router)};
        rc = kvi_coord_batch(&env, b, wopts, ropts, db->policy != KV_POLICY_LWW);
    }
    kvi_view_unref(v);
    return rc;
}
