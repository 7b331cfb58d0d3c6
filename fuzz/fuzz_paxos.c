/* libFuzzer target for the Paxos codecs (format/paxos.h), all fed the same
 * input:
 * - the acceptor record: the first 8 bytes are the token, the rest the
 *   record. Anything decodes to a consistent record or is refused; a
 *   decoded record re-encodes to the same bytes; the acceptor's rules on it
 *   never move the promise backwards;
 * - an acceptor's answer (the whole input), which a proposer decodes from
 *   any home: decoded, it re-encodes to the same bytes;
 * - a proposal: its id and state split without reading past the end. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "format/paxos.h"

static void answer(const uint8_t *data, size_t size)
{
    kvi_paxos_answer ans;
    if (kvi_paxos_answer_decode(&ans, data, size) != 0)
        return;
    kvi_acceptor a;
    kvi_acceptor_init(&a);
    a.promised = ans.promised;
    a.has_accepted = ans.has_accepted;
    a.accepted = ans.accepted;
    a.accepted_state = ans.accepted_state;
    a.committed = ans.committed;
    a.committed_version = ans.committed_version;
    a.n_recent = ans.n_recent;
    memcpy(a.recent, ans.recent, sizeof a.recent);
    kvi_buf b = {0};
    kvi_paxos_answer_encode(&b, ans.granted, &a, ans.has_data ? &ans.data_state : NULL);
    if (b.failed || b.len != size || memcmp(b.data, data, size) != 0)
        abort();
    kvi_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    answer(data, size);
    uint64_t id;
    const void *state;
    size_t state_len;
    if (kvi_proposal_split(data, size, &id, &state, &state_len) == 0 &&
        ((const uint8_t *)state < data || (const uint8_t *)state + state_len != data + size))
        abort();
    if (size < 8)
        return 0;
    uint64_t token = 0;
    for (int i = 0; i < 8; i++)
        token = (token << 8) | data[i];
    kvi_acceptor a;
    if (kvi_acceptor_decode(&a, data + 8, size - 8, token) != KV_OK)
        return 0;
    kvi_buf b = {0};
    kvi_acceptor_encode(&b, &a, token);
    if (b.failed || b.len != size - 8 || memcmp(b.data, data + 8, b.len) != 0)
        abort();
    kvi_buf_free(&b);
    /* Rules: a ballot built from the record's own, one above and one below. */
    kvi_ballot promised = a.promised;
    kvi_ballot next;
    if (kvi_ballot_next(&next, "fz", 0, &a.promised) != KV_OK)
        abort();
    if (kvi_acceptor_prepare(&a, &promised) != 0)
        abort(); /* never a second promise for the same ballot */
    if (kvi_acceptor_prepare(&a, &next) != 1 || kvi_ballot_compare(&a.promised, &next) != 0)
        abort();
    if (kvi_acceptor_propose(&a, &promised, "x", 1) != (kvi_ballot_compare(&promised, &next) >= 0))
        abort();
    return 0;
}
