/* libFuzzer target for record format 2 (a key's clock and siblings): the
 * first 8 bytes are the token, the rest the record. Anything decodes to a
 * consistent state or is refused; a decoded state re-encodes to the same
 * bytes and merges with itself into itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "format/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 8)
        return 0;
    uint64_t token = 0;
    for (int i = 0; i < 8; i++)
        token = (token << 8) | data[i];
    static kvi_state s; /* large; kept off the fuzzer's stack */
    if (kvi_state_decode(&s, data + 8, size - 8, token) != KV_OK)
        return 0;
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
