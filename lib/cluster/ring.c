/* cluster/ring.c - vnode tokens, preference lists and ownership shares. */
#include "cluster/ring.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <kv/common.h>
#include "util/error.h"

typedef struct vnode {
    uint64_t token;
    uint32_t member;
} vnode;

struct kvi_ring {
    char **ids;
    size_t n_members;
    unsigned replicas;  /* as asked */
    unsigned list_len;  /* min(replicas, members) */
    vnode *vnodes;      /* sorted by token */
    size_t n_vnodes;
    uint32_t *lists;    /* n_vnodes x list_len preference lists */
};

uint64_t kvi_ring_vnode_token(const char *node_id, unsigned i)
{
    /* Hash the id and the index together. (Seeding the hash with the index
     * instead looks equivalent but is not: for ids of 1-3 bytes xxh3 folds
     * the seed into the input linearly, and ids like "n10" and "n11" then
     * collide on whole runs of tokens.) */
    unsigned char buf[KVI_RING_MAX_ID + 4];
    size_t len = strlen(node_id);
    if (len > KVI_RING_MAX_ID)
        len = KVI_RING_MAX_ID;
    memcpy(buf, node_id, len);
    buf[len] = (unsigned char)(i >> 24);
    buf[len + 1] = (unsigned char)(i >> 16);
    buf[len + 2] = (unsigned char)(i >> 8);
    buf[len + 3] = (unsigned char)i;
    return XXH3_64bits(buf, len + 4);
}

static int compare_vnodes(const void *a, const void *b)
{
    const vnode *x = a, *y = b;
    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    /* Equal tokens (astronomically rare) are ordered by member, so every
     * process still builds the same ring. */
    return (x->member > y->member) - (x->member < y->member);
}

static int compare_ids(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Walks clockwise from vnode index `start`, collecting distinct members.
 * It stops once every member is found: a caller asking for "all of them"
 * (a client's write, on every request) would otherwise walk the whole ring
 * (2% of a cluster benchmark's CPU, in kvbench's own routing). */
static size_t walk_from(const kvi_ring *r, size_t start, uint32_t *out, size_t max)
{
    if (max > r->n_members)
        max = r->n_members;
    size_t found = 0;
    size_t at = start;
    for (size_t step = 0; step < r->n_vnodes && found < max; step++) {
        uint32_t m = r->vnodes[at].member;
        at = at + 1 == r->n_vnodes ? 0 : at + 1;
        size_t k = 0;
        while (k < found && out[k] != m)
            k++;
        if (k == found)
            out[found++] = m;
    }
    return found;
}

int kvi_ring_build(kvi_ring **out, const char *const *node_ids, size_t n,
                   unsigned vnodes, unsigned replicas)
{
    *out = NULL;
    if (n == 0 || n > KVI_RING_MAX_MEMBERS)
        return kvi_error(KV_EINVAL, "a ring needs 1 to %u members, not %zu",
                         KVI_RING_MAX_MEMBERS, n);
    if (vnodes == 0 || vnodes > KVI_RING_MAX_VNODES)
        return kvi_error(KV_EINVAL, "vnodes must be 1 to %u, not %u", KVI_RING_MAX_VNODES, vnodes);
    if (replicas == 0 || replicas > 16)
        return kvi_error(KV_EINVAL, "replicas must be 1 to 16, not %u", replicas);
    kvi_ring *r = calloc(1, sizeof *r);
    if (!r)
        return kvi_error(KV_ENOMEM, "out of memory building the ring");
    r->n_members = n;
    r->replicas = replicas;
    r->list_len = replicas < n ? replicas : (unsigned)n;
    r->n_vnodes = n * vnodes;
    r->ids = calloc(n, sizeof *r->ids);
    r->vnodes = malloc(r->n_vnodes * sizeof *r->vnodes);
    r->lists = malloc(r->n_vnodes * r->list_len * sizeof *r->lists);
    if (!r->ids || !r->vnodes || !r->lists) {
        kvi_ring_free(r);
        return kvi_error(KV_ENOMEM, "out of memory building the ring");
    }
    for (size_t i = 0; i < n; i++) {
        if (!node_ids[i] || !*node_ids[i] || !(r->ids[i] = strdup(node_ids[i]))) {
            int empty = !node_ids[i] || !*node_ids[i];
            kvi_ring_free(r);
            return empty ? kvi_error(KV_EINVAL, "member %zu has an empty node id", i)
                         : kvi_error(KV_ENOMEM, "out of memory building the ring");
        }
    }
    /* Duplicate ids would put one node in a preference list twice. */
    char **sorted = malloc(n * sizeof *sorted);
    if (!sorted) {
        kvi_ring_free(r);
        return kvi_error(KV_ENOMEM, "out of memory building the ring");
    }
    memcpy(sorted, r->ids, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, compare_ids);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(sorted[i - 1], sorted[i]) == 0) {
            int rc = kvi_error(KV_EINVAL, "node id \"%s\" appears twice", sorted[i]);
            free(sorted);
            kvi_ring_free(r);
            return rc;
        }
    }
    free(sorted);

    for (size_t m = 0; m < n; m++)
        for (unsigned i = 0; i < vnodes; i++)
            r->vnodes[m * vnodes + i] = (vnode){kvi_ring_vnode_token(r->ids[m], i), (uint32_t)m};
    qsort(r->vnodes, r->n_vnodes, sizeof *r->vnodes, compare_vnodes);
    for (size_t v = 0; v < r->n_vnodes; v++)
        walk_from(r, v, r->lists + v * r->list_len, r->list_len);
    *out = r;
    return KV_OK;
}

void kvi_ring_free(kvi_ring *r)
{
    if (!r)
        return;
    for (size_t i = 0; r->ids && i < r->n_members; i++)
        free(r->ids[i]);
    free(r->ids);
    free(r->vnodes);
    free(r->lists);
    free(r);
}

size_t kvi_ring_members(const kvi_ring *r)
{
    return r->n_members;
}

unsigned kvi_ring_replicas(const kvi_ring *r)
{
    return r->replicas;
}

const char *kvi_ring_member_id(const kvi_ring *r, size_t i)
{
    return i < r->n_members ? r->ids[i] : NULL;
}

int kvi_ring_find(const kvi_ring *r, const char *node_id)
{
    for (size_t i = 0; i < r->n_members; i++)
        if (strcmp(r->ids[i], node_id) == 0)
            return (int)i;
    return -1;
}

/* Index of the first vnode whose token is >= token, wrapping to 0. */
static size_t owner_vnode(const kvi_ring *r, uint64_t token)
{
    size_t lo = 0, hi = r->n_vnodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->vnodes[mid].token < token)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo == r->n_vnodes ? 0 : lo;
}

size_t kvi_ring_preference(const kvi_ring *r, uint64_t token, const uint32_t **out)
{
    *out = r->lists + owner_vnode(r, token) * r->list_len;
    return r->list_len;
}

/* Whether vnodes a and b have the same members in their preference lists
 * (in any order). */
static int same_homes(const kvi_ring *r, size_t a, size_t b)
{
    const uint32_t *x = r->lists + a * r->list_len, *y = r->lists + b * r->list_len;
    for (unsigned i = 0; i < r->list_len; i++) {
        unsigned k = 0;
        while (k < r->list_len && y[k] != x[i])
            k++;
        if (k == r->list_len)
            return 0;
    }
    return 1;
}

uint64_t kvi_ring_range_last(const kvi_ring *r, uint64_t token)
{
    /* Past the highest vnode token the range wraps to the first vnode: its
     * part before the wrap ends at the top of the token space. */
    if (r->n_vnodes == 0 || token > r->vnodes[r->n_vnodes - 1].token)
        return UINT64_MAX;
    size_t v = owner_vnode(r, token);
    while (v + 1 < r->n_vnodes && same_homes(r, v, v + 1))
        v++;
    /* The last vnode's stretch runs on to the top when the wrapping range
     * (vnode 0's) has the same homes. */
    if (v + 1 == r->n_vnodes && same_homes(r, v, 0))
        return UINT64_MAX;
    return r->vnodes[v].token;
}

size_t kvi_ring_walk(const kvi_ring *r, uint64_t token, uint32_t *out, size_t max)
{
    return walk_from(r, owner_vnode(r, token), out, max);
}

void kvi_ring_shares(const kvi_ring *r, double *primary, double *replica)
{
    for (size_t i = 0; i < r->n_members; i++) {
        if (primary)
            primary[i] = 0;
        if (replica)
            replica[i] = 0;
    }
    const double space = 18446744073709551616.0; /* 2^64 */
    for (size_t v = 0; v < r->n_vnodes; v++) {
        /* Vnode v owns (previous token, its token], wrapping at 2^64. */
        uint64_t prev = r->vnodes[v ? v - 1 : r->n_vnodes - 1].token;
        uint64_t arc = r->vnodes[v].token - prev; /* unsigned wrap is the ring */
        double share = r->n_vnodes == 1 ? 1.0 : (double)arc / space;
        const uint32_t *list = r->lists + v * r->list_len;
        if (primary)
            primary[list[0]] += share;
        for (unsigned k = 0; replica && k < r->list_len; k++)
            replica[list[k]] += share;
    }
}
