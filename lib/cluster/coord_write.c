/* cluster/coord_write.c - a quorum write as a state machine (coord_op.h).
 *
 * A node in the key's preference list coordinates: it applies the write to
 * its own store (minting the dot and the scalar version), sends the
 * resulting state to the other replicas (REPLICATE) or their stand-ins
 * (HINT), and answers after W acknowledgements, its own included. Anyone
 * else forwards the write to the first home that takes it.
 *
 * Phases, each moved on by answers and the deadline, never by a thread
 * waiting:
 *   FORWARDING   not a home: hand the write to a home (or, from a client
 *                with no home left, to a stand-in), one after the other
 *   PROBING      which homes are reachable: each home's connection is up or
 *                is dialled; homes that are not get the next reachable
 *                members past the preference list as stand-ins (probed one
 *                at a time). Too few: refuse before applying anything
 *   READING      a CAS at a non-SERIAL level compares against a quorum read
 *   WRITING      the local write is staged with the loop iteration's other
 *                writes (cluster/write_stage.h), applied at its end
 *   REPLICATING  the local write is done; waiting for W acknowledgements
 *   REROUTING    a replica refused the write as routed by an older ring
 *                than its own: once this node's view has moved on, the
 *                state written here goes to the key's homes in the newer
 *                ring, counted afresh (once per write)
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/coord_op.h"
#include "cluster/hints.h"
#include "cluster/paxos_acceptor.h"
#include "cluster/quorum.h"
#include "cluster/replica_store.h"
#include "cluster/write_stage.h"
#include "format/record.h"
#include "storage/group_commit.h"
#include "storage/store.h"
#include "util/clock.h"
#include "util/error.h"

#define MAX_PREF KVI_COORD_MAX_PREF
/* A home with no place for its copy (not a stand-in either). */
#define NOWHERE UINT32_MAX

typedef struct write_op write_op;

typedef struct write_slot {
    write_op *op;
    size_t i;
} write_slot;

enum { FORWARDING, PROBING_HOMES, PROBING_STANDINS, READING, WRITING, REPLICATING, REROUTING,
       WRITE_OVER };

struct write_op {
    coord_op base;
    int phase;
    kvi_coord_write w;        /* key, value and context point into data */
    uint64_t token;
    unsigned required;
    size_t n;                 /* home replicas */
    uint32_t home[MAX_PREF];
    uint32_t via[MAX_PREF];   /* the home, its stand-in, or NOWHERE */
    signed char probe[MAX_PREF]; /* 0: waiting, 1: reachable, -1: not */
    unsigned probes_pending;
    unsigned live;            /* homes with a `via` */
    int self_home;
    kvi_vv *ctx;
    write_slot slots[MAX_PREF];
    /* FORWARDING: the members to try, in order. */
    uint32_t *order;
    size_t n_order, next_order;
    char forward_why[300];
    /* PROBING_STANDINS: candidates past the preference list. */
    uint32_t *cand;
    size_t n_cand, next_cand;
    size_t filling;           /* the home a stand-in is being found for */
    write_slot cand_slot;
    /* READING: the quorum read of a CAS. */
    kvi_buf read_holder;
    kvi_state *read_state;
    /* WRITING: the local write, as staged or made in place. */
    kvi_replica_write_args args;
    kvi_sibling sib;
    kvi_staged_write staged;
    /* REPLICATING */
    kvi_buf encoded;
    uint64_t created_ms;
    unsigned char sent[MAX_PREF], ended[MAX_PREF];
    unsigned sent_n, ended_n, acked, unknown, sloppy;
    /* A topology change in progress: the key's future homes that are not
     * current ones (pending), which get the write too; it succeeds only
     * with W acknowledgements among the future homes as well. */
    size_t n_pend;
    uint32_t pend[MAX_PREF];
    write_slot pend_slots[MAX_PREF];
    unsigned char pend_ended[MAX_PREF];
    unsigned char home_future[MAX_PREF]; /* current home i is a future home */
    unsigned fut_acked, fut_required;
    int self_future;          /* this node is a home of both rings */
    int started;              /* the state went out to the others */
    /* Replicas that refused the key as routed by an older ring; whether
     * the write was routed again, and the outcome it would have had. */
    unsigned refused;
    int rerouted;
    int unrouted_rc;
    /* sync always: the local write waits for the group committer. */
    int local_pending;
    unsigned self_counts;
    kvi_sync_request sync_req;
    kvi_loop_task synced_task;
    int synced_rc;
    uint64_t version;
    char why[320];
    unsigned char data[];
};

static void write_destroy(coord_op *base)
{
    write_op *op = (write_op *)base;
    free(op->ctx);
    free(op->order);
    free(op->cand);
    free(op->read_state);
    kvi_buf_free(&op->read_holder);
    kvi_buf_free(&op->encoded);
    free(op);
}

static void complete(write_op *op, int rc, const char *why)
{
    op->phase = WRITE_OVER;
    if (why != op->why)
        snprintf(op->why, sizeof op->why, "%s", why ? why : "");
    kvi_coord_result r = {.rc = rc, .why = op->why, .version = op->version};
    coord_op_finish(&op->base, &r);
}

/* --------------------------------------------------------------- forwarding */

static uint8_t write_opcode(const kvi_coord_write *w)
{
    return w->kind == KVI_WRITE_PUT ? KVI_OP_PUT
         : w->kind == KVI_WRITE_DELETE ? KVI_OP_DELETE : KVI_OP_CAS;
}

static void begin_probing(write_op *op);
static void forward_next(write_op *op);

static void forward_answered(void *ctx, const kvi_reply *reply)
{
    write_op *op = ctx;
    kvi_view *v = op->base.env.view;
    uint32_t member = op->order[op->next_order - 1];
    kvi_response resp;
    int rc = kvi_reply_decode(&resp, reply, write_opcode(&op->w));
    if ((rc == KV_OK || rc == KV_ECONFLICT))
        op->version = resp.version;
    if (rc != KV_EUNAVAILABLE) {
        /* Done, or it may have applied: another could apply it twice. */
        complete(op, rc, kvi_error_last());
    } else {
        /* The first node that answered "unavailable" said why (too few
         * replicas reachable from there, not applied): that is the answer
         * to give, not the connection error of a node tried after it. */
        if (reply->rc == KV_OK && !op->forward_why[0])
            snprintf(op->forward_why, sizeof op->forward_why, "%s: %s", v->members[member].id,
                     kvi_error_last());
        forward_next(op);
    }
    coord_op_poke(&op->base);
    coord_op_drop(&op->base);
}

static void forward_next(write_op *op)
{
    kvi_view *v = op->base.env.view;
    const kvi_coord_write *w = &op->w;
    while (op->next_order < op->n_order) {
        uint32_t member = op->order[op->next_order++];
        kvi_request req = {
            .opcode = write_opcode(w), .consistency = (uint8_t)w->consistency,
            .quorum = (uint8_t)w->w, .ttl_s = w->ttl_s, .expected_version = w->expected_version,
            .key = {w->key, w->key_len}, .value = {w->value, w->value_len},
            .context = {w->context, w->context_len},
        };
        uint16_t flags = (uint16_t)((w->siblings ? KVI_FRAME_FLAG_SIBLINGS : 0) |
                                    (w->home_only ? KVI_FRAME_FLAG_HOME_ONLY : 0) |
                                    (v->self >= 0 ? KVI_FRAME_FLAG_FORWARDED : 0));
        if (coord_op_send(&op->base, member, &req, flags, 1, forward_answered, op) == KV_OK)
            return;
    }
    /* Nobody took it. A node may still coordinate it with stand-ins. */
    if (v->self >= 0 && !w->home_only && op->base.env.local) {
        begin_probing(op);
        return;
    }
    complete(op, KV_EUNAVAILABLE,
             op->forward_why[0] ? op->forward_why : "no replica of this key is reachable");
}

/* A node that is not a home of the key (or a client) sends the write to
 * the first home that takes it. Homes held down go last, and are skipped
 * altogether under sloppy quorum, where a stand-in takes their place. A
 * client with no home left sends it to a stand-in, which coordinates it. */
static void begin_forwarding(write_op *op)
{
    const kvi_coord_env *env = &op->base.env;
    kvi_view *v = env->view;
    const kvi_coord_write *w = &op->w;
    op->phase = FORWARDING;
    op->order = malloc((op->n + v->n) * sizeof *op->order);
    if (!op->order) {
        complete(op, KV_ENOMEM, "out of memory forwarding a write");
        return;
    }
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < op->n; i++)
            if ((kvi_coord_down(env, op->home[i]) != 0) == pass && (pass == 0 || w->home_only))
                op->order[op->n_order++] = op->home[i];
    if (!w->home_only && v->self < 0) {
        uint32_t walk[KVI_RING_MAX_MEMBERS];
        size_t nw = kvi_ring_walk(v->ring, op->token, walk, KVI_RING_MAX_MEMBERS);
        for (size_t i = op->n; i < nw && op->n_order < op->n + v->n; i++)
            if (!kvi_coord_down(env, walk[i]))
                op->order[op->n_order++] = walk[i];
    }
    forward_next(op);
}

/* ------------------------------------------------------------------ probing */

static void start_write(write_op *op);

static void home_probed(void *ctx, const kvi_reply *reply)
{
    write_slot *slot = ctx;
    write_op *op = slot->op;
    op->probe[slot->i] = reply->rc == KV_OK ? 1 : -1;
    op->probes_pending--;
    coord_op_poke(&op->base);
    coord_op_drop(&op->base);
}

static void candidate_probed(void *ctx, const kvi_reply *reply)
{
    write_slot *slot = ctx;
    write_op *op = slot->op;
    if (reply->rc == KV_OK) {
        op->via[op->filling] = op->cand[op->next_cand - 1];
        op->live++;
    }
    op->probes_pending--;
    coord_op_poke(&op->base);
    coord_op_drop(&op->base);
}

/* Whether each home can be reached now: connected, or connectable. */
static void begin_probing(write_op *op)
{
    const kvi_coord_env *env = &op->base.env;
    kvi_view *v = env->view;
    op->phase = PROBING_HOMES;
    for (size_t i = 0; i < op->n; i++) {
        uint32_t m = op->home[i];
        if (coord_is_self(v, m)) {
            op->probe[i] = 1;
        } else if (kvi_coord_down(env, m)) {
            op->probe[i] = -1;
        } else {
            op->probes_pending++;
            coord_op_hold(&op->base);
            if (kvi_client_connect_async(kvi_view_client(v, m), home_probed, &op->slots[i]) !=
                KV_OK) {
                op->probe[i] = -1;
                op->probes_pending--;
                coord_op_drop(&op->base);
            }
        }
    }
}

/* Candidates for stand-ins: this node first when it is not a home (it
 * coordinates because no home could), then the members clockwise past the
 * preference list. */
static int list_candidates(write_op *op)
{
    kvi_view *v = op->base.env.view;
    uint32_t walk[KVI_RING_MAX_MEMBERS];
    size_t w = kvi_ring_walk(v->ring, op->token, walk, KVI_RING_MAX_MEMBERS);
    op->cand = malloc((w + 1) * sizeof *op->cand);
    if (!op->cand)
        return KV_ENOMEM;
    if (v->self >= 0 && !op->self_home)
        op->cand[op->n_cand++] = (uint32_t)v->self;
    for (size_t i = op->n; i < w; i++)
        if (!coord_is_self(v, walk[i]))
            op->cand[op->n_cand++] = walk[i];
    return KV_OK;
}

/* Finds a stand-in for each home without a place, one probe at a time.
 * Returns 1 when every home has been seen to. */
static int fill_standins(write_op *op)
{
    const kvi_coord_env *env = &op->base.env;
    kvi_view *v = env->view;
    while (op->probes_pending == 0) {
        while (op->filling < op->n && op->via[op->filling] != NOWHERE)
            op->filling++;
        if (op->filling >= op->n || op->next_cand >= op->n_cand)
            return 1;
        uint32_t c = op->cand[op->next_cand++];
        if (coord_is_self(v, c)) {
            op->via[op->filling] = c;
            op->live++;
            continue;
        }
        if (kvi_coord_down(env, c))
            continue;
        op->probes_pending++;
        coord_op_hold(&op->base);
        if (kvi_client_connect_async(kvi_view_client(v, c), candidate_probed, &op->cand_slot) !=
            KV_OK) {
            op->probes_pending--;
            coord_op_drop(&op->base);
        }
    }
    return 0;
}

/* Every probe is in: the plan is known. */
static void plan_known(write_op *op)
{
    op->live = 0;
    for (size_t i = 0; i < op->n; i++) {
        op->via[i] = op->probe[i] > 0 ? op->home[i] : NOWHERE;
        op->live += op->via[i] != NOWHERE;
    }
    if (op->w.home_only || op->live == op->n) {
        start_write(op);
        return;
    }
    if (list_candidates(op) != KV_OK) {
        complete(op, KV_ENOMEM, "out of memory planning a write");
        return;
    }
    op->phase = PROBING_STANDINS;
    if (fill_standins(op))
        start_write(op);
}

/* ------------------------------------------------------------------ writing */

static void keep_hint(write_op *op, size_t i)
{
    const kvi_coord_env *env = &op->base.env;
    const char *target = env->view->members[op->home[i]].id;
    if (!env->hints || op->encoded.failed)
        return;
    if (kvi_hints_put(env->hints, target, op->created_ms, op->w.key, op->w.key_len,
                      op->encoded.data, op->encoded.len) != KV_OK)
        kvi_log(env->log, KV_LOG_ERROR, "cannot keep a hint for %s: %s", target,
                kvi_error_last());
}

/* A pending home's answer (a future home that is no current one). */
static void pending_answered(write_op *op, size_t k, const kvi_reply *reply)
{
    kvi_view *v = op->base.env.view;
    kvi_response resp;
    int rc = kvi_reply_decode(&resp, reply, KVI_OP_REPLICATE);
    const char *id = kvi_view_member_at(v, op->pend[k])->id;
    coord_op_answered(&op->base, op->pend[k], rc);
    op->refused += rc == KVI_ENOT_REPLICA;
    if (reply->rc == KV_OK && rc != KV_OK)
        kvi_log(op->base.env.log, KV_LOG_WARN, "future replica %s refused a write: %s", id,
                kvi_error_last());
    if (rc != KV_OK && op->base.env.hints && !op->encoded.failed &&
        kvi_hints_put(op->base.env.hints, id, op->created_ms, op->w.key, op->w.key_len,
                      op->encoded.data, op->encoded.len) != KV_OK)
        kvi_log(op->base.env.log, KV_LOG_ERROR, "cannot keep a hint for %s: %s", id,
                kvi_error_last());
    if (!op->pend_ended[k]) {
        op->pend_ended[k] = 1;
        op->ended_n++;
        op->fut_acked += rc == KV_OK;
        coord_op_poke(&op->base);
    }
}

static void replica_answered(void *ctx, const kvi_reply *reply)
{
    write_slot *slot = ctx;
    write_op *op = slot->op;
    size_t i = slot->i;
    if (i >= op->n) {
        pending_answered(op, i - op->n, reply);
        coord_op_drop(&op->base);
        return;
    }
    kvi_view *v = op->base.env.view;
    int hinted = op->via[i] != op->home[i];
    kvi_response resp;
    int rc = kvi_reply_decode(&resp, reply, hinted ? KVI_OP_HINT : KVI_OP_REPLICATE);
    coord_op_answered(&op->base, op->via[i], rc);
    op->refused += rc == KVI_ENOT_REPLICA;
    if (reply->rc == KV_OK && rc != KV_OK)
        kvi_log(op->base.env.log, KV_LOG_WARN, "%s %s refused a write: %s",
                hinted ? "stand-in" : "replica", v->members[op->via[i]].id, kvi_error_last());
    /* A home that never took the write gets a hint here, even once the
     * caller has its answer. */
    if (rc != KV_OK)
        keep_hint(op, i);
    if (!op->ended[i]) {
        op->ended[i] = 1;
        op->ended_n++;
        op->acked += rc == KV_OK;
        op->fut_acked += rc == KV_OK && !hinted && op->home_future[i];
        op->sloppy += rc == KV_OK && hinted;
        op->unknown += rc == KV_EUNKNOWN_OUTCOME || rc == KV_ETIMEDOUT;
        coord_op_poke(&op->base);
    }
    coord_op_drop(&op->base);
}

/* kvi_replica_write_args.on_state, under the key lock: keeps the new
 * state, encoded, for the replicas. Nothing is sent from there: sending
 * can run other requests' callbacks at once (a connection that comes up
 * answers their probes), and one of them may want the same key lock. On
 * the loop the frames go out at the end of the iteration anyway. */
static void keep_state(void *ctx, const kvi_state *state)
{
    write_op *op = ctx;
    kvi_state_encode(&op->encoded, state, op->token);
    op->created_ms = kvi_now_ms();
}

/* Sends the new state to each home (REPLICATE) or its stand-in (HINT). */
static void start_replication(write_op *op)
{
    kvi_view *v = op->base.env.view;
    if (op->encoded.failed || op->encoded.len == 0)
        return;
    for (size_t i = 0; i < op->n; i++) {
        uint32_t via = op->via[i];
        if (via == NOWHERE || coord_is_self(v, via))
            continue; /* hinted after the local write, or the local write itself */
        const char *home_id = v->members[op->home[i]].id;
        kvi_request req = {.opcode = via == op->home[i] ? KVI_OP_REPLICATE : KVI_OP_HINT,
                           .key = {op->w.key, op->w.key_len},
                           .value = {op->encoded.data, op->encoded.len},
                           .context = {(const unsigned char *)home_id, strlen(home_id)}};
        op->sent[i] = 1;
        op->sent_n++;
        if (coord_op_send(&op->base, via, &req, 0, 1, replica_answered, &op->slots[i]) !=
            KV_OK) {
            op->ended[i] = 1;
            op->ended_n++;
            keep_hint(op, i);
        }
    }
    for (size_t k = 0; k < op->n_pend; k++) {
        if (coord_is_self(v, op->pend[k])) { /* the local write holds it */
            op->pend_ended[k] = 1;
            op->fut_acked++;
            continue;
        }
        kvi_request req = {.opcode = KVI_OP_REPLICATE,
                           .key = {op->w.key, op->w.key_len},
                           .value = {op->encoded.data, op->encoded.len}};
        op->pend_slots[k] = (write_slot){op, op->n + k};
        op->sent_n++;
        if (coord_op_send(&op->base, op->pend[k], &req, 0, 1, replica_answered,
                          &op->pend_slots[k]) != KV_OK) {
            op->pend_ended[k] = 1;
            op->ended_n++;
        }
    }
    op->started = 1;
}

/* Keeps hints here for the homes the plan found no place for, and for the
 * home this node stands in for. Called after the local write succeeded. */
static void keep_local_hints(write_op *op)
{
    kvi_view *v = op->base.env.view;
    for (size_t i = 0; i < op->n; i++) {
        if (coord_is_self(v, op->home[i]) ||
            (op->via[i] != NOWHERE && !coord_is_self(v, op->via[i])))
            continue;
        if (op->via[i] != NOWHERE)
            op->sloppy++;
        keep_hint(op, i);
    }
}

/* An absolute expiry ttl_s from now, saturating rather than wrapping into
 * the past (the validation layer keeps TTLs far below this). */
static uint64_t expiry_after(uint64_t now_ms, uint64_t ttl_s)
{
    if (ttl_s > (UINT64_MAX - now_ms) / 1000u)
        return UINT64_MAX;
    return now_ms + ttl_s * 1000u;
}

static int reroute_begin(write_op *op, int rc);

static void replication_over(write_op *op)
{
    if (op->sloppy && op->base.env.sloppy_writes)
        atomic_fetch_add(op->base.env.sloppy_writes, 1);
    int rc = kvi_quorum_write_outcome(op->acked, op->unknown, op->required);
    if (rc == KV_OK && op->fut_acked < op->fut_required) {
        /* Applied at W current homes, which serve reads until the change
         * finishes; but not yet at W of the homes that serve them after. */
        snprintf(op->why, sizeof op->why, "written to %u replicas, but to %u of the key's "
                 "homes once the topology change in progress finishes, %u required",
                 op->acked, op->fut_acked, op->fut_required);
        if (!reroute_begin(op, KV_EUNKNOWN_OUTCOME))
            complete(op, KV_EUNKNOWN_OUTCOME, op->why);
        return;
    }
    if (rc != KV_OK) {
        snprintf(op->why, sizeof op->why, "%s", kvi_error_last());
        if (reroute_begin(op, rc))
            return;
    }
    complete(op, rc, rc == KV_OK ? "" : op->why);
}

/* ------------------------------------------------------------- rerouting */

static void replication_timed_out(coord_op *base);

/* The key's homes in the op's (newer) view, every copy to be sent again
 * and counted afresh; the state written here counts if this node is a
 * home there. */
static int route_again(write_op *op)
{
    kvi_view *v = op->base.env.view;
    const kvi_coord_write *w = &op->w;
    op->n = kvi_coord_homes(v, w->key, w->key_len, op->home);
    if (kvi_quorum_required(&op->required, w->consistency, w->w, (unsigned)op->n) != KV_OK)
        return -1;
    op->n_pend = kvi_coord_pending(v, w->key, w->key_len, op->home, op->n, op->pend,
                                   op->home_future);
    op->fut_required = op->n_pend ? op->required : 0;
    op->self_home = op->self_future = 0;
    for (size_t i = 0; i < op->n; i++) {
        op->self_home |= coord_is_self(v, op->home[i]);
        op->self_future |= coord_is_self(v, op->home[i]) && op->home_future[i];
        op->via[i] = op->home[i];
        op->slots[i] = (write_slot){op, i};
        op->sent[i] = op->ended[i] = 0;
    }
    memset(op->pend_ended, 0, sizeof op->pend_ended);
    op->sent_n = op->ended_n = op->acked = op->unknown = op->sloppy = op->refused = 0;
    op->self_counts = (unsigned)op->self_home;
    op->acked = op->self_counts;
    op->fut_acked = op->self_future ? op->self_counts : 0u;
    return 0;
}

static void view_moved(coord_op *base, int moved)
{
    write_op *op = (write_op *)base;
    if (op->phase != REROUTING)
        return;
    if (!moved || route_again(op) != 0) {
        complete(op, op->unrouted_rc, op->why);
        return;
    }
    op->phase = REPLICATING;
    start_replication(op);
    coord_op_set_deadline(base, kvi_coord_timeout_ms(base->env.view), replication_timed_out);
    coord_op_poke(base);
}

/* A replica refused the write as routed by an older ring (rc: the outcome
 * it would have had): waits for this node's view to move on, then routes
 * it again. 0 when it cannot: no refusal, once already, a copy still in
 * flight, nothing to send, or no way to learn the view (a client). */
static int reroute_begin(write_op *op, int rc)
{
    if (!op->refused || op->rerouted || !op->base.env.fresh_view ||
        op->ended_n < op->sent_n || op->local_pending || op->encoded.failed ||
        op->encoded.len == 0)
        return 0;
    op->rerouted = 1;
    op->unrouted_rc = rc;
    op->phase = REROUTING;
    coord_op_await_view(&op->base, view_moved);
    return 1;
}

static void replication_timed_out(coord_op *base)
{
    write_op *op = (write_op *)base;
    if (op->phase != REPLICATING)
        return;
    /* Given up on: may have applied. */
    op->unknown += op->sent_n - op->ended_n + (op->local_pending ? 1u : 0u);
    replication_over(op);
}

/* On the loop: the local write is durable (or its sync failed). */
static void local_synced(void *ctx)
{
    write_op *op = ctx;
    op->local_pending = 0;
    if (op->phase == REPLICATING) {
        if (op->synced_rc == KV_OK) {
            op->acked += op->self_counts;
            op->fut_acked += op->self_future ? op->self_counts : 0u;
        }
        else
            op->unknown++; /* written, but perhaps not durable */
        coord_op_poke(&op->base);
    }
    coord_op_drop(&op->base);
}

/* On the committer's thread. */
static void local_durable(void *ctx, int rc)
{
    write_op *op = ctx;
    op->synced_rc = rc;
    kvi_loop_post(op->base.loop, &op->synced_task, local_synced, op);
}

/* The local write is made (rc; current is the version a CAS compared):
 * send it to the others, or finish with the refusal. */
static void local_written(write_op *op, int rc, uint64_t current, int synced_here)
{
    kvi_view *v = op->base.env.view;
    if (rc == KV_ECONFLICT)
        op->version = current;
    /* This node's own write counts when it is a home or a stand-in. */
    int self_counts = op->self_home;
    for (size_t i = 0; i < op->n; i++)
        self_counts |= op->via[i] != NOWHERE && coord_is_self(v, op->via[i]);
    if (rc != KV_OK) {
        /* Nothing was sent: refused here (a conflict, the sibling limit)
         * or failed here, the write applied nowhere. */
        char local_error[200];
        snprintf(local_error, sizeof local_error, "%s", kvi_error_last());
        complete(op, rc, local_error);
        return;
    }
    op->version = op->sib.version;
    start_replication(op);
    if (op->started)
        keep_local_hints(op);
    op->self_counts = (unsigned)self_counts;
    kvi_store *store = kvi_embedded_store(op->base.env.local);
    if (!synced_here && kvi_store_sync_always(store)) {
        /* Under sync always a loop writes unsynced and counts its own copy
         * once the group committer says it is durable: the loop never
         * waits on a disk. */
        op->local_pending = 1;
        coord_op_hold(&op->base);
        kvi_group_commit_request(kvi_store_committer(store), &op->sync_req, local_durable, op);
    } else {
        op->acked += op->self_counts;
        op->fut_acked += op->self_future ? op->self_counts : 0u;
    }
    op->phase = REPLICATING;
    coord_op_set_deadline(&op->base, kvi_coord_timeout_ms(v), replication_timed_out);
}

/* On the loop, at the end of the iteration: the staged write is made. */
static void staged_written(kvi_staged_write *sw)
{
    write_op *op = (write_op *)((char *)sw - offsetof(write_op, staged));
    if (op->phase == WRITING) {
        if (sw->item.status != KV_OK)
            kvi_error(sw->item.status, "%s", sw->why);
        local_written(op, sw->item.status, sw->item.current_version, 0);
        coord_op_poke(&op->base);
    }
    coord_op_drop(&op->base);
}

/* Applies the write here (staged with the loop iteration's other writes
 * when the node has a stage on this loop, else at once), then sends it to
 * the others. */
static void local_write(write_op *op)
{
    const kvi_coord_env *env = &op->base.env;
    kvi_view *v = env->view;
    const kvi_coord_write *w = &op->w;
    uint64_t now = kvi_now_ms();
    op->sib = (kvi_sibling){
        .tombstone = w->kind == KVI_WRITE_DELETE,
        .expiry_ms = w->kind != KVI_WRITE_DELETE && w->ttl_s ? expiry_after(now, w->ttl_s) : 0,
        .write_ms = now,
        .value = w->kind == KVI_WRITE_DELETE ? NULL : w->value,
        .value_len = w->kind == KVI_WRITE_DELETE ? 0 : w->value_len,
    };
    op->args = (kvi_replica_write_args){
        .node = v->members[v->self].id,
        .ctx = op->ctx,
        .supersede_held = !w->siblings || w->kind == KVI_WRITE_CAS,
        .merge_first = op->read_state,
        .check_version = w->kind == KVI_WRITE_CAS,
        .expected_version = w->expected_version,
        .on_state = keep_state,
        .on_state_ctx = op,
    };
    if (env->stage && op->base.loop && kvi_write_stage_loop(env->stage) == op->base.loop) {
        op->staged.item = (kvi_merge_item){.key = w->key, .key_len = w->key_len,
                                           .args = &op->args, .value = &op->sib};
        op->staged.done = staged_written;
        op->phase = WRITING;
        coord_op_hold(&op->base);
        kvi_write_stage_add(env->stage, &op->staged);
        return;
    }
    /* In place: unsynced under sync always when a loop runs the op (the
     * committer makes it durable), else as the policy says. */
    kvi_store *store = kvi_embedded_store(env->local);
    op->args.unsynced = op->base.loop && kvi_store_sync_always(store);
    kvi_state *st = malloc(sizeof *st);
    kvi_buf holder = {0};
    uint64_t current = 0;
    int rc = st ? kvi_replica_coordinate(st, &holder, env->local, w->key, w->key_len, &op->args,
                                         &op->sib, &current)
                : kvi_error(KV_ENOMEM, "out of memory writing");
    kvi_buf_free(&holder);
    free(st);
    local_written(op, rc, current, !op->args.unsynced);
}

static void cas_read_done(void *ctx, int rc, const char *why, const kvi_state *merged)
{
    write_op *op = ctx;
    if (op->phase == READING) {
        if (rc != KV_OK) {
            complete(op, rc, why);
        } else {
            /* A copy whose values point into the op's own buffer: the
             * read's buffers go with it. (Copied field by field, not
             * encoded: an empty state, a key never written, has no
             * encoding.) */
            op->read_state = malloc(sizeof *op->read_state);
            if (op->read_state) {
                *op->read_state = *merged;
                for (size_t i = 0; i < merged->n; i++)
                    kvi_buf_raw(&op->read_holder, merged->sibs[i].value,
                                merged->sibs[i].value_len);
            }
            if (!op->read_state || op->read_holder.failed) {
                complete(op, KV_ENOMEM, "out of memory reading for a CAS");
            } else {
                size_t at = 0;
                for (size_t i = 0; i < merged->n; i++) {
                    op->read_state->sibs[i].value =
                        op->read_holder.data ? op->read_holder.data + at : NULL;
                    at += merged->sibs[i].value_len;
                }
                local_write(op);
            }
        }
        coord_op_poke(&op->base);
    }
    coord_op_drop(&op->base);
}

/* The plan is known: refuse if it cannot reach W, else read (CAS) and
 * write. */
static void start_write(write_op *op)
{
    if (op->live < op->required) {
        snprintf(op->why, sizeof op->why, "%u of %zu replicas reachable%s, %u required; the "
                                          "write was not applied", op->live, op->n,
                 op->w.home_only ? " (home replicas only)" : " with stand-ins", op->required);
        complete(op, KV_EUNAVAILABLE, op->why);
        return;
    }
    if (op->w.kind != KVI_WRITE_CAS) {
        local_write(op);
        return;
    }
    /* Compare against a quorum read, not only this replica. */
    unsigned q;
    kvi_quorum_required(&q, KV_CONSISTENCY_QUORUM, 0, (unsigned)op->n);
    op->phase = READING;
    coord_op_hold(&op->base);
    int rc = coord_read_state_start(&op->base.env, op->w.key, op->w.key_len, q, cas_read_done,
                                    op);
    if (rc != KV_OK) {
        coord_op_drop(&op->base);
        complete(op, rc, kvi_error_last());
    }
}

static void write_step_once(write_op *op)
{
    switch (op->phase) {
    case PROBING_HOMES:
        if (op->probes_pending == 0)
            plan_known(op);
        break;
    case PROBING_STANDINS:
        if (fill_standins(op))
            start_write(op);
        break;
    case REPLICATING:
        if ((op->acked >= op->required && op->fut_acked >= op->fut_required) ||
            (op->ended_n >= op->sent_n && !op->local_pending))
            replication_over(op);
        break;
    default:
        break;
    }
}

static void write_step(coord_op *base)
{
    write_op *op = (write_op *)base;
    int before;
    do {
        before = op->phase;
        write_step_once(op);
    } while (op->phase != before && !base->finished);
}

static void write_begin(coord_op *base)
{
    write_op *op = (write_op *)base;
    const kvi_coord_env *env = &base->env;
    kvi_view *v = env->view;
    const kvi_coord_write *w = &op->w;
    op->n = kvi_coord_homes(v, w->key, w->key_len, op->home);
    int rc = kvi_quorum_required(&op->required, w->consistency, w->w, (unsigned)op->n);
    if (rc != KV_OK) {
        complete(op, rc, kvi_error_last());
        return;
    }
    for (size_t i = 0; i < op->n; i++)
        op->self_home |= coord_is_self(v, op->home[i]);
    op->n_pend = kvi_coord_pending(v, w->key, w->key_len, op->home, op->n, op->pend,
                                   op->home_future);
    op->fut_required = op->n_pend ? op->required : 0;
    for (size_t i = 0; i < op->n; i++)
        op->self_future |= coord_is_self(v, op->home[i]) && op->home_future[i];
    /* A client, or a node that is not a home, hands the write to a home.
     * A node coordinates it itself only when forwarded to (never forward
     * twice), or when no home would take it and stand-ins may. */
    if (!op->self_home && !w->forwarded) {
        begin_forwarding(op);
        return;
    }
    if (!op->self_home && (w->home_only || !env->local)) {
        complete(op, KV_EUNAVAILABLE, "this node is not a replica of the key; the nodes "
                                      "disagree about the ring");
        return;
    }
    begin_probing(op);
}

int kvi_coord_write_needs_serial(const kvi_coord_env *env, const kvi_coord_write *w)
{
    kvi_view *v = env->view;
    if (v->self < 0 || !env->local)
        return 0; /* a client hands SERIAL writes to a node like any other */
    /* CAS is SERIAL unless the caller asked for another level: a CAS that
     * two coordinators can both win is no CAS (issue 11). */
    if (w->consistency == KV_CONSISTENCY_SERIAL ||
        (w->kind == KVI_WRITE_CAS && w->consistency == KV_CONSISTENCY_DEFAULT))
        return 1;
    /* A key that has seen SERIAL writes keeps its versions in Paxos order:
     * a write at another level to it goes through Paxos too (the level's W
     * becomes a majority of the homes), so it can never fork the versions
     * a SERIAL CAS compares. Only a home holds that record. */
    uint32_t home[MAX_PREF];
    size_t n = kvi_coord_homes(v, w->key, w->key_len, home);
    int self_home = 0;
    for (size_t i = 0; i < n; i++)
        self_home |= coord_is_self(v, home[i]);
    if (!self_home)
        return 0;
    return kvi_paxos_has_record(env->local, w->key, w->key_len);
}

int kvi_coord_write_start(const kvi_coord_env *env, const kvi_coord_write *w,
                          kvi_coord_done_fn fn, void *ctx)
{
    size_t len = w->key_len + w->value_len + w->context_len;
    write_op *op = calloc(1, sizeof *op + len);
    if (!op)
        return kvi_error(KV_ENOMEM, "out of memory writing");
    if (w->context_len) {
        op->ctx = malloc(sizeof *op->ctx);
        kvi_reader rd = kvi_reader_init(w->context, w->context_len);
        if (!op->ctx || kvi_vv_decode(op->ctx, &rd) != 0 || kvi_reader_done(&rd) != 0) {
            int oom = !op->ctx;
            free(op->ctx);
            free(op);
            return oom ? kvi_error(KV_ENOMEM, "out of memory reading the context")
                       : kvi_error(KV_EINVAL, "the context is malformed (pass back the bytes "
                                              "kv_value_context returned)");
        }
    }
    coord_op_init(&op->base, env, fn, ctx);
    op->base.step = write_step;
    op->base.start = write_begin;
    op->base.destroy = write_destroy;
    op->w = *w;
    unsigned char *p = op->data;
    memcpy(p, w->key, w->key_len);
    op->w.key = p;
    p += w->key_len;
    if (w->value_len)
        memcpy(p, w->value, w->value_len);
    op->w.value = p;
    p += w->value_len;
    if (w->context_len)
        memcpy(p, w->context, w->context_len);
    op->w.context = w->context_len ? p : NULL;
    static const char *const kinds[] = {"?", "put", "delete", "cas"};
    coord_op_name(&op->base, kinds[w->kind <= KVI_WRITE_CAS ? w->kind : 0], w->consistency,
                  op->w.key, w->key_len);
    op->token = kvi_key_token(w->key, w->key_len);
    for (size_t i = 0; i < MAX_PREF; i++)
        op->slots[i] = (write_slot){op, i};
    op->cand_slot = (write_slot){op, 0};
    coord_op_launch(&op->base);
    return KV_OK;
}
