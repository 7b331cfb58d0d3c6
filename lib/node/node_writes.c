/* node/node_writes.c - a node alone: the puts, deletes and CASes an I/O
 * loop read in one iteration, made in one WriteBatch and answered together.
 *
 * One by one, each write was a store write of its own: a WAL append and a
 * write() call, and a turn in RocksDB's writer queue against the other
 * I/O thread (the queue's spinning and sched_yield alone were a tenth of
 * the node's CPU at 16 requests in flight per connection); under `sync
 * always` the I/O thread also waited for the disk. Now the iteration's
 * writes are one unsynced WriteBatch (kvi_embedded_write_many), and under
 * `sync always` they are answered once the store's group committer has
 * synced it, so the loop never waits on the disk. Each write still
 * succeeds or fails alone, with what kvi_embedded_put, _delete and _cas
 * would have answered. */
#include "node/node_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/group_commit.h"
#include "util/error.h"
#include "util/validate.h"

/* The iteration's writes, kept until they are answered. */
typedef struct write_batch {
    kvi_node *n;
    kvi_sync_request sync;
    uint64_t started;
    size_t count;
    struct local_write {
        kvi_server_pending *p;
        kvi_frame_header h;     /* a copy: the request's goes with its answer */
        kvi_buf *out;
        kvi_metric_level level; /* for the latency histogram */
        kvi_embedded_write w;
    } items[];
} write_batch;

static kvi_metric_op metric_of(uint8_t opcode)
{
    return opcode == KVI_OP_PUT ? KVI_MOP_PUT
         : opcode == KVI_OP_CAS ? KVI_MOP_CAS : KVI_MOP_DELETE;
}

static void answer(kvi_node *n, struct local_write *lw, int rc, uint64_t started)
{
    rc = kvi_public_status(rc);
    kvi_response resp = {.version = rc == KV_OK || rc == KV_ECONFLICT ? lw->w.version : 0};
    kvi_node_respond(lw->out, &lw->h, rc, &resp);
    kvi_metrics_record(n->metrics, KVI_PROTO_BINARY, metric_of(lw->h.opcode), lw->level, rc,
                       kvi_metrics_now_ns() - started);
    kvi_server_answer(lw->p);
}

/* Answers every write with how it ended; a write that succeeded fails
 * with sync_rc when the log could not be synced. */
static void answer_all(write_batch *b, int sync_rc)
{
    for (size_t i = 0; i < b->count; i++) {
        struct local_write *lw = &b->items[i];
        int rc = lw->w.status;
        if (rc == KV_OK && sync_rc != KV_OK)
            rc = kvi_error(sync_rc, "syncing the log: %s", kvi_strerror(sync_rc));
        else if (rc != KV_OK)
            kvi_error(rc, "%s", lw->w.why); /* the detail kvi_node_respond sends */
        answer(b->n, lw, rc, b->started);
    }
    free(b);
}

/* On the committer's thread: the batch's write is durable (or not). */
static void durable(void *ctx, int sync_rc)
{
    answer_all(ctx, sync_rc);
}

/* Decodes and checks one request into lw->w; KV_OK, or the failure to
 * answer it with now (its detail in kvi_error_last()). */
static int take_request(kvi_node *n, const kvi_server_request *req, struct local_write *lw)
{
    const kvi_frame_header *h = req->h;
    kvi_request r;
    if (kvi_request_decode_frame(&r, h, req->body) != 0)
        return kvi_error(KV_EINVAL, "malformed request body for opcode %u (%u bytes)",
                         h->opcode, h->body_len);
    lw->level = kvi_metric_level_of(r.consistency);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.ttl_s = r.ttl_s;
    wo.consistency = (kv_consistency)r.consistency;
    wo.w = r.quorum;
    wo.context = r.context.data;
    wo.context_len = r.context.len;
    int put = h->opcode == KVI_OP_PUT, cas = h->opcode == KVI_OP_CAS;
    int has_value = put || cas;
    int rc = kvi_check_write(&n->limits, put ? KVI_CHECK_PUT : cas ? KVI_CHECK_CAS
                                                                  : KVI_CHECK_DELETE,
                             r.key.data, r.key.len, has_value ? r.value.data : NULL,
                             has_value ? r.value.len : 0, &wo);
    if (rc != KV_OK)
        return rc;
    kvi_node_count_key(n, KVI_HOTKEY_WRITE, r.key.data, r.key.len);
    lw->w = (kvi_embedded_write){
        .kind = put ? KVI_EMBEDDED_PUT : cas ? KVI_EMBEDDED_CAS : KVI_EMBEDDED_DELETE,
        .key = r.key.data, .key_len = r.key.len,
        .value = has_value ? r.value.data : NULL, .value_len = has_value ? r.value.len : 0,
        .expected_version = r.expected_version,
        .ttl_s = has_value ? wo.ttl_s : 0,
    };
    return KV_OK;
}

void kvi_node_local_writes(kvi_node *n, kvi_server_pending **ps, kvi_server_request *reqs,
                           size_t n_reqs)
{
    uint64_t started = kvi_metrics_now_ns();
    write_batch *b = malloc(sizeof *b + n_reqs * sizeof b->items[0]);
    if (!b) {
        /* One by one, as before. */
        for (size_t i = 0; i < n_reqs; i++) {
            kvi_node_handle_request(n, reqs[i].h, reqs[i].body, reqs[i].out);
            kvi_server_answer(ps[i]);
        }
        return;
    }
    b->n = n;
    b->started = started;
    b->count = 0;
    for (size_t i = 0; i < n_reqs; i++) {
        struct local_write *lw = &b->items[b->count];
        *lw = (struct local_write){.p = ps[i], .h = *reqs[i].h, .out = reqs[i].out};
        int rc = take_request(n, &reqs[i], lw);
        if (rc != KV_OK) {
            answer(n, lw, rc, started);
            continue;
        }
        b->count++;
    }
    if (!b->count) {
        free(b);
        return;
    }
    kvi_store *store = kvi_embedded_store(n->store);
    int sync_always = kvi_store_sync_always(store);
    /* The write's requests (their keys and values) are answered only
     * below, after the write: they stay valid until then. */
    kvi_embedded_write *ws = malloc(b->count * sizeof *ws);
    if (!ws) {
        for (size_t i = 0; i < b->count; i++) {
            b->items[i].w.status = kvi_error(KV_ENOMEM, "out of memory writing");
            snprintf(b->items[i].w.why, sizeof b->items[i].w.why, "%s", kvi_error_last());
        }
        answer_all(b, KV_OK);
        return;
    }
    for (size_t i = 0; i < b->count; i++)
        ws[i] = b->items[i].w;
    kvi_embedded_write_many(n->store, ws, b->count, sync_always);
    for (size_t i = 0; i < b->count; i++) {
        b->items[i].w = ws[i];
        /* Nothing of the request is needed any more. */
        b->items[i].w.key = b->items[i].w.value = NULL;
    }
    free(ws);
    /* Under sync always every answer waits, a conflict too: the version it
     * reports may be an unsynced write of this batch or the last. */
    if (sync_always)
        kvi_group_commit_request(kvi_store_committer(store), &b->sync, durable, b);
    else
        answer_all(b, KV_OK);
}
