/*
 * storage/keylock.h - striped per-key locks.
 *
 * Every write of the embedded store is a read-modify-write (the new version
 * is the old one plus one), so writers of the same key must not interleave.
 * A fixed array of mutexes indexed by the key's token gives that without a
 * lock table that grows with the key space; two keys that share a stripe
 * merely wait for each other.
 */
#ifndef KVI_KEYLOCK_H
#define KVI_KEYLOCK_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define KVI_KEYLOCK_STRIPES 1024u

typedef struct kvi_keylock {
    pthread_mutex_t stripes[KVI_KEYLOCK_STRIPES];
} kvi_keylock;

int kvi_keylock_init(kvi_keylock *kl);
void kvi_keylock_destroy(kvi_keylock *kl);

static inline unsigned kvi_keylock_stripe(uint64_t token)
{
    return (unsigned)(token % KVI_KEYLOCK_STRIPES);
}

void kvi_keylock_lock(kvi_keylock *kl, uint64_t token);
void kvi_keylock_unlock(kvi_keylock *kl, uint64_t token);

/* Locks several stripes without deadlock: sorts and de-duplicates the
 * stripe indexes in place (stripes[0..*n)) and locks them in ascending
 * order. Unlock with kvi_keylock_unlock_stripes on the same array. */
void kvi_keylock_lock_stripes(kvi_keylock *kl, unsigned *stripes, size_t *n);
void kvi_keylock_unlock_stripes(kvi_keylock *kl, const unsigned *stripes, size_t n);

#endif
