/*
 * format/topology_paxos.h - agreeing on the next topology record: the
 * acceptor's state and the messages (pure: no I/O, no clock, no store; the
 * rules are in cluster/topology_paxos.h). See docs/design/TOPOLOGY.md,
 * "One change at a time".
 *
 * One single-decree Paxos instance per epoch: the slot of epoch e+1 chooses
 * the record that follows record e. Its acceptors are the members record e
 * names (kvi_topology_acceptor). Every message carries the proposer's
 * record of epoch e (the base, which it knows to be chosen), so an acceptor
 * that missed it learns it first; an acceptor already past the slot
 * answers STALE with its newer record. A COMMIT carries a chosen record:
 * any node takes it when it is newer than its own.
 *
 * Encodings (integers big-endian, "record" a u32 length then
 * kvi_topology_encode's bytes, length 0 for none):
 *   acceptor state: u8 format (1), u64 slot, ballot promised,
 *                   u8 has_accepted, [ballot accepted, record accepted]
 *   message:        u8 kind, ballot, record base, record value
 *   answer:         u8 verdict, ballot promised, u8 has_accepted,
 *                   [ballot accepted, record accepted], record current
 *
 * Threads: plain data and pure functions.
 */
#ifndef KVI_TOPOLOGY_PAXOS_FORMAT_H
#define KVI_TOPOLOGY_PAXOS_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "format/message.h"
#include "format/paxos.h"
#include "format/topology.h"

/* What a node keeps for the slot after its current epoch (synced in its
 * meta family before it answers). */
typedef struct kvi_tpx_acceptor {
    uint64_t slot;           /* the epoch it is about; 0: nothing kept */
    kvi_ballot promised;
    int has_accepted;
    kvi_ballot accepted;
    kvi_topology value;      /* the record accepted, of epoch slot */
} kvi_tpx_acceptor;

void kvi_tpx_acceptor_init(kvi_tpx_acceptor *a);
void kvi_tpx_acceptor_free(kvi_tpx_acceptor *a);
void kvi_tpx_acceptor_encode(kvi_buf *b, const kvi_tpx_acceptor *a);
/* KV_OK, KV_EINVAL (malformed), KV_ENOMEM; *out initialised either way. */
int kvi_tpx_acceptor_decode(kvi_tpx_acceptor *out, const void *data, size_t len);

typedef enum kvi_tpx_kind {
    KVI_TPX_PREPARE = 1,
    KVI_TPX_PROPOSE = 2,
    KVI_TPX_COMMIT = 3,
    /* No Paxos: asks for the node's record (a node that saw a newer epoch
     * in gossip fetches it so). Answered GRANTED with current. */
    KVI_TPX_FETCH = 4
} kvi_tpx_kind;

typedef struct kvi_tpx_msg {
    uint8_t kind;
    kvi_ballot ballot;       /* PREPARE, PROPOSE */
    kvi_topology base;       /* PREPARE, PROPOSE: epoch e; COMMIT: the chosen record */
    kvi_topology value;      /* PROPOSE: the record of epoch e+1 proposed */
} kvi_tpx_msg;

void kvi_tpx_msg_init(kvi_tpx_msg *m);
void kvi_tpx_msg_free(kvi_tpx_msg *m);
void kvi_tpx_msg_encode(kvi_buf *b, const kvi_tpx_msg *m);
/* KV_OK, or KV_EINVAL for anything malformed: an unknown kind, records that
 * do not decode, a PREPARE or PROPOSE without a base, a PROPOSE whose value
 * is not of the epoch after its base, a COMMIT without its record. */
int kvi_tpx_msg_decode(kvi_tpx_msg *out, const void *data, size_t len);

typedef enum kvi_tpx_verdict {
    KVI_TPX_GRANTED = 1,      /* promised, accepted, or taken */
    KVI_TPX_REFUSED = 2,      /* a higher promise: promised is the one to beat */
    KVI_TPX_STALE = 3,        /* past the slot, or a different record at the base's epoch:
                                 current is the acceptor's record */
    KVI_TPX_NOT_ACCEPTOR = 4  /* not an acceptor of the slot (it counts as no answer) */
} kvi_tpx_verdict;

typedef struct kvi_tpx_answer {
    uint8_t verdict;
    kvi_ballot promised;
    int has_accepted;        /* PREPARE granted: what it accepted for the slot */
    kvi_ballot accepted;
    kvi_topology accepted_value;
    kvi_topology current;    /* STALE, FETCH: its record; else empty */
} kvi_tpx_answer;

void kvi_tpx_answer_init(kvi_tpx_answer *a);
void kvi_tpx_answer_free(kvi_tpx_answer *a);
void kvi_tpx_answer_encode(kvi_buf *b, const kvi_tpx_answer *a);
int kvi_tpx_answer_decode(kvi_tpx_answer *out, const void *data, size_t len);

#endif
