/*
 * client/router.h - a client handle's view of the cluster: it learns the members
 * from any reachable node (CLUSTER), builds the same ring, and runs each
 * request through the coordinator against the key's replicas directly.
 *
 * Until a view is known (a single node, or a cluster still learning its
 * members) requests go to the endpoints as given, and the node coordinates.
 * Once it is, a thread keeps the members' statuses (up, down) fresh, so
 * that writes go first to a replica that is up, and rebuilds the view when
 * a member lists more members than it has (one joined).
 *
 * Threads: every function may be called from many threads at once, except
 * kvi_router_close.
 */
#ifndef KVI_ROUTER_H
#define KVI_ROUTER_H

#include <kv/kv.h>
#include "net/client.h"
#include "cluster/coordinator.h"

typedef struct kvi_router kvi_router;

/* bootstrap is the connection to the given endpoints; the router uses it
 * to learn the cluster but does not own it. */
int kvi_router_open(kvi_router **out, kvi_client *bootstrap, const kv_client_options *opts,
                    const kvi_logger *log);
void kvi_router_close(kvi_router *r);
/* The count of coordinated requests alive for this handle (for the
 * coordinator's environment). */
struct kvi_coord_tracker *kvi_router_tracker(kvi_router *r);

/* The current view with a reference (kvi_view_unref it), or NULL when
 * requests should go to the endpoints directly. Learns the view at most
 * once a second while it has none. */
kvi_view *kvi_router_view(kvi_router *r);
/* Replaces the view stale (a replica said the ring changed) by the view of
 * member `from` of it (the node id of the replica that said so: it knows a
 * newer ring), or, when that fails or from is NULL, drops it so that the
 * next call learns it again. Does nothing when the view is no longer
 * stale. */
void kvi_router_invalidate(kvi_router *r, kvi_view *stale, const char *from);

/* 1 when the members last asked hold node_id down (or stopped). A thread
 * asks one member a second, in turn, with a 500 ms deadline. The signature
 * is kvi_coord_env.is_down's (ctx is the router). */
int kvi_router_is_down(void *ctx, const char *node_id);

#endif
