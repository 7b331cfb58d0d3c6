/* cluster/coord_op.c - the life of a coordinated request (see coord_op.h). */
#include "cluster/coord_op.h"

#include <pthread.h>
#include <stdlib.h>

#include "format/frame.h"
#include "format/message.h"
#include "util/error.h"

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

void coord_op_finish(coord_op *op, kvi_coord_result *r)
{
    if (op->finished)
        return;
    op->done(op->done_ctx, r);
    coord_op_end(op);
}

int coord_op_send(coord_op *op, uint32_t member, const kvi_request *req, uint16_t extra_flags,
                  int is_write, kvi_reply_fn fn, void *ctx)
{
    kvi_buf frame = {0};
    kvi_frame_begin(&frame);
    kvi_request_encode(&frame, req);
    op->refs++;
    int rc = kvi_client_submit(kvi_view_client(op->env.view, member), &frame, req->opcode,
                               extra_flags, is_write ? KVI_SUBMIT_WRITE : 0u, fn, ctx);
    if (rc != KV_OK)
        op->refs--;
    return rc;
}
