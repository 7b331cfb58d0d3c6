/* format/message.c - encoding and decoding frame bodies. */
#include "format/message.h"

#include <stdlib.h>
#include <string.h>

#include <kv/batch.h>
#include <kv/common.h>
#include <kv/options.h>
#include "util/endian.h"

/* ------------------------------------------------------------- writing */

void kvi_frame_begin(kvi_buf *b)
{
    if (kvi_buf_reserve(b, KVI_FRAME_HEADER) == 0) {
        memset(b->data + b->len, 0, KVI_FRAME_HEADER);
        b->len += KVI_FRAME_HEADER;
    }
}

int kvi_frame_finish(kvi_buf *b, size_t start, uint8_t opcode, uint16_t flags,
                     int16_t status, uint64_t request_id)
{
    if (b->failed || b->len < start + KVI_FRAME_HEADER)
        return -1;
    size_t body_len = b->len - start - KVI_FRAME_HEADER;
    if (body_len > KVI_FRAME_MAX_BODY_LIMIT)
        return -1;
    kvi_frame_header h = {KVI_PROTOCOL_VERSION, opcode, flags, status, request_id,
                          (uint32_t)body_len, 0};
    kvi_frame_encode_header(b->data + start, &h, b->data + start + KVI_FRAME_HEADER);
    return 0;
}

/* ------------------------------------------------------------- reading */

static const unsigned char *take(kvi_reader *r, size_t n)
{
    if (r->failed || r->left < n) {
        r->failed = 1;
        return NULL;
    }
    const unsigned char *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

uint8_t kvi_read_u8(kvi_reader *r)
{
    const unsigned char *p = take(r, 1);
    return p ? p[0] : 0;
}

uint16_t kvi_read_u16(kvi_reader *r)
{
    const unsigned char *p = take(r, 2);
    return p ? (uint16_t)((p[0] << 8) | p[1]) : 0;
}

uint32_t kvi_read_u32(kvi_reader *r)
{
    const unsigned char *p = take(r, 4);
    return p ? ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3] : 0;
}

uint64_t kvi_read_u64(kvi_reader *r)
{
    const unsigned char *p = take(r, 8);
    return p ? kvi_get_be64(p) : 0;
}

kvi_bytes kvi_read_bytes(kvi_reader *r)
{
    kvi_bytes out = {NULL, 0};
    uint32_t len = kvi_read_u32(r);
    const unsigned char *p = take(r, len);
    if (p) {
        out.data = p;
        out.len = len;
    }
    return out;
}

int kvi_bytes_to_cstring(char *out, size_t room, kvi_bytes in)
{
    if (in.len >= room || (in.len && memchr(in.data, 0, in.len)))
        return -1;
    if (in.len)
        memcpy(out, in.data, in.len);
    out[in.len] = 0;
    return 0;
}

/* ------------------------------------------------------------ requests */

/* The smallest encoded batch operation: kind, ttl, two empty byte strings. */
#define MIN_BATCH_ITEM (1u + 8u + 4u + 4u)

static void read_item(kvi_reader *r, kvi_batch_item *item)
{
    item->kind = kvi_read_u8(r);
    item->ttl_s = kvi_read_u64(r);
    item->key = kvi_read_bytes(r);
    item->value = kvi_read_bytes(r);
}

int kvi_request_decode(kvi_request *out, uint8_t opcode, const void *body, size_t len)
{
    memset(out, 0, sizeof *out);
    out->opcode = opcode;
    kvi_reader r = kvi_reader_init(body, len);
    switch (opcode) {
    case KVI_OP_PING:
    case KVI_OP_CLUSTER:
        break;
    case KVI_OP_GET:
        out->consistency = kvi_read_u8(&r);
        out->quorum = kvi_read_u8(&r);
        out->key = kvi_read_bytes(&r);
        break;
    case KVI_OP_GET_STATE:
    case KVI_OP_READ_STATE:
        out->key = kvi_read_bytes(&r);
        break;
    case KVI_OP_REPLICATE:
    case KVI_OP_REPAIR:
        out->key = kvi_read_bytes(&r);
        out->value = kvi_read_bytes(&r);
        break;
    case KVI_OP_HINT:
        out->key = kvi_read_bytes(&r);
        out->value = kvi_read_bytes(&r);
        out->context = kvi_read_bytes(&r); /* the home replica's node id */
        break;
    case KVI_OP_GOSSIP:
    case KVI_OP_BACKUP:
    case KVI_OP_AE_DIGEST:
    case KVI_OP_AE_KEYS:
    case KVI_OP_REPAIR_START:
    case KVI_OP_TOPOLOGY:
    case KVI_OP_TOPOLOGY_CHANGE:
        out->value = kvi_read_bytes(&r);
        break;
    case KVI_OP_PAXOS_PREPARE:
    case KVI_OP_PAXOS_PROPOSE:
    case KVI_OP_PAXOS_COMMIT:
        out->expected_version = kvi_read_u64(&r); /* the hash of the key's homes */
        out->key = kvi_read_bytes(&r);
        out->context = kvi_read_bytes(&r);        /* the ballot */
        out->value = kvi_read_bytes(&r);          /* the state (empty for a prepare) */
        break;
    case KVI_OP_PUT:
        out->consistency = kvi_read_u8(&r);
        out->quorum = kvi_read_u8(&r);
        out->ttl_s = kvi_read_u64(&r);
        out->key = kvi_read_bytes(&r);
        out->value = kvi_read_bytes(&r);
        out->context = kvi_read_bytes(&r);
        break;
    case KVI_OP_DELETE:
        out->consistency = kvi_read_u8(&r);
        out->quorum = kvi_read_u8(&r);
        out->key = kvi_read_bytes(&r);
        out->context = kvi_read_bytes(&r);
        break;
    case KVI_OP_CAS:
        out->consistency = kvi_read_u8(&r);
        out->quorum = kvi_read_u8(&r);
        out->ttl_s = kvi_read_u64(&r);
        out->expected_version = kvi_read_u64(&r);
        out->key = kvi_read_bytes(&r);
        out->value = kvi_read_bytes(&r);
        break;
    case KVI_OP_SCAN:
        out->consistency = kvi_read_u8(&r);
        out->quorum = kvi_read_u8(&r);
        out->scan_flags = kvi_read_u8(&r);
        out->limit = kvi_read_u32(&r);
        out->key = kvi_read_bytes(&r);
        break;
    case KVI_OP_SCAN_RANGE:
        out->scan_flags = kvi_read_u8(&r);
        out->limit = kvi_read_u32(&r);
        out->last_token = kvi_read_u64(&r);
        out->key = kvi_read_bytes(&r);
        break;
    case KVI_OP_BATCH: {
        out->consistency = kvi_read_u8(&r);
        out->quorum = kvi_read_u8(&r);
        out->batch_count = kvi_read_u32(&r);
        if (r.failed || out->batch_count > r.left / MIN_BATCH_ITEM)
            return -1;
        out->batch_ops = r;
        /* Walk the operations once now, so later iteration cannot fail. */
        for (uint32_t i = 0; i < out->batch_count; i++) {
            kvi_batch_item item;
            read_item(&r, &item);
            if (item.kind < KV_BATCH_PUT || item.kind > KV_BATCH_DELETE)
                return -1;
        }
        break;
    }
    default:
        return -1;
    }
    return kvi_reader_done(&r);
}

int kvi_request_routable(uint8_t opcode)
{
    return opcode == KVI_OP_GET_STATE || opcode == KVI_OP_READ_STATE ||
           opcode == KVI_OP_REPLICATE;
}

#define ROUTE_BYTES 16u

int kvi_request_decode_frame(kvi_request *out, const kvi_frame_header *h, const void *body)
{
    size_t len = h->body_len;
    if (!(h->flags & KVI_FRAME_FLAG_ROUTED))
        return kvi_request_decode(out, h->opcode, body, len);
    if (!kvi_request_routable(h->opcode) || len < ROUTE_BYTES) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    len -= ROUTE_BYTES;
    if (kvi_request_decode(out, h->opcode, body, len) != 0)
        return -1;
    kvi_reader r = kvi_reader_init((const unsigned char *)body + len, ROUTE_BYTES);
    out->routed = 1;
    out->route_epoch = kvi_read_u64(&r);
    out->route_hash = kvi_read_u64(&r);
    return kvi_reader_done(&r);
}

void kvi_request_encode_route(kvi_buf *b, const kvi_request *req)
{
    if (!req->routed)
        return;
    kvi_buf_u64(b, req->route_epoch);
    kvi_buf_u64(b, req->route_hash);
}

void kvi_request_next_item(kvi_request *req, kvi_batch_item *item)
{
    read_item(&req->batch_ops, item);
}

void kvi_request_encode(kvi_buf *b, const kvi_request *req)
{
    switch (req->opcode) {
    case KVI_OP_GET:
        kvi_buf_u8(b, req->consistency);
        kvi_buf_u8(b, req->quorum);
        kvi_buf_bytes(b, req->key.data, req->key.len);
        break;
    case KVI_OP_GET_STATE:
    case KVI_OP_READ_STATE:
        kvi_buf_bytes(b, req->key.data, req->key.len);
        break;
    case KVI_OP_REPLICATE:
    case KVI_OP_REPAIR:
        kvi_buf_bytes(b, req->key.data, req->key.len);
        kvi_buf_bytes(b, req->value.data, req->value.len);
        break;
    case KVI_OP_HINT:
        kvi_buf_bytes(b, req->key.data, req->key.len);
        kvi_buf_bytes(b, req->value.data, req->value.len);
        kvi_buf_bytes(b, req->context.data, req->context.len);
        break;
    case KVI_OP_GOSSIP:
    case KVI_OP_BACKUP:
    case KVI_OP_AE_DIGEST:
    case KVI_OP_AE_KEYS:
    case KVI_OP_REPAIR_START:
    case KVI_OP_TOPOLOGY:
    case KVI_OP_TOPOLOGY_CHANGE:
        kvi_buf_bytes(b, req->value.data, req->value.len);
        break;
    case KVI_OP_PAXOS_PREPARE:
    case KVI_OP_PAXOS_PROPOSE:
    case KVI_OP_PAXOS_COMMIT:
        kvi_buf_u64(b, req->expected_version);
        kvi_buf_bytes(b, req->key.data, req->key.len);
        kvi_buf_bytes(b, req->context.data, req->context.len);
        kvi_buf_bytes(b, req->value.data, req->value.len);
        break;
    case KVI_OP_PUT:
        kvi_buf_u8(b, req->consistency);
        kvi_buf_u8(b, req->quorum);
        kvi_buf_u64(b, req->ttl_s);
        kvi_buf_bytes(b, req->key.data, req->key.len);
        kvi_buf_bytes(b, req->value.data, req->value.len);
        kvi_buf_bytes(b, req->context.data, req->context.len);
        break;
    case KVI_OP_DELETE:
        kvi_buf_u8(b, req->consistency);
        kvi_buf_u8(b, req->quorum);
        kvi_buf_bytes(b, req->key.data, req->key.len);
        kvi_buf_bytes(b, req->context.data, req->context.len);
        break;
    case KVI_OP_CAS:
        kvi_buf_u8(b, req->consistency);
        kvi_buf_u8(b, req->quorum);
        kvi_buf_u64(b, req->ttl_s);
        kvi_buf_u64(b, req->expected_version);
        kvi_buf_bytes(b, req->key.data, req->key.len);
        kvi_buf_bytes(b, req->value.data, req->value.len);
        break;
    case KVI_OP_SCAN:
        kvi_buf_u8(b, req->consistency);
        kvi_buf_u8(b, req->quorum);
        kvi_buf_u8(b, req->scan_flags);
        kvi_buf_u32(b, req->limit);
        kvi_buf_bytes(b, req->key.data, req->key.len);
        break;
    case KVI_OP_SCAN_RANGE:
        kvi_buf_u8(b, req->scan_flags);
        kvi_buf_u32(b, req->limit);
        kvi_buf_u64(b, req->last_token);
        kvi_buf_bytes(b, req->key.data, req->key.len);
        break;
    case KVI_OP_BATCH:
        /* The caller appends batch_count items with kvi_batch_item_encode. */
        kvi_buf_u8(b, req->consistency);
        kvi_buf_u8(b, req->quorum);
        kvi_buf_u32(b, req->batch_count);
        break;
    default:
        break;
    }
}

void kvi_batch_item_encode(kvi_buf *b, const kvi_batch_item *item)
{
    kvi_buf_u8(b, item->kind);
    kvi_buf_u64(b, item->ttl_s);
    kvi_buf_bytes(b, item->key.data, item->key.len);
    kvi_buf_bytes(b, item->value.data, item->value.len);
}

/* ----------------------------------------------------------- responses */

#define MIN_BATCH_OUTCOME (2u + 8u + 8u + 4u)
#define MIN_BATCH_OUTCOME_SIBLINGS (2u + 8u + 8u + 4u + 1u)

static void read_outcome(kvi_reader *r, kvi_batch_outcome *out, int siblings)
{
    memset(out, 0, sizeof *out);
    out->status = (int16_t)kvi_read_u16(r);
    out->version = kvi_read_u64(r);
    out->expiry_ms = kvi_read_u64(r);
    if (!siblings) {
        out->value = kvi_read_bytes(r);
        return;
    }
    out->context = kvi_read_bytes(r);
    out->sibling_count = kvi_read_u8(r);
    if (out->sibling_count > KVI_MAX_WIRE_SIBLINGS) {
        r->failed = 1;
        out->sibling_count = 0;
        return;
    }
    out->siblings = *r;
    for (uint32_t i = 0; i < out->sibling_count; i++) {
        kvi_bytes v = kvi_read_bytes(r);
        if (i == 0)
            out->value = v;
    }
}

int kvi_response_decode(kvi_response *out, uint8_t opcode, int16_t status,
                        const void *body, size_t len)
{
    return kvi_response_decode_flags(out, opcode, status, 0, body, len);
}

int kvi_response_decode_flags(kvi_response *out, uint8_t opcode, int16_t status, uint16_t flags,
                              const void *body, size_t len)
{
    memset(out, 0, sizeof *out);
    out->opcode = opcode;
    out->status = status;
    kvi_reader r = kvi_reader_init(body, len);
    if (status != KV_OK) {
        out->version = kvi_read_u64(&r);
        out->message = kvi_read_bytes(&r);
        return kvi_reader_done(&r);
    }
    switch (opcode) {
    case KVI_OP_PING:
    case KVI_OP_HINT:
        break;
    case KVI_OP_CLUSTER:
    case KVI_OP_GET_STATE:
    case KVI_OP_READ_STATE:
    case KVI_OP_GOSSIP:
    case KVI_OP_PAXOS_PREPARE:
    case KVI_OP_PAXOS_PROPOSE:
    case KVI_OP_PAXOS_COMMIT:
    case KVI_OP_BACKUP:
    case KVI_OP_AE_DIGEST:
    case KVI_OP_AE_KEYS:
    case KVI_OP_REPAIR_START:
    case KVI_OP_TOPOLOGY:
    case KVI_OP_TOPOLOGY_CHANGE:
        out->value = kvi_read_bytes(&r);
        break;
    case KVI_OP_GET:
        out->version = kvi_read_u64(&r);
        out->expiry_ms = kvi_read_u64(&r);
        out->context = kvi_read_bytes(&r);
        out->sibling_count = kvi_read_u8(&r);
        if (r.failed || out->sibling_count == 0 || out->sibling_count > KVI_MAX_WIRE_SIBLINGS)
            return -1;
        out->siblings = r;
        out->value = kvi_read_bytes(&r);
        for (uint32_t i = 1; i < out->sibling_count; i++)
            kvi_read_bytes(&r);
        break;
    case KVI_OP_PUT:
    case KVI_OP_DELETE:
    case KVI_OP_CAS:
    case KVI_OP_REPLICATE:
    case KVI_OP_REPAIR:
        out->version = kvi_read_u64(&r);
        break;
    case KVI_OP_BATCH:
        out->batch_siblings = (flags & KVI_FRAME_FLAG_SIBLINGS) != 0;
        out->batch_count = kvi_read_u32(&r);
        if (r.failed || out->batch_count > r.left / (out->batch_siblings
                                                         ? MIN_BATCH_OUTCOME_SIBLINGS
                                                         : MIN_BATCH_OUTCOME))
            return -1;
        out->batch_results = r;
        for (uint32_t i = 0; i < out->batch_count; i++) {
            kvi_batch_outcome o;
            read_outcome(&r, &o, out->batch_siblings);
        }
        break;
    default:
        return -1;
    }
    return kvi_reader_done(&r);
}

kvi_bytes kvi_response_next_sibling(kvi_response *resp)
{
    return kvi_read_bytes(&resp->siblings);
}

void kvi_response_next_outcome(kvi_response *resp, kvi_batch_outcome *out)
{
    read_outcome(&resp->batch_results, out, resp->batch_siblings);
}

void kvi_response_encode(kvi_buf *b, const kvi_response *resp)
{
    if (resp->status != KV_OK) {
        kvi_buf_u64(b, resp->version);
        kvi_buf_bytes(b, resp->message.data, resp->message.len);
        return;
    }
    switch (resp->opcode) {
    case KVI_OP_CLUSTER:
    case KVI_OP_GET_STATE:
    case KVI_OP_READ_STATE:
    case KVI_OP_GOSSIP:
    case KVI_OP_PAXOS_PREPARE:
    case KVI_OP_PAXOS_PROPOSE:
    case KVI_OP_PAXOS_COMMIT:
    case KVI_OP_BACKUP:
    case KVI_OP_AE_DIGEST:
    case KVI_OP_AE_KEYS:
    case KVI_OP_REPAIR_START:
    case KVI_OP_TOPOLOGY:
    case KVI_OP_TOPOLOGY_CHANGE:
        kvi_buf_bytes(b, resp->value.data, resp->value.len);
        break;
    case KVI_OP_GET:
        kvi_buf_u64(b, resp->version);
        kvi_buf_u64(b, resp->expiry_ms);
        kvi_buf_bytes(b, resp->context.data, resp->context.len);
        kvi_buf_u8(b, (uint8_t)(resp->sibling_count ? resp->sibling_count : 1));
        /* With siblings, the caller appends each value itself. */
        if (!resp->sibling_count)
            kvi_buf_bytes(b, resp->value.data, resp->value.len);
        break;
    case KVI_OP_PUT:
    case KVI_OP_DELETE:
    case KVI_OP_CAS:
    case KVI_OP_REPLICATE:
    case KVI_OP_REPAIR:
        kvi_buf_u64(b, resp->version);
        break;
    case KVI_OP_BATCH:
        /* The caller appends batch_count outcomes. */
        kvi_buf_u32(b, resp->batch_count);
        break;
    default:
        break;
    }
}

void kvi_batch_outcome_encode(kvi_buf *b, const kvi_batch_outcome *out)
{
    kvi_buf_u16(b, (uint16_t)out->status);
    kvi_buf_u64(b, out->version);
    kvi_buf_u64(b, out->expiry_ms);
    kvi_buf_bytes(b, out->value.data, out->value.len);
}

void kvi_batch_outcome_encode_siblings(kvi_buf *b, const kvi_batch_outcome *out,
                                       const kvi_bytes *values, uint32_t count)
{
    kvi_buf_u16(b, (uint16_t)out->status);
    kvi_buf_u64(b, out->version);
    kvi_buf_u64(b, out->expiry_ms);
    kvi_buf_bytes(b, out->context.data, out->context.len);
    kvi_buf_u8(b, (uint8_t)count);
    for (uint32_t i = 0; i < count; i++)
        kvi_buf_bytes(b, values[i].data, values[i].len);
}

void kvi_request_set_write_options(kvi_request *req, const kv_write_options *o)
{
    if (!o)
        return;
    req->ttl_s = o->ttl_s;
    req->consistency = (uint8_t)o->consistency;
    req->quorum = (uint8_t)o->w;
    req->context.data = o->context;
    req->context.len = o->context ? o->context_len : 0;
}
