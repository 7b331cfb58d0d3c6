/* format/state.c - clocks with siblings: writes, merges and encoding. */
#include "format/state.h"

#include <string.h>
#include <xxhash.h>

#include <kv/common.h>
#include "util/endian.h"
#include "util/error.h"

#define SIBLING_TOMBSTONE 0x01u

void kvi_state_init(kvi_state *s)
{
    kvi_vv_init(&s->clock);
    s->n = 0;
}

uint64_t kvi_state_version(const kvi_state *s)
{
    uint64_t v = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->sibs[i].version > v)
            v = s->sibs[i].version;
    return v;
}

int kvi_state_write(kvi_state *s, const kvi_vv *ctx, const char *node, kvi_sibling *value)
{
    /* Built on a copy, so that a refused write leaves the state untouched. */
    kvi_state next = *s;
    next.n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (!ctx || !kvi_dvv_superseded(ctx, &s->sibs[i].dot))
            next.sibs[next.n++] = s->sibs[i];
    if (next.n == KVI_STATE_MAX_SIBLINGS)
        return kvi_error(KV_ETOOBIG, "the key has %u siblings (concurrent values), the "
                                     "limit; write with the context of a read to resolve them",
                         KVI_STATE_MAX_SIBLINGS);
    kvi_dot dot;
    if (kvi_dvv_new_dot(&next.clock, ctx, node, &dot) != 0)
        return kvi_error(KV_EINVAL, "cannot mint a version for node \"%s\" (id too long, "
                                    "or the clock holds %u nodes)", node, KVI_DVV_MAX_NODES);
    /* One more than the highest version held here, superseded or not: a
     * causally later write is exactly one past what it saw, and the number
     * never goes backwards on a replica. */
    value->dot = dot;
    value->version = kvi_state_version(s) + 1;
    next.sibs[next.n++] = *value;
    *s = next;
    return KV_OK;
}

static int holds(const kvi_state *s, const kvi_dot *dot)
{
    for (size_t i = 0; i < s->n; i++)
        if (kvi_dot_equal(&s->sibs[i].dot, dot))
            return 1;
    return 0;
}

int kvi_state_merge(kvi_state *s, const kvi_state *other)
{
    kvi_dot mine[KVI_STATE_MAX_SIBLINGS], theirs[KVI_STATE_MAX_SIBLINGS];
    for (size_t i = 0; i < s->n; i++)
        mine[i] = s->sibs[i].dot;
    for (size_t i = 0; i < other->n; i++)
        theirs[i] = other->sibs[i].dot;
    kvi_state out;
    out.clock = s->clock;
    out.n = 0;
    if (kvi_vv_merge(&out.clock, &other->clock) != 0)
        return kvi_error(KV_EINVAL, "merged clock over %u nodes", KVI_DVV_MAX_NODES);
    for (size_t i = 0; i < s->n; i++)
        if (kvi_dvv_survives_merge(&s->sibs[i].dot, &other->clock, theirs, other->n))
            out.sibs[out.n++] = s->sibs[i];
    for (size_t i = 0; i < other->n; i++) {
        if (holds(s, &other->sibs[i].dot) ||
            !kvi_dvv_survives_merge(&other->sibs[i].dot, &s->clock, mine, s->n))
            continue;
        if (out.n == KVI_STATE_MAX_SIBLINGS)
            return kvi_error(KV_ETOOBIG, "merging would keep more than %u siblings (concurrent values)",
                             KVI_STATE_MAX_SIBLINGS);
        out.sibs[out.n++] = other->sibs[i];
    }
    *s = out;
    return KV_OK;
}

int kvi_state_equal(const kvi_state *a, const kvi_state *b)
{
    if (a->n != b->n || kvi_vv_compare(&a->clock, &b->clock) != KVI_VV_EQUAL)
        return 0;
    for (size_t i = 0; i < a->n; i++)
        if (!holds(b, &a->sibs[i].dot))
            return 0;
    return 1;
}

void kvi_state_encode(kvi_buf *b, const kvi_state *s, uint64_t token)
{
    size_t start = b->len;
    kvi_buf_u8(b, KVI_STATE_FORMAT);
    kvi_buf_u8(b, 0);
    kvi_vv_encode(b, &s->clock);
    kvi_buf_u8(b, (uint8_t)s->n);
    for (size_t i = 0; i < s->n; i++) {
        const kvi_sibling *x = &s->sibs[i];
        size_t len = strlen(x->dot.node);
        kvi_buf_u8(b, (uint8_t)len);
        kvi_buf_raw(b, x->dot.node, len);
        kvi_buf_u64(b, x->dot.counter);
        kvi_buf_u8(b, x->tombstone ? SIBLING_TOMBSTONE : 0);
        kvi_buf_u64(b, x->version);
        kvi_buf_u64(b, x->expiry_ms);
        kvi_buf_u64(b, x->write_ms);
        kvi_buf_bytes(b, x->value, x->tombstone ? 0 : x->value_len);
    }
    if (!b->failed)
        kvi_buf_u64(b, XXH3_64bits_withSeed(b->data + start, b->len - start, token));
}

int kvi_state_decode(kvi_state *s, const void *buf, size_t len, uint64_t token)
{
    kvi_state_init(s);
    const unsigned char *p = buf;
    if (len < 8 + 2)
        return KV_ECORRUPT;
    size_t body = len - 8;
    if (XXH3_64bits_withSeed(p, body, token) != kvi_get_be64(p + body))
        return KV_ECORRUPT;
    kvi_reader r = kvi_reader_init(p, body);
    if (kvi_read_u8(&r) != KVI_STATE_FORMAT || kvi_read_u8(&r) != 0)
        return KV_ECORRUPT;
    if (kvi_vv_decode(&s->clock, &r) != 0)
        return KV_ECORRUPT;
    unsigned n = kvi_read_u8(&r);
    if (r.failed || n == 0 || n > KVI_STATE_MAX_SIBLINGS)
        return KV_ECORRUPT;
    for (unsigned i = 0; i < n; i++) {
        kvi_sibling *x = &s->sibs[i];
        unsigned id_len = kvi_read_u8(&r);
        if (r.failed || id_len == 0 || id_len > KVI_DVV_MAX_ID || r.left < id_len)
            return KV_ECORRUPT;
        memcpy(x->dot.node, r.p, id_len);
        x->dot.node[id_len] = 0;
        r.p += id_len;
        r.left -= id_len;
        x->dot.counter = kvi_read_u64(&r);
        unsigned flags = kvi_read_u8(&r);
        x->version = kvi_read_u64(&r);
        x->expiry_ms = kvi_read_u64(&r);
        x->write_ms = kvi_read_u64(&r);
        kvi_bytes v = kvi_read_bytes(&r);
        if (r.failed || (flags & ~SIBLING_TOMBSTONE) || x->dot.counter == 0 ||
            memchr(x->dot.node, 0, id_len))
            return KV_ECORRUPT;
        x->tombstone = (flags & SIBLING_TOMBSTONE) != 0;
        if (x->tombstone && v.len)
            return KV_ECORRUPT;
        /* Every dot must be one the clock has seen, and appear once. */
        if (!kvi_vv_covers(&s->clock, &x->dot) || holds(s, &x->dot))
            return KV_ECORRUPT;
        x->value = v.data ? v.data : (const unsigned char *)"";
        x->value_len = v.len;
        s->n = i + 1;
    }
    return r.left == 0 ? KV_OK : KV_ECORRUPT;
}

uint64_t kvi_state_live_version(const kvi_state *s, uint64_t now_ms)
{
    uint64_t v = 0;
    for (size_t i = 0; i < s->n; i++) {
        const kvi_sibling *x = &s->sibs[i];
        if (!x->tombstone && (x->expiry_ms == 0 || x->expiry_ms > now_ms) && x->version > v)
            v = x->version;
    }
    return v;
}

