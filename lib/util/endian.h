/* util/endian.h - big-endian loads and stores, independent of the host. */
#ifndef KVI_ENDIAN_H
#define KVI_ENDIAN_H

#include <stdint.h>

static inline void kvi_put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (unsigned char)(v & 0xff);
        v >>= 8;
    }
}

static inline uint64_t kvi_get_be64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

#endif
