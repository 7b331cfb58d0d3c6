/*
 * util/ticker.h - a background thread that calls a function periodically
 * until stopped: the one mechanism behind membership discovery, gossip and
 * a client's status refresh.
 *
 * The function runs with no lock held. It returns how many milliseconds
 * after the start of this tick the next one is due (so a slow tick does
 * not stretch the period), or 0 to end the thread. kvi_ticker_stop wakes a
 * waiting thread at once and joins it; a long tick can poll
 * kvi_ticker_stopping to cut itself short.
 *
 * Threads: start and stop from the owner; stopping from the tick.
 */
#ifndef KVI_TICKER_H
#define KVI_TICKER_H

#include <pthread.h>
#include <stdint.h>

typedef uint32_t (*kvi_tick_fn)(void *ctx);

typedef struct kvi_ticker {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stopping;
    int poked;   /* kvi_ticker_poke: tick again at once */
    int running;
    pthread_t thread;
    kvi_tick_fn fn;
    void *ctx;
} kvi_ticker;

/* Starts the thread; the first tick runs at once. 0, or -1 when the thread
 * cannot be created (the ticker is then stopped and safe to stop again). */
int kvi_ticker_start(kvi_ticker *t, kvi_tick_fn fn, void *ctx);
/* Stops and joins the thread. Safe on a ticker that never started (zeroed
 * or failed to start), and more than once. */
void kvi_ticker_stop(kvi_ticker *t);
/* Runs the next tick at once (after the running one, if any) instead of
 * when it is due. Any thread, once started. */
void kvi_ticker_poke(kvi_ticker *t);
/* 1 once kvi_ticker_stop has been called. */
int kvi_ticker_stopping(kvi_ticker *t);

#endif
