/* libFuzzer target for the gossiped member table's decoder: any bytes
 * decode to a valid, sorted table or are refused; a decoded table
 * re-encodes to the same bytes, and merging it into itself changes
 * nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/gossip_table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvi_gossip_table t;
    if (kvi_gossip_decode(&t, data, size) != KV_OK) {
        if (t.n != 0)
            abort();
        return 0;
    }
    kvi_buf b = {0};
    kvi_gossip_encode(&b, &t);
    if (b.len != size || memcmp(b.data, data, size) != 0)
        abort();
    if (kvi_gossip_merge(&t, &t) != 0)
        abort();
    kvi_buf_free(&b);
    kvi_gossip_table_free(&t);
    return 0;
}
