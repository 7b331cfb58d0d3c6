/* Anti-entropy's requests between nodes (format/ae.h), on three nodes
 * hosted in this process: replicas that took the same writes answer the
 * same digests; a key changed on one replica alone shows in the digest of
 * the one range that holds it, and in the keys of its segment with a
 * different hash; keys page in order; bad requests are refused with their
 * reason and the node goes on serving; a node alone keeps no digest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "helpers.h"
#include "net/nodes_in_process.h"
#include "client/handle.h"
#include "format/ae.h"
#include "format/entry_hash.h"
#include "format/frame.h"
#include "format/record.h"
#include "format/state.h"
#include "net/client.h"
#include "storage/digest.h"
#include "storage/store.h"
#include "node/node.h"
#include "util/endian.h"
#include <kv/kv.h>

#define NODES INPROC_NODES
#define KEYS 200
#define BITS KVI_DIGEST_DEFAULT_BITS
#define SEGMENTS (1u << BITS)

typedef struct world {
    inproc_nodes nodes;
    kv *to[NODES]; /* a client handle to node i alone */
} world;

/* The nodes, and a client to each. */
static int setup(void **state)
{
    world *w = calloc(1, sizeof *w);
    *state = w;
    if (inproc_up(&w->nodes) != 0)
        return -1;
    kv_client_options one = KV_CLIENT_OPTIONS_INIT;
    one.request_timeout_ms = 5000;
    one.connect_timeout_ms = 1000;
    one.manual_loop = 1; /* no view of the ring: talks to this node only */
    for (int i = 0; i < NODES; i++) {
        const char *eps[] = {w->nodes.listen[i]};
        if (kv_client_open(&w->to[i], eps, 1, &one) != KV_OK)
            return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    world *w = *state;
    for (int i = 0; i < NODES; i++)
        kv_close(w->to[i]);
    inproc_down(&w->nodes);
    free(w);
    return 0;
}

/* Node i's digest of n ranges cut `fanout` ways (parts: how many that
 * makes): KV_OK with hashes and keys filled. */
static int digest_parts(world *w, int i, const kvi_ae_range *ranges, size_t n, unsigned fanout,
                        size_t parts, uint64_t *hashes, uint32_t *keys)
{
    kvi_buf req = {0}, answer = {0};
    kvi_ae_digest_request_encode(&req, BITS, fanout, ranges, n);
    int rc = kvi_client_value_call(w->to[i]->client, KVI_OP_AE_DIGEST, req.data, req.len, &answer);
    if (rc == KV_OK)
        assert_int_equal(kvi_ae_digest_answer_decode(hashes, keys, parts, answer.data,
                                                     answer.len), 0);
    kvi_buf_free(&req);
    kvi_buf_free(&answer);
    return rc;
}

/* Node i's digest of n ranges: KV_OK with hashes and keys filled. */
static int digest_of(world *w, int i, const kvi_ae_range *ranges, size_t n, uint64_t *hashes,
                     uint32_t *keys)
{
    kvi_buf req = {0}, answer = {0};
    kvi_ae_digest_request_encode(&req, BITS, 1, ranges, n);
    int rc = kvi_client_value_call(w->to[i]->client, KVI_OP_AE_DIGEST, req.data, req.len, &answer);
    if (rc == KV_OK)
        assert_int_equal(kvi_ae_digest_answer_decode(hashes, keys, n, answer.data, answer.len), 0);
    kvi_buf_free(&req);
    kvi_buf_free(&answer);
    return rc;
}

/* 16 ranges of equal size over all the segments. */
static void sixteen_ranges(kvi_ae_range *r)
{
    for (uint32_t k = 0; k < 16; k++)
        r[k] = (kvi_ae_range){k * (SEGMENTS / 16), (k + 1) * (SEGMENTS / 16)};
}

/* Node i's keys of segments [first, end) from after (NULL: the start), at
 * most max_keys: appended to keys/hashes (*n of them so far); returns more. */
static int keys_of(world *w, int i, uint32_t first, uint32_t end, kvi_bytes after,
                   uint32_t max_keys, char keys[][64], size_t *key_lens, uint64_t *hashes,
                   size_t *n)
{
    kvi_ae_keys_request kr = {BITS, first, end, after, max_keys, 0};
    kvi_buf req = {0}, answer = {0};
    kvi_ae_keys_request_encode(&req, &kr);
    assert_int_equal(kvi_client_value_call(w->to[i]->client, KVI_OP_AE_KEYS, req.data, req.len, &answer),
                     KV_OK);
    uint32_t count;
    int more;
    kvi_reader items;
    assert_int_equal(kvi_ae_keys_answer_check(&count, &more, &items, answer.data, answer.len, 0),
                     0);
    assert_true(count <= max_keys);
    for (uint32_t k = 0; k < count; k++) {
        kvi_bytes skey;
        kvi_ae_keys_answer_next(&items, &skey, &hashes[*n], NULL);
        assert_true(skey.len < 64);
        memcpy(keys[*n], skey.data, skey.len);
        key_lens[*n] = skey.len;
        uint64_t seg = kvi_get_be64(skey.data) >> (64 - BITS);
        assert_true(seg >= first && seg < end);
        (*n)++;
    }
    kvi_buf_free(&req);
    kvi_buf_free(&answer);
    return more;
}

static uint32_t segment_of(const char *key)
{
    return (uint32_t)(kvi_key_token(key, strlen(key)) >> (64 - BITS));
}

/* KEYS keys written at ALL: on every replica before each answer. */
static void write_keys(world *w)
{
    kv_write_options wo = KV_WRITE_OPTIONS_INIT;
    wo.consistency = KV_CONSISTENCY_ALL;
    char key[32];
    for (int k = 0; k < KEYS; k++) {
        snprintf(key, sizeof key, "key-%d", k);
        assert_int_equal(kv_put(NULL, w->nodes.node[0], key, strlen(key), "v", 1, &wo), KV_OK);
    }
}

static void replicas_agree_and_a_key_changed_on_one_is_found(void **state)
{
    world *w = *state;
    write_keys(w);
    kvi_ae_range ranges[16];
    sixteen_ranges(ranges);
    uint64_t h[NODES][16];
    uint32_t n[NODES][16];
    for (int i = 0; i < NODES; i++) {
        assert_int_equal(digest_of(w, i, ranges, 16, h[i], n[i]), KV_OK);
        uint64_t total = 0;
        for (int r = 0; r < 16; r++)
            total += n[i][r];
        assert_int_equal(total, KEYS);
    }
    assert_memory_equal(h[0], h[1], sizeof h[0]);
    assert_memory_equal(h[0], h[2], sizeof h[0]);

    /* key-7 changed on the third node alone: a new sibling merged there. */
    static kvi_state st;
    kvi_buf holder = {0};
    assert_int_equal(kvi_client_get_state(w->to[2]->client, &st, &holder, "key-7", 5), KV_OK);
    kvi_vv seen = st.clock;
    kvi_sibling x = {.value = (const unsigned char *)"diverged", .value_len = 8, .write_ms = 9};
    assert_int_equal(kvi_state_write(&st, &seen, "n3", &x), KV_OK);
    assert_int_equal(kvi_client_replicate(w->to[2]->client, NULL, "key-7", 5, &st), KV_OK);
    kvi_buf_free(&holder);

    uint32_t seg = segment_of("key-7");
    uint64_t h2[16];
    uint32_t n2[16];
    assert_int_equal(digest_of(w, 2, ranges, 16, h2, n2), KV_OK);
    assert_int_equal(digest_of(w, 0, ranges, 16, h[0], n[0]), KV_OK);
    for (uint32_t r = 0; r < 16; r++) {
        int holds = seg >= ranges[r].first && seg < ranges[r].end;
        if (holds)
            assert_int_not_equal(h2[r], h[0][r]);
        else
            assert_int_equal(h2[r], h[0][r]);
        assert_int_equal(n2[r], n[0][r]); /* the same keys */
    }

    /* The segment's keys: the same on both, one hash apart: key-7's. */
    static char k0[KEYS][64], k2[KEYS][64];
    size_t l0[KEYS], l2[KEYS], c0 = 0, c2 = 0;
    uint64_t hs0[KEYS], hs2[KEYS];
    kvi_bytes none = {NULL, 0};
    assert_false(keys_of(w, 0, seg, seg + 1, none, 100, k0, l0, hs0, &c0));
    assert_false(keys_of(w, 2, seg, seg + 1, none, 100, k2, l2, hs2, &c2));
    assert_true(c0 >= 1);
    assert_int_equal(c0, c2);
    int differing = 0;
    for (size_t k = 0; k < c0; k++) {
        assert_int_equal(l0[k], l2[k]);
        assert_memory_equal(k0[k], k2[k], l0[k]);
        if (hs0[k] != hs2[k]) {
            differing++;
            assert_int_equal(l0[k], KVI_TOKEN_SIZE + 5);
            assert_memory_equal(k0[k] + KVI_TOKEN_SIZE, "key-7", 5);
        }
    }
    assert_int_equal(differing, 1);
}

static void parts_answer_as_their_ranges_would(void **state)
{
    world *w = *state;
    write_keys(w);
    /* Two ranges cut 16 ways: the same figures as the 32 parts asked one
     * by one. */
    kvi_ae_range two[2] = {{0, SEGMENTS / 2}, {SEGMENTS / 2, SEGMENTS}};
    kvi_ae_range parts[32];
    assert_int_equal(kvi_ae_parts(parts, 32, two, 2, 16), 32);
    uint64_t hp[32], hr[32];
    uint32_t np[32], nr[32];
    assert_int_equal(digest_parts(w, 1, two, 2, 16, 32, hp, np), KV_OK);
    assert_int_equal(digest_of(w, 1, parts, 32, hr, nr), KV_OK);
    assert_memory_equal(hp, hr, sizeof hp);
    assert_memory_equal(np, nr, sizeof np);
    uint32_t total = 0;
    for (int i = 0; i < 32; i++)
        total += np[i];
    assert_int_equal(total, KEYS);
}

static void records_come_with_their_keys_when_asked(void **state)
{
    world *w = *state;
    write_keys(w);
    kvi_ae_keys_request kr = {BITS, 0, SEGMENTS, {NULL, 0}, KVI_AE_MAX_KEYS,
                              KVI_AE_KEYS_RECORDS};
    kvi_buf req = {0}, answer = {0};
    kvi_ae_keys_request_encode(&req, &kr);
    assert_int_equal(kvi_client_value_call(w->to[0]->client, KVI_OP_AE_KEYS, req.data, req.len,
                                   &answer), KV_OK);
    uint32_t count;
    int more;
    kvi_reader items;
    assert_int_equal(kvi_ae_keys_answer_check(&count, &more, &items, answer.data, answer.len, 1),
                     0);
    /* Read as a list without records, the same bytes are malformed. */
    assert_int_not_equal(kvi_ae_keys_answer_check(&count, &more, &items, answer.data,
                                                  answer.len, 0), 0);
    assert_int_equal(kvi_ae_keys_answer_check(&count, &more, &items, answer.data, answer.len, 1),
                     0);
    assert_int_equal(count, KEYS);
    assert_false(more);
    for (uint32_t k = 0; k < count; k++) {
        kvi_bytes skey, rec;
        uint64_t hash;
        kvi_ae_keys_answer_next(&items, &skey, &hash, &rec);
        /* The record is the key's state, whole, and hashes to what the
         * answer says. */
        static kvi_state st;
        assert_int_equal(kvi_state_decode(&st, rec.data, rec.len, kvi_get_be64(skey.data)),
                         KV_OK);
        assert_int_equal(st.n, 1);
        assert_memory_equal(st.sibs[0].value, "v", 1);
        assert_true(hash == kvi_entry_hash(skey.data, skey.len, rec.data, rec.len));
    }
    kvi_buf_free(&req);
    kvi_buf_free(&answer);
}

static void keys_page_in_order_over_every_segment(void **state)
{
    world *w = *state;
    write_keys(w);
    static char keys[KEYS + 1][64];
    size_t lens[KEYS + 1], n = 0;
    uint64_t hashes[KEYS + 1];
    kvi_bytes after = {NULL, 0};
    int pages = 0;
    for (int more = 1; more && pages < 100; pages++) {
        size_t before = n;
        more = keys_of(w, 1, 0, SEGMENTS, after, 50, keys, lens, hashes, &n);
        if (n > before)
            after = (kvi_bytes){(const unsigned char *)keys[n - 1], lens[n - 1]};
        assert_true(n <= KEYS);
    }
    assert_int_equal(n, KEYS);
    assert_true(pages >= 4);
    for (size_t k = 1; k < n; k++) {
        size_t common = lens[k - 1] < lens[k] ? lens[k - 1] : lens[k];
        int c = memcmp(keys[k - 1], keys[k], common);
        assert_true(c < 0 || (c == 0 && lens[k - 1] < lens[k]));
    }
}

/* Node i's digest over every segment, as one range. */
static void whole_digest(world *w, int i, uint64_t *hash, uint32_t *keys)
{
    kvi_ae_range all = {0, SEGMENTS};
    assert_int_equal(digest_of(w, i, &all, 1, hash, keys), KV_OK);
}

/* Starts a repair round on node i and waits (bounded) until it has ended;
 * returns node i's description then (malloc'd). */
static char *repair_and_wait(world *w, int i)
{
    char *report = NULL;
    assert_int_equal(kv_repair(&report, w->nodes.node[i], "ignored"), KV_OK);
    assert_non_null(strstr(report, "\"status\":\"OK\""));
    const char *r = strstr(report, "\"round\":");
    assert_non_null(r);
    char want[64];
    snprintf(want, sizeof want, "\"round\":{\"id\":%ld,\"running\":false", strtol(r + 8, NULL, 10));
    kv_string_free(report);
    for (int tries = 0; tries < 600; tries++) {
        char *json = NULL;
        assert_int_equal(kv_cluster_describe(&json, w->nodes.node[i]), KV_OK);
        if (strstr(json, want))
            return json;
        kv_string_free(json);
        sleep_ms(50);
    }
    fail_msg("node %d's repair round did not end within 30 s", i + 1);
    return NULL;
}

static uint64_t figure(const char *json, const char *name)
{
    const char *p = strstr(json, name);
    assert_non_null(p);
    return strtoull(p + strlen(name), NULL, 10);
}

static void a_repair_round_makes_the_replicas_equal(void **state)
{
    world *w = *state;
    write_keys(w);
    /* key-7 changed on the third node alone (a new sibling merged there),
     * and a key the first node alone holds. */
    static kvi_state st;
    kvi_buf holder = {0};
    assert_int_equal(kvi_client_get_state(w->to[2]->client, &st, &holder, "key-7", 5), KV_OK);
    kvi_vv seen = st.clock;
    kvi_sibling x = {.value = (const unsigned char *)"diverged", .value_len = 8,
                     .write_ms = 1000};
    assert_int_equal(kvi_state_write(&st, &seen, "n3", &x), KV_OK);
    assert_int_equal(kvi_client_replicate(w->to[2]->client, NULL, "key-7", 5, &st), KV_OK);
    kvi_buf_free(&holder);
    kvi_state_init(&st);
    kvi_sibling y = {.value = (const unsigned char *)"lonely", .value_len = 6, .write_ms = 2000};
    assert_int_equal(kvi_state_write(&st, NULL, "n1", &y), KV_OK);
    assert_int_equal(kvi_client_replicate(w->to[0]->client, NULL, "only-on-1", 9, &st), KV_OK);

    uint64_t h[NODES];
    uint32_t k[NODES];
    for (int i = 0; i < NODES; i++)
        whole_digest(w, i, &h[i], &k[i]);
    assert_int_equal(k[0], KEYS + 1);
    assert_int_equal(k[1], KEYS);
    assert_int_not_equal(h[1], h[2]);

    /* One round on the first node: it exchanges with each member in turn,
     * so it ends holding what all held (key-7's new value, taken in from
     * n3), and each member holds at least what it held when their
     * exchange ran (only-on-1 everywhere). */
    char *json = repair_and_wait(w, 0);
    assert_int_equal(figure(json, "\"peers\":"), 2);
    assert_int_equal(figure(json, "\"peersFailed\":"), 0);
    assert_true(figure(json, "\"keysReceived\":") >= 1);
    assert_true(figure(json, "\"keysSent\":") >= 3);
    assert_true(figure(json, "\"lastFullRepairMs\":") > 0);
    /* Per member: when the ranges the two share were last compared. */
    const char *members = strstr(json, "\"members\":[");
    assert_non_null(members);
    assert_non_null(strstr(members, "{\"nodeId\":\"n2\",\"lastCleanExchangeMs\":"));
    assert_non_null(strstr(members, "{\"nodeId\":\"n3\",\"lastCleanExchangeMs\":"));
    assert_true(figure(strstr(members, "\"n2\""), "\"lastCleanExchangeMs\":") > 0);
    kv_string_free(json);
    kvi_buf_reset(&holder);
    assert_int_equal(kvi_client_get_state(w->to[0]->client, &st, &holder, "key-7", 5), KV_OK);
    assert_int_equal(st.n, 1); /* n3's write superseded the first */
    assert_memory_equal(st.sibs[0].value, "diverged", 8);
    for (int i = 0; i < NODES; i++) {
        whole_digest(w, i, &h[i], &k[i]);
        assert_int_equal(k[i], KEYS + 1);
    }
    assert_true(h[0] == h[2] || h[0] == h[1]); /* the member asked last is equal */

    /* A second round leaves every replica equal; a third finds nothing to
     * send or take. */
    kv_string_free(repair_and_wait(w, 0));
    for (int i = 0; i < NODES; i++) {
        whole_digest(w, i, &h[i], &k[i]);
        assert_true(h[i] == h[0]);
    }
    kvi_buf_reset(&holder);
    assert_int_equal(kvi_client_get_state(w->to[1]->client, &st, &holder, "key-7", 5), KV_OK);
    assert_int_equal(st.n, 1); /* read from node 2's store alone */
    assert_memory_equal(st.sibs[0].value, "diverged", 8);
    kvi_buf_free(&holder);
    json = repair_and_wait(w, 0);
    assert_int_equal(figure(json, "\"keysRepaired\":"), 0);
    assert_int_equal(figure(json, "\"peersFailed\":"), 0);
    kv_string_free(json);
}

/* The background verification finds a digest segment that differs from
 * the data (as bits rotting on disk under an unchanged digest would make
 * it) and corrects it. */
static void the_verification_corrects_a_digest_that_differs_from_the_data(void **state)
{
    world *w = *state;
    write_keys(w);
    uint64_t h[NODES];
    uint32_t k[NODES];
    for (int i = 0; i < NODES; i++)
        whole_digest(w, i, &h[i], &k[i]);
    assert_true(h[0] == h[1]);
    kvi_digest *d = kvi_store_digest(kvi_embedded_store(kvi_node_store(w->nodes.node[0]->node)));
    size_t seg = segment_of("key-7");
    uint64_t sh, sc;
    kvi_digest_range(d, seg, seg + 1, &sh, &sc);
    kvi_digest_set(d, seg, sh ^ 0x5a5a5a5a5a5a5a5aull, sc + 1);
    whole_digest(w, 0, &h[0], &k[0]);
    assert_true(h[0] != h[1]);
    uint64_t corrected = 0;
    for (int tries = 0; tries < 600 && !corrected; tries++) {
        char *json = NULL;
        assert_int_equal(kv_cluster_describe(&json, w->nodes.node[0]), KV_OK);
        corrected = figure(json, "\"digestCorrected\":");
        kv_string_free(json);
        if (!corrected)
            sleep_ms(100);
    }
    assert_int_equal(corrected, 1);
    whole_digest(w, 0, &h[0], &k[0]);
    assert_true(h[0] == h[1]);
    assert_int_equal(k[0], KEYS);
}

static void kv_repair_on_a_client_starts_a_round_on_each_member(void **state)
{
    world *w = *state;
    const char *eps[NODES];
    for (int i = 0; i < NODES; i++)
        eps[i] = w->nodes.listen[i];
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.request_timeout_ms = 5000;
    kv *db;
    assert_int_equal(kv_client_open(&db, eps, NODES, &co), KV_OK);
    kv_value *v = NULL; /* a first call, so that the client knows the ring */
    assert_int_equal(kv_get(&v, db, "x", 1, NULL), KV_ENOTFOUND);
    char *report = NULL;
    assert_int_equal(kv_repair(&report, db, NULL), KV_OK);
    for (int i = 0; i < NODES; i++) {
        char want[32];
        snprintf(want, sizeof want, "\"nodeId\":\"n%d\",\"status\":\"OK\"", i + 1);
        assert_non_null(strstr(report, want));
    }
    kv_string_free(report);
    assert_int_equal(kv_repair(&report, db, "n2"), KV_OK);
    assert_non_null(strstr(report, "\"n2\""));
    assert_null(strstr(report, "\"n1\""));
    kv_string_free(report);
    assert_int_equal(kv_repair(&report, db, "nobody"), KV_EINVAL);
    kv_string_free(report);
    assert_int_equal(kv_repair(NULL, db, ""), KV_EINVAL);
    kv_close(db);
    /* A client with no view asks the one node it reaches. */
    assert_int_equal(kv_repair(&report, w->to[2], NULL), KV_OK);
    assert_non_null(strstr(report, "\"nodeId\":\"n3\""));
    kv_string_free(report);
}

static void bad_requests_are_refused_and_the_node_goes_on(void **state)
{
    world *w = *state;
    kvi_client *c = w->to[0]->client;
    kvi_buf req = {0}, answer = {0};
    kvi_ae_range all = {0, 1u << 17};
    kvi_ae_digest_request_encode(&req, 17, 1, &all, 1);
    assert_int_equal(kvi_client_value_call(c, KVI_OP_AE_DIGEST, req.data, req.len, &answer), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "2^17"));
    const char junk[] = "not a digest request";
    assert_int_equal(kvi_client_value_call(c, KVI_OP_AE_DIGEST, junk, sizeof junk, &answer), KV_EINVAL);
    assert_int_equal(kvi_client_value_call(c, KVI_OP_AE_KEYS, junk, sizeof junk, &answer), KV_EINVAL);
    assert_int_equal(kvi_client_value_call(c, KVI_OP_AE_KEYS, NULL, 0, &answer), KV_EINVAL);
    /* Over the limit of ranges in one request, and a range past the end
     * of the digest. */
    static kvi_ae_range many[KVI_AE_MAX_RANGES + 1];
    for (uint32_t i = 0; i <= KVI_AE_MAX_RANGES; i++)
        many[i] = (kvi_ae_range){i, i + 1};
    kvi_buf_reset(&req);
    kvi_ae_digest_request_encode(&req, BITS, 1, many, KVI_AE_MAX_RANGES + 1);
    assert_int_equal(kvi_client_value_call(c, KVI_OP_AE_DIGEST, req.data, req.len, &answer), KV_EINVAL);
    /* Few ranges, but more parts than an answer may hold. */
    kvi_ae_range wide[KVI_AE_MAX_RANGES / 16 + 1];
    for (uint32_t i = 0; i < KVI_AE_MAX_RANGES / 16 + 1; i++)
        wide[i] = (kvi_ae_range){i * 16, i * 16 + 16};
    kvi_buf_reset(&req);
    kvi_ae_digest_request_encode(&req, BITS, 16, wide, KVI_AE_MAX_RANGES / 16 + 1);
    assert_int_equal(kvi_client_value_call(c, KVI_OP_AE_DIGEST, req.data, req.len, &answer), KV_EINVAL);
    kvi_ae_range past = {0, SEGMENTS + 1};
    kvi_buf_reset(&req);
    kvi_ae_digest_request_encode(&req, BITS, 1, &past, 1);
    assert_int_equal(kvi_client_value_call(c, KVI_OP_AE_DIGEST, req.data, req.len, &answer), KV_EINVAL);
    /* A key to start after that lies outside the segments asked for. */
    unsigned char outside[KVI_TOKEN_SIZE + 1];
    kvi_put_be64(outside, UINT64_MAX);
    outside[KVI_TOKEN_SIZE] = 'k';
    kvi_ae_keys_request kr = {BITS, 0, 1, {outside, sizeof outside}, 10, 0};
    kvi_buf_reset(&req);
    kvi_ae_keys_request_encode(&req, &kr);
    assert_int_equal(kvi_client_value_call(c, KVI_OP_AE_KEYS, req.data, req.len, &answer), KV_EINVAL);
    assert_non_null(strstr(kv_error_last(), "outside"));
    /* And the node answers a good one after all that. */
    /* An unknown flag of a key list request. */
    kr = (kvi_ae_keys_request){BITS, 0, 1, {NULL, 0}, 10, 2};
    kvi_buf_reset(&req);
    kvi_ae_keys_request_encode(&req, &kr);
    assert_int_equal(kvi_client_value_call(c, KVI_OP_AE_KEYS, req.data, req.len, &answer), KV_EINVAL);
    uint64_t h;
    uint32_t n;
    kvi_ae_range one = {0, SEGMENTS};
    assert_int_equal(digest_of(w, 0, &one, 1, &h, &n), KV_OK);
    kvi_buf_free(&req);
    kvi_buf_free(&answer);
}

static void a_node_alone_keeps_no_digest(void **state)
{
    (void)state;
    char *dir = test_tempdir();
    kv_open_options store = KV_OPEN_OPTIONS_INIT;
    store.sync = KV_SYNC_NONE;
    kv_node_options o = KV_NODE_OPTIONS_INIT;
    o.data_dir = dir;
    o.node_id = "alone";
    o.listen_addr = "127.0.0.1:0";
    o.store = &store;
    kv *node;
    assert_int_equal(kv_node_start(&node, &o), KV_OK);
    int port;
    kv_node_ports(&port, NULL, node);
    char ep[64];
    snprintf(ep, sizeof ep, "127.0.0.1:%d", port);
    const char *eps[] = {ep};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.manual_loop = 1;
    kv *c;
    assert_int_equal(kv_client_open(&c, eps, 1, &co), KV_OK);
    kvi_buf req = {0}, answer = {0};
    kvi_ae_range all = {0, SEGMENTS};
    kvi_ae_digest_request_encode(&req, BITS, 1, &all, 1);
    assert_int_equal(kvi_client_value_call(c->client, KVI_OP_AE_DIGEST, req.data, req.len, &answer),
                     KV_ENOTSUP);
    /* Nothing to repair from, on the node handle and through a client. */
    assert_int_equal(kv_repair(NULL, node, NULL), KV_ENOTSUP);
    assert_int_equal(kv_repair(NULL, c, NULL), KV_ENOTSUP);
    kvi_buf_free(&req);
    kvi_buf_free(&answer);
    kv_close(c);
    kv_close(node);
    test_rmtree(dir);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(replicas_agree_and_a_key_changed_on_one_is_found),
        T(keys_page_in_order_over_every_segment),
        T(parts_answer_as_their_ranges_would),
        T(records_come_with_their_keys_when_asked),
        T(a_repair_round_makes_the_replicas_equal),
        T(kv_repair_on_a_client_starts_a_round_on_each_member),
        T(the_verification_corrects_a_digest_that_differs_from_the_data),
        T(bad_requests_are_refused_and_the_node_goes_on),
        cmocka_unit_test(a_node_alone_keeps_no_digest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
