/* cluster/hints.c - hints in their column family: layout and checks. */
#include "cluster/hints.h"

#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include <kv/common.h>
#include "format/dvv.h"
#include "format/message.h"
#include "util/endian.h"
#include "util/error.h"

#define HINT_FORMAT 1u
#define MAX_TARGET KVI_DVV_MAX_ID

void kvi_hints_init(kvi_hints *h, kvi_store *store, uint64_t seed)
{
    h->store = store;
    atomic_init(&h->seq, seed);
    atomic_init(&h->puts, 0);
}

static uint64_t value_checksum(const void *hkey, size_t hkey_len, const void *v, size_t len)
{
    return XXH3_64bits_withSeed(v, len, XXH3_64bits(hkey, hkey_len));
}

int kvi_hints_put(kvi_hints *h, const char *target, uint64_t created_ms, const void *key,
                  size_t key_len, const void *state, size_t state_len)
{
    size_t tlen = target ? strlen(target) : 0;
    if (tlen == 0 || tlen > MAX_TARGET)
        return kvi_error(KV_EINVAL, "a hint needs a target node id of 1..%u bytes", MAX_TARGET);
    unsigned char hkey[1 + MAX_TARGET + 16];
    hkey[0] = (unsigned char)tlen;
    memcpy(hkey + 1, target, tlen);
    kvi_put_be64(hkey + 1 + tlen, created_ms);
    kvi_put_be64(hkey + 1 + tlen + 8, atomic_fetch_add(&h->seq, 1));
    size_t hkey_len = 1 + tlen + 16;
    kvi_buf v = {0};
    kvi_buf_u8(&v, HINT_FORMAT);
    kvi_buf_bytes(&v, key, key_len);
    kvi_buf_bytes(&v, state, state_len);
    if (!v.failed)
        kvi_buf_u64(&v, value_checksum(hkey, hkey_len, v.data, v.len));
    int rc = v.failed ? kvi_error(KV_ENOMEM, "out of memory encoding a hint")
                      : kvi_store_hint_put(h->store, hkey, hkey_len, v.data, v.len);
    kvi_buf_free(&v);
    if (rc == KV_OK)
        atomic_fetch_add(&h->puts, 1);
    return rc;
}

typedef struct scan_ctx {
    kvi_hint_fn fn;
    void *ctx;
} scan_ctx;

/* Decodes one stored hint; damaged ones are still handed over, marked. */
static int visit(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
    scan_ctx *sc = arg;
    const unsigned char *kb = k;
    char target[MAX_TARGET + 1] = "";
    kvi_hint hint = {.target = target, .hkey = kb, .hkey_len = klen};
    size_t tlen = klen ? kb[0] : 0;
    if (klen < 1 + 16 || tlen == 0 || tlen > MAX_TARGET || klen != 1 + tlen + 16) {
        hint.damaged = 1;
    } else {
        memcpy(target, kb + 1, tlen);
        target[tlen] = 0;
        hint.created_ms = kvi_get_be64(kb + 1 + tlen);
        kvi_reader r = kvi_reader_init(v, vlen);
        uint8_t format = kvi_read_u8(&r);
        kvi_bytes key = kvi_read_bytes(&r);
        kvi_bytes state = kvi_read_bytes(&r);
        size_t covered = vlen - r.left;
        uint64_t sum = kvi_read_u64(&r);
        if (format != HINT_FORMAT || kvi_reader_done(&r) != 0 || key.len == 0 ||
            sum != value_checksum(k, klen, v, covered)) {
            hint.damaged = 1;
        } else {
            hint.key = key.data;
            hint.key_len = key.len;
            hint.state = state.data;
            hint.state_len = state.len;
        }
    }
    return sc->fn(sc->ctx, &hint);
}

int kvi_hints_scan(kvi_hints *h, const char *target, kvi_hint_fn fn, void *ctx)
{
    unsigned char prefix[1 + MAX_TARGET] = {0};
    size_t plen = 0;
    if (target) {
        size_t tlen = strlen(target);
        if (tlen == 0 || tlen > MAX_TARGET)
            return kvi_error(KV_EINVAL, "a hint target is 1..%u bytes", MAX_TARGET);
        prefix[0] = (unsigned char)tlen;
        memcpy(prefix + 1, target, tlen);
        plen = 1 + tlen;
    }
    scan_ctx sc = {fn, ctx};
    return kvi_store_hint_scan(h->store, prefix, plen, visit, &sc);
}

int kvi_hints_delete(kvi_hints *h, const void *hkey, size_t hkey_len)
{
    return kvi_store_hint_delete(h->store, hkey, hkey_len);
}

typedef struct stats_ctx {
    uint64_t pending, oldest;
} stats_ctx;

static int count_one(void *arg, const kvi_hint *hint)
{
    stats_ctx *st = arg;
    st->pending++;
    if (!hint->damaged && (st->oldest == 0 || hint->created_ms < st->oldest))
        st->oldest = hint->created_ms;
    return 0;
}

int kvi_hints_stats(kvi_hints *h, uint64_t *pending, uint64_t *oldest_ms)
{
    stats_ctx st = {0, 0};
    int rc = kvi_hints_scan(h, NULL, count_one, &st);
    if (pending)
        *pending = st.pending;
    if (oldest_ms)
        *oldest_ms = st.oldest;
    return rc;
}

typedef struct drop_ctx {
    kvi_hints *h;
    uint64_t cutoff, dropped;
    int rc;
} drop_ctx;

static int drop_old(void *arg, const kvi_hint *hint)
{
    drop_ctx *d = arg;
    if (hint->damaged || hint->created_ms < d->cutoff) {
        d->rc = kvi_hints_delete(d->h, hint->hkey, hint->hkey_len);
        if (d->rc != KV_OK)
            return 1;
        d->dropped++;
    }
    return 0;
}

int kvi_hints_drop_before(kvi_hints *h, uint64_t cutoff_ms, uint64_t *dropped)
{
    drop_ctx d = {h, cutoff_ms, 0, KV_OK};
    int rc = kvi_hints_scan(h, NULL, drop_old, &d);
    if (dropped)
        *dropped = d.dropped;
    return rc != KV_OK ? rc : d.rc;
}
