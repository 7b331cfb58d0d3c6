/* format/ae.c - see ae.h. */
#include "format/ae.h"

#include <string.h>


/* A segment range of a digest of 2^bits segments. */
static int range_ok(unsigned bits, uint32_t first, uint32_t end)
{
    uint64_t segments = (uint64_t)1 << bits;
    return first < end && end <= segments;
}

size_t kvi_ae_parts(kvi_ae_range *out, size_t room, const kvi_ae_range *ranges, size_t n,
                    unsigned fanout)
{
    size_t total = 0;
    if (fanout < 1)
        fanout = 1;
    for (size_t i = 0; i < n; i++) {
        uint64_t first = ranges[i].first;
        uint64_t size = ranges[i].end > ranges[i].first ? (uint64_t)ranges[i].end - first : 0;
        uint64_t parts = size < fanout ? size : fanout;
        for (uint64_t k = 0; k < parts; k++, total++)
            if (total < room)
                out[total] = (kvi_ae_range){(uint32_t)(first + size * k / parts),
                                            (uint32_t)(first + size * (k + 1) / parts)};
    }
    return total;
}

void kvi_ae_digest_request_encode(kvi_buf *b, unsigned bits, unsigned fanout,
                                  const kvi_ae_range *ranges, size_t n)
{
    kvi_buf_u8(b, (uint8_t)bits);
    kvi_buf_u8(b, (uint8_t)fanout);
    kvi_buf_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        kvi_buf_u32(b, ranges[i].first);
        kvi_buf_u32(b, ranges[i].end);
    }
}

int kvi_ae_digest_request_decode(unsigned *bits, unsigned *fanout, kvi_ae_range *ranges,
                                 size_t *n, const void *body, size_t len)
{
    kvi_reader r = kvi_reader_init(body, len);
    *bits = kvi_read_u8(&r);
    *fanout = kvi_read_u8(&r);
    uint32_t count = kvi_read_u32(&r);
    if (r.failed || *bits > 32 || *fanout == 0 || *fanout > KVI_AE_MAX_FANOUT || count == 0 ||
        count > KVI_AE_MAX_RANGES || r.left != (size_t)count * 8u)
        return -1;
    for (uint32_t i = 0; i < count; i++) {
        ranges[i].first = kvi_read_u32(&r);
        ranges[i].end = kvi_read_u32(&r);
        if (!range_ok(*bits, ranges[i].first, ranges[i].end))
            return -1;
    }
    if (kvi_ae_parts(NULL, 0, ranges, count, *fanout) > KVI_AE_MAX_RANGES)
        return -1;
    *n = count;
    return 0;
}

void kvi_ae_digest_answer_encode(kvi_buf *b, const uint64_t *hashes, const uint32_t *keys,
                                 size_t n)
{
    kvi_buf_u32(b, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        kvi_buf_u64(b, hashes[i]);
        kvi_buf_u32(b, keys[i]);
    }
}

int kvi_ae_digest_answer_decode(uint64_t *hashes, uint32_t *keys, size_t n, const void *body,
                                size_t len)
{
    kvi_reader r = kvi_reader_init(body, len);
    uint32_t count = kvi_read_u32(&r);
    if (r.failed || count != n || r.left != n * 12u)
        return -1;
    for (size_t i = 0; i < n; i++) {
        hashes[i] = kvi_read_u64(&r);
        keys[i] = kvi_read_u32(&r);
    }
    return 0;
}

void kvi_ae_keys_request_encode(kvi_buf *b, const kvi_ae_keys_request *req)
{
    kvi_buf_u8(b, (uint8_t)req->bits);
    kvi_buf_u32(b, req->first);
    kvi_buf_u32(b, req->end);
    kvi_buf_bytes(b, req->after.data, req->after.len);
    kvi_buf_u32(b, req->max_keys);
    kvi_buf_u8(b, (uint8_t)req->flags);
}

int kvi_ae_keys_request_decode(kvi_ae_keys_request *out, const void *body, size_t len)
{
    memset(out, 0, sizeof *out);
    kvi_reader r = kvi_reader_init(body, len);
    out->bits = kvi_read_u8(&r);
    out->first = kvi_read_u32(&r);
    out->end = kvi_read_u32(&r);
    out->after = kvi_read_bytes(&r);
    out->max_keys = kvi_read_u32(&r);
    out->flags = kvi_read_u8(&r);
    if (r.failed || r.left != 0 || out->bits > 32 || !range_ok(out->bits, out->first, out->end) ||
        out->max_keys == 0 || out->max_keys > KVI_AE_MAX_KEYS ||
        (out->flags & ~KVI_AE_KEYS_RECORDS) != 0)
        return -1;
    return 0;
}

size_t kvi_ae_keys_answer_start(kvi_buf *b)
{
    size_t start = b->len;
    kvi_buf_u32(b, 0); /* the count, set by finish */
    return start;
}

void kvi_ae_keys_answer_add(kvi_buf *b, const void *skey, size_t skey_len, uint64_t hash,
                            const void *record, size_t record_len)
{
    kvi_buf_bytes(b, skey, skey_len);
    kvi_buf_u64(b, hash);
    if (record)
        kvi_buf_bytes(b, record, record_len);
}

void kvi_ae_keys_answer_finish(kvi_buf *b, size_t start, uint32_t count, int more)
{
    kvi_buf_u8(b, more ? 1 : 0);
    if (!b->failed) {
        unsigned char be[4] = {(unsigned char)(count >> 24), (unsigned char)(count >> 16),
                               (unsigned char)(count >> 8), (unsigned char)count};
        memcpy(b->data + start, be, 4);
    }
}

int kvi_ae_keys_answer_check(uint32_t *count, int *more, kvi_reader *items, const void *body,
                             size_t len, int records)
{
    kvi_reader r = kvi_reader_init(body, len);
    *count = kvi_read_u32(&r);
    if (r.failed || *count > KVI_AE_MAX_KEYS)
        return -1;
    *items = r;
    kvi_bytes prev = {NULL, 0};
    for (uint32_t i = 0; i < *count; i++) {
        kvi_bytes k = kvi_read_bytes(&r);
        kvi_read_u64(&r);
        if (records)
            kvi_read_bytes(&r);
        if (r.failed || k.len == 0)
            return -1;
        if (i > 0) {
            size_t common = prev.len < k.len ? prev.len : k.len;
            int c = memcmp(prev.data, k.data, common);
            if (c > 0 || (c == 0 && prev.len >= k.len))
                return -1;
        }
        prev = k;
    }
    unsigned m = kvi_read_u8(&r);
    if (r.failed || r.left != 0 || m > 1)
        return -1;
    *more = (int)m;
    return 0;
}

void kvi_ae_keys_answer_next(kvi_reader *items, kvi_bytes *skey, uint64_t *hash,
                             kvi_bytes *record)
{
    *skey = kvi_read_bytes(items);
    *hash = kvi_read_u64(items);
    if (record)
        *record = kvi_read_bytes(items);
}
