/*
 * cluster/view.h - one consistent picture of the cluster: the members, the
 * ring built from them, and a connection (kvi_client) to each member other
 * than this process's own node.
 *
 * A node builds its view once membership is complete; a client handle
 * builds one from the CLUSTER description of any node, and replaces it when
 * told its view is stale. The coordinator works on a view.
 *
 * Threads: a view is immutable once built and shared by reference count:
 * kvi_view_ref before use, kvi_view_unref after; the last unref frees it.
 */
#ifndef KVI_VIEW_H
#define KVI_VIEW_H

#include <stdatomic.h>
#include <stddef.h>

#include <kv/kv.h>
#include "net/client.h"
#include "cluster/ring.h"
#include "net/auth.h"
#include "util/log.h"

typedef struct kvi_view_member {
    char *id;
    char *addr;        /* binary protocol */
    char *http;        /* may be NULL */
    kvi_client *client;/* NULL for this process's own node */
} kvi_view_member;

typedef struct kvi_view {
    atomic_uint refs;
    kvi_ring *ring;
    size_t n;
    kvi_view_member *members; /* indexed like the ring's members */
    int self;                 /* this node's index, or -1 in a client */
    unsigned replicas, vnodes;
    /* The members' key and value limits, as the description gave them (a
     * client checks a batch against them before any operation runs, as a
     * node does); 0: not known. */
    uint32_t max_key_size, max_value_size;
    /* Reads that do not start with their own replica start at a rotating
     * position in the preference list, so every replica of a range takes
     * its share of the reads: a member's read load follows its replica
     * share, not its (less even) primary share. */
    atomic_uint read_rotation;
    /* A topology change in progress (docs/design/TOPOLOGY.md): the ring it
     * leads to, and for each of its members the member index: below n the
     * ring's own, n + k the k-th of `extra`, the members in the future ring
     * only (a joining one). NULL/0 with no change. Writes go to the homes
     * of both rings (kvi_coord_pending). */
    kvi_ring *future;
    uint32_t *future_member;
    size_t n_extra;
    kvi_view_member *extra;
    uint64_t epoch;           /* of the topology record it was built from; 0: none */
    /* Members (ring indexes) that take writes but answer no reads: a
     * replacing member, whose store holds only what it streamed so far.
     * NULL: every member answers reads. */
    unsigned char *no_reads;
} kvi_view;

typedef struct kvi_view_config {
    const char *const *ids;
    const char *const *addrs;
    const char *const *https;  /* entries may be NULL; the array too */
    size_t n;
    int self;                  /* index of this node, or -1 */
    unsigned replicas, vnodes;
    const kv_client_options *client_opts; /* for the connections; NULL = defaults */
    uint16_t client_flags;     /* frame flags of every request (policy) */
    /* The cluster secret the connections prove (a node's view of its
     * peers); NULL or empty: none. Borrowed for the build only. */
    const kvi_credentials *creds;
    const kvi_logger *log;     /* borrowed; must outlive the view */
    /* The members' clients run on this shared loop (a node's loop for its
     * peers, or a client handle's, so that all its callbacks run on one
     * thread); NULL: each on a loop of its own. */
    kvi_client_loop *loop;
    /* A topology change in progress: the future ring's member ids (each
     * either among ids, or among extra_ids, the members of the future ring
     * only, with their addresses); NULL/0: none. Copied. */
    const char *const *future_ids;
    size_t n_future;
    const char *const *extra_ids;
    const char *const *extra_addrs;
    const char *const *extra_https; /* entries may be NULL; the array too */
    size_t n_extra;
    uint64_t epoch;
    /* n flags, 1 for a member that answers no reads (kvi_view.no_reads);
     * NULL: none. Copied. */
    const unsigned char *no_reads;
    /* Each member's client records the latency of its answered requests in
     * the histogram of the member's id here (util/metrics.h); NULL: none.
     * Must outlive the view's clients. */
    struct kvi_latency_set *peer_latency;
} kvi_view_config;

/* Builds a view with one reference. KV_OK, KV_EINVAL, KV_ENOMEM. */
int kvi_view_build(kvi_view **out, const kvi_view_config *cfg);

/* Parses a CLUSTER description (JSON, as kvi_membership_describe writes it)
 * into a client view. KV_EUNAVAILABLE when the cluster is not complete;
 * KV_EIO when the JSON is malformed. */
int kvi_view_from_json(kvi_view **out, const void *json, size_t len,
                       const kv_client_options *client_opts, uint16_t client_flags,
                       const kvi_logger *log, kvi_client_loop *loop);

void kvi_view_ref(kvi_view *v);
void kvi_view_unref(kvi_view *v);
/* Drops a reference, then runs then(ctx). When it was the last and
 * `elsewhere` is set (the caller runs on the loop of the view's own
 * connections, which closing them waits on), the view is freed on a
 * thread of its own and then(ctx) runs there, after the free. */
void kvi_view_unref_then(kvi_view *v, int elsewhere, void (*then)(void *ctx), void *ctx);

/* A member by index: below v->n the ring's, then the extra ones. */
static inline const kvi_view_member *kvi_view_member_at(const kvi_view *v, size_t member)
{
    return member < v->n ? &v->members[member] : &v->extra[member - v->n];
}

/* The client of a member (NULL for self). */
static inline kvi_client *kvi_view_client(const kvi_view *v, size_t member)
{
    return kvi_view_member_at(v, member)->client;
}

#endif
