/* cluster/coord_read.c - a quorum read as a state machine (coord_op.h).
 *
 * It asks R replicas of the key for their state: this node's own first
 * when it is one (a local read costs no message), then the others in
 * preference order, those the failure detector holds down last. Each
 * replica that fails is replaced by the next one at once; when the answers
 * are slow (SPECULATIVE_MS) the remaining replicas are all asked too, so a
 * paused replica costs a read that delay, not the whole timeout. Asking
 * only R keeps a read at R messages instead of N, which is most of the work
 * of a read on a busy node.
 *
 * Once R have answered it merges their states by causality and sends the
 * merged state to the replicas that answered with less (read repair):
 * waiting for them when R > 1, so that a later read at R never goes
 * backwards, and in the background at R = 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/coord_op.h"
#include "cluster/quorum.h"
#include "cluster/replica_store.h"
#include "format/record.h"
#include "format/value.h"
#include "util/clock.h"
#include "util/error.h"

#define MAX_PREF KVI_COORD_MAX_PREF
#define SPECULATIVE_MS 20u

typedef struct read_op read_op;

/* The context of one message: which replica it went to. */
typedef struct read_slot {
    read_op *op;
    size_t i;
} read_slot;

enum { GATHERING, REPAIRING, REROUTING, READ_OVER };

struct read_op {
    coord_op base;
    int phase;
    uint64_t token;
    uint8_t opcode;           /* GET_STATE between nodes, READ_STATE from a client */
    unsigned required;
    int siblings, want_report;
    coord_read_state_fn state_fn; /* set: a CAS's read, ends with the merged state */
    void *state_ctx;
    size_t n, n_states;       /* homes; states allocated (n_states + 1) */
    uint32_t pref[MAX_PREF];
    read_slot slots[MAX_PREF];
    int rerouted;             /* read again by a newer view, once */
    /* n + 1 states (a state is kilobytes: only as many as replicas), the
     * last one the merge. Not zeroed: each is set before it is read. */
    kvi_state *states;
    kvi_buf holders[MAX_PREF];
    int status[MAX_PREF];     /* KV_OK, KV_ENOTFOUND, or why it did not answer */
    unsigned char asked[MAX_PREF], ended[MAX_PREF];
    int repaired[MAX_PREF];
    size_t next;              /* the next replica to ask */
    unsigned started, ended_n, ok_n;
    int speculated;
    kvi_loop_timer speculate;
    kvi_state *merged;
    unsigned answered;
    unsigned repairs_sent, repairs_ended;
    kvi_buf encoded;
    kvi_read_report report;
    char why[320];
    size_t key_len;
    unsigned char key[];
};

static void read_destroy(coord_op *base)
{
    read_op *op = (read_op *)base;
    if (base->loop)
        kvi_loop_timer_cancel(base->loop, &op->speculate);
    for (size_t i = 0; i < MAX_PREF; i++)
        kvi_buf_free(&op->holders[i]);
    kvi_buf_free(&op->encoded);
    free(op->states);
    free(op);
}

/* The order to ask the replicas in (see the top of this file). */
static void order_replicas(read_op *op)
{
    const kvi_coord_env *env = &op->base.env;
    kvi_view *v = env->view;
    op->n = kvi_coord_homes(v, op->key, op->key_len, op->pref);
    if (v->no_reads) {
        /* A replacing member is no home to read from yet. */
        size_t kept = 0;
        for (size_t i = 0; i < op->n; i++)
            if (op->pref[i] >= v->n || !v->no_reads[op->pref[i]])
                op->pref[kept++] = op->pref[i];
        op->n = kept;
    }
    int has_self = 0;
    for (size_t i = 0; i < op->n; i++)
        has_self |= coord_is_self(v, op->pref[i]);
    if (has_self) {
        for (size_t i = 1; i < op->n; i++)
            if (coord_is_self(v, op->pref[i])) {
                uint32_t self = op->pref[i];
                memmove(&op->pref[1], &op->pref[0], i * sizeof op->pref[0]);
                op->pref[0] = self;
            }
    } else if (op->n > 1) {
        /* Start at a rotating replica (see kvi_view.read_rotation). */
        size_t start = atomic_fetch_add(&v->read_rotation, 1) % op->n;
        uint32_t rotated[MAX_PREF];
        for (size_t i = 0; i < op->n; i++)
            rotated[i] = op->pref[(start + i) % op->n];
        memcpy(op->pref, rotated, op->n * sizeof rotated[0]);
    }
    if (env->is_down) {
        uint32_t up[MAX_PREF], dn[MAX_PREF];
        size_t nu = 0, nd = 0;
        for (size_t i = 0; i < op->n; i++) {
            if (kvi_coord_down(env, op->pref[i]))
                dn[nd++] = op->pref[i];
            else
                up[nu++] = op->pref[i];
        }
        memcpy(op->pref, up, nu * sizeof up[0]);
        memcpy(op->pref + nu, dn, nd * sizeof dn[0]);
    }
}

static void replica_ended(read_op *op, size_t i, int status)
{
    coord_op_answered(&op->base, op->pref[i], status);
    op->status[i] = status;
    op->ended[i] = 1;
    op->ended_n++;
    op->ok_n += status == KV_OK || status == KV_ENOTFOUND;
}

/* Takes one replica's answer to GET_STATE (or READ_STATE). */
static int take_state(read_op *op, size_t i, const kvi_reply *reply)
{
    kvi_response resp;
    int rc = kvi_reply_decode(&resp, reply, op->opcode);
    if (rc == KV_OK) {
        kvi_buf_reset(&op->holders[i]);
        kvi_buf_raw(&op->holders[i], resp.value.data, resp.value.len);
        if (op->holders[i].failed)
            rc = KV_ENOMEM;
        else if (kvi_state_decode(&op->states[i], op->holders[i].data, op->holders[i].len,
                                  op->token) != KV_OK)
            rc = KV_EIO; /* a replica sent a malformed state */
    }
    if (rc == KV_ENOTFOUND)
        kvi_state_init(&op->states[i]);
    return rc;
}

static void state_answered(void *ctx, const kvi_reply *reply)
{
    read_slot *slot = ctx;
    read_op *op = slot->op;
    if (op->phase == GATHERING && !op->ended[slot->i]) {
        replica_ended(op, slot->i, take_state(op, slot->i, reply));
        coord_op_poke(&op->base);
    }
    coord_op_drop(&op->base);
}

static void ask(read_op *op, size_t i)
{
    kvi_view *v = op->base.env.view;
    op->asked[i] = 1;
    op->started++;
    if (coord_is_self(v, op->pref[i])) {
        int rc = kvi_replica_read(&op->states[i], &op->holders[i], op->base.env.local, op->key,
                                  op->key_len);
        if (rc == KV_ENOTFOUND)
            kvi_state_init(&op->states[i]);
        replica_ended(op, i, rc);
        return;
    }
    kvi_request req = {.opcode = op->opcode, .key = {op->key, op->key_len}};
    int rc = coord_op_send(&op->base, op->pref[i], &req, 0, 0, state_answered, &op->slots[i]);
    if (rc != KV_OK)
        replica_ended(op, i, rc);
}

static void fill_report(read_op *op)
{
    kvi_read_report *report = &op->report;
    const kvi_view *v = op->base.env.view;
    report->n = op->n;
    report->required = op->required;
    for (size_t i = 0; i < op->n; i++) {
        kvi_replica_answer *a = &report->answers[i];
        snprintf(a->node, sizeof a->node, "%s", v->members[op->pref[i]].id);
        a->status = op->status[i];
        int has = op->status[i] == KV_OK;
        a->version = has ? kvi_state_version(&op->states[i]) : 0;
        a->siblings = has ? (unsigned)op->states[i].n : 0;
        a->repaired = op->repaired[i];
    }
}

/* Gives the caller the read's result. */
static void complete(read_op *op, int rc)
{
    op->phase = READ_OVER;
    if (op->state_fn) {
        op->state_fn(op->state_ctx, rc, op->why, rc == KV_OK ? op->merged : NULL);
        coord_op_end(&op->base);
        return;
    }
    kvi_coord_result r = {.rc = rc, .why = op->why};
    if (op->want_report) {
        fill_report(op);
        r.report = &op->report;
    }
    if (rc == KV_OK) {
        r.rc = kvi_value_from_state(&r.value, op->merged, kvi_now_ms(), op->siblings ? 0 : 1);
        if (r.rc == KV_ENOMEM)
            snprintf(op->why, sizeof op->why, "out of memory copying a value");
        else if (r.rc == KV_ENOTFOUND)
            snprintf(op->why, sizeof op->why, "key not found");
    }
    coord_op_finish(&op->base, &r);
    kvi_value_free(r.value);
}

static void repair_answered(void *ctx, const kvi_reply *reply)
{
    (void)reply; /* an unfinished or failed repair is left to the next read */
    read_slot *slot = ctx;
    read_op *op = slot->op;
    op->repairs_ended++;
    coord_op_poke(&op->base);
    coord_op_drop(&op->base);
}

static void repairs_timed_out(coord_op *base)
{
    complete((read_op *)base, KV_OK);
}

/* Sends the merged state to the replicas that answered with less, and to
 * those whose record failed its checks (KV_ECORRUPT: their merge replaces
 * it), when the others gave something to send. */
static void start_repairs(read_op *op)
{
    const kvi_coord_env *env = &op->base.env;
    kvi_view *v = env->view;
    for (size_t i = 0; i < op->n; i++) {
        int corrupt = op->status[i] == KV_ECORRUPT;
        if (corrupt ? op->merged->n == 0
                    : (op->status[i] != KV_OK && op->status[i] != KV_ENOTFOUND) ||
                          kvi_state_equal(&op->states[i], op->merged))
            continue;
        op->repaired[i] = 1;
        if (env->read_repairs)
            atomic_fetch_add(env->read_repairs, 1);
        if (coord_is_self(v, op->pref[i])) {
            if (kvi_replica_merge(NULL, NULL, env->local, op->key, op->key_len, op->merged) !=
                KV_OK)
                kvi_log(env->log, KV_LOG_WARN, "read repair of the local replica failed: %s",
                        kvi_error_last());
            continue;
        }
        if (op->encoded.len == 0)
            kvi_state_encode(&op->encoded, op->merged, op->token);
        if (op->encoded.failed)
            break;
        kvi_request req = {.opcode = v->self >= 0 ? KVI_OP_REPLICATE : KVI_OP_REPAIR,
                           .key = {op->key, op->key_len},
                           .value = {op->encoded.data, op->encoded.len}};
        if (coord_op_send(&op->base, op->pref[i], &req, 0, 1, repair_answered,
                          &op->slots[i]) == KV_OK)
            op->repairs_sent++;
    }
}

/* ------------------------------------------------------------- rerouting */

static void read_begin(coord_op *base);

/* A replica refused the read as routed by an older ring than its own: the
 * node's view moves on within a moment (the refusing replica was asked
 * for its record); then the read starts again by it, once. */
static void view_moved(coord_op *base, int moved)
{
    read_op *op = (read_op *)base;
    if (op->phase != REROUTING)
        return;
    if (!moved) {
        complete(op, KVI_ENOT_REPLICA);
        return;
    }
    order_replicas(op);
    if (op->n > op->n_states) { /* more homes than states kept: never with one N */
        complete(op, KVI_ENOT_REPLICA);
        return;
    }
    memset(op->status, 0, sizeof op->status);
    memset(op->asked, 0, sizeof op->asked);
    memset(op->ended, 0, sizeof op->ended);
    memset(op->repaired, 0, sizeof op->repaired);
    op->next = 0;
    op->started = op->ended_n = op->ok_n = op->answered = 0;
    op->repairs_sent = op->repairs_ended = 0;
    op->speculated = 0;
    kvi_buf_reset(&op->encoded);
    op->phase = GATHERING;
    read_begin(base);
}

/* 0 when the read cannot start again: once already, a message still in
 * flight (its answer would land in the new round), or no way to learn the
 * view (a client, which asks the replica itself: client/remote.c). */
static int reroute_begin(read_op *op)
{
    if (op->rerouted || !op->base.env.fresh_view || op->ended_n < op->started)
        return 0;
    op->rerouted = 1;
    op->phase = REROUTING;
    coord_op_await_view(&op->base, view_moved);
    return 1;
}

/* Enough have answered, or no more will in time: merge what came. */
static void end_gathering(read_op *op)
{
    kvi_view *v = op->base.env.view;
    if (op->base.loop)
        kvi_loop_timer_cancel(op->base.loop, &op->speculate);
    int enough = op->ok_n >= op->required;
    int timed_out = 0;
    for (size_t i = 0; i < op->n; i++) {
        if (!op->asked[i])
            op->status[i] = KVI_ENOT_ASKED;
        else if (!op->ended[i])
            /* Still on its way once R had answered: not a failure. */
            op->status[i] = enough ? KVI_ENOT_WAITED : KV_ETIMEDOUT;
        timed_out |= op->status[i] == KV_ETIMEDOUT;
    }
    op->phase = REPAIRING;
    for (size_t i = 0; i < op->n; i++)
        if (op->status[i] == KVI_ENOT_REPLICA) {
            snprintf(op->why, sizeof op->why, "a replica has another view of the ring");
            if (!reroute_begin(op))
                complete(op, KVI_ENOT_REPLICA);
            return;
        }
    /* A replica that refused the key itself (over its key size limit: a
     * client checks only the ceilings) is no replica failing: the request
     * is what failed, and every replica would say so. */
    for (size_t i = 0; i < op->n; i++)
        if (op->status[i] == KV_ETOOBIG || op->status[i] == KV_EINVAL) {
            snprintf(op->why, sizeof op->why, "replica %s refused the key: %s",
                     v->members[op->pref[i]].id, kvi_strerror(op->status[i]));
            complete(op, op->status[i]);
            return;
        }
    kvi_state_init(op->merged);
    int rc = KV_OK;
    for (size_t i = 0; i < op->n && rc == KV_OK; i++) {
        if (op->status[i] != KV_OK && op->status[i] != KV_ENOTFOUND)
            continue;
        op->answered++;
        rc = kvi_state_merge(op->merged, &op->states[i]);
    }
    if (rc != KV_OK) {
        snprintf(op->why, sizeof op->why, "merging the replicas' answers: %s",
                 kvi_error_last());
        complete(op, rc);
        return;
    }
    if (op->answered < op->required) {
        snprintf(op->why, sizeof op->why, "%u of %zu replicas answered, %u required",
                 op->answered, op->n, op->required);
        /* What did answer still repairs the replicas that hold less (a
         * damaged record among them), in the background. */
        if (op->answered && !op->state_fn)
            start_repairs(op);
        complete(op, timed_out ? KV_ETIMEDOUT : KV_EUNAVAILABLE);
        return;
    }
    if (op->state_fn) {
        complete(op, KV_OK);
        return;
    }
    start_repairs(op);
    if (op->required > 1 && op->repairs_sent > op->repairs_ended)
        coord_op_set_deadline(&op->base, kvi_coord_timeout_ms(v), repairs_timed_out);
    else
        complete(op, KV_OK);
}

static void read_step(coord_op *base)
{
    read_op *op = (read_op *)base;
    if (op->phase == REPAIRING) {
        if (op->repairs_ended >= op->repairs_sent)
            complete(op, KV_OK);
        return;
    }
    if (op->phase != GATHERING)
        return;
    /* Keep R replicas in play: asked, and not failed. */
    for (;;) {
        unsigned failed = op->ended_n - op->ok_n;
        unsigned want = op->speculated ? (unsigned)op->n : op->required + failed;
        if (op->started >= want || op->next >= op->n)
            break;
        ask(op, op->next++);
    }
    if (op->ok_n >= op->required || (op->ended_n == op->started && op->next >= op->n))
        end_gathering(op);
}

static void speculate_now(void *ctx)
{
    read_op *op = ctx;
    op->speculated = 1;
    coord_op_hold(&op->base);
    coord_op_poke(&op->base);
    coord_op_drop(&op->base);
}

static void gathering_timed_out(coord_op *base)
{
    read_op *op = (read_op *)base;
    if (op->phase == GATHERING)
        end_gathering(op);
}

static void read_begin(coord_op *base)
{
    read_op *op = (read_op *)base;
    kvi_view *v = base->env.view;
    coord_op_set_deadline(base, kvi_coord_timeout_ms(v), gathering_timed_out);
    if (base->loop && op->required < op->n) {
        kvi_loop_timer_init(&op->speculate, speculate_now, op);
        kvi_loop_timer_set(base->loop, &op->speculate, kvi_loop_now_ms() + SPECULATIVE_MS);
    }
    read_step(base);
}

static int read_new(read_op **out, const kvi_coord_env *env, const void *key, size_t key_len,
                    unsigned required, kvi_coord_done_fn fn, void *ctx)
{
    uint32_t homes[MAX_PREF];
    size_t n = kvi_coord_homes(env->view, key, key_len, homes);
    read_op *op = calloc(1, sizeof *op + key_len);
    kvi_state *states = malloc((n + 1) * sizeof *states);
    if (!op || !states) {
        free(op);
        free(states);
        return kvi_error(KV_ENOMEM, "out of memory reading from the replicas");
    }
    op->states = states;
    op->merged = &states[n];
    op->n_states = n;
    coord_op_init(&op->base, env, fn, ctx);
    kvi_loop_timer_init(&op->speculate, speculate_now, op);
    op->base.step = read_step;
    op->base.start = read_begin;
    op->base.destroy = read_destroy;
    memcpy(op->key, key, key_len);
    op->key_len = key_len;
    op->token = kvi_key_token(key, key_len);
    op->opcode = env->view->self >= 0 ? KVI_OP_GET_STATE : KVI_OP_READ_STATE;
    op->required = required;
    for (size_t i = 0; i < MAX_PREF; i++)
        op->slots[i] = (read_slot){op, i};
    order_replicas(op); /* the same homes, in the order to ask them */
    *out = op;
    return KV_OK;
}

int kvi_coord_read_start(const kvi_coord_env *env, const void *key, size_t key_len,
                         kv_consistency consistency, unsigned r, int siblings, int want_report,
                         kvi_coord_done_fn fn, void *ctx)
{
    if (consistency == KV_CONSISTENCY_SERIAL)
        return kvi_error(KV_EINVAL, "a SERIAL read is run by kvi_coord_read");
    uint32_t pref[MAX_PREF];
    size_t n = kvi_coord_homes(env->view, key, key_len, pref);
    unsigned required;
    int rc = kvi_quorum_required(&required, consistency, r, (unsigned)n);
    if (rc != KV_OK)
        return rc;
    read_op *op;
    rc = read_new(&op, env, key, key_len, required, fn, ctx);
    if (rc != KV_OK)
        return rc;
    op->siblings = siblings;
    op->want_report = want_report;
    coord_op_name(&op->base, "get", consistency, op->key, key_len);
    coord_op_launch(&op->base);
    return KV_OK;
}

static void no_result(void *ctx, kvi_coord_result *r)
{
    (void)ctx;
    (void)r;
}

int coord_read_state_start(const kvi_coord_env *env, const void *key, size_t key_len,
                           unsigned required, coord_read_state_fn fn, void *ctx)
{
    read_op *op;
    int rc = read_new(&op, env, key, key_len, required, no_result, NULL);
    if (rc != KV_OK)
        return rc;
    op->state_fn = fn;
    op->state_ctx = ctx;
    coord_op_launch(&op->base);
    return KV_OK;
}
