/* format/topology_paxos.c - the next topology record's Paxos: acceptor
 * state and rules, messages and answers. */
#include "format/topology_paxos.h"

#include <string.h>

#include <kv/common.h>

#define ACCEPTOR_FORMAT 1u

/* ------------------------------------------------- records inside others */

/* A record as a u32 length and its bytes; length 0 when none (epoch 0). */
static void put_record(kvi_buf *b, const kvi_topology *t)
{
    if (t->epoch == 0) {
        kvi_buf_u32(b, 0);
        return;
    }
    size_t at = b->len;
    kvi_buf_u32(b, 0);
    kvi_topology_encode(b, t);
    if (b->len >= at + 4) {
        uint32_t len = (uint32_t)(b->len - at - 4);
        unsigned char *p = b->data + at;
        p[0] = (unsigned char)(len >> 24);
        p[1] = (unsigned char)(len >> 16);
        p[2] = (unsigned char)(len >> 8);
        p[3] = (unsigned char)len;
    }
}

/* 0 with *out decoded (empty for length 0), or -1. */
static int read_record(kvi_reader *r, kvi_topology *out)
{
    kvi_topology_init(out);
    kvi_bytes bytes = kvi_read_bytes(r);
    if (r->failed)
        return -1;
    if (bytes.len == 0)
        return 0;
    if (kvi_topology_decode(out, bytes.data, bytes.len) != KV_OK)
        return -1;
    return out->epoch == 0 ? -1 : 0; /* epoch 0 is written as length 0 only */
}

/* --------------------------------------------------------- the acceptor */

void kvi_tpx_acceptor_init(kvi_tpx_acceptor *a)
{
    memset(a, 0, sizeof *a);
    kvi_topology_init(&a->value);
}

void kvi_tpx_acceptor_free(kvi_tpx_acceptor *a)
{
    kvi_topology_free(&a->value);
    kvi_tpx_acceptor_init(a);
}

void kvi_tpx_acceptor_encode(kvi_buf *b, const kvi_tpx_acceptor *a)
{
    kvi_buf_u8(b, ACCEPTOR_FORMAT);
    kvi_buf_u64(b, a->slot);
    kvi_ballot_encode(b, &a->promised);
    kvi_buf_u8(b, a->has_accepted ? 1 : 0);
    if (a->has_accepted) {
        kvi_ballot_encode(b, &a->accepted);
        put_record(b, &a->value);
    }
}

int kvi_tpx_acceptor_decode(kvi_tpx_acceptor *out, const void *data, size_t len)
{
    kvi_tpx_acceptor_init(out);
    kvi_reader r = kvi_reader_init(data, len);
    if (kvi_read_u8(&r) != ACCEPTOR_FORMAT)
        return KV_EINVAL;
    out->slot = kvi_read_u64(&r);
    if (kvi_ballot_read(&r, &out->promised) != 0)
        return KV_EINVAL;
    uint8_t has = kvi_read_u8(&r);
    if (r.failed || has > 1)
        return KV_EINVAL;
    if (has) {
        out->has_accepted = 1;
        if (kvi_ballot_read(&r, &out->accepted) != 0 || read_record(&r, &out->value) != 0 ||
            out->value.epoch != out->slot) {
            kvi_tpx_acceptor_free(out);
            return KV_EINVAL;
        }
    }
    if (kvi_reader_done(&r) != 0) {
        kvi_tpx_acceptor_free(out);
        return KV_EINVAL;
    }
    return KV_OK;
}

/* --------------------------------------------------------- the messages */

void kvi_tpx_msg_init(kvi_tpx_msg *m)
{
    memset(m, 0, sizeof *m);
    kvi_topology_init(&m->base);
    kvi_topology_init(&m->value);
}

void kvi_tpx_msg_free(kvi_tpx_msg *m)
{
    kvi_topology_free(&m->base);
    kvi_topology_free(&m->value);
    kvi_tpx_msg_init(m);
}

void kvi_tpx_msg_encode(kvi_buf *b, const kvi_tpx_msg *m)
{
    kvi_buf_u8(b, m->kind);
    kvi_ballot_encode(b, &m->ballot);
    put_record(b, &m->base);
    put_record(b, &m->value);
}

int kvi_tpx_msg_decode(kvi_tpx_msg *out, const void *data, size_t len)
{
    kvi_tpx_msg_init(out);
    kvi_reader r = kvi_reader_init(data, len);
    out->kind = kvi_read_u8(&r);
    int ok = !r.failed && out->kind >= KVI_TPX_PREPARE && out->kind <= KVI_TPX_FETCH &&
             kvi_ballot_read(&r, &out->ballot) == 0 && read_record(&r, &out->base) == 0 &&
             read_record(&r, &out->value) == 0 && kvi_reader_done(&r) == 0;
    if (ok) {
        switch (out->kind) {
        case KVI_TPX_PREPARE:
            ok = out->base.epoch && !out->value.epoch && out->ballot.node[0];
            break;
        case KVI_TPX_PROPOSE:
            ok = out->base.epoch && out->value.epoch == out->base.epoch + 1 &&
                 out->ballot.node[0];
            break;
        case KVI_TPX_COMMIT:
            ok = out->base.epoch && !out->value.epoch;
            break;
        default: /* FETCH */
            ok = !out->base.epoch && !out->value.epoch;
            break;
        }
    }
    if (!ok) {
        kvi_tpx_msg_free(out);
        return KV_EINVAL;
    }
    return KV_OK;
}

void kvi_tpx_answer_init(kvi_tpx_answer *a)
{
    memset(a, 0, sizeof *a);
    kvi_topology_init(&a->accepted_value);
    kvi_topology_init(&a->current);
}

void kvi_tpx_answer_free(kvi_tpx_answer *a)
{
    kvi_topology_free(&a->accepted_value);
    kvi_topology_free(&a->current);
    kvi_tpx_answer_init(a);
}

void kvi_tpx_answer_encode(kvi_buf *b, const kvi_tpx_answer *a)
{
    kvi_buf_u8(b, a->verdict);
    kvi_ballot_encode(b, &a->promised);
    kvi_buf_u8(b, a->has_accepted ? 1 : 0);
    if (a->has_accepted) {
        kvi_ballot_encode(b, &a->accepted);
        put_record(b, &a->accepted_value);
    }
    put_record(b, &a->current);
}

int kvi_tpx_answer_decode(kvi_tpx_answer *out, const void *data, size_t len)
{
    kvi_tpx_answer_init(out);
    kvi_reader r = kvi_reader_init(data, len);
    out->verdict = kvi_read_u8(&r);
    int ok = !r.failed && out->verdict >= KVI_TPX_GRANTED &&
             out->verdict <= KVI_TPX_NOT_ACCEPTOR && kvi_ballot_read(&r, &out->promised) == 0;
    uint8_t has = ok ? kvi_read_u8(&r) : 0;
    ok = ok && !r.failed && has <= 1;
    if (ok && has) {
        out->has_accepted = 1;
        ok = kvi_ballot_read(&r, &out->accepted) == 0 &&
             read_record(&r, &out->accepted_value) == 0 && out->accepted_value.epoch;
    }
    ok = ok && read_record(&r, &out->current) == 0 && kvi_reader_done(&r) == 0;
    if (!ok) {
        kvi_tpx_answer_free(out);
        return KV_EINVAL;
    }
    return KV_OK;
}
