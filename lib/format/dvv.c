/* format/dvv.c - version vectors and dots. */
#include "format/dvv.h"

#include <string.h>
#include "util/sorted.h"

#define VV_FORMAT 1u

void kvi_vv_init(kvi_vv *vv)
{
    vv->n = 0;
}

/* Position of node in the sorted entries, or where it would go. */
static size_t find(const kvi_vv *vv, const char *node, int *found)
{
    return kvi_sorted_find(vv->entries, vv->n, sizeof *vv->entries, offsetof(kvi_dot, node),
                           node, found);
}

uint64_t kvi_vv_get(const kvi_vv *vv, const char *node)
{
    int found;
    size_t i = find(vv, node, &found);
    return found ? vv->entries[i].counter : 0;
}

int kvi_vv_raise(kvi_vv *vv, const char *node, uint64_t counter)
{
    size_t len = strlen(node);
    if (len == 0 || len > KVI_DVV_MAX_ID)
        return -1;
    if (counter == 0)
        return 0;
    int found;
    size_t i = find(vv, node, &found);
    if (found) {
        if (vv->entries[i].counter < counter)
            vv->entries[i].counter = counter;
        return 0;
    }
    if (vv->n == KVI_DVV_MAX_NODES)
        return -1;
    memmove(&vv->entries[i + 1], &vv->entries[i], (vv->n - i) * sizeof vv->entries[0]);
    memcpy(vv->entries[i].node, node, len + 1);
    vv->entries[i].counter = counter;
    vv->n++;
    return 0;
}

int kvi_vv_merge(kvi_vv *into, const kvi_vv *other)
{
    for (size_t i = 0; i < other->n; i++)
        if (kvi_vv_raise(into, other->entries[i].node, other->entries[i].counter) != 0)
            return -1;
    return 0;
}

int kvi_vv_covers(const kvi_vv *vv, const kvi_dot *dot)
{
    return kvi_vv_get(vv, dot->node) >= dot->counter;
}

kvi_vv_order kvi_vv_compare(const kvi_vv *a, const kvi_vv *b)
{
    int a_ahead = 0, b_ahead = 0;
    size_t i = 0, j = 0;
    /* Both are sorted by id: one merge-like pass. */
    while (i < a->n || j < b->n) {
        int c = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->entries[i].node, b->entries[j].node);
        if (c < 0) {
            a_ahead = 1; /* a knows a node b does not */
            i++;
        } else if (c > 0) {
            b_ahead = 1;
            j++;
        } else {
            if (a->entries[i].counter > b->entries[j].counter)
                a_ahead = 1;
            else if (a->entries[i].counter < b->entries[j].counter)
                b_ahead = 1;
            i++;
            j++;
        }
    }
    if (a_ahead && b_ahead)
        return KVI_VV_CONCURRENT;
    if (a_ahead)
        return KVI_VV_AFTER;
    if (b_ahead)
        return KVI_VV_BEFORE;
    return KVI_VV_EQUAL;
}

void kvi_vv_encode(kvi_buf *b, const kvi_vv *vv)
{
    kvi_buf_u8(b, VV_FORMAT);
    kvi_buf_u8(b, (uint8_t)vv->n);
    for (size_t i = 0; i < vv->n; i++) {
        size_t len = strlen(vv->entries[i].node);
        kvi_buf_u8(b, (uint8_t)len);
        kvi_buf_raw(b, vv->entries[i].node, len);
        kvi_buf_u64(b, vv->entries[i].counter);
    }
}

int kvi_vv_decode(kvi_vv *vv, kvi_reader *r)
{
    kvi_vv_init(vv);
    if (kvi_read_u8(r) != VV_FORMAT)
        return -1;
    unsigned n = kvi_read_u8(r);
    if (r->failed || n > KVI_DVV_MAX_NODES)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        unsigned len = kvi_read_u8(r);
        if (r->failed || len == 0 || len > KVI_DVV_MAX_ID || r->left < len)
            return -1;
        kvi_dot *e = &vv->entries[i];
        memcpy(e->node, r->p, len);
        e->node[len] = 0;
        r->p += len;
        r->left -= len;
        e->counter = kvi_read_u64(r);
        if (r->failed || e->counter == 0 || memchr(e->node, 0, len))
            return -1;
        /* Strictly increasing ids: one encoding per vector. */
        if (i > 0 && strcmp(vv->entries[i - 1].node, e->node) >= 0)
            return -1;
        vv->n = i + 1;
    }
    return r->failed ? -1 : 0;
}

int kvi_dvv_new_dot(kvi_vv *clock, const kvi_vv *ctx, const char *node, kvi_dot *out)
{
    size_t len = strlen(node);
    if (len == 0 || len > KVI_DVV_MAX_ID)
        return -1;
    if (ctx && kvi_vv_merge(clock, ctx) != 0)
        return -1;
    uint64_t next = kvi_vv_get(clock, node) + 1;
    if (kvi_vv_raise(clock, node, next) != 0)
        return -1;
    memcpy(out->node, node, len + 1);
    out->counter = next;
    return 0;
}

int kvi_dvv_survives_merge(const kvi_dot *dot, const kvi_vv *other_clock,
                           const kvi_dot *other_dots, size_t other_n)
{
    if (!kvi_vv_covers(other_clock, dot))
        return 1; /* the other side never saw it */
    for (size_t i = 0; i < other_n; i++)
        if (kvi_dot_equal(&other_dots[i], dot))
            return 1; /* both hold it */
    return 0;
}
