/*
 * cluster/paxos_acceptor.h - a replica's side of per-key Paxos (SERIAL; see
 * docs/design/PAXOS.md): PREPARE, PROPOSE and COMMIT applied to this node's
 * store.
 *
 * Each call runs under the key's stripe lock, so it is ordered with every
 * other write of the key, loads the key's acceptor record from the "paxos"
 * column family, applies format/paxos.h's rules and answers with a
 * kvi_paxos_answer appended to `answer`:
 *   prepare: a promise is written synced before the answer, which carries
 *            the key's replicated state (the read a prepare carries);
 *   propose: an accept is written synced before the answer;
 *   commit:  the state is merged into the data and the record updated in
 *            one atomic write, not synced (the value is chosen: synced in
 *            the accepts of a majority; if a crash loses the commit, the
 *            accept is back and the next round finishes it).
 * A refused prepare or propose writes nothing and answers not granted with
 * the promise to beat.
 *
 * Arguments arrive checked by the caller (key within limits, a decodable
 * state within the value limits). Returns KV_OK (answer appended), or
 * KV_ECORRUPT, KV_EIO, KV_ENOMEM.
 *
 * Threads: safe from any thread.
 */
#ifndef KVI_PAXOS_ACCEPTOR_H
#define KVI_PAXOS_ACCEPTOR_H

#include "format/paxos.h"
#include "storage/embedded.h"

/* Messages applied together (the replication pool's batch): each key's
 * messages in their order, every key locked, and one atomic store write
 * per pass over distinct keys, synced when it holds a promise or an accept:
 * concurrent rounds share a sync (group commit). Each message gets its own
 * status and, with KV_OK, its answer appended to m->answer (the caller
 * frees it). */
enum { KVI_PAXOS_PREPARE = 1, KVI_PAXOS_PROPOSE = 2, KVI_PAXOS_COMMIT = 3 };
typedef struct kvi_paxos_msg {
    int kind;                 /* KVI_PAXOS_* */
    const void *key;
    size_t key_len;
    kvi_ballot ballot;
    const void *proposal;     /* PROPOSE, COMMIT */
    size_t proposal_len;
    kvi_buf answer;           /* out */
    int status;               /* out */
} kvi_paxos_msg;
int kvi_paxos_apply(kvi_embedded *e, kvi_paxos_msg *msgs, size_t n);
/* The same with every write unsynced when `unsynced` is set: the caller
 * must not use an answer until the store's group committer says the log is
 * durable (a promise or an accept answered before it is durable could be
 * forgotten by a crash). Answers refused or read without a write are no
 * different. */
int kvi_paxos_apply_unsynced(kvi_embedded *e, kvi_paxos_msg *msgs, size_t n, int unsynced);

/* One message each (the coordinator's own replica). */
int kvi_paxos_on_prepare(kvi_embedded *e, const void *key, size_t key_len,
                         const kvi_ballot *ballot, kvi_buf *answer);
int kvi_paxos_on_propose(kvi_embedded *e, const void *key, size_t key_len,
                         const kvi_ballot *ballot, const void *state, size_t state_len,
                         kvi_buf *answer);
int kvi_paxos_on_commit(kvi_embedded *e, const void *key, size_t key_len,
                        const kvi_ballot *ballot, const void *state, size_t state_len,
                        kvi_buf *answer);

/* propose and commit take a proposal (kvi_proposal_encode: id + state). */

/* 1 when this node keeps Paxos state for the key (a SERIAL write reached
 * it), 0 when not, or a negative status. */
int kvi_paxos_has_record(kvi_embedded *e, const void *key, size_t key_len);

/* Cleanup without forgetting promises (ScyllaDB 6149/6154 expired Paxos
 * state and let two conflicting CAS commit). Removes, up to 1024 per call,
 * the records that hold no accepted proposal, whose last commit is at
 * least min_age_us old (by its ballot's time) and whose key's data is live
 * and holds that commit (a tombstone's record stays: it keeps the version
 * count going once the tombstone is purged). Before removing any, it raises
 * the node's promise floor (synced, in the meta family) to the highest
 * promise among them; every key is then treated as promised at least the
 * floor, so a removed promise still refuses lower ballots. *removed
 * receives the count. KV_OK, KV_EIO, KV_ECORRUPT, KV_ENOMEM. */
int kvi_paxos_sweep(kvi_embedded *e, uint64_t now_us, uint64_t min_age_us, size_t *removed);

#endif
