/* libFuzzer target for the cluster description a client learns its view
 * from (kvi_view_from_json): any bytes build a view whose ring agrees with
 * its members, or are refused with KV_EIO / KV_EUNAVAILABLE / KV_EINVAL.
 * Building a view opens no connection. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/view.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvi_view *v = NULL;
    int rc = kvi_view_from_json(&v, data, size, NULL, 0, NULL, NULL);
    if (rc != KV_OK) {
        if (v || (rc != KV_EIO && rc != KV_EUNAVAILABLE && rc != KV_EINVAL))
            abort();
        return 0;
    }
    if (!v || v->n == 0 || kvi_ring_members(v->ring) != v->n || v->self != -1)
        abort();
    for (size_t i = 0; i < v->n; i++)
        if (!v->members[i].client || strcmp(kvi_ring_member_id(v->ring, i), v->members[i].id))
            abort();
    const uint32_t *pref;
    size_t n = kvi_ring_preference(v->ring, 12345, &pref);
    for (size_t i = 0; i < n; i++)
        if (pref[i] >= v->n)
            abort();
    kvi_view_unref(v);
    return 0;
}
