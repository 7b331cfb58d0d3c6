/* cluster/write_stage.c - an I/O loop's writes applied per iteration (see
 * write_stage.h). */
#include "cluster/write_stage.h"

#include <stdlib.h>

#include "util/error.h"

/* At most this many items per store write: bounds the keys locked and read
 * at once; a busier iteration makes more than one write. */
#define STAGE_CHUNK 512u

struct kvi_write_stage {
    kvi_loop *loop;
    kvi_embedded *store;
    kvi_staged_write *head, *tail; /* in the order staged */
    kvi_staged_paxos *px_head, *px_tail;
    kvi_loop_deferred flush;
};

/* Applies a chunk of n staged writes (n <= STAGE_CHUNK) with one store
 * write, then tells each. */
static void apply_chunk(kvi_write_stage *s, kvi_staged_write **ws, size_t n)
{
    kvi_merge_item *items = malloc(n * sizeof *items);
    if (!items) {
        /* One at a time, each its own write. */
        for (size_t i = 0; i < n; i++)
            kvi_replica_merge_many(s->store, &ws[i]->item, 1, 1);
    } else {
        for (size_t i = 0; i < n; i++)
            items[i] = ws[i]->item;
        kvi_replica_merge_many(s->store, items, n, 1);
        for (size_t i = 0; i < n; i++)
            ws[i]->item = items[i];
        free(items);
    }
    for (size_t i = 0; i < n; i++)
        ws[i]->done(ws[i]); /* may free ws[i] */
}

/* Applies a chunk of n staged Paxos messages with one store write (their
 * passes: two messages of one key go in turn), then tells each. */
static void apply_paxos_chunk(kvi_write_stage *s, kvi_staged_paxos **ps, size_t n)
{
    kvi_paxos_msg *msgs = malloc(n * sizeof *msgs);
    if (!msgs) {
        for (size_t i = 0; i < n; i++)
            kvi_paxos_apply_unsynced(s->store, &ps[i]->msg, 1, 1);
    } else {
        for (size_t i = 0; i < n; i++)
            msgs[i] = ps[i]->msg;
        kvi_paxos_apply_unsynced(s->store, msgs, n, 1);
        for (size_t i = 0; i < n; i++)
            ps[i]->msg = msgs[i];
        free(msgs);
    }
    for (size_t i = 0; i < n; i++)
        ps[i]->done(ps[i]); /* may free ps[i] */
}

/* Applies the staged Paxos messages, in chunks, in the order staged. */
static void flush_paxos(kvi_write_stage *s)
{
    kvi_staged_paxos *list = s->px_head;
    s->px_head = s->px_tail = NULL;
    kvi_staged_paxos *chunk[STAGE_CHUNK];
    while (list) {
        size_t n = 0;
        for (; list && n < STAGE_CHUNK; list = list->next)
            chunk[n++] = list;
        apply_paxos_chunk(s, chunk, n);
    }
}

/* Writes the staged writes, in chunks, in the order staged. */
static void flush_writes(kvi_write_stage *s)
{
    kvi_staged_write *list = s->head;
    s->head = s->tail = NULL;
    kvi_staged_write *chunk[STAGE_CHUNK];
    while (list) {
        size_t n = 0;
        for (; list && n < STAGE_CHUNK; list = list->next)
            chunk[n++] = list;
        apply_chunk(s, chunk, n);
    }
}

/* The late deferred job: the iteration's Paxos messages, then its writes. */
static void flush_staged(void *ctx)
{
    flush_paxos(ctx);
    flush_writes(ctx);
}

int kvi_write_stage_new(kvi_write_stage **out, kvi_loop *loop, kvi_embedded *e)
{
    *out = NULL;
    kvi_write_stage *s = calloc(1, sizeof *s);
    if (!s)
        return kvi_error(KV_ENOMEM, "out of memory creating a write stage");
    s->loop = loop;
    s->store = e;
    kvi_loop_deferred_init(&s->flush, flush_staged, s);
    *out = s;
    return KV_OK;
}

void kvi_write_stage_free(kvi_write_stage *s)
{
    if (!s)
        return;
    flush_staged(s); /* nothing, unless the loop stopped with writes staged */
    free(s);
}

kvi_loop *kvi_write_stage_loop(const kvi_write_stage *s)
{
    return s->loop;
}

void kvi_write_stage_add(kvi_write_stage *s, kvi_staged_write *w)
{
    w->item.why = w->why;
    w->item.why_size = sizeof w->why;
    w->why[0] = 0;
    w->next = NULL;
    if (s->tail)
        s->tail->next = w;
    else
        s->head = w;
    s->tail = w;
    kvi_loop_defer_late(s->loop, &s->flush);
}

void kvi_write_stage_add_paxos(kvi_write_stage *s, kvi_staged_paxos *p)
{
    p->msg.answer = (kvi_buf){0};
    p->msg.status = KV_OK;
    p->next = NULL;
    if (s->px_tail)
        s->px_tail->next = p;
    else
        s->px_head = p;
    s->px_tail = p;
    kvi_loop_defer_late(s->loop, &s->flush);
}
