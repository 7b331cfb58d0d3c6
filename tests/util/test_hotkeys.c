/* util/hotkeys: the Space-Saving top keys over a sliding window. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "util/hotkeys.h"

static void key_of(char *out, size_t size, const char *tag, unsigned i)
{
    snprintf(out, size, "%s-%u", tag, i);
}

/* Ten hot keys (1,000 .. 100 requests) among 5,000 cold keys of one
 * request each, shuffled: the ten come out first, in order, each count
 * within its error of the truth. */
static void the_hottest_keys_come_out_in_order(void **state)
{
    (void)state;
    kvi_hotkeys *h = kvi_hotkeys_new(60000);
    assert_non_null(h);
    enum { HOT = 10, COLD = 5000 };
    unsigned n = COLD;
    for (unsigned i = 0; i < HOT; i++)
        n += 1000 - 100 * i;
    unsigned *stream = malloc(n * sizeof *stream);
    unsigned at = 0;
    for (unsigned i = 0; i < HOT; i++)
        for (unsigned k = 0; k < 1000 - 100 * i; k++)
            stream[at++] = i;
    for (unsigned i = 0; i < COLD; i++)
        stream[at++] = HOT + i;
    srand(7);
    for (unsigned i = n - 1; i > 0; i--) {
        unsigned j = (unsigned)rand() % (i + 1), t = stream[i];
        stream[i] = stream[j];
        stream[j] = t;
    }
    for (unsigned i = 0; i < n; i++) {
        char key[32];
        key_of(key, sizeof key, stream[i] < HOT ? "hot" : "cold", stream[i]);
        kvi_hotkeys_record(h, KVI_HOTKEY_READ, key, strlen(key), 1000);
    }
    kvi_hotkey top[HOT];
    uint64_t total;
    assert_int_equal(kvi_hotkeys_top(h, KVI_HOTKEY_READ, 1000, top, HOT, &total), HOT);
    assert_int_equal(total, n);
    for (unsigned i = 0; i < HOT; i++) {
        char want[32];
        key_of(want, sizeof want, "hot", i);
        assert_int_equal(top[i].key_len, strlen(want));
        assert_memory_equal(top[i].key, want, strlen(want));
        uint64_t truth = 1000 - 100 * i;
        assert_true(top[i].count >= truth);
        assert_true(top[i].count - top[i].error <= truth);
    }
    /* Writes are counted apart: none yet. */
    assert_int_equal(kvi_hotkeys_top(h, KVI_HOTKEY_WRITE, 1000, top, HOT, &total), 0);
    assert_int_equal(total, 0);
    free(stream);
    kvi_hotkeys_free(h);
}

/* Counts last from their window through the next, then are forgotten. */
static void counts_slide_out_of_the_window(void **state)
{
    (void)state;
    kvi_hotkeys *h = kvi_hotkeys_new(1000);
    kvi_hotkey top[4];
    uint64_t total;
    for (int i = 0; i < 5; i++)
        kvi_hotkeys_record(h, KVI_HOTKEY_WRITE, "w", 1, 10100);
    kvi_hotkeys_record(h, KVI_HOTKEY_WRITE, "v", 1, 11200); /* the next window */
    assert_int_equal(kvi_hotkeys_top(h, KVI_HOTKEY_WRITE, 11500, top, 4, &total), 2);
    assert_int_equal(total, 6);
    assert_int_equal(top[0].count, 5);
    assert_int_equal(kvi_hotkeys_span_ms(h, 11500), 1500);
    /* Two windows on, "w" has gone; "v" is in the window before. */
    assert_int_equal(kvi_hotkeys_top(h, KVI_HOTKEY_WRITE, 12100, top, 4, &total), 1);
    assert_int_equal(total, 1);
    assert_memory_equal(top[0].key, "v", 1);
    /* After an idle window, nothing. */
    assert_int_equal(kvi_hotkeys_top(h, KVI_HOTKEY_WRITE, 14000, top, 4, &total), 0);
    assert_int_equal(total, 0);
    kvi_hotkeys_free(h);
}

/* A long key keeps its first bytes and its whole length. */
static void long_keys_keep_their_start(void **state)
{
    (void)state;
    kvi_hotkeys *h = kvi_hotkeys_new(0);
    char key[1000];
    memset(key, 'k', sizeof key);
    key[0] = 'A';
    kvi_hotkeys_record(h, KVI_HOTKEY_READ, key, sizeof key, 5);
    kvi_hotkey top[1];
    uint64_t total;
    assert_int_equal(kvi_hotkeys_top(h, KVI_HOTKEY_READ, 5, top, 1, &total), 1);
    assert_int_equal(top[0].key_len, sizeof key);
    assert_memory_equal(top[0].key, key, KVI_HOTKEYS_KEY_MAX);
    kvi_hotkeys_free(h);
}

typedef struct writer {
    kvi_hotkeys *h;
    unsigned n;
} writer;

static void *record_many(void *arg)
{
    writer *w = arg;
    for (unsigned i = 0; i < w->n; i++) {
        kvi_hotkeys_record(w->h, KVI_HOTKEY_READ, "same", 4, 500);
        char key[32];
        key_of(key, sizeof key, "spread", i % 50);
        kvi_hotkeys_record(w->h, KVI_HOTKEY_READ, key, strlen(key), 500);
    }
    return NULL;
}

/* Threads at once lose no count. */
static void threads_at_once_lose_nothing(void **state)
{
    (void)state;
    kvi_hotkeys *h = kvi_hotkeys_new(60000);
    enum { THREADS = 4, EACH = 20000 };
    pthread_t t[THREADS];
    writer w = {h, EACH};
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, record_many, &w), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    kvi_hotkey top[1];
    uint64_t total;
    assert_int_equal(kvi_hotkeys_top(h, KVI_HOTKEY_READ, 500, top, 1, &total), 1);
    assert_int_equal(total, 2u * THREADS * EACH);
    assert_memory_equal(top[0].key, "same", 4);
    assert_int_equal(top[0].count, (uint64_t)THREADS * EACH);
    kvi_hotkeys_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_hottest_keys_come_out_in_order),
        cmocka_unit_test(counts_slide_out_of_the_window),
        cmocka_unit_test(long_keys_keep_their_start),
        cmocka_unit_test(threads_at_once_lose_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
