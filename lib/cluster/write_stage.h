/*
 * cluster/write_stage.h - one I/O loop's writes of an iteration, applied
 * together.
 *
 * While a loop serves its sockets, the writes this node coordinates and the
 * replicated states it takes in are staged here instead of each making its
 * own store write. Once the iteration's other work is done (a late deferred
 * job of the loop), they are read with one multi-get and written with one
 * unsynced WriteBatch (kvi_replica_merge_many), and each staged write's
 * done callback runs. A caller that needs its write durable asks the
 * store's group committer from there, as it would after a write of its own.
 *
 * The Paxos messages this node's SERIAL rounds send to its own acceptor are
 * staged the same way (kvi_write_stage_add_paxos), applied together with
 * kvi_paxos_apply_unsynced, before the writes.
 *
 * Threads: a stage belongs to one loop. kvi_write_stage_add and the done
 * callbacks run on that loop's thread; kvi_write_stage_free runs once the
 * loop is freed (a write still staged then is applied at once).
 */
#ifndef KVI_WRITE_STAGE_H
#define KVI_WRITE_STAGE_H

#include "cluster/paxos_acceptor.h"
#include "cluster/replica_store.h"
#include "net/loop.h"

typedef struct kvi_write_stage kvi_write_stage;
typedef struct kvi_staged_write kvi_staged_write;

struct kvi_staged_write {
    /* In: the key, and incoming (a merge) or args and value (a coordinated
     * write), all valid until done runs. Out: status, version,
     * current_version, as kvi_replica_merge_many fills them. */
    kvi_merge_item item;
    /* A failed write's message (item.why points here). */
    char why[240];
    /* After the write, on the loop's thread; may free w. */
    void (*done)(kvi_staged_write *w);
    kvi_staged_write *next; /* the stage's */
};

typedef struct kvi_staged_paxos kvi_staged_paxos;

struct kvi_staged_paxos {
    /* In: kind, key, ballot, proposal, all valid until done runs. Out:
     * status and answer (the done callback takes the answer's bytes). */
    kvi_paxos_msg msg;
    /* After the message is applied, unsynced, on the loop's thread; may
     * free p. A promise or an accept is not to be answered before the
     * store's group committer has made it durable. */
    void (*done)(kvi_staged_paxos *p);
    kvi_staged_paxos *next; /* the stage's */
};

/* A stage for loop's writes into e. KV_OK or KV_ENOMEM. */
int kvi_write_stage_new(kvi_write_stage **out, kvi_loop *loop, kvi_embedded *e);
/* Frees s (NULL: nothing). */
void kvi_write_stage_free(kvi_write_stage *s);
/* The loop s belongs to. */
kvi_loop *kvi_write_stage_loop(const kvi_write_stage *s);
/* Stages w for the end of this iteration (w->done says when it is
 * written; a failure's message is in w->why then). On the loop's thread
 * only; never calls w->done itself. */
void kvi_write_stage_add(kvi_write_stage *s, kvi_staged_write *w);
/* Stages a Paxos message for this node's acceptor, likewise. */
void kvi_write_stage_add_paxos(kvi_write_stage *s, kvi_staged_paxos *p);

#endif
