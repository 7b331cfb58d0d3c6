/* The binary protocol codec: frames and message bodies round-trip, and
 * every malformed, truncated, oversized or unknown input is rejected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <kv/kv.h>
#include "format/frame.h"
#include "format/message.h"

static kvi_bytes bytes(const char *s)
{
    kvi_bytes b = {(const unsigned char *)s, strlen(s)};
    return b;
}

/* Builds a whole request frame into b. */
static void build_request(kvi_buf *b, const kvi_request *req, uint64_t id)
{
    kvi_buf_reset(b);
    kvi_frame_begin(b);
    kvi_request_encode(b, req);
    assert_int_equal(kvi_frame_finish(b, 0, req->opcode, 0, 0, id), 0);
}

static void header_round_trip(void **state)
{
    (void)state;
    kvi_buf b = {0};
    kvi_request req = {.opcode = KVI_OP_GET, .consistency = KV_CONSISTENCY_QUORUM,
                       .key = bytes("user:1")};
    build_request(&b, &req, 0x1122334455667788ull);
    kvi_frame_header h;
    assert_int_equal(kvi_frame_parse_header(&h, b.data, b.len, KVI_FRAME_DEFAULT_MAX_BODY), KVI_FRAME_OK);
    assert_int_equal(h.opcode, KVI_OP_GET);
    assert_int_equal(h.request_id, 0x1122334455667788ull);
    assert_int_equal(h.flags, 0);
    assert_int_equal(h.status, 0);
    assert_int_equal(h.body_len, b.len - KVI_FRAME_HEADER);
    assert_int_equal(kvi_frame_verify(&h, b.data, b.data + KVI_FRAME_HEADER), KVI_FRAME_OK);

    kvi_request out;
    assert_int_equal(kvi_request_decode(&out, h.opcode, b.data + KVI_FRAME_HEADER, h.body_len), 0);
    assert_int_equal(out.consistency, KV_CONSISTENCY_QUORUM);
    assert_int_equal(out.key.len, 6);
    assert_memory_equal(out.key.data, "user:1", 6);
    kvi_buf_free(&b);
}

/* A replica request's route rides after its body under the ROUTED flag;
 * a route on another opcode, or one cut short, is malformed. */
static void a_route_rides_after_the_body(void **state)
{
    (void)state;
    kvi_buf b = {0};
    kvi_request req = {.opcode = KVI_OP_REPLICATE, .key = bytes("k"), .value = bytes("state"),
                       .routed = 1, .route_epoch = 7, .route_hash = 0xfeedfacecafebeefull};
    kvi_request_encode(&b, &req);
    size_t plain = b.len;
    kvi_request_encode_route(&b, &req);
    assert_int_equal(b.len, plain + 16);
    kvi_frame_header h = {.opcode = KVI_OP_REPLICATE, .flags = KVI_FRAME_FLAG_ROUTED,
                          .body_len = (uint32_t)b.len};
    kvi_request out;
    assert_int_equal(kvi_request_decode_frame(&out, &h, b.data), 0);
    assert_int_equal(out.routed, 1);
    assert_int_equal(out.route_epoch, 7);
    assert_true(out.route_hash == 0xfeedfacecafebeefull);
    assert_int_equal(out.key.len, 1);
    assert_int_equal(out.value.len, 5);
    /* Without the flag the route is trailing bytes. */
    h.flags = 0;
    assert_int_equal(kvi_request_decode_frame(&out, &h, b.data), -1);
    /* Cut short: the route takes the body's last bytes, which no longer
     * decode. */
    h.flags = KVI_FRAME_FLAG_ROUTED;
    for (uint32_t cut = 0; cut < 16; cut++) {
        h.body_len = cut;
        assert_int_equal(kvi_request_decode_frame(&out, &h, b.data), -1);
    }
    h.body_len = (uint32_t)b.len - 1;
    assert_int_equal(kvi_request_decode_frame(&out, &h, b.data), -1);
    /* Only replica requests are routed. */
    h.opcode = KVI_OP_PUT;
    h.body_len = (uint32_t)b.len;
    assert_int_equal(kvi_request_decode_frame(&out, &h, b.data), -1);
    assert_int_equal(kvi_request_routable(KVI_OP_GET_STATE), 1);
    assert_int_equal(kvi_request_routable(KVI_OP_READ_STATE), 1);
    assert_int_equal(kvi_request_routable(KVI_OP_HINT), 0);
    kvi_buf_free(&b);
}

static void every_request_round_trips(void **state)
{
    (void)state;
    kvi_buf b = {0};
    const kvi_request reqs[] = {
        {.opcode = KVI_OP_PING},
        {.opcode = KVI_OP_CLUSTER},
        {.opcode = KVI_OP_PUT, .consistency = 1, .quorum = 2, .ttl_s = 60,
         .key = bytes("k"), .value = bytes("v\0x"), .context = bytes("ctx")},
        {.opcode = KVI_OP_DELETE, .consistency = 3, .key = bytes("k")},
        {.opcode = KVI_OP_CAS, .ttl_s = 5, .expected_version = 9, .key = bytes("k"),
         .value = bytes("")},
    };
    for (size_t i = 0; i < sizeof reqs / sizeof reqs[0]; i++) {
        build_request(&b, &reqs[i], i);
        kvi_request out;
        assert_int_equal(kvi_request_decode(&out, reqs[i].opcode, b.data + KVI_FRAME_HEADER,
                                            b.len - KVI_FRAME_HEADER), 0);
        assert_int_equal(out.ttl_s, reqs[i].ttl_s);
        assert_int_equal(out.expected_version, reqs[i].expected_version);
        assert_int_equal(out.consistency, reqs[i].consistency);
        assert_int_equal(out.quorum, reqs[i].quorum);
        assert_int_equal(out.key.len, reqs[i].key.len);
        assert_int_equal(out.value.len, reqs[i].value.len);
        assert_int_equal(out.context.len, reqs[i].context.len);
        if (out.key.len)
            assert_memory_equal(out.key.data, reqs[i].key.data, out.key.len);
        if (out.value.len)
            assert_memory_equal(out.value.data, reqs[i].value.data, out.value.len);
        /* Every truncation of the body is malformed (PING and CLUSTER
         * bodies are empty, so they have none). */
        for (size_t cut = 0; cut < b.len - KVI_FRAME_HEADER; cut++)
            assert_int_equal(kvi_request_decode(&out, reqs[i].opcode,
                                                b.data + KVI_FRAME_HEADER, cut), -1);
        /* A trailing byte is malformed too. */
        kvi_buf_u8(&b, 0);
        assert_int_equal(kvi_request_decode(&out, reqs[i].opcode, b.data + KVI_FRAME_HEADER,
                                            b.len - KVI_FRAME_HEADER), -1);
    }
    kvi_buf_free(&b);
}

static void batch_request_round_trip(void **state)
{
    (void)state;
    kvi_buf b = {0};
    kvi_request req = {.opcode = KVI_OP_BATCH, .batch_count = 3};
    kvi_batch_item items[3] = {
        {KV_BATCH_PUT, 10, bytes("a"), bytes("1")},
        {KV_BATCH_GET, 0, bytes("b"), bytes("")},
        {KV_BATCH_DELETE, 0, bytes("c"), bytes("")},
    };
    kvi_frame_begin(&b);
    kvi_request_encode(&b, &req);
    for (int i = 0; i < 3; i++)
        kvi_batch_item_encode(&b, &items[i]);
    assert_int_equal(kvi_frame_finish(&b, 0, KVI_OP_BATCH, 0, 0, 1), 0);
    const unsigned char *body = b.data + KVI_FRAME_HEADER;
    size_t len = b.len - KVI_FRAME_HEADER;
    kvi_request out;
    assert_int_equal(kvi_request_decode(&out, KVI_OP_BATCH, body, len), 0);
    assert_int_equal(out.batch_count, 3);
    for (int i = 0; i < 3; i++) {
        kvi_batch_item it;
        kvi_request_next_item(&out, &it);
        assert_int_equal(it.kind, items[i].kind);
        assert_int_equal(it.ttl_s, items[i].ttl_s);
        assert_memory_equal(it.key.data, items[i].key.data, 1);
    }
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(kvi_request_decode(&out, KVI_OP_BATCH, body, cut), -1);
    /* An unknown operation kind. */
    unsigned char *bad = malloc(len);
    memcpy(bad, body, len);
    bad[2 + 4] = 9;
    assert_int_equal(kvi_request_decode(&out, KVI_OP_BATCH, bad, len), -1);
    /* A count the body cannot hold is refused before any iteration. */
    memcpy(bad, body, len);
    bad[2] = 0xff;
    assert_int_equal(kvi_request_decode(&out, KVI_OP_BATCH, bad, len), -1);
    free(bad);
    kvi_buf_free(&b);
}

static void responses_round_trip(void **state)
{
    (void)state;
    kvi_buf b = {0};
    kvi_response get = {.opcode = KVI_OP_GET, .version = 7, .expiry_ms = 99,
                        .value = bytes("hello"), .context = bytes("")};
    kvi_response_encode(&b, &get);
    kvi_response out;
    assert_int_equal(kvi_response_decode(&out, KVI_OP_GET, KV_OK, b.data, b.len), 0);
    assert_int_equal(out.version, 7);
    assert_int_equal(out.expiry_ms, 99);
    assert_memory_equal(out.value.data, "hello", 5);
    for (size_t cut = 0; cut < b.len; cut++)
        assert_int_equal(kvi_response_decode(&out, KVI_OP_GET, KV_OK, b.data, cut), -1);

    /* A GET answer with siblings: the preferred value first. */
    kvi_buf_reset(&b);
    kvi_response sibs = {.opcode = KVI_OP_GET, .version = 9, .context = bytes("ctx"),
                         .sibling_count = 2};
    kvi_response_encode(&b, &sibs);
    kvi_buf_bytes(&b, "first", 5);
    kvi_buf_bytes(&b, "second", 6);
    assert_int_equal(kvi_response_decode(&out, KVI_OP_GET, KV_OK, b.data, b.len), 0);
    assert_int_equal(out.sibling_count, 2);
    assert_memory_equal(out.value.data, "first", 5);
    kvi_bytes s1 = kvi_response_next_sibling(&out), s2 = kvi_response_next_sibling(&out);
    assert_memory_equal(s1.data, "first", 5);
    assert_memory_equal(s2.data, "second", 6);
    assert_int_equal(out.context.len, 3);
    /* A count of 0 or past the limit is malformed. */
    unsigned char *count = b.data + 8 + 8 + 4 + 3;
    *count = 0;
    assert_int_equal(kvi_response_decode(&out, KVI_OP_GET, KV_OK, b.data, b.len), -1);
    *count = KVI_MAX_WIRE_SIBLINGS + 1;
    assert_int_equal(kvi_response_decode(&out, KVI_OP_GET, KV_OK, b.data, b.len), -1);

    kvi_buf_reset(&b);
    kvi_response err = {.opcode = KVI_OP_CAS, .status = KV_ECONFLICT, .version = 4,
                        .message = bytes("expected 3")};
    kvi_response_encode(&b, &err);
    assert_int_equal(kvi_response_decode(&out, KVI_OP_CAS, KV_ECONFLICT, b.data, b.len), 0);
    assert_int_equal(out.version, 4);
    assert_int_equal(out.message.len, 10);

    kvi_buf_reset(&b);
    kvi_response batch = {.opcode = KVI_OP_BATCH, .batch_count = 2};
    kvi_response_encode(&b, &batch);
    kvi_batch_outcome o1 = {.status = KV_OK, .version = 3, .value = bytes("v")};
    kvi_batch_outcome o2 = {.status = KV_ENOTFOUND, .value = bytes("")};
    kvi_batch_outcome_encode(&b, &o1);
    kvi_batch_outcome_encode(&b, &o2);
    assert_int_equal(kvi_response_decode(&out, KVI_OP_BATCH, KV_OK, b.data, b.len), 0);
    kvi_batch_outcome got;
    kvi_response_next_outcome(&out, &got);
    assert_int_equal(got.status, KV_OK);
    assert_int_equal(got.version, 3);
    kvi_response_next_outcome(&out, &got);
    assert_int_equal(got.status, KV_ENOTFOUND);

    /* With siblings (the answer's flag): the context and every value. */
    kvi_buf_reset(&b);
    kvi_response_encode(&b, &batch);
    kvi_batch_outcome so1 = {.status = KV_OK, .version = 7, .context = bytes("ctx")};
    kvi_bytes two[] = {bytes("a"), bytes("bb")};
    kvi_batch_outcome_encode_siblings(&b, &so1, two, 2);
    kvi_batch_outcome_encode_siblings(&b, &o2, NULL, 0);
    assert_int_equal(kvi_response_decode_flags(&out, KVI_OP_BATCH, KV_OK,
                                               KVI_FRAME_FLAG_RESPONSE | KVI_FRAME_FLAG_SIBLINGS,
                                               b.data, b.len), 0);
    assert_true(out.batch_siblings);
    kvi_response_next_outcome(&out, &got);
    assert_int_equal(got.version, 7);
    assert_int_equal(got.context.len, 3);
    assert_memory_equal(got.context.data, "ctx", 3);
    assert_int_equal(got.sibling_count, 2);
    kvi_bytes v = kvi_read_bytes(&got.siblings);
    assert_int_equal(v.len, 1);
    v = kvi_read_bytes(&got.siblings);
    assert_int_equal(v.len, 2);
    assert_memory_equal(v.data, "bb", 2);
    kvi_response_next_outcome(&out, &got);
    assert_int_equal(got.status, KV_ENOTFOUND);
    assert_int_equal(got.sibling_count, 0);
    /* More siblings than the wire allows: refused. */
    kvi_buf_reset(&b);
    kvi_response batch1 = {.opcode = KVI_OP_BATCH, .batch_count = 1};
    kvi_response_encode(&b, &batch1);
    kvi_bytes many[KVI_MAX_WIRE_SIBLINGS + 1];
    for (size_t i = 0; i <= KVI_MAX_WIRE_SIBLINGS; i++)
        many[i] = bytes("x");
    kvi_batch_outcome_encode_siblings(&b, &so1, many, KVI_MAX_WIRE_SIBLINGS + 1);
    assert_int_not_equal(kvi_response_decode_flags(&out, KVI_OP_BATCH, KV_OK,
                                                   KVI_FRAME_FLAG_SIBLINGS, b.data, b.len), 0);
    kvi_buf_free(&b);
}

static void bad_headers_are_named(void **state)
{
    (void)state;
    kvi_buf b = {0};
    kvi_request req = {.opcode = KVI_OP_PING};
    build_request(&b, &req, 5);
    kvi_frame_header h;
    unsigned char frame[KVI_FRAME_HEADER];
    memcpy(frame, b.data, sizeof frame);
    for (size_t cut = 0; cut < KVI_FRAME_HEADER; cut++)
        assert_int_equal(kvi_frame_parse_header(&h, frame, cut, 1024), KVI_FRAME_NEED_MORE);

    unsigned char bad[KVI_FRAME_HEADER];
    memcpy(bad, frame, sizeof bad);
    bad[0] = 'G'; /* an HTTP client on the binary port: "GET /..." */
    assert_int_equal(kvi_frame_parse_header(&h, bad, sizeof bad, 1024), KVI_FRAME_BAD_MAGIC);
    memcpy(bad, frame, sizeof bad);
    bad[2] = 2;
    assert_int_equal(kvi_frame_parse_header(&h, bad, sizeof bad, 1024), KVI_FRAME_BAD_VERSION);
    memcpy(bad, frame, sizeof bad);
    bad[3] = 0;
    assert_int_equal(kvi_frame_parse_header(&h, bad, sizeof bad, 1024), KVI_FRAME_BAD_OPCODE);
    bad[3] = KVI_OP_MAX + 1;
    assert_int_equal(kvi_frame_parse_header(&h, bad, sizeof bad, 1024), KVI_FRAME_BAD_OPCODE);
    assert_int_equal(h.request_id, 5); /* still known, to answer with an error */
    memcpy(bad, frame, sizeof bad);
    bad[4] = 0x80;
    assert_int_equal(kvi_frame_parse_header(&h, bad, sizeof bad, 1024), KVI_FRAME_BAD_FLAGS);
    memcpy(bad, frame, sizeof bad);
    bad[7] = 1; /* a status in a request */
    assert_int_equal(kvi_frame_parse_header(&h, bad, sizeof bad, 1024), KVI_FRAME_BAD_FLAGS);
    /* A frame that claims 4 GiB is refused from its header alone. */
    memcpy(bad, frame, sizeof bad);
    bad[16] = bad[17] = bad[18] = bad[19] = 0xff;
    assert_int_equal(kvi_frame_parse_header(&h, bad, sizeof bad, KVI_FRAME_MAX_BODY_LIMIT),
                     KVI_FRAME_TOO_BIG);
    /* Limit, limit + 1. */
    bad[16] = 0, bad[17] = 0, bad[18] = 4, bad[19] = 0; /* 1024 */
    assert_int_equal(kvi_frame_parse_header(&h, bad, sizeof bad, 1024), KVI_FRAME_OK);
    bad[19] = 1;
    assert_int_equal(kvi_frame_parse_header(&h, bad, sizeof bad, 1024), KVI_FRAME_TOO_BIG);
    kvi_buf_free(&b);
    for (int e = KVI_FRAME_OK; e <= KVI_FRAME_BAD_CHECKSUM; e++)
        assert_non_null(kvi_frame_error_text((kvi_frame_error)e));
}

static void any_damage_fails_the_checksum(void **state)
{
    (void)state;
    kvi_buf b = {0};
    kvi_request req = {.opcode = KVI_OP_PUT, .key = bytes("key"), .value = bytes("value")};
    build_request(&b, &req, 77);
    kvi_frame_header h;
    for (size_t i = 0; i < b.len; i++) {
        if (i >= 16 && i < 24)
            continue; /* length and checksum fields: parsed, not summed */
        b.data[i] ^= 0x01;
        if (kvi_frame_parse_header(&h, b.data, b.len, 1 << 20) == KVI_FRAME_OK)
            assert_int_equal(kvi_frame_verify(&h, b.data, b.data + KVI_FRAME_HEADER),
                             KVI_FRAME_BAD_CHECKSUM);
        b.data[i] ^= 0x01;
    }
    b.data[20] ^= 1; /* the checksum field itself */
    assert_int_equal(kvi_frame_parse_header(&h, b.data, b.len, 1 << 20), KVI_FRAME_OK);
    assert_int_equal(kvi_frame_verify(&h, b.data, b.data + KVI_FRAME_HEADER), KVI_FRAME_BAD_CHECKSUM);
    kvi_buf_free(&b);
}

static void oversized_frames_are_not_built(void **state)
{
    (void)state;
    kvi_buf b = {0};
    b.failed = 1;
    assert_int_equal(kvi_frame_finish(&b, 0, KVI_OP_PING, 0, 0, 1), -1);
    kvi_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(header_round_trip),
        cmocka_unit_test(every_request_round_trips),
        cmocka_unit_test(a_route_rides_after_the_body),
        cmocka_unit_test(batch_request_round_trip),
        cmocka_unit_test(responses_round_trip),
        cmocka_unit_test(bad_headers_are_named),
        cmocka_unit_test(any_damage_fails_the_checksum),
        cmocka_unit_test(oversized_frames_are_not_built),
    };
    return cmocka_run_group_tests_name("net.frame", tests, NULL, NULL);
}
