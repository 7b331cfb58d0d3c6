/* libFuzzer target for the Paxos acceptor record (cluster/paxos.h): the
 * first 8 bytes are the token, the rest the record. Anything decodes to a
 * consistent record or is refused; a decoded record re-encodes to the same
 * bytes; the acceptor's rules on it never move the promise backwards. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "cluster/paxos.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
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
