/* format/record.c - encode and verify stored records. */
#include "format/record.h"

#include <string.h>
#include <xxhash.h>

#include <kv/common.h>
#include "util/endian.h"

uint64_t kvi_key_token(const void *key, size_t key_len)
{
    return XXH3_64bits(key, key_len);
}

void kvi_storage_key(unsigned char *out, uint64_t token, const void *key,
                     size_t key_len)
{
    kvi_put_be64(out, token);
    if (key_len)
        memcpy(out + KVI_TOKEN_SIZE, key, key_len);
}

void kvi_record_encode(unsigned char *out, const kvi_record *rec, uint64_t token)
{
    out[0] = KVI_RECORD_FORMAT_1;
    out[1] = rec->tombstone ? KVI_RECORD_FLAG_TOMBSTONE : 0;
    kvi_put_be64(out + 2, rec->version);
    kvi_put_be64(out + 10, rec->expiry_ms);
    kvi_put_be64(out + 18, rec->write_ms);
    if (rec->value_len)
        memcpy(out + KVI_RECORD_HEADER, rec->value, rec->value_len);
    size_t body = KVI_RECORD_HEADER + rec->value_len;
    kvi_put_be64(out + body, XXH3_64bits_withSeed(out, body, token));
}

int kvi_record_decode(kvi_record *rec, const void *buf, size_t len, uint64_t token)
{
    const unsigned char *p = buf;
    if (len < KVI_RECORD_OVERHEAD || p[0] != KVI_RECORD_FORMAT_1 ||
        (p[1] & ~KVI_RECORD_FLAG_TOMBSTONE) != 0)
        return KV_ECORRUPT;
    size_t body = len - KVI_RECORD_TRAILER;
    if (XXH3_64bits_withSeed(p, body, token) != kvi_get_be64(p + body))
        return KV_ECORRUPT;
    rec->tombstone = (p[1] & KVI_RECORD_FLAG_TOMBSTONE) != 0;
    rec->version = kvi_get_be64(p + 2);
    rec->expiry_ms = kvi_get_be64(p + 10);
    rec->write_ms = kvi_get_be64(p + 18);
    rec->value = p + KVI_RECORD_HEADER;
    rec->value_len = body - KVI_RECORD_HEADER;
    if (rec->tombstone && rec->value_len != 0)
        return KV_ECORRUPT;
    return KV_OK;
}
