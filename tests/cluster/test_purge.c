/* When a dead key may be purged (cluster/purge.h): what counts as dead and
 * since when, and the rule over the replicas' repairs, the hint window and
 * the margin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "cluster/purge.h"

static kvi_sibling sib(int tombstone, uint64_t write_ms, uint64_t expiry_ms)
{
    kvi_sibling x;
    memset(&x, 0, sizeof x);
    x.tombstone = tombstone;
    x.write_ms = write_ms;
    x.expiry_ms = expiry_ms;
    return x;
}

static void dead_is_every_sibling_dead(void **state)
{
    (void)state;
    static kvi_state s;
    uint64_t since = 0;
    kvi_state_init(&s);
    assert_false(kvi_purge_dead_since(&s, 1000, &since)); /* nothing held */
    s.n = 1;
    s.sibs[0] = sib(1, 500, 0);
    assert_true(kvi_purge_dead_since(&s, 1000, &since));
    assert_int_equal(since, 500);
    /* A live sibling beside the tombstone: alive. */
    s.n = 2;
    s.sibs[1] = sib(0, 400, 0);
    assert_false(kvi_purge_dead_since(&s, 1000, &since));
    /* ...unless it expired: dead since the later of the two deaths. */
    s.sibs[1] = sib(0, 400, 900);
    assert_true(kvi_purge_dead_since(&s, 1000, &since));
    assert_int_equal(since, 900);
    assert_false(kvi_purge_dead_since(&s, 899, &since)); /* not expired yet */
    /* An expired value alone is dead since its expiry, not its write. */
    s.n = 1;
    s.sibs[0] = sib(0, 100, 300);
    assert_true(kvi_purge_dead_since(&s, 1000, &since));
    assert_int_equal(since, 300);
}

static void purge_waits_for_every_replica_the_window_and_the_margin(void **state)
{
    (void)state;
    /* Safe from 10000 + 3000 + 1000 = 14000 on. */
    const uint64_t died = 10000, window = 3000, margin = 1000;
    uint64_t repaired[3] = {16000, 15000, 14000};
    assert_true(kvi_purge_allowed(died, 14000, window, margin, repaired, 3));
    /* The hint window plus the margin has not passed. */
    assert_false(kvi_purge_allowed(died, 13999, window, margin, repaired, 3));
    /* One replica's last full repair started before it was safe (while a
     * hint of the delete could still be on its way), or never. */
    repaired[2] = 13999;
    assert_false(kvi_purge_allowed(died, 20000, window, margin, repaired, 3));
    repaired[2] = 9000;
    assert_false(kvi_purge_allowed(died, 20000, window, margin, repaired, 3));
    repaired[2] = 0;
    assert_false(kvi_purge_allowed(died, 20000, window, margin, repaired, 3));
    /* No replica known: never. A death in the future (a skewed clock):
     * not yet. A time so late it wraps: never. */
    assert_false(kvi_purge_allowed(died, 20000, window, margin, repaired, 0));
    repaired[2] = 14000;
    assert_false(kvi_purge_allowed(30000, 20000, window, margin, repaired, 3));
    assert_false(kvi_purge_allowed(UINT64_MAX - 10, UINT64_MAX, window, margin, repaired, 3));
    /* No margin and no window: the repairs need only start after the death. */
    uint64_t just[1] = {died};
    assert_true(kvi_purge_allowed(died, died, 0, 0, just, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dead_is_every_sibling_dead),
        cmocka_unit_test(purge_waits_for_every_replica_the_window_and_the_margin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
