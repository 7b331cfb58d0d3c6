/*
 * node/node.c - a storage node: starts the store and both servers, and executes
 * binary-protocol requests against the store.
 */
#include "node/node_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/backup.h"
#include "storage/digest.h"
#include "storage/keylock.h"
#include "storage/store.h"
#include "format/batch.h"
#include "cluster/coordinator.h"
#include "cluster/handoff.h"
#include "cluster/hints.h"
#include "cluster/membership.h"
#include "cluster/paxos_acceptor.h"
#include "cluster/replica_store.h"
#include "cluster/view.h"
#include "cluster/write_stage.h"
#include "util/options.h"
#include "net/addr.h"
#include "net/http.h"
#include "net/tls.h"
#include "format/record.h"
#include "format/message.h"
#include "net/server.h"
#include "util/clock.h"
#include "format/value.h"
#include "util/error.h"
#include "util/wipe.h"
#include "util/metrics.h"

#define DEFAULT_MAX_REQUEST (16u * 1024u * 1024u)
#define DEFAULT_IDLE_TIMEOUT_MS 60000u
#define DEFAULT_MAX_CONNECTIONS 4096u

/* ----------------------------------------------------------- data calls */

/* A node given other members (or seeds) serves the cluster's data; alone,
 * it is its embedded store served over the network. */
int kvi_node_clustered(kvi_node *n)
{
    return kvi_membership_clustered(n->membership);
}

/* The coordinator's environment, with a reference on the view; KV_OK or
 * KV_EUNAVAILABLE while membership is incomplete. */
static int member_down(void *ctx, const char *node_id)
{
    return kvi_membership_is_down(ctx, node_id);
}

static void ring_stale(void *ctx, const char *addr)
{
    kvi_membership_learn_ring(ctx, addr);
}

static kvi_view *fresh_view(void *ctx)
{
    return kvi_membership_view(ctx);
}

int kvi_node_coord_env(kvi_node *n, kvi_coord_env *env)
{
    env->view = kvi_membership_view(n->membership);
    env->local = n->store;
    env->log = n->log;
    env->is_down = member_down;
    env->is_down_ctx = n->membership;
    env->ring_stale = ring_stale;
    env->fresh_view = fresh_view;
    env->hints = &n->hints;
    env->sloppy_writes = &n->sloppy_writes;
    env->read_repairs = &n->read_repairs;
    env->tracker = &n->coord_ops;
    env->stage = n->stage;
    env->slow = &n->slow_log;
    if (!env->view)
        return kvi_error(KV_EUNAVAILABLE, "the cluster is still learning its members "
                                          "(see GET /v1/cluster)");
    return KV_OK;
}

static int node_write(kvi_node *n, kvi_write_kind kind, uint64_t *out_version, const void *key,
                      size_t key_len, const void *value, size_t value_len,
                      uint64_t expected, const kv_write_options *wo, unsigned flags)
{
    kv_write_options defaults = KV_WRITE_OPTIONS_INIT;
    if (!wo)
        wo = &defaults;
    /* Every door of a node leads here (binary frames, forwarded or not;
     * the HTTP API and node handles through the API): one check for all. */
    static const kvi_write_check checks[] = {
        [KVI_WRITE_PUT] = KVI_CHECK_PUT, [KVI_WRITE_DELETE] = KVI_CHECK_DELETE,
        [KVI_WRITE_CAS] = KVI_CHECK_CAS};
    int rc = kvi_check_write(&n->limits, checks[kind], key, key_len, value, value_len, wo);
    if (rc != KV_OK)
        return rc;
    kvi_node_count_key(n, KVI_HOTKEY_WRITE, key, key_len);
    if (!kvi_node_clustered(n)) {
        if (kind == KVI_WRITE_PUT)
            rc = kvi_embedded_put(n->store, out_version, key, key_len, value, value_len,
                                  wo->ttl_s);
        else if (kind == KVI_WRITE_DELETE)
            rc = kvi_embedded_delete(n->store, out_version, key, key_len);
        else
            rc = kvi_embedded_cas(n->store, out_version, key, key_len, expected, value,
                                  value_len, wo->ttl_s);
        return kvi_public_status(rc);
    }
    kvi_coord_env env;
    rc = kvi_node_coord_env(n, &env);
    if (rc != KV_OK)
        return rc;
    kvi_coord_write w = {
        .kind = kind, .key = key, .key_len = key_len, .value = value, .value_len = value_len,
        .ttl_s = wo->ttl_s, .expected_version = expected,
        .context = wo->context, .context_len = wo->context ? wo->context_len : 0,
        .consistency = wo->consistency, .w = wo->w,
        .siblings = (flags & KVI_FRAME_FLAG_SIBLINGS) != 0,
        .forwarded = (flags & KVI_FRAME_FLAG_FORWARDED) != 0,
        .home_only = wo->home_only || (flags & KVI_FRAME_FLAG_HOME_ONLY) != 0,
    };
    rc = kvi_coord_write_run(&env, &w, out_version);
    kvi_view_unref(env.view);
    return rc;
}

int kvi_node_put(kvi_node *n, uint64_t *out_version, const void *key, size_t key_len,
                 const void *value, size_t value_len, const kv_write_options *wo,
                 unsigned flags)
{
    return node_write(n, KVI_WRITE_PUT, out_version, key, key_len, value, value_len, 0, wo,
                      flags);
}

int kvi_node_delete(kvi_node *n, uint64_t *out_version, const void *key, size_t key_len,
                    const kv_write_options *wo, unsigned flags)
{
    return node_write(n, KVI_WRITE_DELETE, out_version, key, key_len, NULL, 0, 0, wo, flags);
}

int kvi_node_cas(kvi_node *n, uint64_t *out_version, const void *key, size_t key_len,
                 uint64_t expected, const void *value, size_t value_len,
                 const kv_write_options *wo, unsigned flags)
{
    return node_write(n, KVI_WRITE_CAS, out_version, key, key_len, value, value_len, expected,
                      wo, flags);
}

int kvi_node_get(kvi_node *n, kv_value **out, const void *key, size_t key_len,
                 const kv_read_options *ro, unsigned flags, kvi_read_report *report)
{
    int rc = kvi_check_read(&n->limits, key, key_len, ro);
    if (rc != KV_OK)
        return rc;
    kvi_node_count_key(n, KVI_HOTKEY_READ, key, key_len);
    if (!kvi_node_clustered(n)) {
        *out = NULL;
        return kvi_public_status(kvi_embedded_get(n->store, out, key, key_len));
    }
    kvi_coord_env env;
    rc = kvi_node_coord_env(n, &env);
    if (rc != KV_OK)
        return rc;
    rc = kvi_coord_read(&env, out, key, key_len, ro ? ro->consistency : KV_CONSISTENCY_DEFAULT,
                        ro ? ro->r : 0, (flags & KVI_FRAME_FLAG_SIBLINGS) != 0, report);
    kvi_view_unref(env.view);
    return rc;
}

int kvi_node_batch(kvi_node *n, kv_batch *b, const kv_write_options *wo,
                   const kv_read_options *ro, unsigned flags)
{
    int rc = kvi_batch_prepare(&n->limits, b, wo, ro);
    if (rc != KV_OK)
        return rc;
    if (!kvi_node_clustered(n)) {
        rc = kvi_embedded_batch(n->store, b);
        kvi_batch_public_results(b);
        return kvi_public_status(rc);
    }
    kvi_coord_env env;
    rc = kvi_node_coord_env(n, &env);
    if (rc != KV_OK)
        return rc;
    rc = kvi_coord_batch(&env, b, wo, ro, (flags & KVI_FRAME_FLAG_SIBLINGS) != 0);
    kvi_view_unref(env.view);
    return rc;
}

unsigned kvi_node_flags(const kvi_node *n)
{
    return n->siblings ? KVI_FRAME_FLAG_SIBLINGS : 0;
}

int kvi_node_backup(kvi_node *n, const char *dir, size_t len, int own_subdir, cJSON *entry)
{
    int rc = kvi_check_backup_dir(dir, len, "the backup directory");
    char path[KV_BACKUP_MAX_PATH + 80];
    if (rc == KV_OK) {
        /* Without trailing slashes: RocksDB names its work directory
         * <dir>.tmp. */
        while (len > 1 && dir[len - 1] == '/')
            len--;
        if (own_subdir)
            snprintf(path, sizeof path, "%.*s%s%s", (int)len, dir, len > 1 ? "/" : "",
                     n->node_id);
        else
            snprintf(path, sizeof path, "%.*s", (int)len, dir);
        rc = kvi_backup_local(n->store, path, n->node_id, entry);
    } else {
        cJSON_AddStringToObject(entry, "nodeId", n->node_id);
        cJSON_AddStringToObject(entry, "status", kvi_backup_status_name(rc));
        cJSON_AddStringToObject(entry, "message", kvi_error_last());
    }
    if (rc == KV_OK)
        kvi_log(n->log, KV_LOG_INFO, "backup of node %s taken in %s", n->node_id, path);
    else
        kvi_log(n->log, KV_LOG_WARN, "backup of node %s failed: %s", n->node_id,
                kvi_error_last());
    return rc;
}

/* BACKUP from a client: the node's part of a backup of the cluster. */
static int run_backup(kvi_node *n, const kvi_request *req, const kvi_frame_header *h,
                      kvi_buf *out)
{
    cJSON *entry = cJSON_CreateObject();
    if (!entry) {
        kvi_response none = {0};
        int rc = kvi_error(KV_ENOMEM, "out of memory taking a backup");
        kvi_node_respond(out, h, rc, &none);
        return rc;
    }
    int rc = kvi_node_backup(n, (const char *)req->value.data, req->value.len, 1, entry);
    char *json = rc == KV_OK ? cJSON_PrintUnformatted(entry) : NULL;
    cJSON_Delete(entry);
    if (rc == KV_OK && !json)
        rc = kvi_error(KV_ENOMEM, "out of memory reporting a backup");
    kvi_response resp = {0};
    if (json) {
        resp.value.data = (const unsigned char *)json;
        resp.value.len = strlen(json);
    }
    kvi_node_respond(out, h, rc, &resp);
    free(json);
    return rc;
}

/* REPAIR_START from a client: starts an anti-entropy round (or joins the
 * one running) and names it; the round's progress is in the node's
 * cluster description ("antiEntropy"). */
int kvi_node_repair_start(kvi_node *n, uint64_t *round)
{
    *round = 0;
    return n->ae ? kvi_anti_entropy_repair(n->ae, round)
                 : kvi_error(KV_ENOTSUP, "node %s is not part of a cluster: it has nothing "
                                         "to repair from", n->node_id);
}

static int start_repair(kvi_node *n, const kvi_frame_header *h, kvi_buf *out)
{
    uint64_t round = 0;
    int rc = kvi_node_repair_start(n, &round);
    char json[160];
    kvi_response resp = {0};
    if (rc == KV_OK) {
        int len = snprintf(json, sizeof json, "{\"nodeId\":\"%s\",\"round\":%llu}",
                           n->node_id, (unsigned long long)round);
        resp.value.data = (const unsigned char *)json;
        resp.value.len = len > 0 && (size_t)len < sizeof json ? (size_t)len : 0;
    }
    kvi_node_respond(out, h, rc, &resp);
    return rc;
}

/* ------------------------------------------------------- request executor */

/* Appends a response frame for a call that returned rc (KV_OK or an error
 * whose detail is this thread's kvi_error_last()). */
void kvi_node_respond(kvi_buf *out, const kvi_frame_header *h, int rc, kvi_response *resp)
{
    if (rc != KV_OK) {
        kvi_error_frame(out, h->opcode, h->request_id, rc, resp->version, kvi_error_last());
        return;
    }
    size_t start = out->len;
    kvi_frame_begin(out);
    resp->opcode = h->opcode;
    resp->status = KV_OK;
    kvi_response_encode(out, resp);
    kvi_frame_finish(out, start, h->opcode, KVI_FRAME_FLAG_RESPONSE, KV_OK, h->request_id);
}

void kvi_node_respond_value(kvi_buf *out, const kvi_frame_header *h, const kv_value *v)
{
    kvi_response resp = {0};
    size_t start = out->len;
    kvi_frame_begin(out);
    resp.opcode = KVI_OP_GET;
    resp.version = kvi_value_version(v);
    resp.expiry_ms = kvi_value_expiry_ms(v);
    resp.context.data = kvi_value_context(v, &resp.context.len);
    resp.sibling_count = (uint32_t)kvi_value_sibling_count(v);
    kvi_response_encode(out, &resp);
    for (uint32_t i = 0; i < resp.sibling_count; i++) {
        size_t len;
        const void *data = kvi_value_sibling(v, i, &len);
        kvi_buf_bytes(out, data, len);
    }
    kvi_frame_finish(out, start, KVI_OP_GET, KVI_FRAME_FLAG_RESPONSE, KV_OK, h->request_id);
}

static int write_options(kv_write_options *wo, const kvi_request *req)
{
    *wo = (kv_write_options)KV_WRITE_OPTIONS_INIT;
    wo->ttl_s = req->ttl_s;
    wo->consistency = (kv_consistency)req->consistency;
    wo->w = req->quorum;
    wo->context = req->context.data;
    wo->context_len = req->context.len;
    return KV_OK;
}

static kvi_metric_op metric_op(uint8_t opcode)
{
    switch (opcode) {
    case KVI_OP_GET: return KVI_MOP_GET;
    case KVI_OP_PUT: return KVI_MOP_PUT;
    case KVI_OP_DELETE: return KVI_MOP_DELETE;
    case KVI_OP_CAS: return KVI_MOP_CAS;
    case KVI_OP_BATCH: return KVI_MOP_BATCH;
    default: return KVI_MOP_OTHER;
    }
}

/* The level a data request asked for; NONE for the others. */
static kvi_metric_level metric_level(uint8_t opcode, const kvi_request *req)
{
    return metric_op(opcode) == KVI_MOP_OTHER ? KVI_LEVEL_NONE
                                              : kvi_metric_level_of(req->consistency);
}

void kvi_node_handle_request(void *ctx, const kvi_frame_header *h,
                             const unsigned char *body, kvi_buf *out)
{
    kvi_node *n = ctx;
    uint64_t started = kvi_metrics_now_ns();
    kvi_request req;
    kvi_response resp = {0};
    kv_write_options wo;
    int rc;
    if (kvi_request_decode_frame(&req, h, body) != 0) {
        rc = kvi_error(KV_EINVAL, "malformed request body for opcode %u (%u bytes)",
                       h->opcode, h->body_len);
        kvi_node_respond(out, h, rc, &resp);
        kvi_metrics_record(n->metrics, KVI_PROTO_BINARY, metric_op(h->opcode), KVI_LEVEL_NONE, rc,
                           kvi_metrics_now_ns() - started);
        return;
    }
    switch (h->opcode) {
    case KVI_OP_PING:
        rc = KV_OK;
        kvi_node_respond(out, h, rc, &resp);
        break;
    case KVI_OP_GET: {
        kv_read_options ro = KV_READ_OPTIONS_INIT;
        ro.consistency = (kv_consistency)req.consistency;
        ro.r = req.quorum;
        kv_value *v = NULL;
        rc = kvi_node_get(n, &v, req.key.data, req.key.len, &ro, h->flags, NULL);
        if (rc != KV_OK) {
            kvi_node_respond(out, h, rc, &resp);
            break;
        }
        kvi_node_respond_value(out, h, v);
        kvi_value_free(v);
        break;
    }
    case KVI_OP_PUT:
        write_options(&wo, &req);
        rc = kvi_node_put(n, &resp.version, req.key.data, req.key.len, req.value.data,
                          req.value.len, &wo, h->flags);
        kvi_node_respond(out, h, rc, &resp);
        break;
    case KVI_OP_DELETE:
        write_options(&wo, &req);
        rc = kvi_node_delete(n, &resp.version, req.key.data, req.key.len, &wo, h->flags);
        kvi_node_respond(out, h, rc, &resp);
        break;
    case KVI_OP_CAS:
        write_options(&wo, &req);
        rc = kvi_node_cas(n, &resp.version, req.key.data, req.key.len, req.expected_version,
                          req.value.data, req.value.len, &wo, h->flags);
        if (rc != KV_OK && rc != KV_ECONFLICT)
            resp.version = 0;
        kvi_node_respond(out, h, rc, &resp);
        break;
    case KVI_OP_BATCH:
        rc = kvi_node_run_batch(n, &req, h, out);
        break;
    case KVI_OP_GET_STATE:
    case KVI_OP_REPLICATE:
    case KVI_OP_READ_STATE:
    case KVI_OP_REPAIR:
        rc = kvi_node_replica_op(n, &req, h, out);
        break;
    case KVI_OP_HINT:
        rc = kvi_node_hint_op(n, &req, h, out);
        break;
    case KVI_OP_PAXOS_PREPARE:
    case KVI_OP_PAXOS_PROPOSE:
    case KVI_OP_PAXOS_COMMIT:
        rc = kvi_node_paxos_op(n, &req, h, out);
        break;
    case KVI_OP_GOSSIP: {
        kvi_buf table = {0};
        rc = kvi_membership_gossip(n->membership, req.value.data, req.value.len, &table);
        resp.value.data = table.data;
        resp.value.len = table.len;
        kvi_node_respond(out, h, rc, &resp);
        kvi_buf_free(&table);
        break;
    }
    case KVI_OP_TOPOLOGY: {
        kvi_buf answer = {0};
        rc = kvi_membership_topology(n->membership, req.value.data, req.value.len, &answer);
        resp.value.data = answer.data;
        resp.value.len = answer.len;
        kvi_node_respond(out, h, rc, &resp);
        kvi_buf_free(&answer);
        break;
    }
    case KVI_OP_TOPOLOGY_CHANGE: {
        kvi_buf answer = {0};
        rc = kvi_node_topology_change_op(n, req.value.data, req.value.len, &answer);
        resp.value.data = answer.data;
        resp.value.len = answer.len;
        kvi_node_respond(out, h, rc, &resp);
        kvi_buf_free(&answer);
        break;
    }
    case KVI_OP_BACKUP:
        rc = run_backup(n, &req, h, out);
        break;
    case KVI_OP_REPAIR_START:
        rc = start_repair(n, h, out);
        break;
    case KVI_OP_SCAN:
    case KVI_OP_SCAN_RANGE:
        rc = kvi_node_scan_op(n, &req, h, out);
        break;
    case KVI_OP_AE_DIGEST:
    case KVI_OP_AE_KEYS:
        rc = kvi_node_ae_op(n, &req, h, out);
        break;
    case KVI_OP_CLUSTER: {
        kvi_buf json = {0};
        kvi_node_describe(n, &json);
        rc = json.failed ? kvi_error(KV_ENOMEM, "out of memory describing the cluster") : KV_OK;
        resp.value.data = json.data;
        resp.value.len = json.len;
        kvi_node_respond(out, h, rc, &resp);
        kvi_buf_free(&json);
        break;
    }
    default:
        rc = kvi_error(KV_ENOTSUP, "unknown opcode %u", h->opcode);
        kvi_node_respond(out, h, rc, &resp);
        break;
    }
    kvi_metrics_record(n->metrics, KVI_PROTO_BINARY, metric_op(h->opcode), metric_level(h->opcode, &req), rc,
                       kvi_metrics_now_ns() - started);
}

/* Worker pools of a clustered node, for what still blocks: backups and
 * scans (they iterate the store, or wait on replicas) on the coordinating
 * pool; hints (a synced write) and a replica's part of a scan on the
 * replication pool. The pools are apart so that requests waiting on each
 * other can never exhaust one pool. Reads, writes, CAS, batches, incoming
 * replication and Paxos messages never reach a pool: they run on the I/O
 * loops (docs/design/EVENT_LOOP.md). */
#define POOL_COORDINATE 1
#define POOL_REPLICATE 2
#define COORDINATE_WORKERS 16u
#define REPLICATE_WORKERS 2u

static int offload_request(void *ctx, const kvi_frame_header *h)
{
    kvi_node *n = ctx;
    switch (h->opcode) {
    /* Coordinated by a state machine (node_async.c, node_batch.c), which
     * sends what still blocks to the pool. */
    case KVI_OP_GET:
    case KVI_OP_BATCH:
        return kvi_node_clustered(n) ? KVI_SERVER_ASYNC : 0;
    /* A node alone makes the writes of an iteration together
     * (node_writes.c); its reads are served inline, from its store. */
    case KVI_OP_PUT:
    case KVI_OP_DELETE:
    case KVI_OP_CAS:
        return kvi_node_clustered(n) ? KVI_SERVER_ASYNC : KVI_SERVER_LOOP_BATCH;
    /* Merged or applied on the I/O loop, all those of an iteration
     * together, and answered once the group commit has made them durable
     * where that is needed (node_replica.c). */
    case KVI_OP_REPLICATE:
    case KVI_OP_REPAIR:
    case KVI_OP_PAXOS_PREPARE:
    case KVI_OP_PAXOS_PROPOSE:
    case KVI_OP_PAXOS_COMMIT:
        return kvi_node_clustered(n) ? KVI_SERVER_LOOP_BATCH : 0;
    case KVI_OP_HINT:
    case KVI_OP_TOPOLOGY:   /* a promise or an accept is written synced */
    case KVI_OP_SCAN_RANGE: /* a replica's part of a scan: its own store only */
    case KVI_OP_AE_DIGEST:  /* up to 2^18 segments read, or a range of keys */
    case KVI_OP_AE_KEYS:
        return kvi_node_clustered(n) ? POOL_REPLICATE : 0;
    /* A checkpoint flushes the memtables and links files: not on an I/O
     * thread, whose other connections would wait meanwhile. */
    case KVI_OP_BACKUP:
    case KVI_OP_TOPOLOGY_CHANGE: /* waits for the change to be agreed on */
    case KVI_OP_SCAN: /* iterates the store; in a cluster, waits on the replicas */
        return POOL_COORDINATE;
    default:
        return 0;
    }
}

static void describe_cluster(void *ctx, kvi_buf *out)
{
    kvi_node_describe(ctx, out);
}

/* ------------------------------------------------------------- lifecycle */

/* Paxos records of keys whose last SERIAL commit is this old are removed
 * (their promises kept by the node's floor; cluster/paxos_acceptor.h): far
 * longer than any round lasts, so no round in flight can miss what they
 * held. */
#define PAXOS_KEEP_US (3600ull * 1000000u)
#define PAXOS_SWEEP_MS 60000u

static uint32_t sweep_paxos(void *ctx)
{
    kvi_node *n = ctx;
    size_t removed = 0;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
    if (kvi_paxos_sweep(n->store, now_us, PAXOS_KEEP_US, &removed) != KV_OK)
        kvi_log(n->log, KV_LOG_WARN, "sweeping Paxos records: %s", kvi_error_last());
    else if (removed)
        kvi_log(n->log, KV_LOG_INFO, "removed %zu settled Paxos records", removed);
    return PAXOS_SWEEP_MS;
}

#define REPORT_MS 60000u
#define DEFAULT_SLOW_REQUEST_MS 500u

void kvi_node_report(kvi_node *n)
{
    /* Read repairs are normal after a failure and a sign of one when they
     * keep coming: one line a minute with the count, never one a repair. */
    uint64_t repairs = atomic_load(&n->read_repairs);
    if (repairs > n->read_repairs_reported)
        kvi_log(n->log, KV_LOG_INFO, "read repair sent the merged state to %llu stale "
                "replica%s since the last report (kv_read_repairs_total)",
                (unsigned long long)(repairs - n->read_repairs_reported),
                repairs - n->read_repairs_reported == 1 ? "" : "s");
    n->read_repairs_reported = repairs;
    kvi_slow_window w;
    kvi_metrics_take_slow(n->metrics, &w);
    if (w.count)
        kvi_log(n->log, KV_LOG_WARN, "%llu request%s took %u ms or longer since the last "
                "report (the slowest: %s %s, %.0f ms; see kv_request_duration_seconds)",
                (unsigned long long)w.count, w.count == 1 ? "" : "s", n->slow_ms,
                w.slowest_proto, w.slowest_op, (double)w.slowest_ns / 1e6);
}

/* Once a minute, so that a burst of slow requests is one line, not one
 * line each. */
static uint32_t report_tick(void *ctx)
{
    kvi_node_report(ctx);
    return REPORT_MS;
}

static struct kvi_view *membership_view(void *ctx)
{
    return kvi_membership_view(ctx);
}

static int valid_node_id(const char *id)
{
    if (!id || !*id || strlen(id) > 64)
        return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.'))
            return 0;
    return 1;
}

/* Protected mode (Redis's precedent): with neither a cluster secret nor
 * client tokens, anyone who can reach the node can read, write and rewrite
 * its ring, so it listens on loopback only unless told it is insecure. */
static int check_exposure(const kv_node_options *o)
{
    if (o->insecure || o->cluster_secret_len || o->client_token_count)
        return KV_OK;
    const char *addrs[] = {o->listen_addr, o->http_addr};
    for (int i = 0; i < 2; i++) {
        kvi_addr a;
        if (!addrs[i] || kvi_addr_parse(&a, addrs[i]) != KV_OK)
            continue; /* a bad address fails later, with its own message */
        if (!kvi_addr_is_loopback(&a))
            return kvi_error(KV_EPERM,
                             "refusing to listen on %s with no authentication: anyone who "
                             "reaches it could read, write and rewrite the cluster. Give a "
                             "cluster secret (kvd --cluster-secret-file) and client tokens "
                             "(--client-token-file), listen on 127.0.0.1, or accept the risk "
                             "with --insecure (docs/SECURITY.md)", addrs[i]);
    }
    return KV_OK;
}

/* The node's credentials: its gate, and the secret its own connections to
 * peers prove. */
static int start_auth(kvi_node *n, const kv_node_options *o)
{
    /* As given: a length without its pointer is refused by kvi_auth_new,
     * not read as "no credentials" (check_exposure counted it as one). */
    kvi_credentials creds = {
        .secret = o->cluster_secret, .secret_len = o->cluster_secret_len,
        .tokens = o->client_tokens, .n_tokens = o->client_token_count,
        .peer_needs_cert = o->tls_cert_pem && o->tls_ca_pem,
    };
    int rc = kvi_auth_new(&n->auth, &creds);
    if (rc != KV_OK)
        return kvi_error(rc, "node options: %s", kvi_error_last());
    if (o->tls_cert_pem) {
        rc = kvi_tls_new(&n->tls_in, 1, o->tls_cert_pem, o->tls_key_pem, o->tls_ca_pem);
        if (rc == KV_OK)
            rc = kvi_tls_new(&n->tls_out, 0, o->tls_cert_pem, o->tls_key_pem, o->tls_ca_pem);
        if (rc != KV_OK)
            return kvi_error(rc, "node options: %s", kvi_error_last());
        n->peer_creds.tls = n->tls_out;
    }
    if (creds.secret_len) {
        n->secret = malloc(creds.secret_len);
        if (!n->secret)
            return kvi_error(KV_ENOMEM, "out of memory starting a node");
        memcpy(n->secret, creds.secret, creds.secret_len);
        n->peer_creds.secret = n->secret;
        n->peer_creds.secret_len = creds.secret_len;
    }
    return KV_OK;
}

/* ----------------------------------------------------------- the store */

/* Opens the node's embedded store as kv_open would: the store options'
 * settings, limits and logger. A node of a cluster keeps anti-entropy's
 * digest of its data (storage/digest.h, docs/design/ANTI_ENTROPY.md). */
static int open_store(kvi_node *n, const kv_node_options *o)
{
    kv_open_options defaults = KV_OPEN_OPTIONS_INIT;
    const kv_open_options *so = o->store ? o->store : &defaults;
    kvi_store_config cfg = {.path = o->data_dir};
    int rc = kvi_embedded_config(&cfg, so);
    if (rc != KV_OK)
        return rc;
    n->store_log = (kvi_logger){so->log_fn, so->log_ctx, so->log_level};
    cfg.log = &n->store_log;
    if (o->peer_count || o->seed_count) {
        cfg.digest_bits = o->ae_digest_bits ? o->ae_digest_bits : KVI_DIGEST_DEFAULT_BITS;
        cfg.digest_in_background = 1; /* node_digest.c builds it while the node serves */
    }
    n->limits = (kvi_limits){
        so->max_key_size ? so->max_key_size : KV_DEFAULT_MAX_KEY_SIZE,
        so->max_value_size ? so->max_value_size : KV_DEFAULT_MAX_VALUE_SIZE};
    return kvi_embedded_open(&n->store, &cfg);
}

/* The node options' own checks, before anything starts: KV_OK or
 * KV_EINVAL. */
static int check_options(const kv_node_options *o)
{
    if (o->policy != KV_POLICY_LWW && o->policy != KV_POLICY_SIBLINGS)
        return kvi_error(KV_EINVAL, "node options: policy must be LWW or SIBLINGS (a merge "
                                    "callback belongs on a client handle)");
    if (!o->data_dir || !*o->data_dir)
        return kvi_error(KV_EINVAL, "node options: data_dir is required");
    if (!valid_node_id(o->node_id))
        return kvi_error(KV_EINVAL, "node options: node_id must be 1-64 characters of "
                                    "letters, digits, '-', '_' or '.'");
    if (!o->listen_addr || !*o->listen_addr)
        return kvi_error(KV_EINVAL, "node options: listen_addr is required");
    if (o->ae_digest_bits &&
        (o->ae_digest_bits < KVI_DIGEST_MIN_BITS || o->ae_digest_bits > KVI_DIGEST_MAX_BITS))
        return kvi_error(KV_EINVAL, "node options: ae_digest_bits must be %u..%u (or 0: %u)",
                         KVI_DIGEST_MIN_BITS, KVI_DIGEST_MAX_BITS, KVI_DIGEST_DEFAULT_BITS);
    if (o->ae_interval_s > 7u * 86400u && o->ae_interval_s != KV_AE_INTERVAL_NEVER)
        return kvi_error(KV_EINVAL, "node options: ae_interval_s must be at most 604800 (a "
                                    "week), or KV_AE_INTERVAL_NEVER");
    if (o->slow_request_ms > 3600000u)
        return kvi_error(KV_EINVAL, "node options: slow_request_ms must be at most 3600000 "
                                    "(an hour)");
    if (o->replace && !(o->peers && o->peer_count) && !(o->seeds && o->seed_count))
        return kvi_error(KV_EINVAL, "node options: a node that replaces a member needs the "
                                    "cluster's seeds or peers to fetch its topology from");
    if (o->metadata && !(o->peers && o->peer_count) && !(o->seeds && o->seed_count))
        return kvi_error(KV_EINVAL, "node options: metadata keeps a cluster's topology; a node "
                                    "alone has none (give peers or seeds)");
    if (o->http_threads == 1)
        return kvi_error(KV_EINVAL, "node options: http_threads must be at least 2");
    if (o->max_request_bytes > KVI_FRAME_MAX_BODY_LIMIT)
        return kvi_error(KV_EINVAL, "node options: max_request_bytes is over %u",
                         KVI_FRAME_MAX_BODY_LIMIT);
    if (o->client_token_count && o->client_tokens && !o->cluster_secret_len &&
        ((o->peers && o->peer_count) || (o->seeds && o->seed_count)))
        return kvi_error(KV_EINVAL, "node options: a clustered node with client tokens needs a "
                                    "cluster secret too, or its peers could not prove who "
                                    "they are (kvd --cluster-secret-file)");
    if (!o->tls_cert_pem != !o->tls_key_pem)
        return kvi_error(KV_EINVAL, "node options: tls_cert_pem and tls_key_pem go together");
    if (o->tls_ca_pem && !o->tls_cert_pem)
        return kvi_error(KV_EINVAL, "node options: tls_ca_pem needs tls_cert_pem and "
                                    "tls_key_pem");
    if (o->tls_cert_pem && !o->tls_ca_pem &&
        ((o->peers && o->peer_count) || (o->seeds && o->seed_count)))
        return kvi_error(KV_EINVAL, "node options: a clustered node on TLS needs the CA that "
                                    "signed its members' certificates (kvd --tls-ca)");
    return check_exposure(o);
}

/* Membership (gossip, the ring), the hints and their handoff, and the
 * Paxos sweeper: what a node runs for its cluster. */
/* The anti-entropy schedule's view of the node (kvi_anti_entropy_config). */
static int ae_env(void *ctx, kvi_coord_env *out)
{
    return kvi_node_coord_env(ctx, out);
}

/* A new last full repair: gossiped, so that every member can tell when all
 * the replicas of a range have been repaired (purges wait on it). */
static void ae_full_repair(void *ctx, uint64_t repaired_ms)
{
    kvi_node *n = ctx;
    kvi_membership_set_repaired(n->membership, repaired_ms);
}

#define DEFAULT_AE_INTERVAL_S 60u
#define DEFAULT_REPAIR_BYTES_PER_S (16u << 20)

static int start_anti_entropy(kvi_node *n, const kv_node_options *o, const kvi_logger *log)
{
    uint32_t interval_s = o->ae_interval_s ? o->ae_interval_s : DEFAULT_AE_INTERVAL_S;
    kvi_anti_entropy_config ac = {
        .env = ae_env, .env_ctx = n, .loop = kvi_membership_loop(n->membership),
        .interval_ms = interval_s == KV_AE_INTERVAL_NEVER ? 0 : interval_s * 1000u,
        .rate_bytes = o->repair_bytes_per_s ? o->repair_bytes_per_s
                                            : DEFAULT_REPAIR_BYTES_PER_S,
        .self_id = n->node_id, .on_full_repair = ae_full_repair, .log = log,
    };
    return kvi_anti_entropy_start(&n->ae, &ac);
}

/* The hints this node holds (kvi_membership_config.hints_pending). */
static uint64_t hints_pending(void *ctx)
{
    kvi_node *n = ctx;
    uint64_t pending = 0, oldest = 0;
    if (kvi_hints_stats(&n->hints, &pending, &oldest) != KV_OK)
        return 1; /* unknown: as if one were left */
    return pending;
}

static int start_cluster(kvi_node *n, const kv_node_options *o, const kvi_logger *log)
{
    n->peer_latency = kvi_latency_set_new();
    if (!n->peer_latency)
        return kvi_error(KV_ENOMEM, "out of memory starting the cluster");
    kvi_membership_config mc = {
        .peer_latency = n->peer_latency,
        .self_id = n->node_id, .self_addr = n->listen_addr, .self_http = n->http_addr,
        .peers = o->peers, .n_peers = o->peers ? o->peer_count : 0,
        .seeds = o->seeds, .n_seeds = o->seeds ? o->seed_count : 0,
        .replicas = o->replicas, .vnodes = o->vnodes,
        .request_timeout_ms = o->internode_timeout_ms,
        .failure_pause_ms = o->failure_pause_ms,
        .store = kvi_embedded_store(n->store), .creds = &n->peer_creds,
        .log = log, .stream_gains = kvi_node_stream_gains, .stream_ctx = n,
        .replace = o->replace, .hints_pending = hints_pending, .metadata = o->metadata,
    };
    n->stream_bytes_per_s = o->stream_bytes_per_s;
    /* Hint keys carry a sequence; starting it from the clock keeps keys of
     * this run apart from an earlier run's. Before membership: its duties
     * count them (a leave waits for them to be handed off). */
    kvi_hints_init(&n->hints, kvi_embedded_store(n->store), kvi_now_ms() << 20);
    int rc = kvi_membership_start(&n->membership, &mc);
    if (rc == KV_OK)
        rc = kvi_write_stage_new(&n->stage, kvi_membership_loop(n->membership), n->store);
    if (rc != KV_OK)
        return rc;
    kvi_handoff_config hc = {
        .hints = &n->hints, .view = membership_view, .is_down = member_down,
        .ctx = n->membership, .window_s = o->hint_window_s,
        .kib_per_s = o->handoff_kib_per_s, .log = log,
    };
    rc = kvi_handoff_start(&n->handoff, &hc);
    kvi_metrics_set_extra(n->metrics, kvi_node_render_metrics, n);
    if (rc == KV_OK && kvi_ticker_start(&n->paxos_sweeper, sweep_paxos, n) != 0)
        rc = kvi_error(KV_ENOMEM, "cannot start the Paxos sweeper thread");
    /* Only a node of a cluster keeps a digest to compare (open_store). */
    if (rc == KV_OK && kvi_store_digest(kvi_embedded_store(n->store)))
        rc = start_anti_entropy(n, o, log);
    if (rc == KV_OK && n->ae) {
        uint64_t grace_s = o->store ? o->store->tombstone_grace_s : 0;
        n->purge_window_ms = 1000u * (uint64_t)(o->hint_window_s ? o->hint_window_s
                                                                 : KVI_DEFAULT_HINT_WINDOW_S);
        n->purge_margin_ms = grace_s == KV_GRACE_NONE ? 0
                             : 1000u * (grace_s ? grace_s : KVI_DEFAULT_TOMBSTONE_GRACE_S);
        if (kvi_ticker_start(&n->purger, kvi_node_purge_tick, n) != 0)
            rc = kvi_error(KV_ENOMEM, "cannot start the tombstone purger thread");
        for (unsigned i = 0; i < KVI_KEYLOCK_STRIPES; i++)
            n->digest_stripes[i] = i;
        if (rc == KV_OK && kvi_ticker_start(&n->digest_keeper, kvi_node_digest_tick, n) != 0)
            rc = kvi_error(KV_ENOMEM, "cannot start the digest keeper thread");
    }
    return rc;
}

/* The KVI_SERVER_LOOP_BATCH requests of an iteration: a node alone's
 * writes, or a cluster's replication (node_replica.c). Both kinds at once
 * only if the node joined a cluster in between. */
static void loop_batch(void *ctx, kvi_server_pending **ps, kvi_server_request *reqs, size_t n)
{
    kvi_node *node = ctx;
    while (n > KVI_SERVER_MAX_LOOP_BATCH) { /* the server never hands more */
        loop_batch(ctx, ps, reqs, KVI_SERVER_MAX_LOOP_BATCH);
        ps += KVI_SERVER_MAX_LOOP_BATCH;
        reqs += KVI_SERVER_MAX_LOOP_BATCH;
        n -= KVI_SERVER_MAX_LOOP_BATCH;
    }
    kvi_server_pending *lp[KVI_SERVER_MAX_LOOP_BATCH], *rp[KVI_SERVER_MAX_LOOP_BATCH];
    kvi_server_request lr[KVI_SERVER_MAX_LOOP_BATCH], rr[KVI_SERVER_MAX_LOOP_BATCH];
    size_t nl = 0, nr = 0;
    for (size_t i = 0; i < n; i++) {
        /* Taken by the opcode the server saw; the requests' order within
         * each kind is kept. */
        if (reqs[i].h->opcode == KVI_OP_PUT || reqs[i].h->opcode == KVI_OP_DELETE ||
            reqs[i].h->opcode == KVI_OP_CAS) {
            lp[nl] = ps[i];
            lr[nl++] = reqs[i];
        } else {
            rp[nr] = ps[i];
            rr[nr++] = reqs[i];
        }
    }
    if (nl)
        kvi_node_local_writes(node, lp, lr, nl);
    if (nr)
        kvi_node_replication_loop_batch(node, rp, rr, nr);
}

/* The binary protocol's server. */
static int start_binary(kvi_node *n, const kv_node_options *o, const kvi_logger *log,
                        int listen_fd)
{
    kvi_server_config sc = {
        .listen_addr = o->listen_addr,
        .io_threads = o->io_threads ? o->io_threads : 2,
        .max_body = o->max_request_bytes ? o->max_request_bytes : DEFAULT_MAX_REQUEST,
        .idle_timeout_ms = o->idle_timeout_ms ? o->idle_timeout_ms : DEFAULT_IDLE_TIMEOUT_MS,
        .max_connections = o->max_connections ? o->max_connections : DEFAULT_MAX_CONNECTIONS,
        .max_buffered_bytes = (size_t)o->max_buffered_bytes,
        .handler = kvi_node_handle_request,
        .handler_ctx = n,
        .offload = offload_request,
        .workers = {COORDINATE_WORKERS, REPLICATE_WORKERS},
        .async_start = kvi_node_async_start,
        .loop_batch = loop_batch,
        .gate = kvi_auth_gate,
        .gate_ctx = n->auth,
        .tls = n->tls_in,
        .log = log,
        /* The first I/O thread runs where the coordinator's state machines
         * run: their answers then reach its connections directly. */
        .loop = kvi_membership_loop(n->membership),
        .has_listen_fd = 1,
        .listen_fd = listen_fd,
    };
    return kvi_server_start(&n->binary, &sc);
}

/* The binary protocol's socket, bound and listening before the HTTP server
 * starts (which names its port in /v1/cluster) and served after: a client
 * that has an answer from either port finds the other accepting. */
static int bind_binary(kvi_node *n, const kv_node_options *o, int *fd)
{
    kvi_addr addr;
    int rc = kvi_addr_parse(&addr, o->listen_addr);
    if (rc != KV_OK)
        return rc;
    *fd = kvi_listen(&addr, 1024);
    if (*fd < 0)
        return *fd;
    n->binary_port = kvi_local_port(*fd);
    return KV_OK;
}

/* The HTTP/JSON API's server, over http_ops. */
static int start_http(kvi_node *n, const kv_node_options *o, const kvi_logger *log)
{
    kvi_http_config hc = {
        .listen_addr = n->http_addr,
        /* A get, put, delete or CAS waits on other nodes with no thread
         * (node_http.c), so two do in a cluster too: more measured no
         * better on 2 cores (docs/BENCHMARKS.md). A batch, a scan or a
         * backup still holds its thread while it waits. */
        .threads = o->http_threads ? o->http_threads : 2,
        .ops = &kvi_node_http_ops,
        .ops_ctx = n,
        .policies = 1,
        .node_id = n->node_id,
        .binary_addr = n->listen_addr,
        .binary_port = n->binary_port,
        .max_key_size = n->limits.max_key_size,
        .max_value_size = n->limits.max_value_size,
        .metrics = n->metrics,
        .log = log,
        .describe = describe_cluster,
        .describe_ctx = n,
        .hotkeys = kvi_node_render_hotkeys,
        .predict = kvi_node_predict,
        .status_async = kvi_node_status_async,
        .tokens = o->client_tokens,
        .n_tokens = o->client_token_count,
        .tls_cert_pem = o->tls_cert_pem,
        .tls_key_pem = o->tls_key_pem,
    };
    int rc = kvi_http_start(&n->http, &hc);
    if (rc == KV_OK)
        n->http_port = kvi_http_port(n->http);
    return rc;
}

int kvi_node_start(kvi_node **out, const kv_node_options *given, const kvi_logger *log)
{
    *out = NULL;
    kv_node_options opts;
    if (!given || kvi_node_options_upgrade(&opts, given) != KV_OK)
        return kvi_error(KV_EINVAL, "node options: missing or unknown version");
    const kv_node_options *o = &opts;
    int rc = check_options(o);
    if (rc != KV_OK)
        return rc;

    kvi_node *n = calloc(1, sizeof *n);
    if (!n)
        return kvi_error(KV_ENOMEM, "out of memory starting a node");
    n->log = log;
    pthread_mutex_init(&n->stream_lock, NULL);
    kvi_coord_tracker_init(&n->coord_ops);
    n->siblings = o->policy == KV_POLICY_SIBLINGS;
    n->node_id = strdup(o->node_id);
    n->listen_addr = strdup(o->listen_addr);
    n->http_addr = o->http_addr ? strdup(o->http_addr) : NULL;
    n->metrics = kvi_metrics_new();
    n->hotkeys = kvi_hotkeys_new(0);
    n->slow_ms = o->slow_request_ms ? o->slow_request_ms : DEFAULT_SLOW_REQUEST_MS;
    if (n->metrics)
        kvi_metrics_set_slow(n->metrics, (uint64_t)n->slow_ms * 1000000u);
    kvi_slow_log_init(&n->slow_log, n->slow_ms, n->log);
    rc = KV_OK;
    if (!n->node_id || !n->listen_addr || (o->http_addr && !n->http_addr) || !n->metrics ||
        !n->hotkeys)
        rc = kvi_error(KV_ENOMEM, "out of memory starting a node");
    if (rc == KV_OK)
        rc = start_auth(n, o);
    if (rc == KV_OK)
        rc = open_store(n, o);
    if (rc == KV_OK)
        rc = start_cluster(n, o, log);
    int binary_fd = -1;
    if (rc == KV_OK)
        rc = bind_binary(n, o, &binary_fd);
    if (rc == KV_OK && n->http_addr)
        rc = start_http(n, o, log);
    if (rc != KV_OK && binary_fd >= 0)
        close(binary_fd);
    else if (rc == KV_OK)
        rc = start_binary(n, o, log, binary_fd); /* takes binary_fd */
    if (rc == KV_OK && kvi_ticker_start(&n->reporter, report_tick, n) != 0)
        rc = kvi_error(KV_ENOMEM, "cannot start the node's reporting thread");
    if (rc != KV_OK) {
        char saved[512];
        snprintf(saved, sizeof saved, "%s", kvi_error_last());
        kvi_node_stop(n);
        return kvi_error(rc, "%s", saved);
    }
    kvi_log(log, KV_LOG_INFO, "node %s started: binary port %d, http port %d",
            n->node_id, n->binary_port, n->http_port);
    *out = n;
    return KV_OK;
}

void kvi_node_stop(kvi_node *n)
{
    if (!n)
        return;
    /* Servers first, so no request runs against a closed store. */
    kvi_node_status_stop(n); /* a status waiting on members holds no stop */
    kvi_http_stop(n->http);
    kvi_server_stop(n->binary);
    kvi_handoff_stop(n->handoff);
    kvi_anti_entropy_stop(n->ae); /* its exchange ends with the requests below */
    kvi_ticker_stop(&n->purger);
    kvi_ticker_stop(&n->digest_keeper);
    free(n->digest_scratch);
    kvi_ticker_stop(&n->paxos_sweeper);
    kvi_ticker_stop(&n->reporter);
    /* Requests that have answered may still wait for replicas' answers
     * (at most the internode timeout); they use the views and the store. */
    kvi_coord_tracker_drain(&n->coord_ops);
    /* Before the store closes: dropping the views ends calls still in
     * flight, which may keep hints. */
    kvi_membership_stop(n->membership);
    kvi_anti_entropy_free(n->ae); /* its loop is gone: no timer of it runs again */
    kvi_write_stage_free(n->stage); /* its loop is gone: nothing staged is left */
    kvi_embedded_close(n->store);
    kvi_metrics_free(n->metrics);
    kvi_hotkeys_free(n->hotkeys);
    kvi_latency_set_free(n->peer_latency); /* the views' connections are closed */
    kvi_auth_free(n->auth);
    kvi_tls_free(n->tls_in);
    kvi_tls_free(n->tls_out);
    kvi_wipe(n->secret, n->peer_creds.secret_len);
    free(n->secret);
    free(n->node_id);
    free(n->listen_addr);
    free(n->http_addr);
    pthread_mutex_destroy(&n->stream_lock);
    free(n);
}

kvi_embedded *kvi_node_store(const kvi_node *n)
{
    return n->store;
}

void kvi_node_ports(const kvi_node *n, int *binary_port, int *http_port)
{
    if (binary_port)
        *binary_port = n->binary_port;
    if (http_port)
        *http_port = n->http_port;
}
