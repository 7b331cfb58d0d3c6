/*
 * format/dvv.h - dotted version vectors (pure: no I/O, no threads).
 *
 * Every stored value (sibling) carries a dot: the node that minted it and
 * that node's counter at the time. A key's causal context is a version
 * vector: for each node, the highest counter of that node's writes that the
 * holder has seen. A write carrying a context supersedes exactly the
 * siblings whose dots the context covers; siblings it did not see survive
 * as concurrent values. This is why dots beat plain vector clocks kept per
 * server: two clients writing through the same coordinator with stale
 * contexts produce two siblings instead of one silently overwriting the
 * other (Preguica et al., "Dotted Version Vectors"; Riak 2.0).
 *
 *   write(state, ctx, node, value):
 *     drop the siblings covered by ctx;
 *     clock = max(clock, ctx); clock[node] += 1;
 *     add (dot = (node, clock[node]), value)
 *   merge(a, b), for replicas and read repair:
 *     keep a sibling of either side unless the other side's clock covers
 *     its dot without holding it; clock = max(a.clock, b.clock)
 *
 * Nodes are named by their ids. Encodings (for records and for the opaque
 * context handed to clients) are versioned and fuzzed.
 */
#ifndef KVI_DVV_H
#define KVI_DVV_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "format/message.h"

#define KVI_DVV_MAX_NODES 64u   /* entries in one version vector */
#define KVI_DVV_MAX_ID 64u      /* bytes of a node id */

typedef struct kvi_dot {
    char node[KVI_DVV_MAX_ID + 1];
    uint64_t counter;
} kvi_dot;

typedef struct kvi_vv {
    size_t n;
    kvi_dot entries[KVI_DVV_MAX_NODES]; /* sorted by node id, counters > 0 */
} kvi_vv;

typedef enum kvi_vv_order {
    KVI_VV_EQUAL = 0,
    KVI_VV_BEFORE = 1,     /* a happened before b (b descends from a) */
    KVI_VV_AFTER = 2,      /* a descends from b */
    KVI_VV_CONCURRENT = 3
} kvi_vv_order;

void kvi_vv_init(kvi_vv *vv);
/* The counter of a node (0 when absent). */
uint64_t kvi_vv_get(const kvi_vv *vv, const char *node);
/* Raises node's counter to at least counter. Returns 0, or -1 when the
 * vector is full or the id too long. */
int kvi_vv_raise(kvi_vv *vv, const char *node, uint64_t counter);
/* into = max(into, other), entry by entry. 0, or -1 when full. */
int kvi_vv_merge(kvi_vv *into, const kvi_vv *other);
/* True when vv has seen the write named by dot. */
int kvi_vv_covers(const kvi_vv *vv, const kvi_dot *dot);
kvi_vv_order kvi_vv_compare(const kvi_vv *a, const kvi_vv *b);

/* ------------------------------------------------ siblings and writes */

/* The dot of a new write coordinated by node with context ctx: sets
 * clock = max(clock, ctx), then clock[node] += 1, and writes that dot to
 * out. Returns 0, or -1 when the clock is full or the id too long. */
int kvi_dvv_new_dot(kvi_vv *clock, const kvi_vv *ctx, const char *node, kvi_dot *out);

/* A write whose context is ctx supersedes the sibling with this dot. */
static inline int kvi_dvv_superseded(const kvi_vv *ctx, const kvi_dot *dot)
{
    return kvi_vv_covers(ctx, dot);
}

/* Merging two replicas' states: a sibling of one side survives unless the
 * other side's clock covers its dot while the other side no longer holds
 * it (then the other side saw it and superseded it). */
int kvi_dvv_survives_merge(const kvi_dot *dot, const kvi_vv *other_clock,
                           const kvi_dot *other_dots, size_t other_n);

static inline int kvi_dot_equal(const kvi_dot *a, const kvi_dot *b)
{
    return a->counter == b->counter && strcmp(a->node, b->node) == 0;
}

/* Encoding: u8 format (1), u8 count, count x (u8 id length, id, u64 counter),
 * entries sorted by id. decode returns 0, or -1 for malformed input (short,
 * trailing bytes, unsorted or duplicate ids, zero counters, too many). */
void kvi_vv_encode(kvi_buf *b, const kvi_vv *vv);
int kvi_vv_decode(kvi_vv *vv, kvi_reader *r);

#endif
