/* libFuzzer target for the binary protocol: a stream of bytes is cut into
 * frames the way a connection does it (header, limit, checksum) and each
 * body is decoded both as a request and as a response. Nothing may crash or
 * read out of bounds; a body that decodes re-encodes to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "format/frame.h"
#include "format/message.h"

static void check_request(const kvi_frame_header *h, const unsigned char *body)
{
    kvi_request req;
    if (kvi_request_decode_frame(&req, h, body) != 0)
        return;
    kvi_buf b = {0};
    kvi_request_encode(&b, &req);
    kvi_batch_item item;
    for (uint32_t i = 0; i < req.batch_count; i++) {
        kvi_request_next_item(&req, &item);
        kvi_batch_item_encode(&b, &item);
    }
    kvi_request_encode_route(&b, &req);
    if (!b.failed && (b.len != h->body_len || (b.len && memcmp(b.data, body, b.len) != 0)))
        abort();
    kvi_buf_free(&b);
}

static void check_response(const kvi_frame_header *h, const unsigned char *body)
{
    kvi_response resp;
    if (kvi_response_decode_flags(&resp, h->opcode, h->status, h->flags, body, h->body_len) != 0)
        return;
    kvi_buf b = {0};
    kvi_response_encode(&b, &resp);
    kvi_batch_outcome out;
    for (uint32_t i = 0; i < resp.batch_count; i++) {
        kvi_response_next_outcome(&resp, &out);
        if (!resp.batch_siblings) {
            kvi_batch_outcome_encode(&b, &out);
            continue;
        }
        kvi_bytes values[KVI_MAX_WIRE_SIBLINGS];
        for (uint32_t k = 0; k < out.sibling_count; k++)
            values[k] = kvi_read_bytes(&out.siblings);
        kvi_batch_outcome_encode_siblings(&b, &out, values, out.sibling_count);
    }
    for (uint32_t i = 0; i < resp.sibling_count; i++) {
        kvi_bytes sib = kvi_response_next_sibling(&resp);
        kvi_buf_bytes(&b, sib.data, sib.len);
    }
    if (!b.failed && (b.len != h->body_len || (b.len && memcmp(b.data, body, b.len) != 0)))
        abort();
    kvi_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    while (size > 0) {
        kvi_frame_header h;
        kvi_frame_error e = kvi_frame_parse_header(&h, data, size, 1u << 20);
        if (e != KVI_FRAME_OK || size - KVI_FRAME_HEADER < h.body_len)
            return 0;
        const unsigned char *body = data + KVI_FRAME_HEADER;
        /* Decode whether or not the checksum holds: the decoders must be
         * safe on their own, and fuzzed inputs rarely fix the sum. */
        (void)kvi_frame_verify(&h, data, body);
        check_request(&h, body);
        check_response(&h, body);
        data += KVI_FRAME_HEADER + h.body_len;
        size -= KVI_FRAME_HEADER + h.body_len;
    }
    return 0;
}
