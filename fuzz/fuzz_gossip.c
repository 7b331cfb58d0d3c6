/* libFuzzer target for the gossiped member table's decoder: any bytes
 * decode to a valid, sorted table or are refused; a decoded table
 * re-encodes to the same bytes (a format-1 or 2 table to the same table in
 * format 3), and merging it into itself changes nothing. */
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
    if (size > 0 && (data[0] == 1 || data[0] == 2)) {
        /* Formats 1 and 2 are read, and written again as format 3 (each
         * entry's missing fields 0): the same table once decoded. */
        kvi_gossip_table again;
        if (kvi_gossip_decode(&again, b.data, b.len) != KV_OK || again.n != t.n ||
            (t.n && memcmp(again.entries, t.entries, t.n * sizeof *t.entries) != 0))
            abort();
        for (size_t i = 0; i < t.n; i++)
            if (t.entries[i].epoch != 0 || (data[0] == 1 && t.entries[i].repaired_ms != 0))
                abort();
        kvi_gossip_table_free(&again);
    } else if (b.len != size || memcmp(b.data, data, size) != 0) {
        abort();
    }
    if (kvi_gossip_merge(&t, &t) != 0)
        abort();
    kvi_buf_free(&b);
    kvi_gossip_table_free(&t);
    return 0;
}
