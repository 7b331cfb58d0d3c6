/* Anti-entropy's digest: the entry hash ignores sibling order and sees
 * every replicated field; the segment table combines, round-trips and
 * refuses damaged bytes; and a store that keeps one has it equal to a
 * recomputation from its data after any mix of puts, batches (a key twice
 * in one), replicated states, expiries and compactions, across a clean
 * reopen and after a crash (a child that never closes). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include <kv/kv.h>
#include "helpers.h"
#include "format/entry_hash.h"
#include "format/record.h"
#include "format/state.h"
#include "storage/digest.h"
#include "storage/store.h"
#include "util/buf.h"
#include "util/endian.h"

/* ------------------------------------------------------------ encodings */

static size_t skey_of(unsigned char *out, const char *key)
{
    size_t len = strlen(key);
    kvi_storage_key(out, kvi_key_token(key, len), key, len);
    return KVI_TOKEN_SIZE + len;
}

/* s encoded for key into b (reset first). */
static void encode_state(kvi_buf *b, const kvi_state *s, const char *key)
{
    kvi_buf_reset(b);
    kvi_state_encode(b, s, kvi_key_token(key, strlen(key)));
    assert_false(b->failed);
}

static uint64_t state_hash(const char *key, const kvi_state *s)
{
    unsigned char skey[300];
    size_t n = skey_of(skey, key);
    kvi_buf b = {0};
    encode_state(&b, s, key);
    uint64_t h = kvi_entry_hash(skey, n, b.data, b.len);
    kvi_buf_free(&b);
    return h;
}

/* Two concurrent siblings, from n1 and n2, over a first write. */
static void two_siblings(kvi_state *s)
{
    kvi_state_init(s);
    kvi_sibling base = {.value = (const unsigned char *)"base", .value_len = 4, .write_ms = 1};
    assert_int_equal(kvi_state_write(s, NULL, "n1", &base), KV_OK);
    kvi_vv seen = s->clock;
    kvi_sibling a = {.value = (const unsigned char *)"from-n1", .value_len = 7, .write_ms = 2};
    kvi_sibling b = {.value = (const unsigned char *)"from-n2", .value_len = 7, .write_ms = 3,
                     .expiry_ms = 99};
    assert_int_equal(kvi_state_write(s, &seen, "n1", &a), KV_OK);
    assert_int_equal(kvi_state_write(s, &seen, "n2", &b), KV_OK);
    assert_int_equal(s->n, 2);
}

static void sibling_order_does_not_count_and_every_field_does(void **state)
{
    (void)state;
    static kvi_state s, swapped, changed;
    two_siblings(&s);
    swapped = s;
    swapped.sibs[0] = s.sibs[1];
    swapped.sibs[1] = s.sibs[0];
    uint64_t h = state_hash("k", &s);
    assert_int_equal(state_hash("k", &swapped), h);
    assert_int_not_equal(state_hash("other", &s), h);

    /* Each replicated field of a sibling, and the clock. */
    for (int field = 0; field < 6; field++) {
        changed = s;
        kvi_sibling *x = &changed.sibs[1];
        switch (field) {
        case 0: x->dot.counter++; break;
        case 1: x->version++; break;
        case 2: x->expiry_ms++; break;
        case 3: x->write_ms++; break;
        case 4: x->tombstone = 1; x->value_len = 0; break;
        case 5: changed.clock.entries[0].counter++; break;
        }
        assert_int_not_equal(state_hash("k", &changed), h);
    }
    /* The value is not hashed: a dot names one write and its value. */
    changed = s;
    changed.sibs[0].value = (const unsigned char *)"other value";
    changed.sibs[0].value_len = 11;
    assert_int_equal(state_hash("k", &changed), h);
}

static void a_damaged_record_hashes_as_corrupt(void **state)
{
    (void)state;
    static kvi_state s;
    two_siblings(&s);
    unsigned char skey[64];
    size_t n = skey_of(skey, "k");
    kvi_buf b = {0};
    encode_state(&b, &s, "k");
    uint64_t corrupt = kvi_entry_hash_corrupt(skey, n);
    assert_int_not_equal(kvi_entry_hash(skey, n, b.data, b.len), corrupt);
    b.data[b.len / 2] ^= 1; /* the checksum no longer matches */
    assert_int_equal(kvi_entry_hash(skey, n, b.data, b.len), corrupt);
    assert_int_equal(kvi_entry_hash(skey, n, b.data, 3), corrupt); /* truncated */
    assert_int_equal(kvi_entry_hash(skey, 3, b.data, b.len), kvi_entry_hash_corrupt(skey, 3));
    kvi_buf_free(&b);
}

static void format_1_hash_survives_the_expiry_rewrite(void **state)
{
    (void)state;
    unsigned char skey[64];
    size_t n = skey_of(skey, "t");
    uint64_t token = kvi_key_token("t", 1);
    unsigned char live[KVI_RECORD_OVERHEAD + 3], dead[KVI_RECORD_OVERHEAD];
    kvi_record r = {.version = 7, .expiry_ms = 1000, .write_ms = 10,
                    .value = (const unsigned char *)"abc", .value_len = 3};
    kvi_record_encode(live, &r, token);
    /* What the expiry filter writes in its place (expiry_filter.c). */
    kvi_record t = {.version = 7, .expiry_ms = 0, .write_ms = 1000, .tombstone = 1};
    kvi_record_encode(dead, &t, token);
    assert_int_equal(kvi_entry_hash(skey, n, live, sizeof live),
                     kvi_entry_hash(skey, n, dead, sizeof dead));
    r.version = 8;
    kvi_record_encode(live, &r, token);
    assert_int_not_equal(kvi_entry_hash(skey, n, live, sizeof live),
                         kvi_entry_hash(skey, n, dead, sizeof dead));
}

/* -------------------------------------------------------- the table */

static void segments_combine_and_round_trip(void **state)
{
    (void)state;
    assert_null(kvi_digest_new(KVI_DIGEST_MIN_BITS - 1));
    assert_null(kvi_digest_new(KVI_DIGEST_MAX_BITS + 1));
    kvi_digest *d = kvi_digest_new(8), *e = kvi_digest_new(8);
    assert_non_null(d);
    assert_int_equal(kvi_digest_segments(d), 256);
    assert_int_equal(kvi_digest_segment_of(d, UINT64_MAX), 255);
    assert_int_equal(kvi_digest_segment_of(d, 0x01ffffffffffffffull), 1);

    /* Two keys in segment 3, one in 200: then the first replaced, the
     * second removed. */
    uint64_t t3 = 3ull << 56, t200 = 200ull << 56;
    kvi_digest_change(d, t3, 0, 0, 1, 0x11);
    kvi_digest_change(d, t3 | 5, 0, 0, 1, 0x22);
    kvi_digest_change(d, t200, 0, 0, 1, 0x44);
    uint64_t h, c;
    kvi_digest_range(d, 3, 4, &h, &c);
    assert_int_equal(h, 0x33);
    assert_int_equal(c, 2);
    kvi_digest_change(d, t3, 1, 0x11, 1, 0x10);
    kvi_digest_change(d, t3 | 5, 1, 0x22, 0, 0);
    kvi_digest_range(d, 0, 256, &h, &c);
    assert_int_equal(h, 0x10 ^ 0x44);
    assert_int_equal(c, 2);
    kvi_digest_range(d, 4, 200, &h, &c); /* between them: nothing */
    assert_int_equal(h, 0);
    assert_int_equal(c, 0);

    /* The same changes in another order give the same table. */
    kvi_digest_change(e, t200, 0, 0, 1, 0x44);
    kvi_digest_change(e, t3, 0, 0, 1, 0x10);
    assert_true(kvi_digest_equal(d, e));
    kvi_digest_change(e, t3, 1, 0x10, 1, 0x12);
    assert_false(kvi_digest_equal(d, e));

    kvi_buf b = {0};
    kvi_digest_encode(d, &b);
    assert_false(b.failed);
    kvi_digest *back = NULL;
    assert_int_equal(kvi_digest_decode(&back, b.data, b.len), KV_OK);
    assert_true(kvi_digest_equal(d, back));
    kvi_digest_free(back);
    /* Damaged: any byte flipped, truncated, or bits out of range. */
    for (size_t at = 0; at < b.len; at += b.len / 7) {
        b.data[at] ^= 0x40;
        assert_int_equal(kvi_digest_decode(&back, b.data, b.len), KV_ECORRUPT);
        assert_null(back);
        b.data[at] ^= 0x40;
    }
    assert_int_equal(kvi_digest_decode(&back, b.data, b.len - 1), KV_ECORRUPT);
    assert_int_equal(kvi_digest_decode(&back, b.data, 5), KV_ECORRUPT);
    b.data[5] = KVI_DIGEST_MAX_BITS + 1;
    assert_int_equal(kvi_digest_decode(&back, b.data, b.len), KV_ECORRUPT);
    kvi_buf_free(&b);
    kvi_digest_free(d);
    kvi_digest_free(e);
}

/* ------------------------------------------------------- in a store */

#define BITS 6u
#define KEYS 300

static int open_at(kvi_store **out, const char *dir, unsigned bits, uint64_t grace_ms)
{
    kvi_store_config cfg = {.path = dir, .create_if_missing = 1, .sync = KV_SYNC_NONE,
                            .block_cache_bytes = 8 << 20, .row_cache_bytes = 1 << 20,
                            .grace_ms = grace_ms, .digest_bits = bits};
    return kvi_store_open(out, &cfg);
}

static int recompute_add(void *ctx, const void *key, size_t key_len, const void *value,
                         size_t value_len)
{
    kvi_digest_change(ctx, kvi_get_be64(key), 0, 0, 1,
                      kvi_entry_hash(key, key_len, value, value_len));
    return 0;
}

/* The store's digest equals one computed from scratch over its data. */
static void assert_digest_current(kvi_store *s)
{
    kvi_digest *fresh = kvi_digest_new(BITS);
    assert_non_null(fresh);
    assert_int_equal(kvi_store_data_scan(s, NULL, 0, recompute_add, fresh), KV_OK);
    assert_non_null(kvi_store_digest(s));
    assert_true(kvi_digest_equal(kvi_store_digest(s), fresh));
    kvi_digest_free(fresh);
}

/* A format-1 record of `key` with version v (expired when expiry_ms is in
 * the past) put one of three ways: a put, an unsynced put, or a batch that
 * also puts it once before with version v - 1. */
static void put_record(kvi_store *s, const char *key, uint64_t v, uint64_t expiry_ms, int how)
{
    unsigned char skey[64], rec[KVI_RECORD_OVERHEAD + 16];
    size_t n = skey_of(skey, key);
    uint64_t token = kvi_key_token(key, strlen(key));
    kvi_record r = {.version = v, .expiry_ms = expiry_ms, .write_ms = 5,
                    .value = (const unsigned char *)"value-of-sixteen", .value_len = 16};
    kvi_record_encode(rec, &r, token);
    if (how == 0) {
        assert_int_equal(kvi_store_put(s, skey, n, rec, sizeof rec), KV_OK);
    } else if (how == 1) {
        assert_int_equal(kvi_store_put_unsynced(s, skey, n, rec, sizeof rec), KV_OK);
    } else {
        unsigned char first[KVI_RECORD_OVERHEAD + 16];
        kvi_record f = r;
        f.version = v - 1;
        kvi_record_encode(first, &f, token);
        kvi_store_batch *b = kvi_store_batch_new(s);
        kvi_store_batch_put(b, skey, n, first, sizeof first);
        kvi_store_batch_put_paxos(b, skey, n, "promise", 7);
        kvi_store_batch_put(b, skey, n, rec, sizeof rec);
        assert_int_equal(kvi_store_write(s, b), KV_OK);
        kvi_store_batch_free(b);
    }
}

/* A replicated state with two siblings under `key`, both dead: a value
 * that expired at 2 ms after the epoch and a tombstone written at write_ms
 * (so a compaction may purge it whole). */
static void put_state(kvi_store *s, const char *key, uint64_t write_ms)
{
    static kvi_state st;
    kvi_state_init(&st);
    kvi_sibling a = {.value = (const unsigned char *)"a", .value_len = 1, .write_ms = write_ms,
                     .expiry_ms = 2};
    kvi_sibling t = {.tombstone = 1, .write_ms = write_ms};
    assert_int_equal(kvi_state_write(&st, NULL, "n1", &a), KV_OK);
    assert_int_equal(kvi_state_write(&st, NULL, "n2", &t), KV_OK);
    unsigned char skey[64];
    size_t n = skey_of(skey, key);
    kvi_buf b = {0};
    encode_state(&b, &st, key);
    kvi_store_batch *batch = kvi_store_batch_new(s);
    kvi_store_batch_put(batch, skey, n, b.data, b.len);
    assert_int_equal(kvi_store_write_unsynced(s, batch), KV_OK);
    kvi_store_batch_free(batch);
    kvi_buf_free(&b);
}

/* A seeded mix: every key written a few times, each way; some expired,
 * some purged (a present key or an absent one). */
static void random_writes(kvi_store *s, unsigned seed, int rounds)
{
    srand(seed);
    char key[32];
    for (int i = 0; i < rounds; i++) {
        snprintf(key, sizeof key, "key-%d", rand() % KEYS);
        int kind = rand() % 5;
        if (kind == 4) {
            unsigned char skey[64];
            size_t n = skey_of(skey, key);
            assert_int_equal(kvi_store_purge(s, skey, n), KV_OK);
        } else if (kind == 3) {
            put_state(s, key, (uint64_t)(rand() % 3)); /* long dead: past any grace */
        } else {
            put_record(s, key, 2 + (uint64_t)(rand() % 1000), rand() % 2 ? 1 : 0, kind);
        }
    }
}

static void a_store_keeps_its_digest_current(void **state)
{
    (void)state;
    char *dir = test_tempdir();
    kvi_store *s;
    assert_int_equal(open_at(&s, dir, BITS, 1), KV_OK);
    assert_digest_current(s); /* empty */
    /* A batch of Paxos records only: nothing for the digest (and, under
     * UBSan, no walk over an empty buffer). */
    kvi_store_batch *paxos_only = kvi_store_batch_new(s);
    kvi_store_batch_put_paxos(paxos_only, "\0\0\0\0\0\0\0\1p", 9, "promise", 7);
    assert_int_equal(kvi_store_write(s, paxos_only), KV_OK);
    kvi_store_batch_free(paxos_only);
    assert_digest_current(s);
    random_writes(s, 1, 2000);
    assert_digest_current(s);

    /* A compaction may turn expired values into tombstones, but with a
     * digest it drops nothing whole: the long-dead states are still there. */
    uint64_t before_h, before_n, after_h, after_n;
    kvi_digest_range(kvi_store_digest(s), 0, 1u << BITS, &before_h, &before_n);
    assert_int_equal(kvi_store_compact(s), KV_OK);
    assert_digest_current(s);
    kvi_digest_range(kvi_store_digest(s), 0, 1u << BITS, &after_h, &after_n);
    assert_int_equal(after_n, before_n);
    assert_int_equal(after_h, before_h);

    /* A clean close keeps it; the reopened store trusts it, and it is
     * current. While the store is open, nothing of it stays on disk. */
    kvi_store_close(s);
    assert_int_equal(open_at(&s, dir, BITS, 1), KV_OK);
    char *kept;
    size_t kept_len;
    assert_int_equal(kvi_store_meta_get(s, "kv.digest", &kept, &kept_len), KV_ENOTFOUND);
    assert_digest_current(s);
    random_writes(s, 2, 500);
    assert_digest_current(s);
    kvi_store_close(s);

    /* A crash: a child writes and exits without closing. The next open
     * finds no digest kept and builds it from the data. */
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        kvi_store *c;
        if (open_at(&c, dir, BITS, 1) != KV_OK)
            _exit(1);
        random_writes(c, 3, 500);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(open_at(&s, dir, BITS, 1), KV_OK);
    assert_digest_current(s);
    random_writes(s, 4, 300);
    assert_digest_current(s);
    kvi_store_close(s);

    /* Reopened with another size: the kept one is not used, and the new
     * one is built. */
    assert_int_equal(open_at(&s, dir, BITS + 1, 1), KV_OK);
    assert_int_equal(kvi_digest_bits(kvi_store_digest(s)), BITS + 1);
    kvi_store_close(s);
    test_rmtree(dir);
}

/* Without a kept digest, a store opened to build it in the background
 * starts with an empty one that is not ready (an empty store's is ready),
 * and recomputing every segment, with writes between the runs, gives the
 * data's figures. */
static void a_digest_built_in_the_background_ends_equal_to_the_data(void **state)
{
    (void)state;
    char *dir = test_tempdir();
    kvi_store_config cfg = {.path = dir, .create_if_missing = 1, .sync = KV_SYNC_NONE,
                            .block_cache_bytes = 8 << 20, .row_cache_bytes = 1 << 20,
                            .grace_ms = 1, .digest_bits = BITS, .digest_in_background = 1};
    kvi_store *s;
    assert_int_equal(kvi_store_open(&s, &cfg), KV_OK);
    assert_true(kvi_digest_ready(kvi_store_digest(s))); /* empty: nothing to build */
    random_writes(s, 7, 1500);
    assert_digest_current(s);
    /* A crash (no clean close), by a child. */
    kvi_store_close(s);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        kvi_store *c;
        if (kvi_store_open(&c, &cfg) != KV_OK)
            _exit(1);
        random_writes(c, 8, 300);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(kvi_store_open(&s, &cfg), KV_OK);
    kvi_digest *d = kvi_store_digest(s);
    assert_false(kvi_digest_ready(d));
    uint64_t h, n;
    kvi_digest_range(d, 0, 1u << BITS, &h, &n);
    assert_int_equal(n, 0);
    /* The build, run by run, with writes between (the node holds every key
     * lock around each run; here nothing else runs meanwhile). */
    static uint64_t hashes[1u << BITS], counts[1u << BITS];
    const uint32_t run = 100;
    srand(9);
    for (uint32_t first = 0; first < (1u << BITS); first += run) {
        uint32_t end = first + run > (1u << BITS) ? (1u << BITS) : first + run;
        assert_int_equal(kvi_store_digest_recompute(s, first, end, hashes, counts), KV_OK);
        for (uint32_t g = first; g < end; g++)
            kvi_digest_set(d, g, hashes[g - first], counts[g - first]);
        random_writes(s, (unsigned)first + 10, 3);
    }
    kvi_digest_set_ready(d, 1);
    assert_digest_current(s);
    /* Out of range: refused. */
    assert_int_equal(kvi_store_digest_recompute(s, 5, 5, hashes, counts), KV_EINVAL);
    assert_int_equal(kvi_store_digest_recompute(s, 0, (1u << BITS) + 1, hashes, counts),
                     KV_EINVAL);
    /* A store closed while its digest is not ready keeps none. */
    kvi_digest_set_ready(d, 0);
    kvi_store_close(s);
    assert_int_equal(kvi_store_open(&s, &cfg), KV_OK);
    assert_false(kvi_digest_ready(kvi_store_digest(s)));
    kvi_store_close(s);
    test_rmtree(dir);
}

static void without_a_digest_compaction_still_purges(void **state)
{
    (void)state;
    char *dir = test_tempdir();
    kvi_store *s;
    assert_int_equal(open_at(&s, dir, 0, 1), KV_OK);
    assert_null(kvi_store_digest(s));
    put_state(s, "gone", 1);
    assert_int_equal(kvi_store_compact(s), KV_OK);
    unsigned char skey[64];
    size_t n = skey_of(skey, "gone");
    kvi_slice got;
    assert_int_equal(kvi_store_get(s, skey, n, &got), KV_ENOTFOUND);
    kvi_store_close(s);

    /* The same with a digest: kept. */
    assert_int_equal(open_at(&s, dir, BITS, 1), KV_OK);
    put_state(s, "kept", 1);
    assert_int_equal(kvi_store_compact(s), KV_OK);
    n = skey_of(skey, "kept");
    assert_int_equal(kvi_store_get(s, skey, n, &got), KV_OK);
    kvi_slice_release(&got);
    assert_digest_current(s);
    kvi_store_close(s);
    test_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sibling_order_does_not_count_and_every_field_does),
        cmocka_unit_test(a_damaged_record_hashes_as_corrupt),
        cmocka_unit_test(format_1_hash_survives_the_expiry_rewrite),
        cmocka_unit_test(segments_combine_and_round_trip),
        cmocka_unit_test(a_store_keeps_its_digest_current),
        cmocka_unit_test(a_digest_built_in_the_background_ends_equal_to_the_data),
        cmocka_unit_test(without_a_digest_compaction_still_purges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
