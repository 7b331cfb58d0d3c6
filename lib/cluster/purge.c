/* cluster/purge.c - tombstones purged once every replica has them (see
 * purge.h). */
#include "cluster/purge.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/replica_store.h"
#include "format/record.h"
#include "storage/keylock.h"
#include "storage/store.h"
#include "util/endian.h"
#include "util/error.h"

/* Replicas of a key at most (kvd --replicas: 1..16). */
#define MAX_REPLICAS 16u

int kvi_purge_dead_since(const kvi_state *s, uint64_t now_ms, uint64_t *dead_since)
{
    uint64_t latest = 0;
    for (size_t i = 0; i < s->n; i++) {
        const kvi_sibling *x = &s->sibs[i];
        uint64_t died;
        if (x->tombstone)
            died = x->write_ms;
        else if (x->expiry_ms && x->expiry_ms <= now_ms)
            died = x->expiry_ms;
        else
            return 0; /* a live value */
        latest = died > latest ? died : latest;
    }
    *dead_since = latest;
    return s->n > 0;
}

int kvi_purge_allowed(uint64_t dead_since, uint64_t now_ms, uint64_t hint_window_ms,
                      uint64_t margin_ms, const uint64_t *repaired_ms, size_t n)
{
    uint64_t safe = dead_since + hint_window_ms + margin_ms;
    if (n == 0 || safe < dead_since || now_ms < safe)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (repaired_ms[i] < safe)
            return 0;
    return 1;
}

typedef struct pass {
    const kvi_purge_config *cfg;
    const kvi_view *view;
    uint64_t now;
    kvi_purge_figures *fig;
    kvi_state *st;
    int rc;
} pass;

/* The record under skey is still rec: then it goes, under the key's lock. */
static int purge_if_unchanged(pass *p, const void *skey, size_t skey_len, const void *rec,
                              size_t rec_len)
{
    kvi_store *s = kvi_embedded_store(p->cfg->store);
    struct kvi_keylock *locks = kvi_embedded_locks(p->cfg->store);
    uint64_t token = kvi_get_be64(skey);
    kvi_keylock_lock(locks, token);
    kvi_slice now = {0};
    int rc = kvi_store_get(s, skey, skey_len, &now);
    int same = rc == KV_OK && now.len == rec_len && memcmp(now.data, rec, rec_len) == 0;
    if (rc == KV_OK)
        kvi_slice_release(&now);
    if (same)
        rc = kvi_store_purge(s, skey, skey_len);
    else if (rc == KV_OK || rc == KV_ENOTFOUND)
        rc = KV_OK; /* written since the pass read it: not dead any more, or not the same */
    kvi_keylock_unlock(locks, token);
    if (rc == KV_OK && same)
        p->fig->purged++;
    return rc;
}

static int visit(void *ctx, const void *key, size_t key_len, const void *value,
                 size_t value_len)
{
    pass *p = ctx;
    if (key_len <= KVI_TOKEN_SIZE)
        return 0;
    uint64_t token = kvi_get_be64(key);
    uint64_t dead_since;
    if (kvi_replica_state_decode(p->st, value, value_len, token) != KV_OK ||
        !kvi_purge_dead_since(p->st, p->now, &dead_since))
        return 0; /* live, or damaged (repair rewrites it first) */
    const uint32_t *pref;
    size_t n = kvi_ring_preference(p->view->ring, token, &pref);
    uint64_t repaired[MAX_REPLICAS];
    if (n > sizeof repaired / sizeof repaired[0])
        n = sizeof repaired / sizeof repaired[0];
    uint64_t oldest = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        repaired[i] = p->cfg->repaired(p->cfg->ctx, p->view->members[pref[i]].id);
        oldest = repaired[i] < oldest ? repaired[i] : oldest;
    }
    if (!kvi_purge_allowed(dead_since, p->now, p->cfg->hint_window_ms, p->cfg->margin_ms,
                           repaired, n)) {
        p->fig->pending++;
        /* Waiting on the clock alone: when it will be due. */
        uint64_t due = dead_since + p->cfg->hint_window_ms + p->cfg->margin_ms;
        if (n && oldest >= due && (!p->fig->next_due_ms || due < p->fig->next_due_ms))
            p->fig->next_due_ms = due;
        return 0;
    }
    p->rc = purge_if_unchanged(p, key, key_len, value, value_len);
    return p->rc != KV_OK;
}

int kvi_purge_pass(const kvi_purge_config *cfg, const kvi_view *view, uint64_t now_ms,
                   kvi_purge_figures *out)
{
    memset(out, 0, sizeof *out);
    pass p = {.cfg = cfg, .view = view, .now = now_ms, .fig = out,
              .st = malloc(sizeof(kvi_state))};
    if (!p.st)
        return kvi_error(KV_ENOMEM, "out of memory purging tombstones");
    int rc = kvi_store_data_scan(kvi_embedded_store(cfg->store), NULL, 0, visit, &p);
    free(p.st);
    return rc != KV_OK ? rc : p.rc;
}
