/* util/ticker.c - a periodic background thread with a prompt stop. */
#include "util/ticker.h"

#include <string.h>
#include <time.h>

static void *tick_loop(void *arg)
{
    kvi_ticker *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        t->poked = 0;
        pthread_mutex_unlock(&t->lock);
        uint32_t next_ms = t->fn(t->ctx);
        pthread_mutex_lock(&t->lock);
        if (next_ms == 0)
            break;
        uint64_t ns = (uint64_t)until.tv_nsec + (uint64_t)next_ms * 1000000u;
        until.tv_sec += (time_t)(ns / 1000000000u);
        until.tv_nsec = (long)(ns % 1000000000u);
        while (!t->stopping && !t->poked &&
               pthread_cond_timedwait(&t->wake, &t->lock, &until) == 0)
            ; /* woken early only to stop or to tick at once */
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int kvi_ticker_start(kvi_ticker *t, kvi_tick_fn fn, void *ctx)
{
    memset(t, 0, sizeof *t);
    t->fn = fn;
    t->ctx = ctx;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->wake, &attr);
    pthread_condattr_destroy(&attr);
    t->running = pthread_create(&t->thread, NULL, tick_loop, t) == 0;
    if (!t->running) {
        t->stopping = 1;
        return -1;
    }
    return 0;
}

void kvi_ticker_stop(kvi_ticker *t)
{
    if (!t->fn)
        return; /* never started */
    pthread_mutex_lock(&t->lock);
    t->stopping = 1;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
    if (t->running)
        pthread_join(t->thread, NULL);
    t->running = 0;
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    t->fn = NULL;
}

void kvi_ticker_poke(kvi_ticker *t)
{
    pthread_mutex_lock(&t->lock);
    t->poked = 1;
    pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
}

int kvi_ticker_stopping(kvi_ticker *t)
{
    pthread_mutex_lock(&t->lock);
    int s = t->stopping;
    pthread_mutex_unlock(&t->lock);
    return s;
}
