/* libFuzzer target for record format 2 (a key's clock and siblings): the
 * first 8 bytes are the token, the rest the record. Anything decodes to a
 * consistent state or is refused; a decoded state re-encodes to the same
 * bytes and merges with itself into itself; the anti-entropy entry hash
 * of any bytes is defined (no crash), and of a state it is not the hash of
 * a corrupt record and does not change when the siblings are reversed. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "format/entry_hash.h"
#include "format/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t token = 0;
    for (int i = 0; i < 8; i++)
        token = (token << 8) | data[i];
    unsigned char skey[9];
    memcpy(skey, data, 8);
    skey[8] = 'k';
    uint64_t h = kvi_entry_hash(skey, sizeof skey, data + 8, size - 8);
    static kvi_state s; /* large; kept off the fuzzer's stack */
    if (kvi_state_decode(&s, data + 8, size - 8, token) != KV_OK)
        return 0;
    if (h == kvi_entry_hash_corrupt(skey, sizeof skey))
        abort();
    static kvi_state reversed;
    reversed = s;
    for (size_t i = 0; i < s.n; i++)
        reversed.sibs[i] = s.sibs[s.n - 1 - i];
    kvi_buf r = {0};
    kvi_state_encode(&r, &reversed, token);
    if (!r.failed && kvi_entry_hash(skey, sizeof skey, r.data, r.len) != h)
        abort();
    kvi_buf_free(&r);
    kvi_buf b = {0};
    kvi_state_encode(&b, &s, token);
    if (b.len != size - 8 || memcmp(b.data, data + 8, b.len) != 0)
        abort();
    kvi_buf_free(&b);
    static kvi_state copy;
    copy = s;
    if (kvi_state_merge(&copy, &s) != KV_OK || !kvi_state_equal(&copy, &s))
        abort();
    return 0;
}
