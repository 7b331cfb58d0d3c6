/* storage/keylock.c - striped per-key locks. */
#include "storage/keylock.h"

#include <stdlib.h>

int kvi_keylock_init(kvi_keylock *kl)
{
    for (unsigned i = 0; i < KVI_KEYLOCK_STRIPES; i++) {
        if (pthread_mutex_init(&kl->stripes[i], NULL) != 0) {
            while (i--)
                pthread_mutex_destroy(&kl->stripes[i]);
            return -1;
        }
    }
    return 0;
}

void kvi_keylock_destroy(kvi_keylock *kl)
{
    for (unsigned i = 0; i < KVI_KEYLOCK_STRIPES; i++)
        pthread_mutex_destroy(&kl->stripes[i]);
}

void kvi_keylock_lock(kvi_keylock *kl, uint64_t token)
{
    pthread_mutex_lock(&kl->stripes[kvi_keylock_stripe(token)]);
}

void kvi_keylock_unlock(kvi_keylock *kl, uint64_t token)
{
    pthread_mutex_unlock(&kl->stripes[kvi_keylock_stripe(token)]);
}

static int compare_unsigned(const void *a, const void *b)
{
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

void kvi_keylock_lock_stripes(kvi_keylock *kl, unsigned *stripes, size_t *n)
{
    qsort(stripes, *n, sizeof *stripes, compare_unsigned);
    size_t unique = 0;
    for (size_t i = 0; i < *n; i++)
        if (unique == 0 || stripes[unique - 1] != stripes[i])
            stripes[unique++] = stripes[i];
    *n = unique;
    for (size_t i = 0; i < unique; i++)
        pthread_mutex_lock(&kl->stripes[stripes[i]]);
}

void kvi_keylock_unlock_stripes(kvi_keylock *kl, const unsigned *stripes, size_t n)
{
    for (size_t i = n; i-- > 0;)
        pthread_mutex_unlock(&kl->stripes[stripes[i]]);
}
