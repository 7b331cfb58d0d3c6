/* storage/digest.c - see digest.h. */
#include "storage/digest.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <kv/common.h>
#include "util/endian.h"

#define MAGIC "kvdg"
#define FORMAT 1u
#define HEADER (4u + 1u + 1u)
#define SEGMENT_BYTES 16u

typedef struct segment {
    _Atomic uint64_t hash;
    _Atomic uint64_t count; /* wraps through 0 only if a bug removes more than it added */
} segment;

struct kvi_digest {
    unsigned bits;
    size_t n;
    segment *segs;
    atomic_int ready; /* its segments hold the data's figures */
};

kvi_digest *kvi_digest_new(unsigned bits)
{
    if (bits < KVI_DIGEST_MIN_BITS || bits > KVI_DIGEST_MAX_BITS)
        return NULL;
    kvi_digest *d = malloc(sizeof *d);
    if (!d)
        return NULL;
    d->bits = bits;
    d->n = (size_t)1 << bits;
    atomic_init(&d->ready, 0);
    d->segs = calloc(d->n, sizeof *d->segs); /* all-zero bytes: atomics at 0 */
    if (!d->segs) {
        free(d);
        return NULL;
    }
    return d;
}

void kvi_digest_free(kvi_digest *d)
{
    if (!d)
        return;
    free(d->segs);
    free(d);
}

unsigned kvi_digest_bits(const kvi_digest *d)
{
    return d->bits;
}

size_t kvi_digest_segments(const kvi_digest *d)
{
    return d->n;
}

size_t kvi_digest_segment_of(const kvi_digest *d, uint64_t token)
{
    return (size_t)(token >> (64u - d->bits));
}

void kvi_digest_change(kvi_digest *d, uint64_t token, int had_old, uint64_t old_hash,
                       int has_new, uint64_t new_hash)
{
    segment *s = &d->segs[kvi_digest_segment_of(d, token)];
    uint64_t delta = (had_old ? old_hash : 0) ^ (has_new ? new_hash : 0);
    if (delta)
        atomic_fetch_xor_explicit(&s->hash, delta, memory_order_relaxed);
    if (has_new && !had_old)
        atomic_fetch_add_explicit(&s->count, 1, memory_order_relaxed);
    else if (had_old && !has_new)
        atomic_fetch_sub_explicit(&s->count, 1, memory_order_relaxed);
}

void kvi_digest_set(kvi_digest *d, size_t seg, uint64_t hash, uint64_t count)
{
    if (seg >= d->n)
        return;
    atomic_store_explicit(&d->segs[seg].hash, hash, memory_order_relaxed);
    atomic_store_explicit(&d->segs[seg].count, count, memory_order_relaxed);
}

int kvi_digest_ready(const kvi_digest *d)
{
    return atomic_load(&((kvi_digest *)d)->ready);
}

void kvi_digest_set_ready(kvi_digest *d, int ready)
{
    atomic_store(&d->ready, ready);
}

void kvi_digest_range(const kvi_digest *d, size_t first, size_t end, uint64_t *hash,
                      uint64_t *count)
{
    uint64_t h = 0, c = 0;
    if (end > d->n)
        end = d->n;
    for (size_t i = first; i < end; i++) {
        h ^= atomic_load_explicit(&d->segs[i].hash, memory_order_relaxed);
        c += atomic_load_explicit(&d->segs[i].count, memory_order_relaxed);
    }
    *hash = h;
    *count = c;
}

int kvi_digest_equal(const kvi_digest *a, const kvi_digest *b)
{
    if (a->bits != b->bits)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        if (atomic_load_explicit(&a->segs[i].hash, memory_order_relaxed) !=
                atomic_load_explicit(&b->segs[i].hash, memory_order_relaxed) ||
            atomic_load_explicit(&a->segs[i].count, memory_order_relaxed) !=
                atomic_load_explicit(&b->segs[i].count, memory_order_relaxed))
            return 0;
    }
    return 1;
}

void kvi_digest_encode(const kvi_digest *d, kvi_buf *out)
{
    size_t start = out->len;
    kvi_buf_raw(out, MAGIC, 4);
    kvi_buf_u8(out, FORMAT);
    kvi_buf_u8(out, (uint8_t)d->bits);
    for (size_t i = 0; i < d->n; i++) {
        kvi_buf_u64(out, atomic_load_explicit(&d->segs[i].hash, memory_order_relaxed));
        kvi_buf_u64(out, atomic_load_explicit(&d->segs[i].count, memory_order_relaxed));
    }
    if (!out->failed)
        kvi_buf_u64(out, XXH3_64bits(out->data + start, out->len - start));
}

int kvi_digest_decode(kvi_digest **out, const void *data, size_t len)
{
    *out = NULL;
    const unsigned char *p = data;
    if (len < HEADER + 8 || memcmp(p, MAGIC, 4) != 0 || p[4] != FORMAT)
        return KV_ECORRUPT;
    unsigned bits = p[5];
    if (bits < KVI_DIGEST_MIN_BITS || bits > KVI_DIGEST_MAX_BITS)
        return KV_ECORRUPT;
    size_t n = (size_t)1 << bits;
    if (len != HEADER + n * SEGMENT_BYTES + 8 ||
        XXH3_64bits(p, len - 8) != kvi_get_be64(p + len - 8))
        return KV_ECORRUPT;
    kvi_digest *d = kvi_digest_new(bits);
    if (!d)
        return KV_ENOMEM;
    const unsigned char *seg = p + HEADER;
    for (size_t i = 0; i < n; i++, seg += SEGMENT_BYTES) {
        atomic_store_explicit(&d->segs[i].hash, kvi_get_be64(seg), memory_order_relaxed);
        atomic_store_explicit(&d->segs[i].count, kvi_get_be64(seg + 8), memory_order_relaxed);
    }
    *out = d;
    return KV_OK;
}
