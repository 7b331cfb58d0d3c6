/*
 * bench_embedded.c - kvbench's embedded mode, in the manner of RocksDB's
 * db_bench.
 *
 *   kvbench embedded [--db DIR] [--benchmarks fillrandom,readrandom]
 *                    [--num N] [--key-size B] [--value-size B] [--threads T]
 *                    [--sync none|periodic|always] [--cache-mb M]
 *                    [--key-format db_bench|decimal] [--seed S] [--json]
 *
 * "embedded" opens the store in this process with kv_open and drives it
 * through the public API only. The workloads mirror db_bench's:
 *
 *   fillrandom  each thread does N puts of keys drawn uniformly from [0, N)
 *               (with repeats, so about 63 % of the key space gets written);
 *   readrandom  each thread does N gets of keys drawn uniformly from [0, N),
 *               counting found and not found.
 *
 * Keys are exactly --key-size bytes. The default format is db_bench's own
 * (tools/db_bench_tool.cc, GenerateKeyFromInt): the number as 8 big-endian
 * bytes, then ASCII '0' padding. --key-format decimal gives the LevelDB-style
 * zero-padded decimal number instead. Values come from a 1 MiB buffer built
 * like db_bench's RandomGenerator with compression_ratio 0.5: 100-byte pieces,
 * each 50 random printable bytes repeated, so values compress to about half.
 *
 * Every operation is timed with CLOCK_MONOTONIC into a per-thread histogram
 * (histogram.h). A progress line goes to stderr every second; the results go
 * to stdout, as text or, with --json, as one JSON object per benchmark.
 *
 * Exit status: 0 success, 1 a libkv call failed, 2 bad usage, 128+signal if
 * interrupted. Without --db the store lives in a fresh temporary directory
 * that is removed at the end (also on failure or SIGINT/SIGTERM).
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kv/kv.h>

#include "histogram.h"
#include "kvbench.h"

#define MAX_BENCHMARKS 32
#define FLUSH_INTERVAL_NS 100000000ull /* worker -> progress reporter */
#define VALUE_PIECE 100                /* as db_bench's RandomGenerator */

/* ------------------------------------------------------------------ config */

enum bench_kind { BENCH_FILLRANDOM, BENCH_READRANDOM };
static const char *const bench_names[] = {"fillrandom", "readrandom"};

enum key_format { KEYFMT_DB_BENCH, KEYFMT_DECIMAL };

struct config {
    const char *db_dir; /* NULL: a temporary directory */
    enum bench_kind benches[MAX_BENCHMARKS];
    size_t nbench;
    uint64_t num;
    uint32_t key_size;
    uint32_t value_size;
    unsigned threads;
    kv_sync_policy sync;
    uint64_t cache_mb;
    enum key_format key_format;
    uint64_t seed;
    bool json;
};

static const char *sync_name(kv_sync_policy s)
{
    switch (s) {
    case KV_SYNC_ALWAYS: return "always";
    case KV_SYNC_PERIODIC: return "periodic";
    case KV_SYNC_NONE: return "none";
    }
    return "?";
}

/* ----------------------------------------------------------------- helpers */

/* Write key number k into key[0..len), in the chosen format. */
static void make_key(char *key, uint32_t len, uint64_t k, enum key_format fmt)
{
    if (fmt == KEYFMT_DB_BENCH) {
        /* db_bench: min(len, 8) bytes of k, most significant first, then
         * '0' padding. */
        uint32_t n = len < 8 ? len : 8;
        for (uint32_t i = 0; i < n; i++)
            key[i] = (char)((k >> ((n - i - 1) * 8)) & 0xff);
        if (len > n)
            memset(key + n, '0', len - n);
    } else {
        /* k in decimal, right-aligned and zero-padded to exactly len bytes
         * (its low digits only if it has more than len). */
        for (uint32_t i = len; i > 0; i--) {
            key[i - 1] = (char)('0' + k % 10);
            k /= 10;
        }
    }
}

/*
 * The value buffer, as db_bench's RandomGenerator: pieces of 100 bytes, each
 * 50 random printable characters repeated to 100, up to at least 1 MiB (or
 * one value). Values are consecutive slices of it, wrapping at the end.
 */
static char *make_value_buffer(uint32_t value_size, uint64_t seed, size_t *len_out)
{
    size_t want = value_size > (1u << 20) ? value_size : (1u << 20);
    size_t len = (want + VALUE_PIECE - 1) / VALUE_PIECE * VALUE_PIECE;
    char *buf = malloc(len);
    if (buf == NULL)
        return NULL;
    uint64_t rng = seed ^ 0x5eedf00dull;
    for (size_t off = 0; off < len; off += VALUE_PIECE) {
        char raw[VALUE_PIECE / 2];
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (char)(' ' + splitmix64(&rng) % 95);
        for (size_t i = 0; i < VALUE_PIECE; i++)
            buf[off + i] = raw[i % sizeof raw];
    }
    *len_out = len;
    return buf;
}

/* Removal of the temporary store directory. */
static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, PROG ": cannot remove %s: %s\n", path, strerror(errno));
    return 0; /* keep going */
}

static void remove_tree(const char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------- benchmark */

struct run; /* one benchmark run, shared by its workers */

struct worker {
    pthread_t thread;
    unsigned idx;
    struct run *run;
    uint64_t rng;
    char *key;
    kvb_hist total;    /* everything this thread measured */
    kvb_hist interval; /* since the last flush to run->interval */
    uint64_t done, found, not_found;
    uint64_t t_start, t_end;
    /* first failure, if any */
    const char *err_call;
    int err_code;
    char err_detail[512];
};

struct run {
    kv *db;
    const struct config *cfg;
    enum bench_kind kind;
    const char *valbuf;
    size_t vallen;
    /* Progress: workers merge their interval histograms here every
     * FLUSH_INTERVAL_NS; the main thread prints and resets it every second. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    kvb_hist interval;
    unsigned running;
};

static void flush_interval(struct worker *w)
{
    kvb_hist_merge(&w->total, &w->interval);
    pthread_mutex_lock(&w->run->mu);
    kvb_hist_merge(&w->run->interval, &w->interval);
    pthread_mutex_unlock(&w->run->mu);
    kvb_hist_init(&w->interval);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run *r = w->run;
    const struct config *cfg = r->cfg;
    const bool fill = r->kind == BENCH_FILLRANDOM;
    size_t vpos = 0;

    w->t_start = now_ns();
    uint64_t last_flush = w->t_start;
    for (uint64_t i = 0; i < cfg->num; i++) {
        if (atomic_load_explicit(&g_stop, memory_order_relaxed))
            break;
        make_key(w->key, cfg->key_size, splitmix64(&w->rng) % cfg->num, cfg->key_format);
        int rc;
        uint64_t t0, t1;
        if (fill) {
            if (vpos + cfg->value_size > r->vallen)
                vpos = 0;
            const char *val = r->valbuf + vpos;
            vpos += cfg->value_size;
            t0 = now_ns();
            rc = kv_put(NULL, r->db, w->key, cfg->key_size, val, cfg->value_size, NULL);
            t1 = now_ns();
        } else {
            kv_value *val = NULL;
            t0 = now_ns();
            rc = kv_get(&val, r->db, w->key, cfg->key_size, NULL);
            kv_value_free(val); /* part of the cost of a get */
            t1 = now_ns();
            if (rc == KV_OK)
                w->found++;
            else if (rc == KV_ENOTFOUND) {
                w->not_found++;
                rc = KV_OK;
            }
        }
        if (rc != KV_OK) {
            w->err_call = fill ? "kv_put" : "kv_get";
            w->err_code = rc;
            snprintf(w->err_detail, sizeof w->err_detail, "%s", kv_error_last());
            atomic_store(&g_stop, true);
            break;
        }
        w->done++;
        kvb_hist_record(&w->interval, t1 - t0);
        if (t1 - last_flush >= FLUSH_INTERVAL_NS) {
            flush_interval(w);
            last_flush = t1;
        }
    }
    w->t_end = now_ns();
    flush_interval(w);

    pthread_mutex_lock(&r->mu);
    r->running--;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* Results of one benchmark, all threads together. */
struct result {
    enum bench_kind kind;
    kvb_hist hist;
    uint64_t ops, found, not_found;
    double seconds;       /* wall time, first start to last end */
    double thread_seconds; /* sum over threads, for micros/op as db_bench */
};

/* Main-thread loop: one progress line a second until every worker is done. */
static void report_progress(struct run *r, uint64_t total_ops)
{
    const char *name = bench_names[r->kind];
    uint64_t t0 = now_ns(), last = t0, cumulative = 0;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);

    pthread_mutex_lock(&r->mu);
    while (r->running > 0) {
        deadline.tv_sec += 1;
        int rc = 0;
        while (r->running > 0 && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&r->cv, &r->mu, &deadline);
        if (r->running == 0)
            break;
        uint64_t now = now_ns();
        uint64_t n = kvb_hist_count(&r->interval);
        cumulative += n;
        if (n > 0) {
            fprintf(stderr,
                    PROG ": %-10s %6.1f s %9.0f ops/s  p50 %8.2f us  p99 %8.2f us  %5.1f %%\n",
                    name, (double)(now - t0) / 1e9, (double)n * 1e9 / (double)(now - last),
                    us(kvb_hist_percentile(&r->interval, 50.0)),
                    us(kvb_hist_percentile(&r->interval, 99.0)),
                    100.0 * (double)cumulative / (double)total_ops);
        }
        kvb_hist_init(&r->interval);
        last = now;
    }
    pthread_mutex_unlock(&r->mu);
}

/*
 * Run one benchmark with cfg->threads workers. Returns 0, 1 (a libkv call
 * failed; the message is printed) or -1 (could not start threads).
 */
static int run_benchmark(kv *db, const struct config *cfg, size_t ordinal,
                         const char *valbuf, size_t vallen, struct result *res)
{
    struct run *r = calloc(1, sizeof *r);
    struct worker *ws = calloc(cfg->threads, sizeof *ws);
    if (r == NULL || ws == NULL) {
        free(r);
        free(ws);
        fprintf(stderr, PROG ": out of memory\n");
        return -1;
    }
    r->db = db;
    r->cfg = cfg;
    r->kind = cfg->benches[ordinal];
    r->valbuf = valbuf;
    r->vallen = vallen;
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    kvb_hist_init(&r->interval);

    int status = 0;
    unsigned started = 0;
    for (unsigned t = 0; t < cfg->threads; t++) {
        struct worker *w = &ws[t];
        w->idx = t;
        w->run = r;
        /* A distinct stream per benchmark and thread, as db_bench does, so
         * readrandom does not replay fillrandom's key sequence. */
        w->rng = cfg->seed + 0x632be59bd9b4e019ull * ((uint64_t)ordinal * cfg->threads + t + 1);
        w->key = malloc(cfg->key_size);
        kvb_hist_init(&w->total);
        kvb_hist_init(&w->interval);
        if (w->key == NULL) {
            fprintf(stderr, PROG ": out of memory\n");
            status = -1;
            break;
        }
    }
    if (status == 0) {
        pthread_mutex_lock(&r->mu);
        r->running = cfg->threads;
        pthread_mutex_unlock(&r->mu);
        for (; started < cfg->threads; started++) {
            int rc = pthread_create(&ws[started].thread, NULL, worker_main, &ws[started]);
            if (rc != 0) {
                fprintf(stderr, PROG ": pthread_create: %s\n", strerror(rc));
                atomic_store(&g_stop, true);
                pthread_mutex_lock(&r->mu);
                r->running -= cfg->threads - started;
                pthread_mutex_unlock(&r->mu);
                status = -1;
                break;
            }
        }
        report_progress(r, cfg->num * cfg->threads);
        for (unsigned t = 0; t < started; t++)
            pthread_join(ws[t].thread, NULL);
    }

    memset(res, 0, sizeof *res);
    res->kind = r->kind;
    kvb_hist_init(&res->hist);
    uint64_t first = UINT64_MAX, last = 0;
    for (unsigned t = 0; t < started; t++) {
        struct worker *w = &ws[t];
        kvb_hist_merge(&res->hist, &w->total);
        res->ops += w->done;
        res->found += w->found;
        res->not_found += w->not_found;
        res->thread_seconds += (double)(w->t_end - w->t_start) / 1e9;
        if (w->t_start < first)
            first = w->t_start;
        if (w->t_end > last)
            last = w->t_end;
        if (w->err_call != NULL && status == 0) {
            fprintf(stderr, PROG ": %s failed: %s (%d): %s\n", w->err_call,
                    kv_strerror(w->err_code), w->err_code, w->err_detail);
            status = 1;
        }
    }
    res->seconds = last > first ? (double)(last - first) / 1e9 : 0.0;

    for (unsigned t = 0; t < cfg->threads; t++)
        free(ws[t].key);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(ws);
    free(r);
    return status;
}

static void print_result(const struct config *cfg, const struct result *res)
{
    const kvb_hist *h = &res->hist;
    double ops_s = res->seconds > 0 ? (double)res->ops / res->seconds : 0.0;
    double us_op = res->ops > 0 ? res->thread_seconds * 1e6 / (double)res->ops : 0.0;
    const char *name = bench_names[res->kind];

    if (cfg->json) {
        printf("{\"tool\":\"kvbench\",\"mode\":\"embedded\",\"benchmark\":\"%s\","
               "\"libkv_version\":\"%s\",\"num\":%" PRIu64 ",\"threads\":%u,"
               "\"key_size\":%" PRIu32 ",\"value_size\":%" PRIu32 ",\"key_format\":\"%s\","
               "\"sync\":\"%s\",\"cache_mb\":%" PRIu64 ",\"db\":",
               name, kv_version(NULL, NULL, NULL), cfg->num, cfg->threads, cfg->key_size,
               cfg->value_size, cfg->key_format == KEYFMT_DB_BENCH ? "db_bench" : "decimal",
               sync_name(cfg->sync), cfg->cache_mb);
        if (cfg->db_dir != NULL)
            json_string(stdout, cfg->db_dir);
        else
            fputs("null", stdout);
        printf(",\"ops\":%" PRIu64 ",\"seconds\":%.6f,\"ops_per_sec\":%.1f,"
               "\"micros_per_op\":%.3f,\"mean_us\":%.3f,\"min_us\":%.3f,\"p50_us\":%.3f,"
               "\"p90_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f,\"max_us\":%.3f",
               res->ops, res->seconds, ops_s, us_op, kvb_hist_mean(h) / 1000.0,
               us(kvb_hist_min(h)), us(kvb_hist_percentile(h, 50.0)),
               us(kvb_hist_percentile(h, 90.0)), us(kvb_hist_percentile(h, 99.0)),
               us(kvb_hist_percentile(h, 99.9)), us(kvb_hist_max(h)));
        if (res->kind == BENCH_READRANDOM)
            printf(",\"found\":%" PRIu64 ",\"not_found\":%" PRIu64, res->found, res->not_found);
        printf("}\n");
    } else {
        printf("%-12s : %10.3f micros/op %9.0f ops/sec %9.3f seconds %10" PRIu64 " operations",
               name, us_op, ops_s, res->seconds, res->ops);
        if (res->kind == BENCH_READRANDOM)
            printf("; (%" PRIu64 " of %" PRIu64 " found)", res->found, res->ops);
        printf("\n%-12s   latency us: mean %.2f p50 %.2f p90 %.2f p99 %.2f p99.9 %.2f max %.2f\n",
               "", kvb_hist_mean(h) / 1000.0, us(kvb_hist_percentile(h, 50.0)),
               us(kvb_hist_percentile(h, 90.0)), us(kvb_hist_percentile(h, 99.0)),
               us(kvb_hist_percentile(h, 99.9)), us(kvb_hist_max(h)));
    }
    fflush(stdout);
}

/* ------------------------------------------------------------ arguments */

void kvb_embedded_usage(FILE *f)
{
    fprintf(f,
        "usage: " PROG " embedded [flags]\n"
        "\n"
        "Benchmarks an embedded libkv store (kv_open) with db_bench-like workloads.\n"
        "\n"
        "  --db DIR              store directory (default: a temporary directory,\n"
        "                        removed at the end)\n"
        "  --benchmarks LIST     comma-separated, run in order: fillrandom, readrandom\n"
        "                        (default fillrandom,readrandom)\n"
        "  --num N               operations per thread and size of the key space\n"
        "                        (default 1000000)\n"
        "  --key-size B          key length in bytes (default 20)\n"
        "  --value-size B        value length in bytes (default 200)\n"
        "  --threads T           concurrent threads (default 1)\n"
        "  --sync MODE           none, periodic or always (default none, like db_bench)\n"
        "  --cache-mb M          block cache in MiB (default 64)\n"
        "  --key-format F        db_bench (8 big-endian bytes + '0' padding, as\n"
        "                        RocksDB's db_bench) or decimal (default db_bench)\n"
        "  --seed S              base seed of the key streams (default 1)\n"
        "  --json                one JSON object per benchmark on stdout\n"
        "  -h, --help            this help\n"
        "\n"
        "fillrandom: N puts per thread of uniformly random keys in [0, N).\n"
        "readrandom: N gets per thread of uniformly random keys in [0, N).\n"
        "Progress goes to stderr once a second. Exit status: 0 ok, 1 a libkv call\n"
        "failed, 2 bad usage.\n");
}

static void parse_benchmarks(struct config *cfg, const char *list)
{
    cfg->nbench = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len > 0) {
            size_t k;
            for (k = 0; k < sizeof bench_names / sizeof bench_names[0]; k++)
                if (strlen(bench_names[k]) == len && memcmp(bench_names[k], p, len) == 0)
                    break;
            if (k == sizeof bench_names / sizeof bench_names[0]) {
                char name[64];
                snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), p);
                bad_usage("unknown benchmark '%s' (known: fillrandom, readrandom)", name);
            }
            if (cfg->nbench == MAX_BENCHMARKS)
                bad_usage("too many benchmarks in '%s'", list);
            cfg->benches[cfg->nbench++] = (enum bench_kind)k;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    if (cfg->nbench == 0)
        bad_usage("--benchmarks needs at least one benchmark, got '%s'", list);
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->benches[0] = BENCH_FILLRANDOM;
    cfg->benches[1] = BENCH_READRANDOM;
    cfg->nbench = 2;
    cfg->num = 1000000;
    cfg->key_size = 20;
    cfg->value_size = 200;
    cfg->threads = 1;
    cfg->sync = KV_SYNC_NONE;
    cfg->cache_mb = 64;
    cfg->key_format = KEYFMT_DB_BENCH;
    cfg->seed = 1;

    static const char *const bools[] = {"--json", NULL};
    static const char *const valued[] = {
        "--db", "--benchmarks", "--num", "--key-size", "--value-size", "--threads",
        "--sync", "--cache-mb", "--key-format", "--seed", NULL};
    for (int i = 2; i < argc; i++) {
        char name[64];
        const char *val;
        kvb_next_flag(argc, argv, &i, bools, valued, kvb_embedded_usage, name, &val);
        if (val == NULL) { /* --json */
            cfg->json = true;
            continue;
        }
        if (strcmp(name, "--db") == 0) {
            if (*val == '\0')
                bad_usage("--db needs a directory%s", "");
            cfg->db_dir = val;
        } else if (strcmp(name, "--benchmarks") == 0) {
            parse_benchmarks(cfg, val);
        } else if (strcmp(name, "--num") == 0) {
            cfg->num = parse_u64(name, val, 1, UINT64_C(1) << 40);
        } else if (strcmp(name, "--key-size") == 0) {
            cfg->key_size = (uint32_t)parse_u64(name, val, 1, KV_MAX_KEY_SIZE_LIMIT);
        } else if (strcmp(name, "--value-size") == 0) {
            cfg->value_size = (uint32_t)parse_u64(name, val, 0, KV_MAX_VALUE_SIZE_LIMIT);
        } else if (strcmp(name, "--threads") == 0) {
            cfg->threads = (unsigned)parse_u64(name, val, 1, 1024);
        } else if (strcmp(name, "--sync") == 0) {
            if (strcmp(val, "none") == 0)
                cfg->sync = KV_SYNC_NONE;
            else if (strcmp(val, "periodic") == 0)
                cfg->sync = KV_SYNC_PERIODIC;
            else if (strcmp(val, "always") == 0)
                cfg->sync = KV_SYNC_ALWAYS;
            else
                bad_usage("--sync must be none, periodic or always, got '%s'", val);
        } else if (strcmp(name, "--cache-mb") == 0) {
            cfg->cache_mb = parse_u64(name, val, 1, UINT64_C(1) << 30);
        } else if (strcmp(name, "--key-format") == 0) {
            if (strcmp(val, "db_bench") == 0)
                cfg->key_format = KEYFMT_DB_BENCH;
            else if (strcmp(val, "decimal") == 0)
                cfg->key_format = KEYFMT_DECIMAL;
            else
                bad_usage("--key-format must be db_bench or decimal, got '%s'", val);
        } else if (strcmp(name, "--seed") == 0) {
            cfg->seed = parse_u64(name, val, 0, UINT64_MAX);
        }
    }
}

/* ------------------------------------------------------------------ mode */

int kvb_embedded_main(int argc, char **argv)
{
    struct config cfg;
    parse_args(argc, argv, &cfg);
    kvb_install_signals();

    char tmpdir[4096];
    const char *dir = cfg.db_dir;
    if (dir == NULL) {
        const char *base = getenv("TMPDIR");
        if (base == NULL || *base == '\0')
            base = "/tmp";
        int n = snprintf(tmpdir, sizeof tmpdir, "%s/kvbench.XXXXXX", base);
        if (n < 0 || (size_t)n >= sizeof tmpdir) {
            fprintf(stderr, PROG ": TMPDIR is too long\n");
            return 1;
        }
        if (mkdtemp(tmpdir) == NULL) {
            fprintf(stderr, PROG ": mkdtemp %s: %s\n", tmpdir, strerror(errno));
            return 1;
        }
        dir = tmpdir;
    }

    size_t vallen = 0;
    char *valbuf = make_value_buffer(cfg.value_size, cfg.seed, &vallen);
    if (valbuf == NULL) {
        fprintf(stderr, PROG ": out of memory\n");
        if (cfg.db_dir == NULL)
            remove_tree(tmpdir);
        return 1;
    }

    kv_open_options oo = KV_OPEN_OPTIONS_INIT;
    oo.sync = cfg.sync;
    oo.block_cache_bytes = cfg.cache_mb << 20;
    if (cfg.key_size > KV_DEFAULT_MAX_KEY_SIZE)
        oo.max_key_size = cfg.key_size;
    if (cfg.value_size > KV_DEFAULT_MAX_VALUE_SIZE)
        oo.max_value_size = cfg.value_size;

    fprintf(stderr,
            PROG ": embedded, libkv %s; keys %" PRIu32 " bytes (%s), values %" PRIu32
            " bytes (~%" PRIu32 " compressed), num %" PRIu64 ", threads %u, sync %s, "
            "cache %" PRIu64 " MiB, db %s%s\n",
            kv_version(NULL, NULL, NULL), cfg.key_size,
            cfg.key_format == KEYFMT_DB_BENCH ? "db_bench format" : "decimal", cfg.value_size,
            cfg.value_size / 2, cfg.num, cfg.threads, sync_name(cfg.sync), cfg.cache_mb, dir,
            cfg.db_dir == NULL ? " (temporary)" : "");

    int status = 0;
    kv *db = NULL;
    int rc = kv_open(&db, dir, &oo);
    if (rc != KV_OK) {
        fprintf(stderr, PROG ": kv_open %s failed: %s (%d): %s\n", dir, kv_strerror(rc), rc,
                kv_error_last());
        status = 1;
    }
    for (size_t b = 0; status == 0 && b < cfg.nbench; b++) {
        struct result *res = malloc(sizeof *res);
        if (res == NULL) {
            fprintf(stderr, PROG ": out of memory\n");
            status = 1;
            break;
        }
        int brc = run_benchmark(db, &cfg, b, valbuf, vallen, res);
        if (brc == 0 && !atomic_load(&g_stop))
            print_result(&cfg, res);
        free(res);
        if (brc != 0)
            status = 1;
        else if (atomic_load(&g_stop))
            break;
    }
    kv_close(db);
    free(valbuf);
    if (cfg.db_dir == NULL)
        remove_tree(tmpdir);
    if (g_signal != 0) {
        fprintf(stderr, PROG ": interrupted\n");
        return 128 + g_signal;
    }
    return status;
}
