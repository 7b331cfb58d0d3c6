/*
 * cluster/topology.h - what a topology record means (pure: no I/O, no
 * clock): its two rings, the changes that lead from one epoch to the next,
 * and the ranges a member gains under the operation in progress, with a
 * source to stream each from. See docs/design/TOPOLOGY.md.
 *
 * The rings:
 *   current: members normal, leaving and replacing (reads and the first W
 *            of every write);
 *   future:  what current becomes when the operation finishes: plus the
 *            joining member, minus the leaving (or removed) one.
 * With no operation in progress they are the same.
 *
 * Every change writes the record of the next epoch into *next (which the
 * caller owns: initialised, freed by it) or refuses with a status and a
 * message in err; *next is left empty then. One operation at a time: while
 * one is in progress, only marking a member done, finishing and aborting
 * are taken.
 *
 * Threads: plain functions of their arguments.
 */
#ifndef KVI_TOPOLOGY_H
#define KVI_TOPOLOGY_H

#include <stddef.h>
#include <stdint.h>

#include "format/topology.h"
#include "cluster/ae_plan.h" /* kvi_token_range */
#include "cluster/ring.h"

typedef enum kvi_topo_ring {
    KVI_TOPO_CURRENT = 0,
    KVI_TOPO_FUTURE = 1
} kvi_topo_ring;

/* 1 when member m has a place in that ring of t. */
int kvi_topology_in_ring(const kvi_topology *t, const kvi_topo_member *m, kvi_topo_ring which);
/* 1 when m answers reads (normal or leaving). */
int kvi_topology_readable(const kvi_topo_member *m);
/* 1 when m is an acceptor for the next epoch's record (in the current ring
 * and not replacing: a replacing process has an empty store, so it has
 * forgotten any promise its member made). */
int kvi_topology_acceptor(const kvi_topology *t, const kvi_topo_member *m);
/* The ring of those members, N and vnodes as the record says. KV_OK,
 * KV_EINVAL (no member in it), KV_ENOMEM. */
int kvi_topology_build_ring(kvi_ring **out, const kvi_topology *t, kvi_topo_ring which);

/* The first record of a cluster (epoch 1): the members given, all normal.
 * KV_OK, KV_EINVAL (a bad or repeated id or address), KV_ENOMEM. */
int kvi_topology_first(kvi_topology *next, unsigned replicas, unsigned vnodes,
                       const char *const *ids, const char *const *addrs,
                       const char *const *https, size_t n);

/* Begins an operation on member id:
 *   JOIN    id is new (or left earlier): added as joining at addr/http;
 *   LEAVE   id is normal: leaving (it is alive and streams its ranges out);
 *   REMOVE  id is normal and dead (the caller checked): leaving, its
 *           ranges streamed from the surviving replicas;
 *   REPLACE id is normal and dead (the caller checked): replacing, at the
 *           new process's addr/http.
 * Refused with KV_EBUSY while another operation is in progress, with
 * KV_EINVAL for an unknown member or one in the wrong state, or when the
 * future ring would hold fewer members than N (leave, remove). */
int kvi_topology_begin(kvi_topology *next, const kvi_topology *cur, kvi_topo_op op,
                       const char *id, const char *addr, const char *http, char *err,
                       size_t err_size);
/* Member id has streamed and checked what it gains. KV_EINVAL when there
 * is no operation or id gains nothing under it; done already: KV_OK with
 * *next an unchanged copy at the same epoch (*changed 0). */
int kvi_topology_mark_done(kvi_topology *next, int *changed, const kvi_topology *cur,
                           const char *id, char *err, size_t err_size);
/* Ends the operation once every gainer is done: joining and replacing
 * members become normal, a leaving one left. KV_EBUSY when a gainer is not
 * done yet, KV_EINVAL with no operation. */
int kvi_topology_finish(kvi_topology *next, const kvi_topology *cur, char *err,
                        size_t err_size);
/* Undoes the operation: a joining member is dropped, a leaving one is
 * normal again, a replacing one is normal at its new address (holding
 * what it streamed so far: repair it). KV_EINVAL with no operation. */
int kvi_topology_abort(kvi_topology *next, const kvi_topology *cur, char *err,
                       size_t err_size);

/* The members (indexes into t->members) that gain ranges under t's
 * operation: a future home of a range they are no current home of, or the
 * replacing member. *out malloc'd (NULL when none). KV_OK, KV_ENOMEM. */
int kvi_topology_gainers(const kvi_topology *t, size_t **out, size_t *n);

/* One range a member gains, and where to stream it from. */
typedef struct kvi_stream_range {
    uint64_t first, last;                /* tokens, both included */
    char source[KVI_TOPO_MAX_ID + 1];    /* "" when no source is up */
    /* The source is not the replica the range moves away from (it is
     * down, or removed): a write it missed may be on another replica
     * only, so the range must be checked against them (repair). */
    int substitute;
} kvi_stream_range;

/* Whether member id is down, as the caller sees it now. */
typedef int (*kvi_topo_down_fn)(void *ctx, const char *id);

/* The ranges member id gains under t's operation, in token order, adjacent
 * ones with the same source merged. Each is streamed from the current home
 * the future ring drops (the displaced replica) while it is up and not the
 * removed member; else from another current home that is up and readable
 * (substitute). *out malloc'd (NULL when none). KV_OK, KV_EINVAL (id not a
 * member), KV_ENOMEM. */
int kvi_topology_stream_plan(const kvi_topology *t, const char *id, kvi_topo_down_fn is_down,
                             void *ctx, kvi_stream_range **out, size_t *n);

/* The ranges of the token space of which member id is no home in t's
 * ring, in token order, adjacent ones merged: what a cleanup drops. Only
 * with no change in progress (KV_EBUSY: a stream or an abort may still
 * need that data). *out malloc'd (NULL when none). KV_OK, KV_EINVAL (id
 * is not in the ring), KV_ENOMEM. */
int kvi_topology_foreign_ranges(const kvi_topology *t, const char *id, kvi_token_range **out,
                                size_t *n);

#endif
