/*
 * api/api.c - the public data calls: validate the arguments against the handle's
 * limits (before anything is allocated), then dispatch on the handle's kind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kv/kv.h>
#include "client/async.h"
#include "client/backup.h"
#include "client/repair.h"
#include "client/topology.h"
#include "storage/backup.h"
#include "format/batch.h"
#include "storage/embedded.h"
#include "client/handle.h"
#include "client/hot_cache.h"
#include "format/frame.h"
#include "format/message.h"
#include "util/options.h"
#include "net/client.h"
#include "client/remote.h"
#include "client/router.h"
#include "util/error.h"
#include "util/validate.h"


static kvi_limits limits_of(const kv *db)
{
    kvi_limits l = {db->max_key_size, db->max_value_size};
    return l;
}

/* Points *opts at a copy in the current version (in `copy`), so that the
 * layers below never read past an older, shorter struct. */
static int upgrade_write_options(const kv_write_options **opts, kv_write_options *copy)
{
    if (!*opts)
        return KV_OK;
    if ((*opts)->version != KV_WRITE_OPTIONS_VERSION && (*opts)->version != 1)
        return kvi_error(KV_EINVAL, "write options: unknown version %u", (*opts)->version);
    kvi_write_options_upgrade(copy, *opts);
    *opts = copy;
    return KV_OK;
}

static int check_read_version(const kv_read_options *opts)
{
    if (opts && opts->version != KV_READ_OPTIONS_VERSION)
        return kvi_error(KV_EINVAL, "read options: unknown version %u", opts->version);
    return KV_OK;
}

/* A write's arguments, through the one validation layer (util/validate.h). */
static int check_write(const kv *db, kvi_write_check kind, const void *key, size_t key_len,
                       const void *value, size_t value_len, const kv_write_options **opts,
                       kv_write_options *copy)
{
    int rc = upgrade_write_options(opts, copy);
    if (rc != KV_OK)
        return rc;
    kvi_limits l = limits_of(db);
    return kvi_check_write(&l, kind, key, key_len, value, value_len, *opts);
}

static int check_read(const kv *db, const void *key, size_t key_len, const kv_read_options *opts)
{
    int rc = check_read_version(opts);
    if (rc != KV_OK)
        return rc;
    kvi_limits l = limits_of(db);
    return kvi_check_read(&l, key, key_len, opts);
}

/* The frame flags of a node handle's requests: its node's policy, or the
 * handle's own. */
static unsigned node_flags(const kv *db)
{
    if (!db->policy_fixed)
        return kvi_node_flags(db->node);
    return db->policy == KV_POLICY_SIBLINGS ? KVI_FRAME_FLAG_SIBLINGS : 0;
}

static int check_handle(const kv *db)
{
    if (!db)
        return kvi_error(KV_EINVAL, "handle is NULL");
    return KV_OK;
}

/* ------------------------------------------------------------ constructors */

int kv_open(kv **out, const char *path, const kv_open_options *opts)
{
    if (!out)
        return kvi_error(KV_EINVAL, "kv_open: out is NULL");
    *out = NULL;
    if (!path || !*path)
        return kvi_error(KV_EINVAL, "kv_open: path is empty");
    kv_open_options defaults = KV_OPEN_OPTIONS_INIT;
    const kv_open_options *o = opts ? opts : &defaults;
    kvi_store_config cfg = {.path = path};
    int rc = kvi_embedded_config(&cfg, o);
    if (rc != KV_OK)
        return rc;

    kv *db = calloc(1, sizeof *db);
    if (!db)
        return kvi_error(KV_ENOMEM, "out of memory opening the store");
    db->kind = KVI_KIND_EMBEDDED;
    db->max_key_size = o->max_key_size ? o->max_key_size : KV_DEFAULT_MAX_KEY_SIZE;
    db->max_value_size = o->max_value_size ? o->max_value_size : KV_DEFAULT_MAX_VALUE_SIZE;
    db->log = (kvi_logger){o->log_fn, o->log_ctx, o->log_level};
    cfg.log = &db->log;
    rc = kvi_embedded_open(&db->embedded, &cfg);
    if (rc != KV_OK) {
        free(db);
        return rc;
    }
    *out = db;
    return KV_OK;
}

int kv_node_start(kv **out, const kv_node_options *opts)
{
    if (!out)
        return kvi_error(KV_EINVAL, "kv_node_start: out is NULL");
    *out = NULL;
    if (!opts)
        return kvi_error(KV_EINVAL, "kv_node_start: options are required (data_dir, "
                                    "node_id, listen_addr)");
    const kv_open_options *so = opts->store;
    kv_open_options defaults = KV_OPEN_OPTIONS_INIT;
    if (!so)
        so = &defaults;
    kv *db = calloc(1, sizeof *db);
    if (!db)
        return kvi_error(KV_ENOMEM, "out of memory starting a node");
    db->kind = KVI_KIND_NODE;
    db->max_key_size = so->max_key_size ? so->max_key_size : KV_DEFAULT_MAX_KEY_SIZE;
    db->max_value_size = so->max_value_size ? so->max_value_size : KV_DEFAULT_MAX_VALUE_SIZE;
    db->log = (kvi_logger){so->log_fn, so->log_ctx, so->log_level};
    int rc = kvi_node_start(&db->node, opts, &db->log);
    if (rc != KV_OK) {
        free(db);
        return rc;
    }
    *out = db;
    return KV_OK;
}

int kv_node_ports(int *out_binary_port, int *out_http_port, const kv *db)
{
    if (!db || db->kind != KVI_KIND_NODE)
        return kvi_error(KV_EINVAL, "kv_node_ports: not a node handle");
    kvi_node_ports(db->node, out_binary_port, out_http_port);
    return KV_OK;
}

int kv_client_open(kv **out, const char *const *endpoints, size_t count,
                   const kv_client_options *opts)
{
    if (!out)
        return kvi_error(KV_EINVAL, "kv_client_open: out is NULL");
    *out = NULL;
    kv *db = calloc(1, sizeof *db);
    if (!db)
        return kvi_error(KV_ENOMEM, "out of memory opening a client");
    db->kind = KVI_KIND_CLIENT;
    /* The node enforces its own limits; the client checks the ceilings so
     * nothing absurd is encoded, and the node's answer says the rest. */
    db->max_key_size = KV_MAX_KEY_SIZE_LIMIT;
    db->max_value_size = KV_MAX_VALUE_SIZE_LIMIT;
    kv_client_options o;
    int rc = kvi_client_options_upgrade(&o, opts);
    if (rc == KV_OK && (unsigned)o.policy > KV_POLICY_MERGE)
        rc = kvi_error(KV_EINVAL, "client options: unknown conflict policy %d", (int)o.policy);
    if (rc == KV_OK && o.policy == KV_POLICY_MERGE && !o.merge)
        rc = kvi_error(KV_EINVAL, "client options: KV_POLICY_MERGE needs a merge callback");
    if (rc == KV_OK && o.hot_cache_staleness_ms > 3600000u)
        rc = kvi_error(KV_EINVAL, "client options: hot_cache_staleness_ms is %u; at most "
                                  "3600000 (an hour)", o.hot_cache_staleness_ms);
    if (rc == KV_OK && o.hot_cache_entries > 1048576u)
        rc = kvi_error(KV_EINVAL, "client options: hot_cache_entries is %u; at most 1048576",
                       o.hot_cache_entries);
    if (rc == KV_OK && o.hot_cache_staleness_ms &&
        !(db->hot_cache = kvi_hot_cache_new(o.hot_cache_staleness_ms, o.hot_cache_entries)))
        rc = kvi_error(KV_ENOMEM, "out of memory making the client's cache of hot keys");
    if (rc != KV_OK) {
        kvi_hot_cache_free(db->hot_cache);
        free(db);
        return rc;
    }
    db->log = (kvi_logger){o.log_fn, o.log_ctx, o.log_level};
    db->policy = o.policy;
    db->merge = o.merge;
    db->merge_ctx = o.merge_ctx;
    rc = kvi_client_open(&db->client, endpoints, count, &o, &db->log);
    if (rc == KV_OK) {
        kvi_client_set_flags(db->client, o.policy == KV_POLICY_LWW ? 0 : KVI_FRAME_FLAG_SIBLINGS);
        kvi_client_set_probe(db->client, 1);
        /* A manual_loop client has no thread of its own, so no router
         * (whose thread keeps the members' statuses): every request goes
         * to a node of the endpoints, which coordinates it. */
        db->manual_loop = o.manual_loop != 0;
        if (!db->manual_loop)
            rc = kvi_router_open(&db->router, db->client, &o, &db->log);
    }
    if (rc != KV_OK) {
        kvi_client_close(db->client);
        kvi_hot_cache_free(db->hot_cache);
        free(db);
        return rc;
    }
    *out = db;
    return KV_OK;
}

int kv_cluster_describe(char **out, kv *db)
{
    if (!out)
        return kvi_error(KV_EINVAL, "kv_cluster_describe: out is NULL");
    *out = NULL;
    int rc = check_handle(db);
    if (rc != KV_OK)
        return rc;
    if (db->kind == KVI_KIND_EMBEDDED)
        return kvi_error(KV_ENOTSUP, "an embedded store is not part of a cluster");
    kvi_buf json = {0};
    if (db->kind == KVI_KIND_NODE)
        kvi_node_describe(db->node, &json);
    else
        rc = kvi_client_cluster(db->client, &json);
    kvi_buf_u8(&json, 0);
    if (rc == KV_OK && json.failed)
        rc = kvi_error(KV_ENOMEM, "out of memory describing the cluster");
    if (rc != KV_OK) {
        kvi_buf_free(&json);
        return rc;
    }
    *out = (char *)json.data; /* allocated with malloc; kv_string_free frees it */
    return KV_OK;
}

void kv_string_free(char *s)
{
    free(s);
}

int kv_ping(kv *db)
{
    int rc = check_handle(db);
    if (rc != KV_OK)
        return rc;
    return db->kind == KVI_KIND_CLIENT ? kvi_client_ping(db->client) : KV_OK;
}

void kv_close(kv *db)
{
    if (!db)
        return;
    kvi_embedded_close(db->embedded);
    kvi_node_stop(db->node);
    kvi_router_close(db->router);
    kvi_client_close(db->client);
    kvi_hot_cache_free(db->hot_cache);
    free(db);
}

/* --------------------------------------------------------------- data calls */

int kv_put(uint64_t *out_version, kv *db, const void *key, size_t key_len,
           const void *value, size_t value_len, const kv_write_options *opts)
{
    kv_write_options opts_copy;
    int rc;
    if ((rc = check_handle(db)) ||
        (rc = check_write(db, KVI_CHECK_PUT, key, key_len, value, value_len, &opts, &opts_copy)))
        return rc;
    if (db->kind == KVI_KIND_NODE)
        rc = kvi_node_put(db->node, out_version, key, key_len, value, value_len, opts,
                          node_flags(db));
    else if (db->kind == KVI_KIND_CLIENT)
        rc = kvi_remote_put(db, out_version, key, key_len, value, value_len, opts);
    else
        rc = kvi_embedded_put(db->embedded, out_version, key, key_len, value, value_len,
                              opts ? opts->ttl_s : 0);
    return kvi_public_status(rc);
}

int kv_get(kv_value **out, kv *db, const void *key, size_t key_len,
           const kv_read_options *opts)
{
    if (!out)
        return kvi_error(KV_EINVAL, "kv_get: out is NULL");
    *out = NULL;
    int rc;
    if ((rc = check_handle(db)) || (rc = check_read(db, key, key_len, opts)))
        return rc;
    if (db->kind == KVI_KIND_NODE)
        rc = kvi_node_get(db->node, out, key, key_len, opts, node_flags(db), NULL);
    else if (db->kind == KVI_KIND_CLIENT)
        rc = kvi_remote_get(db, out, key, key_len, opts, NULL);
    else
        rc = kvi_embedded_get(db->embedded, out, key, key_len);
    return kvi_public_status(rc);
}

static const char *status_name(int status)
{
    switch (status) {
    case KV_OK: return "OK";
    case KV_ENOTFOUND: return "NOT_FOUND";
    case KV_ETIMEDOUT: return "TIMEOUT";
    case KV_EUNAVAILABLE: return "UNAVAILABLE";
    case KV_ECORRUPT: return "CORRUPT";
    case KVI_ENOT_REPLICA: return "NOT_A_REPLICA";
    case KVI_ENOT_WAITED: return "NOT_WAITED_FOR";
    case KVI_ENOT_ASKED: return "NOT_ASKED";
    default: return "ERROR";
    }
}

static char *trace_json(const kvi_read_report *r)
{
    kvi_buf b = {0};
    char num[160];
    snprintf(num, sizeof num, "{\"required\":%u,\"replicas\":[", r->required);
    kvi_buf_raw(&b, num, strlen(num));
    for (size_t i = 0; i < r->n; i++) {
        const kvi_replica_answer *a = &r->answers[i];
        /* Node ids are letters, digits, '-', '_' and '.': no escaping. */
        const char *open = i ? ",{\"nodeId\":\"" : "{\"nodeId\":\"";
        kvi_buf_raw(&b, open, strlen(open));
        kvi_buf_raw(&b, a->node, strlen(a->node));
        snprintf(num, sizeof num,
                 "\",\"status\":\"%s\",\"version\":%llu,\"siblings\":%u,\"repaired\":%s}",
                 status_name(a->status), (unsigned long long)a->version, a->siblings,
                 a->repaired ? "true" : "false");
        kvi_buf_raw(&b, num, strlen(num));
    }
    kvi_buf_raw(&b, "]}", 3); /* with the NUL */
    if (b.failed) {
        kvi_buf_free(&b);
        return NULL;
    }
    return (char *)b.data;
}

int kv_get_traced(kv_value **out, char **out_trace, kv *db, const void *key, size_t key_len,
                  const kv_read_options *opts)
{
    if (!out || !out_trace)
        return kvi_error(KV_EINVAL, "kv_get_traced: out or out_trace is NULL");
    *out = NULL;
    *out_trace = NULL;
    int rc;
    if ((rc = check_handle(db)) || (rc = check_read(db, key, key_len, opts)))
        return rc;
    kvi_read_report *report = calloc(1, sizeof *report);
    if (!report)
        return kvi_error(KV_ENOMEM, "out of memory tracing a read");
    if (db->kind == KVI_KIND_NODE)
        rc = kvi_node_get(db->node, out, key, key_len, opts, node_flags(db), report);
    else if (db->kind == KVI_KIND_CLIENT)
        rc = kvi_remote_get(db, out, key, key_len, opts, report);
    else
        rc = kvi_embedded_get(db->embedded, out, key, key_len);
    /* The trace's own allocation must not hide the read's detail message. */
    char saved[512];
    snprintf(saved, sizeof saved, "%s", kv_error_last());
    *out_trace = trace_json(report);
    free(report);
    if (rc != KV_OK)
        kvi_error(rc, "%s", saved);
    return kvi_public_status(rc);
}

/* ------------------------------------------------------- asynchronous calls */

/* Runs cb with a blocking call's outcome (embedded and node handles). */
static int complete_inline(kv_callback cb, void *ctx, int rc, uint64_t version, kv_value *value)
{
    kv_result res = {rc, rc == KV_OK ? "" : kv_error_last(), version, value};
    cb(ctx, &res);
    return KV_OK;
}

static int check_async(const kv *db, kv_callback cb)
{
    int rc = check_handle(db);
    if (rc == KV_OK && !cb)
        rc = kvi_error(KV_EINVAL, "the callback is NULL");
    return rc;
}

int kv_get_async(kv *db, const void *key, size_t key_len, const kv_read_options *opts,
                 kv_callback cb, void *ctx)
{
    int rc;
    if ((rc = check_async(db, cb)) || (rc = check_read(db, key, key_len, opts)))
        return rc;
    if (db->kind != KVI_KIND_CLIENT) {
        kv_value *v = NULL;
        rc = kv_get(&v, db, key, key_len, opts);
        return complete_inline(cb, ctx, rc, rc == KV_OK ? kv_value_version(v) : 0, v);
    }
    kvi_request req = {.opcode = KVI_OP_GET, .key = {key, key_len}};
    if (opts) {
        req.consistency = (uint8_t)opts->consistency;
        req.quorum = (uint8_t)opts->r;
    }
    return kvi_public_status(kvi_async_start(db, &req, opts, cb, ctx));
}

int kv_put_async(kv *db, const void *key, size_t key_len, const void *value, size_t value_len,
                 const kv_write_options *opts, kv_callback cb, void *ctx)
{
    kv_write_options opts_copy;
    int rc;
    if ((rc = check_async(db, cb)) ||
        (rc = check_write(db, KVI_CHECK_PUT, key, key_len, value, value_len, &opts, &opts_copy)))
        return rc;
    if (db->kind != KVI_KIND_CLIENT) {
        uint64_t version = 0;
        rc = kv_put(&version, db, key, key_len, value, value_len, opts);
        return complete_inline(cb, ctx, rc, version, NULL);
    }
    kvi_request req = {.opcode = KVI_OP_PUT, .key = {key, key_len}, .value = {value, value_len}};
    kvi_request_set_write_options(&req, opts);
    return kvi_public_status(kvi_async_start(db, &req, NULL, cb, ctx));
}

int kv_delete_async(kv *db, const void *key, size_t key_len, const kv_write_options *opts,
                    kv_callback cb, void *ctx)
{
    kv_write_options opts_copy;
    int rc;
    if ((rc = check_async(db, cb)) ||
        (rc = check_write(db, KVI_CHECK_DELETE, key, key_len, NULL, 0, &opts, &opts_copy)))
        return rc;
    if (db->kind != KVI_KIND_CLIENT) {
        uint64_t version = 0;
        rc = kv_delete(&version, db, key, key_len, opts);
        return complete_inline(cb, ctx, rc, version, NULL);
    }
    kvi_request req = {.opcode = KVI_OP_DELETE, .key = {key, key_len}};
    kvi_request_set_write_options(&req, opts);
    return kvi_public_status(kvi_async_start(db, &req, NULL, cb, ctx));
}

int kv_cas_async(kv *db, const void *key, size_t key_len, uint64_t expected_version,
                 const void *value, size_t value_len, const kv_write_options *opts,
                 kv_callback cb, void *ctx)
{
    kv_write_options opts_copy;
    int rc;
    if ((rc = check_async(db, cb)) ||
        (rc = check_write(db, KVI_CHECK_CAS, key, key_len, value, value_len, &opts, &opts_copy)))
        return rc;
    if (db->kind != KVI_KIND_CLIENT) {
        uint64_t version = 0;
        rc = kv_cas(&version, db, key, key_len, expected_version, value, value_len, opts);
        return complete_inline(cb, ctx, rc, version, NULL);
    }
    kvi_request req = {.opcode = KVI_OP_CAS, .key = {key, key_len}, .value = {value, value_len},
                       .expected_version = expected_version};
    kvi_request_set_write_options(&req, opts);
    return kvi_public_status(kvi_async_start(db, &req, NULL, cb, ctx));
}

int kv_run(kv *db, int timeout_ms)
{
    int rc = check_handle(db);
    if (rc != KV_OK)
        return rc;
    if (db->kind != KVI_KIND_CLIENT)
        return kvi_error(KV_EINVAL, "kv_run: only a client handle has an event loop to run");
    int n = kvi_client_run(db->client, timeout_ms);
    return n >= 0 ? n : kvi_public_status(n);
}

int kv_fd(int *out_fd, kv *db)
{
    if (!out_fd)
        return kvi_error(KV_EINVAL, "kv_fd: out_fd is NULL");
    *out_fd = -1;
    int rc = check_handle(db);
    if (rc != KV_OK)
        return rc;
    if (db->kind != KVI_KIND_CLIENT || !db->manual_loop)
        return kvi_error(KV_EINVAL, "kv_fd: only a client handle opened with manual_loop has "
                                    "a loop for the application to drive");
    *out_fd = kvi_client_fd(db->client);
    return KV_OK;
}

int kv_delete(uint64_t *out_version, kv *db, const void *key, size_t key_len,
              const kv_write_options *opts)
{
    kv_write_options opts_copy;
    int rc;
    if ((rc = check_handle(db)) ||
        (rc = check_write(db, KVI_CHECK_DELETE, key, key_len, NULL, 0, &opts, &opts_copy)))
        return rc;
    if (db->kind == KVI_KIND_NODE)
        rc = kvi_node_delete(db->node, out_version, key, key_len, opts, node_flags(db));
    else if (db->kind == KVI_KIND_CLIENT)
        rc = kvi_remote_delete(db, out_version, key, key_len, opts);
    else
        rc = kvi_embedded_delete(db->embedded, out_version, key, key_len);
    return kvi_public_status(rc);
}

int kv_cas(uint64_t *out_version, kv *db, const void *key, size_t key_len,
           uint64_t expected_version, const void *value, size_t value_len,
           const kv_write_options *opts)
{
    kv_write_options opts_copy;
    int rc;
    if ((rc = check_handle(db)) ||
        (rc = check_write(db, KVI_CHECK_CAS, key, key_len, value, value_len, &opts, &opts_copy)))
        return rc;
    if (db->kind == KVI_KIND_NODE)
        rc = kvi_node_cas(db->node, out_version, key, key_len, expected_version, value,
                          value_len, opts, node_flags(db));
    else if (db->kind == KVI_KIND_CLIENT)
        rc = kvi_remote_cas(db, out_version, key, key_len, expected_version, value, value_len,
                            opts);
    else
        rc = kvi_embedded_cas(db->embedded, out_version, key, key_len, expected_version, value,
                              value_len, opts ? opts->ttl_s : 0);
    return kvi_public_status(rc);
}

int kv_batch_execute(kv *db, kv_batch *b, const kv_write_options *wopts,
                     const kv_read_options *ropts)
{
    kv_write_options opts_copy;
    int rc;
    if ((rc = check_handle(db)) || (rc = upgrade_write_options(&wopts, &opts_copy)) ||
        (rc = check_read_version(ropts)))
        return rc;
    kvi_limits l = limits_of(db);
    if ((rc = kvi_batch_prepare(&l, b, wopts, ropts)) != KV_OK)
        return rc;
    if (db->kind == KVI_KIND_NODE)
        rc = kvi_node_batch(db->node, b, wopts, ropts, node_flags(db));
    else if (db->kind == KVI_KIND_CLIENT)
        rc = kvi_remote_batch(db, b, wopts, ropts);
    else
        rc = kvi_embedded_batch(db->embedded, b);
    kvi_batch_public_results(b);
    return kvi_public_status(rc);
}

int kv_compact(kv *db)
{
    int rc = check_handle(db);
    if (rc != KV_OK)
        return rc;
    if (db->kind == KVI_KIND_NODE)
        return kvi_embedded_compact(kvi_node_store(db->node));
    if (db->kind == KVI_KIND_CLIENT)
        return kvi_error(KV_ENOTSUP, "kv_compact: not available on a client handle");
    return kvi_embedded_compact(db->embedded);
}

/* The merge callback's answer (client/remote.h). */
int kv_merge_result_set(kv_merge_result *result, const void *data, size_t len)
{
    return kvi_merge_result_set(result, data, len);
}

/* ------------------------------------------------------- backup and restore */

int kv_backup(char **out_report, kv *db, const char *dir)
{
    if (out_report)
        *out_report = NULL;
    int rc = check_handle(db);
    if (rc == KV_OK)
        rc = kvi_check_backup_dir(dir, dir ? strnlen(dir, KV_BACKUP_MAX_PATH + 1) : 0,
                                  "kv_backup: dir");
    if (rc != KV_OK)
        return rc;
    return kvi_public_status(kvi_backup_run(out_report, db, dir));
}

int kv_repair(char **out_report, kv *db, const char *node_id)
{
    if (out_report)
        *out_report = NULL;
    int rc = check_handle(db);
    if (rc == KV_OK && node_id && (!*node_id || strlen(node_id) > 64))
        rc = kvi_error(KV_EINVAL, "kv_repair: node_id must be 1-64 characters");
    if (rc != KV_OK)
        return rc;
    return kvi_public_status(kvi_repair_run(out_report, db, node_id));
}

int kv_topology_change(char **out_json, kv *db, const char *change, const char *node_id)
{
    if (out_json)
        *out_json = NULL;
    int rc = check_handle(db);
    if (rc == KV_OK && (!change || (strcmp(change, "leave") && strcmp(change, "remove") &&
                                    strcmp(change, "abort") && strcmp(change, "cleanup"))))
        rc = kvi_error(KV_EINVAL, "kv_topology_change: change must be \"leave\", \"remove\", "
                                  "\"abort\" or \"cleanup\"");
    if (rc == KV_OK && node_id && (!*node_id || strlen(node_id) > 64))
        rc = kvi_error(KV_EINVAL, "kv_topology_change: node_id must be 1-64 characters");
    if (rc == KV_OK && strcmp(change, "remove") == 0 && !node_id)
        rc = kvi_error(KV_EINVAL, "kv_topology_change: remove names the member to remove");
    if (rc != KV_OK)
        return rc;
    return kvi_public_status(kvi_topology_change_run(out_json, db, change, node_id));
}

int kv_restore(const char *backup_dir, const char *data_dir, const char *node_id)
{
    if (!backup_dir || !data_dir)
        return kvi_error(KV_EINVAL, "kv_restore: backup_dir and data_dir are required");
    return kvi_backup_restore(backup_dir, data_dir, node_id);
}
