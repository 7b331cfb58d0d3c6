/* node/node_async.c - the reads, writes and CAS a clustered node
 * coordinates as state machines (cluster/coord_op.h, cluster/serial.c):
 * the I/O thread that read the request starts it, the peers' loop moves it
 * on as the replicas answer, and the answer goes back to the connection
 * through kvi_server_answer. No thread waits on a replica, at SERIAL
 * included. Batches start the same way, from node_batch.c.
 *
 * The HTTP API's get, put, delete and CAS start here too (node_http.c):
 * the same request, only its answer goes to the HTTP server's completion,
 * which resumes the suspended connection, instead of into a frame.
 *
 * Backups and scans still run on the coordinating pool.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/coordinator.h"
#include "cluster/serial.h"
#include "node/node_internal.h"
#include "format/value.h"
#include "util/error.h"

/* The pool that runs what still blocks (node.c's POOL_COORDINATE). */
#define POOL_BLOCKING 1

/* One request between its start and its answer. h has its opcode and
 * flags (and, from the binary server, the rest of its header). The answer
 * goes to the binary server's connection (p, out), or, when done is set, to
 * an HTTP request's completion. */
typedef struct pending {
    kvi_node *n;
    kvi_server_pending *p;
    kvi_frame_header h;
    kvi_buf *out;
    uint64_t started_ns;
    kvi_metric_level level;
    kvi_http_done_fn done;
    void *done_ctx;
} pending;

/* Gives an HTTP request its result (public codes only, as the blocking
 * operations give). The HTTP server records the request's metrics. */
static void http_answer(pending *q, int rc, const char *why, uint64_t version,
                        kv_value *value)
{
    kvi_http_result r = {.rc = rc, .version = version, .value = value};
    if (rc != KV_OK) {
        kvi_error(rc, "%s", why ? why : "");
        r.rc = kvi_public_status(rc);
        r.message = kvi_error_last();
    }
    q->done(q->done_ctx, &r);
    kvi_value_free(r.value); /* not taken */
    free(q);
}

static kvi_metric_op metric_of(uint8_t opcode)
{
    return opcode == KVI_OP_GET ? KVI_MOP_GET
         : opcode == KVI_OP_PUT ? KVI_MOP_PUT
         : opcode == KVI_OP_CAS ? KVI_MOP_CAS : KVI_MOP_DELETE;
}

/* Answers with rc (and why) now, on whatever thread. */
static void answer(pending *q, int rc, const char *why, uint64_t version)
{
    if (q->done) {
        http_answer(q, rc, why, version, NULL);
        return;
    }
    kvi_response resp = {.version = version};
    if (rc != KV_OK)
        kvi_error(rc, "%s", why ? why : "");
    kvi_node_respond(q->out, &q->h, rc, &resp);
    kvi_metrics_record(q->n->metrics, KVI_PROTO_BINARY, metric_of(q->h.opcode), q->level, rc,
                       kvi_metrics_now_ns() - q->started_ns);
    kvi_server_answer(q->p);
    free(q);
}

static void read_done(void *ctx, kvi_coord_result *r)
{
    pending *q = ctx;
    if (r->rc != KV_OK) {
        answer(q, r->rc, r->why, 0);
        return;
    }
    if (q->done) {
        kv_value *v = r->value;
        r->value = NULL;
        http_answer(q, KV_OK, NULL, 0, v);
        return;
    }
    kvi_node_respond_value(q->out, &q->h, r->value);
    kvi_metrics_record(q->n->metrics, KVI_PROTO_BINARY, KVI_MOP_GET, q->level, KV_OK,
                       kvi_metrics_now_ns() - q->started_ns);
    kvi_server_answer(q->p);
    free(q);
}

static void write_done(void *ctx, kvi_coord_result *r)
{
    pending *q = ctx;
    /* A conflict carries the current version; other failures none. */
    answer(q, r->rc, r->why, r->rc == KV_OK || r->rc == KV_ECONFLICT ? r->version : 0);
}

static int start_read(kvi_node *n, pending *q, const kvi_request *req,
                      const kvi_coord_env *env)
{
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = (kv_consistency)req->consistency;
    ro.r = req->quorum;
    int rc = kvi_check_read(&n->limits, req->key.data, req->key.len, &ro);
    if (rc != KV_OK)
        return rc;
    if (ro.consistency == KV_CONSISTENCY_SERIAL) {
        kvi_serial_request sq = {.op = KVI_SERIAL_GET, .key = req->key.data,
                                 .key_len = req->key.len,
                                 .all_siblings = (q->h.flags & KVI_FRAME_FLAG_SIBLINGS) != 0};
        return kvi_serial_start(env, &sq, read_done, q);
    }
    return kvi_coord_read_start(env, req->key.data, req->key.len, ro.consistency, ro.r,
                                (q->h.flags & KVI_FRAME_FLAG_SIBLINGS) != 0, 0, read_done, q);
}

static int start_write(kvi_node *n, pending *q, const kvi_request *req,
                       const kvi_coord_env *env)
{
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.ttl_s = req->ttl_s;
    wo.consistency = (kv_consistency)req->consistency;
    wo.w = req->quorum;
    wo.context = req->context.data;
    wo.context_len = req->context.len;
    uint8_t op = q->h.opcode;
    int has_value = op != KVI_OP_DELETE;
    int rc = kvi_check_write(&n->limits, op == KVI_OP_PUT ? KVI_CHECK_PUT
                                       : op == KVI_OP_CAS ? KVI_CHECK_CAS : KVI_CHECK_DELETE,
                             req->key.data, req->key.len, req->value.data, req->value.len, &wo);
    if (rc != KV_OK)
        return rc;
    unsigned flags = q->h.flags;
    kvi_coord_write w = {
        .kind = op == KVI_OP_PUT ? KVI_WRITE_PUT
              : op == KVI_OP_CAS ? KVI_WRITE_CAS : KVI_WRITE_DELETE,
        .key = req->key.data, .key_len = req->key.len,
        .value = has_value ? req->value.data : NULL, .value_len = has_value ? req->value.len : 0,
        .expected_version = req->expected_version,
        .ttl_s = wo.ttl_s, .context = wo.context, .context_len = wo.context ? wo.context_len : 0,
        .consistency = wo.consistency, .w = wo.w,
        .siblings = (flags & KVI_FRAME_FLAG_SIBLINGS) != 0,
        .forwarded = (flags & KVI_FRAME_FLAG_FORWARDED) != 0,
        .home_only = (flags & KVI_FRAME_FLAG_HOME_ONLY) != 0,
    };
    int serial = kvi_coord_write_needs_serial(env, &w);
    if (serial < 0)
        return serial;
    if (serial) {
        kvi_serial_request sq = kvi_coord_serial_request(&w);
        return kvi_serial_start(env, &sq, write_done, q);
    }
    return kvi_coord_write_start(env, &w, write_done, q);
}

/* Starts q's request; one that cannot start is answered at once. */
static void start(pending *q, const kvi_request *req)
{
    kvi_node_count_key(q->n, q->h.opcode == KVI_OP_GET ? KVI_HOTKEY_READ : KVI_HOTKEY_WRITE,
                       req->key.data, req->key.len);
    kvi_coord_env env;
    int rc = kvi_node_coord_env(q->n, &env);
    if (rc == KV_OK) {
        rc = q->h.opcode == KVI_OP_GET ? start_read(q->n, q, req, &env)
                                       : start_write(q->n, q, req, &env);
        kvi_view_unref(env.view);
    }
    if (rc != KV_OK) {
        char why[300];
        snprintf(why, sizeof why, "%s", kvi_error_last());
        answer(q, rc, why, 0);
    }
}

int kvi_node_async_start(void *ctx, kvi_server_pending *p, const kvi_frame_header *h,
                         const unsigned char *body, kvi_buf *out)
{
    kvi_node *n = ctx;
    if (h->opcode == KVI_OP_BATCH)
        return kvi_node_batch_start(n, p, h, body, out) == KV_OK ? 0 : POOL_BLOCKING;
    kvi_request req;
    if (kvi_request_decode_frame(&req, h, body) != 0)
        return POOL_BLOCKING; /* the usual handler says what is wrong */
    pending *q = malloc(sizeof *q);
    if (!q)
        return POOL_BLOCKING;
    *q = (pending){.n = n, .p = p, .h = *h, .out = out, .started_ns = kvi_metrics_now_ns(),
                   .level = kvi_metric_level_of(req.consistency)};
    start(q, &req);
    return 0;
}

void kvi_node_async_http(kvi_node *n, uint8_t opcode, unsigned flags, const kvi_request *req,
                         kvi_http_done_fn done, void *done_ctx)
{
    pending *q = malloc(sizeof *q);
    if (!q) {
        kvi_http_result r = {.rc = KV_ENOMEM, .message = "out of memory starting a request"};
        done(done_ctx, &r);
        return;
    }
    *q = (pending){.n = n, .h = {.opcode = opcode, .flags = (uint16_t)flags},
                   .done = done, .done_ctx = done_ctx};
    start(q, req);
}
