/* cluster/paxos_acceptor.c - PREPARE, PROPOSE and COMMIT on this node's store. */
#include "cluster/paxos_acceptor.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/replica_store.h"
#include "format/state.h"
#include "storage/keylock.h"
#include "format/record.h"
#include "util/error.h"

/* A key's record, loaded under its lock (for the sweeper). */
typedef struct acceptor_io {
    kvi_embedded *e;
    uint64_t token;
    unsigned char *skey;
    size_t skey_len;
    kvi_buf record;   /* the loaded record's bytes; the acceptor points into it */
    kvi_acceptor a;
} acceptor_io;

#define FLOOR_NAME "paxos.floor"

/* The node's promise floor (the zero ballot when none): every key whose
 * record was removed is treated as promised at least this much. */
static int load_floor(kvi_store *s, kvi_ballot *floor)
{
    memset(floor, 0, sizeof *floor);
    char *raw = NULL;
    size_t len = 0;
    int rc = kvi_store_meta_get(s, FLOOR_NAME, &raw, &len);
    if (rc == KV_ENOTFOUND)
        return KV_OK;
    if (rc != KV_OK)
        return rc;
    kvi_reader r = kvi_reader_init(raw, len);
    if (kvi_ballot_read(&r, floor) != 0 || kvi_reader_done(&r) != 0)
        rc = kvi_error(KV_ECORRUPT, "the stored Paxos promise floor is malformed");
    free(raw);
    return rc;
}

/* Loads a key's record into *a (its bytes in *holder), with the floor
 * applied; the caller holds the key's lock. */
static int load_record(kvi_embedded *e, const unsigned char *skey, size_t skey_len,
                       uint64_t token, const kvi_ballot *floor, kvi_buf *holder,
                       kvi_acceptor *a)
{
    kvi_slice slice = {0};
    kvi_acceptor_init(a);
    int rc = kvi_store_paxos_get(kvi_embedded_store(e), skey, skey_len, &slice);
    if (rc == KV_OK) {
        kvi_buf_reset(holder);
        kvi_buf_raw(holder, slice.data, slice.len);
        kvi_slice_release(&slice);
        rc = holder->failed ? kvi_error(KV_ENOMEM, "out of memory reading a Paxos record")
                            : kvi_acceptor_decode(a, holder->data, holder->len, token);
    } else if (rc == KV_ENOTFOUND) {
        rc = KV_OK;
    }
    if (rc == KV_OK && kvi_ballot_compare(floor, &a->promised) > 0)
        a->promised = *floor;
    return rc;
}

static int io_begin(acceptor_io *io, kvi_embedded *e, const void *key, size_t key_len)
{
    memset(io, 0, sizeof *io);
    io->e = e;
    io->token = kvi_key_token(key, key_len);
    io->skey_len = KVI_TOKEN_SIZE + key_len;
    io->skey = malloc(io->skey_len);
    if (!io->skey)
        return kvi_error(KV_ENOMEM, "out of memory handling a Paxos record");
    kvi_storage_key(io->skey, io->token, key, key_len);
    kvi_keylock_lock(kvi_embedded_locks(e), io->token);
    kvi_ballot floor;
    int rc = load_floor(kvi_embedded_store(e), &floor);
    if (rc == KV_OK)
        rc = load_record(e, io->skey, io->skey_len, io->token, &floor, &io->record, &io->a);
    return rc;
}

static void io_end(acceptor_io *io)
{
    if (io->skey) {
        kvi_keylock_unlock(kvi_embedded_locks(io->e), io->token);
        free(io->skey);
    }
    kvi_buf_free(&io->record);
}

/* ------------------------------------------------------------ messages */

/* The key's replicated state for a prepare's answer, re-encoded as a state
 * when it is a format-1 record (the embedded path). *has: whether any. */
static int read_data(kvi_embedded *e, const kvi_paxos_msg *m, uint64_t token, kvi_buf *out,
                     int *has)
{
    *has = 0;
    kvi_state *st = malloc(sizeof *st);
    kvi_buf holder = {0};
    if (!st)
        return kvi_error(KV_ENOMEM, "out of memory reading for a prepare");
    int rc = kvi_replica_read(st, &holder, e, m->key, m->key_len);
    if (rc == KV_OK) {
        *has = 1;
        if (holder.len > 0 && holder.data[0] != KVI_STATE_FORMAT) {
            kvi_state_encode(out, st, token);
        } else {
            kvi_buf_free(out);
            *out = holder;
            holder = (kvi_buf){0};
        }
        rc = out->failed ? kvi_error(KV_ENOMEM, "out of memory reading for a prepare") : KV_OK;
    } else if (rc == KV_ENOTFOUND) {
        rc = KV_OK;
    }
    kvi_buf_free(&holder);
    free(st);
    return rc;
}

/* A commit's data: the held state merged with the proposal's, encoded. */
static int commit_data(kvi_embedded *e, const kvi_paxos_msg *m, const kvi_state *incoming,
                       uint64_t token, kvi_buf *out)
{
    kvi_state *held = malloc(sizeof *held);
    kvi_buf holder = {0};
    int rc = held ? kvi_replica_read(held, &holder, e, m->key, m->key_len)
                  : kvi_error(KV_ENOMEM, "out of memory committing");
    if (rc == KV_ENOTFOUND) {
        kvi_state_init(held);
        rc = KV_OK;
    }
    if (rc == KV_OK)
        rc = kvi_state_merge(held, incoming);
    if (rc == KV_OK) {
        kvi_state_encode(out, held, token);
        rc = out->failed ? kvi_error(KV_ENOMEM, "out of memory committing") : KV_OK;
    }
    kvi_buf_free(&holder);
    free(held);
    return rc;
}

/* One message, under its key's lock: the acceptor's rule, the writes it
 * makes (into wb; *dirty set) and its answer. *sync: a promise or an accept
 * to sync. */
static int apply_one(kvi_embedded *e, kvi_store_batch *wb, const kvi_ballot *floor,
                     kvi_paxos_msg *m, int *sync, int *dirty)
{
    uint64_t token = kvi_key_token(m->key, m->key_len);
    size_t skey_len = KVI_TOKEN_SIZE + m->key_len;
    unsigned char *skey = malloc(skey_len);
    kvi_state *incoming = malloc(sizeof *incoming);
    kvi_buf holder = {0}, data = {0}, rec = {0};
    kvi_acceptor a;
    int rc = skey && incoming ? KV_OK : kvi_error(KV_ENOMEM, "out of memory handling Paxos");
    if (rc == KV_OK) {
        kvi_storage_key(skey, token, m->key, m->key_len);
        rc = load_record(e, skey, skey_len, token, floor, &holder, &a);
    }
    int granted = 0, changed = 0, has_data = 0;
    if (rc == KV_OK && m->kind == KVI_PAXOS_PREPARE) {
        changed = granted = kvi_acceptor_prepare(&a, &m->ballot);
        /* The read a prepare carries. No commit below the promise can land
         * between the two: the key's lock is held. */
        rc = read_data(e, m, token, &data, &has_data);
    } else if (rc == KV_OK && m->kind == KVI_PAXOS_PROPOSE) {
        changed = granted = kvi_acceptor_propose(&a, &m->ballot, m->proposal, m->proposal_len);
    } else if (rc == KV_OK) {
        uint64_t id = 0;
        const void *st = NULL;
        size_t st_len = 0;
        if (kvi_proposal_split(m->proposal, m->proposal_len, &id, &st, &st_len) != 0 ||
            kvi_state_decode(incoming, st, st_len, token) != KV_OK)
            rc = kvi_error(KV_EINVAL, "a commit carries a malformed proposal");
        granted = 1; /* a commit below the last one is covered by it: nothing to do */
        if (rc == KV_OK && kvi_acceptor_commit(&a, &m->ballot, kvi_state_version(incoming))) {
            kvi_acceptor_remember(&a, kvi_state_version(incoming), id);
            changed = 1;
            rc = commit_data(e, m, incoming, token, &data);
            if (rc == KV_OK)
                kvi_store_batch_put(wb, skey, skey_len, data.data, data.len);
        }
    }
    if (rc == KV_OK && changed) {
        kvi_acceptor_encode(&rec, &a, token);
        if (rec.failed)
            rc = kvi_error(KV_ENOMEM, "out of memory writing a Paxos record");
        else
            kvi_store_batch_put_paxos(wb, skey, skey_len, rec.data, rec.len);
        *sync |= m->kind != KVI_PAXOS_COMMIT;
        *dirty = 1;
    }
    if (rc == KV_OK) {
        kvi_bytes d = {data.data, data.len};
        kvi_paxos_answer_encode(&m->answer, granted, &a, has_data ? &d : NULL);
        if (m->answer.failed)
            rc = kvi_error(KV_ENOMEM, "out of memory answering a Paxos message");
    }
    kvi_buf_free(&rec);
    kvi_buf_free(&data);
    kvi_buf_free(&holder);
    free(incoming);
    free(skey);
    return rc;
}

/* One pass over messages of distinct keys (the others wait for the next):
 * every key locked, each message applied, one atomic write for all of
 * them, synced when it holds a promise or an accept. */
static void apply_pass(kvi_embedded *e, kvi_paxos_msg **pass, size_t n, const kvi_ballot *floor,
                       int unsynced)
{
    unsigned *stripes = malloc(n * sizeof *stripes);
    kvi_store *s = kvi_embedded_store(e);
    kvi_store_batch *wb = kvi_store_batch_new(s);
    if (!stripes || !wb) {
        for (size_t i = 0; i < n; i++)
            pass[i]->status = kvi_error(KV_ENOMEM, "out of memory handling Paxos");
        free(stripes);
        kvi_store_batch_free(wb);
        return;
    }
    for (size_t i = 0; i < n; i++)
        stripes[i] = kvi_keylock_stripe(kvi_key_token(pass[i]->key, pass[i]->key_len));
    size_t locked = n;
    kvi_keylock_lock_stripes(kvi_embedded_locks(e), stripes, &locked);
    int sync = 0, dirty = 0;
    for (size_t i = 0; i < n; i++)
        pass[i]->status = apply_one(e, wb, floor, pass[i], &sync, &dirty);
    /* Nothing to write when every message only asked (a refused promise,
     * a read's zero ballot, a commit already covered). */
    if (dirty) {
        /* Commits alone need no sync: the value is chosen, synced in the
         * accepts of a majority; if a crash loses the commit, the accept
         * it cleared is back and the next round finishes it again. */
        int rc = sync && !unsynced ? kvi_store_write_synced(s, wb)
                                   : kvi_store_write_unsynced(s, wb);
        for (size_t i = 0; rc != KV_OK && i < n; i++)
            if (pass[i]->status == KV_OK)
                pass[i]->status = rc; /* nothing was written: no answer holds */
    }
    kvi_keylock_unlock_stripes(kvi_embedded_locks(e), stripes, locked);
    kvi_store_batch_free(wb);
    free(stripes);
}

int kvi_paxos_apply(kvi_embedded *e, kvi_paxos_msg *msgs, size_t n)
{
    return kvi_paxos_apply_unsynced(e, msgs, n, 0);
}

int kvi_paxos_apply_unsynced(kvi_embedded *e, kvi_paxos_msg *msgs, size_t n, int unsynced)
{
    kvi_ballot floor;
    int rc = load_floor(kvi_embedded_store(e), &floor);
    kvi_paxos_msg **pass = rc == KV_OK ? malloc(n * sizeof *pass) : NULL;
    if (rc == KV_OK && !pass && n)
        rc = kvi_error(KV_ENOMEM, "out of memory handling Paxos");
    if (rc != KV_OK) {
        for (size_t i = 0; i < n; i++)
            msgs[i].status = rc;
        return rc;
    }
    for (size_t i = 0; i < n; i++)
        msgs[i].status = 1; /* not yet applied */
    /* Two messages of one key go in different passes, in their order. */
    for (size_t done = 0; done < n;) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (msgs[i].status != 1)
                continue;
            int clash = 0; /* an earlier message of the key waits (or is in this pass) */
            for (size_t j = 0; j < i && !clash; j++)
                clash = msgs[j].status == 1 && msgs[j].key_len == msgs[i].key_len &&
                        memcmp(msgs[j].key, msgs[i].key, msgs[i].key_len) == 0;
            if (!clash)
                pass[k++] = &msgs[i];
        }
        apply_pass(e, pass, k, &floor, unsynced);
        done += k;
    }
    free(pass);
    return KV_OK;
}

/* One message through kvi_paxos_apply. */
static int apply_single(kvi_embedded *e, int kind, const void *key, size_t key_len,
                        const kvi_ballot *ballot, const void *proposal, size_t proposal_len,
                        kvi_buf *answer)
{
    kvi_paxos_msg m = {.kind = kind, .key = key, .key_len = key_len, .ballot = *ballot,
                       .proposal = proposal, .proposal_len = proposal_len};
    kvi_paxos_apply(e, &m, 1);
    if (m.status == KV_OK)
        kvi_buf_raw(answer, m.answer.data, m.answer.len);
    kvi_buf_free(&m.answer);
    if (m.status == KV_OK && answer->failed)
        return kvi_error(KV_ENOMEM, "out of memory answering a Paxos message");
    return m.status;
}

int kvi_paxos_on_prepare(kvi_embedded *e, const void *key, size_t key_len,
                         const kvi_ballot *ballot, kvi_buf *answer)
{
    return apply_single(e, KVI_PAXOS_PREPARE, key, key_len, ballot, NULL, 0, answer);
}

int kvi_paxos_on_propose(kvi_embedded *e, const void *key, size_t key_len,
                         const kvi_ballot *ballot, const void *state, size_t state_len,
                         kvi_buf *answer)
{
    return apply_single(e, KVI_PAXOS_PROPOSE, key, key_len, ballot, state, state_len, answer);
}

int kvi_paxos_on_commit(kvi_embedded *e, const void *key, size_t key_len,
                        const kvi_ballot *ballot, const void *state, size_t state_len,
                        kvi_buf *answer)
{
    return apply_single(e, KVI_PAXOS_COMMIT, key, key_len, ballot, state, state_len, answer);
}

int kvi_paxos_has_record(kvi_embedded *e, const void *key, size_t key_len)
{
    uint64_t token = kvi_key_token(key, key_len);
    unsigned char *skey = malloc(KVI_TOKEN_SIZE + key_len);
    if (!skey)
        return kvi_error(KV_ENOMEM, "out of memory reading a Paxos record");
    kvi_storage_key(skey, token, key, key_len);
    kvi_slice slice = {0};
    int rc = kvi_store_paxos_get(kvi_embedded_store(e), skey, KVI_TOKEN_SIZE + key_len, &slice);
    free(skey);
    if (rc == KV_OK) {
        kvi_slice_release(&slice);
        return 1;
    }
    return rc == KV_ENOTFOUND ? 0 : rc;
}

/* ------------------------------------------------------------- sweeping */

#define SWEEP_BATCH 1024u

typedef struct sweep_scan {
    uint64_t now_us, min_age_us;
    kvi_buf keys;       /* u32 length + storage key, per candidate */
    size_t n;
    kvi_ballot floor;   /* the highest promise among the candidates */
} sweep_scan;

/* Nothing unfinished, and its last commit older than the minimum age. */
static int removable(const kvi_acceptor *a, uint64_t now_us, uint64_t min_age_us)
{
    return !a->has_accepted && a->committed.time_us != 0 &&
           a->committed.time_us <= now_us && now_us - a->committed.time_us >= min_age_us;
}

static int sweep_candidate(void *ctx, const void *key, size_t key_len, const void *value,
                           size_t value_len)
{
    sweep_scan *sc = ctx;
    if (key_len <= KVI_TOKEN_SIZE)
        return 0;
    uint64_t token = kvi_key_token((const unsigned char *)key + KVI_TOKEN_SIZE,
                                   key_len - KVI_TOKEN_SIZE);
    kvi_acceptor a;
    if (kvi_acceptor_decode(&a, value, value_len, token) != KV_OK ||
        !removable(&a, sc->now_us, sc->min_age_us))
        return 0;
    kvi_buf_u32(&sc->keys, (uint32_t)key_len);
    kvi_buf_raw(&sc->keys, key, key_len);
    if (kvi_ballot_compare(&a.promised, &sc->floor) > 0)
        sc->floor = a.promised;
    return ++sc->n >= SWEEP_BATCH || sc->keys.failed;
}

/* Removes one candidate if it still qualifies, under its key's lock. */
static int sweep_one(kvi_embedded *e, const unsigned char *skey, size_t skey_len,
                     const sweep_scan *sc, const kvi_ballot *floor, size_t *removed)
{
    const unsigned char *key = skey + KVI_TOKEN_SIZE;
    size_t key_len = skey_len - KVI_TOKEN_SIZE;
    acceptor_io io;
    int rc = io_begin(&io, e, key, key_len);
    /* Still removable, and no promise above the floor since the scan. */
    int go = rc == KV_OK && io.record.len > 0 && removable(&io.a, sc->now_us, sc->min_age_us) &&
             kvi_ballot_compare(&io.a.promised, floor) <= 0;
    /* Only a key whose data is live: a tombstone's record keeps the last
     * version, so a write after the tombstone is purged goes on counting. */
    kvi_state *st = go ? malloc(sizeof *st) : NULL;
    kvi_buf holder = {0};
    if (go) {
        go = st && kvi_replica_read(st, &holder, e, key, key_len) == KV_OK &&
             kvi_state_live_version(st, sc->now_us / 1000u) == kvi_state_version(st) &&
             kvi_state_version(st) >= io.a.committed_version;
    }
    if (go) {
        rc = kvi_store_paxos_delete(kvi_embedded_store(e), io.skey, io.skey_len);
        *removed += rc == KV_OK;
    }
    kvi_buf_free(&holder);
    free(st);
    io_end(&io);
    return rc;
}

int kvi_paxos_sweep(kvi_embedded *e, uint64_t now_us, uint64_t min_age_us, size_t *removed)
{
    *removed = 0;
    kvi_store *s = kvi_embedded_store(e);
    sweep_scan sc = {.now_us = now_us, .min_age_us = min_age_us};
    int rc = kvi_store_paxos_scan(s, sweep_candidate, &sc);
    if (rc == KV_OK && sc.keys.failed)
        rc = kvi_error(KV_ENOMEM, "out of memory sweeping Paxos records");
    if (rc != KV_OK || sc.n == 0) {
        kvi_buf_free(&sc.keys);
        return rc;
    }
    /* The floor first, synced: no record is removed before its promise is
     * kept by the floor. */
    kvi_ballot floor;
    rc = load_floor(s, &floor);
    if (rc == KV_OK && kvi_ballot_compare(&sc.floor, &floor) > 0) {
        kvi_buf enc = {0};
        kvi_ballot_encode(&enc, &sc.floor);
        rc = enc.failed ? kvi_error(KV_ENOMEM, "out of memory sweeping Paxos records")
                        : kvi_store_meta_put(s, FLOOR_NAME, enc.data, enc.len);
        kvi_buf_free(&enc);
        floor = sc.floor;
    }
    kvi_reader r = kvi_reader_init(sc.keys.data, sc.keys.len);
    for (size_t i = 0; rc == KV_OK && i < sc.n; i++) {
        uint32_t len = kvi_read_u32(&r);
        const unsigned char *skey = r.p;
        r.p += len;
        r.left -= len;
        rc = sweep_one(e, skey, len, &sc, &floor, removed);
    }
    kvi_buf_free(&sc.keys);
    return rc;
}
