/* cluster/ae_plan.c - see ae_plan.h. */
#include "cluster/ae_plan.h"

#include <stdlib.h>
#include <string.h>

#include <kv/common.h>

/* A growing array a of n elements of `size` bytes (*cap allocated) with
 * room for one more: a itself, a larger copy, or NULL when out of memory
 * (a is then unchanged, and still the caller's to free). */
static void *with_room(void *a, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return a;
    size_t c = *cap ? *cap * 2 : 16;
    void *g = realloc(a, c * size);
    if (g)
        *cap = c;
    return g;
}

/* Appends [first, last] to a growing array, merged into the last range
 * when adjacent; -1 when out of memory. */
static int push_range(kvi_token_range **a, size_t *n, size_t *cap, uint64_t first, uint64_t last)
{
    if (*n && (*a)[*n - 1].last != UINT64_MAX && (*a)[*n - 1].last + 1 == first) {
        (*a)[*n - 1].last = last;
        return 0;
    }
    kvi_token_range *g = with_room(*a, *n, cap, sizeof *g);
    if (!g)
        return -1;
    *a = g;
    (*a)[(*n)++] = (kvi_token_range){first, last};
    return 0;
}

static int holds(const uint32_t *members, size_t n, int who)
{
    for (size_t i = 0; i < n; i++)
        if (members[i] == (uint32_t)who)
            return 1;
    return 0;
}

int kvi_ae_shared_ranges(const kvi_ring *r, int a, int b, kvi_token_range **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    size_t members = kvi_ring_members(r);
    if (a < 0 || b < 0 || (size_t)a >= members || (size_t)b >= members)
        return KV_EINVAL;
    size_t cap = 0;
    for (uint64_t t = 0;;) {
        uint64_t last = kvi_ring_range_last(r, t);
        const uint32_t *pref;
        size_t k = kvi_ring_preference(r, t, &pref);
        if (holds(pref, k, a) && holds(pref, k, b) && push_range(out, n, &cap, t, last) != 0) {
            free(*out);
            *out = NULL;
            *n = 0;
            return KV_ENOMEM;
        }
        if (last == UINT64_MAX)
            break;
        t = last + 1;
    }
    return KV_OK;
}

int kvi_ae_token_in(const kvi_token_range *ranges, size_t n, uint64_t token)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ranges[mid].last < token)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && ranges[lo].first <= token;
}

/* Growing arrays of segment ranges and of single segments. */
typedef struct seg_lists {
    kvi_ae_range *whole;
    size_t n_whole, cap_whole;
    uint32_t *partial;
    size_t n_partial, cap_partial;
} seg_lists;

static int add_whole(seg_lists *l, uint32_t first, uint32_t end)
{
    if (l->n_whole && l->whole[l->n_whole - 1].end == first) {
        l->whole[l->n_whole - 1].end = end;
        return 0;
    }
    kvi_ae_range *g = with_room(l->whole, l->n_whole, &l->cap_whole, sizeof *g);
    if (!g)
        return -1;
    l->whole = g;
    l->whole[l->n_whole++] = (kvi_ae_range){first, end};
    return 0;
}

static int add_partial(seg_lists *l, uint32_t seg)
{
    if (l->n_partial && l->partial[l->n_partial - 1] == seg)
        return 0; /* two ranges in one segment */
    uint32_t *g = with_room(l->partial, l->n_partial, &l->cap_partial, sizeof *g);
    if (!g)
        return -1;
    l->partial = g;
    l->partial[l->n_partial++] = seg;
    return 0;
}

int kvi_ae_segments(unsigned bits, const kvi_token_range *ranges, size_t n, kvi_ae_range **whole,
                    size_t *n_whole, uint32_t **partial, size_t *n_partial)
{
    seg_lists l = {0};
    unsigned shift = 64u - bits;
    uint64_t span = ((uint64_t)1 << shift) - 1; /* a segment's last offset */
    int failed = 0;
    for (size_t i = 0; i < n && !failed; i++) {
        uint64_t first = ranges[i].first, last = ranges[i].last;
        uint32_t sf = (uint32_t)(first >> shift), sl = (uint32_t)(last >> shift);
        int starts_whole = (first & span) == 0, ends_whole = (last & span) == span;
        /* Whole segments: from sf (or the next) to sl (or the one before). */
        uint64_t from = starts_whole ? sf : (uint64_t)sf + 1;
        uint64_t to = ends_whole ? (uint64_t)sl + 1 : sl; /* exclusive */
        if (!starts_whole)
            failed |= add_partial(&l, sf);
        if (from < to)
            failed |= add_whole(&l, (uint32_t)from, (uint32_t)to);
        if (!ends_whole && (sl != sf || starts_whole))
            failed |= add_partial(&l, sl);
    }
    if (failed) {
        free(l.whole);
        free(l.partial);
        *whole = NULL;
        *partial = NULL;
        *n_whole = *n_partial = 0;
        return KV_ENOMEM;
    }
    *whole = l.whole;
    *n_whole = l.n_whole;
    *partial = l.partial;
    *n_partial = l.n_partial;
    return KV_OK;
}

kvi_ae_verdict kvi_ae_classify(kvi_ae_range r, uint64_t my_hash, uint32_t my_keys,
                               uint64_t their_hash, uint32_t their_keys)
{
    if (my_hash == their_hash && my_keys == their_keys)
        return KVI_AE_SAME;
    if (my_keys == 0 && their_keys != 0)
        return KVI_AE_FILL;
    if (their_keys == 0 && my_keys != 0)
        return KVI_AE_PUSH;
    return r.end - r.first > 1 ? KVI_AE_DESCEND : KVI_AE_SEGMENT;
}

unsigned kvi_ae_fanout(size_t n_differing)
{
    return n_differing <= 16 ? 16u : 4u;
}

/* Bytewise order, a shorter key first on a common prefix. */
static int key_order(const kvi_ae_key *a, const kvi_ae_key *b)
{
    size_t common = a->len < b->len ? a->len : b->len;
    int c = memcmp(a->skey, b->skey, common);
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

size_t kvi_ae_compare_keys(const kvi_ae_key *mine, size_t n_mine, const kvi_ae_key *theirs,
                           size_t n_theirs, kvi_ae_diff_fn fn, void *ctx)
{
    size_t i = 0, j = 0, found = 0;
    while (i < n_mine || j < n_theirs) {
        int c = i == n_mine ? 1 : j == n_theirs ? -1 : key_order(&mine[i], &theirs[j]);
        if (c < 0) {
            fn(ctx, mine[i].skey, mine[i].len, KVI_AE_ONLY_MINE, 0);
            i++;
        } else if (c > 0) {
            fn(ctx, theirs[j].skey, theirs[j].len, KVI_AE_ONLY_THEIRS, theirs[j].hash);
            j++;
        } else {
            if (mine[i].hash != theirs[j].hash) {
                fn(ctx, mine[i].skey, mine[i].len, KVI_AE_DIFFERENT, theirs[j].hash);
                found++;
            }
            i++;
            j++;
            continue;
        }
        found++;
    }
    return found;
}
