/* cluster/coord_batch.c - a batch as a state machine on the loop (see
 * kvi_coord_batch_start in coordinator.h).
 *
 * A batch is a coord_op of its own (cluster/coord_op.h): it gets the same
 * thread (the loop of the view's connections), the same reference on the
 * view, the same count in the owner's tracker and the same re-entrancy
 * guard as a read or a write. Its step starts the batch's operations as
 * reads, writes or SERIAL rounds, at most BATCH_INFLIGHT at once, and gives
 * the caller its answer once the last one has ended.
 *
 * Each running operation holds a reference on the batch (coord_op_hold),
 * dropped after its callback has recorded its result. An operation may end
 * inside the call that starts it; its callback then only records (the
 * batch's step is running: coord_op_poke sets `again`), and the step goes
 * on once that call returns.
 *
 * Order: an operation does not start while an earlier one on the same key
 * runs, so that the operations on one key run in the batch's order, as
 * they did when a batch ran one operation after the other (a get after a
 * put of the same key sees the put; a write after a SERIAL one goes
 * through Paxos too). Operations start in the batch's order. */
#include "cluster/coordinator.h"
#include "cluster/coord_op.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/serial.h"
#include "format/batch.h"
#include "format/value.h"
#include "util/error.h"

/* Operations of one batch running at once: enough to overlap the replicas'
 * round trips, few enough that one large batch does not take all of a
 * peer connection's request slots (128, KVI_VIEW_MAX_INFLIGHT in view.c)
 * from every other request, nor hold the loop long in one step. */
#define BATCH_INFLIGHT 32u

typedef struct batch_op batch_op;

/* The context of one running operation. */
typedef struct batch_slot {
    batch_op *op;
    size_t item;  /* its index in the batch */
    int used;
} batch_slot;

struct batch_op {
    coord_op base;
    kv_batch *b;             /* the caller's, until the answer */
    kv_consistency wc, rc;   /* the write and read levels */
    unsigned w, r;
    int home_only;
    int siblings;
    size_t next;             /* the next operation to start */
    size_t ended;            /* operations with a result */
    unsigned running;
    batch_slot slots[BATCH_INFLIGHT];
};

static void batch_destroy(coord_op *base)
{
    free(base);
}

/* Records a read's result as kvi_coord_read gave it to kvi_coord_batch. */
static void read_ended(void *ctx, kvi_coord_result *r)
{
    batch_slot *s = ctx;
    batch_op *op = s->op;
    kvi_batch_op *it = &op->b->ops[s->item];
    it->status = r->rc;
    it->result = r->value;
    r->value = NULL;
    it->version = it->result ? kvi_value_version(it->result) : 0;
    s->used = 0;
    op->running--;
    op->ended++;
    coord_op_poke(&op->base);
    coord_op_drop(&op->base);
}

/* Records a write's result as kvi_coord_write_run gave it. */
static void write_ended(void *ctx, kvi_coord_result *r)
{
    batch_slot *s = ctx;
    batch_op *op = s->op;
    kvi_batch_op *it = &op->b->ops[s->item];
    it->status = r->rc;
    if (r->rc == KV_OK || r->rc == KV_ECONFLICT)
        it->version = r->version;
    s->used = 0;
    op->running--;
    op->ended++;
    coord_op_poke(&op->base);
    coord_op_drop(&op->base);
}

/* Starts item's operation with s as its context; KV_OK when its callback
 * will run, else the status it ends with now. The choices are
 * kvi_coord_read's and kvi_coord_write_run's. */
static int start_item(batch_op *op, batch_slot *s)
{
    const kvi_coord_env *env = &op->base.env;
    kvi_batch_op *it = &op->b->ops[s->item];
    if (it->kind == KV_BATCH_GET) {
        if (op->rc == KV_CONSISTENCY_SERIAL) {
            kvi_serial_request q = {.op = KVI_SERIAL_GET, .key = it->key,
                                    .key_len = it->key_len, .all_siblings = op->siblings};
            return kvi_serial_start(env, &q, read_ended, s);
        }
        return kvi_coord_read_start(env, it->key, it->key_len, op->rc, op->r, op->siblings, 0,
                                    read_ended, s);
    }
    kvi_coord_write w = {
        .kind = it->kind == KV_BATCH_PUT ? KVI_WRITE_PUT : KVI_WRITE_DELETE,
        .key = it->key, .key_len = it->key_len,
        .value = it->value, .value_len = it->kind == KV_BATCH_PUT ? it->value_len : 0,
        .ttl_s = it->ttl_s, .consistency = op->wc, .w = op->w,
        .siblings = op->siblings, .home_only = op->home_only,
    };
    int serial = kvi_coord_write_needs_serial(env, &w);
    if (serial < 0)
        return serial;
    if (serial) {
        kvi_serial_request q = kvi_coord_serial_request(&w);
        return kvi_serial_start(env, &q, write_ended, s);
    }
    return kvi_coord_write_start(env, &w, write_ended, s);
}

/* Whether an earlier operation on item's key is still running. */
static int key_busy(const batch_op *op, size_t item)
{
    const kvi_batch_op *it = &op->b->ops[item];
    for (size_t i = 0; i < BATCH_INFLIGHT; i++) {
        const batch_slot *s = &op->slots[i];
        if (!s->used)
            continue;
        const kvi_batch_op *o = &op->b->ops[s->item];
        if (o->key_len == it->key_len && memcmp(o->key, it->key, it->key_len) == 0)
            return 1;
    }
    return 0;
}

static batch_slot *free_slot(batch_op *op)
{
    for (size_t i = 0; i < BATCH_INFLIGHT; i++)
        if (!op->slots[i].used)
            return &op->slots[i];
    return NULL; /* not reached: running < BATCH_INFLIGHT */
}

/* Starts what may start, and answers once every operation has ended. Runs
 * on the batch's thread, never inside itself (coord_op_poke). */
static void batch_step(coord_op *base)
{
    batch_op *op = (batch_op *)base;
    kv_batch *b = op->b;
    while (op->next < b->count && op->running < BATCH_INFLIGHT && !key_busy(op, op->next)) {
        batch_slot *s = free_slot(op);
        *s = (batch_slot){.op = op, .item = op->next++, .used = 1};
        op->running++;
        coord_op_hold(base); /* the operation's, dropped by its callback */
        int rc = start_item(op, s);
        if (rc != KV_OK) { /* its callback will never run */
            b->ops[s->item].status = rc;
            s->used = 0;
            op->running--;
            op->ended++;
            coord_op_drop(base); /* never the last: the step's caller holds one */
        }
    }
    if (op->ended == b->count) {
        kvi_coord_result r = {.rc = KV_OK};
        coord_op_finish(base, &r);
    }
}

int kvi_coord_batch_start(const kvi_coord_env *env, kv_batch *b, const kv_write_options *wo,
                          const kv_read_options *ro, int siblings, kvi_coord_done_fn fn,
                          void *ctx)
{
    kv_write_options wdef = KV_WRITE_OPTIONS_INIT;
    kv_read_options rdef = KV_READ_OPTIONS_INIT;
    if (!wo)
        wo = &wdef;
    if (!ro)
        ro = &rdef;
    batch_op *op = calloc(1, sizeof *op);
    if (!op)
        return kvi_error(KV_ENOMEM, "out of memory starting a batch");
    kvi_batch_reset_results(b);
    b->executed = 1;
    op->b = b;
    op->wc = wo->consistency;
    op->w = wo->w;
    op->home_only = wo->home_only;
    op->rc = ro->consistency;
    op->r = ro->r;
    op->siblings = siblings;
    coord_op_init(&op->base, env, fn, ctx);
    op->base.step = batch_step;
    op->base.start = batch_step;
    op->base.destroy = batch_destroy;
    coord_op_launch(&op->base);
    return KV_OK;
}
