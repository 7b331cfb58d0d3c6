/* cluster/coord_op.c - the life of a coordinated request (see coord_op.h). */
#include "cluster/coord_op.h"

#include <pthread.h>
#include <stdlib.h>

#include "format/frame.h"
#include "format/message.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/slow_log.h"

static void deadline_passed(void *ctx);

void coord_op_init(coord_op *op, const kvi_coord_env *env, kvi_coord_done_fn done,
                   void *done_ctx)
{
    op->env = *env;
    kvi_view_ref(env->view);
    pthread_mutex_lock(&env->tracker->lock);
    env->tracker->alive++;
    pthread_mutex_unlock(&env->tracker->lock);
    op->loop = NULL;
    for (size_t i = 0; i < env->view->n && !op->loop; i++)
        if (env->view->members[i].client)
            op->loop = kvi_client_event_loop(env->view->members[i].client);
    op->refs = 1;
    op->started_ns = kvi_monotonic_ns();
    op->what = NULL;
    op->n_asked = 0;
    op->done = done;
    op->done_ctx = done_ctx;
    kvi_loop_timer_init(&op->deadline, deadline_passed, op);
}

static void tracker_done(void *ctx)
{
    kvi_coord_tracker *t = ctx;
    pthread_mutex_lock(&t->lock);
    if (--t->alive == 0)
        pthread_cond_broadcast(&t->cond);
    pthread_mutex_unlock(&t->lock);
}

static void release(coord_op *op)
{
    if (--op->refs)
        return;
    if (op->loop)
        kvi_loop_timer_cancel(op->loop, &op->deadline);
    kvi_view *v = op->env.view;
    kvi_coord_tracker *t = op->env.tracker;
    kvi_loop *loop = op->loop;
    op->destroy(op);
    /* The last reference of a view replaced while this op ran: freed off
     * the loop (rare). */
    kvi_view_unref_then(v, loop && kvi_loop_on_thread(loop), tracker_done, t);
}

/* Lets go of a view the op held, off the loop when it was the last
 * reference, counted as an op alive until then. */
static void let_go(coord_op *op, kvi_view *v)
{
    kvi_coord_tracker *t = op->env.tracker;
    pthread_mutex_lock(&t->lock);
    t->alive++;
    pthread_mutex_unlock(&t->lock);
    kvi_view_unref_then(v, op->loop && kvi_loop_on_thread(op->loop), tracker_done, t);
}

#define AWAIT_POLL_MS 10u
#define AWAIT_POLLS 200u

static void await_poll(coord_op *op)
{
    kvi_view *fresh = op->env.fresh_view ? op->env.fresh_view(op->env.is_down_ctx) : NULL;
    if (fresh && fresh->epoch > op->env.view->epoch) {
        let_go(op, op->env.view);
        op->env.view = fresh;
        op->view_moved(op, 1);
        return;
    }
    if (fresh)
        let_go(op, fresh);
    if (op->env.fresh_view && ++op->view_polls < AWAIT_POLLS)
        coord_op_set_deadline(op, AWAIT_POLL_MS, await_poll);
    else
        op->view_moved(op, 0);
}

void coord_op_await_view(coord_op *op, void (*moved)(coord_op *op, int moved))
{
    op->view_moved = moved;
    op->view_polls = 0;
    coord_op_set_deadline(op, AWAIT_POLL_MS, await_poll);
}

static void run_start(void *ctx)
{
    coord_op *op = ctx;
    op->busy = 1;
    op->start(op);
    op->busy = 0;
    coord_op_poke(op);
    release(op); /* the start's own hold */
}

void coord_op_launch(coord_op *op)
{
    op->refs++; /* kept by the start until it has run */
    if (!op->loop || kvi_loop_on_thread(op->loop))
        run_start(op);
    else
        kvi_loop_post(op->loop, &op->start_task, run_start, op);
}

static void deadline_passed(void *ctx)
{
    coord_op *op = ctx;
    op->refs++;
    op->busy = 1;
    if (!op->finished)
        op->on_deadline(op);
    op->busy = 0;
    coord_op_poke(op);
    release(op);
}

void coord_op_set_deadline(coord_op *op, uint32_t ms, void (*fn)(coord_op *op))
{
    if (!op->loop)
        return; /* nothing to wait for */
    op->on_deadline = fn;
    kvi_loop_timer_set(op->loop, &op->deadline, kvi_loop_now_ms() + ms);
}

void coord_op_poke(coord_op *op)
{
    if (op->busy) {
        op->again = 1;
        return;
    }
    op->busy = 1;
    do {
        op->again = 0;
        if (!op->finished)
            op->step(op);
    } while (op->again);
    op->busy = 0;
}

void coord_op_hold(coord_op *op)
{
    op->refs++;
}

void coord_op_drop(coord_op *op)
{
    release(op);
}

void coord_op_end(coord_op *op)
{
    if (op->finished)
        return;
    op->finished = 1;
    if (op->loop)
        kvi_loop_timer_cancel(op->loop, &op->deadline);
    /* The op's own reference: whatever runs now holds another. */
    release(op);
}

void coord_op_name(coord_op *op, const char *what, kv_consistency level, const void *key,
                   size_t key_len)
{
    static const char *const levels[] = {"default", "one", "quorum", "all", "serial",
                                         "explicit"};
    op->what = what;
    op->level = (unsigned)level < sizeof levels / sizeof levels[0] ? levels[level] : "?";
    op->key = key;
    op->key_len = key_len;
}

static void log_if_slow(coord_op *op)
{
    uint64_t now = kvi_monotonic_ns();
    if (!op->what || !kvi_slow_log_is_slow(op->env.slow, op->started_ns, now))
        return;
    kvi_slow_replica replicas[KVI_COORD_MAX_PREF];
    for (unsigned i = 0; i < op->n_asked; i++) {
        const kvi_view_member *m = kvi_view_member_at(op->env.view, op->asked[i].member);
        replicas[i] = (kvi_slow_replica){m ? m->id : "?", op->asked[i].sent_ns,
                                         op->asked[i].answered_ns, op->asked[i].status};
    }
    kvi_slow_log_write(op->env.slow, op->what, op->level, op->key, op->key_len, op->started_ns,
                       now, replicas, op->n_asked);
}

void coord_op_finish(coord_op *op, kvi_coord_result *r)
{
    if (op->finished)
        return;
    log_if_slow(op);
    op->done(op->done_ctx, r);
    coord_op_end(op);
}

/* The first time member is asked, for the slow-request log. */
static void note_asked(coord_op *op, uint32_t member)
{
    if (!op->what)
        return;
    for (unsigned i = 0; i < op->n_asked; i++)
        if (op->asked[i].member == member)
            return;
    if (op->n_asked < KVI_COORD_MAX_PREF)
        op->asked[op->n_asked++] = (struct coord_asked){member, kvi_monotonic_ns(), 0, 0};
}

void coord_op_answered(coord_op *op, uint32_t member, int status)
{
    for (unsigned i = 0; op->what && i < op->n_asked; i++)
        if (op->asked[i].member == member && !op->asked[i].answered_ns) {
            op->asked[i].answered_ns = kvi_monotonic_ns();
            op->asked[i].status = status;
        }
    if (status == KVI_ENOT_REPLICA && op->env.ring_stale)
        op->env.ring_stale(op->env.is_down_ctx, kvi_view_member_at(op->env.view, member)->addr);
}

int coord_op_send(coord_op *op, uint32_t member, const kvi_request *req, uint16_t extra_flags,
                  int is_write, kvi_reply_fn fn, void *ctx)
{
    kvi_buf frame = {0};
    kvi_frame_begin(&frame);
    kvi_request_encode(&frame, req);
    /* Routed by a ring of the topology: the replica, on another epoch,
     * refuses a key it would route elsewhere (docs/design/TOPOLOGY.md). */
    const kvi_view *v = op->env.view;
    if (v->epoch && kvi_request_routable(req->opcode) &&
        !(extra_flags & KVI_FRAME_FLAG_HANDOFF)) {
        kvi_request route = {.routed = 1, .route_epoch = v->epoch,
                             .route_hash = kvi_coord_route_hash(v, req->opcode, req->key.data,
                                                                req->key.len)};
        kvi_request_encode_route(&frame, &route);
        extra_flags |= KVI_FRAME_FLAG_ROUTED;
    }
    op->refs++;
    int rc = kvi_client_submit(kvi_view_client(op->env.view, member), &frame, req->opcode,
                               extra_flags, is_write ? KVI_SUBMIT_WRITE : 0u, fn, ctx);
    if (rc != KV_OK)
        op->refs--;
    else
        note_asked(op, member);
    return rc;
}
