/*
 * format/topology.h - the topology record: the cluster's shape at one epoch
 * (pure: no I/O, no clock). See docs/design/TOPOLOGY.md.
 *
 * A record holds the epoch (every change raises it by one), the replication
 * factor and vnode count every member must share, the members sorted by id
 * with their addresses and state, and the operation in progress, if any.
 * A member's tokens follow from its id (cluster/ring.h), so two nodes with
 * the same record compute the same rings.
 *
 * Encoding, integers big-endian, "bytes" a u32 length and that many bytes
 * (message.h): u8 format (1), u64 epoch, u16 replicas, u16 vnodes, u8 op
 * kind, bytes op member (empty with no operation), u64 op epoch, u16 count,
 * then per member (sorted by id, ids distinct): bytes id, bytes address,
 * bytes http address (may be empty), u8 state, u8 done.
 *
 * Threads: a record is plain data; its owner guards it.
 */
#ifndef KVI_TOPOLOGY_FORMAT_H
#define KVI_TOPOLOGY_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "format/message.h"

#define KVI_TOPO_MAX_MEMBERS 1024u
#define KVI_TOPO_MAX_ID 64u
#define KVI_TOPO_MAX_ADDR 127u

typedef enum kvi_topo_state {
    KVI_TOPO_NORMAL = 1,    /* owns its ranges and serves them */
    KVI_TOPO_JOINING = 2,   /* takes writes for the ranges it will own; streams them */
    KVI_TOPO_LEAVING = 3,   /* owns its ranges until their new homes have them */
    KVI_TOPO_REPLACING = 4, /* a new process under a dead member's id: takes writes,
                               streams, answers no reads yet */
    KVI_TOPO_LEFT = 5       /* gone for good; kept so that it is not taken back */
} kvi_topo_state;

typedef enum kvi_topo_op {
    KVI_TOPO_OP_NONE = 0,
    KVI_TOPO_OP_JOIN = 1,
    KVI_TOPO_OP_LEAVE = 2,
    KVI_TOPO_OP_REPLACE = 3,
    KVI_TOPO_OP_REMOVE = 4
} kvi_topo_op;

typedef struct kvi_topo_member {
    char id[KVI_TOPO_MAX_ID + 1];
    char addr[KVI_TOPO_MAX_ADDR + 1];
    char http[KVI_TOPO_MAX_ADDR + 1]; /* "" when none */
    uint8_t state;                    /* kvi_topo_state */
    /* It has finished its part of the operation in progress (streamed
     * and checked the ranges it gains); 0 with no operation. */
    uint8_t done;
} kvi_topo_member;

typedef struct kvi_topology {
    uint64_t epoch;
    uint16_t replicas, vnodes;
    uint8_t op;                          /* kvi_topo_op */
    char op_member[KVI_TOPO_MAX_ID + 1]; /* the member it moves; "" with none */
    uint64_t op_epoch;                   /* the epoch it began at; 0 with none */
    size_t n, cap;
    kvi_topo_member *members;            /* sorted by id */
} kvi_topology;

void kvi_topology_init(kvi_topology *t);
void kvi_topology_free(kvi_topology *t);
/* Replaces *dst with a copy of src. KV_OK or KV_ENOMEM (dst unchanged). */
int kvi_topology_copy(kvi_topology *dst, const kvi_topology *src);

/* The member with that id, or NULL. */
const kvi_topo_member *kvi_topology_find(const kvi_topology *t, const char *id);
kvi_topo_member *kvi_topology_find_mut(kvi_topology *t, const char *id);

/* Adds a member in its place by id. KV_OK, KV_EINVAL (an empty or too long
 * id or address, a bad state, an id already there, full), KV_ENOMEM. */
int kvi_topology_add(kvi_topology *t, const char *id, const char *addr, const char *http,
                     kvi_topo_state state);
/* Removes the member with that id (nothing when absent). */
void kvi_topology_remove(kvi_topology *t, const char *id);

/* NULL when the record is consistent, else why not: members sorted and
 * distinct with valid fields, replicas 1..16 and vnodes 1..4096, and the
 * operation agreeing with the states (an operation names a member in the
 * state it puts it in: join/joining, leave/leaving, replace/replacing,
 * remove/leaving; with no operation nobody is joining, leaving or
 * replacing, and nobody is done). */
const char *kvi_topology_invalid(const kvi_topology *t);

/* "normal", "joining", ...; "?" for anything else. Likewise the ops. */
const char *kvi_topo_state_name(int state);
const char *kvi_topo_op_name(int op);

void kvi_topology_encode(kvi_buf *b, const kvi_topology *t);
/* KV_OK, or KV_EINVAL for anything malformed or inconsistent
 * (kvi_topology_invalid). out is initialised either way; free it. */
int kvi_topology_decode(kvi_topology *out, const void *data, size_t len);

/* 1 when the two records are the same (field by field). */
int kvi_topology_equal(const kvi_topology *a, const kvi_topology *b);

#endif
