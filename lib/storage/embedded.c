/*
 * storage/embedded.c - the embedded store.
 *
 * Every write is a read-modify-write under the key's stripe lock: read the
 * current record (to learn its version), encode the new record with the next
 * version, write it. Readers take no lock: RocksDB gives them a consistent
 * record, and the checksum proves it intact.
 */
#include "storage/embedded.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "format/batch.h"
#include "format/state.h"
#include "storage/keylock.h"
#include "format/record.h"
#include "util/clock.h"
#include "util/error.h"
#include "util/options.h"
#include "util/validate.h"
#include "format/value.h"

struct kvi_embedded {
    kvi_store *store;
    kvi_keylock locks;
};

/* Small keys and records are built on the stack; only large ones allocate. */
#define SMALL_KEY (KVI_TOKEN_SIZE + 256)
#define SMALL_RECORD (KVI_RECORD_OVERHEAD + 1024)

typedef struct buffer {
    unsigned char *p;
    size_t len;
    int heap;
} buffer;

static int buffer_get(buffer *b, unsigned char *stack, size_t stack_size, size_t len)
{
    b->len = len;
    b->heap = len > stack_size;
    b->p = b->heap ? malloc(len) : stack;
    return b->p ? KV_OK : kvi_error(KV_ENOMEM, "out of memory (%zu bytes)", len);
}

static void buffer_put(buffer *b)
{
    if (b->heap)
        free(b->p);
}

/* What a writer needs to know of a key's current record. */
typedef struct key_state {
    int live;         /* a value that is neither deleted nor expired */
    uint64_t version; /* 0 when there is no record at all */
} key_state;

static uint64_t expiry_from_ttl(uint64_t now_ms, uint64_t ttl_s)
{
    /* Saturates rather than wrapping (the validation layer keeps TTLs far
     * below this; a wrapped expiry would lie in the past). */
    if (ttl_s && ttl_s > (UINT64_MAX - now_ms) / 1000u)
        return UINT64_MAX;
    return ttl_s ? now_ms + ttl_s * 1000u : 0;
}

/* read_record's answer for a record in format 2: a replicated state (a
 * clock and siblings) written by the cluster. The slice stays pinned. */
#define REPLICATED 1

static int is_replicated(const kvi_slice *slice)
{
    return slice->len > 0 && (unsigned char)slice->data[0] == KVI_STATE_FORMAT;
}

/* The embedded write paths do not write replicated states: a write there
 * must carry a causal context, which the cluster's coordinator supplies. */
static int replicated_write_refused(void)
{
    return kvi_error(KV_ENOTSUP, "this key holds replicated state (a causal clock and "
                                 "siblings); write it through the cluster");
}

/* Reads a replicated state's live siblings into a value. */
static int value_from_slice(kv_value **out, const kvi_slice *slice, uint64_t token,
                            uint64_t now_ms)
{
    kvi_state *st = malloc(sizeof *st);
    if (!st)
        return kvi_error(KV_ENOMEM, "out of memory reading a replicated state");
    int rc = kvi_state_decode(st, slice->data, slice->len, token);
    if (rc != KV_OK)
        rc = kvi_error(KV_ECORRUPT, "the stored state of this key failed its checks");
    else
        rc = kvi_value_from_state(out, st, now_ms, 0);
    free(st);
    if (rc == KV_ENOTFOUND)
        return kvi_error(KV_ENOTFOUND, "key deleted or expired");
    if (rc == KV_ENOMEM)
        return kvi_error(KV_ENOMEM, "out of memory copying a value");
    return rc;
}

/* Reads and verifies the record under skey; its value stays pinned in
 * *slice (release it) when rec is wanted. Returns REPLICATED, slice still
 * pinned, for a format-2 record. */
static int read_record(kvi_embedded *e, const buffer *skey, uint64_t token,
                       kvi_record *rec, kvi_slice *slice)
{
    int rc = kvi_store_get(e->store, skey->p, skey->len, slice);
    if (rc != KV_OK)
        return rc;
    if (is_replicated(slice))
        return REPLICATED;
    rc = kvi_record_decode(rec, slice->data, slice->len, token);
    if (rc != KV_OK) {
        kvi_slice_release(slice);
        return kvi_error(KV_ECORRUPT, "the stored record of this key failed its "
                                      "checksum or format check (%zu bytes)", slice->len);
    }
    return KV_OK;
}

static int read_state(kvi_embedded *e, const buffer *skey, uint64_t token,
                      uint64_t now_ms, key_state *st)
{
    kvi_record rec;
    kvi_slice slice = {0};
    int rc = read_record(e, skey, token, &rec, &slice);
    if (rc == KV_ENOTFOUND) {
        st->live = 0;
        st->version = 0;
        return KV_OK;
    }
    if (rc == REPLICATED) {
        kvi_slice_release(&slice);
        return replicated_write_refused();
    }
    if (rc != KV_OK)
        return rc;
    st->live = kvi_record_live(&rec, now_ms);
    st->version = rec.version;
    kvi_slice_release(&slice);
    return KV_OK;
}

/* Encodes a record into a buffer (stack-backed when small). */
static int encode(buffer *out, unsigned char *stack, const kvi_record *rec, uint64_t token)
{
    int rc = buffer_get(out, stack, SMALL_RECORD, kvi_record_size(rec->value_len));
    if (rc == KV_OK)
        kvi_record_encode(out->p, rec, token);
    return rc;
}

int kvi_embedded_open(kvi_embedded **out, const kvi_store_config *cfg)
{
    *out = NULL;
    kvi_embedded *e = calloc(1, sizeof *e);
    if (!e)
        return kvi_error(KV_ENOMEM, "out of memory opening the store");
    if (kvi_keylock_init(&e->locks) != 0) {
        free(e);
        return kvi_error(KV_ENOMEM, "cannot create the key locks");
    }
    int rc = kvi_store_open(&e->store, cfg);
    if (rc != KV_OK) {
        kvi_keylock_destroy(&e->locks);
        free(e);
        return rc;
    }
    *out = e;
    return KV_OK;
}

void kvi_embedded_close(kvi_embedded *e)
{
    if (!e)
        return;
    kvi_store_close(e->store);
    kvi_keylock_destroy(&e->locks);
    free(e);
}

/* What a put, cas or delete makes of its key's state st: KV_OK with the
 * record to write in *rec (its value is the caller's) and st moved on to
 * it; or the write's failure, with the current version in *current for
 * KV_ECONFLICT. expected_version counts for a cas only; a delete needs a
 * live value and writes a tombstone. */
static int next_record(kvi_embedded_write_kind kind, key_state *st, uint64_t expected_version,
                       const void *value, size_t value_len, uint64_t ttl_s, uint64_t now,
                       kvi_record *rec, uint64_t *current)
{
    uint64_t live_version = st->live ? st->version : 0;
    if (kind == KVI_EMBEDDED_CAS && live_version != expected_version) {
        *current = live_version;
        return kvi_error(KV_ECONFLICT, "expected version %llu, the current version is %llu",
                         (unsigned long long)expected_version,
                         (unsigned long long)live_version);
    }
    if (kind == KVI_EMBEDDED_DELETE && !st->live)
        return kvi_error(KV_ENOTFOUND, "no live value to delete");
    int is_delete = kind == KVI_EMBEDDED_DELETE;
    *rec = (kvi_record){
        .version = st->version + 1,
        .expiry_ms = is_delete ? 0 : expiry_from_ttl(now, ttl_s),
        .write_ms = now,
        .tombstone = is_delete,
        .value = value,
        .value_len = is_delete ? 0 : value_len,
    };
    st->live = !is_delete; /* a TTL is at least a second: live now */
    st->version = rec->version;
    return KV_OK;
}

static int write_one(kvi_embedded *e, kvi_embedded_write_kind kind, uint64_t *out_version,
                     const void *key, size_t key_len, uint64_t expected_version,
                     const void *value, size_t value_len, uint64_t ttl_s)
{
    uint64_t token = kvi_key_token(key, key_len);
    unsigned char key_stack[SMALL_KEY], record_stack[SMALL_RECORD];
    buffer skey, record = {0};
    int rc = buffer_get(&skey, key_stack, sizeof key_stack, KVI_TOKEN_SIZE + key_len);
    if (rc != KV_OK)
        return rc;
    kvi_storage_key(skey.p, token, key, key_len);

    kvi_keylock_lock(&e->locks, token);
    uint64_t now = kvi_now_ms();
    key_state st = {0, 0};
    kvi_record rec;
    uint64_t current = 0;
    rc = read_state(e, &skey, token, now, &st);
    if (rc == KV_OK)
        rc = next_record(kind, &st, expected_version, value, value_len, ttl_s, now, &rec,
                         &current);
    if (rc == KV_OK)
        rc = encode(&record, record_stack, &rec, token);
    if (rc == KV_OK)
        rc = kvi_store_put(e->store, skey.p, skey.len, record.p, record.len);
    if (out_version && (rc == KV_OK || rc == KV_ECONFLICT))
        *out_version = rc == KV_OK ? rec.version : current;
    kvi_keylock_unlock(&e->locks, token);
    buffer_put(&record);
    buffer_put(&skey);
    return rc;
}

/* kvi_embedded_write_many's bookkeeping for write i. */
typedef struct many_item {
    uint64_t token;
    size_t earlier;   /* the last earlier write of the same key; SIZE_MAX: none */
    int load_rc;      /* reading the key's state failed (later writes of it fail too) */
    key_state st;     /* the key's state after this write */
} many_item;

/* Finds each write's earlier write of the same key, through a small hash
 * of the tokens (table: 2^bits slots, SIZE_MAX when empty). */
static void link_earlier(const kvi_embedded_write *ws, many_item *items, size_t n,
                         size_t *table, unsigned bits)
{
    size_t mask = ((size_t)1 << bits) - 1;
    for (size_t i = 0; i <= mask; i++)
        table[i] = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        items[i].earlier = SIZE_MAX;
        size_t slot = (size_t)(items[i].token * 0x9E3779B97F4A7C15ull >> (64 - bits));
        for (;; slot = (slot + 1) & mask) {
            size_t j = table[slot];
            if (j == SIZE_MAX) {
                table[slot] = i;
                break;
            }
            if (items[j].token == items[i].token && ws[j].key_len == ws[i].key_len &&
                memcmp(ws[j].key, ws[i].key, ws[i].key_len) == 0) {
                items[i].earlier = j;
                table[slot] = i; /* the next one of this key builds on this one */
                break;
            }
        }
    }
}

static void write_failed(kvi_embedded_write *w, int rc)
{
    w->status = rc;
    snprintf(w->why, sizeof w->why, "%s", kvi_error_last());
}

void kvi_embedded_write_many(kvi_embedded *e, kvi_embedded_write *ws, size_t n, int unsynced)
{
    if (n == 0)
        return;
    unsigned bits = 1;
    while (((size_t)1 << bits) < 2 * n)
        bits++;
    many_item *items = malloc(n * sizeof *items);
    unsigned *stripes = malloc(n * sizeof *stripes);
    size_t *table = malloc(((size_t)1 << bits) * sizeof *table);
    kvi_store_batch *wb = kvi_store_batch_new(e->store);
    buffer scratch = {NULL, 0, 1};
    if (!items || !stripes || !table || !wb) {
        int rc = kvi_error(KV_ENOMEM, "out of memory writing %zu records", n);
        for (size_t i = 0; i < n; i++)
            write_failed(&ws[i], rc);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        items[i].token = kvi_key_token(ws[i].key, ws[i].key_len);
        stripes[i] = kvi_keylock_stripe(items[i].token);
    }
    link_earlier(ws, items, n, table, bits);
    size_t locked = n;
    kvi_keylock_lock_stripes(&e->locks, stripes, &locked);
    uint64_t now = kvi_now_ms();
    size_t writes = 0;
    for (size_t i = 0; i < n; i++) {
        kvi_embedded_write *w = &ws[i];
        many_item *it = &items[i];
        unsigned char key_stack[SMALL_KEY];
        buffer skey;
        it->st = (key_state){0, 0};
        int rc = buffer_get(&skey, key_stack, sizeof key_stack, KVI_TOKEN_SIZE + w->key_len);
        if (rc != KV_OK) {
            it->load_rc = rc;
            write_failed(w, rc);
            continue;
        }
        kvi_storage_key(skey.p, it->token, w->key, w->key_len);
        if (it->earlier != SIZE_MAX) {
            it->st = items[it->earlier].st;
            it->load_rc = rc = items[it->earlier].load_rc;
            if (rc != KV_OK)
                rc = kvi_error(rc, "%s", ws[it->earlier].why);
        } else {
            it->load_rc = rc = read_state(e, &skey, it->token, now, &it->st);
        }
        kvi_record rec;
        uint64_t current = 0;
        if (rc == KV_OK)
            rc = next_record(w->kind, &it->st, w->expected_version, w->value, w->value_len,
                             w->ttl_s, now, &rec, &current);
        if (rc == KV_OK) {
            size_t need = kvi_record_size(rec.value_len);
            if (need > scratch.len) {
                unsigned char *p = realloc(scratch.p, need);
                if (p) {
                    scratch.p = p;
                    scratch.len = need;
                } else {
                    rc = kvi_error(KV_ENOMEM, "out of memory encoding a record");
                    it->load_rc = rc; /* st moved on without its write */
                }
            }
            if (rc == KV_OK) {
                kvi_record_encode(scratch.p, &rec, it->token);
                kvi_store_batch_put(wb, skey.p, skey.len, scratch.p, need);
                w->status = KV_OK;
                w->version = rec.version;
                w->why[0] = 0;
                writes++;
            }
        }
        if (rc != KV_OK) {
            write_failed(w, rc);
            w->version = rc == KV_ECONFLICT ? current : 0;
        }
        buffer_put(&skey);
    }
    if (writes) {
        kvi_store *s = e->store;
        int rc = unsynced ? kvi_store_write_unsynced(s, wb) : kvi_store_write(s, wb);
        for (size_t i = 0; rc != KV_OK && i < n; i++) {
            if (ws[i].status == KV_OK) {
                write_failed(&ws[i], rc);
                ws[i].version = 0;
            }
        }
    }
    kvi_keylock_unlock_stripes(&e->locks, stripes, locked);
out:
    free(scratch.p);
    kvi_store_batch_free(wb);
    free(table);
    free(stripes);
    free(items);
}

int kvi_embedded_put(kvi_embedded *e, uint64_t *out_version, const void *key,
                     size_t key_len, const void *value, size_t value_len,
                     uint64_t ttl_s)
{
    return write_one(e, KVI_EMBEDDED_PUT, out_version, key, key_len, 0, value, value_len, ttl_s);
}

int kvi_embedded_cas(kvi_embedded *e, uint64_t *out_version, const void *key,
                     size_t key_len, uint64_t expected_version,
                     const void *value, size_t value_len, uint64_t ttl_s)
{
    return write_one(e, KVI_EMBEDDED_CAS, out_version, key, key_len, expected_version,
                     value, value_len, ttl_s);
}

int kvi_embedded_delete(kvi_embedded *e, uint64_t *out_version,
                        const void *key, size_t key_len)
{
    return write_one(e, KVI_EMBEDDED_DELETE, out_version, key, key_len, 0, NULL, 0, 0);
}

int kvi_embedded_get(kvi_embedded *e, kv_value **out, const void *key,
                     size_t key_len)
{
    uint64_t token = kvi_key_token(key, key_len);
    unsigned char key_stack[SMALL_KEY];
    buffer skey;
    int rc = buffer_get(&skey, key_stack, sizeof key_stack, KVI_TOKEN_SIZE + key_len);
    if (rc != KV_OK)
        return rc;
    kvi_storage_key(skey.p, token, key, key_len);

    kvi_record rec;
    kvi_slice slice = {0};
    rc = read_record(e, &skey, token, &rec, &slice);
    buffer_put(&skey);
    if (rc == REPLICATED) {
        rc = value_from_slice(out, &slice, token, kvi_now_ms());
        kvi_slice_release(&slice);
        return rc;
    }
    if (rc != KV_OK)
        return rc == KV_ENOTFOUND ? kvi_error(KV_ENOTFOUND, "key not found") : rc;
    if (!kvi_record_live(&rec, kvi_now_ms())) {
        kvi_slice_release(&slice);
        return kvi_error(KV_ENOTFOUND, "key deleted or expired");
    }
    *out = kvi_value_new(rec.value, rec.value_len, rec.version, rec.expiry_ms);
    kvi_slice_release(&slice);
    return *out ? KV_OK : kvi_error(KV_ENOMEM, "out of memory copying a value");
}

int kvi_embedded_compact(kvi_embedded *e)
{
    return kvi_store_compact(e->store);
}

kvi_store *kvi_embedded_store(kvi_embedded *e)
{
    return e->store;
}

struct kvi_keylock *kvi_embedded_locks(kvi_embedded *e)
{
    return &e->locks;
}

/* ------------------------------------------------------------------ batch */

/* The state of a key after an operation of the batch, so that a later
 * operation on the same key sees it without reading the store. */
typedef struct op_state {
    int corrupt;      /* the stored record failed its checks */
    int replicated;   /* a format-2 state: gets read it, writes are refused */
    kv_value *replicated_value; /* its live siblings, for a get (NULL: none) */
    int live;
    uint64_t version;
    uint64_t expiry_ms;
    const unsigned char *value; /* valid while the batch lives */
    size_t value_len;
} op_state;

typedef struct op_ref {
    uint64_t token;
    const kvi_batch_op *op;
    size_t index;
} op_ref;

static int compare_op_ref(const void *a, const void *b)
{
    const op_ref *x = a, *y = b;
    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    if (x->op->key_len != y->op->key_len)
        return x->op->key_len < y->op->key_len ? -1 : 1;
    int c = memcmp(x->op->key, y->op->key, x->op->key_len);
    if (c)
        return c;
    return (x->index > y->index) - (x->index < y->index);
}

/* For each operation, the index of the previous operation on the same key
 * (or SIZE_MAX): sorting by key and position groups them in O(n log n). */
static void link_same_keys(const kv_batch *b, op_ref *refs, size_t *previous)
{
    qsort(refs, b->count, sizeof *refs, compare_op_ref);
    for (size_t i = 0; i < b->count; i++) {
        previous[refs[i].index] = SIZE_MAX;
        if (i > 0 && refs[i - 1].token == refs[i].token &&
            refs[i - 1].op->key_len == refs[i].op->key_len &&
            memcmp(refs[i - 1].op->key, refs[i].op->key, refs[i].op->key_len) == 0)
            previous[refs[i].index] = refs[i - 1].index;
    }
}

/* Reads a key's state from the store; for a get, also its value (the
 * caller copies it before the slice is released). */
static int load_state(kvi_embedded *e, const kvi_batch_op *op, uint64_t token,
                      uint64_t now, op_state *st, kvi_slice *slice)
{
    unsigned char key_stack[SMALL_KEY];
    buffer skey;
    int rc = buffer_get(&skey, key_stack, sizeof key_stack, KVI_TOKEN_SIZE + op->key_len);
    if (rc != KV_OK)
        return rc;
    kvi_storage_key(skey.p, token, op->key, op->key_len);
    kvi_record rec;
    rc = read_record(e, &skey, token, &rec, slice);
    buffer_put(&skey);
    memset(st, 0, sizeof *st);
    if (rc == KV_ENOTFOUND)
        return KV_OK;
    if (rc == REPLICATED) {
        st->replicated = 1;
        int vrc = value_from_slice(&st->replicated_value, slice, token, now);
        return vrc == KV_ENOTFOUND ? KV_OK : vrc;
    }
    if (rc != KV_OK)
        return rc;
    st->live = kvi_record_live(&rec, now);
    st->version = rec.version;
    st->expiry_ms = rec.expiry_ms;
    st->value = rec.value;
    st->value_len = rec.value_len;
    return KV_OK;
}

/* Applies one operation to its key's state, adding writes to wb. */
static int apply_op(kvi_batch_op *op, uint64_t token, uint64_t now, op_state *st,
                    kvi_store_batch *wb, buffer *scratch)
{
    if (st->corrupt)
        return op->status = kvi_error(KV_ECORRUPT, "the stored record of a batch "
                                      "operation's key failed its checks");
    if (st->replicated) {
        if (op->kind != KV_BATCH_GET)
            return op->status = replicated_write_refused();
        if (!st->replicated_value)
            return op->status = KV_ENOTFOUND;
        /* Each get gets its own copy: a later get of the same key in the
         * batch reads the same state. */
        op->result = kvi_value_dup(st->replicated_value);
        if (!op->result)
            return op->status = kvi_error(KV_ENOMEM, "out of memory copying a value");
        op->version = kvi_value_version(op->result);
        return op->status = KV_OK;
    }
    if (op->kind == KV_BATCH_GET) {
        if (!st->live)
            return op->status = KV_ENOTFOUND;
        op->result = kvi_value_new(st->value, st->value_len, st->version, st->expiry_ms);
        if (!op->result)
            return op->status = kvi_error(KV_ENOMEM, "out of memory copying a value");
        /* Later operations on this key read the copy, not the store's slice. */
        st->value = kvi_value_data(op->result, NULL);
        op->version = st->version;
        return op->status = KV_OK;
    }
    if (op->kind == KV_BATCH_DELETE && !st->live)
        return op->status = KV_ENOTFOUND;

    int is_delete = op->kind == KV_BATCH_DELETE;
    kvi_record rec = {
        .version = st->version + 1,
        .expiry_ms = is_delete ? 0 : expiry_from_ttl(now, op->ttl_s),
        .write_ms = now,
        .tombstone = is_delete,
        .value = op->value,
        .value_len = is_delete ? 0 : op->value_len,
    };
    size_t need = kvi_record_size(rec.value_len);
    if (need > scratch->len) {
        unsigned char *p = realloc(scratch->p, need);
        if (!p)
            return op->status = kvi_error(KV_ENOMEM, "out of memory encoding a batch");
        scratch->p = p;
        scratch->len = need;
    }
    kvi_record_encode(scratch->p, &rec, token);
    unsigned char key_stack[SMALL_KEY];
    buffer skey;
    int rc = buffer_get(&skey, key_stack, sizeof key_stack, KVI_TOKEN_SIZE + op->key_len);
    if (rc != KV_OK)
        return op->status = rc;
    kvi_storage_key(skey.p, token, op->key, op->key_len);
    kvi_store_batch_put(wb, skey.p, skey.len, scratch->p, need);
    buffer_put(&skey);

    st->live = !is_delete;
    st->version = rec.version;
    st->expiry_ms = rec.expiry_ms;
    st->value = op->value;
    st->value_len = rec.value_len;
    op->version = rec.version;
    return op->status = KV_OK;
}

int kvi_embedded_batch(kvi_embedded *e, kv_batch *b)
{
    size_t n = b->count;
    uint64_t *tokens = malloc(n * sizeof *tokens);
    unsigned *stripes = malloc(n * sizeof *stripes);
    op_ref *refs = malloc(n * sizeof *refs);
    size_t *previous = malloc(n * sizeof *previous);
    op_state *states = calloc(n, sizeof *states);
    kvi_store_batch *wb = kvi_store_batch_new(e->store);
    buffer scratch = {NULL, 0, 1};
    int rc = KV_OK, linked = 0;
    if (!tokens || !stripes || !refs || !previous || !states || !wb) {
        rc = kvi_error(KV_ENOMEM, "out of memory running a batch of %zu operations", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        tokens[i] = kvi_key_token(b->ops[i].key, b->ops[i].key_len);
        stripes[i] = kvi_keylock_stripe(tokens[i]);
        refs[i] = (op_ref){tokens[i], &b->ops[i], i};
    }
    link_same_keys(b, refs, previous);
    linked = 1;

    size_t locked = n;
    kvi_keylock_lock_stripes(&e->locks, stripes, &locked);
    uint64_t now = kvi_now_ms();
    int writes = 0;
    for (size_t i = 0; i < n && rc == KV_OK; i++) {
        kvi_batch_op *op = &b->ops[i];
        kvi_slice slice = {0};
        if (previous[i] != SIZE_MAX) {
            states[i] = states[previous[i]];
        } else {
            int lrc = load_state(e, op, tokens[i], now, &states[i], &slice);
            if (lrc == KV_ECORRUPT) {
                states[i].corrupt = 1;
            } else if (lrc != KV_OK) {
                op->status = rc = lrc;
                continue;
            }
        }
        int orc = apply_op(op, tokens[i], now, &states[i], wb, &scratch);
        kvi_slice_release(&slice);
        /* A get of a corrupt record fails alone; a write that cannot be
         * applied (over a corrupt record, it would lose the version history;
         * over a replicated state, it needs a context) fails the whole
         * batch, which is atomic. */
        if (orc == KV_ENOMEM ||
            (op->kind != KV_BATCH_GET && orc != KV_OK && orc != KV_ENOTFOUND))
            rc = orc;
        else if (orc == KV_OK && op->kind != KV_BATCH_GET)
            writes++;
    }
    if (rc == KV_OK && writes)
        rc = kvi_store_write(e->store, wb);
    kvi_keylock_unlock_stripes(&e->locks, stripes, locked);
    if (rc != KV_OK) {
        /* Nothing was applied: say so in every write's result. */
        for (size_t i = 0; i < n; i++) {
            kvi_batch_op *op = &b->ops[i];
            if (op->kind != KV_BATCH_GET && op->status == KV_OK) {
                op->status = rc;
                op->version = 0;
            }
        }
    }
out:
    /* Replicated values belong to the state loaded from the store; later
     * operations on the same key only borrowed them. */
    for (size_t i = 0; linked && i < n; i++)
        if (previous[i] == SIZE_MAX)
            kvi_value_free(states[i].replicated_value);
    free(scratch.p);
    kvi_store_batch_free(wb);
    free(states);
    free(previous);
    free(refs);
    free(stripes);
    free(tokens);
    return rc;
}

/* ----------------------------------------------------------- configuration */

#define DEFAULT_SYNC_INTERVAL_MS 100u
#define DEFAULT_BLOCK_CACHE (64u * 1024u * 1024u)
#define DEFAULT_ROW_CACHE (64u * 1024u * 1024u)
#define MAX_SECONDS KVI_MAX_TTL_S

int kvi_embedded_config(kvi_store_config *cfg, const kv_open_options *in)
{
    kv_open_options upgraded;
    if (kvi_open_options_upgrade(&upgraded, in) != KV_OK)
        return kvi_error(KV_EINVAL, "open options: unknown version %u", in->version);
    const kv_open_options *o = &upgraded;
    if (o->max_key_size > KV_MAX_KEY_SIZE_LIMIT)
        return kvi_error(KV_EINVAL, "max_key_size %u is over the ceiling of %u",
                         o->max_key_size, KV_MAX_KEY_SIZE_LIMIT);
    if (o->max_value_size > KV_MAX_VALUE_SIZE_LIMIT)
        return kvi_error(KV_EINVAL, "max_value_size %u is over the ceiling of %u",
                         o->max_value_size, KV_MAX_VALUE_SIZE_LIMIT);
    if (o->sync != KV_SYNC_ALWAYS && o->sync != KV_SYNC_PERIODIC && o->sync != KV_SYNC_NONE)
        return kvi_error(KV_EINVAL, "unknown sync policy %d", (int)o->sync);
    if (o->tombstone_grace_s != KV_GRACE_NONE && o->tombstone_grace_s > MAX_SECONDS)
        return kvi_error(KV_EINVAL, "tombstone_grace_s %llu is over the limit of %llu",
                         (unsigned long long)o->tombstone_grace_s, MAX_SECONDS);
    if (o->log_level < KV_LOG_ERROR || o->log_level > KV_LOG_DEBUG)
        return kvi_error(KV_EINVAL, "unknown log level %d", (int)o->log_level);
    cfg->create_if_missing = o->create_if_missing;
    cfg->sync = o->sync;
    cfg->sync_interval_ms = o->sync_interval_ms ? o->sync_interval_ms : DEFAULT_SYNC_INTERVAL_MS;
    cfg->block_cache_bytes = o->block_cache_bytes ? o->block_cache_bytes : DEFAULT_BLOCK_CACHE;
    cfg->row_cache_bytes = o->row_cache_bytes == KV_ROW_CACHE_NONE ? 0
                           : o->row_cache_bytes                ? o->row_cache_bytes
                                                               : DEFAULT_ROW_CACHE;
    if (o->tombstone_grace_s == KV_GRACE_NONE)
        cfg->grace_ms = 0;
    else
        cfg->grace_ms = 1000u * (o->tombstone_grace_s ? o->tombstone_grace_s : KVI_DEFAULT_TOMBSTONE_GRACE_S);
    return KV_OK;
}
