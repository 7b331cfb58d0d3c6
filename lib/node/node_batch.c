/* node/node_batch.c - the binary protocol's BATCH: decoding the request
 * into a kv_batch, running it, and the response frame with one outcome per
 * operation.
 *
 * A clustered node starts the batch from the I/O thread that read it, as a
 * state machine on the peers' loop (kvi_coord_batch_start), and answers
 * through kvi_server_answer once every operation has its result: no thread
 * waits on a replica. A node alone runs it inline, atomic, in its embedded
 * store (kvi_node_run_batch, through the usual request handler).
 *
 * The HTTP API's batches start the same way (kvi_node_batch_http); only
 * the answer goes to the HTTP server's completion, which resumes the
 * suspended connection, instead of into a frame.
 */
#include <stdlib.h>

#include "cluster/coordinator.h"
#include "format/batch.h"
#include "format/value.h"
#include "node/node_internal.h"
#include "util/error.h"

/* The batch of a decoded BATCH request; KV_OK or the failure (KV_ENOMEM,
 * or a bad operation, named). */
static int decode_batch(kv_batch **out, kvi_request *req)
{
    kv_batch *b = NULL;
    int rc = kvi_batch_new(&b);
    for (uint32_t i = 0; rc == KV_OK && i < req->batch_count; i++) {
        kvi_batch_item it;
        kvi_request_next_item(req, &it);
        if (it.kind == KV_BATCH_PUT)
            rc = kvi_batch_put(b, it.key.data, it.key.len, it.value.data, it.value.len, it.ttl_s);
        else if (it.kind == KV_BATCH_GET)
            rc = kvi_batch_get(b, it.key.data, it.key.len);
        else
            rc = kvi_batch_delete(b, it.key.data, it.key.len);
        if (rc != KV_OK)
            rc = kvi_error(rc, "batch operation %u: %s", i, kvi_error_last());
    }
    *out = b;
    return rc;
}

/* The request's levels: one for every write, one for every read. */
static void batch_options(kv_write_options *wo, kv_read_options *ro, const kvi_request *req)
{
    *wo = (kv_write_options)KV_WRITE_OPTIONS_INIT;
    wo->ttl_s = req->ttl_s;
    wo->consistency = (kv_consistency)req->consistency;
    wo->w = req->quorum;
    wo->context = req->context.data;
    wo->context_len = req->context.len;
    *ro = (kv_read_options)KV_READ_OPTIONS_INIT;
    ro->consistency = wo->consistency;
    ro->r = req->quorum;
}

/* Appends the answer of an executed batch: each operation's outcome. */
static void respond_results(kvi_buf *out, const kvi_frame_header *h, const kv_batch *b)
{
    /* A request with the siblings flag gets every sibling of each value and
     * its context, as a single GET does; the answer's flag says so. */
    int siblings = (h->flags & KVI_FRAME_FLAG_SIBLINGS) != 0;
    uint32_t count = (uint32_t)kvi_batch_count(b);
    size_t start = out->len;
    kvi_frame_begin(out);
    kvi_response resp = {.opcode = KVI_OP_BATCH, .batch_count = count};
    kvi_response_encode(out, &resp);
    for (uint32_t i = 0; i < count; i++) {
        const kv_value *v = NULL;
        kvi_batch_outcome o = {0};
        o.status = (int16_t)kvi_batch_result(&v, &o.version, b, i);
        if (v) {
            o.value.data = kvi_value_data(v, &o.value.len);
            o.expiry_ms = kvi_value_expiry_ms(v);
        }
        if (!siblings) {
            kvi_batch_outcome_encode(out, &o);
            continue;
        }
        kvi_bytes values[KVI_MAX_WIRE_SIBLINGS];
        uint32_t n_values = 0;
        if (v) {
            o.context.data = kvi_value_context(v, &o.context.len);
            size_t n_sib = kvi_value_sibling_count(v);
            for (; n_values < n_sib && n_values < KVI_MAX_WIRE_SIBLINGS; n_values++)
                values[n_values].data = (const unsigned char *)kvi_value_sibling(
                    v, n_values, &values[n_values].len);
        }
        kvi_batch_outcome_encode_siblings(out, &o, values, n_values);
    }
    kvi_frame_finish(out, start, KVI_OP_BATCH,
                     (uint16_t)(KVI_FRAME_FLAG_RESPONSE | (siblings ? KVI_FRAME_FLAG_SIBLINGS : 0)),
                     KV_OK, h->request_id);
}

int kvi_node_run_batch(kvi_node *n, kvi_request *req, const kvi_frame_header *h, kvi_buf *out)
{
    kv_batch *b = NULL;
    int rc = decode_batch(&b, req);
    kv_write_options wo;
    kv_read_options ro;
    batch_options(&wo, &ro, req);
    if (rc == KV_OK)
        rc = kvi_node_batch(n, b, &wo, &ro, h->flags);
    if (rc != KV_OK) {
        kvi_response none = {0};
        kvi_node_respond(out, h, rc, &none);
    } else {
        respond_results(out, h, b);
    }
    kvi_batch_free(b);
    return rc;
}

/* ------------------------------------------------------- on the loop */

/* A batch between its start and its answer. The answer goes to the binary
 * server's connection (p, out, h), or, when done is set, to an HTTP
 * request's completion; b is then the HTTP server's. */
typedef struct batch_pending {
    kvi_node *n;
    kvi_server_pending *p;
    kvi_frame_header h;
    kvi_buf *out;
    kv_batch *b;
    uint64_t started_ns;
    kvi_metric_level level;
    kvi_http_done_fn done;
    void *done_ctx;
} batch_pending;

/* Gives an HTTP batch its result as the blocking http_batch would (public
 * codes, each operation's included) and frees q, not the batch. The HTTP
 * server records the request's metrics. */
static void http_answer(batch_pending *q, int rc)
{
    kvi_batch_public_results(q->b);
    kvi_http_result r = {.rc = kvi_public_status(rc)};
    if (rc != KV_OK)
        r.message = kvi_error_last();
    q->done(q->done_ctx, &r);
    free(q);
}

/* Answers the batch (rc: KV_OK, or a failure of the whole batch whose
 * detail is this thread's kvi_error_last()) and frees it. */
static void answer(batch_pending *q, int rc)
{
    if (q->done) {
        http_answer(q, rc);
        return;
    }
    if (rc == KV_OK) {
        respond_results(q->out, &q->h, q->b);
    } else {
        kvi_response none = {0};
        kvi_node_respond(q->out, &q->h, rc, &none);
    }
    /* Once per batch, as for a batch run by the handler. */
    kvi_metrics_record(q->n->metrics, KVI_PROTO_BINARY, KVI_MOP_BATCH, q->level, rc,
                       kvi_metrics_now_ns() - q->started_ns);
    kvi_batch_free(q->b);
    kvi_server_answer(q->p);
    free(q);
}

static void batch_done(void *ctx, kvi_coord_result *r)
{
    if (r->rc != KV_OK)
        kvi_error(r->rc, "%s", r->why ? r->why : "");
    answer(ctx, r->rc);
}

/* Checks q's batch whole before any operation starts, as kvi_node_batch
 * does, and starts it on the peers' loop; KV_OK, or the failure (then
 * batch_done never runs). */
static int launch(batch_pending *q, const kv_write_options *wo, const kv_read_options *ro,
                  int siblings)
{
    int rc = kvi_batch_prepare(&q->n->limits, q->b, wo, ro);
    kvi_coord_env env;
    if (rc == KV_OK && (rc = kvi_node_coord_env(q->n, &env)) == KV_OK) {
        rc = kvi_coord_batch_start(&env, q->b, wo, ro, siblings, batch_done, q);
        kvi_view_unref(env.view);
    }
    return rc;
}

int kvi_node_batch_start(kvi_node *n, kvi_server_pending *p, const kvi_frame_header *h,
                         const unsigned char *body, kvi_buf *out)
{
    kvi_request req;
    if (kvi_request_decode_frame(&req, h, body) != 0)
        return KV_EINVAL; /* not taken: the usual handler says what is wrong */
    batch_pending *q = malloc(sizeof *q);
    if (!q)
        return KV_ENOMEM;
    *q = (batch_pending){.n = n, .p = p, .h = *h, .out = out,
                         .started_ns = kvi_metrics_now_ns(),
                         .level = kvi_metric_level_of(req.consistency)};
    kv_write_options wo;
    kv_read_options ro;
    batch_options(&wo, &ro, &req);
    int rc = decode_batch(&q->b, &req);
    if (rc == KV_OK)
        rc = launch(q, &wo, &ro, (h->flags & KVI_FRAME_FLAG_SIBLINGS) != 0);
    if (rc != KV_OK)
        answer(q, rc);
    return KV_OK;
}

void kvi_node_batch_http(kvi_node *n, kv_batch *b, const kv_write_options *wo,
                         const kv_read_options *ro, unsigned flags, kvi_http_done_fn done,
                         void *done_ctx)
{
    batch_pending *q = malloc(sizeof *q);
    if (!q) {
        kvi_http_result r = {.rc = KV_ENOMEM, .message = "out of memory starting a batch"};
        done(done_ctx, &r);
        return;
    }
    *q = (batch_pending){.n = n, .b = b, .done = done, .done_ctx = done_ctx};
    int rc = launch(q, wo, ro, (flags & KVI_FRAME_FLAG_SIBLINGS) != 0);
    if (rc != KV_OK)
        answer(q, rc);
}
