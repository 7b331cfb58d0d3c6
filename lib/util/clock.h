/* util/clock.h - the library's two clocks: wall-clock time for expiries and
 * tombstone ages, and the one monotonic clock for timeouts, timers and
 * latencies. */
#ifndef KVI_CLOCK_H
#define KVI_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Unix time in milliseconds. Expiries are absolute wall-clock times so that
 * every replica of a cluster honours the same instant. */
static inline uint64_t kvi_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* CLOCK_MONOTONIC nanoseconds: latencies. */
static inline uint64_t kvi_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* CLOCK_MONOTONIC milliseconds: deadlines, idle times, timers (the event
 * loop's kvi_loop_now_ms is this clock). */
static inline uint64_t kvi_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#endif
