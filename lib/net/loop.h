/*
 * net/loop.h - a run-to-completion event loop: file descriptors (epoll),
 * timers, tasks posted from other threads, and work deferred to the end of
 * the iteration.
 *
 * One iteration waits until something is ready (or a timer is due), runs
 * the callbacks of every ready descriptor, due timer and posted task, then
 * runs the deferred work (for example: write each connection's gathered
 * output once, with one system call, as Redis's beforeSleep does), then
 * goes back to waiting. Callbacks run to completion and must not block.
 *
 * The loop's own descriptor (kvi_loop_fd) becomes readable whenever an
 * iteration has work, timers included (a timerfd inside), so an
 * application can drive the loop from its own poll or epoll set.
 *
 * Threads: one thread at a time runs the loop ("the loop thread", which
 * may change between iterations); every function except kvi_loop_post,
 * kvi_loop_stop and kvi_loop_fd must be called on it, or before the loop
 * first runs. Registered objects (kvi_loop_io, kvi_loop_timer,
 * kvi_loop_task, kvi_loop_deferred) are owned by the caller and embedded in
 * its own structures; the loop only links them.
 */
#ifndef KVI_LOOP_H
#define KVI_LOOP_H

#include <stddef.h>
#include <stdint.h>

typedef struct kvi_loop kvi_loop;

/* --------------------------------------------------------------- descriptors */

#define KVI_LOOP_READ 1u
#define KVI_LOOP_WRITE 2u
#define KVI_LOOP_ERROR 4u /* hang-up or socket error; always reported */
/* At kvi_loop_io_add only (never changed after): of several loops watching
 * one descriptor (a listening socket), wake one (EPOLLEXCLUSIVE). */
#define KVI_LOOP_EXCLUSIVE 8u

typedef void (*kvi_loop_io_fn)(void *ctx, unsigned events);
typedef struct kvi_loop_io {
    int fd;
    unsigned want; /* KVI_LOOP_READ | KVI_LOOP_WRITE, as last set */
    kvi_loop_io_fn fn;
    void *ctx;
} kvi_loop_io;

/* Watches io->fd for `want`; io must stay valid until kvi_loop_io_del. */
int kvi_loop_io_add(kvi_loop *l, kvi_loop_io *io, int fd, unsigned want, kvi_loop_io_fn fn,
                    void *ctx);
/* Changes what io waits for (no system call when unchanged). */
int kvi_loop_io_set(kvi_loop *l, kvi_loop_io *io, unsigned want);
/* Stops watching; events of this iteration not yet delivered to io are
 * dropped, so the caller may free io (and close the fd) right after. */
void kvi_loop_io_del(kvi_loop *l, kvi_loop_io *io);

/* ------------------------------------------------------------------- timers */

typedef void (*kvi_loop_fn)(void *ctx);
typedef struct kvi_loop_timer {
    uint64_t at_ms;  /* kvi_loop_now_ms() deadline */
    size_t slot;     /* in the loop's heap; 0 = not armed */
    kvi_loop_fn fn;
    void *ctx;
} kvi_loop_timer;

void kvi_loop_timer_init(kvi_loop_timer *t, kvi_loop_fn fn, void *ctx);
/* Arms (or re-arms) t to run once at at_ms. KV_OK or KV_ENOMEM. */
int kvi_loop_timer_set(kvi_loop *l, kvi_loop_timer *t, uint64_t at_ms);
void kvi_loop_timer_cancel(kvi_loop *l, kvi_loop_timer *t);
static inline int kvi_loop_timer_armed(const kvi_loop_timer *t)
{
    return t->slot != 0;
}

/* CLOCK_MONOTONIC milliseconds (util/clock.h's kvi_monotonic_ms): the clock
 * of every timer. Any thread. */
uint64_t kvi_loop_now_ms(void);

/* --------------------------------------------------------------- other work */

/* A task handed to the loop from any thread. The poster keeps t valid until
 * fn runs (on the loop thread; fn may free it). */
typedef struct kvi_loop_task {
    struct kvi_loop_task *next;
    kvi_loop_fn fn;
    void *ctx;
} kvi_loop_task;
void kvi_loop_post(kvi_loop *l, kvi_loop_task *t, kvi_loop_fn fn, void *ctx);

/* Work for the end of this iteration, once however often it is deferred:
 * a connection defers its flush when it first gathers output. Loop thread. */
typedef struct kvi_loop_deferred {
    struct kvi_loop_deferred *next;
    int queued;
    kvi_loop_fn fn;
    void *ctx;
} kvi_loop_deferred;
void kvi_loop_deferred_init(kvi_loop_deferred *d, kvi_loop_fn fn, void *ctx);
void kvi_loop_defer(kvi_loop *l, kvi_loop_deferred *d);
/* The same, but run only once the iteration's other deferred work is done
 * (work that gathers what the rest staged: a write stage's one WriteBatch
 * comes after the iteration's replication was handed over). */
void kvi_loop_defer_late(kvi_loop *l, kvi_loop_deferred *d);
/* Takes d out of the queue if it is in it (before freeing its owner). */
void kvi_loop_undefer(kvi_loop *l, kvi_loop_deferred *d);

/* ------------------------------------------------------------------ running */

int kvi_loop_new(kvi_loop **out);
/* Frees the loop; nothing may be registered any more, and no thread may be
 * running it. Tasks still posted are dropped without running. */
void kvi_loop_free(kvi_loop *l);

/* One iteration, waiting at most timeout_ms for work (-1: until there is
 * some; timers shorten the wait). Returns the number of callbacks run, or a
 * negative KV_* code. */
int kvi_loop_run_once(kvi_loop *l, int timeout_ms);
/* Iterations until kvi_loop_stop. */
void kvi_loop_run(kvi_loop *l);
/* Makes kvi_loop_run return after its current iteration. Any thread. */
void kvi_loop_stop(kvi_loop *l);
/* 1 when the calling thread is running l now (inside a callback of it). */
int kvi_loop_on_thread(const kvi_loop *l);
/* Readable whenever an iteration would have work (an epoll descriptor).
 * Any thread. */
int kvi_loop_fd(const kvi_loop *l);

#endif
