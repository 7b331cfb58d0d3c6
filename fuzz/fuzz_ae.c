/* libFuzzer target for anti-entropy's bodies (format/ae.h), which a node
 * decodes from its peers.
 *
 * Input: byte 0 chooses (0 AE_DIGEST request, 1 AE_DIGEST answer of as
 * many parts as byte 1 says, 2 AE_KEYS request, 3 AE_KEYS answer, 4 AE_KEYS
 * answer with records); the rest is the body.
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
    static kvi_ae_range ranges[KVI_AE_MAX_RANGES], parts[KVI_AE_MAX_RANGES];
    unsigned bits, fanout;
    size_t n;
    if (kvi_ae_digest_request_decode(&bits, &fanout, ranges, &n, body, len) != 0)
        return;
    for (size_t i = 0; i < n; i++)
        if (ranges[i].first >= ranges[i].end || ranges[i].end > ((uint64_t)1 << bits))
            abort();
    /* The parts fit in an answer, and cover each range exactly, in order. */
    size_t n_parts = kvi_ae_parts(parts, KVI_AE_MAX_RANGES, ranges, n, fanout);
    if (fanout < 1 || fanout > KVI_AE_MAX_FANOUT || n_parts > KVI_AE_MAX_RANGES)
        abort();
    for (size_t i = 0, p = 0; i < n; i++) {
        uint32_t at = ranges[i].first;
        while (p < n_parts && at < ranges[i].end) {
            if (parts[p].first != at || parts[p].end <= at)
                abort();
            at = parts[p++].end;
        }
        if (at != ranges[i].end)
            abort();
    }
    kvi_buf b = {0};
    kvi_ae_digest_request_encode(&b, bits, fanout, ranges, n);
    same(&b, body, len);
    kvi_buf_free(&b);
}

static void digest_answer(size_t n, const uint8_t *body, size_t len)
{
    static uint64_t hashes[256];
    static uint32_t keys[256];
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

static void keys_answer(const uint8_t *body, size_t len, int records)
{
    uint32_t count;
    int more;
    kvi_reader items;
    if (kvi_ae_keys_answer_check(&count, &more, &items, body, len, records) != 0)
        return;
    kvi_buf b = {0};
    size_t start = kvi_ae_keys_answer_start(&b);
    for (uint32_t i = 0; i < count; i++) {
        kvi_bytes key, rec = {NULL, 0};
        uint64_t hash;
        kvi_ae_keys_answer_next(&items, &key, &hash, records ? &rec : NULL);
        if (items.failed || key.len == 0 || key.data < body || key.data + key.len > body + len)
            abort();
        if (records && rec.len && (rec.data < body || rec.data + rec.len > body + len))
            abort();
        kvi_ae_keys_answer_add(&b, key.data, key.len, hash, records ? (rec.data ? rec.data
                                                                                : body) : NULL,
                               rec.len);
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
    switch (data[0] % 5) {
    case 0: digest_request(body, len); break;
    case 1:
        if (len >= 1)
            digest_answer(body[0], body + 1, len - 1);
        break;
    case 2: keys_request(body, len); break;
    case 3: keys_answer(body, len, 0); break;
    default: keys_answer(body, len, 1); break;
    }
    return 0;
}
