/* util/clock.h - wall-clock time for expiries and tombstone ages. */
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

#endif
