/* libFuzzer target for the topology Paxos codecs (format/topology_paxos.h):
 * the same bytes go to the message, answer and acceptor-state decoders;
 * each decodes to something that re-encodes to the same bytes, or refuses
 * them. A decoded message then goes through the acceptor's rules against
 * a cluster of three: any answer it gives encodes and decodes again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "cluster/topology.h"
#include "cluster/topology_paxos.h"
#include "format/topology_paxos.h"

static void same_bytes(const kvi_buf *b, const uint8_t *data, size_t size)
{
    if (b->len != size || memcmp(b->data, data, size) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvi_buf b = {0};
    kvi_tpx_msg m;
    if (kvi_tpx_msg_decode(&m, data, size) == KV_OK) {
        kvi_tpx_msg_encode(&b, &m);
        same_bytes(&b, data, size);
        const char *ids[] = {"n1", "n2", "n3"};
        const char *addrs[] = {"127.0.0.1:7401", "127.0.0.1:7402", "127.0.0.1:7403"};
        kvi_topology cur;
        kvi_topology_init(&cur);
        kvi_tpx_acceptor acc;
        kvi_tpx_acceptor_init(&acc);
        kvi_tpx_answer ans;
        int cc, ac;
        if (kvi_topology_first(&cur, 3, 8, ids, addrs, NULL, 3) == KV_OK &&
            kvi_tpx_accept(&cur, &acc, "n1", &m, &ans, &cc, &ac) == KV_OK) {
            kvi_buf_reset(&b);
            kvi_tpx_answer_encode(&b, &ans);
            kvi_tpx_answer back;
            if (kvi_tpx_answer_decode(&back, b.data, b.len) != KV_OK)
                abort();
            if (kvi_topology_invalid(&cur))
                abort();
            kvi_tpx_answer_free(&back);
            kvi_tpx_answer_free(&ans);
        }
        kvi_tpx_acceptor_free(&acc);
        kvi_topology_free(&cur);
        kvi_tpx_msg_free(&m);
    }
    kvi_tpx_answer a;
    if (kvi_tpx_answer_decode(&a, data, size) == KV_OK) {
        kvi_buf_reset(&b);
        kvi_tpx_answer_encode(&b, &a);
        same_bytes(&b, data, size);
        kvi_tpx_answer_free(&a);
    }
    kvi_tpx_acceptor s;
    if (kvi_tpx_acceptor_decode(&s, data, size) == KV_OK) {
        kvi_buf_reset(&b);
        kvi_tpx_acceptor_encode(&b, &s);
        same_bytes(&b, data, size);
        kvi_tpx_acceptor_free(&s);
    }
    kvi_buf_free(&b);
    return 0;
}
