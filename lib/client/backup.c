/* client/backup.c - kv_backup on a handle: a client's fans out to every
 * member (BACKUP, opcode 19), a node's and an embedded store's snapshot
 * their own store (storage/backup.h). */
#include "client/backup.h"

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
#include "storage/backup.h"
#include "util/error.h"

/* The members to ask: the router's view, or (a node of its own) the
 * endpoint the client is connected to, as one member without a view. */
typedef struct target {
    const char *id;   /* NULL: not known */
    const char *addr; /* NULL: the client's endpoint */
    kvi_client *client;
    kvi_call *call;
} target;

/* Whether the node the client reaches is a node of its own: then it is the
 * one to back up; a member of a cluster whose view the router has not got
 * is refused, not backed up alone. *id receives its id (malloc'd). */
static int single_node(kv *db, char **id)
{
    *id = NULL;
    kvi_buf json = {0};
    int rc = kvi_client_cluster(db->client, &json);
    if (rc != KV_OK) {
        kvi_buf_free(&json);
        return rc;
    }
    cJSON *root = cJSON_ParseWithLength((const char *)json.data, json.len);
    kvi_buf_free(&json);
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "members"));
    const cJSON *nid = cJSON_GetObjectItemCaseSensitive(root, "nodeId");
    if (cJSON_IsString(nid))
        *id = strdup(nid->valuestring);
    cJSON_Delete(root);
    if (n > 1 && db->manual_loop)
        return kvi_error(KV_EUNAVAILABLE, "the node is a member of a cluster of %d, and a "
                                          "client opened with manual_loop keeps no view of "
                                          "the cluster to back it all up: use a client "
                                          "without manual_loop", n);
    if (n > 1)
        return kvi_error(KV_EUNAVAILABLE, "the node is a member of a cluster of %d whose "
                                          "members the client has not learned yet (or the "
                                          "cluster is still forming): try again", n);
    return KV_OK;
}

static int backup_remote(kv *db, const char *dir, cJSON *nodes)
{
    kvi_view *v = kvi_router_view(db->router);
    char *single_id = NULL;
    int rc = KV_OK;
    if (!v && (rc = single_node(db, &single_id)) != KV_OK) {
        cJSON *entry = cJSON_CreateObject();
        if (single_id)
            cJSON_AddStringToObject(entry, "nodeId", single_id);
        else
            cJSON_AddNullToObject(entry, "nodeId");
        kvi_backup_entry_failed(entry, rc, kvi_error_last());
        cJSON_AddItemToArray(nodes, entry);
        free(single_id);
        return rc;
    }
    size_t n = v ? v->n : 1;
    target *t = calloc(n, sizeof *t);
    if (!t) {
        kvi_view_unref(v);
        free(single_id);
        return kvi_error(KV_ENOMEM, "out of memory starting a backup");
    }
    for (size_t i = 0; i < n; i++) {
        t[i].id = v ? v->members[i].id : single_id;
        t[i].addr = v ? v->members[i].addr : NULL;
        t[i].client = v ? kvi_view_client(v, i) : db->client;
    }
    kvi_buf body = {0};
    kvi_buf_bytes(&body, dir, strlen(dir));
    kvi_fanout fo;
    kvi_fanout_init(&fo);
    uint32_t timeout_ms = 0;
    /* The node the client reaches, alone (no view): a blocking call, which
     * drives the loop of a manual_loop client (a fan-out's wait does not,
     * and would only see its call time out). */
    kvi_buf single = {0};
    int single_rc = v ? KV_OK : kvi_client_value_write(db->client, KVI_OP_BACKUP, dir,
                                                       strlen(dir), &single);
    for (size_t i = 0; v && i < n; i++) {
        t[i].call = kvi_call_start_raw(t[i].client, &fo, KVI_OP_BACKUP, body.data, body.len,
                                       0, 1);
        uint32_t ms = kvi_client_timeout_ms(t[i].client);
        timeout_ms = ms > timeout_ms ? ms : timeout_ms;
    }
    /* Each call ends by its own request timeout; this deadline only bounds
     * the wait should one not. */
    struct timespec deadline = kvi_deadline_after(timeout_ms + 1000u);
    if (v)
        kvi_fanout_wait(&fo, (unsigned)n, (unsigned)n, &deadline);
    int first_rc = KV_OK;
    char first_msg[600] = "";
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        kvi_frame_header h;
        unsigned char *rbody = NULL;
        kvi_response resp;
        int crc = single_rc;
        if (v)
            crc = kvi_call_finish(t[i].call, &h, &rbody);
        if (v && crc == KV_OK)
            crc = kvi_call_decode(&resp, KVI_OP_BACKUP, &h, rbody);
        else if (!v && crc == KV_OK)
            resp.value = (kvi_bytes){single.data, single.len};
        cJSON *entry = NULL;
        if (crc == KV_OK) {
            entry = cJSON_ParseWithLength((const char *)resp.value.data, resp.value.len);
            if (!cJSON_IsObject(entry)) {
                cJSON_Delete(entry);
                entry = NULL;
                crc = kvi_error(KV_EIO, "the node's backup report is not a JSON object");
            }
        }
        if (!entry) {
            entry = cJSON_CreateObject();
            if (t[i].id)
                cJSON_AddStringToObject(entry, "nodeId", t[i].id);
            else
                cJSON_AddNullToObject(entry, "nodeId");
            if (t[i].addr)
                cJSON_AddStringToObject(entry, "address", t[i].addr);
            kvi_backup_entry_failed(entry, crc, kvi_error_last());
        }
        if (crc != KV_OK && failed++ == 0) {
            first_rc = crc;
            snprintf(first_msg, sizeof first_msg, "node %s%s%s%s: %s",
                     t[i].id ? t[i].id : "?", t[i].addr ? " (" : "",
                     t[i].addr ? t[i].addr : "", t[i].addr ? ")" : "", kvi_error_last());
        }
        cJSON_AddItemToArray(nodes, entry);
        free(rbody);
    }
    kvi_fanout_destroy(&fo);
    kvi_buf_free(&single);
    kvi_buf_free(&body);
    free(t);
    kvi_view_unref(v);
    free(single_id);
    if (failed == 0)
        return KV_OK;
    return kvi_error(first_rc, "backup failed on %zu of %zu node(s); %s", failed, n, first_msg);
}

/* ------------------------------------------------------------------ run */

/* Fills the report's nodes by the handle's kind. */
static int fill_nodes(void *ctx, const char *dir, cJSON *nodes)
{
    kv *db = ctx;
    if (db->kind == KVI_KIND_CLIENT)
        return backup_remote(db, dir, nodes);
    cJSON *entry = cJSON_CreateObject();
    cJSON_AddItemToArray(nodes, entry);
    if (db->kind == KVI_KIND_NODE)
        return kvi_node_backup(db->node, dir, strlen(dir), 0, entry);
    return kvi_backup_local(db->embedded, dir, NULL, entry);
}

int kvi_backup_run(char **out_report, kv *db, const char *dir)
{
    return kvi_backup_report(out_report, dir, fill_nodes, db);
}
