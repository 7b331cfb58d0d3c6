/* util/buf.h - a growable output buffer (kvi_buf) and its big-endian
 * appenders: what the codecs write into and what metrics render into. */
#ifndef KVI_BUF_H
#define KVI_BUF_H

#include <stddef.h>
#include <stdint.h>

/* A growable output buffer, reused across messages so that a connection
 * allocates only when a message is larger than any before it. */
typedef struct kvi_buf {
    unsigned char *data;
    size_t len;
    size_t cap;
    int failed; /* an allocation failed; the contents are incomplete */
} kvi_buf;

/* Makes room for extra more bytes; 0, or -1 (and b->failed) when out of
 * memory. */
int kvi_buf_reserve(kvi_buf *b, size_t extra);
void kvi_buf_reset(kvi_buf *b);
void kvi_buf_free(kvi_buf *b);
void kvi_buf_u8(kvi_buf *b, uint8_t v);
void kvi_buf_u16(kvi_buf *b, uint16_t v);
void kvi_buf_u32(kvi_buf *b, uint32_t v);
void kvi_buf_u64(kvi_buf *b, uint64_t v);
void kvi_buf_bytes(kvi_buf *b, const void *data, size_t len);
void kvi_buf_raw(kvi_buf *b, const void *data, size_t len);

#endif
