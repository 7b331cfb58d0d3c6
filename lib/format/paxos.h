/*
 * format/paxos.h - the pure parts of per-key Paxos (SERIAL; see
 * docs/design/PAXOS.md): ballots, an acceptor's record and its rules. No
 * I/O, no clock, no store: the node persists the record (synced before it
 * answers a prepare or a propose) and the coordinator's round, built on
 * these, sends the messages.
 *
 * Ballot encoding: u64 time_us, u8 id length, id, u32 counter.
 * Acceptor record encoding (format 1), integers big-endian:
 *   u8 format, ballot promised,
 *   u8 has_accepted, [ballot accepted, u32 length, the accepted state],
 *   ballot committed, u64 committed version,
 *   u8 count (0..8), count x (u64 version, u64 fingerprint): recent commits,
 *   u64 checksum: xxh3-64 of everything before it, seeded with the key's
 *   ring token (a record moved under another key is refused).
 * Decoding is zero-copy: the accepted state points into the buffer.
 *
 * Thread safety: plain data and pure functions.
 */
#ifndef KVI_PAXOS_H
#define KVI_PAXOS_H

#include <stddef.h>
#include <stdint.h>

#include "format/dvv.h"
#include "format/message.h"

#define KVI_PAXOS_FORMAT 1u

/* A ballot, compared whole: time first, then node id, then counter, so two
 * proposers never hold equal ballots and a proposer's retries increase
 * (ScyllaDB 6139 compared time alone). The zero ballot (time 0, empty id,
 * counter 0) is below every real one. */
typedef struct kvi_ballot {
    uint64_t time_us;
    char node[KVI_DVV_MAX_ID + 1];
    uint32_t counter;
} kvi_ballot;

/* <0, 0 or >0 as a orders before, equal to or after b. */
int kvi_ballot_compare(const kvi_ballot *a, const kvi_ballot *b);
/* The next ballot of proposer node: later than every ballot it has seen
 * (highest_seen, may be the zero ballot) and not before now_us, so its
 * ballots strictly increase even when its clock lags a rival's.
 * KV_EINVAL for an empty or too long node id. */
int kvi_ballot_next(kvi_ballot *out, const char *node, uint64_t now_us,
                    const kvi_ballot *highest_seen);
void kvi_ballot_encode(kvi_buf *b, const kvi_ballot *ballot);
/* 0, or -1 for a malformed ballot (short, id too long or empty with a
 * nonzero time). */
int kvi_ballot_read(kvi_reader *r, kvi_ballot *out);

/* Recent commits an acceptor remembers: which write each SERIAL version
 * went to, so that a proposer whose proposal another round finished can
 * learn that it was applied, even after later writes superseded it. */
#define KVI_PAXOS_RECENT 8u

typedef struct kvi_paxos_recent {
    uint64_t version;
    uint64_t fingerprint; /* the id of the proposal that took it */
} kvi_paxos_recent;

/* What an acceptor keeps per key. */
typedef struct kvi_acceptor {
    kvi_ballot promised;
    int has_accepted;
    kvi_ballot accepted;
    kvi_bytes accepted_state; /* a replicated state (format/state.h) */
    kvi_ballot committed;
    uint64_t committed_version;
    size_t n_recent;          /* oldest first */
    kvi_paxos_recent recent[KVI_PAXOS_RECENT];
} kvi_acceptor;

/* The record of a key never seen by Paxos: everything zero. */
void kvi_acceptor_init(kvi_acceptor *a);

/* The acceptor's rules. Each returns 1 when the acceptor takes the message
 * (and updates *a, which the caller persists and syncs before answering)
 * or 0 when it refuses (the answer carries a->promised, so the proposer
 * knows what to beat); *a is then unchanged.
 *   prepare: a ballot above every promise (strictly: two proposers must
 *            not both hold a promise for one ballot);
 *   propose: a ballot at or above the promise (the proposer's own);
 *            it becomes the accepted proposal, with state (borrowed: it
 *            must outlive *a until persisted);
 *   commit:  a ballot above the last commit; the accepted proposal is
 *            cleared if the commit covers it. A commit is applied even
 *            without a promise: the value was chosen. */
int kvi_acceptor_prepare(kvi_acceptor *a, const kvi_ballot *ballot);
int kvi_acceptor_propose(kvi_acceptor *a, const kvi_ballot *ballot, const void *state,
                         size_t state_len);
int kvi_acceptor_commit(kvi_acceptor *a, const kvi_ballot *ballot, uint64_t version);

/* Remembers that version went to the proposal with this id (after a
 * commit), dropping the oldest past KVI_PAXOS_RECENT; a version already
 * remembered is left as it is. */
void kvi_acceptor_remember(kvi_acceptor *a, uint64_t version, uint64_t fingerprint);

/* An accepted proposal newer than the last commit: a round that finds one
 * must finish it before its own (CASSANDRA-6012). */
int kvi_acceptor_unfinished(const kvi_acceptor *a);

void kvi_acceptor_encode(kvi_buf *b, const kvi_acceptor *a, uint64_t token);
/* KV_OK, or KV_ECORRUPT for anything malformed (format, lengths, trailing
 * bytes, checksum). */
int kvi_acceptor_decode(kvi_acceptor *out, const void *buf, size_t len, uint64_t token);

/* A proposal, as PROPOSE and COMMIT carry it and an acceptor keeps it
 * accepted: u64 id, then the proposed replicated state. The id is the
 * proposing round's own (a hash of its ballot) and stays with the proposal
 * when another round finishes it, so the acceptors' recent commits tell
 * exactly whose write took a version, even when two proposers built the
 * same state (two increments of one counter from the same read). */
void kvi_proposal_encode(kvi_buf *b, uint64_t id, const void *state, size_t state_len);
/* 0 with the id and the state (pointing into p), or -1 when too short. */
int kvi_proposal_split(const void *p, size_t len, uint64_t *id, const void **state,
                       size_t *state_len);
/* The id of the proposals of a round holding this ballot. */
uint64_t kvi_proposal_id(const kvi_ballot *ballot);

/* An acceptor's answer to a PAXOS_PREPARE, PROPOSE or COMMIT: whether it
 * took the message, and what it holds (the proposer learns the ballot to
 * beat, an unfinished proposal to finish, and, to a prepare, the key's
 * replicated state: the read that a prepare carries).
 * Encoding: u8 flags (1 granted, 2 has accepted, 4 has data), ballot
 * promised, [ballot accepted, bytes accepted state], ballot committed,
 * u64 committed version, u8 count, count x (u64 version, u64 fingerprint),
 * [bytes data state]. Zero-copy decoding. */
typedef struct kvi_paxos_answer {
    int granted;
    kvi_ballot promised;
    int has_accepted;
    kvi_ballot accepted;
    kvi_bytes accepted_state;
    kvi_ballot committed;
    uint64_t committed_version;
    size_t n_recent;
    kvi_paxos_recent recent[KVI_PAXOS_RECENT];
    int has_data;
    kvi_bytes data_state; /* record format 2 (format/state.h) */
} kvi_paxos_answer;

/* The answer of an acceptor holding a (data: NULL when it holds no state
 * of the key, or the message is not a prepare). */
void kvi_paxos_answer_encode(kvi_buf *b, int granted, const kvi_acceptor *a,
                             const kvi_bytes *data);
/* 0, or -1 for a malformed answer. */
int kvi_paxos_answer_decode(kvi_paxos_answer *out, const void *buf, size_t len);

#endif
