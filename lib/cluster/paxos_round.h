/*
 * cluster/paxos_round.h - the proposer's side of one SERIAL request, as a
 * message-driven state machine (docs/design/PAXOS.md). Pure: no I/O, no
 * clock, no threads. A driver (cluster/serial.c today, the event loop of
 * the event-driven core later) sends the messages it asks for, feeds it
 * the answers, the failures and the deadline, and sleeps the back-off.
 *
 *   step = kvi_px_start(r, now_us)
 *   loop on step:
 *     KVI_PX_SEND:    send r->msg (phase, ballot, state) to every home,
 *                     then feed each answer (kvi_px_answer) or failure
 *                     (kvi_px_failed) as it comes
 *     KVI_PX_WAIT:    nothing to do until the next answer
 *     KVI_PX_BACKOFF: wait r->backoff_ms, then step = kvi_px_retry(r, now)
 *     KVI_PX_DONE:    r->rc is the outcome
 *   the request's deadline passes: kvi_px_deadline(r), then DONE.
 *
 * Answers from an earlier message (a stale phase) must not be fed: the
 * driver drops the calls of a message once it sends the next.
 *
 * Thread safety: one round belongs to one driver at a time.
 */
#ifndef KVI_PAXOS_ROUND_H
#define KVI_PAXOS_ROUND_H

#include <stddef.h>
#include <stdint.h>

#include "format/paxos.h"
#include "format/state.h"

#define KVI_PX_MAX_HOMES 16u
/* Proposals one request sends at most (a round gives up past it). */
#define KVI_PX_OWN_MAX 16u

typedef enum kvi_serial_op {
    KVI_SERIAL_GET = 1,
    KVI_SERIAL_PUT = 2,
    KVI_SERIAL_DELETE = 3,
    KVI_SERIAL_CAS = 4
} kvi_serial_op;

typedef struct kvi_serial_request {
    kvi_serial_op op;
    const void *key;           /* borrowed for the round's life */
    size_t key_len;
    const void *value;         /* PUT, CAS; borrowed */
    size_t value_len;
    uint64_t ttl_s;            /* 0 = none */
    uint64_t expected_version; /* CAS */
    const char *node;          /* the proposer's node id: ballots and dots */
    uint64_t now_ms;           /* write time and "now" for expiry */
    int all_siblings;          /* GET: every live sibling, not the latest only */
} kvi_serial_request;

typedef enum kvi_px_phase {
    KVI_PX_PREPARE = 1,
    KVI_PX_PROPOSE = 2,
    KVI_PX_COMMIT = 3
} kvi_px_phase;

typedef enum kvi_px_step {
    KVI_PX_SEND = 1,
    KVI_PX_WAIT = 2,
    KVI_PX_BACKOFF = 3,
    KVI_PX_DONE = 4
} kvi_px_step;

typedef struct kvi_px_round {
    kvi_serial_request req;
    uint64_t token;
    size_t n_homes;
    unsigned majority;
    uint64_t random;           /* the back-off's generator state */

    /* The message of the current phase (what KVI_PX_SEND sends). */
    struct {
        kvi_px_phase phase;
        kvi_ballot ballot;
        kvi_buf state;         /* PROPOSE, COMMIT: an encoded state */
    } msg;
    unsigned granted, refused, failed;
    kvi_ballot highest_seen;   /* the highest promise seen, to beat */

    /* What the prepare answers showed. */
    int has_unfinished;
    kvi_ballot unfinished_ballot;
    kvi_buf unfinished_state;
    kvi_ballot max_committed;
    uint64_t max_committed_version;
    kvi_state merged;          /* the granted answers' data states, merged */
    kvi_buf holders[KVI_PX_MAX_HOMES];
    size_t n_holders;

    /* finishing: the proposal on its way is another round's unfinished one
     * (or our own found again); own: it is this request's. */
    int finishing;
    /* Every proposal of this request that went out: any of them may yet
     * be chosen (another round can finish it), so all are tracked. */
    int own_sent;              /* at least one went out */
    size_t n_own;
    struct kvi_px_own {
        uint64_t id;           /* kvi_proposal_id of its ballot */
        uint64_t version;      /* the version it would take */
        kvi_dot dot;           /* the dot of its write */
        int applied, lost;     /* what this prepare's answers said of it */
    } own[KVI_PX_OWN_MAX];

    int reading;               /* a GET's first ask: no promise (zero ballot) */
    unsigned attempts;
    uint64_t backoff_ms;

    /* The outcome (KVI_PX_DONE). */
    int rc;
    char message[192];
    uint64_t version;          /* the new version; the current one with a conflict */
    int chosen;                /* one of our proposals was chosen: applied */
    kvi_state result;          /* GET: the state read (values point into result_holder) */
    kvi_buf result_holder;
    int has_result;
} kvi_px_round;

/* Sets up a round for req among n_homes home replicas (1..16). random
 * seeds the back-off. KV_OK or KV_EINVAL. */
int kvi_px_init(kvi_px_round *r, const kvi_serial_request *req, size_t n_homes,
                uint64_t random);
void kvi_px_free(kvi_px_round *r);

/* The first PREPARE. */
kvi_px_step kvi_px_start(kvi_px_round *r, uint64_t now_us);
/* Home i answered the current message with an encoded kvi_paxos_answer. */
kvi_px_step kvi_px_answer(kvi_px_round *r, size_t home, const void *answer, size_t len);
/* Home i will not answer it (unreachable, refused the key, timed out). */
kvi_px_step kvi_px_failed(kvi_px_round *r, size_t home);
/* After KVI_PX_BACKOFF: a new PREPARE with a higher ballot. */
kvi_px_step kvi_px_retry(kvi_px_round *r, uint64_t now_us);
/* The request's deadline passed: KVI_PX_DONE with ETIMEDOUT (nothing of
 * ours can have been chosen) or EUNKNOWN_OUTCOME (it may have been). */
kvi_px_step kvi_px_deadline(kvi_px_round *r);

/* Rounds given up on for contention after this many prepares. */
#define KVI_PX_MAX_ATTEMPTS 64u

#endif
