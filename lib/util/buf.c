/* util/buf.c - the growable output buffer. */
#include "util/buf.h"

#include <stdlib.h>
#include <string.h>

#include "util/endian.h"

int kvi_buf_reserve(kvi_buf *b, size_t extra)
{
    if (b->failed)
        return -1;
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2) {
            b->failed = 1;
            return -1;
        }
        cap *= 2;
    }
    unsigned char *p = realloc(b->data, cap);
    if (!p) {
        b->failed = 1;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

void kvi_buf_reset(kvi_buf *b)
{
    b->len = 0;
    b->failed = 0;
}

void kvi_buf_free(kvi_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

void kvi_buf_raw(kvi_buf *b, const void *data, size_t len)
{
    if (len == 0 || kvi_buf_reserve(b, len) != 0)
        return;
    memcpy(b->data + b->len, data, len);
    b->len += len;
}

void kvi_buf_u8(kvi_buf *b, uint8_t v)
{
    kvi_buf_raw(b, &v, 1);
}

void kvi_buf_u16(kvi_buf *b, uint16_t v)
{
    unsigned char p[2] = {(unsigned char)(v >> 8), (unsigned char)v};
    kvi_buf_raw(b, p, 2);
}

void kvi_buf_u32(kvi_buf *b, uint32_t v)
{
    unsigned char p[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    kvi_buf_raw(b, p, 4);
}

void kvi_buf_u64(kvi_buf *b, uint64_t v)
{
    unsigned char p[8];
    kvi_put_be64(p, v);
    kvi_buf_raw(b, p, 8);
}

void kvi_buf_bytes(kvi_buf *b, const void *data, size_t len)
{
    if (len > UINT32_MAX) {
        b->failed = 1;
        return;
    }
    kvi_buf_u32(b, (uint32_t)len);
    kvi_buf_raw(b, data, len);
}
