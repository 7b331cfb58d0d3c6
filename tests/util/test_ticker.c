/* The ticker behind the background threads: it ticks until the function
 * says done, a stop wakes it from a long wait, and stopping a ticker that
 * never started is harmless. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "util/ticker.h"

typedef struct counter {
    atomic_int ticks;
    int stop_after;     /* return 0 on this tick */
    uint32_t interval;
} counter;

static uint32_t tick(void *arg)
{
    counter *c = arg;
    int n = atomic_fetch_add(&c->ticks, 1) + 1;
    return n >= c->stop_after ? 0 : c->interval;
}

static void ticks_until_done(void **state)
{
    (void)state;
    counter c = {0, 5, 1};
    kvi_ticker t;
    assert_int_equal(kvi_ticker_start(&t, tick, &c), 0);
    /* Bounded wait for the thread to finish its five ticks. */
    for (int i = 0; i < 5000 && atomic_load(&c.ticks) < 5; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    kvi_ticker_stop(&t);
    assert_int_equal(atomic_load(&c.ticks), 5); /* and no sixth */
}

static void stop_wakes_a_long_wait(void **state)
{
    (void)state;
    counter c = {0, 1000, 3600u * 1000u}; /* the next tick an hour away */
    kvi_ticker t;
    assert_int_equal(kvi_ticker_start(&t, tick, &c), 0);
    while (atomic_load(&c.ticks) == 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(kvi_ticker_stopping(&t), 0);
    kvi_ticker_stop(&t); /* returns at once, or the test would hang */
    assert_int_equal(atomic_load(&c.ticks), 1);
    kvi_ticker_stop(&t); /* twice is harmless */
}

/* A poke runs the next tick at once, an hour before it is due. */
static void a_poke_ticks_at_once(void **state)
{
    (void)state;
    counter c = {0, 1000, 3600u * 1000u};
    kvi_ticker t;
    assert_int_equal(kvi_ticker_start(&t, tick, &c), 0);
    for (int i = 0; i < 60000 && atomic_load(&c.ticks) < 1; i++) { /* the first, at start */
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    for (int want = 2; want <= 4; want++) {
        /* Bounded (60 s): without the poke the tick is an hour away. */
        kvi_ticker_poke(&t);
        for (int i = 0; i < 60000 && atomic_load(&c.ticks) < want; i++) {
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
        assert_true(atomic_load(&c.ticks) >= want);
    }
    kvi_ticker_stop(&t);
}

static void a_ticker_never_started_stops_quietly(void **state)
{
    (void)state;
    kvi_ticker t;
    memset(&t, 0, sizeof t);
    kvi_ticker_stop(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ticks_until_done),
        cmocka_unit_test(stop_wakes_a_long_wait),
        cmocka_unit_test(a_poke_ticks_at_once),
        cmocka_unit_test(a_ticker_never_started_stops_quietly),
    };
    return cmocka_run_group_tests_name("util.ticker", tests, NULL, NULL);
}
