/* format/entry_hash.c - see entry_hash.h. */
#include "format/entry_hash.h"

#include <xxhash.h>

#include <kv/common.h>
#include "format/message.h"
#include "format/record.h"
#include "format/state.h"
#include "util/endian.h"

/* Seeds that keep the three kinds of hash apart. */
#define SEED_STATE 0x6b762d7374617465ull   /* "kv-state" */
#define SEED_FORMAT_1 0x6b762d666f726d31ull /* "kv-form1" */
#define SEED_CORRUPT 0x6b762d636f727275ull  /* "kv-corru" */

uint64_t kvi_entry_hash_corrupt(const void *skey, size_t skey_len)
{
    return XXH3_64bits_withSeed(skey, skey_len, SEED_CORRUPT);
}

/* Skips n bytes; 0 when they are not there. */
static int skip(kvi_reader *r, size_t n)
{
    if (r->failed || r->left < n) {
        r->failed = 1;
        return 0;
    }
    r->p += n;
    r->left -= n;
    return 1;
}

/* The state's own hash, from its encoding (state.h) without decoding it:
 * the version vector's bytes (sorted by node id, so canonical), XORed
 * with the hash of each sibling's fixed part (dot, flags, version,
 * expiry, write time: contiguous in the encoding). 0 and *ok = 0 when the
 * bytes do not parse. */
static uint64_t state_hash(const unsigned char *p, size_t body, int *ok)
{
    kvi_reader r = kvi_reader_init(p + 2, body - 2); /* format, flags */
    const unsigned char *vv = r.p;
    if (kvi_read_u8(&r) != 1) /* the version vector's format */
        return *ok = 0, 0;
    unsigned entries = kvi_read_u8(&r);
    for (unsigned i = 0; i < entries && !r.failed; i++)
        skip(&r, kvi_read_u8(&r) + 8u);
    if (r.failed)
        return *ok = 0, 0;
    uint64_t h = XXH3_64bits(vv, (size_t)(r.p - vv));
    unsigned n = kvi_read_u8(&r);
    if (r.failed || n == 0 || n > KVI_STATE_MAX_SIBLINGS)
        return *ok = 0, 0;
    for (unsigned i = 0; i < n; i++) {
        const unsigned char *sib = r.p;
        unsigned id_len = kvi_read_u8(&r);
        if (!skip(&r, id_len + 8u + 1u + 24u))
            return *ok = 0, 0;
        /* XOR, so the order siblings are stored in does not count; dots
         * are unique in a state, so no two siblings cancel out. */
        h ^= XXH3_64bits_withSeed(sib, (size_t)(r.p - sib), SEED_STATE);
        kvi_read_bytes(&r); /* the value */
        if (r.failed)
            return *ok = 0, 0;
    }
    *ok = r.left == 0;
    return h;
}

uint64_t kvi_entry_hash(const void *skey, size_t skey_len, const void *rec, size_t rec_len)
{
    const unsigned char *p = rec;
    if (skey_len < KVI_TOKEN_SIZE || rec_len < KVI_RECORD_TRAILER + 2)
        return kvi_entry_hash_corrupt(skey, skey_len);
    uint64_t token = kvi_get_be64(skey);
    size_t body = rec_len - KVI_RECORD_TRAILER;
    if (XXH3_64bits_withSeed(p, body, token) != kvi_get_be64(p + body))
        return kvi_entry_hash_corrupt(skey, skey_len);
    if (p[0] == KVI_STATE_FORMAT) {
        int ok;
        uint64_t h = state_hash(p, body, &ok);
        if (!ok)
            return kvi_entry_hash_corrupt(skey, skey_len);
        return XXH3_64bits_withSeed(skey, skey_len, h);
    }
    kvi_record r;
    if (kvi_record_decode(&r, p, rec_len, token) != KV_OK)
        return kvi_entry_hash_corrupt(skey, skey_len);
    return XXH3_64bits_withSeed(skey, skey_len, SEED_FORMAT_1 ^ r.version);
}
