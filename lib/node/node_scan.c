/*
 * node/node_scan.c - scans on a node: the SCAN and SCAN_RANGE requests, the
 * HTTP API's GET /v1/kv, and kvi_node_scan under a node handle's kv_scan.
 * Alone, a node scans its own store; in a cluster it coordinates the scan
 * over the ring (cluster/scan.h).
 */
#include "node/node_internal.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/coordinator.h"
#include "cluster/scan.h"
#include "cluster/view.h"
#include "format/scan.h"
#include "util/error.h"

static int member_down(void *ctx, const char *node_id)
{
    return kvi_membership_is_down(ctx, node_id);
}

int kvi_node_scan(kvi_node *n, kv_scan_page **out, const void *after, size_t after_len,
                  size_t limit, const kv_scan_options *so, unsigned flags)
{
    *out = NULL;
    int rc = kvi_check_scan(limit, so);
    if (rc != KV_OK)
        return rc;
    if (!kvi_scan_position_ok(after_len))
        return kvi_error(KV_EINVAL, "malformed scan position (%zu bytes)", after_len);
    unsigned scan_flags = (so && so->keys_only ? KVI_SCAN_KEYS_ONLY : 0u) |
                          (flags & KVI_FRAME_FLAG_SIBLINGS ? KVI_SCAN_SIBLINGS : 0u);
    if (!kvi_node_clustered(n))
        return kvi_embedded_scan(n->store, out, after, after_len, limit, scan_flags);
    kvi_coord_env env = {
        .view = kvi_membership_view(n->membership), .local = n->store, .log = n->log,
        .is_down = member_down, .is_down_ctx = n->membership, .hints = &n->hints,
        .sloppy_writes = &n->sloppy_writes,
    };
    if (!env.view)
        return kvi_error(KV_EUNAVAILABLE, "the cluster is still learning its members "
                                          "(see GET /v1/cluster)");
    rc = kvi_cluster_scan(&env, out, after, after_len, limit,
                          so ? so->consistency : KV_CONSISTENCY_DEFAULT, so ? so->r : 0,
                          scan_flags);
    kvi_view_unref(env.view);
    return rc;
}

int kvi_node_scan_text(kvi_node *n, kv_scan_page **out, const char *cursor, size_t limit,
                       const kv_scan_options *so, unsigned flags)
{
    *out = NULL;
    unsigned char *pos = malloc(KVI_SCAN_MAX_POSITION);
    if (!pos)
        return kvi_error(KV_ENOMEM, "out of memory starting a scan");
    size_t len = 0;
    int rc = kvi_scan_cursor_decode(pos, &len, cursor);
    if (rc != KV_OK)
        rc = kvi_error(KV_EINVAL, "malformed scan cursor: pass the cursor of an earlier "
                                  "page as it was given");
    else
        rc = kvi_node_scan(n, out, pos, len, limit, so, flags);
    free(pos);
    return rc;
}

/* SCAN from a client, or SCAN_RANGE from a scan's coordinator. */
int kvi_node_scan_op(kvi_node *n, const kvi_request *req, const kvi_frame_header *h,
                     kvi_buf *out)
{
    kvi_response none = {0};
    int rc = KV_OK;
    if ((req->scan_flags & ~KVI_SCAN_FLAGS_KNOWN) || req->limit == 0 ||
        req->limit > KV_SCAN_MAX_LIMIT || !kvi_scan_position_ok(req->key.len))
        rc = kvi_error(KV_EINVAL, "malformed scan request (flags %u, limit %u, position of "
                                  "%zu bytes)", req->scan_flags, req->limit, req->key.len);
    size_t start = out->len;
    if (rc == KV_OK && h->opcode == KVI_OP_SCAN_RANGE) {
        kvi_frame_begin(out);
        rc = kvi_scan_range_local(n->store, out, req->key.data, req->key.len,
                                  req->last_token, req->limit, req->scan_flags);
        if (rc == KV_OK)
            kvi_frame_finish(out, start, h->opcode, KVI_FRAME_FLAG_RESPONSE, KV_OK,
                             h->request_id);
    } else if (rc == KV_OK) {
        kv_scan_options so = KV_SCAN_OPTIONS_INIT;
        so.consistency = (kv_consistency)req->consistency;
        so.r = req->quorum;
        so.keys_only = (req->scan_flags & KVI_SCAN_KEYS_ONLY) != 0;
        kv_scan_page *page = NULL;
        unsigned flags = h->flags | ((req->scan_flags & KVI_SCAN_SIBLINGS)
                                         ? KVI_FRAME_FLAG_SIBLINGS : 0u);
        rc = kvi_node_scan(n, &page, req->key.data, req->key.len, req->limit, &so, flags);
        if (rc == KV_OK) {
            kvi_frame_begin(out);
            kvi_scan_page_encode(out, page);
            kvi_frame_finish(out, start, h->opcode, KVI_FRAME_FLAG_RESPONSE, KV_OK,
                             h->request_id);
        }
        kvi_scan_page_free(page);
    }
    if (rc == KV_OK && out->failed)
        rc = kvi_error(KV_ENOMEM, "out of memory answering a scan");
    if (rc != KV_OK) {
        out->len = start;
        kvi_node_respond(out, h, rc, &none);
    }
    return rc;
}

/* GET /v1/kv. */
int kvi_node_http_scan(void *ctx, kvi_http_policy p, kv_scan_page **out, const char *cursor,
                       size_t limit, const kv_scan_options *so)
{
    kvi_node *n = ctx;
    unsigned flags = p == KVI_HTTP_POLICY_OWN ? kvi_node_flags(n)
                   : p == KVI_HTTP_POLICY_SIBLINGS ? KVI_FRAME_FLAG_SIBLINGS : 0u;
    return kvi_public_status(kvi_node_scan_text(n, out, cursor, limit, so, flags));
}
