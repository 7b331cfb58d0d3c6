/* libFuzzer target for the record decoder: any bytes under any key must
 * either decode to a consistent record or give KV_ECORRUPT, never crash or
 * read out of bounds; a decoded record re-encodes to the same bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include <kv/common.h>
#include "storage/expiry_filter.h"
#include "format/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < KVI_TOKEN_SIZE)
        return 0;
    /* The first 8 bytes play the storage key (token), the rest the record. */
    unsigned char key[KVI_TOKEN_SIZE];
    memcpy(key, data, KVI_TOKEN_SIZE);
    uint64_t token = 0;
    for (int i = 0; i < 8; i++)
        token = (token << 8) | key[i];
    const uint8_t *rec_bytes = data + KVI_TOKEN_SIZE;
    size_t rec_len = size - KVI_TOKEN_SIZE;

    kvi_record rec;
    if (kvi_record_decode(&rec, rec_bytes, rec_len, token) == KV_OK) {
        unsigned char *again = malloc(kvi_record_size(rec.value_len));
        if (!again)
            abort();
        kvi_record_encode(again, &rec, token);
        if (memcmp(again, rec_bytes, rec_len) != 0)
            abort();
        free(again);
    }
    kvi_expiry_decide((const char *)key, sizeof key, (const char *)rec_bytes,
                      rec_len, 1000, 10);

    /* Random bytes almost never pass the checksum, so also decode a copy
     * whose trailer is made right: that explores the parsing behind it. */
    if (rec_len >= KVI_RECORD_OVERHEAD) {
        unsigned char *fixed = malloc(rec_len);
        if (!fixed)
            abort();
        memcpy(fixed, rec_bytes, rec_len);
        size_t body = rec_len - KVI_RECORD_TRAILER;
        uint64_t sum = XXH3_64bits_withSeed(fixed, body, token);
        for (int i = 7; i >= 0; i--, sum >>= 8)
            fixed[body + (size_t)i] = (unsigned char)sum;
        if (kvi_record_decode(&rec, fixed, rec_len, token) == KV_OK) {
            if (rec.tombstone && rec.value_len != 0)
                abort();
            if (rec.value != fixed + KVI_RECORD_HEADER || rec.value_len != body - KVI_RECORD_HEADER)
                abort();
        }
        kvi_expiry_decide((const char *)key, sizeof key, (const char *)fixed,
                          rec_len, 1000, 10);
        free(fixed);
    }
    return 0;
}
