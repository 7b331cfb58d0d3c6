/*
 * cluster/coord_op.h - what every coordinated request shares (internal to
 * the coordinator: coord_op.c, coord_read.c, coord_write.c).
 *
 * A request is a small state record, not a thread: it sends its messages,
 * and the answers, its deadline and its timers are events that move it on.
 * All of an op's events run on one thread, the event loop of the view's
 * connections (a node's peers loop, a client handle's loop), so an op needs
 * no lock. An op whose view has no other member (a one-node cluster) never
 * waits on anything and runs to its end on the thread that starts it.
 *
 * Lifetime: an op holds one reference for itself and one per message in
 * flight. It answers its caller once (coord_op_finish) and is freed when
 * the last reference goes: answers that come after the caller has its
 * result still end their message (a replica that failed a write still gets
 * its hint).
 *
 * Re-entrancy: a callback may run inside the call that started its message
 * (a connection that is already known to be down fails at once). While an
 * op's step runs (`busy`), callbacks only record what they learned; the
 * step runs again once the current one returns.
 */
#ifndef KVI_COORD_OP_H
#define KVI_COORD_OP_H

#include "cluster/coordinator.h"
#include "net/loop.h"

#define KVI_COORD_MAX_PREF 16u

typedef struct coord_op coord_op;

struct coord_op {
    kvi_coord_env env;       /* a copy; the op holds a reference on env.view */
    kvi_loop *loop;          /* NULL: no other member, nothing to wait for */
    unsigned refs;           /* the op's own, and one per message in flight */
    int busy;                /* a step is running */
    int again;               /* an event came during it: step once more */
    int finished;            /* the caller has its result */
    kvi_loop_timer deadline;
    void (*on_deadline)(coord_op *op);
    kvi_loop_task start_task;
    void (*step)(coord_op *op);   /* moves the op on after any event */
    void (*destroy)(coord_op *op);/* frees the op's own parts and the op */
    void (*start)(coord_op *op);  /* the first step, on the op's thread */
    kvi_coord_done_fn done;
    void *done_ctx;
    /* coord_op_await_view: what runs once the view moved, or did not. */
    void (*view_moved)(coord_op *op, int moved);
    unsigned view_polls;
    /* For the slow-request log (env.slow): when the op started, what it is
     * (set by a read or a write; what NULL: not logged) and when each
     * replica it asked answered. */
    uint64_t started_ns;
    const char *what, *level;
    const void *key;
    size_t key_len;
    struct coord_asked {
        uint32_t member;
        uint64_t sent_ns, answered_ns; /* answered_ns 0: not yet */
        int status;
    } asked[KVI_COORD_MAX_PREF];
    unsigned n_asked;
};

/* Fills the base: takes a reference on env->view and finds the loop. */
void coord_op_init(coord_op *op, const kvi_coord_env *env, kvi_coord_done_fn done,
                   void *done_ctx);
/* Runs op->start on the op's thread: at once when the caller is on it (or
 * there is no loop), else posted to the loop. */
void coord_op_launch(coord_op *op);
/* Arms the deadline, ms from now; when it passes, fn runs (on the loop,
 * unless the op has finished), then the step. Re-arming replaces it. */
void coord_op_set_deadline(coord_op *op, uint32_t ms, void (*fn)(coord_op *op));
/* Runs the step now, or once the running one returns. */
void coord_op_poke(coord_op *op);
/* A message is about to be sent / one has ended. */
void coord_op_hold(coord_op *op);
void coord_op_drop(coord_op *op);
/* Names the op for the slow-request log: op ("get", "put", ...), the
 * level asked for, and the key (which must live as long as the op). */
void coord_op_name(coord_op *op, const char *what, kv_consistency level, const void *key,
                   size_t key_len);
/* Gives the caller its result (once; later calls do nothing); logs the
 * request when it was slow. r->why may point into the op. */
void coord_op_finish(coord_op *op, kvi_coord_result *r);
/* Marks the op finished without a result (it told its caller another
 * way) and drops the op's own reference. Called from a step, an answer or
 * a timer, which hold references of their own. */
void coord_op_end(coord_op *op);

static inline int coord_is_self(const kvi_view *v, uint32_t member)
{
    return v->self >= 0 && (uint32_t)v->self == member;
}

/* Waits (on the loop, polling env.fresh_view every 10 ms, at most 2 s)
 * for this node's view to move past the op's, after a replica refused a
 * request as routed by an older ring; then routes the op by the newer view
 * and runs moved(op, 1), or runs moved(op, 0) when it did not move (or
 * the env has no fresh_view). Re-arms the op's deadline. */
void coord_op_await_view(coord_op *op, void (*moved)(coord_op *op, int moved));
/* A member answered status: a refusal of the ring it was routed by makes
 * the env learn the ring from it (kvi_coord_env.ring_stale). */
void coord_op_answered(coord_op *op, uint32_t member, int status);

/* Sends req to member with a completion callback; 0 when submitted (fn
 * will run, holding a reference on op until then), else the failure (fn
 * never runs). */
int coord_op_send(coord_op *op, uint32_t member, const kvi_request *req, uint16_t extra_flags,
                  int is_write, kvi_reply_fn fn, void *ctx);

/* The asynchronous read, for the CAS of a write op: merged is valid during
 * the callback only (it points into the read's buffers). */
typedef void (*coord_read_state_fn)(void *ctx, int rc, const char *why,
                                    const kvi_state *merged);
int coord_read_state_start(const kvi_coord_env *env, const void *key, size_t key_len,
                           unsigned required, coord_read_state_fn fn, void *ctx);

#endif
