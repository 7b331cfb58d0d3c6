/* The etcd client (net/etcd.h) against a real etcd this test starts on
 * loopback ports in a temporary directory (and kills, pauses and restarts
 * on the same data and ports): URLs refused with clear messages; get,
 * compare-and-put (also raced from two threads), binary values and
 * listings; a session's key held while it runs, gone after close and after
 * its process dies, put back when its lease is lost, with one warning per
 * outage; a watch that gives every change in order and what changed while
 * etcd was away; calls while etcd is down, paused or behind a dead first
 * endpoint; and the pure parsers of net/etcd_json.h on garbage.
 *
 * etcd is /usr/bin/etcd (or $ETCD); without it the test fails: CI installs
 * it (scripts/install-deps.sh). */
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <kv/kv.h>
#include "net/etcd.h"
#include "net/etcd_json.h"
#include "net/http_json.h"
#include "util/error.h"
#include "helpers.h"
#include "integration/kvd_process.h"
#include "integration/loopback.h"

/* ------------------------------------------------------------ the etcd */

typedef struct etcd_proc {
    pid_t pid;
    char *dir;
    int client_port, peer_port;
    char client[64]; /* 127.0.0.1:PORT */
    char log[600];
} etcd_proc;

static etcd_proc g_etcd = {.pid = -1};

static const char *etcd_path(void)
{
    const char *p = getenv("ETCD");
    return p && *p ? p : "/usr/bin/etcd";
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t collect(char *data, size_t size, size_t n, void *ctx)
{
    kvi_buf *b = ctx;
    kvi_buf_raw(b, data, size * n);
    return size * n;
}

/* A POST straight to the etcd's gateway (around the module under test):
 * the HTTP status (0: no answer), the body into out (may be NULL). */
static long raw_post(const char *path, const char *body, kvi_buf *out)
{
    char url[256];
    snprintf(url, sizeof url, "http://%s%s", g_etcd.client, path);
    kvi_buf sink = {0};
    CURL *h = curl_easy_init();
    if (!h)
        return 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out ? out : &sink);
    long http = 0;
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_cleanup(h);
    kvi_buf_free(&sink);
    return http;
}

/* base64 of a NUL-terminated string, NUL-terminated (static room). */
static const char *b64(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s);
    assert_true(kvi_http_base64_len(n) < cap);
    kvi_http_base64_encode(out, (const unsigned char *)s, n);
    out[kvi_http_base64_len(n)] = '\0';
    return out;
}

static int etcd_ready(void)
{
    return raw_post("/v3/kv/range", "{\"key\":\"AA==\"}", NULL) == 200;
}

static void print_log_tail(void)
{
    FILE *f = fopen(g_etcd.log, "r");
    if (!f)
        return;
    char line[1024];
    long size = 0;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 4000)
        fseek(f, size - 4000, SEEK_SET);
    else
        fseek(f, 0, SEEK_SET);
    fprintf(stderr, "--- end of %s\n", g_etcd.log);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

/* Starts etcd on g_etcd's data directory and ports and waits (bounded:
 * 60 s) until it answers. 0, or -1 (with its log shown). */
static int etcd_start(void)
{
    char data[600], client_url[96], peer_url[96], cluster[128];
    snprintf(data, sizeof data, "%s/data", g_etcd.dir);
    snprintf(client_url, sizeof client_url, "http://127.0.0.1:%d", g_etcd.client_port);
    snprintf(peer_url, sizeof peer_url, "http://127.0.0.1:%d", g_etcd.peer_port);
    snprintf(cluster, sizeof cluster, "default=%s", peer_url);
    const char *argv[] = {etcd_path(),
                          "--name", "default",
                          "--data-dir", data,
                          "--listen-client-urls", client_url,
                          "--advertise-client-urls", client_url,
                          "--listen-peer-urls", peer_url,
                          "--initial-advertise-peer-urls", peer_url,
                          "--initial-cluster", cluster,
                          NULL};
    g_etcd.pid = kvd_spawn(argv, g_etcd.log);
    if (g_etcd.pid < 0)
        return -1;
    for (int t = 0; t < 1200; t++) {
        if (etcd_ready())
            return 0;
        if (waitpid(g_etcd.pid, NULL, WNOHANG) == g_etcd.pid) {
            fprintf(stderr, "etcd exited at start\n");
            g_etcd.pid = -1;
            print_log_tail();
            return -1;
        }
        sleep_ms(50);
    }
    fprintf(stderr, "etcd did not answer within 60 s\n");
    print_log_tail();
    return -1;
}

static void etcd_kill(void)
{
    if (g_etcd.pid > 0) {
        kill(g_etcd.pid, SIGCONT); /* in case it was paused */
        kvd_stop(g_etcd.pid, SIGKILL);
    }
    g_etcd.pid = -1;
}

static int group_setup(void **state)
{
    (void)state;
    g_etcd.dir = test_tempdir();
    if (!g_etcd.dir)
        return -1;
    snprintf(g_etcd.log, sizeof g_etcd.log, "%s/etcd.log", g_etcd.dir);
    g_etcd.client_port = free_port();
    g_etcd.peer_port = free_port();
    snprintf(g_etcd.client, sizeof g_etcd.client, "127.0.0.1:%d", g_etcd.client_port);
    return etcd_start();
}

static int group_teardown(void **state)
{
    (void)state;
    etcd_kill();
    test_rmtree(g_etcd.dir);
    g_etcd.dir = NULL;
    return 0;
}

/* Each test fails if it leaves etcd down: the next ones need it. */
static int teardown_etcd_up(void **state)
{
    (void)state;
    if (g_etcd.pid > 0 && etcd_ready())
        return 0;
    etcd_kill();
    return etcd_start();
}

/* --------------------------------------------------------------- helpers */

typedef struct log_count {
    pthread_mutex_t lock;
    int warn, info_again, lost;
    char last_warn[1024];
} log_count;

static void count_log(kv_log_level level, const char *message, void *ctx)
{
    log_count *c = ctx;
    pthread_mutex_lock(&c->lock);
    if (level == KV_LOG_WARN) {
        c->warn++;
        snprintf(c->last_warn, sizeof c->last_warn, "%s", message);
    }
    if (level == KV_LOG_INFO && strstr(message, "answers again"))
        c->info_again++;
    if (level == KV_LOG_INFO && strstr(message, "is gone"))
        c->lost++;
    pthread_mutex_unlock(&c->lock);
}

/* A handle on the test's etcd with its own prefix. */
static kvi_etcd *open_at(const char *prefix, uint32_t timeout_ms, const kvi_logger *log)
{
    char url[256];
    snprintf(url, sizeof url, "etcd://%s%s", g_etcd.client, prefix);
    kvi_etcd_config cfg = {.url = url, .timeout_ms = timeout_ms, .log = log};
    kvi_etcd *e = NULL;
    int rc = kvi_etcd_open(&e, &cfg);
    if (rc != KV_OK)
        fail_msg("kvi_etcd_open(%s): %d %s", url, rc, kvi_error_last());
    return e;
}

/* Puts value (a string) at key, creating or replacing it; its revision. */
static int64_t put_str(kvi_etcd *e, const char *key, const char *value)
{
    int64_t rev = 0, cur = 0;
    int rc = kvi_etcd_get(e, key, NULL, &cur);
    assert_true(rc == KV_OK || rc == KV_ENOTFOUND);
    rc = kvi_etcd_put_if(e, key, value, strlen(value), cur, &rev);
    if (rc != KV_OK)
        fail_msg("put_if(%s): %d %s", key, rc, kvi_error_last());
    assert_true(rev > 0);
    return rev;
}

/* Waits (bounded) until get of key gives want (1: exists, 0: not). */
static int wait_exists(kvi_etcd *e, const char *key, int want, int timeout_ms)
{
    long until = now_ms() + timeout_ms;
    do {
        int rc = kvi_etcd_get(e, key, NULL, NULL);
        if ((rc == KV_OK) == want && (rc == KV_OK || rc == KV_ENOTFOUND))
            return 1;
        sleep_ms(50);
    } while (now_ms() < until);
    return 0;
}

/* ------------------------------------------------------------------ URLs */

static void expect_refused(const char *url, const char *fragment)
{
    kvi_etcd_config cfg = {.url = url};
    kvi_etcd *e = (kvi_etcd *)&cfg;
    int rc = kvi_etcd_open(&e, &cfg);
    if (rc != KV_EINVAL || e != NULL || !strstr(kvi_error_last(), fragment))
        fail_msg("url %s: rc %d, message \"%s\" (expected KV_EINVAL and \"%s\")",
                 url ? url : "(null)", rc, kvi_error_last(), fragment);
    if (url && !strstr(kvi_error_last(), "etcd URL"))
        fail_msg("url %s: the message \"%s\" does not say it is the etcd URL", url,
                 kvi_error_last());
}

static void expect_described(const char *url, const char *describe)
{
    kvi_etcd_config cfg = {.url = url};
    kvi_etcd *e = NULL;
    int rc = kvi_etcd_open(&e, &cfg);
    if (rc != KV_OK)
        fail_msg("url %s: %d %s", url, rc, kvi_error_last());
    assert_string_equal(kvi_etcd_describe(e), describe);
    kvi_etcd_close(e);
}

static void open_rejects_bad_urls(void **state)
{
    (void)state;
    expect_refused(NULL, "missing");
    expect_refused("", "missing");
    expect_refused("http://127.0.0.1:2379/x", "does not start with etcd://");
    expect_refused("etcd:///x", "names no host");
    expect_refused("etcd://", "names no host");
    expect_refused("etcd://:2379/x", "endpoint 1 (\":2379\") has no host");
    expect_refused("etcd://127.0.0.1:0/x", "bad port \"0\"");
    expect_refused("etcd://127.0.0.1:65536/x", "bad port \"65536\"");
    expect_refused("etcd://127.0.0.1:12ab/x", "bad port \"12ab\"");
    expect_refused("etcd://127.0.0.1:/x", "bad port \"\"");
    expect_refused("etcd://127.0.0.1:2379,,127.0.0.1:2380/x", "endpoint 2 is empty");
    expect_refused("etcd://127.0.0.1:2379,/x", "endpoint 2 is empty");
    expect_refused("etcd://a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9/x",
                   "names 9 endpoints, more than 8");
    expect_refused("etcd://::1:2379/x", "an IPv6 address goes in brackets");
    expect_refused("etcd://[::1:2379/x", "'[' without ']'");
    expect_refused("etcd://[::1]2379/x", "not \":PORT\"");
    expect_refused("etcd://ho st:2379/x", "bad character 0x20");
    expect_refused("etcd://h:1/a//b", "empty, \".\" or \"..\" segment");
    expect_refused("etcd://h:1/a/../b", "empty, \".\" or \"..\" segment");
    expect_refused("etcd://h:1/a b", "bad character 0x20");
    expect_refused("etcd://h:1/a?b", "bad character 0x3f");

    expect_described("etcd://127.0.0.1:2379", "etcd at 127.0.0.1:2379 prefix /libkv");
    expect_described("etcd://127.0.0.1:2379/", "etcd at 127.0.0.1:2379 prefix /libkv");
    expect_described("etcd://h1:1,[::1]:2,h3/a/b/",
                     "etcd at h1:1,[::1]:2,h3:2379 prefix /a/b");
    expect_described("etcd://127.0.0.1:2379,127.0.0.1:2380/x",
                     "etcd at 127.0.0.1:2379,127.0.0.1:2380 prefix /x");

    /* Bad arguments, before anything is sent. */
    kvi_etcd *e = open_at("/t/args", 0, NULL);
    assert_int_equal(kvi_etcd_get(e, "", NULL, NULL), KV_EINVAL);
    assert_int_equal(kvi_etcd_put_if(e, "k", "v", 1, -1, NULL), KV_EINVAL);
    assert_int_equal(kvi_etcd_put_if(e, "", "v", 1, 0, NULL), KV_EINVAL);
    assert_int_equal(kvi_etcd_session_start(e, "s", "v", 1, 1), KV_EINVAL);
    assert_int_equal(kvi_etcd_watch_start(e, "w", NULL, NULL), KV_EINVAL);
    assert_int_equal(kvi_etcd_session_alive(e), 0);
    kvi_etcd_close(e);
    kvi_etcd_close(NULL);
}

/* ------------------------------------------------------- get and put_if */

static void get_missing_key(void **state)
{
    (void)state;
    kvi_etcd *e = open_at("/t/missing", 0, NULL);
    kvi_buf v = {0};
    int64_t rev = 77;
    assert_int_equal(kvi_etcd_get(e, "nothing-here", &v, &rev), KV_ENOTFOUND);
    assert_int_equal(rev, 0);
    assert_int_equal(v.len, 0);
    assert_non_null(strstr(kvi_error_last(), "nothing-here"));
    kvi_buf_free(&v);
    kvi_etcd_close(e);
}

static void put_if_create_and_conflict(void **state)
{
    (void)state;
    kvi_etcd *e = open_at("/t/create", 0, NULL);
    int64_t r1 = 0, r2 = 5, got = 0;
    assert_int_equal(kvi_etcd_put_if(e, "k", "one", 3, 0, &r1), KV_OK);
    assert_true(r1 > 0);
    kvi_buf v = {0};
    assert_int_equal(kvi_etcd_get(e, "k", &v, &got), KV_OK);
    assert_int_equal(got, r1);
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.data, "one", 3);

    /* Creating again: the key exists. */
    assert_int_equal(kvi_etcd_put_if(e, "k", "two", 3, 0, &r2), KV_ECONFLICT);
    assert_int_equal(r2, 0);
    char want[64];
    snprintf(want, sizeof want, "already exists (mod_revision %lld)", (long long)r1);
    if (!strstr(kvi_error_last(), want))
        fail_msg("message \"%s\" lacks \"%s\"", kvi_error_last(), want);
    kvi_buf_reset(&v);
    assert_int_equal(kvi_etcd_get(e, "k", &v, &got), KV_OK);
    assert_int_equal(got, r1);
    assert_memory_equal(v.data, "one", 3);

    /* The key sits under the prefix in etcd itself. */
    char b[64], body[128];
    snprintf(body, sizeof body, "{\"key\":\"%s\"}", b64("/t/create/k", b, sizeof b));
    kvi_buf raw = {0};
    assert_int_equal(raw_post("/v3/kv/range", body, &raw), 200);
    kvi_etcd_range r;
    assert_int_equal(kvi_etcd_parse_range(&r, (const char *)raw.data, raw.len), KV_OK);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.kvs[0].mod_revision, r1);
    kvi_etcd_range_free(&r);
    kvi_buf_free(&raw);
    kvi_buf_free(&v);
    kvi_etcd_close(e);
}

static void put_if_revisions(void **state)
{
    (void)state;
    kvi_etcd *e = open_at("/t/revs", 0, NULL);
    int64_t r1, r2, r3 = 9, got;
    assert_int_equal(kvi_etcd_put_if(e, "k", "v1", 2, 0, &r1), KV_OK);
    assert_int_equal(kvi_etcd_put_if(e, "k", "v2", 2, r1, &r2), KV_OK);
    assert_true(r2 > r1);

    /* Stale: refused, nothing changes, the message tells the revision. */
    assert_int_equal(kvi_etcd_put_if(e, "k", "v3", 2, r1, &r3), KV_ECONFLICT);
    assert_int_equal(r3, 0);
    char want[96];
    snprintf(want, sizeof want, "has mod_revision %lld, not %lld", (long long)r2,
             (long long)r1);
    if (!strstr(kvi_error_last(), want))
        fail_msg("message \"%s\" lacks \"%s\"", kvi_error_last(), want);
    kvi_buf v = {0};
    assert_int_equal(kvi_etcd_get(e, "k", &v, &got), KV_OK);
    assert_int_equal(got, r2);
    assert_int_equal(v.len, 2);
    assert_memory_equal(v.data, "v2", 2);

    /* A revision expected of a key that does not exist. */
    assert_int_equal(kvi_etcd_put_if(e, "absent", "x", 1, r2, NULL), KV_ECONFLICT);
    assert_non_null(strstr(kvi_error_last(), "does not exist"));
    assert_int_equal(kvi_etcd_get(e, "absent", NULL, NULL), KV_ENOTFOUND);

    /* An empty value is a value. */
    int64_t r4;
    assert_int_equal(kvi_etcd_put_if(e, "k", NULL, 0, r2, &r4), KV_OK);
    kvi_buf_reset(&v);
    assert_int_equal(kvi_etcd_get(e, "k", &v, &got), KV_OK);
    assert_int_equal(got, r4);
    assert_int_equal(v.len, 0);
    kvi_buf_free(&v);
    kvi_etcd_close(e);
}

typedef struct racer {
    kvi_etcd *e;
    pthread_barrier_t *go;
    int64_t expect;
    char value[8];
    int rc;
    int64_t rev;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    pthread_barrier_wait(r->go);
    r->rc = kvi_etcd_put_if(r->e, "race", r->value, strlen(r->value), r->expect, &r->rev);
    return NULL;
}

static void put_if_race_has_one_winner(void **state)
{
    (void)state;
    kvi_etcd *e = open_at("/t/race", 0, NULL);
    int64_t rev;
    assert_int_equal(kvi_etcd_put_if(e, "race", "start", 5, 0, &rev), KV_OK);
    int wins[2] = {0, 0};
    for (int round = 0; round < 20; round++) {
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, 2);
        racer r[2];
        pthread_t t[2];
        for (int i = 0; i < 2; i++) {
            r[i] = (racer){.e = e, .go = &go, .expect = rev};
            snprintf(r[i].value, sizeof r[i].value, "%c%d", 'A' + i, round);
            assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        int winner = r[0].rc == KV_OK ? 0 : 1;
        if (r[winner].rc != KV_OK || r[1 - winner].rc != KV_ECONFLICT)
            fail_msg("round %d: put_if gave %d and %d (want one KV_OK, one KV_ECONFLICT)",
                     round, r[0].rc, r[1].rc);
        wins[winner]++;
        kvi_buf v = {0};
        int64_t got;
        assert_int_equal(kvi_etcd_get(e, "race", &v, &got), KV_OK);
        assert_int_equal(got, r[winner].rev);
        assert_int_equal(v.len, strlen(r[winner].value));
        assert_memory_equal(v.data, r[winner].value, v.len);
        kvi_buf_free(&v);
        rev = got;
    }
    print_message("race: A won %d rounds, B %d\n", wins[0], wins[1]);
    kvi_etcd_close(e);
}

static void binary_values_round_trip(void **state)
{
    (void)state;
    kvi_etcd *e = open_at("/t/binary", 0, NULL);
    unsigned char value[1000];
    for (size_t i = 0; i < sizeof value; i++)
        value[i] = (unsigned char)(i * 7);
    value[0] = 0;
    value[1] = 0;
    value[sizeof value - 1] = 0;
    int64_t rev, got;
    assert_int_equal(kvi_etcd_put_if(e, "bin", value, sizeof value, 0, &rev), KV_OK);
    kvi_buf v = {0};
    kvi_buf_raw(&v, "pre", 3); /* get appends */
    assert_int_equal(kvi_etcd_get(e, "bin", &v, &got), KV_OK);
    assert_int_equal(got, rev);
    assert_int_equal(v.len, 3 + sizeof value);
    assert_memory_equal(v.data, "pre", 3);
    assert_memory_equal(v.data + 3, value, sizeof value);

    /* A value of 200 KiB, every byte value. */
    size_t big = 200 * 1024;
    unsigned char *b = malloc(big);
    assert_non_null(b);
    for (size_t i = 0; i < big; i++)
        b[i] = (unsigned char)(i ^ (i >> 8));
    assert_int_equal(kvi_etcd_put_if(e, "bin", b, big, rev, &rev), KV_OK);
    kvi_buf_reset(&v);
    assert_int_equal(kvi_etcd_get(e, "bin", &v, &got), KV_OK);
    assert_int_equal(v.len, big);
    assert_memory_equal(v.data, b, big);
    free(b);

    /* Over etcd's request limit (1.5 MiB by default). */
    size_t huge = 2u << 20;
    b = calloc(1, huge);
    assert_non_null(b);
    int rc = kvi_etcd_put_if(e, "bin", b, huge, rev, NULL);
    if (rc != KV_ETOOBIG)
        fail_msg("a 2 MiB value: %d %s (want KV_ETOOBIG)", rc, kvi_error_last());
    free(b);
    kvi_buf_free(&v);
    kvi_etcd_close(e);
}

/* ----------------------------------------------------------------- list */

typedef struct listing {
    char keys[2048][32];
    char values[2048][32];
    size_t n;
    size_t stop_after; /* 0: never */
} listing;

static int on_key(void *ctx, const char *key, const void *value, size_t len)
{
    listing *l = ctx;
    if (l->n >= 2048)
        return -1000;
    snprintf(l->keys[l->n], sizeof l->keys[l->n], "%s", key);
    snprintf(l->values[l->n], sizeof l->values[l->n], "%.*s", (int)len, (const char *)value);
    l->n++;
    return l->stop_after && l->n == l->stop_after ? 42 : 0;
}

static void list_gives_the_prefix_only(void **state)
{
    (void)state;
    kvi_etcd *e = open_at("/t/list", 0, NULL);
    kvi_etcd *other = open_at("/t/list2", 0, NULL);
    const char *mine[] = {"l/a", "l/b", "l/c/d", "l0", "l2/x", "lx", "m"};
    for (size_t i = 0; i < sizeof mine / sizeof *mine; i++) {
        char v[32];
        snprintf(v, sizeof v, "v-%s", mine[i]);
        put_str(e, mine[i], v);
    }
    put_str(other, "l/zz", "not mine");

    listing *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(kvi_etcd_list(e, "l/", on_key, l), KV_OK);
    assert_int_equal(l->n, 3);
    assert_string_equal(l->keys[0], "l/a");
    assert_string_equal(l->values[0], "v-l/a");
    assert_string_equal(l->keys[1], "l/b");
    assert_string_equal(l->keys[2], "l/c/d");
    assert_string_equal(l->values[2], "v-l/c/d");

    memset(l, 0, sizeof *l);
    assert_int_equal(kvi_etcd_list(e, "", on_key, l), KV_OK);
    assert_int_equal(l->n, sizeof mine / sizeof *mine);
    for (size_t i = 0; i < l->n; i++)
        assert_string_equal(l->keys[i], mine[i]);

    memset(l, 0, sizeof *l);
    assert_int_equal(kvi_etcd_list(e, "nothing/", on_key, l), KV_OK);
    assert_int_equal(l->n, 0);

    /* The callback ends the listing. */
    memset(l, 0, sizeof *l);
    l->stop_after = 2;
    assert_int_equal(kvi_etcd_list(e, "", on_key, l), 42);
    assert_int_equal(l->n, 2);
    free(l);
    kvi_etcd_close(other);
    kvi_etcd_close(e);
}

/* More keys than one page (512), put 100 to a txn straight to etcd. */
static void list_pages_through_many_keys(void **state)
{
    (void)state;
    enum { KEYS = 1100 };
    for (int first = 0; first < KEYS; first += 100) {
        kvi_buf body = {0};
        kvi_http_json_raw(&body, "{\"success\":[");
        for (int i = first; i < first + 100 && i < KEYS; i++) {
            char key[64], val[16];
            int kl = snprintf(key, sizeof key, "/t/pages/p/%05d", i);
            int vl = snprintf(val, sizeof val, "%d", i);
            kvi_http_json_raw(&body, i > first ? ",{\"request_put\":{\"key\":"
                                               : "{\"request_put\":{\"key\":");
            kvi_http_json_base64(&body, key, (size_t)kl);
            kvi_http_json_raw(&body, ",\"value\":");
            kvi_http_json_base64(&body, val, (size_t)vl);
            kvi_http_json_raw(&body, "}}");
        }
        kvi_http_json_raw(&body, "]}");
        kvi_buf_u8(&body, 0);
        assert_int_equal(raw_post("/v3/kv/txn", (const char *)body.data, NULL), 200);
        kvi_buf_free(&body);
    }
    kvi_etcd *e = open_at("/t/pages", 0, NULL);
    listing *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(kvi_etcd_list(e, "p/", on_key, l), KV_OK);
    assert_int_equal(l->n, KEYS);
    for (int i = 0; i < KEYS; i++) {
        char key[32], val[16];
        snprintf(key, sizeof key, "p/%05d", i);
        snprintf(val, sizeof val, "%d", i);
        assert_string_equal(l->keys[i], key);
        assert_string_equal(l->values[i], val);
    }
    free(l);
    kvi_etcd_close(e);
}

/* -------------------------------------------------------------- session */

static void session_holds_its_key(void **state)
{
    (void)state;
    log_count logs = {.lock = PTHREAD_MUTEX_INITIALIZER};
    kvi_logger log = {.fn = count_log, .ctx = &logs, .level = KV_LOG_DEBUG};
    kvi_etcd *s = open_at("/t/session", 0, &log);
    kvi_etcd *reader = open_at("/t/session", 0, NULL);
    assert_int_equal(kvi_etcd_session_start(s, "nodes/n1", "addr-1", 6, 2), KV_OK);
    assert_int_equal(kvi_etcd_session_start(s, "nodes/n2", "x", 1, 2), KV_EINVAL);
    assert_non_null(strstr(kvi_error_last(), "already"));
    assert_true(wait_exists(reader, "nodes/n1", 1, 15000));
    kvi_buf v = {0};
    assert_int_equal(kvi_etcd_get(reader, "nodes/n1", &v, NULL), KV_OK);
    assert_int_equal(v.len, 6);
    assert_memory_equal(v.data, "addr-1", 6);
    kvi_buf_free(&v);
    long until = now_ms() + 15000;
    while (!kvi_etcd_session_alive(s) && now_ms() < until)
        sleep_ms(20);
    assert_int_equal(kvi_etcd_session_alive(s), 1);

    /* Kept alive well past its TTL of 2 s. */
    for (int i = 0; i < 10; i++) {
        sleep_ms(500);
        assert_int_equal(kvi_etcd_get(reader, "nodes/n1", NULL, NULL), KV_OK);
    }
    assert_int_equal(logs.warn, 0);

    kvi_etcd_close(s);
    assert_true(wait_exists(reader, "nodes/n1", 0, 15000));
    kvi_etcd_close(reader);
}

/* A session whose process dies: the key goes when its lease expires. */
static void session_key_expires_when_its_process_dies(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        close(fds[0]);
        kvi_etcd *s = open_at("/t/crash", 0, NULL);
        if (!s || kvi_etcd_session_start(s, "nodes/dead", "bye", 3, 2) != KV_OK)
            _exit(1);
        for (int t = 0; t < 1500 && !kvi_etcd_session_alive(s); t++)
            sleep_ms(10);
        if (kvi_etcd_session_alive(s) && write(fds[1], "!", 1) != 1)
            _exit(1);
        for (;;)
            pause();
    }
    close(fds[1]);
    struct pollfd p = {.fd = fds[0], .events = POLLIN};
    char c = 0;
    int ready = poll(&p, 1, 30000) == 1 && read(fds[0], &c, 1) == 1 && c == '!';
    close(fds[0]);
    kvi_etcd *reader = open_at("/t/crash", 0, NULL);
    int there = ready && kvi_etcd_get(reader, "nodes/dead", NULL, NULL) == KV_OK;
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    assert_true(ready);
    assert_true(there);
    assert_true(wait_exists(reader, "nodes/dead", 0, 15000));
    kvi_etcd_close(reader);
}

/* Revoked behind its back, the lease is granted again and the key put
 * back; an etcd outage is logged once, and its end once. */
static void session_recovers_lost_lease_and_outage(void **state)
{
    (void)state;
    log_count logs = {.lock = PTHREAD_MUTEX_INITIALIZER};
    kvi_logger log = {.fn = count_log, .ctx = &logs, .level = KV_LOG_DEBUG};
    kvi_etcd *s = open_at("/t/lost", 500, &log);
    kvi_etcd *reader = open_at("/t/lost", 0, NULL);
    assert_int_equal(kvi_etcd_session_start(s, "nodes/n1", "v", 1, 2), KV_OK);
    assert_true(wait_exists(reader, "nodes/n1", 1, 15000));

    /* Revoke its lease straight at etcd: the key goes, and comes back. */
    char b[64], body[160];
    snprintf(body, sizeof body, "{\"key\":\"%s\"}", b64("/t/lost/nodes/n1", b, sizeof b));
    kvi_buf raw = {0};
    assert_int_equal(raw_post("/v3/kv/range", body, &raw), 200);
    kvi_etcd_range r;
    assert_int_equal(kvi_etcd_parse_range(&r, (const char *)raw.data, raw.len), KV_OK);
    assert_int_equal(r.count, 1);
    int64_t lease = r.kvs[0].lease;
    assert_true(lease != 0);
    kvi_etcd_range_free(&r);
    kvi_buf_free(&raw);
    snprintf(body, sizeof body, "{\"ID\":\"%lld\"}", (long long)lease);
    assert_int_equal(raw_post("/v3/lease/revoke", body, NULL), 200);
    long until = now_ms() + 15000;
    int lost = 0;
    while (lost == 0 && now_ms() < until) {
        sleep_ms(20);
        pthread_mutex_lock(&logs.lock);
        lost = logs.lost;
        pthread_mutex_unlock(&logs.lock);
    }
    assert_int_equal(lost, 1);
    assert_true(wait_exists(reader, "nodes/n1", 1, 15000));

    /* etcd down for several keepalive periods: one warning. */
    etcd_kill();
    until = now_ms() + 15000;
    while (kvi_etcd_session_alive(s) && now_ms() < until)
        sleep_ms(20);
    assert_int_equal(kvi_etcd_session_alive(s), 0);
    sleep_ms(2500); /* more failed attempts, which must not log again */
    assert_int_equal(etcd_start(), 0);
    until = now_ms() + 15000;
    while (!kvi_etcd_session_alive(s) && now_ms() < until)
        sleep_ms(20);
    assert_int_equal(kvi_etcd_session_alive(s), 1);
    assert_true(wait_exists(reader, "nodes/n1", 1, 15000));
    pthread_mutex_lock(&logs.lock);
    if (logs.warn != 1 || logs.info_again != 1)
        fail_msg("an outage logged %d warnings and %d \"answers again\" (want 1 and 1); "
                 "last warning: %s",
                 logs.warn, logs.info_again, logs.last_warn);
    assert_non_null(strstr(logs.last_warn, g_etcd.client));
    pthread_mutex_unlock(&logs.lock);
    kvi_etcd_close(s);
    assert_true(wait_exists(reader, "nodes/n1", 0, 15000));
    kvi_etcd_close(reader);
}

/* ---------------------------------------------------------------- watch */

#define MAX_SEEN 256

typedef struct seen {
    pthread_mutex_t lock;
    size_t n;
    struct {
        int deleted;
        char value[64];
        int64_t rev;
    } ev[MAX_SEEN];
} seen;

static void on_change(void *ctx, const void *value, size_t len, int64_t rev)
{
    seen *s = ctx;
    pthread_mutex_lock(&s->lock);
    if (s->n < MAX_SEEN) {
        s->ev[s->n].deleted = value == NULL;
        snprintf(s->ev[s->n].value, sizeof s->ev[s->n].value, "%.*s", (int)len,
                 value ? (const char *)value : "");
        s->ev[s->n].rev = rev;
        s->n++;
    }
    pthread_mutex_unlock(&s->lock);
}

/* Waits (bounded) until the last change seen is value at rev (value NULL:
 * a delete). */
static int wait_last(seen *s, const char *value, int64_t rev, int timeout_ms)
{
    long until = now_ms() + timeout_ms;
    do {
        pthread_mutex_lock(&s->lock);
        int ok = s->n > 0 && s->ev[s->n - 1].rev >= rev;
        if (ok)
            ok = s->ev[s->n - 1].rev == rev &&
                 (value ? !s->ev[s->n - 1].deleted && strcmp(s->ev[s->n - 1].value, value) == 0
                        : s->ev[s->n - 1].deleted);
        pthread_mutex_unlock(&s->lock);
        if (ok)
            return 1;
        sleep_ms(20);
    } while (now_ms() < until);
    return 0;
}

static void assert_increasing(seen *s)
{
    pthread_mutex_lock(&s->lock);
    for (size_t i = 1; i < s->n; i++)
        if (s->ev[i].rev <= s->ev[i - 1].rev)
            fail_msg("change %zu has revision %lld after %lld", i, (long long)s->ev[i].rev,
                     (long long)s->ev[i - 1].rev);
    pthread_mutex_unlock(&s->lock);
}

/* Deletes a key (its full name) straight at etcd: the delete's revision. */
static int64_t delete_raw(const char *full_key)
{
    char b[128], body[192];
    snprintf(body, sizeof body, "{\"key\":\"%s\"}", b64(full_key, b, sizeof b));
    kvi_buf raw = {0};
    assert_int_equal(raw_post("/v3/kv/deleterange", body, &raw), 200);
    kvi_buf_u8(&raw, 0);
    assert_false(raw.failed);
    const char *rev = strstr((const char *)raw.data, "\"revision\":\"");
    assert_non_null(rev);
    int64_t r = strtoll(rev + 12, NULL, 10);
    assert_non_null(strstr((const char *)raw.data, "\"deleted\":\"1\""));
    kvi_buf_free(&raw);
    return r;
}

static void watch_gives_changes_in_order(void **state)
{
    (void)state;
    seen *s = calloc(1, sizeof *s);
    assert_non_null(s);
    pthread_mutex_init(&s->lock, NULL);
    log_count logs = {.lock = PTHREAD_MUTEX_INITIALIZER};
    kvi_logger log = {.fn = count_log, .ctx = &logs, .level = KV_LOG_DEBUG};
    kvi_etcd *w = open_at("/t/watch", 1000, &log);
    kvi_etcd *p = open_at("/t/watch", 1000, NULL);

    /* A value before the watch: given first, from the read. */
    int64_t r0 = put_str(p, "k", "v0");
    assert_int_equal(kvi_etcd_watch_start(w, "k", on_change, s), KV_OK);
    assert_int_equal(kvi_etcd_watch_start(w, "k", on_change, s), KV_EINVAL);
    assert_true(wait_last(s, "v0", r0, 15000));
    pthread_mutex_lock(&s->lock);
    size_t before = s->n;
    pthread_mutex_unlock(&s->lock);
    assert_int_equal(before, 1);

    /* Once given, every change, in order (another key's too are not). */
    int64_t revs[6];
    char values[6][8];
    for (int i = 0; i < 6; i++) {
        snprintf(values[i], sizeof values[i], "v%d", i + 1);
        revs[i] = put_str(p, "k", values[i]);
        put_str(p, "other", values[i]);
    }
    /* The read may have happened after some of these (then the watch
     * starts from there): wait for the last, check what came after v0. */
    assert_true(wait_last(s, "v6", revs[5], 15000));
    assert_increasing(s);
    pthread_mutex_lock(&s->lock);
    for (size_t i = before; i < s->n; i++) {
        int found = 0;
        for (int j = 0; j < 6; j++)
            found |= s->ev[i].rev == revs[j] && strcmp(s->ev[i].value, values[j]) == 0;
        if (!found)
            fail_msg("change %zu (%s at %lld) is not one of the puts", i, s->ev[i].value,
                     (long long)s->ev[i].rev);
    }
    size_t n = s->n;
    pthread_mutex_unlock(&s->lock);
    assert_int_equal(n, before + 6);

    /* A delete, then a put again. */
    int64_t rd = delete_raw("/t/watch/k");
    assert_true(wait_last(s, NULL, rd, 15000));
    int64_t r7 = put_str(p, "k", "v7");
    assert_true(wait_last(s, "v7", r7, 15000));

    /* etcd paused: the stream waits, and goes on. */
    assert_true(kvd_pause(g_etcd.pid));
    sleep_ms(300);
    kill(g_etcd.pid, SIGCONT);
    int64_t r8 = put_str(p, "k", "v8");
    assert_true(wait_last(s, "v8", r8, 15000));

    /* etcd killed and restarted on the same data: a put made before the
     * watch is back arrives (as the read on reconnection or on the new
     * stream). */
    etcd_kill();
    sleep_ms(300);
    assert_int_equal(etcd_start(), 0);
    int64_t r9 = put_str(p, "k", "v9");
    assert_true(wait_last(s, "v9", r9, 15000));

    /* Killed again, with a put and a delete while the watch is away. */
    etcd_kill();
    assert_int_equal(etcd_start(), 0);
    put_str(p, "k", "v10");
    int64_t r11 = put_str(p, "k", "v11");
    assert_true(wait_last(s, "v11", r11, 15000));
    etcd_kill();
    assert_int_equal(etcd_start(), 0);
    rd = delete_raw("/t/watch/k");
    assert_true(wait_last(s, NULL, rd, 15000));
    int64_t r12 = put_str(p, "k", "v12");
    assert_true(wait_last(s, "v12", r12, 15000));
    assert_increasing(s);

    /* Each outage logged once (a warning), and its end once. */
    long until = now_ms() + 15000;
    int warn = 0, again = -1;
    while (warn != again && now_ms() < until) {
        sleep_ms(20);
        pthread_mutex_lock(&logs.lock);
        warn = logs.warn;
        again = logs.info_again;
        pthread_mutex_unlock(&logs.lock);
    }
    if (warn < 1 || warn > 3 || warn != again)
        fail_msg("3 restarts logged %d warnings and %d \"answers again\"", warn, again);

    /* close stops the watch's thread even while it waits on a stream. */
    long t0 = now_ms();
    kvi_etcd_close(w);
    print_message("watch: %zu changes; close took %ld ms\n", s->n, now_ms() - t0);
    kvi_etcd_close(p);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* --------------------------------------------------------------- outages */

static void calls_while_etcd_is_down(void **state)
{
    (void)state;
    const uint32_t timeout = 1000;
    kvi_etcd *e = open_at("/t/down", timeout, NULL);
    int64_t rev;
    assert_int_equal(kvi_etcd_put_if(e, "k", "v", 1, 0, &rev), KV_OK);

    etcd_kill();
    long t0 = now_ms();
    int rc = kvi_etcd_get(e, "k", NULL, NULL);
    long took = now_ms() - t0;
    if (rc != KV_EUNAVAILABLE || !strstr(kvi_error_last(), g_etcd.client))
        fail_msg("get with etcd down: %d \"%s\" (want KV_EUNAVAILABLE naming %s)", rc,
                 kvi_error_last(), g_etcd.client);
    print_message("down: %s (%ld ms)\n", kvi_error_last(), took);
    assert_true(took < 5 * (long)timeout);
    t0 = now_ms();
    rc = kvi_etcd_put_if(e, "k", "w", 1, rev, NULL);
    took = now_ms() - t0;
    if (rc != KV_EUNAVAILABLE || !strstr(kvi_error_last(), g_etcd.client))
        fail_msg("put_if with etcd down: %d \"%s\"", rc, kvi_error_last());
    assert_true(took < 5 * (long)timeout);
    listing *l = calloc(1, sizeof *l);
    assert_non_null(l);
    assert_int_equal(kvi_etcd_list(e, "", on_key, l), KV_EUNAVAILABLE);
    free(l);

    /* Back: the same handle works again. */
    assert_int_equal(etcd_start(), 0);
    long until = now_ms() + 15000;
    while ((rc = kvi_etcd_get(e, "k", NULL, NULL)) != KV_OK && now_ms() < until)
        sleep_ms(50);
    assert_int_equal(rc, KV_OK);
    assert_int_equal(kvi_etcd_put_if(e, "k", "w", 1, rev, &rev), KV_OK);

    /* Paused: the read times out; the write was sent, so its outcome is
     * unknown rather than "unavailable". */
    assert_true(kvd_pause(g_etcd.pid));
    rc = kvi_etcd_get(e, "k", NULL, NULL);
    int rc2 = kvi_etcd_put_if(e, "other", "x", 1, 0, NULL);
    char msg[600];
    snprintf(msg, sizeof msg, "%s", kvi_error_last());
    kill(g_etcd.pid, SIGCONT);
    assert_int_equal(rc, KV_EUNAVAILABLE);
    if (rc2 != KV_EUNKNOWN_OUTCOME || !strstr(msg, "may or may not"))
        fail_msg("put_if with etcd paused: %d \"%s\"", rc2, msg);
    kvi_etcd_close(e);
}

static void first_endpoint_dead(void **state)
{
    (void)state;
    int dead = free_port();
    char url[256];
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d,%s/t/two", dead, g_etcd.client);
    kvi_etcd_config cfg = {.url = url, .timeout_ms = 1000};
    kvi_etcd *e = NULL;
    assert_int_equal(kvi_etcd_open(&e, &cfg), KV_OK);
    char want[128];
    snprintf(want, sizeof want, "etcd at 127.0.0.1:%d,%s prefix /t/two", dead, g_etcd.client);
    assert_string_equal(kvi_etcd_describe(e), want);

    int64_t rev, got;
    assert_int_equal(kvi_etcd_get(e, "k", NULL, NULL), KV_ENOTFOUND);
    assert_int_equal(kvi_etcd_put_if(e, "k", "v", 1, 0, &rev), KV_OK);
    assert_int_equal(kvi_etcd_get(e, "k", NULL, &got), KV_OK);
    assert_int_equal(got, rev);

    /* A watch on it too, and a session. */
    seen *s = calloc(1, sizeof *s);
    assert_non_null(s);
    pthread_mutex_init(&s->lock, NULL);
    assert_int_equal(kvi_etcd_watch_start(e, "k", on_change, s), KV_OK);
    assert_true(wait_last(s, "v", rev, 15000));
    assert_int_equal(kvi_etcd_put_if(e, "k", "v2", 2, rev, &rev), KV_OK);
    assert_true(wait_last(s, "v2", rev, 15000));
    assert_int_equal(kvi_etcd_session_start(e, "s", "x", 1, 2), KV_OK);
    assert_true(wait_exists(e, "s", 1, 15000));

    /* Both dead: the message names both. */
    kvi_etcd_close(e);
    snprintf(url, sizeof url, "etcd://127.0.0.1:%d,127.0.0.1:%d/t/two", dead, free_port());
    assert_int_equal(kvi_etcd_open(&e, &cfg), KV_OK);
    assert_int_equal(kvi_etcd_get(e, "k", NULL, NULL), KV_EUNAVAILABLE);
    snprintf(want, sizeof want, "127.0.0.1:%d", dead);
    assert_non_null(strstr(kvi_error_last(), want));
    assert_non_null(strstr(kvi_error_last(), "no endpoint answered"));
    kvi_etcd_close(e);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

/* -------------------------------------------------------------- parsers */

static void expect_eio(int rc, const char *what, const char *fragment)
{
    if (rc != KV_EIO || (fragment && !strstr(kvi_error_last(), fragment)))
        fail_msg("%s: %d \"%s\" (want KV_EIO mentioning \"%s\")", what, rc, kvi_error_last(),
                 fragment ? fragment : "");
}

#define RANGE_OK(json) kvi_etcd_parse_range(&r, json, strlen(json))

static void parsers_reject_garbage(void **state)
{
    (void)state;
    kvi_etcd_range r;
    const char *good = "{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"L3gvYQ==\","
                       "\"create_revision\":\"2\",\"mod_revision\":\"3\",\"version\":\"2\","
                       "\"value\":\"AGIA\"},{\"key\":\"L3gvYg==\",\"mod_revision\":4}],"
                       "\"count\":\"2\"}\n";
    assert_int_equal(RANGE_OK(good), KV_OK);
    assert_int_equal(r.revision, 9);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.kvs[0].key_len, 4);
    assert_memory_equal(r.kvs[0].key, "/x/a", 5); /* NUL-terminated */
    assert_int_equal(r.kvs[0].value_len, 3);
    assert_memory_equal(r.kvs[0].value, "\0b\0", 3);
    assert_int_equal(r.kvs[0].mod_revision, 3);
    assert_int_equal(r.kvs[1].value_len, 0); /* "value" left out: empty */
    assert_int_equal(r.kvs[1].mod_revision, 4);
    kvi_etcd_range_free(&r);
    assert_int_equal(RANGE_OK("{\"header\":{\"revision\":\"1\"}}"), KV_OK);
    assert_int_equal(r.count, 0);
    kvi_etcd_range_free(&r);

    for (size_t cut = 0; cut < strlen(good) - 1; cut++)
        assert_int_equal(kvi_etcd_parse_range(&r, good, cut), KV_EIO);
    expect_eio(RANGE_OK(""), "empty", "empty");
    expect_eio(RANGE_OK("[]"), "an array", "not a JSON object");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":\"9\"}} x"), "trailing", "after");
    expect_eio(kvi_etcd_parse_range(&r, "{\"a\":\"\0\"}", 9), "NUL", "NUL");
    expect_eio(RANGE_OK("{\"kvs\":[]}"), "no header", "header revision");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":\"9x\"}}"), "bad int", "header.\"revision\"");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":\"99999999999999999999\"}}"), "overflow",
               "int64");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":1.5}}"), "fraction", "integer");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":true}}"), "bool int", "revision");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":\"-3\"}}"), "negative", "below 0");
    expect_eio(RANGE_OK("{\"header\":\"x\"}"), "header type", "\"header\" is not an object");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":\"9\"},\"kvs\":5}"), "kvs type",
               "\"kvs\" is not an array");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":\"9\"},\"kvs\":[5]}"), "kv type",
               "kvs[0] is not an object");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"!!\","
                        "\"mod_revision\":\"1\"}]}"),
               "bad base64 key", "kvs[0]\"key\" is not base64");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"YQ==\","
                        "\"value\":\"YQ=\",\"mod_revision\":\"1\"}]}"),
               "bad base64 value", "\"value\" is not base64");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"YQ==\","
                        "\"value\":7,\"mod_revision\":\"1\"}]}"),
               "value type", "\"value\" is not a string");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"YQ==\"}]}"),
               "no mod_revision", "no mod_revision");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"mod_revision\":\"1\"}]}"),
               "no key", "no key");
    expect_eio(RANGE_OK("{\"header\":{\"revision\":\"9\"},\"more\":\"yes\"}"), "more type",
               "\"more\" is not a boolean");

    kvi_etcd_txn t;
    const char *won = "{\"header\":{\"revision\":\"3\"},\"succeeded\":true,\"responses\":"
                      "[{\"response_put\":{\"header\":{\"revision\":\"3\"}}}]}";
    assert_int_equal(kvi_etcd_parse_txn(&t, won, strlen(won)), KV_OK);
    assert_int_equal(t.succeeded, 1);
    assert_int_equal(t.revision, 3);
    const char *lost = "{\"header\":{\"revision\":\"3\"},\"responses\":[{\"response_range\":"
                       "{\"header\":{\"revision\":\"3\"},\"kvs\":[{\"key\":\"YQ==\","
                       "\"mod_revision\":\"2\"}],\"count\":\"1\"}}]}";
    assert_int_equal(kvi_etcd_parse_txn(&t, lost, strlen(lost)), KV_OK);
    assert_int_equal(t.succeeded, 0);
    assert_int_equal(t.current_mod_revision, 2);
    const char *gone = "{\"header\":{\"revision\":\"3\"},\"responses\":[{\"response_range\":"
                       "{\"header\":{\"revision\":\"3\"}}}]}";
    assert_int_equal(kvi_etcd_parse_txn(&t, gone, strlen(gone)), KV_OK);
    assert_int_equal(t.current_mod_revision, 0);
    const char *no_range = "{\"header\":{\"revision\":\"3\"}}";
    expect_eio(kvi_etcd_parse_txn(&t, no_range, strlen(no_range)), "failed txn, no range",
               "response_range");
    const char *bad_bool = "{\"header\":{\"revision\":\"3\"},\"succeeded\":\"true\"}";
    expect_eio(kvi_etcd_parse_txn(&t, bad_bool, strlen(bad_bool)), "succeeded type",
               "\"succeeded\" is not a boolean");
    for (size_t cut = 0; cut < strlen(lost) - 1; cut++)
        assert_int_equal(kvi_etcd_parse_txn(&t, lost, cut), KV_EIO);

    kvi_etcd_lease l;
    const char *grant = "{\"header\":{\"revision\":\"4\"},\"ID\":\"5007618285585709069\","
                        "\"TTL\":\"5\"}";
    assert_int_equal(kvi_etcd_parse_lease(&l, grant, strlen(grant)), KV_OK);
    assert_true(l.id == 5007618285585709069LL);
    assert_int_equal(l.ttl, 5);
    const char *kept = "{\"result\":{\"header\":{\"revision\":\"4\"},\"ID\":\"12\"}}\n";
    assert_int_equal(kvi_etcd_parse_lease(&l, kept, strlen(kept)), KV_OK);
    assert_int_equal(l.id, 12);
    assert_int_equal(l.ttl, 0); /* gone */
    const char *refused = "{\"error\":\"lease too short\"}";
    expect_eio(kvi_etcd_parse_lease(&l, refused, strlen(refused)), "grant error",
               "lease too short");
    const char *ttl_text = "{\"result\":{\"ID\":\"1\",\"TTL\":\"x\"}}";
    expect_eio(kvi_etcd_parse_lease(&l, ttl_text, strlen(ttl_text)), "TTL text", "\"TTL\"");
    const char *result_type = "{\"result\":[1]}";
    expect_eio(kvi_etcd_parse_lease(&l, result_type, strlen(result_type)), "result type",
               "\"result\" is not an object");

    kvi_etcd_watch_msg m;
    const char *events = "{\"result\":{\"header\":{\"revision\":\"10\"},\"events\":[{\"kv\":"
                         "{\"key\":\"L3gvdw==\",\"create_revision\":\"8\",\"mod_revision\":\"9\","
                         "\"version\":\"2\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"L3gvdw==\","
                         "\"mod_revision\":\"10\"}}]}}";
    assert_int_equal(kvi_etcd_parse_watch(&m, events, strlen(events)), KV_OK);
    assert_int_equal(m.count, 2);
    assert_int_equal(m.events[0].deleted, 0);
    assert_int_equal(m.events[0].kv.mod_revision, 9);
    assert_int_equal(m.events[0].kv.value_len, 0);
    assert_int_equal(m.events[1].deleted, 1);
    assert_int_equal(m.events[1].kv.mod_revision, 10);
    kvi_etcd_watch_msg_free(&m);
    const char *cancel = "{\"result\":{\"header\":{},\"canceled\":true,"
                         "\"compact_revision\":\"14\"}}";
    assert_int_equal(kvi_etcd_parse_watch(&m, cancel, strlen(cancel)), KV_OK);
    assert_int_equal(m.canceled, 1);
    assert_int_equal(m.compact_revision, 14);
    kvi_etcd_watch_msg_free(&m);
    const char *bad_type = "{\"result\":{\"events\":[{\"type\":\"BOGUS\",\"kv\":{}}]}}";
    expect_eio(kvi_etcd_parse_watch(&m, bad_type, strlen(bad_type)), "event type",
               "\"type\" is not PUT or DELETE");
    const char *no_kv = "{\"result\":{\"events\":[{\"type\":\"PUT\"}]}}";
    expect_eio(kvi_etcd_parse_watch(&m, no_kv, strlen(no_kv)), "no kv", "kv is missing");
    const char *events_type = "{\"result\":{\"events\":{}}}";
    expect_eio(kvi_etcd_parse_watch(&m, events_type, strlen(events_type)), "events type",
               "\"events\" is not an array");
    const char *stream_error = "{\"error\":{\"grpc_code\":14,\"http_code\":503,"
                               "\"message\":\"etcdserver: no leader\"}}";
    expect_eio(kvi_etcd_parse_watch(&m, stream_error, strlen(stream_error)), "stream error",
               "no leader");
    expect_eio(kvi_etcd_parse_watch(&m, "{}", 2), "no result", "no \"result\"");
    for (size_t cut = 0; cut < strlen(events) - 1; cut++)
        assert_int_equal(kvi_etcd_parse_watch(&m, events, cut), KV_EIO);

    int code;
    char msg[64];
    const char *unary = "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
                        "\"etcdserver: requested lease not found\",\"code\":5}";
    assert_int_equal(kvi_etcd_parse_error(&code, msg, sizeof msg, unary, strlen(unary)), KV_OK);
    assert_int_equal(code, 5);
    assert_string_equal(msg, "etcdserver: requested lease not found");
    assert_int_equal(kvi_etcd_parse_error(&code, msg, sizeof msg, stream_error,
                                          strlen(stream_error)),
                     KV_OK);
    assert_int_equal(code, 14);
    assert_int_equal(kvi_etcd_parse_error(&code, msg, 8, unary, strlen(unary)), KV_OK);
    assert_string_equal(msg, "etcdser");
    expect_eio(kvi_etcd_parse_error(&code, msg, sizeof msg, "{}", 2), "not an error",
               "no \"error\"");
    expect_eio(kvi_etcd_parse_error(&code, msg, sizeof msg, "<html>", 6), "html", "not JSON");

    /* The splitter: the same objects however the stream is cut. */
    const char *stream = " {\"a\":\"}{\\\"\"}\n{\"b\":[{},{\"c\":\"\\\\\"}]}\n\n{}";
    size_t len = strlen(stream);
    size_t want_start[3] = {1, 14, 37}, want_end[3] = {13, 35, 39};
    for (size_t step = 1; step <= len; step++) {
        kvi_etcd_splitter sp = {0};
        size_t base = 0, avail = 0, found = 0;
        while (found < 3) {
            size_t st, en;
            int rc = kvi_etcd_split(&sp, stream + base, avail - base, &st, &en);
            assert_true(rc == 0 || rc == 1);
            if (rc == 1) {
                assert_int_equal(base + st, want_start[found]);
                assert_int_equal(base + en, want_end[found]);
                found++;
                base += en;
                memset(&sp, 0, sizeof sp);
            } else if (avail < len) {
                avail = avail + step < len ? avail + step : len;
            } else {
                fail_msg("step %zu: found %zu objects of 3", step, found);
            }
        }
    }
    kvi_etcd_splitter sp = {0};
    size_t st, en;
    expect_eio(kvi_etcd_split(&sp, "x{}", 3, &st, &en), "text before an object", "byte 0");
    char deep[2 * KVI_ETCD_SPLIT_MAX_DEPTH + 8];
    memset(deep, '[', sizeof deep);
    deep[0] = '{';
    memset(&sp, 0, sizeof sp);
    expect_eio(kvi_etcd_split(&sp, deep, sizeof deep, &st, &en), "deep", "nests deeper");

    /* prefix_end */
    unsigned char end[8];
    assert_int_equal(kvi_etcd_prefix_end(end, (const unsigned char *)"/a/", 3), 3);
    assert_memory_equal(end, "/a0", 3);
    assert_int_equal(kvi_etcd_prefix_end(end, (const unsigned char *)"a\xff\xff", 3), 1);
    assert_memory_equal(end, "b", 1);
    assert_int_equal(kvi_etcd_prefix_end(end, (const unsigned char *)"\xff", 1), 0);
}

int main(void)
{
    if (access(etcd_path(), X_OK) != 0) {
        fprintf(stderr,
                "net.etcd: FAIL: no etcd at %s (%s). Install it: scripts/install-deps.sh "
                "(Debian etcd-server), or set ETCD to its path.\n",
                etcd_path(), strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
#define T(fn) cmocka_unit_test_teardown(fn, teardown_etcd_up)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parsers_reject_garbage),
        T(open_rejects_bad_urls),
        T(get_missing_key),
        T(put_if_create_and_conflict),
        T(put_if_revisions),
        T(put_if_race_has_one_winner),
        T(binary_values_round_trip),
        T(list_gives_the_prefix_only),
        T(list_pages_through_many_keys),
        T(session_holds_its_key),
        T(session_key_expires_when_its_process_dies),
        T(session_recovers_lost_lease_and_outage),
        T(watch_gives_changes_in_order),
        T(calls_while_etcd_is_down),
        T(first_endpoint_dead),
    };
    int rc = cmocka_run_group_tests_name("net.etcd", tests, group_setup, group_teardown);
    curl_global_cleanup();
    return rc;
}
