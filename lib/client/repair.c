/* client/repair.c - kv_repair on a handle (see repair.h). */
#include "client/repair.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include "client/handle.h"
#include "client/router.h"
#include "cluster/view.h"
#include "format/frame.h"
#include "format/message.h"
#include "net/client.h"
#include "node/node.h"
#include "storage/backup.h"
#include "util/error.h"

/* A node's entry of the report: {"nodeId", "status", "round"} or
 * {"nodeId", "status", "message"}. */
static cJSON *entry_for(const char *id, int rc, uint64_t round, const char *why)
{
    cJSON *e = cJSON_CreateObject();
    if (id)
        cJSON_AddStringToObject(e, "nodeId", id);
    else
        cJSON_AddNullToObject(e, "nodeId");
    cJSON_AddStringToObject(e, "status", kvi_backup_status_name(rc));
    if (rc == KV_OK)
        cJSON_AddNumberToObject(e, "round", (double)round);
    else
        cJSON_AddStringToObject(e, "message", why ? why : "");
    return e;
}

/* The node a manual-loop client reaches (it has no view of the ring): a
 * blocking call, which drives the loop. */
static int repair_one(kv *db, const char *node_id, cJSON *nodes)
{
    kvi_buf answer = {0};
    int rc = kvi_client_value_call(db->client, KVI_OP_REPAIR_START, NULL, 0, &answer);
    cJSON *a = rc == KV_OK ? cJSON_ParseWithLength((const char *)answer.data, answer.len) : NULL;
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(a, "round");
    const cJSON *nid = cJSON_GetObjectItemCaseSensitive(a, "nodeId");
    int started = rc == KV_OK && cJSON_IsNumber(r) && cJSON_IsString(nid);
    if (rc == KV_OK && !started)
        rc = kvi_error(KV_EIO, "the node's answer to a repair request is malformed");
    if (started)
        cJSON_AddItemToArray(nodes, entry_for(nid->valuestring, KV_OK,
                                              (uint64_t)r->valuedouble, NULL));
    else
        cJSON_AddItemToArray(nodes, entry_for(node_id, rc, 0, kvi_error_last()));
    if (started && node_id && strcmp(nid->valuestring, node_id) != 0)
        /* It started a round all the same: the report says so. */
        rc = kvi_error(KV_EINVAL, "kv_repair: the node this client reaches is %s, not %s",
                       nid->valuestring, node_id);
    cJSON_Delete(a);
    kvi_buf_free(&answer);
    return rc;
}

/* Asks each member of the client's view (only node_id when given). */
static int repair_remote(kv *db, const char *node_id, cJSON *nodes)
{
    if (!db->router) /* a manual-loop client: only the node it reaches */
        return repair_one(db, node_id, nodes);
    /* The members: the router learns them on first use, on another thread
     * perhaps (then this call sees none yet), at most once a second. */
    kvi_view *v = kvi_router_view(db->router);
    for (int tries = 0; !v && tries < 30; tries++) {
        struct timespec pause = {0, 100 * 1000000L};
        nanosleep(&pause, NULL);
        v = kvi_router_view(db->router);
    }
    /* No view: a cluster of one (the router keeps none: every request goes
     * to that node), or none learned yet; either way the node this client
     * reaches is asked, and says so if it cannot be reached. */
    if (!v)
        return repair_one(db, node_id, nodes);
    size_t n = v->n;
    kvi_call **calls = calloc(n, sizeof *calls);
    if (!calls) {
        kvi_view_unref(v);
        return kvi_error(KV_ENOMEM, "out of memory starting a repair");
    }
    /* The body: the request's value, empty (a length of 0). */
    kvi_buf body = {0};
    kvi_buf_bytes(&body, NULL, 0);
    size_t asked = 0;
    kvi_fanout fo;
    kvi_fanout_init(&fo);
    uint32_t timeout_ms = 0;
    for (size_t i = 0; i < n; i++) {
        if (node_id && strcmp(v->members[i].id, node_id) != 0)
            continue;
        kvi_client *c = kvi_view_client(v, i);
        if (!c) /* a node's own view: never in a client handle */
            continue;
        calls[i] = kvi_call_start_raw(c, &fo, KVI_OP_REPAIR_START, body.data, body.len, 0, 0);
        asked++;
        uint32_t ms = kvi_client_timeout_ms(c);
        timeout_ms = ms > timeout_ms ? ms : timeout_ms;
    }
    int rc = KV_OK;
    if (asked == 0)
        rc = kvi_error(KV_EINVAL, "kv_repair: the cluster has no member %s", node_id);
    struct timespec deadline = kvi_deadline_after(timeout_ms + 1000u);
    if (asked)
        kvi_fanout_wait(&fo, (unsigned)asked, (unsigned)asked, &deadline);
    size_t failed = 0;
    char first[600] = "";
    for (size_t i = 0; i < n; i++) {
        if (!calls[i])
            continue;
        kvi_frame_header h;
        unsigned char *body = NULL;
        kvi_response resp;
        int crc = kvi_call_finish(calls[i], &h, &body);
        if (crc == KV_OK)
            crc = kvi_call_decode(&resp, KVI_OP_REPAIR_START, &h, body);
        uint64_t round = 0;
        const char *id = v->members[i].id;
        if (crc == KV_OK) {
            cJSON *a = cJSON_ParseWithLength((const char *)resp.value.data, resp.value.len);
            const cJSON *r = cJSON_GetObjectItemCaseSensitive(a, "round");
            const cJSON *nid = cJSON_GetObjectItemCaseSensitive(a, "nodeId");
            if (cJSON_IsNumber(r) && cJSON_IsString(nid)) {
                round = (uint64_t)r->valuedouble;
                cJSON_AddItemToArray(nodes, entry_for(nid->valuestring, KV_OK, round, NULL));
            } else {
                crc = kvi_error(KV_EIO, "the node's answer to a repair request is malformed");
            }
            cJSON_Delete(a);
        }
        if (crc != KV_OK) {
            cJSON_AddItemToArray(nodes, entry_for(id, crc, 0, kvi_error_last()));
            if (failed++ == 0) {
                rc = crc;
                snprintf(first, sizeof first, "node %s: %s", id ? id : "?", kvi_error_last());
            }
        }
        free(body);
    }
    kvi_fanout_destroy(&fo);
    kvi_buf_free(&body);
    free(calls);
    kvi_view_unref(v);
    if (failed)
        return kvi_error(rc, "repair could not start on %zu of %zu node(s); %s", failed, asked,
                         first);
    return rc;
}

int kvi_repair_run(char **out_report, kv *db, const char *node_id)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *nodes = cJSON_AddArrayToObject(root, "nodes");
    int rc;
    if (!root || !nodes) {
        cJSON_Delete(root);
        return kvi_error(KV_ENOMEM, "out of memory starting a repair");
    }
    if (db->kind == KVI_KIND_CLIENT) {
        rc = repair_remote(db, node_id, nodes);
    } else if (db->kind == KVI_KIND_NODE) {
        uint64_t round = 0;
        rc = kvi_node_repair_start(db->node, &round);
        cJSON_AddItemToArray(nodes, entry_for(NULL, rc, round, kvi_error_last()));
    } else {
        rc = kvi_error(KV_ENOTSUP, "kv_repair: an embedded store has no replicas to repair "
                                   "from");
    }
    char saved[700];
    snprintf(saved, sizeof saved, "%s", rc == KV_OK ? "" : kvi_error_last());
    if (out_report) {
        *out_report = cJSON_PrintUnformatted(root);
        if (!*out_report && rc == KV_OK)
            rc = kvi_error(KV_ENOMEM, "out of memory writing the repair report");
    }
    cJSON_Delete(root);
    if (rc != KV_OK && saved[0])
        kvi_error(rc, "%s", saved);
    return rc;
}
