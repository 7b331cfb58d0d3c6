/* format/value.c - the kv_value returned by kv_get: one or more siblings, a
 * version, an expiry and a causal context, in a single allocation. */
#include "format/value.h"

#include <stdlib.h>
#include <string.h>

typedef struct sibling_ref {
    const unsigned char *data;
    size_t len;
} sibling_ref;

struct kv_value {
    uint64_t version;
    uint64_t expiry_ms;
    size_t n;                   /* siblings, >= 1 */
    sibling_ref *sibs;          /* into bytes[] */
    const unsigned char *context;
    size_t context_len;
    unsigned char bytes[];      /* sibling table, each value + NUL, context */
};

/* Lays out a value for n siblings whose bytes add up to total, with room
 * for a context of context_len bytes. */
static kv_value *alloc_value(size_t n, size_t total, size_t context_len)
{
    size_t table = n * sizeof(sibling_ref);
    kv_value *v = malloc(sizeof *v + table + total + n + context_len + 1);
    if (!v)
        return NULL;
    v->n = n;
    v->sibs = (sibling_ref *)(void *)v->bytes;
    v->context = v->bytes + table + total + n;
    v->context_len = context_len;
    return v;
}

kv_value *kvi_value_new(const void *data, size_t len, uint64_t version,
                        uint64_t expiry_ms)
{
    kv_value *v = alloc_value(1, len, 0);
    if (!v)
        return NULL;
    unsigned char *p = v->bytes + sizeof(sibling_ref);
    if (len)
        memcpy(p, data, len);
    p[len] = 0; /* convenience for text values; not part of len */
    v->sibs[0] = (sibling_ref){p, len};
    v->version = version;
    v->expiry_ms = expiry_ms;
    return v;
}

/* Later write first; equal times by node id, so every replica agrees. */
static int before(const kvi_sibling *a, const kvi_sibling *b)
{
    if (a->write_ms != b->write_ms)
        return a->write_ms > b->write_ms;
    int c = strcmp(a->dot.node, b->dot.node);
    if (c != 0)
        return c > 0;
    return a->dot.counter > b->dot.counter;
}

static int dead(const kvi_sibling *x, uint64_t now_ms)
{
    return x->tombstone || (x->expiry_ms && x->expiry_ms <= now_ms);
}

int kvi_value_from_state(kv_value **out, const kvi_state *s, uint64_t now_ms, size_t limit)
{
    *out = NULL;
    if (limit == 1) {
        /* Last write wins, deletes included: a delete later than every
         * live value leaves the key absent. */
        const kvi_sibling *latest = NULL;
        for (size_t i = 0; i < s->n; i++)
            if (!latest || before(&s->sibs[i], latest))
                latest = &s->sibs[i];
        if (!latest || dead(latest, now_ms))
            return KV_ENOTFOUND;
    }
    const kvi_sibling *live[KVI_STATE_MAX_SIBLINGS];
    size_t n = 0, total = 0;
    for (size_t i = 0; i < s->n; i++) {
        const kvi_sibling *x = &s->sibs[i];
        if (dead(x, now_ms))
            continue;
        /* Insertion sort: at most KVI_STATE_MAX_SIBLINGS entries. */
        size_t at = n++;
        while (at > 0 && before(x, live[at - 1])) {
            live[at] = live[at - 1];
            at--;
        }
        live[at] = x;
        total += x->value_len;
    }
    if (n == 0)
        return KV_ENOTFOUND;
    /* The version is the highest live one, whichever siblings are kept:
     * the number a CAS compares with. */
    uint64_t version = 0;
    for (size_t i = 0; i < n; i++)
        if (live[i]->version > version)
            version = live[i]->version;
    if (limit && n > limit) {
        total = 0;
        for (size_t i = 0; i < limit; i++)
            total += live[i]->value_len;
        n = limit;
    }
    kvi_buf context = {0};
    kvi_vv_encode(&context, &s->clock);
    if (context.failed) {
        kvi_buf_free(&context);
        return KV_ENOMEM;
    }
    kv_value *v = alloc_value(n, total, context.len);
    if (!v) {
        kvi_buf_free(&context);
        return KV_ENOMEM;
    }
    unsigned char *p = v->bytes + n * sizeof(sibling_ref);
    for (size_t i = 0; i < n; i++) {
        if (live[i]->value_len)
            memcpy(p, live[i]->value, live[i]->value_len);
        p[live[i]->value_len] = 0;
        v->sibs[i] = (sibling_ref){p, live[i]->value_len};
        p += live[i]->value_len + 1;
    }
    memcpy((unsigned char *)v->context, context.data, context.len);
    kvi_buf_free(&context);
    v->version = version;
    v->expiry_ms = live[0]->expiry_ms;
    *out = v;
    return KV_OK;
}

kv_value *kvi_value_new_siblings(const void *const *data, const size_t *len, size_t n,
                                 uint64_t version, uint64_t expiry_ms, const void *context,
                                 size_t context_len)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += len[i];
    kv_value *v = alloc_value(n, total, context_len);
    if (!v)
        return NULL;
    unsigned char *p = v->bytes + n * sizeof(sibling_ref);
    for (size_t i = 0; i < n; i++) {
        if (len[i])
            memcpy(p, data[i], len[i]);
        p[len[i]] = 0;
        v->sibs[i] = (sibling_ref){p, len[i]};
        p += len[i] + 1;
    }
    if (context_len)
        memcpy((unsigned char *)v->context, context, context_len);
    v->version = version;
    v->expiry_ms = expiry_ms;
    return v;
}

kv_value *kvi_value_dup(const kv_value *v)
{
    size_t total = 0;
    for (size_t i = 0; i < v->n; i++)
        total += v->sibs[i].len;
    kv_value *copy = alloc_value(v->n, total, v->context_len);
    if (!copy)
        return NULL;
    unsigned char *p = copy->bytes + v->n * sizeof(sibling_ref);
    for (size_t i = 0; i < v->n; i++) {
        if (v->sibs[i].len)
            memcpy(p, v->sibs[i].data, v->sibs[i].len);
        p[v->sibs[i].len] = 0;
        copy->sibs[i] = (sibling_ref){p, v->sibs[i].len};
        p += v->sibs[i].len + 1;
    }
    if (v->context_len)
        memcpy((unsigned char *)copy->context, v->context, v->context_len);
    copy->version = v->version;
    copy->expiry_ms = v->expiry_ms;
    return copy;
}

const void *kvi_value_data(const kv_value *v, size_t *len)
{
    if (len)
        *len = v ? v->sibs[0].len : 0;
    return v ? v->sibs[0].data : NULL;
}

uint64_t kvi_value_version(const kv_value *v)
{
    return v ? v->version : 0;
}

uint64_t kvi_value_expiry_ms(const kv_value *v)
{
    return v ? v->expiry_ms : 0;
}

size_t kvi_value_sibling_count(const kv_value *v)
{
    return v ? v->n : 0;
}

const void *kvi_value_sibling(const kv_value *v, size_t i, size_t *len)
{
    if (!v || i >= v->n) {
        if (len)
            *len = 0;
        return NULL;
    }
    if (len)
        *len = v->sibs[i].len;
    return v->sibs[i].data;
}

const void *kvi_value_context(const kv_value *v, size_t *len)
{
    if (len)
        *len = v ? v->context_len : 0;
    return v ? v->context : NULL;
}

void kvi_value_free(kv_value *v)
{
    free(v);
}
