/*
 * node/node_status.c - GET /v1/status, what the status page (GET /ui,
 * lib/net/ui/status.html) shows: this node's own description and each
 * member's, which this node asks for over the binary protocol (CLUSTER),
 * through its view's connections to its peers, all at once.
 *
 *   {"nodeId": "n1", "timeoutMs": 1000, "nodes": [
 *     {"nodeId", "address", "httpAddress", "self": bool, "up": bool,
 *      "status": "up"|"down" (this node's failure detector; null for
 *      itself), "error": null or why the member did not answer,
 *      "description": its GET /v1/cluster object, or null}]}
 *
 * The HTTP worker thread that serves the request waits for the answers, at
 * most STATUS_TIMEOUT_MS: a page polls every few seconds, so a member that
 * is down or paused costs its poll that second, never more, and a node's
 * HTTP server has threads enough that the data requests go on meanwhile
 * (batch and scan hold a thread too).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cluster/view.h"
#include "net/client.h"
#include "net/http_json.h"
#include "node/node_internal.h"

/* How long a member has to answer before it shows as not answering. */
#define STATUS_TIMEOUT_MS 1000u

typedef struct status_member {
    const kvi_view_member *vm; /* borrowed from the view */
    int self;
    kvi_call *call;            /* the CLUSTER request; NULL for self */
} status_member;

/* "nodeId", "address" and "httpAddress" of a member (opening its object). */
static void member_head(kvi_buf *out, const char *id, const char *addr, const char *http)
{
    kvi_http_json_raw(out, "{\"nodeId\":");
    kvi_http_json_message(out, id);
    kvi_http_json_raw(out, ",\"address\":");
    if (addr)
        kvi_http_json_message(out, addr);
    else
        kvi_http_json_raw(out, "null");
    kvi_http_json_raw(out, ",\"httpAddress\":");
    if (http)
        kvi_http_json_message(out, http);
    else
        kvi_http_json_raw(out, "null");
}

static void self_entry(const kvi_node *n, kvi_buf *out)
{
    member_head(out, n->node_id, n->listen_addr, n->http_addr);
    kvi_http_json_raw(out, ",\"self\":true,\"up\":true,\"status\":null,\"error\":null,"
                           "\"description\":");
    kvi_node_describe(n, out);
    kvi_http_json_raw(out, "}");
}

/* A peer's entry from its answer: its description when it gave one that
 * parses as a JSON object (so a broken answer cannot break the whole
 * document), else "up": false and why. */
static void peer_entry(kvi_node *n, status_member *m, kvi_buf *out)
{
    kvi_frame_header h;
    unsigned char *body = NULL;
    kvi_response resp;
    int rc = kvi_call_finish(m->call, &h, &body);
    m->call = NULL;
    if (rc == KV_OK)
        rc = kvi_call_decode(&resp, KVI_OP_CLUSTER, &h, body);
    if (rc == KV_OK) {
        cJSON *root = cJSON_ParseWithLength((const char *)resp.value.data, resp.value.len);
        if (!cJSON_IsObject(root))
            rc = kvi_error(KV_EIO, "its description is not a JSON object");
        cJSON_Delete(root);
    }
    member_head(out, m->vm->id, m->vm->addr, m->vm->http);
    kvi_http_json_raw(out, rc == KV_OK ? ",\"self\":false,\"up\":true,\"status\":"
                                       : ",\"self\":false,\"up\":false,\"status\":");
    kvi_http_json_raw(out, kvi_membership_is_down(n->membership, m->vm->id) ? "\"down\""
                                                                            : "\"up\"");
    if (rc == KV_OK) {
        kvi_http_json_raw(out, ",\"error\":null,\"description\":");
        kvi_buf_raw(out, resp.value.data, resp.value.len);
    } else {
        /* An abandoned call's message names the client's own timeout; this
         * one gave up sooner. */
        char why[600];
        if (rc == KV_ETIMEDOUT)
            snprintf(why, sizeof why, "no answer within %u ms", STATUS_TIMEOUT_MS);
        else
            snprintf(why, sizeof why, "%s", kvi_error_last());
        kvi_http_json_raw(out, ",\"error\":");
        kvi_http_json_message(out, why);
        kvi_http_json_raw(out, ",\"description\":null");
    }
    kvi_http_json_raw(out, "}");
    free(body);
}

void kvi_node_render_status(void *ctx, kvi_buf *out)
{
    kvi_node *n = ctx;
    /* No view yet (a node alone, or a cluster still forming): itself only. */
    kvi_view *v = n->membership ? kvi_membership_view(n->membership) : NULL;
    size_t count = v ? v->n + v->n_extra : 0;
    status_member *m = count ? calloc(count, sizeof *m) : NULL;
    if (!m)
        count = 0;
    kvi_fanout fo;
    kvi_fanout_init(&fo);
    unsigned asked = 0;
    for (size_t i = 0; i < count; i++) {
        m[i].vm = kvi_view_member_at(v, i);
        m[i].self = !m[i].vm->client || strcmp(m[i].vm->id, n->node_id) == 0;
        if (m[i].self)
            continue;
        kvi_request req = {.opcode = KVI_OP_CLUSTER};
        m[i].call = kvi_call_start(m[i].vm->client, &fo, &req, 0, 0);
        asked++;
    }
    if (asked) {
        struct timespec deadline = kvi_deadline_after(STATUS_TIMEOUT_MS);
        kvi_fanout_wait(&fo, asked, asked, &deadline);
    }
    kvi_http_json_raw(out, "{\"nodeId\":");
    kvi_http_json_message(out, n->node_id);
    kvi_http_json_raw(out, ",\"timeoutMs\":");
    kvi_http_json_u64(out, STATUS_TIMEOUT_MS);
    kvi_http_json_raw(out, ",\"nodes\":[");
    /* In the view's order (the ring's members, then joining ones); this
     * node once, first when the view does not have it yet. */
    int self_in_view = 0, self_done = 0;
    size_t shown = 0;
    for (size_t i = 0; i < count; i++)
        self_in_view |= m[i].self;
    if (!self_in_view) {
        self_entry(n, out);
        shown++;
    }
    for (size_t i = 0; i < count; i++) {
        if (m[i].self && self_done)
            continue; /* listed twice: shown once */
        if (shown++)
            kvi_http_json_raw(out, ",");
        if (m[i].self) {
            self_entry(n, out);
            self_done = 1;
        } else {
            peer_entry(n, &m[i], out);
        }
    }
    kvi_http_json_raw(out, "]}");
    kvi_fanout_destroy(&fo);
    free(m);
    if (v)
        kvi_view_unref(v);
}
