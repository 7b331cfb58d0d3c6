/*
 * kvbench - benchmarks of libkv.
 *
 *   kvbench embedded [flags]   the embedded handle in this process, with
 *                              db_bench-like workloads (bench_embedded.c)
 *   kvbench binary --endpoints HOST:PORT[,...] [flags]
 *                              a remote node through kv_client_open, over the
 *                              binary protocol (bench_net.c)
 *   kvbench http --url http://HOST:PORT [flags]
 *                              a remote node's HTTP/JSON API through libcurl
 *                              (bench_net.c)
 *
 * `kvbench MODE --help` describes a mode's flags. Progress goes to stderr,
 * results to stdout (text, or JSON with --json).
 *
 * This file holds what the modes share and main(); each mode parses its own
 * flags.
 */
#include "kvbench.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kv/kv.h>

atomic_bool g_stop;
volatile sig_atomic_t g_signal;

static void on_signal(int sig)
{
    g_signal = sig;
    atomic_store(&g_stop, true);
}

void kvb_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, PROG ": ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\nTry '" PROG " --help'.\n");
    exit(2);
}

static bool in_list(const char *const *list, const char *name)
{
    for (; *list; list++)
        if (strcmp(*list, name) == 0)
            return true;
    return false;
}

void kvb_next_flag(int argc, char **argv, int *i, const char *const *bools,
                   const char *const *valued, void (*usage)(FILE *), char name[64],
                   const char **val)
{
    const char *arg = argv[*i];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
        usage(stdout);
        exit(0);
    }
    if (strncmp(arg, "--", 2) != 0)
        bad_usage("unexpected argument '%s'", arg);
    const char *eq = strchr(arg, '=');
    size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
    if (nlen >= 64)
        bad_usage("unknown flag '%s'", arg);
    memcpy(name, arg, nlen);
    name[nlen] = '\0';
    if (in_list(bools, name)) {
        if (eq != NULL)
            bad_usage("this flag takes no value: '%s'", arg);
        *val = NULL;
        return;
    }
    if (!in_list(valued, name))
        bad_usage("unknown flag '%s'", name);
    if (eq != NULL)
        *val = eq + 1;
    else if (*i + 1 < argc)
        *val = argv[++*i];
    else
        bad_usage("%s needs a value", name);
}

uint64_t parse_u64(const char *flag, const char *s, uint64_t lo, uint64_t hi)
{
    char *end;
    errno = 0;
    if (*s == '\0' || *s == '-' || *s == '+')
        goto bad;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        goto bad;
    return v;
bad:
    fprintf(stderr, PROG ": %s needs an integer in %" PRIu64 "..%" PRIu64 ", got '%s'\n"
            "Try '" PROG " --help'.\n", flag, lo, hi, s);
    exit(2);
}

double parse_double(const char *flag, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (*s == '\0' || errno != 0 || *end != '\0' || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, PROG ": %s needs a number in %g..%g, got '%s'\n"
                "Try '" PROG " --help'.\n", flag, lo, hi, s);
        exit(2);
    }
    return v;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " MODE [flags]\n"
        "       " PROG " --help | --version\n"
        "\n"
        "Modes:\n"
        "  embedded   an embedded store (kv_open) in this process, db_bench-like\n"
        "  binary     a remote node through kv_client_open (binary protocol)\n"
        "  etcd       an etcd server through its v3 JSON gateway (a benchmark anchor)\n"
        "  http       a remote node's HTTP/JSON API through libcurl\n"
        "\n");
    kvb_embedded_usage(f);
    fputc('\n', f);
    kvb_net_usage(f);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        bad_usage("missing mode%s (embedded, binary, http or etcd)", "");
    const char *mode = argv[1];
    if (strcmp(mode, "-h") == 0 || strcmp(mode, "--help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(mode, "--version") == 0) {
        printf(PROG " %s\n", kv_version(NULL, NULL, NULL));
        return 0;
    }
    if (strcmp(mode, "embedded") == 0)
        return kvb_embedded_main(argc, argv);
    if (strcmp(mode, "binary") == 0 || strcmp(mode, "http") == 0 || strcmp(mode, "etcd") == 0)
        return kvb_net_main(argc, argv);
    bad_usage("unknown mode '%s' (embedded, binary, http or etcd)", mode);
}
