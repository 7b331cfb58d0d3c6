/* cluster/paxos_acceptor.c - PREPARE, PROPOSE and COMMIT on this node's store. */
#include "cluster/paxos_acceptor.h"

#include <stdlib.h>
#include <string.h>

#include "cluster/replica_store.h"
#include "cluster/state.h"
#include "storage/keylock.h"
#include "storage/record.h"
#include "util/error.h"

/* One message's work: the key, its storage key, its record. */
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

static int io_begin(acceptor_io *io, kvi_embedded *e, const void *key, size_t key_len)
{
    memset(io, 0, sizeof *io);
    io->e = e;
    io->token = kvi_key_token(key, key_len);
    io->skey_len = KVI_TOKEN_SIZE + key_len;
    io->skey = malloc(io->skey_len);
    if (!io->skey)
        return kvi_error(KV_ENOMEM, "out of memory handling a Paxos message");
    kvi_storage_key(io->skey, io->token, key, key_len);
    kvi_keylock_lock(kvi_embedded_locks(e), io->token);
    kvi_slice slice = {0};
    kvi_ballot floor;
    int rc = load_floor(kvi_embedded_store(e), &floor);
    if (rc == KV_OK)
        rc = kvi_store_paxos_get(kvi_embedded_store(e), io->skey, io->skey_len, &slice);
    kvi_acceptor_init(&io->a);
    if (rc == KV_OK) {
        kvi_buf_raw(&io->record, slice.data, slice.len);
        kvi_slice_release(&slice);
        rc = io->record.failed ? kvi_error(KV_ENOMEM, "out of memory reading a Paxos record")
                               : kvi_acceptor_decode(&io->a, io->record.data, io->record.len,
                                                     io->token);
    } else if (rc == KV_ENOTFOUND) {
        rc = KV_OK;
    }
    /* A removed record's promise lives on in the floor. */
    if (rc == KV_OK && kvi_ballot_compare(&floor, &io->a.promised) > 0)
        io->a.promised = floor;
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

/* Writes the record (and, for a commit, the merged data) in one batch. */
static int io_write(acceptor_io *io, const kvi_buf *data, int synced)
{
    kvi_buf rec = {0};
    kvi_acceptor_encode(&rec, &io->a, io->token);
    kvi_store *s = kvi_embedded_store(io->e);
    kvi_store_batch *b = rec.failed ? NULL : kvi_store_batch_new(s);
    if (!b) {
        kvi_buf_free(&rec);
        return kvi_error(KV_ENOMEM, "out of memory writing a Paxos record");
    }
    kvi_store_batch_put_paxos(b, io->skey, io->skey_len, rec.data, rec.len);
    if (data)
        kvi_store_batch_put(b, io->skey, io->skey_len, data->data, data->len);
    int rc = synced ? kvi_store_write_synced(s, b) : kvi_store_write(s, b);
    kvi_store_batch_free(b);
    kvi_buf_free(&rec);
    return rc;
}

int kvi_paxos_on_prepare(kvi_embedded *e, const void *key, size_t key_len,
                         const kvi_ballot *ballot, kvi_buf *answer)
{
    acceptor_io io;
    int rc = io_begin(&io, e, key, key_len);
    int granted = 0;
    if (rc == KV_OK) {
        granted = kvi_acceptor_prepare(&io.a, ballot);
        if (granted)
            rc = io_write(&io, NULL, 1);
    }
    /* The read a prepare carries, taken under the lock after the promise:
     * no commit below the promise can land between the two. */
    kvi_state *st = rc == KV_OK ? malloc(sizeof *st) : NULL;
    kvi_buf holder = {0};
    if (rc == KV_OK && !st)
        rc = kvi_error(KV_ENOMEM, "out of memory reading for a prepare");
    int has_data = 0;
    if (rc == KV_OK) {
        int r = kvi_replica_read(st, &holder, e, key, key_len);
        if (r == KV_OK)
            has_data = 1;
        else if (r != KV_ENOTFOUND)
            rc = r;
    }
    if (rc == KV_OK) {
        kvi_bytes data = {holder.data, holder.len};
        /* A format-1 record (the embedded path) is re-encoded as a state. */
        kvi_buf reencoded = {0};
        if (has_data && holder.len > 0 && holder.data[0] != KVI_STATE_FORMAT) {
            kvi_state_encode(&reencoded, st, io.token);
            data.data = reencoded.data;
            data.len = reencoded.len;
        }
        kvi_paxos_answer_encode(answer, granted, &io.a, has_data ? &data : NULL);
        kvi_buf_free(&reencoded);
    }
    kvi_buf_free(&holder);
    free(st);
    io_end(&io);
    return rc;
}

int kvi_paxos_on_propose(kvi_embedded *e, const void *key, size_t key_len,
                         const kvi_ballot *ballot, const void *state, size_t state_len,
                         kvi_buf *answer)
{
    acceptor_io io;
    int rc = io_begin(&io, e, key, key_len);
    int granted = 0;
    if (rc == KV_OK) {
        granted = kvi_acceptor_propose(&io.a, ballot, state, state_len);
        if (granted)
            rc = io_write(&io, NULL, 1);
    }
    if (rc == KV_OK)
        kvi_paxos_answer_encode(answer, granted, &io.a, NULL);
    io_end(&io);
    return rc;
}

int kvi_paxos_on_commit(kvi_embedded *e, const void *key, size_t key_len,
                        const kvi_ballot *ballot, const void *state, size_t state_len,
                        kvi_buf *answer)
{
    acceptor_io io;
    int rc = io_begin(&io, e, key, key_len);
    kvi_state *incoming = malloc(sizeof *incoming);
    kvi_state *held = malloc(sizeof *held);
    kvi_buf holder = {0}, data = {0};
    if (rc == KV_OK && (!incoming || !held))
        rc = kvi_error(KV_ENOMEM, "out of memory committing");
    uint64_t id = 0;
    const void *st_bytes = NULL;
    size_t st_len = 0;
    if (rc == KV_OK && (kvi_proposal_split(state, state_len, &id, &st_bytes, &st_len) != 0 ||
                        kvi_state_decode(incoming, st_bytes, st_len, io.token) != KV_OK))
        rc = kvi_error(KV_EINVAL, "a commit carries a malformed proposal");
    /* A commit below the last one here is already covered by it (every
     * round builds on the commits it saw): nothing to apply. */
    if (rc == KV_OK && kvi_acceptor_commit(&io.a, ballot, kvi_state_version(incoming))) {
        kvi_acceptor_remember(&io.a, kvi_state_version(incoming), id);
        int r = kvi_replica_read(held, &holder, e, key, key_len);
        if (r == KV_ENOTFOUND)
            kvi_state_init(held);
        else if (r != KV_OK)
            rc = r;
        if (rc == KV_OK)
            rc = kvi_state_merge(held, incoming);
        if (rc == KV_OK) {
            kvi_state_encode(&data, held, io.token);
            rc = data.failed ? kvi_error(KV_ENOMEM, "out of memory committing") : KV_OK;
        }
        if (rc == KV_OK)
            rc = io_write(&io, &data, 0);
    }
    if (rc == KV_OK)
        kvi_paxos_answer_encode(answer, 1, &io.a, NULL);
    kvi_buf_free(&holder);
    kvi_buf_free(&data);
    free(incoming);
    free(held);
    io_end(&io);
    return rc;
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
