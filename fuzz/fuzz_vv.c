/* libFuzzer target for the version-vector decoder: any bytes decode to a
 * well-formed vector or are refused; a decoded vector re-encodes to the same
 * bytes, and compares equal to itself. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "format/dvv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvi_vv vv;
    kvi_reader r = kvi_reader_init(data, size);
    if (kvi_vv_decode(&vv, &r) != 0)
        return 0;
    size_t used = size - r.left;
    kvi_buf b = {0};
    kvi_vv_encode(&b, &vv);
    if (b.len != used || memcmp(b.data, data, used) != 0)
        abort();
    if (kvi_vv_compare(&vv, &vv) != KVI_VV_EQUAL)
        abort();
    kvi_vv copy = vv;
    if (kvi_vv_merge(&copy, &vv) != 0 || kvi_vv_compare(&copy, &vv) != KVI_VV_EQUAL)
        abort();
    kvi_buf_free(&b);
    return 0;
}
