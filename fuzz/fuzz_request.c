/* libFuzzer target for the path a clustered node takes a client's request
 * through before it touches anything (node.c, node_replica.c): the body
 * decoded for its opcode (kvi_request_decode), then checked by the
 * validation layer (util/validate.h) against the store's limits, a batch
 * built operation by operation as run_batch does and prepared
 * (kvi_batch_prepare), the quorum a coordinator would need, the context it
 * would read, and the state a REPLICATE, REPAIR or HINT carries.
 *
 * Input: byte 0 the opcode; bytes 1-2 the key limit (1 + n % 65536),
 * bytes 3-4 the value limit (0..65535), byte 5 the replication factor
 * (1..16); the rest is the frame's body.
 *
 * Invariants: nothing crashes or leaks; every status is KV_OK, KV_EINVAL
 * or KV_ETOOBIG (the only refusals of the layer) with a detail message,
 * and kvi_public_status of anything is public; a request the layer
 * accepts is within every limit (key 1..max, value 0..max, TTL
 * 0..KVI_MAX_TTL_S, level 0..4 and an explicit count of 1 or more, context
 * 0..64 KiB); a batch is refused exactly when an operation or its options
 * are, with the first bad operation's status, and the quorum of an
 * accepted request is 1..N or KV_EINVAL; a BACKUP's directory the layer
 * accepts is 1..KV_BACKUP_MAX_PATH bytes, absolute, without NUL; a scan
 * the layer accepts has a limit of 1..KV_SCAN_MAX_LIMIT and a level other
 * than SERIAL. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kv/kv.h>
#include "format/batch.h"
#include "format/dvv.h"
#include "cluster/quorum.h"
#include "format/state.h"
#include "format/frame.h"
#include "format/message.h"
#include "format/record.h"
#include "format/scan.h"
#include "util/validate.h"

static void expect_status(int rc)
{
    if (rc != KV_OK && rc != KV_EINVAL && rc != KV_ETOOBIG)
        abort();
    if (rc != KV_OK && kv_error_last()[0] == 0)
        abort();
    int pub = kvi_public_status(rc);
    if (pub != rc)
        abort(); /* public codes pass as they are */
}

static void expect_level(unsigned consistency, unsigned count)
{
    if (consistency > KV_CONSISTENCY_SERIAL ||
        (consistency == KV_CONSISTENCY_EXPLICIT && (count == 0 || count > KVI_MAX_QUORUM)))
        abort();
}

/* What a coordinator does next with an accepted level. */
static void check_quorum(unsigned consistency, unsigned count, unsigned n)
{
    unsigned required = 0;
    int rc = kvi_quorum_required(&required, (kv_consistency)consistency, count, n);
    if (rc == KV_OK ? required < 1 || required > n : rc != KV_EINVAL)
        abort();
}

static void check_within(const void *base, size_t len, kvi_bytes b)
{
    const unsigned char *p = base;
    if (b.len && (b.data < p || b.data + b.len > p + len))
        abort();
}

static void write_options(kv_write_options *wo, const kvi_request *req)
{
    kv_write_options_init(wo, KV_WRITE_OPTIONS_VERSION);
    wo->ttl_s = req->ttl_s;
    wo->consistency = (kv_consistency)req->consistency;
    wo->w = req->quorum;
    wo->context = req->context.data;
    wo->context_len = req->context.len;
}

static void write_request(const kvi_limits *l, const kvi_request *req, unsigned n)
{
    kvi_write_check kind = req->opcode == KVI_OP_PUT      ? KVI_CHECK_PUT
                         : req->opcode == KVI_OP_DELETE ? KVI_CHECK_DELETE
                                                        : KVI_CHECK_CAS;
    kv_write_options wo;
    write_options(&wo, req);
    int rc = kvi_check_write(l, kind, req->key.data, req->key.len, req->value.data,
                             req->value.len, &wo);
    expect_status(rc);
    if (rc != KV_OK)
        return;
    if (req->key.len == 0 || req->key.len > l->max_key_size || req->ttl_s > KVI_MAX_TTL_S ||
        req->context.len > KVI_MAX_CONTEXT_BYTES)
        abort();
    if (kind != KVI_CHECK_DELETE && req->value.len > l->max_value_size)
        abort();
    expect_level(req->consistency, req->quorum);
    check_quorum(req->consistency, req->quorum, n);
    if (req->context.len) {
        /* The coordinator reads the context as a version vector. */
        static kvi_vv vv;
        kvi_reader r = kvi_reader_init(req->context.data, req->context.len);
        (void)kvi_vv_decode(&vv, &r);
    }
}

static void read_request(const kvi_limits *l, const kvi_request *req, unsigned n)
{
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = (kv_consistency)req->consistency;
    ro.r = req->quorum;
    int rc = kvi_check_read(l, req->key.data, req->key.len, &ro);
    expect_status(rc);
    if (rc != KV_OK)
        return;
    if (req->key.len == 0 || req->key.len > l->max_key_size)
        abort();
    expect_level(req->consistency, req->quorum);
    check_quorum(req->consistency, req->quorum, n);
}

/* The status kv_batch_put/get/delete should give the next operation, from
 * its documentation (the ceilings, not the store's limits). */
static int append_status(size_t count, const kvi_batch_item *it)
{
    if (it->key.len == 0)
        return KV_EINVAL;
    if (count >= KV_BATCH_MAX_OPS || it->key.len > KV_MAX_KEY_SIZE_LIMIT ||
        (it->kind == KV_BATCH_PUT && it->value.len > KV_MAX_VALUE_SIZE_LIMIT))
        return KV_ETOOBIG;
    return KV_OK;
}

/* A batch as the node builds and prepares it (node.c run_batch). */
static void batch_request(const kvi_limits *l, kvi_request *req, unsigned n,
                          const uint8_t *body, size_t len)
{
    kv_batch *b = NULL;
    if (kv_batch_new(&b) != KV_OK)
        abort();
    int rc = KV_OK;
    for (uint32_t i = 0; rc == KV_OK && i < req->batch_count; i++) {
        kvi_batch_item it;
        kvi_request_next_item(req, &it);
        check_within(body, len, it.key);
        check_within(body, len, it.value);
        int want = append_status(kv_batch_count(b), &it);
        if (it.kind == KV_BATCH_PUT)
            rc = kv_batch_put(b, it.key.data, it.key.len, it.value.data, it.value.len, it.ttl_s);
        else if (it.kind == KV_BATCH_GET)
            rc = kv_batch_get(b, it.key.data, it.key.len);
        else
            rc = kv_batch_delete(b, it.key.data, it.key.len);
        if (rc != want)
            abort();
        expect_status(rc);
    }
    if (rc == KV_OK) {
        kv_write_options wo;
        write_options(&wo, req);
        kv_read_options ro = KV_READ_OPTIONS_INIT;
        ro.consistency = wo.consistency;
        ro.r = req->quorum;
        /* The expectation, computed apart: an empty batch, then the
         * options, then the first operation that fails its check. */
        int want = KV_OK;
        size_t bad = SIZE_MAX;
        size_t count = kv_batch_count(b);
        if (count == 0)
            want = KV_EINVAL;
        else if (req->consistency > KV_CONSISTENCY_SERIAL ||
                 (req->consistency == KV_CONSISTENCY_EXPLICIT && req->quorum == 0))
            want = KV_EINVAL;
        for (size_t i = 0; want == KV_OK && i < count; i++) {
            const kvi_batch_op *op = &b->ops[i];
            int is_put = op->kind == KV_BATCH_PUT;
            if (op->key_len > l->max_key_size ||
                (is_put && op->value_len > l->max_value_size))
                want = KV_ETOOBIG;
            else if (is_put && op->ttl_s > KVI_MAX_TTL_S)
                want = KV_EINVAL;
            if (want != KV_OK)
                bad = i;
        }
        rc = kvi_batch_prepare(l, b, &wo, &ro);
        if (rc != want)
            abort();
        expect_status(rc);
        if (bad != SIZE_MAX && kv_batch_result(NULL, NULL, b, bad) != want)
            abort(); /* the result names the operation that failed the batch */
        if (rc == KV_OK)
            check_quorum(req->consistency, req->quorum, n);
        kvi_batch_public_results(b);
        for (size_t i = 0; b->executed && i < count; i++) {
            int st = kv_batch_result(NULL, NULL, b, i);
            if (st > KV_OK || st < KV_EPERM)
                abort();
        }
    }
    kv_batch_free(b);
}

/* BACKUP (node.c, kvi_node_backup): only the directory is checked before
 * the node acts on it. */
static void backup_request(const kvi_request *req)
{
    const char *dir = (const char *)req->value.data;
    int rc = kvi_check_backup_dir(dir, req->value.len, "the backup directory");
    if (rc != KV_OK && rc != KV_EINVAL)
        abort();
    if (rc != KV_OK && kv_error_last()[0] == 0)
        abort();
    if (rc == KV_OK && (req->value.len == 0 || req->value.len > KV_BACKUP_MAX_PATH ||
                        dir[0] != '/' || memchr(dir, 0, req->value.len)))
        abort();
}

/* SCAN and SCAN_RANGE (node_scan.c): the limit and options through the
 * validation layer, the position's size, the quorum a coordinator needs. */
static void scan_request(const kvi_request *req, unsigned n)
{
    kv_scan_options so = KV_SCAN_OPTIONS_INIT;
    so.consistency = (kv_consistency)req->consistency;
    so.r = req->quorum;
    so.keys_only = (req->scan_flags & KVI_SCAN_KEYS_ONLY) != 0;
    int rc = kvi_check_scan(req->limit, &so);
    if (rc != KV_OK && rc != KV_EINVAL)
        abort();
    if (rc != KV_OK && kv_error_last()[0] == 0)
        abort();
    if (rc != KV_OK)
        return;
    if (req->limit < 1 || req->limit > KV_SCAN_MAX_LIMIT ||
        req->consistency == KV_CONSISTENCY_SERIAL)
        abort();
    expect_level(req->consistency, req->quorum);
    if (req->opcode == KVI_OP_SCAN)
        check_quorum(req->consistency, req->quorum, n);
    int ok = kvi_scan_position_ok(req->key.len);
    if (ok != (req->key.len == 0 || (req->key.len >= KVI_TOKEN_SIZE &&
                                     req->key.len <= KVI_SCAN_MAX_POSITION)))
        abort();
}

/* GET_STATE, READ_STATE, REPLICATE, REPAIR and HINT (node_replica.c). */
static void replica_request(const kvi_limits *l, const kvi_request *req)
{
    int rc = kvi_check_key(l, req->key.data, req->key.len);
    expect_status(rc);
    if (rc != KV_OK || req->opcode == KVI_OP_GET_STATE || req->opcode == KVI_OP_READ_STATE)
        return;
    static kvi_state st;
    if (kvi_state_decode(&st, req->value.data, req->value.len,
                         kvi_key_token(req->key.data, req->key.len)) != KV_OK)
        return;
    if (st.n > KVI_STATE_MAX_SIBLINGS)
        abort();
    for (size_t i = 0; i < st.n; i++) {
        rc = kvi_check_value(l, st.sibs[i].value, st.sibs[i].value_len);
        expect_status(rc);
        if (rc == KV_OK && st.sibs[i].value_len > l->max_value_size)
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 6)
        return 0;
    uint8_t opcode = data[0];
    kvi_limits l = {
        .max_key_size = 1u + (((uint32_t)data[1] << 8 | data[2]) % KV_MAX_KEY_SIZE_LIMIT),
        .max_value_size = (uint32_t)data[3] << 8 | data[4],
    };
    unsigned n = 1u + data[5] % 16u;
    /* Any status from the wire comes out public. */
    int wire = (int16_t)((uint16_t)data[1] << 8 | data[2]);
    int pub = kvi_public_status(wire);
    if (pub > KV_OK || pub < KV_EPERM)
        abort();
    const uint8_t *body = data + 6;
    size_t len = size - 6;
    kvi_request req;
    if (kvi_request_decode(&req, opcode, body, len) != 0)
        return 0;
    check_within(body, len, req.key);
    check_within(body, len, req.value);
    check_within(body, len, req.context);
    switch (opcode) {
    case KVI_OP_GET:
        read_request(&l, &req, n);
        break;
    case KVI_OP_PUT:
    case KVI_OP_DELETE:
    case KVI_OP_CAS:
        write_request(&l, &req, n);
        break;
    case KVI_OP_BATCH:
        batch_request(&l, &req, n, body, len);
        break;
    case KVI_OP_GET_STATE:
    case KVI_OP_READ_STATE:
    case KVI_OP_REPLICATE:
    case KVI_OP_REPAIR:
    case KVI_OP_HINT:
        replica_request(&l, &req);
        break;
    case KVI_OP_BACKUP:
        backup_request(&req);
        break;
    case KVI_OP_SCAN:
    case KVI_OP_SCAN_RANGE:
        scan_request(&req, n);
        break;
    default:
        break;
    }
    return 0;
}
