/*
 * cluster/topology_paxos.h - agreeing on the next topology record (pure:
 * no I/O, no clock, no store): the acceptor's rules, and the proposer as a
 * message-driven state machine. See docs/design/TOPOLOGY.md, "One change at
 * a time"; the messages are in format/topology_paxos.h.
 *
 * A proposer holds the record it knows to be chosen (the base, epoch e)
 * and the record it wants for epoch e+1. Its driver:
 *
 *   step = kvi_tpxp_start(p, now_us)
 *   loop on step:
 *     KVI_TPXP_SEND:    send p->msg to every acceptor (p->acceptors), and
 *                       feed each answer (kvi_tpxp_answer) or failure
 *                       (kvi_tpxp_failed); drop answers to earlier messages
 *     KVI_TPXP_WAIT:    nothing to do until the next answer
 *     KVI_TPXP_BACKOFF: wait p->backoff_ms, then step = kvi_tpxp_retry(p, now)
 *     KVI_TPXP_DONE:    p->outcome says what happened; p->chosen is the
 *                       record chosen for epoch e+1 (CHOSEN, LOST_TO) or
 *                       the newer record an acceptor holds (MOVED_ON: our
 *                       change may be in it, chosen and built on since;
 *                       read it before proposing again).
 *                       After CHOSEN and LOST_TO, send a COMMIT of
 *                       p->chosen to every member.
 *
 * Thread safety: one proposer belongs to one driver at a time.
 */
#ifndef KVI_TOPOLOGY_PAXOS_H
#define KVI_TOPOLOGY_PAXOS_H

#include <stddef.h>
#include <stdint.h>

#include "format/topology.h"
#include "format/topology_paxos.h"

/* The acceptor's rules, for the node self_id whose committed record is
 * *cur and whose slot state is *acc:
 *   - FETCH is answered GRANTED with *cur;
 *   - a base (or a COMMIT's record) newer than *cur replaces it
 *     (*cur_changed: persist it before answering);
 *   - a message for a slot at or below *cur's epoch, or whose base differs
 *     from *cur at the same epoch, is answered STALE with *cur;
 *   - a node that is no acceptor of the slot answers NOT_ACCEPTOR;
 *   - PREPARE: granted to a ballot above the promise (with what was
 *     accepted for the slot); PROPOSE: accepted at or above it;
 *     otherwise REFUSED with the promise (*acc_changed: persist *acc,
 *     synced, before answering).
 * KV_OK with *out filled, or KV_ENOMEM. */
int kvi_tpx_accept(kvi_topology *cur, kvi_tpx_acceptor *acc, const char *self_id,
                   const kvi_tpx_msg *m, kvi_tpx_answer *out, int *cur_changed,
                   int *acc_changed);

typedef enum kvi_tpxp_step {
    KVI_TPXP_SEND = 1,
    KVI_TPXP_WAIT = 2,
    KVI_TPXP_BACKOFF = 3,
    KVI_TPXP_DONE = 4
} kvi_tpxp_step;

typedef enum kvi_tpxp_outcome {
    KVI_TPXP_CHOSEN = 1,      /* our record was chosen */
    KVI_TPXP_LOST_TO = 2,     /* another record was chosen for the slot */
    KVI_TPXP_MOVED_ON = 3,    /* an acceptor is past the slot (or holds another
                                 record at the base's epoch): p->chosen is its */
    KVI_TPXP_UNAVAILABLE = 4, /* too few acceptors answered for a majority */
    KVI_TPXP_CONTENDED = 5    /* rivals kept refusing for KVI_TPXP_MAX_ATTEMPTS */
} kvi_tpxp_outcome;

#define KVI_TPXP_MAX_ATTEMPTS 32u

typedef struct kvi_tpx_proposer {
    char self[KVI_TOPO_MAX_ID + 1];
    kvi_topology base;         /* epoch e, chosen */
    kvi_topology want;         /* epoch e+1, ours */
    size_t n;                  /* acceptors: base's, in record order */
    char (*acceptors)[KVI_TOPO_MAX_ID + 1];
    unsigned majority;
    uint64_t random;           /* the back-off's generator state */

    kvi_tpx_msg msg;           /* what KVI_TPXP_SEND sends */
    unsigned char *answered;   /* per acceptor, for the current message */
    unsigned granted, refused, failed;
    kvi_ballot highest_seen;
    int has_best;              /* a granted prepare showed an accepted record */
    kvi_ballot best_ballot;
    kvi_topology best;
    unsigned attempts;
    uint64_t backoff_ms;

    int outcome;               /* kvi_tpxp_outcome, at KVI_TPXP_DONE */
    kvi_topology chosen;
    char message[256];         /* what happened, for a person */
} kvi_tpx_proposer;

/* Sets up a proposer of want (epoch base->epoch + 1) on base, as self.
 * Copies both. KV_OK, KV_EINVAL (want not of the next epoch, no acceptor,
 * a bad id), KV_ENOMEM. */
int kvi_tpxp_init(kvi_tpx_proposer *p, const char *self, const kvi_topology *base,
                  const kvi_topology *want, uint64_t random);
void kvi_tpxp_free(kvi_tpx_proposer *p);

kvi_tpxp_step kvi_tpxp_start(kvi_tpx_proposer *p, uint64_t now_us);
/* Acceptor i answered the current message. */
kvi_tpxp_step kvi_tpxp_answer(kvi_tpx_proposer *p, size_t i, const kvi_tpx_answer *a);
/* Acceptor i will not answer it (unreachable, timed out, malformed). */
kvi_tpxp_step kvi_tpxp_failed(kvi_tpx_proposer *p, size_t i);
/* After KVI_TPXP_BACKOFF: a new PREPARE with a higher ballot. */
kvi_tpxp_step kvi_tpxp_retry(kvi_tpx_proposer *p, uint64_t now_us);

#endif
