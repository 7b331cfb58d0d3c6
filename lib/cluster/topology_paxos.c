/* cluster/topology_paxos.c - the acceptor's rules and the proposer of the
 * next topology record. */
#include "cluster/topology_paxos.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "cluster/topology.h"

/* ------------------------------------------------------------ acceptor */

static int stale(kvi_tpx_answer *out, const kvi_topology *cur)
{
    out->verdict = KVI_TPX_STALE;
    return kvi_topology_copy(&out->current, cur);
}

int kvi_tpx_accept(kvi_topology *cur, kvi_tpx_acceptor *acc, const char *self_id,
                   const kvi_tpx_msg *m, kvi_tpx_answer *out, int *cur_changed,
                   int *acc_changed)
{
    kvi_tpx_answer_init(out);
    *cur_changed = 0;
    *acc_changed = 0;
    if (m->kind == KVI_TPX_FETCH) {
        out->verdict = KVI_TPX_GRANTED;
        return kvi_topology_copy(&out->current, cur);
    }
    /* A chosen record newer than ours: take it (a base is chosen too: the
     * proposer built on it). */
    if (m->base.epoch > cur->epoch) {
        if (kvi_topology_copy(cur, &m->base) != KV_OK)
            return KV_ENOMEM;
        *cur_changed = 1;
    }
    if (m->kind == KVI_TPX_COMMIT) {
        out->verdict = KVI_TPX_GRANTED;
        return KV_OK;
    }
    uint64_t slot = m->base.epoch + 1;
    if (slot <= cur->epoch || !kvi_topology_equal(&m->base, cur))
        return stale(out, cur);
    const kvi_topo_member *self = kvi_topology_find(cur, self_id);
    if (!self || !kvi_topology_acceptor(cur, self)) {
        out->verdict = KVI_TPX_NOT_ACCEPTOR;
        return KV_OK;
    }
    if (acc->slot != slot) {
        /* Kept for an earlier slot: that one is decided (we hold its
         * record), so what was promised for it no longer matters. */
        kvi_tpx_acceptor_free(acc);
        acc->slot = slot;
        *acc_changed = 1;
    }
    int cmp = kvi_ballot_compare(&m->ballot, &acc->promised);
    if (m->kind == KVI_TPX_PREPARE ? cmp <= 0 : cmp < 0) {
        out->verdict = KVI_TPX_REFUSED;
        out->promised = acc->promised;
        return KV_OK;
    }
    acc->promised = m->ballot;
    *acc_changed = 1;
    out->verdict = KVI_TPX_GRANTED;
    out->promised = acc->promised;
    if (m->kind == KVI_TPX_PROPOSE) {
        if (kvi_topology_copy(&acc->value, &m->value) != KV_OK)
            return KV_ENOMEM;
        acc->has_accepted = 1;
        acc->accepted = m->ballot;
        return KV_OK;
    }
    if (acc->has_accepted) {
        out->has_accepted = 1;
        out->accepted = acc->accepted;
        if (kvi_topology_copy(&out->accepted_value, &acc->value) != KV_OK)
            return KV_ENOMEM;
    }
    return KV_OK;
}

/* ------------------------------------------------------------ proposer */

int kvi_tpxp_init(kvi_tpx_proposer *p, const char *self, const kvi_topology *base,
                  const kvi_topology *want, uint64_t random)
{
    memset(p, 0, sizeof *p);
    kvi_topology_init(&p->base);
    kvi_topology_init(&p->want);
    kvi_topology_init(&p->best);
    kvi_topology_init(&p->chosen);
    kvi_tpx_msg_init(&p->msg);
    if (!self || !self[0] || strlen(self) > KVI_TOPO_MAX_ID || base->epoch == 0 ||
        want->epoch != base->epoch + 1)
        return KV_EINVAL;
    snprintf(p->self, sizeof p->self, "%s", self);
    p->random = random ? random : 0x9e3779b97f4a7c15ull;
    p->acceptors = calloc(base->n ? base->n : 1, sizeof *p->acceptors);
    p->answered = calloc(base->n ? base->n : 1, 1);
    if (!p->acceptors || !p->answered || kvi_topology_copy(&p->base, base) != KV_OK ||
        kvi_topology_copy(&p->want, want) != KV_OK) {
        kvi_tpxp_free(p);
        return KV_ENOMEM;
    }
    for (size_t i = 0; i < base->n; i++)
        if (kvi_topology_acceptor(base, &base->members[i]))
            memcpy(p->acceptors[p->n++], base->members[i].id, sizeof p->acceptors[0]);
    if (p->n == 0) {
        kvi_tpxp_free(p);
        return KV_EINVAL;
    }
    p->majority = (unsigned)(p->n / 2 + 1);
    return KV_OK;
}

void kvi_tpxp_free(kvi_tpx_proposer *p)
{
    kvi_topology_free(&p->base);
    kvi_topology_free(&p->want);
    kvi_topology_free(&p->best);
    kvi_topology_free(&p->chosen);
    kvi_tpx_msg_free(&p->msg);
    free(p->acceptors);
    free(p->answered);
    p->acceptors = NULL;
    p->answered = NULL;
    p->n = 0;
}

static kvi_tpxp_step done(kvi_tpx_proposer *p, int outcome, const char *fmt, ...)
{
    p->outcome = outcome;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->message, sizeof p->message, fmt, ap);
    va_end(ap);
    return KVI_TPXP_DONE;
}

/* A new message: nobody has answered it yet. */
static void reset_counts(kvi_tpx_proposer *p)
{
    p->granted = p->refused = p->failed = 0;
    memset(p->answered, 0, p->n);
}

static kvi_tpxp_step prepare(kvi_tpx_proposer *p, uint64_t now_us)
{
    kvi_tpx_msg_free(&p->msg);
    p->msg.kind = KVI_TPX_PREPARE;
    if (kvi_ballot_next(&p->msg.ballot, p->self, now_us, &p->highest_seen) != KV_OK ||
        kvi_topology_copy(&p->msg.base, &p->base) != KV_OK)
        return done(p, KVI_TPXP_UNAVAILABLE, "out of memory proposing epoch %llu",
                    (unsigned long long)p->want.epoch);
    if (kvi_ballot_compare(&p->msg.ballot, &p->highest_seen) > 0)
        p->highest_seen = p->msg.ballot;
    p->has_best = 0;
    reset_counts(p);
    return KVI_TPXP_SEND;
}

kvi_tpxp_step kvi_tpxp_start(kvi_tpx_proposer *p, uint64_t now_us)
{
    return prepare(p, now_us);
}

kvi_tpxp_step kvi_tpxp_retry(kvi_tpx_proposer *p, uint64_t now_us)
{
    return prepare(p, now_us);
}

/* Randomized exponential back-off, up to 2^attempts ms, at most 256 ms:
 * rivals stop colliding; a topology change is rare, so no hurry. */
static kvi_tpxp_step backoff(kvi_tpx_proposer *p)
{
    if (++p->attempts >= KVI_TPXP_MAX_ATTEMPTS)
        return done(p, KVI_TPXP_CONTENDED, "gave up proposing epoch %llu after %u rounds "
                    "refused by rival proposers", (unsigned long long)p->want.epoch,
                    p->attempts);
    uint64_t x = p->random;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    p->random = x;
    unsigned shift = p->attempts < 8 ? p->attempts : 8;
    p->backoff_ms = 1 + x % (1ull << shift);
    return KVI_TPXP_BACKOFF;
}

/* After an answer or a failure: a majority is out of reach? */
static kvi_tpxp_step out_of_reach(kvi_tpx_proposer *p)
{
    unsigned pending = (unsigned)p->n - p->granted - p->refused - p->failed;
    if (p->granted + pending >= p->majority)
        return KVI_TPXP_WAIT;
    if (p->refused)
        return backoff(p);
    return done(p, KVI_TPXP_UNAVAILABLE, "only %u of %zu members that decide the topology "
                "answered; a change needs %u", p->granted + p->refused, p->n, p->majority);
}

static kvi_tpxp_step propose(kvi_tpx_proposer *p)
{
    const kvi_topology *value = p->has_best ? &p->best : &p->want;
    kvi_ballot ballot = p->msg.ballot;
    kvi_tpx_msg_free(&p->msg);
    p->msg.kind = KVI_TPX_PROPOSE;
    p->msg.ballot = ballot;
    if (kvi_topology_copy(&p->msg.base, &p->base) != KV_OK ||
        kvi_topology_copy(&p->msg.value, value) != KV_OK)
        return done(p, KVI_TPXP_UNAVAILABLE, "out of memory proposing epoch %llu",
                    (unsigned long long)p->want.epoch);
    reset_counts(p);
    return KVI_TPXP_SEND;
}

static kvi_tpxp_step chosen(kvi_tpx_proposer *p)
{
    if (kvi_topology_copy(&p->chosen, &p->msg.value) != KV_OK)
        return done(p, KVI_TPXP_UNAVAILABLE, "out of memory");
    if (kvi_topology_equal(&p->chosen, &p->want))
        return done(p, KVI_TPXP_CHOSEN, "epoch %llu chosen", (unsigned long long)p->want.epoch);
    if (p->chosen.op != KVI_TOPO_OP_NONE)
        return done(p, KVI_TPXP_LOST_TO, "another change took epoch %llu first: the %s of %s",
                    (unsigned long long)p->chosen.epoch, kvi_topo_op_name(p->chosen.op),
                    p->chosen.op_member);
    return done(p, KVI_TPXP_LOST_TO, "another change took epoch %llu first",
                (unsigned long long)p->chosen.epoch);
}

kvi_tpxp_step kvi_tpxp_failed(kvi_tpx_proposer *p, size_t i)
{
    if (i >= p->n || p->answered[i])
        return KVI_TPXP_WAIT;
    p->answered[i] = 1;
    p->failed++;
    return out_of_reach(p);
}

kvi_tpxp_step kvi_tpxp_answer(kvi_tpx_proposer *p, size_t i, const kvi_tpx_answer *a)
{
    if (i >= p->n || p->answered[i])
        return KVI_TPXP_WAIT;
    p->answered[i] = 1;
    switch (a->verdict) {
    case KVI_TPX_STALE:
        if (a->current.epoch < p->base.epoch) {
            p->failed++; /* behind us, yet refused our base: treat as no answer */
            return out_of_reach(p);
        }
        if (kvi_topology_copy(&p->chosen, &a->current) != KV_OK)
            return done(p, KVI_TPXP_UNAVAILABLE, "out of memory");
        /* Ours, chosen and committed by a rival that finished it. */
        if (kvi_topology_equal(&a->current, &p->want))
            return done(p, KVI_TPXP_CHOSEN, "epoch %llu chosen",
                        (unsigned long long)p->want.epoch);
        if (a->current.epoch == p->base.epoch)
            return done(p, KVI_TPXP_MOVED_ON, "member %s holds another record at epoch %llu: "
                        "the members disagree on the topology", p->acceptors[i],
                        (unsigned long long)p->base.epoch);
        return done(p, KVI_TPXP_MOVED_ON, "the topology moved on to epoch %llu meanwhile",
                    (unsigned long long)a->current.epoch);
    case KVI_TPX_NOT_ACCEPTOR:
        p->failed++;
        return out_of_reach(p);
    case KVI_TPX_REFUSED:
        p->refused++;
        if (kvi_ballot_compare(&a->promised, &p->highest_seen) > 0)
            p->highest_seen = a->promised;
        return out_of_reach(p);
    case KVI_TPX_GRANTED:
        break;
    default:
        p->failed++;
        return out_of_reach(p);
    }
    p->granted++;
    if (p->msg.kind == KVI_TPX_PREPARE) {
        if (a->has_accepted && a->accepted_value.epoch == p->want.epoch &&
            (!p->has_best || kvi_ballot_compare(&a->accepted, &p->best_ballot) > 0)) {
            if (kvi_topology_copy(&p->best, &a->accepted_value) != KV_OK)
                return done(p, KVI_TPXP_UNAVAILABLE, "out of memory");
            p->best_ballot = a->accepted;
            p->has_best = 1;
        }
        return p->granted >= p->majority ? propose(p) : KVI_TPXP_WAIT;
    }
    return p->granted >= p->majority ? chosen(p) : KVI_TPXP_WAIT;
}
