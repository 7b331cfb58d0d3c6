/* cluster/paxos_round.c - one SERIAL request's Paxos rounds (see paxos_round.h). */
#include "cluster/paxos_round.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <kv/common.h>
#include "format/record.h"

static kvi_px_step done(kvi_px_round *r, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static kvi_px_step done(kvi_px_round *r, int rc, const char *fmt, ...)
{
    r->rc = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
    return KVI_PX_DONE;
}

int kvi_px_init(kvi_px_round *r, const kvi_serial_request *req, size_t n_homes,
                uint64_t random)
{
    memset(r, 0, sizeof *r);
    if (n_homes == 0 || n_homes > KVI_PX_MAX_HOMES || !req->node || !req->node[0])
        return KV_EINVAL;
    r->req = *req;
    r->token = kvi_key_token(req->key, req->key_len);
    r->n_homes = n_homes;
    r->majority = (unsigned)(n_homes / 2 + 1);
    r->random = random ? random : 0x9e3779b97f4a7c15ull;
    kvi_state_init(&r->merged);
    return KV_OK;
}

void kvi_px_free(kvi_px_round *r)
{
    kvi_buf_free(&r->msg.state);
    kvi_buf_free(&r->unfinished_state);
    for (size_t i = 0; i < KVI_PX_MAX_HOMES; i++)
        kvi_buf_free(&r->holders[i]);
    kvi_buf_free(&r->result_holder);
}

static void note_promise(kvi_px_round *r, const kvi_ballot *promised)
{
    if (kvi_ballot_compare(promised, &r->highest_seen) > 0)
        r->highest_seen = *promised;
}

static kvi_px_step send(kvi_px_round *r, kvi_px_phase phase)
{
    r->msg.phase = phase;
    r->granted = r->refused = r->failed = 0;
    return KVI_PX_SEND;
}

static kvi_px_step prepare(kvi_px_round *r, uint64_t now_us)
{
    if (++r->attempts > KVI_PX_MAX_ATTEMPTS) {
        if (r->own_sent)
            return done(r, KV_EUNKNOWN_OUTCOME, "gave up after %u Paxos rounds lost to "
                        "contention; the write may have been applied", KVI_PX_MAX_ATTEMPTS);
        return done(r, KV_ETIMEDOUT, "gave up after %u Paxos rounds lost to contention; "
                    "not applied", KVI_PX_MAX_ATTEMPTS);
    }
    if (kvi_ballot_next(&r->msg.ballot, r->req.node, now_us, &r->highest_seen) != KV_OK)
        return done(r, KV_EINVAL, "cannot make a ballot for node \"%s\"", r->req.node);
    note_promise(r, &r->msg.ballot);
    r->has_unfinished = 0;
    memset(&r->unfinished_ballot, 0, sizeof r->unfinished_ballot);
    memset(&r->max_committed, 0, sizeof r->max_committed);
    r->max_committed_version = 0;
    kvi_state_init(&r->merged);
    r->n_holders = 0;
    r->finishing = 0;
    for (size_t i = 0; i < r->n_own; i++)
        r->own[i].applied = r->own[i].lost = 0;
    return send(r, KVI_PX_PREPARE);
}

kvi_px_step kvi_px_start(kvi_px_round *r, uint64_t now_us)
{
    if (r->req.op == KVI_SERIAL_GET) {
        /* A read first asks without a promise (the zero ballot, which no
         * acceptor takes, so none writes or syncs anything). When a
         * majority shows nothing unfinished, their merged data holds every
         * chosen value: a chosen value was accepted by a majority, which
         * this one meets, and is either committed into the data or shows
         * as unfinished. Otherwise a full round finishes it first. */
        r->reading = 1;
        r->attempts++;
        memset(&r->msg.ballot, 0, sizeof r->msg.ballot);
        r->has_unfinished = 0;
        kvi_state_init(&r->merged);
        r->n_holders = 0;
        return send(r, KVI_PX_PREPARE);
    }
    return prepare(r, now_us);
}

kvi_px_step kvi_px_retry(kvi_px_round *r, uint64_t now_us)
{
    return prepare(r, now_us);
}

/* Randomized exponential back-off: up to 2^attempts ms, at most 64 ms, so
 * rivals stop colliding without a long stall. xorshift64. */
static kvi_px_step backoff(kvi_px_round *r)
{
    uint64_t x = r->random;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->random = x;
    unsigned shift = r->attempts < 6 ? r->attempts : 6;
    r->backoff_ms = x % ((1ull << shift) + 1);
    return KVI_PX_BACKOFF;
}

/* Too few homes left to reach a majority for the current message? */
static kvi_px_step no_majority(kvi_px_round *r)
{
    if (r->granted + (r->n_homes - r->granted - r->refused - r->failed) >= r->majority)
        return KVI_PX_WAIT;
    if (r->chosen) /* the commit fell short, but the value is chosen: the
                    * next round that meets it finishes it */
        return done(r, KV_OK, "applied; its commit reached fewer than a majority");
    if (r->refused > 0 || r->msg.phase != KVI_PX_PREPARE)
        return backoff(r); /* lost to a rival, or a phase after a promise: try again */
    if (r->own_sent)
        return done(r, KV_EUNKNOWN_OUTCOME, "%u of %zu home replicas answered, %u required; "
                    "the write may have been applied", r->granted, r->n_homes, r->majority);
    return done(r, KV_EUNAVAILABLE, "%u of %zu home replicas answered, %u required (SERIAL "
                "uses home replicas only); not applied", r->granted, r->n_homes, r->majority);
}

kvi_px_step kvi_px_failed(kvi_px_round *r, size_t home)
{
    (void)home;
    r->failed++;
    return no_majority(r);
}

kvi_px_step kvi_px_deadline(kvi_px_round *r)
{
    if (r->chosen)
        return done(r, KV_OK, "applied; its commit timed out");
    if (r->own_sent)
        return done(r, KV_EUNKNOWN_OUTCOME, "timed out after the proposal went out; the write "
                    "may have been applied (a SERIAL read settles it)");
    return done(r, KV_ETIMEDOUT, "timed out before a proposal went out (%u Paxos rounds); "
                "not applied", r->attempts);
}

/* Copies a byte string into buf; 0, or -1 when out of memory. */
static int keep(kvi_buf *buf, const kvi_bytes *b)
{
    kvi_buf_reset(buf);
    kvi_buf_raw(buf, b->data, b->len);
    return buf->failed ? -1 : 0;
}

static uint64_t expiry_after(uint64_t now_ms, uint64_t ttl_s)
{
    if (ttl_s > (UINT64_MAX - now_ms) / 1000u)
        return UINT64_MAX;
    return now_ms + ttl_s * 1000u;
}

/* The request itself, against the state a majority promised on. */
static kvi_px_step evaluate(kvi_px_round *r)
{
    const kvi_serial_request *q = &r->req;
    if (q->op == KVI_SERIAL_GET && r->merged.n == 0) {
        kvi_state_init(&r->result); /* nothing held anywhere */
        r->has_result = 1;
        r->version = 0;
        return done(r, KV_OK, "read");
    }
    if (q->op == KVI_SERIAL_GET) {
        kvi_buf_reset(&r->result_holder);
        kvi_state_encode(&r->result_holder, &r->merged, r->token);
        if (r->result_holder.failed ||
            kvi_state_decode(&r->result, r->result_holder.data, r->result_holder.len,
                             r->token) != KV_OK)
            return done(r, KV_ENOMEM, "out of memory keeping a SERIAL read");
        r->has_result = 1;
        r->version = kvi_state_version(&r->merged);
        return done(r, KV_OK, "read");
    }
    uint64_t live = kvi_state_live_version(&r->merged, q->now_ms);
    if (q->op == KVI_SERIAL_CAS && live != q->expected_version) {
        r->version = live;
        return done(r, KV_ECONFLICT, "the current version is %llu, not %llu",
                    (unsigned long long)live, (unsigned long long)q->expected_version);
    }
    /* Exactly one past the latest version, tombstones and purged ones
     * included (the acceptors remember the last committed version). */
    uint64_t base = kvi_state_version(&r->merged);
    if (r->max_committed_version > base)
        base = r->max_committed_version;
    int del = q->op == KVI_SERIAL_DELETE;
    kvi_sibling sib = {
        .tombstone = del,
        .expiry_ms = !del && q->ttl_s ? expiry_after(q->now_ms, q->ttl_s) : 0,
        .write_ms = q->now_ms,
        .value = del ? NULL : q->value,
        .value_len = del ? 0 : q->value_len,
    };
    kvi_state next = r->merged;
    /* It supersedes everything the majority holds: one sibling after. */
    int rc = kvi_state_write(&next, &r->merged.clock, q->node, &sib);
    if (rc != KV_OK)
        return done(r, rc, "cannot apply the write to the key's state");
    next.sibs[next.n - 1].version = base + 1;
    if (r->n_own == KVI_PX_OWN_MAX)
        return done(r, r->own_sent ? KV_EUNKNOWN_OUTCOME : KV_ETIMEDOUT, "gave up after %u "
                    "proposals lost to contention%s", KVI_PX_OWN_MAX,
                    r->own_sent ? "; the write may have been applied" : "");
    struct kvi_px_own *own = &r->own[r->n_own];
    own->id = kvi_proposal_id(&r->msg.ballot);
    own->version = base + 1;
    own->dot = next.sibs[next.n - 1].dot;
    own->applied = own->lost = 0;
    kvi_buf encoded = {0};
    kvi_state_encode(&encoded, &next, r->token);
    kvi_buf_reset(&r->msg.state);
    kvi_proposal_encode(&r->msg.state, own->id, encoded.data, encoded.len);
    int failed = encoded.failed;
    kvi_buf_free(&encoded);
    if (failed || r->msg.state.failed)
        return done(r, KV_ENOMEM, "out of memory encoding a proposal");
    r->n_own++;
    r->own_sent = 1;
    r->finishing = 0;
    return send(r, KVI_PX_PROPOSE);
}

/* A majority promised: finish what is unfinished, settle our own earlier
 * proposal, or run the request. */
static kvi_px_step after_prepare(kvi_px_round *r)
{
    if (r->has_unfinished && kvi_ballot_compare(&r->unfinished_ballot, &r->max_committed) > 0) {
        /* CASSANDRA-6012: a value some acceptors took may have been chosen;
         * re-propose it under our ballot before anything else. */
        kvi_buf_reset(&r->msg.state);
        kvi_buf_raw(&r->msg.state, r->unfinished_state.data, r->unfinished_state.len);
        if (r->msg.state.failed)
            return done(r, KV_ENOMEM, "out of memory finishing a proposal");
        r->finishing = 1;
        return send(r, KVI_PX_PROPOSE);
    }
    if (r->own_sent) {
        /* Proposals of ours went out in earlier rounds and none is
         * unfinished in this majority: each was committed, or was not
         * chosen and cannot be by a ballot of ours any more. The
         * acceptors' recent commits tell which by the proposal's id (two
         * proposers may build identical states); where they no longer
         * remember its version, the clock tells whether anything took its
         * dot: if nothing did, it was not chosen. */
        for (size_t i = 0; i < r->n_own; i++)
            if (r->own[i].applied) {
                r->version = r->own[i].version;
                return done(r, KV_OK, "applied");
            }
        for (size_t i = 0; i < r->n_own; i++)
            if (!r->own[i].lost && kvi_dvv_superseded(&r->merged.clock, &r->own[i].dot))
                return done(r, KV_EUNKNOWN_OUTCOME, "the proposal was superseded before it "
                            "was confirmed; the write may have been applied");
        /* Not chosen: the request runs afresh. Should it now fail (a CAS
         * against another version), no earlier proposal of ours can be
         * finished later: whatever changed the version was chosen at a
         * higher ballot, and every later round sees it. */
    }
    return evaluate(r);
}

static kvi_px_step take_prepare(kvi_px_round *r, const kvi_paxos_answer *a)
{
    if (!a->granted && !r->reading) {
        r->refused++;
        return no_majority(r);
    }
    if (a->has_accepted && kvi_ballot_compare(&a->accepted, &r->unfinished_ballot) > 0) {
        if (keep(&r->unfinished_state, &a->accepted_state) != 0)
            return done(r, KV_ENOMEM, "out of memory reading a prepare's answer");
        r->unfinished_ballot = a->accepted;
        r->has_unfinished = 1;
    }
    if (kvi_ballot_compare(&a->committed, &r->max_committed) > 0)
        r->max_committed = a->committed;
    if (a->committed_version > r->max_committed_version)
        r->max_committed_version = a->committed_version;
    /* Which write each recent version went to: settles our own earlier
     * proposal even when a later write superseded it. */
    for (size_t i = 0; i < a->n_recent; i++)
        for (size_t k = 0; k < r->n_own; k++) {
            if (a->recent[i].version != r->own[k].version)
                continue;
            if (a->recent[i].fingerprint == r->own[k].id)
                r->own[k].applied = 1;
            else
                r->own[k].lost = 1;
        }
    if (a->has_data) {
        kvi_buf *h = &r->holders[r->n_holders];
        kvi_state st;
        if (keep(h, &a->data_state) != 0)
            return done(r, KV_ENOMEM, "out of memory reading a prepare's answer");
        if (kvi_state_decode(&st, h->data, h->len, r->token) != KV_OK) {
            r->failed++;
            return no_majority(r);
        }
        r->n_holders++;
        if (kvi_state_merge(&r->merged, &st) != KV_OK)
            return done(r, KV_ETOOBIG, "the replicas' states cannot be merged (too many "
                        "siblings)");
    }
    if (++r->granted < r->majority)
        return KVI_PX_WAIT;
    if (r->reading) {
        r->reading = 0;
        if (r->has_unfinished && kvi_ballot_compare(&r->unfinished_ballot, &r->max_committed) > 0) {
            r->backoff_ms = 0; /* a full round, at once, to finish it */
            return KVI_PX_BACKOFF;
        }
        return evaluate(r);
    }
    return after_prepare(r);
}

/* The index of our own proposal whose id the message in flight carries,
 * or -1 when it is another round's. */
static int own_in_flight(const kvi_px_round *r)
{
    uint64_t id;
    const void *st;
    size_t st_len;
    if (kvi_proposal_split(r->msg.state.data, r->msg.state.len, &id, &st, &st_len) != 0)
        return -1;
    for (size_t k = 0; k < r->n_own; k++)
        if (r->own[k].id == id)
            return (int)k;
    return -1;
}

static kvi_px_step take_propose(kvi_px_round *r, const kvi_paxos_answer *a)
{
    if (!a->granted) {
        r->refused++;
        return no_majority(r);
    }
    if (++r->granted < r->majority)
        return KVI_PX_WAIT;
    /* Chosen: a majority accepted it. Ours (this round's, or an earlier
     * one of ours being finished) is applied from here on, whatever the
     * commit does. The commit goes to every home and is waited for from a
     * majority, so that a QUORUM read after the answer sees the write. */
    int k = own_in_flight(r);
    if (k >= 0) {
        r->chosen = 1;
        r->version = r->own[k].version;
    }
    return send(r, KVI_PX_COMMIT);
}

static kvi_px_step take_commit(kvi_px_round *r)
{
    if (++r->granted < r->majority)
        return KVI_PX_WAIT;
    if (r->chosen)
        return done(r, KV_OK, "applied");
    r->backoff_ms = 0; /* finished another's: our own round, at once */
    return KVI_PX_BACKOFF;
}

kvi_px_step kvi_px_answer(kvi_px_round *r, size_t home, const void *answer, size_t len)
{
    (void)home;
    kvi_paxos_answer a;
    if (kvi_paxos_answer_decode(&a, answer, len) != 0) {
        r->failed++;
        return no_majority(r);
    }
    note_promise(r, &a.promised);
    switch (r->msg.phase) {
    case KVI_PX_PREPARE: return take_prepare(r, &a);
    case KVI_PX_PROPOSE: return take_propose(r, &a);
    case KVI_PX_COMMIT: return take_commit(r);
    }
    return done(r, KV_EINVAL, "no message in flight");
}
