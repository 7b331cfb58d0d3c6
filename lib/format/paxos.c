/* format/paxos.c - ballots and an acceptor's record and rules (see paxos.h). */
#include "format/paxos.h"

#include <string.h>
#include <xxhash.h>

#include <kv/common.h>
#include "util/endian.h"
#include "util/error.h"

int kvi_ballot_compare(const kvi_ballot *a, const kvi_ballot *b)
{
    if (a->time_us != b->time_us)
        return a->time_us < b->time_us ? -1 : 1;
    int c = strcmp(a->node, b->node);
    if (c != 0)
        return c < 0 ? -1 : 1;
    if (a->counter != b->counter)
        return a->counter < b->counter ? -1 : 1;
    return 0;
}

int kvi_ballot_next(kvi_ballot *out, const char *node, uint64_t now_us,
                    const kvi_ballot *highest_seen)
{
    size_t len = node ? strlen(node) : 0;
    if (len == 0 || len > KVI_DVV_MAX_ID)
        return kvi_error(KV_EINVAL, "a ballot needs a node id of 1..%u bytes", KVI_DVV_MAX_ID);
    kvi_ballot next;
    memset(&next, 0, sizeof next);
    memcpy(next.node, node, len);
    next.time_us = now_us;
    if (highest_seen->time_us >= now_us) {
        /* A clock behind what was seen: go past it rather than wait. The
         * counter breaks the tie when the id orders before the rival's. */
        next.time_us = highest_seen->time_us;
        next.counter = highest_seen->counter + 1;
        if (next.counter == 0 || kvi_ballot_compare(&next, highest_seen) <= 0) {
            next.time_us = highest_seen->time_us + 1;
            next.counter = 0;
        }
    }
    *out = next;
    return KV_OK;
}

void kvi_ballot_encode(kvi_buf *b, const kvi_ballot *ballot)
{
    size_t len = strnlen(ballot->node, KVI_DVV_MAX_ID);
    kvi_buf_u64(b, ballot->time_us);
    kvi_buf_u8(b, (uint8_t)len);
    kvi_buf_raw(b, ballot->node, len);
    kvi_buf_u32(b, ballot->counter);
}

int kvi_ballot_read(kvi_reader *r, kvi_ballot *out)
{
    memset(out, 0, sizeof *out);
    out->time_us = kvi_read_u64(r);
    uint8_t len = kvi_read_u8(r);
    if (r->failed || len > KVI_DVV_MAX_ID || len > r->left)
        return -1;
    memcpy(out->node, r->p, len);
    r->p += len;
    r->left -= len;
    out->counter = kvi_read_u32(r);
    if (r->failed || memchr(out->node, 0, len) != NULL)
        return -1;
    /* Only the zero ballot has no node. */
    if (len == 0 && (out->time_us || out->counter))
        return -1;
    return 0;
}

void kvi_acceptor_init(kvi_acceptor *a)
{
    memset(a, 0, sizeof *a);
}

int kvi_acceptor_prepare(kvi_acceptor *a, const kvi_ballot *ballot)
{
    if (kvi_ballot_compare(ballot, &a->promised) <= 0)
        return 0;
    a->promised = *ballot;
    return 1;
}

int kvi_acceptor_propose(kvi_acceptor *a, const kvi_ballot *ballot, const void *state,
                         size_t state_len)
{
    if (kvi_ballot_compare(ballot, &a->promised) < 0)
        return 0;
    a->promised = *ballot;
    a->has_accepted = 1;
    a->accepted = *ballot;
    a->accepted_state.data = state;
    a->accepted_state.len = state_len;
    return 1;
}

int kvi_acceptor_commit(kvi_acceptor *a, const kvi_ballot *ballot, uint64_t version)
{
    if (kvi_ballot_compare(ballot, &a->committed) <= 0)
        return 0;
    a->committed = *ballot;
    a->committed_version = version;
    if (a->has_accepted && kvi_ballot_compare(&a->accepted, ballot) <= 0) {
        a->has_accepted = 0;
        memset(&a->accepted, 0, sizeof a->accepted);
        a->accepted_state.data = NULL;
        a->accepted_state.len = 0;
    }
    return 1;
}

void kvi_acceptor_remember(kvi_acceptor *a, uint64_t version, uint64_t fingerprint)
{
    for (size_t i = 0; i < a->n_recent; i++)
        if (a->recent[i].version == version)
            return;
    if (a->n_recent == KVI_PAXOS_RECENT) {
        memmove(&a->recent[0], &a->recent[1], (KVI_PAXOS_RECENT - 1) * sizeof a->recent[0]);
        a->n_recent--;
    }
    a->recent[a->n_recent].version = version;
    a->recent[a->n_recent].fingerprint = fingerprint;
    a->n_recent++;
}

static void recent_encode(kvi_buf *b, const kvi_paxos_recent *recent, size_t n)
{
    kvi_buf_u8(b, (uint8_t)n);
    for (size_t i = 0; i < n; i++) {
        kvi_buf_u64(b, recent[i].version);
        kvi_buf_u64(b, recent[i].fingerprint);
    }
}

static int recent_read(kvi_reader *r, kvi_paxos_recent *recent, size_t *n)
{
    uint8_t count = kvi_read_u8(r);
    if (r->failed || count > KVI_PAXOS_RECENT)
        return -1;
    for (size_t i = 0; i < count; i++) {
        recent[i].version = kvi_read_u64(r);
        recent[i].fingerprint = kvi_read_u64(r);
    }
    *n = count;
    return r->failed ? -1 : 0;
}

/* What a record and an answer share after the promise: the accepted
 * proposal (when there is one), the last commit, the recent commits. */
static void accepted_and_commits_encode(kvi_buf *b, const kvi_acceptor *a)
{
    if (a->has_accepted) {
        kvi_ballot_encode(b, &a->accepted);
        kvi_buf_bytes(b, a->accepted_state.data, a->accepted_state.len);
    }
    kvi_ballot_encode(b, &a->committed);
    kvi_buf_u64(b, a->committed_version);
    recent_encode(b, a->recent, a->n_recent);
}

int kvi_acceptor_unfinished(const kvi_acceptor *a)
{
    return a->has_accepted && kvi_ballot_compare(&a->accepted, &a->committed) > 0;
}

void kvi_acceptor_encode(kvi_buf *b, const kvi_acceptor *a, uint64_t token)
{
    size_t start = b->len;
    kvi_buf_u8(b, KVI_PAXOS_FORMAT);
    kvi_ballot_encode(b, &a->promised);
    kvi_buf_u8(b, a->has_accepted ? 1 : 0);
    accepted_and_commits_encode(b, a);
    if (!b->failed)
        kvi_buf_u64(b, XXH3_64bits_withSeed(b->data + start, b->len - start, token));
}

int kvi_acceptor_decode(kvi_acceptor *out, const void *buf, size_t len, uint64_t token)
{
    kvi_acceptor_init(out);
    if (len < 8)
        return kvi_error(KV_ECORRUPT, "a Paxos record of %zu bytes", len);
    const unsigned char *p = buf;
    if (XXH3_64bits_withSeed(p, len - 8, token) != kvi_get_be64(p + len - 8))
        return kvi_error(KV_ECORRUPT, "a Paxos record failed its checksum");
    kvi_reader r = kvi_reader_init(p, len - 8);
    kvi_acceptor a;
    kvi_acceptor_init(&a);
    int bad = kvi_read_u8(&r) != KVI_PAXOS_FORMAT || kvi_ballot_read(&r, &a.promised) != 0;
    uint8_t has_accepted = bad ? 0 : kvi_read_u8(&r);
    bad |= has_accepted > 1;
    if (!bad && has_accepted) {
        a.has_accepted = 1;
        bad = kvi_ballot_read(&r, &a.accepted) != 0;
        a.accepted_state = kvi_read_bytes(&r);
    }
    bad |= kvi_ballot_read(&r, &a.committed) != 0;
    a.committed_version = kvi_read_u64(&r);
    bad |= recent_read(&r, a.recent, &a.n_recent) != 0;
    if (bad || kvi_reader_done(&r) != 0)
        return kvi_error(KV_ECORRUPT, "a malformed Paxos record");
    *out = a;
    return KV_OK;
}

void kvi_proposal_encode(kvi_buf *b, uint64_t id, const void *state, size_t state_len)
{
    kvi_buf_u64(b, id);
    kvi_buf_raw(b, state, state_len);
}

int kvi_proposal_split(const void *p, size_t len, uint64_t *id, const void **state,
                       size_t *state_len)
{
    if (len < 8)
        return -1;
    *id = kvi_get_be64(p);
    *state = (const unsigned char *)p + 8;
    *state_len = len - 8;
    return 0;
}

uint64_t kvi_proposal_id(const kvi_ballot *ballot)
{
    return XXH3_64bits_withSeed(ballot->node, strnlen(ballot->node, KVI_DVV_MAX_ID),
                                ballot->time_us ^ ((uint64_t)ballot->counter << 40));
}

#define ANSWER_GRANTED 1u
#define ANSWER_ACCEPTED 2u
#define ANSWER_DATA 4u

void kvi_paxos_answer_encode(kvi_buf *b, int granted, const kvi_acceptor *a,
                             const kvi_bytes *data)
{
    kvi_buf_u8(b, (uint8_t)((granted ? ANSWER_GRANTED : 0) |
                            (a->has_accepted ? ANSWER_ACCEPTED : 0) | (data ? ANSWER_DATA : 0)));
    kvi_ballot_encode(b, &a->promised);
    accepted_and_commits_encode(b, a);
    if (data)
        kvi_buf_bytes(b, data->data, data->len);
}

int kvi_paxos_answer_decode(kvi_paxos_answer *out, const void *buf, size_t len)
{
    memset(out, 0, sizeof *out);
    kvi_reader r = kvi_reader_init(buf, len);
    uint8_t flags = kvi_read_u8(&r);
    if (r.failed || (flags & ~(ANSWER_GRANTED | ANSWER_ACCEPTED | ANSWER_DATA)) != 0)
        return -1;
    out->granted = (flags & ANSWER_GRANTED) != 0;
    out->has_accepted = (flags & ANSWER_ACCEPTED) != 0;
    out->has_data = (flags & ANSWER_DATA) != 0;
    if (kvi_ballot_read(&r, &out->promised) != 0)
        return -1;
    if (out->has_accepted) {
        if (kvi_ballot_read(&r, &out->accepted) != 0)
            return -1;
        out->accepted_state = kvi_read_bytes(&r);
    }
    if (kvi_ballot_read(&r, &out->committed) != 0)
        return -1;
    out->committed_version = kvi_read_u64(&r);
    if (recent_read(&r, out->recent, &out->n_recent) != 0)
        return -1;
    if (out->has_data)
        out->data_state = kvi_read_bytes(&r);
    return kvi_reader_done(&r);
}
