/* util/pbs: staleness predicted by simulation, checked against cases whose
 * answer is known exactly or in closed form. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "util/pbs.h"

/* Four buckets: up to 1, 2, 4 and 8 ms, then the rest. */
static const double bounds_us[] = {1000, 2000, 4000, 8000};
#define N_BOUNDS 4

/* Every round trip between 4 and 8 ms: the way back is half the fastest
 * (2 ms), so a write lands 2 to 6 ms after it was sent, uniformly. */
static const uint64_t slow_peer[N_BOUNDS + 1] = {0, 0, 0, 1000, 0};

static kvi_pbs_input input(unsigned n, unsigned r, unsigned w, const kvi_pbs_peer *peers,
                           size_t n_peers)
{
    kvi_pbs_input in = {.n = n, .r = r, .w = w, .bounds_us = bounds_us, .n_bounds = N_BOUNDS,
                        .peers = peers, .n_peers = n_peers, .trials = 40000, .seed = 7};
    return in;
}

/* W = 1, R = 1: the write is acknowledged at once by its coordinator, and
 * the read's coordinator sees it once it has landed there, 2 to 6 ms
 * later: never at 0 and 1 ms, half the time at 4 ms, always from 6 ms. */
static void one_one_follows_the_landing_time(void **state)
{
    (void)state;
    kvi_pbs_peer peers[] = {{slow_peer}, {slow_peer}};
    kvi_pbs_input in = input(3, 1, 1, peers, 2);
    kvi_pbs_point p[] = {{.t_ms = 0}, {.t_ms = 1}, {.t_ms = 3}, {.t_ms = 4}, {.t_ms = 6.5}};
    const char *why = NULL;
    assert_int_equal(kvi_pbs_predict(p, 5, &in, &why), 0);
    assert_true(p[0].consistent == 0.0);
    assert_true(isinf(p[0].versions_behind));
    assert_true(p[1].consistent == 0.0);
    assert_true(fabs(p[2].consistent - 0.25) < 0.02); /* (3 - 2) / 4 */
    assert_true(fabs(p[3].consistent - 0.50) < 0.02);
    /* k-staleness: a stale read is behind p / (1 - p) versions. */
    assert_true(fabs(p[3].versions_behind - (1 - p[3].consistent) / p[3].consistent) < 1e-9);
    assert_true(p[4].consistent == 1.0);
    assert_true(p[4].versions_behind == 0.0);
}

/* R + W > N: the read's replicas meet the write's, always consistent. */
static void strict_quorums_are_never_stale(void **state)
{
    (void)state;
    kvi_pbs_peer peers[] = {{slow_peer}};
    const unsigned cases[][3] = {{3, 2, 2}, {3, 1, 3}, {3, 3, 1}, {5, 3, 3}, {5, 2, 4}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        kvi_pbs_input in = input(cases[i][0], cases[i][1], cases[i][2], peers, 1);
        kvi_pbs_point p = {.t_ms = 0};
        const char *why = NULL;
        assert_int_equal(kvi_pbs_predict(&p, 1, &in, &why), 0);
        assert_true(p.consistent == 1.0);
    }
}

/* Waiting for more acknowledgements or asking more replicas never makes
 * a read more stale, and a partial quorum is stale sometimes. */
static void more_replicas_never_hurt(void **state)
{
    (void)state;
    static const uint64_t spread[N_BOUNDS + 1] = {500, 200, 100, 100, 100};
    kvi_pbs_peer peers[] = {{spread}, {slow_peer}, {spread}, {slow_peer}};
    double previous = -1;
    for (unsigned r = 1; r <= 2; r++) {
        kvi_pbs_input in = input(5, r, 1, peers, 4);
        kvi_pbs_point p = {.t_ms = 1};
        const char *why = NULL;
        assert_int_equal(kvi_pbs_predict(&p, 1, &in, &why), 0);
        assert_true(p.consistent > 0.0 && p.consistent < 1.0);
        assert_true(p.consistent >= previous);
        previous = p.consistent;
    }
}

/* The same seed, the same answer; one replica is always consistent. */
static void reproducible_and_trivial_cases(void **state)
{
    (void)state;
    kvi_pbs_peer peers[] = {{slow_peer}};
    kvi_pbs_input in = input(3, 1, 1, peers, 1);
    kvi_pbs_point a = {.t_ms = 4}, b = {.t_ms = 4};
    const char *why = NULL;
    assert_int_equal(kvi_pbs_predict(&a, 1, &in, &why), 0);
    assert_int_equal(kvi_pbs_predict(&b, 1, &in, &why), 0);
    assert_true(a.consistent == b.consistent);
    kvi_pbs_input alone = input(1, 1, 1, NULL, 0);
    assert_int_equal(kvi_pbs_predict(&a, 1, &alone, &why), 0);
    assert_true(a.consistent == 1.0);
}

static void bad_input_is_refused(void **state)
{
    (void)state;
    kvi_pbs_peer peers[] = {{slow_peer}};
    static const uint64_t empty[N_BOUNDS + 1] = {0};
    kvi_pbs_peer none[] = {{empty}};
    kvi_pbs_point p = {.t_ms = 0};
    const char *why = NULL;
    kvi_pbs_input in = input(3, 4, 1, peers, 1);
    assert_int_equal(kvi_pbs_predict(&p, 1, &in, &why), -1);
    assert_non_null(why);
    in = input(3, 1, 0, peers, 1);
    assert_int_equal(kvi_pbs_predict(&p, 1, &in, &why), -1);
    in = input(0, 1, 1, peers, 1);
    assert_int_equal(kvi_pbs_predict(&p, 1, &in, &why), -1);
    in = input(3, 1, 1, none, 1); /* no round trip measured */
    why = NULL;
    assert_int_equal(kvi_pbs_predict(&p, 1, &in, &why), -1);
    assert_non_null(why);
    in = input(3, 1, 1, peers, 1);
    in.n_bounds = 0;
    assert_int_equal(kvi_pbs_predict(&p, 1, &in, &why), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_one_follows_the_landing_time),
        cmocka_unit_test(strict_quorums_are_never_stale),
        cmocka_unit_test(more_replicas_never_hurt),
        cmocka_unit_test(reproducible_and_trivial_cases),
        cmocka_unit_test(bad_input_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
