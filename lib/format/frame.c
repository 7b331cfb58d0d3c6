/* format/frame.c - frame headers: encode, parse, verify. */
#include "format/frame.h"

#include <xxhash.h>

#include "util/endian.h"

static inline void put_be16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

static inline void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static inline uint16_t get_be16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t get_be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint32_t frame_checksum(const unsigned char *header, const void *body, uint32_t body_len)
{
    uint64_t seed = XXH3_64bits(header, 20);
    return (uint32_t)XXH3_64bits_withSeed(body_len ? body : "", body_len, seed);
}

const char *kvi_frame_error_text(kvi_frame_error e)
{
    switch (e) {
    case KVI_FRAME_OK: return "ok";
    case KVI_FRAME_NEED_MORE: return "incomplete frame";
    case KVI_FRAME_BAD_MAGIC: return "not a libkv frame (bad magic)";
    case KVI_FRAME_BAD_VERSION: return "unsupported protocol version";
    case KVI_FRAME_BAD_OPCODE: return "unknown opcode";
    case KVI_FRAME_BAD_FLAGS: return "unknown flags or a status in a request";
    case KVI_FRAME_TOO_BIG: return "frame body over the size limit";
    case KVI_FRAME_BAD_CHECKSUM: return "frame checksum mismatch";
    }
    return "unknown frame error";
}

kvi_frame_error kvi_frame_parse_header(kvi_frame_header *out, const void *buf,
                                       size_t len, uint32_t max_body)
{
    const unsigned char *p = buf;
    if (len < KVI_FRAME_HEADER)
        return KVI_FRAME_NEED_MORE;
    if (p[0] != 'k' || p[1] != 'v')
        return KVI_FRAME_BAD_MAGIC;
    out->version = p[2];
    out->opcode = p[3];
    out->flags = get_be16(p + 4);
    out->status = (int16_t)get_be16(p + 6);
    out->request_id = kvi_get_be64(p + 8);
    out->body_len = get_be32(p + 16);
    out->checksum = get_be32(p + 20);
    if (out->version != KVI_PROTOCOL_VERSION)
        return KVI_FRAME_BAD_VERSION;
    if (out->flags & ~KVI_FRAME_FLAGS_KNOWN)
        return KVI_FRAME_BAD_FLAGS;
    if (!(out->flags & KVI_FRAME_FLAG_RESPONSE) && out->status != 0)
        return KVI_FRAME_BAD_FLAGS;
    if (out->body_len > max_body)
        return KVI_FRAME_TOO_BIG;
    /* The opcode last: an error frame for an unknown opcode can still name
     * the request id it answers. */
    if (out->opcode == 0 || out->opcode > KVI_OP_MAX)
        return KVI_FRAME_BAD_OPCODE;
    return KVI_FRAME_OK;
}

kvi_frame_error kvi_frame_verify(const kvi_frame_header *h, const void *header,
                                 const void *body)
{
    return frame_checksum(header, body, h->body_len) == h->checksum
               ? KVI_FRAME_OK
               : KVI_FRAME_BAD_CHECKSUM;
}

void kvi_frame_encode_header(unsigned char out[KVI_FRAME_HEADER],
                             const kvi_frame_header *h, const void *body)
{
    out[0] = 'k';
    out[1] = 'v';
    out[2] = KVI_PROTOCOL_VERSION;
    out[3] = h->opcode;
    put_be16(out + 4, h->flags);
    put_be16(out + 6, (uint16_t)h->status);
    kvi_put_be64(out + 8, h->request_id);
    put_be32(out + 16, h->body_len);
    put_be32(out + 20, frame_checksum(out, body, h->body_len));
}
