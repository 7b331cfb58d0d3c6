/* cluster/serial.c - SERIAL requests as state machines on the loop (see
 * serial.h): the Paxos round (paxos_round.c) says what to send; this file
 * sends it, feeds it the answers, its deadline and its back-off timer.
 *
 * Each message the round sends gets a generation; answers to an earlier
 * one are dropped (the round must not be fed a stale phase). The local
 * acceptor's messages are staged with the loop iteration's writes
 * (cluster/write_stage.h) and applied with them, unsynced; a promise or an
 * accept is counted only once the store's group committer has made it
 * durable, so the loop never waits on the disk; a commit needs no sync (its
 * value is synced in a majority's accepts). */
#include "cluster/serial.h"

#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "cluster/coord_op.h"
#include "cluster/paxos_acceptor.h"
#include "cluster/write_stage.h"
#include "storage/group_commit.h"
#include "storage/store.h"
#include "format/record.h"
#include "util/clock.h"
#include "util/error.h"
#include "format/value.h"

size_t kvi_serial_participants(const kvi_view *v, const void *key, size_t key_len,
                               uint32_t *out, size_t *n_pending)
{
    uint32_t homes[KVI_PX_MAX_HOMES], pending[KVI_PX_MAX_HOMES];
    unsigned char in_future[KVI_PX_MAX_HOMES];
    size_t n_homes = kvi_coord_homes(v, key, key_len, homes);
    size_t n_new = kvi_coord_pending(v, key, key_len, homes, n_homes, pending, in_future);
    /* A replacing home's store forgot its member's promises: it counts as
     * a pending home, not as one of the majority. */
    size_t n = 0;
    for (size_t i = 0; i < n_homes; i++)
        if (!v->no_reads || homes[i] >= v->n || !v->no_reads[homes[i]])
            out[n++] = homes[i];
    size_t settled = n;
    for (size_t i = 0; i < n_homes; i++)
        if (v->no_reads && homes[i] < v->n && v->no_reads[homes[i]])
            out[n++] = homes[i];
    for (size_t i = 0; i < n_new && n < KVI_PX_MAX_HOMES; i++)
        out[n++] = pending[i];
    *n_pending = n - settled;
    return n;
}

uint64_t kvi_serial_homes_hash(const kvi_view *v, const void *key, size_t key_len)
{
    uint32_t homes[KVI_PX_MAX_HOMES];
    size_t n_pending;
    size_t n = kvi_serial_participants(v, key, key_len, homes, &n_pending);
    uint64_t h = n;
    for (size_t i = 0; i < n; i++) {
        const char *id = kvi_view_member_at(v, homes[i])->id;
        h = XXH3_64bits_withSeed(id, strlen(id), h); /* chained: order counts */
    }
    return h;
}


static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint8_t opcode_of(kvi_px_phase phase)
{
    return phase == KVI_PX_PREPARE ? KVI_OP_PAXOS_PREPARE
         : phase == KVI_PX_PROPOSE ? KVI_OP_PAXOS_PROPOSE : KVI_OP_PAXOS_COMMIT;
}

typedef struct serial_op serial_op;

/* One home's answer to the message in flight, kept until the step feeds
 * it (answers come in callbacks, which only record). */
typedef struct home_answer {
    int has;
    int rc;
    kvi_buf body;
} home_answer;

/* The context of one message to one home: its generation tells a stale
 * answer. */
typedef struct message_ctx {
    serial_op *op;
    size_t i;
    unsigned gen;
} message_ctx;

struct serial_op {
    coord_op base;
    kvi_px_round *r;
    kvi_serial_request req;
    uint32_t homes[KVI_PX_MAX_HOMES];
    size_t n;
    int self;                 /* this node's index among the homes, or -1 */
    uint64_t homes_hash;
    unsigned ring_disagree;   /* homes that said our ring is not theirs */
    unsigned gen;             /* of the message in flight */
    int fed[KVI_PX_MAX_HOMES];
    home_answer ans[KVI_PX_MAX_HOMES];
    kvi_px_step next;         /* what the step does next */
    uint64_t deadline_ms;
    kvi_loop_timer backoff;
    unsigned char data[];
};

static void serial_destroy(coord_op *base)
{
    serial_op *op = (serial_op *)base;
    if (base->loop)
        kvi_loop_timer_cancel(base->loop, &op->backoff);
    for (size_t i = 0; i < KVI_PX_MAX_HOMES; i++)
        kvi_buf_free(&op->ans[i].body);
    if (op->r) {
        kvi_px_free(op->r);
        free(op->r);
    }
    free(op);
}

/* Records a home's answer for the step (nothing fed from here). */
static void record(serial_op *op, size_t i, int rc, const void *body, size_t len)
{
    home_answer *a = &op->ans[i];
    a->has = 1;
    a->rc = rc;
    kvi_buf_reset(&a->body);
    if (rc == KV_OK) {
        kvi_buf_raw(&a->body, body, len);
        if (a->body.failed)
            a->rc = KV_ENOMEM;
    }
}

static void home_answered(void *ctx, const kvi_reply *reply)
{
    message_ctx *m = ctx;
    serial_op *op = m->op;
    if (!op->base.finished && m->gen == op->gen && !op->fed[m->i] && !op->ans[m->i].has) {
        kvi_response resp;
        int rc = kvi_reply_decode(&resp, reply, opcode_of(op->r->msg.phase));
        if (rc == KVI_ENOT_REPLICA)
            op->ring_disagree++;
        if (rc != KV_OK)
            kvi_log(op->base.env.log, KV_LOG_DEBUG, "home %s did not take a Paxos message: %s",
                    kvi_view_member_at(op->base.env.view, op->homes[m->i])->id,
                    kvi_error_last());
        record(op, m->i, rc, resp.value.data, rc == KV_OK ? resp.value.len : 0);
        coord_op_poke(&op->base);
    }
    free(m);
    coord_op_drop(&op->base);
}

/* Feeds this node's acceptor's answer (or failure) to the round, if the
 * round still waits for it. */
static void local_feed(serial_op *op, unsigned gen, int rc, const kvi_buf *answer)
{
    if (op->base.finished || gen != op->gen || op->fed[op->self])
        return;
    record(op, (size_t)op->self, rc, answer ? answer->data : NULL, answer ? answer->len : 0);
    coord_op_poke(&op->base);
}

/* The local acceptor's answer to one message, waiting for the group
 * committer (one per message: an earlier one may still be waiting when the
 * round has moved on). */
typedef struct local_wait {
    kvi_sync_request sync;
    kvi_loop_task task;
    serial_op *op;
    unsigned gen;
    int rc;
    kvi_buf answer;
} local_wait;

/* On the loop: the local acceptor's write is durable (or the sync failed). */
static void local_synced(void *ctx)
{
    local_wait *w = ctx;
    serial_op *op = w->op;
    if (w->rc != KV_OK)
        kvi_log(op->base.env.log, KV_LOG_WARN, "this node's Paxos write is not durable: "
                "syncing its log failed");
    local_feed(op, w->gen, w->rc, &w->answer);
    kvi_buf_free(&w->answer);
    free(w);
    coord_op_drop(&op->base);
}

/* On the committer's thread. */
static void local_durable(void *ctx, int rc)
{
    local_wait *w = ctx;
    w->rc = rc;
    kvi_loop_post(w->op->base.loop, &w->task, local_synced, w);
}

/* This node's acceptor's message, staged with the loop iteration's other
 * writes (cluster/write_stage.h). */
typedef struct local_staged {
    kvi_staged_paxos sp;
    serial_op *op;
    unsigned gen;
    /* The proposal's copy: the round may move on, and rebuild its state,
     * before the stage applies the message. */
    unsigned char proposal[];
} local_staged;

/* On the loop, at the end of the iteration: the staged message is applied,
 * unsynced. A commit is answered at once; a promise or an accept once the
 * group committer has made it durable. */
static void local_applied(kvi_staged_paxos *sp)
{
    local_staged *ls = (local_staged *)sp;
    serial_op *op = ls->op;
    kvi_paxos_msg *m = &sp->msg;
    int rc = m->status != KV_OK ? m->status : m->answer.failed ? KV_ENOMEM : KV_OK;
    kvi_group_commit *committer = kvi_store_committer(kvi_embedded_store(op->base.env.local));
    local_wait *w = NULL;
    if (rc != KV_OK) {
        kvi_log(op->base.env.log, KV_LOG_WARN, "this node's replica failed a Paxos message: %s",
                kvi_error_last());
    } else if (m->kind != KVI_PAXOS_COMMIT) {
        w = malloc(sizeof *w);
        rc = w ? KV_OK : KV_ENOMEM; /* no memory to wait with: written unsynced, not counted */
    }
    if (w) {
        *w = (local_wait){.op = op, .gen = ls->gen, .answer = m->answer};
        coord_op_hold(&op->base);
        kvi_group_commit_request(committer, &w->sync, local_durable, w);
    } else {
        local_feed(op, ls->gen, rc, &m->answer);
        kvi_buf_free(&m->answer);
    }
    free(ls);
    coord_op_drop(&op->base);
}

/* Applies the round's message to this node's own replica: staged with the
 * loop iteration's other writes when the node has a stage on this loop,
 * else at once; a commit is fed as soon as it is applied, a promise or an
 * accept once it is durable. Returns the step. */
static kvi_px_step local_message(serial_op *op)
{
    const kvi_coord_env *env = &op->base.env;
    kvi_px_round *r = op->r;
    static const int kinds[] = {[KVI_PX_PREPARE] = KVI_PAXOS_PREPARE,
                                [KVI_PX_PROPOSE] = KVI_PAXOS_PROPOSE,
                                [KVI_PX_COMMIT] = KVI_PAXOS_COMMIT};
    kvi_group_commit *committer = kvi_store_committer(kvi_embedded_store(env->local));
    if (committer && env->stage && op->base.loop &&
        kvi_write_stage_loop(env->stage) == op->base.loop) {
        size_t plen = r->msg.phase == KVI_PX_PREPARE ? 0 : r->msg.state.len;
        local_staged *ls = malloc(sizeof *ls + plen);
        if (ls) {
            if (plen)
                memcpy(ls->proposal, r->msg.state.data, plen);
            ls->sp.msg = (kvi_paxos_msg){.kind = kinds[r->msg.phase], .key = r->req.key,
                                         .key_len = r->req.key_len, .ballot = r->msg.ballot,
                                         .proposal = plen ? ls->proposal : NULL,
                                         .proposal_len = plen};
            ls->sp.done = local_applied;
            ls->op = op;
            ls->gen = op->gen;
            coord_op_hold(&op->base);
            kvi_write_stage_add_paxos(env->stage, &ls->sp);
            return KVI_PX_WAIT;
        }
    }
    int defer = op->base.loop && committer && r->msg.phase != KVI_PX_COMMIT;
    kvi_paxos_msg m = {.kind = kinds[r->msg.phase], .key = r->req.key,
                       .key_len = r->req.key_len, .ballot = r->msg.ballot,
                       .proposal = r->msg.phase == KVI_PX_PREPARE ? NULL : r->msg.state.data,
                       .proposal_len = r->msg.phase == KVI_PX_PREPARE ? 0 : r->msg.state.len};
    kvi_paxos_apply_unsynced(env->local, &m, 1, defer);
    size_t self = (size_t)op->self;
    if (m.status != KV_OK || m.answer.failed) {
        kvi_log(env->log, KV_LOG_WARN, "this node's replica failed a Paxos message: %s",
                kvi_error_last());
        kvi_buf_free(&m.answer);
        op->fed[self] = 1;
        return kvi_px_failed(r, self);
    }
    local_wait *w = defer ? malloc(sizeof *w) : NULL;
    if (w) {
        *w = (local_wait){.op = op, .gen = op->gen, .answer = m.answer};
        coord_op_hold(&op->base);
        kvi_group_commit_request(committer, &w->sync, local_durable, w);
        return KVI_PX_WAIT;
    }
    if (defer) {
        /* No memory to wait with: written unsynced, so not counted. */
        kvi_buf_free(&m.answer);
        op->fed[self] = 1;
        return kvi_px_failed(r, self);
    }
    op->fed[self] = 1;
    kvi_px_step step = kvi_px_answer(r, self, m.answer.data, m.answer.len);
    kvi_buf_free(&m.answer);
    return step;
}

/* Sends the round's message to every home; the homes known down and the
 * calls that could not be made fail at once, in turn, until the round
 * moves on; then this node's own replica. */
static kvi_px_step send_message(serial_op *op)
{
    const kvi_coord_env *env = &op->base.env;
    kvi_px_round *r = op->r;
    op->gen++;
    memset(op->fed, 0, sizeof op->fed);
    for (size_t i = 0; i < op->n; i++)
        op->ans[i].has = 0;
    kvi_buf ballot = {0};
    kvi_ballot_encode(&ballot, &r->msg.ballot);
    kvi_request req = {
        .opcode = opcode_of(r->msg.phase), .expected_version = op->homes_hash,
        .key = {r->req.key, r->req.key_len}, .context = {ballot.data, ballot.len},
        .value = {r->msg.state.data, r->msg.phase == KVI_PX_PREPARE ? 0 : r->msg.state.len},
    };
    int failed_now[KVI_PX_MAX_HOMES] = {0};
    for (size_t i = 0; i < op->n; i++) {
        if ((int)i == op->self)
            continue;
        message_ctx *m = NULL;
        if (!ballot.failed && !kvi_coord_down(env, op->homes[i]))
            m = malloc(sizeof *m);
        if (m)
            *m = (message_ctx){op, i, op->gen};
        if (!m || coord_op_send(&op->base, op->homes[i], &req, 0, 1, home_answered, m) != KV_OK) {
            free(m);
            failed_now[i] = 1;
        }
    }
    kvi_buf_free(&ballot);
    kvi_px_step step = KVI_PX_WAIT;
    for (size_t i = 0; i < op->n && step == KVI_PX_WAIT; i++) {
        if (!failed_now[i])
            continue;
        op->fed[i] = 1;
        step = kvi_px_failed(r, i);
    }
    if (op->self >= 0 && step == KVI_PX_WAIT)
        step = local_message(op);
    return step;
}

static void backoff_over(void *ctx)
{
    serial_op *op = ctx;
    coord_op_hold(&op->base);
    if (!op->base.finished)
        op->next = kvi_loop_now_ms() >= op->deadline_ms ? kvi_px_deadline(op->r)
                                                        : kvi_px_retry(op->r, now_us());
    coord_op_poke(&op->base);
    coord_op_drop(&op->base);
}

static void serial_deadline(coord_op *base)
{
    serial_op *op = (serial_op *)base;
    op->gen++; /* answers still out are dropped */
    if (base->loop)
        kvi_loop_timer_cancel(base->loop, &op->backoff);
    op->next = kvi_px_deadline(op->r);
}

static void serial_finish(serial_op *op)
{
    kvi_px_round *r = op->r;
    kvi_coord_result res = {.rc = r->rc, .why = r->message};
    char why[300];
    if ((res.rc == KV_EUNAVAILABLE || res.rc == KV_ETIMEDOUT) && op->ring_disagree) {
        snprintf(why, sizeof why, "%u home replica(s) of this key see other homes (the ring "
                 "is changing); SERIAL is refused until the nodes agree; not applied",
                 op->ring_disagree);
        res.rc = KV_EUNAVAILABLE;
        res.why = why;
    } else if (res.rc == KV_OK && op->req.op == KVI_SERIAL_GET) {
        res.rc = kvi_value_from_state(&res.value, &r->result, op->req.now_ms,
                                      op->req.all_siblings ? 0 : 1);
        res.why = res.rc == KV_ENOTFOUND ? "key not found" : "out of memory copying a value";
    }
    if (res.rc == KV_OK || res.rc == KV_ECONFLICT)
        res.version = r->version;
    coord_op_finish(&op->base, &res);
    kvi_value_free(res.value);
}

/* Feeds what came and does what the round says, until it waits. */
static void serial_step(coord_op *base)
{
    serial_op *op = (serial_op *)base;
    kvi_px_step step = op->next;
    op->next = KVI_PX_WAIT;
    for (;;) {
        switch (step) {
        case KVI_PX_SEND:
            step = send_message(op);
            continue;
        case KVI_PX_BACKOFF: {
            op->gen++; /* the message's answers are no longer wanted */
            uint64_t now = kvi_loop_now_ms();
            if (now >= op->deadline_ms) {
                step = kvi_px_deadline(op->r);
                continue;
            }
            if (!base->loop) { /* nothing to wait with, nobody to wait for */
                step = kvi_px_retry(op->r, now_us());
                continue;
            }
            uint64_t at = now + op->r->backoff_ms;
            kvi_loop_timer_set(base->loop, &op->backoff,
                               at < op->deadline_ms ? at : op->deadline_ms);
            return;
        }
        case KVI_PX_DONE:
            serial_finish(op);
            return;
        case KVI_PX_WAIT:
            break;
        }
        /* Waiting: feed the next answer that came, if any. */
        size_t i = 0;
        while (i < op->n && (!op->ans[i].has || op->fed[i]))
            i++;
        if (i == op->n)
            return;
        home_answer *a = &op->ans[i];
        a->has = 0;
        op->fed[i] = 1;
        step = a->rc == KV_OK ? kvi_px_answer(op->r, i, a->body.data, a->body.len)
                              : kvi_px_failed(op->r, i);
    }
}

static void serial_begin(coord_op *base)
{
    serial_op *op = (serial_op *)base;
    uint32_t timeout = kvi_coord_timeout_ms(base->env.view);
    op->deadline_ms = kvi_loop_now_ms() + timeout;
    coord_op_set_deadline(base, timeout, serial_deadline);
    op->next = kvi_px_start(op->r, now_us());
    serial_step(base);
}

int kvi_serial_start(const kvi_coord_env *env, const kvi_serial_request *req,
                     kvi_coord_done_fn fn, void *ctx)
{
    kvi_view *v = env->view;
    if (v->self < 0 || !env->local)
        return kvi_error(KV_EINVAL, "SERIAL requests are coordinated by a node");
    serial_op *op = calloc(1, sizeof *op + req->key_len + req->value_len);
    kvi_px_round *r = malloc(sizeof *r);
    if (!op || !r) {
        free(op);
        free(r);
        return kvi_error(KV_ENOMEM, "out of memory starting a SERIAL request");
    }
    op->req = *req;
    memcpy(op->data, req->key, req->key_len);
    op->req.key = op->data;
    if (req->value_len)
        memcpy(op->data + req->key_len, req->value, req->value_len);
    op->req.value = op->data + req->key_len;
    op->req.node = v->members[v->self].id;
    op->req.now_ms = kvi_now_ms();
    size_t n_pending;
    op->n = kvi_serial_participants(v, req->key, req->key_len, op->homes, &n_pending);
    op->homes_hash = kvi_serial_homes_hash(v, req->key, req->key_len);
    op->self = -1;
    for (size_t i = 0; i < op->n; i++)
        if (v->self >= 0 && op->homes[i] == (uint32_t)v->self)
            op->self = (int)i;
    struct timespec seed;
    clock_gettime(CLOCK_MONOTONIC, &seed);
    if (kvi_px_init(r, &op->req, op->n, (uint64_t)seed.tv_nsec ^ (uint64_t)(uintptr_t)r) !=
        KV_OK) {
        free(op);
        free(r);
        return kvi_error(KV_EINVAL, "no home replicas for this key");
    }
    /* While the key moves (docs/design/TOPOLOGY.md), a round needs a
     * majority of the current homes plus every pending one (Cassandra's
     * rule): any two such quorums meet, and each meets any majority of
     * the homes before and after the change. */
    r->majority = (unsigned)((op->n - n_pending) / 2 + 1 + n_pending);
    op->r = r;
    coord_op_init(&op->base, env, fn, ctx);
    op->base.step = serial_step;
    op->base.start = serial_begin;
    op->base.destroy = serial_destroy;
    kvi_loop_timer_init(&op->backoff, backoff_over, op);
    coord_op_launch(&op->base);
    return KV_OK;
}
