/* client/handle.h - what a kv handle is inside: its kind, limits and backend. */
#ifndef KVI_HANDLE_H
#define KVI_HANDLE_H

#include <kv/kv.h>
#include "net/client.h"
#include "storage/embedded.h"
#include "node/node.h"
#include "util/log.h"

typedef enum kvi_kind {
    KVI_KIND_EMBEDDED = 1,
    KVI_KIND_NODE = 2,
    KVI_KIND_CLIENT = 3
} kvi_kind;

/* All fields are set by the constructor and immutable afterwards, so they
 * are read without locks; the backend does its own locking. */
struct kv {
    kvi_kind kind;
    uint32_t max_key_size;
    uint32_t max_value_size;
    kvi_logger log;
    kvi_embedded *embedded; /* KVI_KIND_EMBEDDED */
    kvi_node *node;         /* KVI_KIND_NODE: data calls go to its store */
    kvi_client *client;     /* KVI_KIND_CLIENT: to the endpoints as given */
    struct kvi_router *router; /* KVI_KIND_CLIENT: the cluster view; NULL with manual_loop */
    int manual_loop;           /* KVI_KIND_CLIENT: the application drives the loop */
    kv_conflict_policy policy;
    /* KVI_KIND_NODE: policy above overrides the node's own (the HTTP API's
     * handles for ?policy=); 0: the node's policy. */
    int policy_fixed;
    kv_merge_fn merge;
    void *merge_ctx;
    /* KVI_KIND_CLIENT: the cache of hot keys' values
     * (kv_client_options.hot_cache_staleness_ms); NULL: none. */
    struct kvi_hot_cache *hot_cache;
};

#endif
