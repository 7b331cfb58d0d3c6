/* util/sorted.h - binary search in an array of structs kept sorted by a
 * NUL-terminated name stored inline in each element (version vector
 * entries by node id, gossip entries by member id). */
#ifndef KVI_SORTED_H
#define KVI_SORTED_H

#include <stddef.h>
#include <string.h>

/* The index of the element of base[0..n) (each `size` bytes, its name at
 * byte `name_offset`) whose name is `name`, with *found = 1; otherwise where
 * it would be inserted, with *found = 0. */
static inline size_t kvi_sorted_find(const void *base, size_t n, size_t size,
                                     size_t name_offset, const char *name, int *found)
{
    const char *p = base;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(p + mid * size + name_offset, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

#endif
