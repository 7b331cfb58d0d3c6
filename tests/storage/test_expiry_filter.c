/* The compaction filter's decisions, record by record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <kv/common.h>
#include "storage/expiry_filter.h"
#include "format/state.h"
#include "format/record.h"

typedef struct encoded {
    unsigned char key[KVI_TOKEN_SIZE + 1];
    unsigned char value[KVI_RECORD_OVERHEAD + 4];
    size_t value_len;
} encoded;

static void make(encoded *e, int tombstone, uint64_t expiry_ms, uint64_t write_ms)
{
    uint64_t token = kvi_key_token("k", 1);
    kvi_storage_key(e->key, token, "k", 1);
    kvi_record rec = {.version = 9, .expiry_ms = expiry_ms, .write_ms = write_ms,
                      .tombstone = tombstone,
                      .value = tombstone ? NULL : (const unsigned char *)"data",
                      .value_len = tombstone ? 0 : 4};
    kvi_record_encode(e->value, &rec, token);
    e->value_len = kvi_record_size(rec.value_len);
}

static kvi_expiry_action decide(const encoded *e, uint64_t now, uint64_t grace)
{
    return kvi_expiry_decide((const char *)e->key, sizeof e->key,
                             (const char *)e->value, e->value_len, now, grace);
}

static void live_values_are_kept(void **state)
{
    (void)state;
    encoded e;
    make(&e, 0, 0, 100);
    assert_int_equal(decide(&e, 1000000, 0), KVI_EXPIRY_KEEP);
    make(&e, 0, 5000, 100);
    assert_int_equal(decide(&e, 4999, 0), KVI_EXPIRY_KEEP);
}

static void expired_values_become_tombstones_then_go(void **state)
{
    (void)state;
    encoded e;
    make(&e, 0, 5000, 100);
    assert_int_equal(decide(&e, 5000, 1000), KVI_EXPIRY_TO_TOMBSTONE);
    assert_int_equal(decide(&e, 5999, 1000), KVI_EXPIRY_TO_TOMBSTONE);
    assert_int_equal(decide(&e, 6000, 1000), KVI_EXPIRY_DROP);
    assert_int_equal(decide(&e, 5000, 0), KVI_EXPIRY_DROP);
}

static void tombstones_go_after_grace(void **state)
{
    (void)state;
    encoded e;
    make(&e, 1, 0, 2000);
    assert_int_equal(decide(&e, 2999, 1000), KVI_EXPIRY_KEEP);
    assert_int_equal(decide(&e, 3000, 1000), KVI_EXPIRY_DROP);
}

static void corrupt_and_foreign_records_are_kept(void **state)
{
    (void)state;
    encoded e;
    make(&e, 1, 0, 2000);
    e.value[3] ^= 1;
    assert_int_equal(decide(&e, UINT64_MAX / 2, 0), KVI_EXPIRY_KEEP);
    assert_int_equal(kvi_expiry_decide("short", 5, "x", 1, 1, 0), KVI_EXPIRY_KEEP);
}


/* Replicated states go whole once every sibling is dead past the grace. */
static void replicated_states_go_when_every_sibling_is_dead(void **state)
{
    (void)state;
    static kvi_state s;
    kvi_state_init(&s);
    kvi_sibling live = {.value = (const unsigned char *)"v", .value_len = 1, .write_ms = 100,
                        .expiry_ms = 5000};
    kvi_sibling gone = {.tombstone = 1, .write_ms = 2000};
    assert_int_equal(kvi_state_write(&s, NULL, "n1", &live), KV_OK);
    assert_int_equal(kvi_state_write(&s, NULL, "n2", &gone), KV_OK);
    unsigned char key[KVI_TOKEN_SIZE + 1];
    uint64_t token = kvi_key_token("k", 1);
    kvi_storage_key(key, token, "k", 1);
    kvi_buf b = {0};
    kvi_state_encode(&b, &s, token);
    /* The value lives until 5000: kept whatever the tombstone's age. */
    assert_int_equal(kvi_expiry_decide((const char *)key, sizeof key, (const char *)b.data, b.len,
                                       4999, 0), KVI_EXPIRY_KEEP);
    /* Both dead, but the expiry is younger than the grace: kept. */
    assert_int_equal(kvi_expiry_decide((const char *)key, sizeof key, (const char *)b.data, b.len,
                                       5500, 1000), KVI_EXPIRY_KEEP);
    /* Both dead past the grace: dropped. */
    assert_int_equal(kvi_expiry_decide((const char *)key, sizeof key, (const char *)b.data, b.len,
                                       6000, 1000), KVI_EXPIRY_DROP);
    /* A damaged state is kept as evidence. */
    b.data[5] ^= 1;
    assert_int_equal(kvi_expiry_decide((const char *)key, sizeof key, (const char *)b.data, b.len,
                                       99999, 0), KVI_EXPIRY_KEEP);
    kvi_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(live_values_are_kept),
        cmocka_unit_test(expired_values_become_tombstones_then_go),
        cmocka_unit_test(tombstones_go_after_grace),
        cmocka_unit_test(corrupt_and_foreign_records_are_kept),
        cmocka_unit_test(replicated_states_go_when_every_sibling_is_dead),
    };
    return cmocka_run_group_tests_name("storage.expiry_filter", tests, NULL, NULL);
}
