/* util/wipe.h - clearing secrets (the cluster secret, TLS keys) before
 * their memory is freed, where a plain memset may be optimised away. */
#ifndef KVI_WIPE_H
#define KVI_WIPE_H

#include <stddef.h>

static inline void kvi_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    for (size_t i = 0; p && i < n; i++)
        v[i] = 0;
}

#endif
