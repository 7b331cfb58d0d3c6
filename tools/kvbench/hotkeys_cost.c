/* hotkeys_cost: what counting a request among a node's hot keys costs
 * (lib/util/hotkeys.c, compiled in), per call, on 1 and 2 threads at once,
 * over a Zipf-like key stream (docs/BENCHMARKS.md); not installed.
 *
 *   hotkeys_cost [CALLS_PER_THREAD]
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "util/hotkeys.h"

#define KEYS 100000u

typedef struct job {
    kvi_hotkeys *h;
    unsigned long calls;
    unsigned seed;
    char (*keys)[24];
    unsigned *picks;
} job;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *run(void *arg)
{
    job *j = arg;
    for (unsigned long i = 0; i < j->calls; i++) {
        unsigned k = j->picks[(i + j->seed) % (1u << 20)];
        kvi_hotkeys_record(j->h, i % 10 ? KVI_HOTKEY_READ : KVI_HOTKEY_WRITE, j->keys[k], 16,
                           now_ns() / 1000000u);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long calls = argc > 1 ? strtoul(argv[1], NULL, 10) : 5000000ul;
    static char keys[KEYS][24];
    for (unsigned i = 0; i < KEYS; i++)
        snprintf(keys[i], sizeof keys[i], "key%013u", i);
    /* Picks with P(k) ~ 1/(k+1) (Zipf, exponent 1), precomputed. */
    unsigned *picks = malloc((1u << 20) * sizeof *picks);
    double h = 0;
    for (unsigned k = 0; k < KEYS; k++)
        h += 1.0 / (k + 1);
    srand(1);
    for (unsigned i = 0; i < (1u << 20); i++) {
        double u = (double)rand() / RAND_MAX * h, acc = 0;
        unsigned k = 0;
        while (k < KEYS - 1 && (acc += 1.0 / (k + 1)) < u)
            k++;
        picks[i] = k;
    }
    for (int threads = 1; threads <= 2; threads++) {
        kvi_hotkeys *hk = kvi_hotkeys_new(0);
        pthread_t t[2];
        job j[2];
        uint64_t start = now_ns();
        for (int i = 0; i < threads; i++) {
            j[i] = (job){hk, calls, (unsigned)i * 7919u, keys, picks};
            pthread_create(&t[i], NULL, run, &j[i]);
        }
        for (int i = 0; i < threads; i++)
            pthread_join(t[i], NULL);
        double ns = (double)(now_ns() - start) / (double)calls;
        kvi_hotkey top[1];
        uint64_t total;
        kvi_hotkeys_top(hk, KVI_HOTKEY_READ, now_ns() / 1000000u, top, 1, &total);
        printf("%d thread(s): %.1f ns a call (wall time per call of one thread, clock read "
               "included); hottest read key %.*s, %.1f%% of %" PRIu64 "\n",
               threads, ns, (int)(top[0].key_len < 24 ? top[0].key_len : 24),
               (const char *)top[0].key, 100.0 * (double)top[0].count / (double)total, total);
        kvi_hotkeys_free(hk);
    }
    free(picks);
    return 0;
}
