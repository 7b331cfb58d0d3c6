/*
 * client/async.c - a client handle's asynchronous data calls.
 *
 * Each call is a small record that lives from kvi_async_start to its
 * callback. A GET under KV_POLICY_MERGE that finds siblings goes through
 * two more steps before the callback, each one more request on the same
 * loop: the merged value is written back with the read's context, then
 * read again for its new version and context (what kv_get does blocking).
 */
#include "client/async.h"

#include <stdlib.h>
#include <string.h>

#include "net/client.h"
#include "client/handle.h"
#include "client/hot_cache.h"
#include "client/remote.h"
#include "util/error.h"
#include "util/validate.h"
#include "format/value.h"

enum { STEP_CALL, STEP_MERGE_WRITE, STEP_MERGE_READ };

typedef struct async_op {
    kv *db;
    kv_callback cb;
    void *ctx;
    uint8_t opcode;
    int step;
    /* For the merge steps of a GET. */
    unsigned char *key;
    size_t key_len;
    uint8_t consistency;
    uint8_t quorum;
} async_op;

static void on_reply(void *ctx, const kvi_reply *rep);

static int submit(async_op *op, const kvi_request *req)
{
    kvi_buf frame = {0};
    kvi_frame_begin(&frame);
    kvi_request_encode(&frame, req);
    int is_write = req->opcode != KVI_OP_GET;
    return kvi_client_submit(op->db->client, &frame, req->opcode, 0,
                             (is_write ? KVI_SUBMIT_WRITE : 0u) | KVI_SUBMIT_RETRY, on_reply, op);
}

static void finish(async_op *op, kv_result *res)
{
    if (!res->message)
        res->message = "";
    op->cb(op->ctx, res);
    free(op->key);
    free(op);
}

static void fail(async_op *op, int rc)
{
    kv_result res = {kvi_public_status(rc), kvi_error_last(), 0, NULL};
    finish(op, &res);
}

/* MERGE: folds the siblings with the application's callback and writes the
 * result back with the read's context. KV_OK when the write was sent. */
static int merge_write_back(async_op *op, const kv_value *siblings)
{
    kv *db = op->db;
    kv_merge_result *res = NULL;
    const unsigned char *data = NULL;
    size_t len = 0;
    int rc = kvi_merge_run(db, &res, &data, &len, op->key, op->key_len, siblings);
    if (rc == KV_OK) {
        size_t ctx_len = 0;
        const void *context = kvi_value_context(siblings, &ctx_len);
        kvi_request put = {.opcode = KVI_OP_PUT, .key = {op->key, op->key_len},
                           .value = {data, len}, .context = {context, ctx_len}};
        if (op->consistency != KV_CONSISTENCY_EXPLICIT)
            put.consistency = op->consistency;
        op->opcode = KVI_OP_PUT;
        op->step = STEP_MERGE_WRITE;
        rc = submit(op, &put);
    }
    kvi_merge_result_free(res);
    return rc;
}

static void on_reply(void *ctx, const kvi_reply *rep)
{
    async_op *op = ctx;
    kvi_response resp;
    int rc = kvi_reply_decode(&resp, rep, op->opcode);
    kv_result res = {kvi_public_status(rc), rc == KV_OK ? "" : kvi_error_last(), 0, NULL};
    if (op->step == STEP_MERGE_WRITE) {
        if (rc != KV_OK) {
            finish(op, &res);
            return;
        }
        kvi_request get = {.opcode = KVI_OP_GET, .key = {op->key, op->key_len},
                           .consistency = op->consistency, .quorum = op->quorum};
        op->opcode = KVI_OP_GET;
        op->step = STEP_MERGE_READ;
        if ((rc = submit(op, &get)) != KV_OK)
            fail(op, rc);
        return;
    }
    if (rc == KV_OK || (rc == KV_ECONFLICT && op->opcode == KVI_OP_CAS))
        res.version = resp.version;
    if (rc == KV_OK && op->opcode == KVI_OP_GET) {
        res.value = kvi_value_from_response(&resp);
        if (!res.value) {
            fail(op, kvi_error(KV_ENOMEM, "out of memory copying a value"));
            return;
        }
        if (op->step == STEP_CALL && op->db->policy == KV_POLICY_MERGE &&
            kvi_value_sibling_count(res.value) > 1) {
            rc = merge_write_back(op, res.value);
            kvi_value_free(res.value);
            if (rc != KV_OK)
                fail(op, rc);
            return;
        }
    }
    finish(op, &res);
}

int kvi_async_start(kv *db, const kvi_request *req, const kv_read_options *ropts,
                    kv_callback cb, void *ctx)
{
    /* The asynchronous calls neither read nor fill the cache of hot keys;
     * a write through them still makes it forget the key. */
    if (db->hot_cache && req->opcode != KVI_OP_GET)
        kvi_hot_cache_drop(db->hot_cache, req->key.data, req->key.len);
    async_op *op = calloc(1, sizeof *op);
    if (!op)
        return kvi_error(KV_ENOMEM, "out of memory starting a call");
    op->db = db;
    op->cb = cb;
    op->ctx = ctx;
    op->opcode = req->opcode;
    if (req->opcode == KVI_OP_GET && db->policy == KV_POLICY_MERGE) {
        op->key = malloc(req->key.len);
        if (!op->key) {
            free(op);
            return kvi_error(KV_ENOMEM, "out of memory starting a call");
        }
        memcpy(op->key, req->key.data, req->key.len);
        op->key_len = req->key.len;
        op->consistency = ropts ? (uint8_t)ropts->consistency : 0;
        op->quorum = ropts ? (uint8_t)ropts->r : 0;
    }
    int rc = submit(op, req);
    if (rc != KV_OK) {
        free(op->key);
        free(op);
    }
    return rc;
}
