/*
 * node/node_replica.c - a node's side of replication: GET_STATE, REPLICATE,
 * HINT and the Paxos acceptor's messages from other members; REPLICATEs
 * and Paxos messages applied on the I/O loop, those of an iteration
 * together (kvi_node_replication_loop_batch).
 */
#include "node/node_internal.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/coordinator.h"
#include "cluster/paxos_acceptor.h"
#include "cluster/serial.h"
#include "cluster/replica_store.h"
#include "cluster/view.h"
#include "cluster/write_stage.h"
#include "format/record.h"
#include "storage/group_commit.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/validate.h"

/* Decodes a replicated state sent with a key (REPLICATE, HINT) and checks
 * each sibling's value against this node's limits. */
static int check_state(kvi_node *n, kvi_state *st, const kvi_request *req, uint64_t token)
{
    if (kvi_state_decode(st, req->value.data, req->value.len, token) != KV_OK)
        return kvi_error(KV_EINVAL, "malformed or damaged state for this key");
    uint64_t latest = kvi_now_ms() + KVI_MAX_WRITE_AHEAD_MS;
    for (size_t i = 0; i < st->n; i++) {
        int rc = kvi_check_value(&n->limits, st->sibs[i].value, st->sibs[i].value_len);
        if (rc != KV_OK)
            return kvi_error(rc, "a sibling's %s", kvi_error_last());
        /* A write time far ahead would win last-write-wins against every
         * real write for years: no coordinator's clock is that wrong. */
        if (st->sibs[i].write_ms > latest)
            return kvi_error(KV_EINVAL, "a sibling written more than a day in the future");
    }
    return KV_OK;
}

/* Checks a GET_STATE or REPLICATE request before it touches the store:
 * the key's size, and that this node is one of the key's replicas in its
 * own ring (else KVI_ENOT_REPLICA: the asker's ring differs, and it learns
 * it again; a handed-off hint is this node's data whatever the ring says).
 * A REPLICATE's state is decoded into st and its values checked against
 * the limits: its checksum is seeded with the key's token, so a state sent
 * under the wrong key is refused. v may be NULL (not clustered yet). */
static int check_replica_request(kvi_node *n, const kvi_view *v, const kvi_request *req,
                                 const kvi_frame_header *h, kvi_state *st)
{
    int rc = kvi_check_key(&n->limits, req->key.data, req->key.len);
    if (rc != KV_OK)
        return rc;
    uint64_t token = kvi_key_token(req->key.data, req->key.len);
    /* A request routed by another epoch's ring (docs/design/TOPOLOGY.md):
     * from an older one, refused when this node's ring sends the key to
     * other replicas (a write that skipped a joining member, a read of a
     * member that no longer serves the key), so the sender learns the ring
     * and routes again; from a newer one, taken on the sender's word, as
     * this node is a replica there. */
    int newer = 0;
    if (v && v->epoch && req->routed && !(h->flags & KVI_FRAME_FLAG_HANDOFF)) {
        if (req->route_epoch < v->epoch &&
            kvi_coord_route_hash(v, h->opcode, req->key.data, req->key.len) != req->route_hash)
            return kvi_error(KVI_ENOT_REPLICA, "the request was routed by the ring of epoch "
                             "%llu; this node's, of epoch %llu, gives the key other replicas",
                             (unsigned long long)req->route_epoch,
                             (unsigned long long)v->epoch);
        newer = req->route_epoch > v->epoch;
    }
    if (v && !(h->flags & KVI_FRAME_FLAG_HANDOFF) && !newer) {
        const uint32_t *pref;
        size_t count = kvi_ring_preference(v->ring, token, &pref);
        int mine = 0;
        for (size_t i = 0; i < count; i++)
            mine |= (int)pref[i] == v->self;
        /* A future home of the key, while a topology change moves it here,
         * takes its writes too (docs/design/TOPOLOGY.md). */
        if (!mine && v->self >= 0 && h->opcode == KVI_OP_REPLICATE)
            mine = kvi_coord_future_home(v, token, (uint32_t)v->self);
        if (!mine)
            return kvi_error(KVI_ENOT_REPLICA, "this node is not a replica of the key");
    }
    if (h->opcode != KVI_OP_REPLICATE && h->opcode != KVI_OP_REPAIR)
        return KV_OK;
    return check_state(n, st, req, token);
}

/* The view to check replica requests against: NULL when not clustered or
 * not built yet. */
static kvi_view *replica_check_view(kvi_node *n)
{
    return kvi_node_clustered(n) ? kvi_membership_view(n->membership) : NULL;
}

/* GET_STATE and REPLICATE, between nodes: a key's replicated state in
 * record format 2, read from or merged into this node's store. */
int kvi_node_replica_op(kvi_node *n, const kvi_request *req, const kvi_frame_header *h,
                      kvi_buf *out)
{
    kvi_response resp = {0};
    kvi_state *st = malloc(sizeof *st);
    int rc = st ? KV_OK : kvi_error(KV_ENOMEM, "out of memory handling a replica request");
    if (rc == KV_OK) {
        kvi_view *v = replica_check_view(n);
        rc = check_replica_request(n, v, req, h, st);
        kvi_view_unref(v);
    }
    kvi_buf holder = {0}, encoded = {0};
    if (rc == KV_OK && (h->opcode == KVI_OP_GET_STATE || h->opcode == KVI_OP_READ_STATE)) {
        rc = kvi_replica_read(st, &holder, n->store, req->key.data, req->key.len);
        if (rc == KV_OK) {
            kvi_state_encode(&encoded, st, kvi_key_token(req->key.data, req->key.len));
            resp.value.data = encoded.data;
            resp.value.len = encoded.len;
        }
    } else if (rc == KV_OK) {
        rc = kvi_replica_merge(NULL, &resp.version, n->store, req->key.data,
                               req->key.len, st);
    }
    kvi_node_respond(out, h, rc, &resp);
    kvi_buf_free(&encoded);
    kvi_buf_free(&holder);
    free(st);
    return rc;
}

/* HINT, between nodes: keep a state for a home replica that is down, as
 * its stand-in, until handoff gives it back. */
int kvi_node_hint_op(kvi_node *n, const kvi_request *req, const kvi_frame_header *h,
                   kvi_buf *out)
{
    kvi_response resp = {0};
    int rc = KV_OK;
    char target[KVI_DVV_MAX_ID + 1];
    if ((rc = kvi_check_key(&n->limits, req->key.data, req->key.len)) != KV_OK)
        rc = kvi_error(rc, "a hint's %s", kvi_error_last());
    else if (req->context.len == 0 || req->context.len > KVI_DVV_MAX_ID)
        rc = kvi_error(KV_EINVAL, "a hint needs its home replica's node id");
    kvi_state *st = rc == KV_OK ? malloc(sizeof *st) : NULL;
    if (rc == KV_OK && !st)
        rc = kvi_error(KV_ENOMEM, "out of memory keeping a hint");
    /* Checked now (the checksum is seeded with the key's token), so that a
     * damaged state is refused here, not replayed later. */
    if (rc == KV_OK)
        rc = check_state(n, st, req, kvi_key_token(req->key.data, req->key.len));
    if (rc == KV_OK) {
        memcpy(target, req->context.data, req->context.len);
        target[req->context.len] = 0;
        rc = kvi_hints_put(&n->hints, target, kvi_now_ms(), req->key.data, req->key.len,
                           req->value.data, req->value.len);
    }
    kvi_node_respond(out, h, rc, &resp);
    free(st);
    return rc;
}

/* PAXOS_PREPARE, PROPOSE and COMMIT, between nodes: this node as an
 * acceptor of a key it is a home replica of (cluster/paxos_acceptor.h).
 * Checks a message into m: the key, the ballot, a proposal's state (as
 * replication checks a state), and that the proposer's ring gives the key
 * the same homes as this node's (the hash of their ids): two proposers with
 * different homes could form majorities that do not overlap (ScyllaDB
 * 5251), so a mismatch is refused with KVI_ENOT_REPLICA until the rings
 * agree. st is scratch space. */
static int paxos_msg_of(kvi_node *n, const kvi_view *v, const kvi_request *req,
                        const kvi_frame_header *h, kvi_paxos_msg *m, kvi_state *st)
{
    memset(m, 0, sizeof *m);
    int rc = kvi_check_key(&n->limits, req->key.data, req->key.len);
    if (rc != KV_OK)
        return rc;
    kvi_reader rd = kvi_reader_init(req->context.data, req->context.len);
    /* The zero ballot only asks (a SERIAL read's first step, which no
     * acceptor takes): a prepare may carry it, nothing else. */
    if (kvi_ballot_read(&rd, &m->ballot) != 0 || kvi_reader_done(&rd) != 0 ||
        (m->ballot.node[0] == 0 && h->opcode != KVI_OP_PAXOS_PREPARE))
        return kvi_error(KV_EINVAL, "a Paxos message with a malformed ballot");
    if (!v && !kvi_membership_joining(n->membership))
        return kvi_error(KV_EUNAVAILABLE, "this node is not serving a cluster yet");
    /* A joining node has no ring of its own yet: it is a pending home of
     * the keys it gains, and takes part in their rounds on the word of the
     * coordinators, whose rings hold its join (as it takes their writes). */
    if (v) {
        uint64_t token = kvi_key_token(req->key.data, req->key.len);
        const uint32_t *pref;
        size_t count = kvi_ring_preference(v->ring, token, &pref);
        int mine = 0;
        for (size_t i = 0; i < count; i++)
            mine |= (int)pref[i] == v->self;
        if (!mine && v->self >= 0)
            mine = kvi_coord_future_home(v, token, (uint32_t)v->self);
        if (!mine ||
            kvi_serial_homes_hash(v, req->key.data, req->key.len) != req->expected_version)
            return kvi_error(KVI_ENOT_REPLICA, "this node's ring gives the key other home "
                                               "replicas than the proposer's");
    }
    m->key = req->key.data;
    m->key_len = req->key.len;
    m->kind = h->opcode == KVI_OP_PAXOS_PREPARE   ? KVI_PAXOS_PREPARE
            : h->opcode == KVI_OP_PAXOS_PROPOSE ? KVI_PAXOS_PROPOSE : KVI_PAXOS_COMMIT;
    if (m->kind == KVI_PAXOS_PREPARE)
        return KV_OK;
    /* A proposal: its id, then a state checked as replication's is. */
    uint64_t id;
    kvi_request inner = *req;
    const void *state;
    if (kvi_proposal_split(req->value.data, req->value.len, &id, &state, &inner.value.len) != 0)
        return kvi_error(KV_EINVAL, "a Paxos proposal shorter than its id");
    inner.value.data = state;
    rc = check_state(n, st, &inner, kvi_key_token(req->key.data, req->key.len));
    m->proposal = req->value.data;
    m->proposal_len = req->value.len;
    return rc;
}

static void paxos_respond(kvi_node *n, kvi_buf *out, const kvi_frame_header *h, int rc,
                          const kvi_paxos_msg *m, uint64_t started)
{
    kvi_response resp = {.value = {m->answer.data, m->answer.len}};
    kvi_node_respond(out, h, rc, &resp);
    kvi_metrics_record(n->metrics, KVI_PROTO_BINARY, KVI_MOP_OTHER, KVI_LEVEL_NONE, rc,
                       kvi_metrics_now_ns() - started);
}

int kvi_node_paxos_op(kvi_node *n, const kvi_request *req, const kvi_frame_header *h,
                      kvi_buf *out)
{
    kvi_paxos_msg m;
    kvi_state *st = malloc(sizeof *st);
    kvi_view *v = replica_check_view(n);
    int rc = st ? paxos_msg_of(n, v, req, h, &m, st)
                : kvi_error(KV_ENOMEM, "out of memory handling a Paxos message");
    kvi_view_unref(v);
    if (rc == KV_OK) {
        kvi_paxos_apply(n->store, &m, 1);
        rc = m.status;
    }
    kvi_response resp = {.value = {m.answer.data, m.answer.len}};
    kvi_node_respond(out, h, rc, &resp);
    kvi_buf_free(&m.answer);
    free(st);
    return rc;
}

static int is_paxos(uint8_t opcode)
{
    return opcode == KVI_OP_PAXOS_PREPARE || opcode == KVI_OP_PAXOS_PROPOSE ||
           opcode == KVI_OP_PAXOS_COMMIT;
}

/* ------------------------------------------- replication on the I/O loop */

/* The merged REPLICATEs of one loop batch waiting for the group commit
 * under `sync always`: answered once their write is durable. */
typedef struct durable_wait {
    kvi_node *n;
    kvi_sync_request sync;
    uint64_t started;
    size_t count;
    struct waiting_answer {
        kvi_server_pending *p;
        kvi_frame_header h;
        kvi_buf *out;
        int rc;
        uint64_t version;
        int encoded; /* a Paxos answer, in out already */
    } items[];
} durable_wait;

static void merge_respond(kvi_node *n, kvi_buf *out, const kvi_frame_header *h, int rc,
                          uint64_t version, uint64_t started)
{
    kvi_response resp = {.version = version};
    if (rc != KV_OK)
        kvi_error(rc, "merging a replicated state: %s", kvi_strerror(rc));
    kvi_node_respond(out, h, rc, &resp);
    kvi_metrics_record(n->metrics, KVI_PROTO_BINARY, KVI_MOP_OTHER, KVI_LEVEL_NONE, rc,
                       kvi_metrics_now_ns() - started);
}

/* On the committer's thread: the batch's write is durable (or the sync
 * failed, and the replicas say so rather than acknowledge). */
static void merged_durable(void *ctx, int sync_rc)
{
    durable_wait *w = ctx;
    for (size_t i = 0; i < w->count; i++) {
        struct waiting_answer *a = &w->items[i];
        int rc = a->rc == KV_OK && sync_rc != KV_OK
                     ? kvi_error(sync_rc, "syncing the log: %s", kvi_strerror(sync_rc))
                     : a->rc;
        if (!a->encoded) {
            merge_respond(w->n, a->out, &a->h, rc, a->version, w->started);
        } else if (rc != a->rc) {
            /* A promise or accept that may not be on disk is not given. */
            kvi_response none = {0};
            kvi_buf_reset(a->out);
            kvi_node_respond(a->out, &a->h, rc, &none);
        }
        kvi_server_answer(a->p);
    }
    free(w);
}

/* Answers the merged items now, or once the group commit has made their
 * write durable (sync always). Returns 1 when the answers are left to the
 * committer. */
static int answer_merged(kvi_node *n, kvi_server_pending **ps, kvi_server_request *reqs,
                         const kvi_merge_item *items, const size_t *which, size_t n_items,
                         uint64_t started)
{
    kvi_store *store = kvi_embedded_store(n->store);
    int any_ok = 0;
    for (size_t k = 0; k < n_items; k++)
        any_ok |= items[k].status == KV_OK;
    /* Even a merge that changed nothing waits: the state it found may be
     * an unsynced write of this node's own coordinator. */
    durable_wait *w = any_ok && kvi_store_sync_always(store)
                          ? malloc(sizeof *w + n_items * sizeof w->items[0]) : NULL;
    for (size_t k = 0; k < n_items; k++) {
        size_t i = which[k];
        if (w) {
            w->items[k] = (struct waiting_answer){ps[i], *reqs[i].h, reqs[i].out,
                                                  items[k].status, items[k].version, 0};
            continue;
        }
        int rc = items[k].status;
        if (rc == KV_OK && any_ok && kvi_store_sync_always(store))
            rc = kvi_error(KV_ENOMEM, "out of memory waiting for the log's sync");
        merge_respond(n, reqs[i].out, reqs[i].h, rc, items[k].version, started);
        kvi_server_answer(ps[i]);
    }
    if (!w)
        return 0;
    w->n = n;
    w->started = started;
    w->count = n_items;
    kvi_group_commit_request(kvi_store_committer(store), &w->sync, merged_durable, w);
    return 1;
}

/* The Paxos messages of a loop batch: applied together with their writes
 * unsynced, and answered once the group commit has made them durable
 * (whatever the sync policy: a promise or an accept counts only once it is
 * on disk). Their answers are encoded now and sent then. */
static void paxos_on_loop(kvi_node *n, kvi_server_pending **ps, kvi_server_request *reqs,
                          const unsigned char *px, size_t n_reqs, uint64_t started)
{
    size_t count = 0;
    for (size_t i = 0; i < n_reqs; i++)
        count += px[i];
    if (!count)
        return;
    kvi_paxos_msg *msgs = calloc(count, sizeof *msgs);
    size_t *which = calloc(count, sizeof *which);
    kvi_state *st = malloc(sizeof *st);
    durable_wait *w = malloc(sizeof *w + count * sizeof w->items[0]);
    if (!msgs || !which || !st || !w) {
        for (size_t i = 0; i < n_reqs; i++)
            if (px[i]) {
                kvi_node_handle_request(n, reqs[i].h, reqs[i].body, reqs[i].out);
                kvi_server_answer(ps[i]);
            }
        free(msgs);
        free(which);
        free(st);
        free(w);
        return;
    }
    kvi_view *v = replica_check_view(n);
    size_t k = 0;
    for (size_t i = 0; i < n_reqs; i++) {
        if (!px[i])
            continue;
        const kvi_frame_header *h = reqs[i].h;
        kvi_request req;
        int rc = kvi_request_decode_frame(&req, h, reqs[i].body) != 0
                     ? kvi_error(KV_EINVAL, "malformed request body for opcode %u", h->opcode)
                     : paxos_msg_of(n, v, &req, h, &msgs[k], st);
        if (rc != KV_OK) {
            kvi_paxos_msg none = {0};
            paxos_respond(n, reqs[i].out, h, rc, &none, started);
            kvi_server_answer(ps[i]);
            continue;
        }
        which[k++] = i;
    }
    kvi_view_unref(v);
    if (k)
        kvi_paxos_apply_unsynced(n->store, msgs, k, 1);
    for (size_t j = 0; j < k; j++) {
        size_t i = which[j];
        if (msgs[j].status != KV_OK)
            kvi_error(msgs[j].status, "applying a Paxos message: %s",
                      kvi_strerror(msgs[j].status));
        paxos_respond(n, reqs[i].out, reqs[i].h, msgs[j].status, &msgs[j], started);
        kvi_buf_free(&msgs[j].answer);
        w->items[j] = (struct waiting_answer){ps[i], *reqs[i].h, reqs[i].out, msgs[j].status,
                                              0, 1};
    }
    free(msgs);
    free(which);
    free(st);
    if (!k) {
        free(w);
        return;
    }
    w->n = n;
    w->started = started;
    w->count = k;
    kvi_group_commit_request(kvi_store_committer(kvi_embedded_store(n->store)), &w->sync,
                             merged_durable, w);
}

/* REPLICATEs and REPAIRs staged with the peers loop's other writes of the
 * iteration (cluster/write_stage.h): answered, as answer_merged does, once
 * the last of them is written. */
typedef struct staged_merges {
    kvi_node *n;
    uint64_t started;
    size_t count, left;
    kvi_state *states;          /* the incoming states (the items point here) */
    kvi_server_pending **ps;    /* item k's request */
    kvi_server_request *reqs;
    kvi_merge_item *items;      /* item k's result */
    size_t *which;              /* k itself, as answer_merged wants */
    struct staged_merge {
        kvi_staged_write sw;
        struct staged_merges *batch;
        size_t k;
    } w[];
} staged_merges;

static void staged_merges_free(staged_merges *b)
{
    free(b->states);
    free(b->ps);
    free(b->reqs);
    free(b->items);
    free(b->which);
    free(b);
}

static void staged_merge_written(kvi_staged_write *sw)
{
    struct staged_merge *m = (struct staged_merge *)sw; /* sw is its first member */
    staged_merges *b = m->batch;
    b->items[m->k] = sw->item;
    if (sw->item.status != KV_OK)
        kvi_error(sw->item.status, "%s", sw->why);
    if (--b->left)
        return;
    answer_merged(b->n, b->ps, b->reqs, b->items, b->which, b->count, b->started);
    staged_merges_free(b);
}

/* Stages the batch's n_items merges (items[k] of request which[k]); takes
 * states. 0 when staged, else -1 (out of memory: nothing taken). */
static int stage_merges(kvi_node *n, kvi_server_pending **ps, kvi_server_request *reqs,
                        kvi_state *states, const kvi_merge_item *items, const size_t *which,
                        size_t n_items, uint64_t started)
{
    staged_merges *b = calloc(1, sizeof *b + n_items * sizeof b->w[0]);
    if (!b)
        return -1;
    b->ps = malloc(n_items * sizeof *b->ps);
    b->reqs = malloc(n_items * sizeof *b->reqs);
    b->items = malloc(n_items * sizeof *b->items);
    b->which = malloc(n_items * sizeof *b->which);
    if (!b->ps || !b->reqs || !b->items || !b->which) {
        staged_merges_free(b); /* b->states is still NULL: the caller keeps states */
        return -1;
    }
    b->n = n;
    b->started = started;
    b->count = b->left = n_items;
    b->states = states;
    for (size_t k = 0; k < n_items; k++) {
        b->ps[k] = ps[which[k]];
        b->reqs[k] = reqs[which[k]];
        b->which[k] = k;
        b->w[k].batch = b;
        b->w[k].k = k;
        b->w[k].sw.item = items[k];
        b->w[k].sw.done = staged_merge_written;
    }
    for (size_t k = 0; k < n_items; k++)
        kvi_write_stage_add(n->stage, &b->w[k].sw);
    return 0;
}

/* REPLICATEs and REPAIRs an I/O loop read in one iteration: one multi-get
 * for their read-before-write and one WriteBatch, not synced; under `sync
 * always` they are acknowledged once the group commit has synced it, so
 * the loop never waits on the disk.
 *
 * A request answered on the loop's own thread is freed at once, its header
 * with it: which requests are Paxos messages is noted first (px), and no
 * request is looked at after its answer. */
void kvi_node_replication_loop_batch(void *ctx, kvi_server_pending **ps,
                                     kvi_server_request *reqs, size_t n_reqs)
{
    kvi_node *n = ctx;
    if (n_reqs > KVI_SERVER_MAX_LOOP_BATCH) { /* the server never hands more */
        for (size_t at = 0; at < n_reqs; at += KVI_SERVER_MAX_LOOP_BATCH)
            kvi_node_replication_loop_batch(ctx, ps + at, reqs + at,
                                            n_reqs - at < KVI_SERVER_MAX_LOOP_BATCH
                                                ? n_reqs - at : KVI_SERVER_MAX_LOOP_BATCH);
        return;
    }
    unsigned char px[KVI_SERVER_MAX_LOOP_BATCH];
    for (size_t i = 0; i < n_reqs; i++)
        px[i] = (unsigned char)is_paxos(reqs[i].h->opcode);
    uint64_t started = kvi_metrics_now_ns();
    paxos_on_loop(n, ps, reqs, px, n_reqs, started);
    kvi_state *states = malloc(n_reqs * sizeof *states);
    kvi_merge_item *items = malloc(n_reqs * sizeof *items);
    size_t *which = malloc(n_reqs * sizeof *which); /* the request of each item */
    char *answered = calloc(n_reqs, 1);
    if (!states || !items || !which || !answered) {
        free(states);
        free(items);
        free(which);
        free(answered);
        for (size_t i = 0; i < n_reqs; i++) {
            if (px[i])
                continue; /* answered by paxos_on_loop */
            kvi_node_handle_request(n, reqs[i].h, reqs[i].body, reqs[i].out);
            kvi_server_answer(ps[i]);
        }
        return;
    }
    kvi_view *v = replica_check_view(n);
    size_t n_items = 0;
    for (size_t i = 0; i < n_reqs; i++) {
        if (px[i])
            continue; /* answered by paxos_on_loop */
        const kvi_frame_header *h = reqs[i].h;
        kvi_request req;
        int rc = (h->opcode != KVI_OP_REPLICATE && h->opcode != KVI_OP_REPAIR) ||
                         kvi_request_decode_frame(&req, h, reqs[i].body) != 0
                     ? -1 : check_replica_request(n, v, &req, h, &states[i]);
        if (rc == -1) {
            kvi_node_handle_request(n, h, reqs[i].body, reqs[i].out); /* answers errors too */
            answered[i] = 1;
        } else if (rc != KV_OK) {
            merge_respond(n, reqs[i].out, h, rc, 0, started);
            answered[i] = 1;
        } else {
            items[n_items] = (kvi_merge_item){
                .key = req.key.data, .key_len = req.key.len, .incoming = &states[i]};
            which[n_items++] = i;
        }
    }
    kvi_view_unref(v);
    /* On the peers loop, the merges join the writes this node coordinates
     * in the iteration's one WriteBatch. */
    int staged = n_items && n->stage && kvi_loop_on_thread(kvi_write_stage_loop(n->stage)) &&
                 stage_merges(n, ps, reqs, states, items, which, n_items, started) == 0;
    if (!staged && n_items)
        kvi_replica_merge_many(n->store, items, n_items, 1);
    /* The bodies (the items' keys) go with the answers: those last. */
    for (size_t i = 0; i < n_reqs; i++)
        if (answered[i] && !px[i])
            kvi_server_answer(ps[i]);
    if (staged) {
        free(items);
        free(which);
        free(answered);
        return;
    }
    answer_merged(n, ps, reqs, items, which, n_items, started);
    free(states);
    free(items);
    free(which);
    free(answered);
}
