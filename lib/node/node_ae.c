/*
 * node/node_ae.c - a node's side of anti-entropy's requests (format/ae.h):
 * the digest of segment ranges, and the keys and entry hashes of one
 * range, from its own store. See docs/design/ANTI_ENTROPY.md.
 */
#include "node/node_internal.h"

#include <stdlib.h>

#include "format/ae.h"
#include "format/entry_hash.h"
#include "format/record.h"
#include "storage/digest.h"
#include "storage/store.h"
#include "util/endian.h"
#include "util/error.h"

/* An AE_KEYS answer stops at this many bytes of keys, whatever max_keys
 * says, so one answer stays well under a frame's body limit. */
#define KEYS_ANSWER_BYTES (1u << 20)

/* The node's digest, checked against the asker's size. */
static int digest_for(kvi_node *n, unsigned bits, kvi_digest **out)
{
    *out = kvi_store_digest(kvi_embedded_store(n->store));
    if (!*out)
        return kvi_error(KV_ENOTSUP, "this node keeps no anti-entropy digest (it is not "
                                     "part of a cluster)");
    if (!kvi_digest_ready(*out))
        return kvi_error(KV_EUNAVAILABLE, "this node's anti-entropy digest is still being "
                                          "built from its data");
    if (kvi_digest_bits(*out) != bits)
        return kvi_error(KV_EINVAL, "anti-entropy digest of 2^%u segments asked; this node "
                                    "keeps 2^%u", bits, kvi_digest_bits(*out));
    return KV_OK;
}

static int digest_op(kvi_node *n, const kvi_request *req, kvi_buf *answer)
{
    static _Thread_local kvi_ae_range ranges[KVI_AE_MAX_RANGES], parts[KVI_AE_MAX_RANGES];
    unsigned bits, fanout;
    size_t count;
    if (kvi_ae_digest_request_decode(&bits, &fanout, ranges, &count, req->value.data,
                                     req->value.len))
        return kvi_error(KV_EINVAL, "malformed anti-entropy digest request");
    kvi_digest *d;
    int rc = digest_for(n, bits, &d);
    if (rc != KV_OK)
        return rc;
    /* The decoder checked that the parts fit. */
    size_t n_parts = kvi_ae_parts(parts, KVI_AE_MAX_RANGES, ranges, count, fanout);
    uint64_t *hashes = malloc(n_parts * sizeof *hashes);
    uint32_t *keys = malloc(n_parts * sizeof *keys);
    if (!hashes || !keys) {
        free(hashes);
        free(keys);
        return kvi_error(KV_ENOMEM, "out of memory answering a digest request");
    }
    for (size_t i = 0; i < n_parts; i++) {
        uint64_t k;
        kvi_digest_range(d, parts[i].first, parts[i].end, &hashes[i], &k);
        keys[i] = (uint32_t)k;
    }
    kvi_ae_digest_answer_encode(answer, hashes, keys, n_parts);
    free(hashes);
    free(keys);
    return KV_OK;
}

/* The walk of one segment range for AE_KEYS. */
typedef struct keys_walk {
    kvi_digest *d;
    uint32_t end;
    uint32_t max_keys;
    int records;
    kvi_buf *answer;
    size_t bytes;
    uint32_t count;
    int more;
} keys_walk;

static int add_key(void *ctx, const void *key, size_t key_len, const void *value,
                   size_t value_len)
{
    keys_walk *w = ctx;
    if (key_len < KVI_TOKEN_SIZE ||
        kvi_digest_segment_of(w->d, kvi_get_be64(key)) >= w->end)
        return 1; /* past the range */
    if (w->count == w->max_keys || w->bytes >= KEYS_ANSWER_BYTES) {
        w->more = 1;
        return 1;
    }
    kvi_ae_keys_answer_add(w->answer, key, key_len, kvi_entry_hash(key, key_len, value, value_len),
                           w->records ? value : NULL, value_len);
    w->count++;
    w->bytes += key_len + 12 + (w->records ? value_len + 4 : 0);
    return 0;
}

static int keys_op(kvi_node *n, const kvi_request *req, kvi_buf *answer)
{
    kvi_ae_keys_request kr;
    if (kvi_ae_keys_request_decode(&kr, req->value.data, req->value.len))
        return kvi_error(KV_EINVAL, "malformed anti-entropy keys request");
    kvi_digest *d;
    int rc = digest_for(n, kr.bits, &d);
    if (rc != KV_OK)
        return rc;
    unsigned char start[KVI_TOKEN_SIZE];
    const void *from = kr.after.data;
    size_t from_len = kr.after.len;
    if (from_len) {
        if (from_len < KVI_TOKEN_SIZE) /* a storage key starts with its token */
            return kvi_error(KV_EINVAL, "anti-entropy keys request: the key to start after "
                                        "is not a storage key (%zu bytes)", from_len);
        size_t seg = kvi_digest_segment_of(d, kvi_get_be64(from));
        if (seg < kr.first || seg >= kr.end)
            return kvi_error(KV_EINVAL, "anti-entropy keys request: the key to start after "
                                        "is outside the segments asked for");
    } else {
        /* The first token of segment `first`: its number in the top bits.
         * No storage key is exactly these 8 bytes (a user key is never
         * empty), so "after" them is "from" them. */
        kvi_put_be64(start, (uint64_t)kr.first << (64u - kr.bits));
        from = start;
        from_len = sizeof start;
    }
    keys_walk w = {.d = d, .end = kr.end, .max_keys = kr.max_keys,
                   .records = (kr.flags & KVI_AE_KEYS_RECORDS) != 0, .answer = answer};
    size_t at = kvi_ae_keys_answer_start(answer);
    rc = kvi_store_data_scan(kvi_embedded_store(n->store), from, from_len, add_key, &w);
    if (rc != KV_OK)
        return rc;
    kvi_ae_keys_answer_finish(answer, at, w.count, w.more);
    return KV_OK;
}

int kvi_node_ae_op(kvi_node *n, const kvi_request *req, const kvi_frame_header *h,
                   kvi_buf *out)
{
    kvi_buf answer = {0};
    int rc = h->opcode == KVI_OP_AE_DIGEST ? digest_op(n, req, &answer)
                                           : keys_op(n, req, &answer);
    if (rc == KV_OK && answer.failed)
        rc = kvi_error(KV_ENOMEM, "out of memory answering an anti-entropy request");
    kvi_response resp = {0};
    if (rc == KV_OK) {
        resp.value.data = answer.data;
        resp.value.len = answer.len;
    }
    kvi_node_respond(out, h, rc, &resp);
    kvi_buf_free(&answer);
    return rc;
}
