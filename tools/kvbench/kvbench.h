/*
 * kvbench.h - what the modes of kvbench share: the clock, the PRNG, the stop
 * flag set by SIGINT/SIGTERM, flag parsing helpers and JSON output.
 *
 * Modes: embedded (bench_embedded.c), binary and http (bench_net.c).
 */
#ifndef KVBENCH_H
#define KVBENCH_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define PROG "kvbench"

/* Set by SIGINT / SIGTERM (and by a failing embedded worker): workers stop. */
extern atomic_bool g_stop;
/* The signal that stopped the run, 0 if none. */
extern volatile sig_atomic_t g_signal;

/* Route SIGINT and SIGTERM to g_stop. */
void kvb_install_signals(void);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t now_ns(void);

/* splitmix64: a small, fast PRNG with a 64-bit state (one per thread). */
static inline uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline double us(uint64_t ns) { return (double)ns / 1000.0; }

/* Print a JSON string literal of a C string. */
void json_string(FILE *f, const char *s);

/* Print "kvbench: <fmt with arg>", a hint to --help, and exit 2. */
_Noreturn void bad_usage(const char *fmt, const char *arg);

/* Parse a decimal integer in [lo, hi] for a flag, or exit 2. */
uint64_t parse_u64(const char *flag, const char *s, uint64_t lo, uint64_t hi);

/* Reads the flag at argv[*i] (--name, --name=value or --name value, the
 * last advancing *i) into name. Boolean flags (in bools) set *val to NULL;
 * flags in valued set *val to their value. -h/--help prints usage and exits
 * 0; anything else exits 2 with a message. Both lists end with NULL. */
void kvb_next_flag(int argc, char **argv, int *i, const char *const *bools,
                   const char *const *valued, void (*usage)(FILE *), char name[64],
                   const char **val);

/* Parse a decimal number in [lo, hi] for a flag, or exit 2. */
double parse_double(const char *flag, const char *s, double lo, double hi);

/* The modes; each gets the whole argv (argv[1] is the mode) and returns the
 * exit status. */
int kvb_embedded_main(int argc, char **argv);
void kvb_embedded_usage(FILE *f);
int kvb_net_main(int argc, char **argv);
void kvb_net_usage(FILE *f);

#endif /* KVBENCH_H */
