/* client/topology.c - kv_topology_change on a handle (see topology.h). */
#include "client/topology.h"

#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "client/handle.h"
#include "format/frame.h"
#include "net/client.h"
#include "node/node.h"
#include "util/error.h"

/* The answer (JSON) as the caller's string, or an error. */
static int take_json(char **out_json, const void *data, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(data, len);
    int rc = cJSON_IsObject(root) ? KV_OK
                                  : kvi_error(KV_EIO, "the node's answer to a topology change "
                                                      "is malformed");
    if (rc == KV_OK && out_json) {
        *out_json = cJSON_PrintUnformatted(root);
        if (!*out_json)
            rc = kvi_error(KV_ENOMEM, "out of memory");
    }
    cJSON_Delete(root);
    return rc;
}

int kvi_topology_change_run(char **out_json, kv *db, const char *change, const char *node_id)
{
    if (db->kind == KVI_KIND_NODE) {
        char *json = NULL;
        int rc = kvi_node_topology_change(db->node, change, node_id, &json);
        if (rc == KV_OK)
            rc = take_json(out_json, json, strlen(json));
        cJSON_free(json);
        return rc;
    }
    if (db->kind != KVI_KIND_CLIENT)
        return kvi_error(KV_ENOTSUP, "kv_topology_change: an embedded store has no cluster");
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "change", change);
    if (node_id)
        cJSON_AddStringToObject(req, "node", node_id);
    else
        cJSON_AddNullToObject(req, "node");
    char *body = cJSON_PrintUnformatted(req);
    cJSON_Delete(req);
    if (!body)
        return kvi_error(KV_ENOMEM, "out of memory");
    kvi_buf answer = {0};
    int rc = kvi_client_value_call(db->client, KVI_OP_TOPOLOGY_CHANGE, body, strlen(body),
                                   &answer);
    cJSON_free(body);
    if (rc == KV_OK)
        rc = take_json(out_json, answer.data, answer.len);
    kvi_buf_free(&answer);
    return rc;
}
