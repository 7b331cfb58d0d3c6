/* The record codec: round trips, and every kind of damage is caught. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <kv/common.h>
#include "format/record.h"

static void round_trip(void **state)
{
    (void)state;
    const char value[] = "hello\0world";
    kvi_record in = {.version = 42, .expiry_ms = 1234567, .write_ms = 999,
                     .tombstone = 0, .value = (const unsigned char *)value,
                     .value_len = sizeof value};
    unsigned char buf[128];
    uint64_t token = kvi_key_token("k", 1);
    kvi_record_encode(buf, &in, token);
    kvi_record out;
    assert_int_equal(kvi_record_decode(&out, buf, kvi_record_size(sizeof value), token), KV_OK);
    assert_int_equal(out.version, 42);
    assert_int_equal(out.expiry_ms, 1234567);
    assert_int_equal(out.write_ms, 999);
    assert_false(out.tombstone);
    assert_int_equal(out.value_len, sizeof value);
    assert_memory_equal(out.value, value, sizeof value);
}

static void tombstone_round_trip(void **state)
{
    (void)state;
    kvi_record in = {.version = 7, .write_ms = 5, .tombstone = 1};
    unsigned char buf[KVI_RECORD_OVERHEAD];
    kvi_record_encode(buf, &in, 99);
    kvi_record out;
    assert_int_equal(kvi_record_decode(&out, buf, sizeof buf, 99), KV_OK);
    assert_true(out.tombstone);
    assert_int_equal(out.version, 7);
    assert_int_equal(out.value_len, 0);
    assert_false(kvi_record_live(&out, 0));
}

static void every_flipped_bit_is_caught(void **state)
{
    (void)state;
    kvi_record in = {.version = 3, .value = (const unsigned char *)"abcdef", .value_len = 6};
    unsigned char buf[64];
    size_t len = kvi_record_size(6);
    kvi_record_encode(buf, &in, 1);
    for (size_t byte = 0; byte < len; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[byte] ^= (unsigned char)(1u << bit);
            kvi_record out;
            assert_int_equal(kvi_record_decode(&out, buf, len, 1), KV_ECORRUPT);
            buf[byte] ^= (unsigned char)(1u << bit);
        }
    }
    kvi_record out;
    assert_int_equal(kvi_record_decode(&out, buf, len, 1), KV_OK);
}

static void truncated_and_misplaced_records_are_corrupt(void **state)
{
    (void)state;
    kvi_record in = {.version = 1, .value = (const unsigned char *)"xyz", .value_len = 3};
    unsigned char buf[64];
    size_t len = kvi_record_size(3);
    kvi_record_encode(buf, &in, 5);
    kvi_record out;
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(kvi_record_decode(&out, buf, cut, 5), KV_ECORRUPT);
    /* The same bytes under another key's token. */
    assert_int_equal(kvi_record_decode(&out, buf, len, 6), KV_ECORRUPT);
}

static void expiry_decides_liveness(void **state)
{
    (void)state;
    kvi_record rec = {.version = 1, .expiry_ms = 1000};
    assert_true(kvi_record_live(&rec, 999));
    assert_false(kvi_record_live(&rec, 1000));
    rec.expiry_ms = 0;
    assert_true(kvi_record_live(&rec, UINT64_MAX));
}

static void storage_key_is_token_then_key(void **state)
{
    (void)state;
    unsigned char out[KVI_TOKEN_SIZE + 3];
    kvi_storage_key(out, 0x0102030405060708ull, "a\0b", 3);
    const unsigned char want[] = {1, 2, 3, 4, 5, 6, 7, 8, 'a', 0, 'b'};
    assert_memory_equal(out, want, sizeof want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(tombstone_round_trip),
        cmocka_unit_test(every_flipped_bit_is_caught),
        cmocka_unit_test(truncated_and_misplaced_records_are_corrupt),
        cmocka_unit_test(expiry_decides_liveness),
        cmocka_unit_test(storage_key_is_token_then_key),
    };
    return cmocka_run_group_tests_name("storage.record", tests, NULL, NULL);
}
