/* libFuzzer target for anti-entropy's bodies (format/ae.h), which a node
 * decodes from its peers.
 *
 * Input: byte 0 chooses (0 AE_DIGEST request, 1 AE_DIGEST answer of as
 * many ranges as byte 1 says, 2 AE_KEYS request, 3 AE_KEYS answer); the
 * rest is the body.
 *
 * Invariants: nothing crashes; an accepted request encodes back to the same
 * bytes and its ranges lie inside the digest it names; an accepted digest
 * answer encodes back to the same bytes; an accepted keys answer's keys lie
 * inside the body, are non-empty and increasing, and encode back to the
 * same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/ae.h"

static void same(const kvi_buf *b, const uint8_t *body, size_t len)
{
    if (b->failed || b->len != len || memcmp(b->data, body, len) != 0)
        abort();
}

static void digest_request(const uint8_t *body, size_t len)
{
    static kvi_ae_range ranges[KVI_AE_MAX_RANGES];
    unsigned bits;
    size_t n;
    if (kvi_ae_digest_request_decode(&bits, ranges, &n, body, len) != 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (ranges[i].first >= ranges[i].end || ranges[i].end > ((uint64_t)1 << bits))
            abort();
    kvi_buf b = {0};
    kvi_ae_digest_request_encode(&b, bits, ranges, n);
    same(&b, body, len);
    kvi_buf_free(&b);
}

static void digest_answer(size_t n, const uint8_t *body, size_t len)
{
    static uint64_t hashes[256], keys[256];
    if (kvi_ae_digest_answer_decode(hashes, keys, n, body, len) != 0)
        return;
    kvi_buf b = {0};
    kvi_ae_digest_answer_encode(&b, hashes, keys, n);
    same(&b, body, len);
    kvi_buf_free(&b);
}

static void keys_request(const uint8_t *body, size_t len)
{
    kvi_ae_keys_request req;
    if (kvi_ae_keys_request_decode(&req, body, len) != 0)
        return;
    if (req.max_keys == 0 || req.first >= req.end || req.end > ((uint64_t)1 << req.bits))
        abort();
    kvi_buf b = {0};
    kvi_ae_keys_request_encode(&b, &req);
    same(&b, body, len);
    kvi_buf_free(&b);
}

static void keys_answer(const uint8_t *body, size_t len)
{
    uint32_t count;
    int more;
    kvi_reader items;
    if (kvi_ae_keys_answer_check(&count, &more, &items, body, len) != 0)
        return;
    kvi_buf b = {0};
    size_t start = kvi_ae_keys_answer_start(&b);
    for (uint32_t i = 0; i < count; i++) {
        kvi_bytes key;
        uint64_t hash;
        kvi_ae_keys_answer_next(&items, &key, &hash);
        if (items.failed || key.len == 0 || key.data < body || key.data + key.len > body + len)
            abort();
        kvi_ae_keys_answer_add(&b, key.data, key.len, hash);
    }
    kvi_ae_keys_answer_finish(&b, start, count, more);
    same(&b, body, len);
    kvi_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0: digest_request(body, len); break;
    case 1:
        if (len >= 1)
            digest_answer(body[0], body + 1, len - 1);
        break;
    case 2: keys_request(body, len); break;
    default: keys_answer(body, len); break;
    }
    return 0;
}
