/* The phi accrual failure detector, on synthetic heartbeat times: silence
 * raises phi past the threshold within a few seconds, regular heartbeats
 * keep it low, a member that is regularly slow is not convicted for it, and
 * a heartbeat after a conviction clears it, and the observer's own pause is
 * forgiven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "cluster/phi.h"

/* Heartbeats every `every` ms, with a jitter pattern, from t = 1000. */
static uint64_t feed(kvi_phi *p, int count, uint64_t every, uint64_t jitter)
{
    uint64_t t = 1000;
    for (int i = 0; i < count; i++) {
        t += every + (uint64_t)(i % 3) * jitter;
        kvi_phi_heartbeat(p, t);
    }
    return t;
}

/* The first moment (10 ms steps) at which the member is suspected. */
static uint64_t detection_ms(const kvi_phi *p, uint64_t last)
{
    for (uint64_t d = 0; d < 60000; d += 10)
        if (kvi_phi_suspect(p, last + d))
            return d;
    return UINT64_MAX;
}

static void silence_is_detected_in_a_few_seconds(void **state)
{
    (void)state;
    kvi_phi p;
    kvi_phi_init(&p, NULL);
    uint64_t last = feed(&p, 50, 1000, 50);
    assert_true(kvi_phi_value(&p, last) == 0.0);
    /* Within the acceptable pause: far from suspected. */
    assert_true(kvi_phi_value(&p, last + 1500) < 1.0);
    uint64_t d = detection_ms(&p, last);
    assert_true(d >= 3000 && d <= 6000);
    /* Phi only grows with the silence. */
    double prev = 0;
    for (uint64_t t = last; t < last + 10000; t += 250) {
        double v = kvi_phi_value(&p, t);
        assert_true(v >= prev);
        prev = v;
    }
    /* A heartbeat clears the suspicion. */
    kvi_phi_heartbeat(&p, last + d + 100);
    assert_false(kvi_phi_suspect(&p, last + d + 200));
}

/* The observer was paused for 15 s: its own silence is forgiven, so the
 * member is not suspected on resuming; it still is once it stays silent
 * past the usual detection time after that. */
static void a_local_pause_is_forgiven(void **state)
{
    (void)state;
    kvi_phi p;
    kvi_phi_init(&p, NULL);
    uint64_t last = feed(&p, 50, 1000, 50);
    uint64_t d = detection_ms(&p, last);
    uint64_t resumed = last + 15000;
    assert_true(kvi_phi_suspect(&p, resumed));
    kvi_phi_forgive(&p, 15000 - 500, resumed);
    assert_false(kvi_phi_suspect(&p, resumed));
    assert_true(kvi_phi_suspect(&p, resumed - 500 + d));
    /* Never moved past now; nothing to forgive before a first heartbeat. */
    kvi_phi_forgive(&p, 60000, resumed);
    assert_true(p.last_ms == resumed);
    kvi_phi none;
    kvi_phi_init(&none, NULL);
    kvi_phi_forgive(&none, 5000, resumed);
    assert_true(none.last_ms == 0);
    assert_false(kvi_phi_suspect(&none, resumed));
}

static void a_slow_member_is_not_convicted_for_being_slow(void **state)
{
    (void)state;
    kvi_phi fast, slow;
    kvi_phi_init(&fast, NULL);
    kvi_phi_init(&slow, NULL);
    uint64_t lf = feed(&fast, 100, 1000, 0);
    /* Heartbeats that arrive every 2 s with up to 1 s of jitter (a loaded
     * node or a slow gossip path): the detector learns it. */
    uint64_t ls = feed(&slow, 100, 2000, 500);
    assert_false(kvi_phi_suspect(&slow, ls + 4000));
    assert_true(detection_ms(&slow, ls) > detection_ms(&fast, lf));
}

/* A member back from a long pause (SIGSTOP): the pause is not learned, so
 * its next silence is caught as fast as before. */
static void a_long_pause_is_not_learned(void **state)
{
    (void)state;
    kvi_phi steady, paused;
    kvi_phi_init(&steady, NULL);
    kvi_phi_init(&paused, NULL);
    uint64_t t = feed(&steady, 20, 1000, 0);
    feed(&paused, 20, 1000, 0);
    kvi_phi_heartbeat(&paused, t + 15000); /* back after 15 s */
    for (int i = 1; i <= 5; i++) {
        kvi_phi_heartbeat(&steady, t + (uint64_t)i * 1000);
        kvi_phi_heartbeat(&paused, t + 15000 + (uint64_t)i * 1000);
    }
    uint64_t ds = detection_ms(&steady, t + 5000);
    uint64_t dp = detection_ms(&paused, t + 20000);
    assert_int_equal(dp, ds);
    assert_true(dp <= 6000);
}

static void settings_are_honoured(void **state)
{
    (void)state;
    kvi_phi_config strict = {.threshold = 3, .acceptable_pause_ms = 500, .min_stddev_ms = 100};
    kvi_phi a, b;
    kvi_phi_init(&a, &strict);
    kvi_phi_init(&b, NULL);
    uint64_t la = feed(&a, 30, 1000, 0);
    uint64_t lb = feed(&b, 30, 1000, 0);
    assert_true(detection_ms(&a, la) < detection_ms(&b, lb));
    assert_true(detection_ms(&a, la) <= 2000);
}

static void nothing_known_means_nothing_suspected(void **state)
{
    (void)state;
    kvi_phi p;
    kvi_phi_init(&p, NULL);
    assert_true(kvi_phi_value(&p, 123456) == 0.0);
    assert_false(kvi_phi_suspect(&p, 999999));
    /* One heartbeat: the expected interval stands in for history. */
    kvi_phi_heartbeat(&p, 5000);
    assert_false(kvi_phi_suspect(&p, 6000));
    assert_true(kvi_phi_suspect(&p, 5000 + 30000));
    /* Time going backwards (a clock step) is not an interval. */
    kvi_phi_heartbeat(&p, 4000);
    assert_false(kvi_phi_suspect(&p, 6000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(silence_is_detected_in_a_few_seconds),
        cmocka_unit_test(a_slow_member_is_not_convicted_for_being_slow),
        cmocka_unit_test(a_local_pause_is_forgiven),
        cmocka_unit_test(a_long_pause_is_not_learned),
        cmocka_unit_test(settings_are_honoured),
        cmocka_unit_test(nothing_known_means_nothing_suspected),
    };
    return cmocka_run_group_tests_name("cluster.phi", tests, NULL, NULL);
}
