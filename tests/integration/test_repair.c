/* Anti-entropy on real kvd processes (issue 13): a wiped replica rebuilt by
 * `kvctl repair --wait`, keys that diverged while a replica was down and
 * its hints dropped, found among many and repaired by one exchange, a
 * clean exchange that sends no key, and a damaged record rewritten. Each
 * test prints its figures.
 *
 * The members run with --ae-interval 0, so that only the rounds a test asks
 * for run and its figures are theirs alone. Key counts: 100k wiped, and 1M
 * among which 1000 diverge; a tenth of that under the sanitizers
 * (KV_TEST_SANITIZED), or KV_TEST_WIPE_KEYS and KV_TEST_AE_KEYS.
 * No timing assertions: every wait is a bounded poll for a state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <cJSON.h>

#include "client/handle.h"
#include "format/ae.h"
#include "format/frame.h"
#include "format/record.h"
#include "format/state.h"
#include "integration/cluster_harness.h"
#include "net/client.h"
#include "storage/digest.h"
#include "storage/store.h"
#include "util/endian.h"

#define VALUE_SIZE 200
#define BATCH 500
#ifdef KV_TEST_SANITIZED
#define SCALE 10
#else
#define SCALE 1
#endif

static const char *const member_flags[] = {"--ae-interval", "0", "--sync", "none",
                                           "--hint-window", "1", NULL};

static int setup(void **state)
{
    make_cluster_with(state, 3, "lww", member_flags);
    return 0;
}

static size_t keys_from_env(const char *name, size_t dflt)
{
    const char *v = getenv(name);
    long n = v ? strtol(v, NULL, 10) : 0;
    return n > 0 ? (size_t)n : dflt;
}

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void key_name(char *out, size_t size, const char *tag, size_t k)
{
    snprintf(out, size, "%s%08zu", tag, k);
}

/* The value of key k: VALUE_SIZE bytes that name it. */
static void value_of(char *out, const char *tag, size_t k)
{
    memset(out, 'a' + (int)(k % 26), VALUE_SIZE);
    snprintf(out, 32, "%s%zu:", tag, k);
}

/* Writes keys [from, to) of tag at `level` through db, BATCH at a time;
 * every write must succeed. */
static void load(kv *db, const char *tag, size_t from, size_t to, kv_consistency level)
{
    kv_batch *b;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = level;
    char key[48], value[VALUE_SIZE];
    for (size_t k = from; k < to;) {
        kv_batch_clear(b);
        for (size_t n = 0; n < BATCH && k < to; n++, k++) {
            key_name(key, sizeof key, tag, k);
            value_of(value, tag, k);
            assert_int_equal(kv_batch_put(b, key, strlen(key), value, VALUE_SIZE, 0), KV_OK);
        }
        assert_int_equal(kv_batch_execute(db, b, &wo, NULL), KV_OK);
        for (size_t i = 0; i < kv_batch_count(b); i++) {
            int status = kv_batch_result(NULL, NULL, b, i);
            if (status != KV_OK)
                fail_msg("write %zu of a batch failed: %s", i, kv_strerror(status));
        }
    }
    kv_batch_free(b);
}

static int put_at_all(kv *db, const char *key, const char *value)
{
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = KV_CONSISTENCY_ALL;
    return kv_put(NULL, db, key, strlen(key), value, strlen(value), &wo);
}

/* Writes keys [0, n) of tag at ALL through a client of the cluster, and
 * says how long it took. */
static void load_all(const cluster *c, const char *tag, size_t n)
{
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    double t0 = seconds_now();
    load(db, tag, 0, n, KV_CONSISTENCY_ALL);
    printf("    %zu keys of %d bytes written at ALL in %.1f s\n", n, VALUE_SIZE,
           seconds_now() - t0);
    kv_close(db);
}

/* A client handle that talks to node i alone (no view of the ring). */
static kv *alone(const cluster *c, int i)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 10000;
    co.connect_timeout_ms = 1000;
    co.manual_loop = 1;
    const char *eps[] = {c->nodes[i].listen};
    kv *db = NULL;
    assert_int_equal(kv_client_open(&db, eps, 1, &co), KV_OK);
    return db;
}

/* Node i's digest of every segment, from its own store. */
static void whole_digest(const cluster *c, int i, uint64_t *hash, uint32_t *keys)
{
    kv *db = alone(c, i);
    kvi_ae_range all = {0, 1u << KVI_DIGEST_DEFAULT_BITS};
    kvi_buf req = {0}, answer = {0};
    kvi_ae_digest_request_encode(&req, KVI_DIGEST_DEFAULT_BITS, 1, &all, 1);
    assert_int_equal(kvi_client_value_call(db->client, KVI_OP_AE_DIGEST, req.data, req.len, &answer),
                     KV_OK);
    assert_int_equal(kvi_ae_digest_answer_decode(hash, keys, 1, answer.data, answer.len), 0);
    kvi_buf_free(&req);
    kvi_buf_free(&answer);
    kv_close(db);
}

/* The bytes of node i's stored records, each with its storage key: what a
 * replica holding nothing must receive at the least. */
static uint64_t record_bytes(const cluster *c, int i, uint64_t *count)
{
    kv *db = alone(c, i);
    uint64_t bytes = 0;
    *count = 0;
    kvi_buf after = {0}, req = {0}, answer = {0};
    for (int pages = 0; pages < 100000; pages++) {
        kvi_ae_keys_request kr = {KVI_DIGEST_DEFAULT_BITS, 0, 1u << KVI_DIGEST_DEFAULT_BITS,
                                  {after.data, after.len}, KVI_AE_MAX_KEYS, KVI_AE_KEYS_RECORDS};
        kvi_buf_reset(&req);
        kvi_ae_keys_request_encode(&req, &kr);
        assert_int_equal(kvi_client_value_call(db->client, KVI_OP_AE_KEYS, req.data, req.len, &answer),
                         KV_OK);
        uint32_t n;
        int more;
        kvi_reader items;
        assert_int_equal(kvi_ae_keys_answer_check(&n, &more, &items, answer.data, answer.len,
                                                  1), 0);
        kvi_bytes skey = {0}, rec;
        uint64_t hash;
        for (uint32_t k = 0; k < n; k++) {
            kvi_ae_keys_answer_next(&items, &skey, &hash, &rec);
            bytes += skey.len + rec.len;
        }
        *count += n;
        if (!more)
            break;
        kvi_buf_reset(&after);
        kvi_buf_raw(&after, skey.data, skey.len);
    }
    kvi_buf_free(&after);
    kvi_buf_free(&req);
    kvi_buf_free(&answer);
    kv_close(db);
    return bytes;
}

/* Checks that node i alone holds keys [from, to) of tag with their values,
 * reading its own store (GET_STATE: no quorum read that would repair it). */
static void holds_all(const cluster *c, int i, const char *tag, size_t from, size_t to)
{
    kv *db = alone(c, i);
    static kvi_state st;
    kvi_buf holder = {0};
    char key[48], value[VALUE_SIZE];
    size_t missing = 0, wrong = 0;
    for (size_t k = from; k < to; k++) {
        key_name(key, sizeof key, tag, k);
        kvi_buf_reset(&holder);
        int rc = kvi_client_get_state(db->client, &st, &holder, key, strlen(key));
        if (rc == KV_ENOTFOUND) {
            missing++;
            continue;
        }
        assert_int_equal(rc, KV_OK);
        value_of(value, tag, k);
        wrong += st.n != 1 || st.sibs[0].value_len != VALUE_SIZE ||
                 memcmp(st.sibs[0].value, value, VALUE_SIZE) != 0;
    }
    kvi_buf_free(&holder);
    kv_close(db);
    if (missing || wrong)
        fail_msg("%s lacks %zu and holds %zu wrong of %zu keys", c->nodes[i].id, missing, wrong,
                 to - from);
}

/* Node i's own description (malloc'd JSON). */
static cJSON *description(const cluster *c, int i)
{
    kv *db = alone(c, i);
    char *json = NULL;
    assert_int_equal(kv_cluster_describe(&json, db), KV_OK);
    kv_close(db);
    cJSON *root = cJSON_Parse(json);
    kv_string_free(json);
    assert_non_null(root);
    return root;
}

static double ae_figure(const cJSON *root, const char *path1, const char *path2)
{
    const cJSON *ae = cJSON_GetObjectItemCaseSensitive(root, "antiEntropy");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(ae, path1);
    if (path2)
        v = cJSON_GetObjectItemCaseSensitive(v, path2);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

/* Runs `kvctl repair --node ID --wait` against node i and checks it says
 * the node repaired cleanly; prints its line. */
static void kvctl_repair(const cluster *c, int i)
{
    char args[256], out[4096];
    snprintf(args, sizeof args, "repair --node %s --wait", c->nodes[i].id);
    int status = run_kvctl(c, i, args, out, sizeof out);
    printf("    kvctl: %s", out);
    if (status != 0 || !strstr(out, "repaired with"))
        fail_msg("kvctl repair failed (status %d): %s", status, out);
}

/* ------------------------------------------------------------------ tests */

static void a_wiped_replica_is_rebuilt_by_repair(void **state)
{
    cluster *c = *state;
    size_t keys = keys_from_env("KV_TEST_WIPE_KEYS", 100000 / SCALE);
    load_all(c, "w", keys);

    /* The third replica loses its disk: stopped, its directory emptied,
     * started again with the same id and address. */
    stop(c, 2, SIGTERM);
    char *dir = strdup(c->nodes[2].dir);
    test_rmtree(c->nodes[2].dir); /* frees the path */
    c->nodes[2].dir = dir;
    assert_int_equal(mkdir(dir, 0700), 0);
    start(c, 2);
    uint64_t h1, h3;
    uint32_t k1, k3;
    whole_digest(c, 2, &h3, &k3);
    assert_int_equal(k3, 0);

    uint64_t records;
    uint64_t record_total = record_bytes(c, 0, &records);
    assert_int_equal(records, keys);
    double t0 = seconds_now();
    kvctl_repair(c, 2);
    double took = seconds_now() - t0;

    whole_digest(c, 0, &h1, &k1);
    whole_digest(c, 2, &h3, &k3);
    assert_int_equal(k3, keys);
    assert_true(h1 == h3);
    holds_all(c, 2, "w", 0, keys);
    cJSON *d = description(c, 2);
    double sent = ae_figure(d, "round", "bytes");
    double received = ae_figure(d, "keysReceived", NULL);
    printf("    repair of the wiped replica: %.0f keys taken in, %.0f bytes exchanged for "
           "%llu bytes of records (%.3fx), %.1f s\n", received, sent,
           (unsigned long long)record_total, sent / (double)record_total, took);
    assert_int_equal((uint64_t)received, keys);
    assert_true(sent <= 1.1 * (double)record_total + 1048576.0);
    cJSON_Delete(d);
}

/* How many lines of node i's log hold needle. */
static int log_lines(const cluster *c, int i, const char *needle)
{
    FILE *f = fopen(c->nodes[i].log_path, "r");
    assert_non_null(f);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* Sums one of the failure figures of the first two nodes (the third is
 * the one they keep hints for). */
static double failures_sum(const cluster *c, const char *name)
{
    double sum = 0;
    for (int i = 0; i < 2; i++) {
        cJSON *d = description(c, i);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(d, "failures"), name);
        sum += cJSON_IsNumber(v) ? v->valuedouble : 0;
        cJSON_Delete(d);
    }
    return sum;
}

static void diverged_keys_among_many_are_found_and_a_clean_exchange_sends_none(void **state)
{
    cluster *c = *state;
    size_t keys = keys_from_env("KV_TEST_AE_KEYS", 1000000 / SCALE), diverged = 1000;
    load_all(c, "m", keys);

    /* 1000 more written through the first node while the third is down
     * (stopped: a paused one would still find in its socket buffers, once
     * resumed, the replication sent before the senders gave up): at QUORUM
     * they succeed on two replicas, whose coordinators keep hints for the
     * third. */
    stop(c, 2, SIGTERM);
    kv *first = alone(c, 0);
    load(first, "d", 0, diverged, KV_CONSISTENCY_QUORUM);
    kv_close(first);
    /* The hints outlive the one-second window while the third is still
     * down: the first two drop them (they look every 10 s) rather than
     * replay them. */
    for (int tries = 0; tries < 600 && failures_sum(c, "hintsDropped") < (double)diverged;
         tries++)
        sleep_ms(100);
    if (failures_sum(c, "hintsDropped") < (double)diverged)
        fail_msg("hints dropped for the stopped node: %.0f of %zu (pending %.0f)",
                 failures_sum(c, "hintsDropped"), diverged, failures_sum(c, "hintsPending"));
    start(c, 2);
    uint64_t h1, h3;
    uint32_t k1, k3;
    whole_digest(c, 2, &h3, &k3);
    assert_int_equal(k3, keys);

    double t1 = seconds_now();
    kvctl_repair(c, 2);
    double took = seconds_now() - t1;
    holds_all(c, 2, "d", 0, diverged);
    whole_digest(c, 0, &h1, &k1);
    whole_digest(c, 2, &h3, &k3);
    assert_int_equal(k3, keys + diverged);
    assert_true(h1 == h3);
    cJSON *d = description(c, 2);
    double digest = ae_figure(d, "bytes", "digest"), list = ae_figure(d, "bytes", "keys");
    double repair = ae_figure(d, "bytes", "repair");
    printf("    %zu diverged among %zu: digests %.0f bytes, key lists %.0f bytes, repair "
           "%.0f bytes, %.1f s\n", diverged, keys, digest, list, repair, took);
    assert_int_equal((uint64_t)ae_figure(d, "keysReceived", NULL), diverged);
    assert_int_equal((uint64_t)ae_figure(d, "keysSent", NULL), 0);
    assert_true(digest + list < 512.0 * 1024);
    cJSON_Delete(d);
    /* One exchange repaired them all: the round's first took every key in
     * (an exchange that repairs something logs it at info), and the
     * second, with the member that had just been compared, was clean. */
    char want[64];
    snprintf(want, sizeof want, ": %zu keys taken in, 0 sent", diverged);
    assert_int_equal(log_lines(c, 2, "anti-entropy exchange with"), 1);
    assert_int_equal(log_lines(c, 2, want), 1);

    /* Now every replica agrees: a round finds nothing to send. */
    kvctl_repair(c, 2);
    cJSON *after = description(c, 2);
    double clean = ae_figure(after, "round", "bytes");
    printf("    a clean round (2 exchanges over %zu keys): %.0f bytes\n", keys + diverged,
           clean);
    assert_int_equal((uint64_t)ae_figure(after, "round", "keysRepaired"), 0);
    assert_true(ae_figure(after, "bytes", "keys") == list);
    assert_true(clean < 8192);
    cJSON_Delete(after);
}

/* Overwrites key's record in a stopped node's store with bytes that fail
 * their checks, through the store (so its digest says the record changed,
 * as it would once a background verification found the damage). */
static void damage_record(const char *dir, const char *key)
{
    kvi_store_config cfg = {.path = dir, .sync = KV_SYNC_ALWAYS,
                            .digest_bits = KVI_DIGEST_DEFAULT_BITS};
    kvi_store *s;
    assert_int_equal(kvi_store_open(&s, &cfg), KV_OK);
    size_t len = strlen(key);
    unsigned char skey[KVI_TOKEN_SIZE + 64];
    kvi_storage_key(skey, kvi_key_token(key, len), key, len);
    const char junk[] = "\x02 this is not a state any more";
    assert_int_equal(kvi_store_put(s, skey, KVI_TOKEN_SIZE + len, junk, sizeof junk), KV_OK);
    kvi_store_close(s);
}

/* Node i's state of key from its own store: KV_OK, KV_ENOTFOUND, KV_ECORRUPT. */
static int state_on(const cluster *c, int i, const char *key, char *value, size_t size)
{
    kv *db = alone(c, i);
    static kvi_state st;
    kvi_buf holder = {0};
    int rc = kvi_client_get_state(db->client, &st, &holder, key, strlen(key));
    if (rc == KV_OK) {
        assert_true(st.n == 1 && st.sibs[0].value_len <= size);
        memcpy(value, st.sibs[0].value, st.sibs[0].value_len);
    }
    kvi_buf_free(&holder);
    kv_close(db);
    return rc;
}

/* Waits (bounded: about 30 s) until node `from` sees node `who` up again. */
static void wait_up(const cluster *c, int from, int who)
{
    for (int tries = 0; tries < 300; tries++) {
        cJSON *d = description(c, from);
        const cJSON *m;
        int up = 0;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(d, "members")) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "nodeId");
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "status");
            up |= cJSON_IsString(id) && strcmp(id->valuestring, c->nodes[who].id) == 0 &&
                  cJSON_IsString(st) && strcmp(st->valuestring, "up") == 0;
        }
        cJSON_Delete(d);
        if (up)
            return;
        sleep_ms(100);
    }
    fail_msg("%s never saw %s up again", c->nodes[from].id, c->nodes[who].id);
}

static void a_damaged_record_is_rewritten_by_repair(void **state)
{
    cluster *c = *state;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    load(db, "c", 0, 100, KV_CONSISTENCY_ALL);
    kv_close(db);
    char key[48], want[VALUE_SIZE], got[VALUE_SIZE + 1];
    key_name(key, sizeof key, "c", 42);
    value_of(want, "c", 42);
    stop(c, 2, SIGTERM);
    damage_record(c->nodes[2].dir, key);
    start(c, 2);
    wait_up(c, 0, 2);
    assert_int_equal(state_on(c, 2, key, got, sizeof got), KV_ECORRUPT);

    /* The first node's round: it finds the key different, cannot take the
     * third's damaged state, and sends its own, which replaces it. */
    kvctl_repair(c, 0);
    assert_int_equal(state_on(c, 2, key, got, sizeof got), KV_OK);
    assert_memory_equal(got, want, VALUE_SIZE);
    cJSON *d = description(c, 2);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(d, "storage"), "corruptRecordsRepaired");
    assert_true(cJSON_IsNumber(n) && n->valuedouble == 1);
    cJSON_Delete(d);
    d = description(c, 0);
    printf("    the damaged record was replaced; the first node saw %.0f damaged record(s) "
           "and sent %.0f state(s)\n", ae_figure(d, "recordsDamaged", NULL),
           ae_figure(d, "keysSent", NULL));
    assert_true(ae_figure(d, "recordsDamaged", NULL) >= 1);
    cJSON_Delete(d);

    /* The other way round: damaged on the third again, repaired by the
     * third's own round (it takes the first's state in). */
    stop(c, 2, SIGTERM);
    damage_record(c->nodes[2].dir, key);
    start(c, 2);
    wait_up(c, 2, 0);
    wait_up(c, 2, 1);
    kvctl_repair(c, 2);
    assert_int_equal(state_on(c, 2, key, got, sizeof got), KV_OK);
    assert_memory_equal(got, want, VALUE_SIZE);
    uint64_t h1, h3;
    uint32_t k1, k3;
    whole_digest(c, 0, &h1, &k1);
    whole_digest(c, 2, &h3, &k3);
    assert_true(h1 == h3 && k1 == k3);

    /* And by a read: at ALL the damaged replica cannot count, so the read
     * fails, but the replicas that answered repair it. */
    stop(c, 2, SIGTERM);
    damage_record(c->nodes[2].dir, key);
    start(c, 2);
    wait_up(c, 0, 2);
    wait_up(c, 1, 2);
    db = client_all(c, KV_POLICY_LWW, NULL);
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_ALL;
    kv_value *v = NULL;
    int rc = kv_get(&v, db, key, strlen(key), &ro);
    assert_true(rc == KV_EUNAVAILABLE || rc == KV_ETIMEDOUT);
    int tries = 0;
    while (state_on(c, 2, key, got, sizeof got) != KV_OK && tries++ < 100)
        sleep_ms(100);
    assert_int_equal(state_on(c, 2, key, got, sizeof got), KV_OK);
    assert_memory_equal(got, want, VALUE_SIZE);
    assert_int_equal(kv_get(&v, db, key, strlen(key), &ro), KV_OK);
    kv_value_free(v);
    kv_close(db);
    d = description(c, 2);
    n = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(d, "storage"),
                                         "corruptRecordsRepaired");
    assert_true(cJSON_IsNumber(n) && n->valuedouble == 1); /* since its restart */
    cJSON_Delete(d);
}

static const char *const purge_flags[] = {"--ae-interval", "0", "--sync", "none",
                                          "--hint-window", "1", "--tombstone-grace", "1",
                                          NULL};

static int setup_purge(void **state)
{
    make_cluster_with(state, 3, "lww", purge_flags);
    return 0;
}

/* A figure of node i's antiEntropy object, or of its description. */
static double node_ae_figure(const cluster *c, int i, const char *name)
{
    cJSON *d = description(c, i);
    double v = ae_figure(d, name, NULL);
    cJSON_Delete(d);
    return v;
}

/* Runs `kvctl repair --wait` on every node (each node's own round). */
static void kvctl_repair_all(const cluster *c)
{
    char out[4096];
    int status = run_kvctl(c, 0, "repair --wait", out, sizeof out);
    printf("    kvctl: %s", out);
    if (status != 0)
        fail_msg("kvctl repair failed (status %d): %s", status, out);
    for (int i = 0; i < 3; i++) {
        char line[64];
        snprintf(line, sizeof line, "%s ", c->nodes[i].id);
        const char *at = strstr(out, line);
        if (!at || strncmp(at + strspn(at + strlen(line), " ") + strlen(line), "repaired with",
                           13) != 0)
            fail_msg("kvctl repair did not report %s repaired: %s", c->nodes[i].id, out);
    }
}

/* Node i's own state of every key of tag [0, n): how many are dead (each
 * sibling a tombstone), live, and absent. */
static void count_states(const cluster *c, int i, const char *tag, size_t n, size_t *dead,
                         size_t *live, size_t *absent)
{
    kv *db = alone(c, i);
    static kvi_state st;
    kvi_buf holder = {0};
    char key[48];
    *dead = *live = *absent = 0;
    for (size_t k = 0; k < n; k++) {
        key_name(key, sizeof key, tag, k);
        kvi_buf_reset(&holder);
        int rc = kvi_client_get_state(db->client, &st, &holder, key, strlen(key));
        if (rc == KV_ENOTFOUND) {
            (*absent)++;
            continue;
        }
        assert_int_equal(rc, KV_OK);
        int all_dead = st.n > 0;
        for (size_t s = 0; s < st.n; s++)
            all_dead &= st.sibs[s].tombstone;
        *dead += all_dead;
        *live += !all_dead;
    }
    kvi_buf_free(&holder);
    kv_close(db);
}

static void tombstones_are_purged_only_once_every_replica_has_them(void **state)
{
    cluster *c = *state;
    size_t keys = 10000 / SCALE;
    kv *db = client_all(c, KV_POLICY_LWW, NULL);
    load(db, "t", 0, keys, KV_CONSISTENCY_ALL);
    kv_close(db);
    /* Every node fully repaired once, before the deletes: their repairs
     * are known (gossiped), and older than what they must cover. */
    kvctl_repair_all(c);

    /* The deletes, while the third replica is down: its hints are dropped
     * (one-second window) before it comes back. */
    stop(c, 2, SIGTERM);
    kv *first = alone(c, 0);
    kv_batch *b;
    assert_int_equal(kv_batch_new(&b), KV_OK);
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = KV_CONSISTENCY_QUORUM;
    char key[48];
    for (size_t k = 0; k < keys;) {
        kv_batch_clear(b);
        for (size_t m = 0; m < BATCH && k < keys; m++, k++) {
            key_name(key, sizeof key, "t", k);
            assert_int_equal(kv_batch_delete(b, key, strlen(key)), KV_OK);
        }
        assert_int_equal(kv_batch_execute(first, b, &wo, NULL), KV_OK);
        for (size_t i = 0; i < kv_batch_count(b); i++)
            assert_int_equal(kv_batch_result(NULL, NULL, b, i), KV_OK);
    }
    kv_batch_free(b);
    kv_close(first);
    for (int tries = 0; tries < 600 && failures_sum(c, "hintsDropped") < (double)keys; tries++)
        sleep_ms(100);
    assert_true(failures_sum(c, "hintsDropped") >= (double)keys);

    /* The first two repair with each other (the third is down, so neither
     * is fully repaired since the deletes): nothing may be purged. */
    for (int i = 0; i < 2; i++) {
        char *report = NULL;
        kv *one = alone(c, i);
        assert_int_equal(kv_repair(&report, one, NULL), KV_OK);
        kv_string_free(report);
        kv_close(one);
    }
    size_t dead, live, absent;
    for (int i = 0; i < 2; i++) {
        count_states(c, i, "t", keys, &dead, &live, &absent);
        assert_int_equal(dead, keys);
        assert_int_equal(node_ae_figure(c, i, "tombstonesPurged"), 0);
    }

    /* The third comes back holding every value: a read at ONE could find
     * one there until repair. */
    start(c, 2);
    count_states(c, 2, "t", keys, &dead, &live, &absent);
    assert_int_equal(live, keys);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
            if (i != j)
                wait_up(c, i, j);
    kvctl_repair_all(c);

    /* kvctl repair-status --ranges: every node, and per member the ranges
     * they share, repaired just now. */
    char out[8192];
    assert_int_equal(run_kvctl(c, 0, "repair-status --ranges", out, sizeof out), 0);
    printf("    kvctl repair-status --ranges:\n%s", out);
    for (int i = 0; i < 3; i++) {
        char line[64];
        snprintf(line, sizeof line, "ranges shared with %s", c->nodes[i].id);
        assert_non_null(strstr(out, line));
    }
    assert_null(strstr(out, "never"));

    /* Repaired: no deleted key is readable at ONE, wherever it is read. */
    count_states(c, 2, "t", keys, &dead, &live, &absent);
    assert_int_equal(live, 0);
    db = client_all(c, KV_POLICY_LWW, NULL);
    kv_read_options ro = KV_READ_OPTIONS_INIT;
    ro.consistency = KV_CONSISTENCY_ONE;
    size_t readable = 0;
    for (size_t k = 0; k < keys; k++) {
        key_name(key, sizeof key, "t", k);
        kv_value *v = NULL;
        int rc = kv_get(&v, db, key, strlen(key), &ro);
        assert_true(rc == KV_OK || rc == KV_ENOTFOUND);
        readable += rc == KV_OK;
        kv_value_free(v);
    }
    assert_int_equal(readable, 0);

    /* Every replica was fully repaired after the deletes, past the hint
     * window and the margin: each purges them all (bounded wait). */
    for (int i = 0; i < 3; i++) {
        int tries = 0;
        while (node_ae_figure(c, i, "tombstonesPurged") < (double)keys && tries++ < 600)
            sleep_ms(100);
        assert_int_equal(node_ae_figure(c, i, "tombstonesPurged"), keys);
        count_states(c, i, "t", keys, &dead, &live, &absent);
        assert_int_equal(absent, keys);
        uint64_t h;
        uint32_t n;
        whole_digest(c, i, &h, &n);
        assert_int_equal(n, 0);
    }
    printf("    %zu keys deleted while a replica was down: none purged before it was "
           "repaired, none readable at ONE after, all purged on the 3 replicas\n", keys);

    /* A key written again after its purge is a new key on every replica. */
    assert_int_equal(put_at_all(db, "t00000007", "back"), KV_OK);
    kv_close(db);
    char got[VALUE_SIZE + 1];
    for (int i = 0; i < 3; i++) {
        memset(got, 0, sizeof got);
        assert_int_equal(state_on(c, i, "t00000007", got, sizeof got), KV_OK);
        assert_string_equal(got, "back");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_wiped_replica_is_rebuilt_by_repair, setup, teardown),
        cmocka_unit_test_setup_teardown(
            diverged_keys_among_many_are_found_and_a_clean_exchange_sends_none, setup, teardown),
        cmocka_unit_test_setup_teardown(a_damaged_record_is_rewritten_by_repair, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(tombstones_are_purged_only_once_every_replica_has_them,
                                        setup_purge, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
