/* libFuzzer target for the topology record's decoder (docs/design/
 * TOPOLOGY.md): any bytes decode to a consistent record or are refused; a
 * decoded record re-encodes to the same bytes; and on a small one the
 * changes and plans that read it hold their promises (every change is one
 * epoch on and consistent, every gainer's plan names a source other than
 * itself, or none). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "cluster/topology.h"
#include "format/topology.h"

static void check_next(const kvi_topology *cur, const kvi_topology *next, int rc)
{
    if (rc != KV_OK) {
        if (next->n != 0)
            abort();
        return;
    }
    if (next->epoch != cur->epoch + 1 || kvi_topology_invalid(next))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    kvi_topology t;
    if (kvi_topology_decode(&t, data, size) != KV_OK) {
        if (t.n != 0 || t.members)
            abort();
        return 0;
    }
    if (kvi_topology_invalid(&t))
        abort();
    kvi_buf b = {0};
    kvi_topology_encode(&b, &t);
    if (b.len != size || memcmp(b.data, data, size) != 0)
        abort();
    kvi_buf_free(&b);
    /* Rings cost members x vnodes: only small records go further. */
    if (t.n == 0 || t.n * t.vnodes > 2048 || t.epoch == UINT64_MAX) {
        kvi_topology_free(&t);
        return 0;
    }
    kvi_topology next;
    kvi_topology_init(&next);
    char err[256];
    if (t.op == KVI_TOPO_OP_NONE) {
        int rc = kvi_topology_begin(&next, &t, KVI_TOPO_OP_JOIN, "fuzz-new", "127.0.0.1:1", NULL,
                                    err, sizeof err);
        check_next(&t, &next, rc);
        rc = kvi_topology_begin(&next, &t, KVI_TOPO_OP_LEAVE, t.members[0].id, NULL, NULL, err,
                                sizeof err);
        check_next(&t, &next, rc);
    } else {
        size_t *g = NULL, n = 0;
        if (kvi_topology_gainers(&t, &g, &n) == KV_OK) {
            for (size_t i = 0; i < n; i++) {
                kvi_stream_range *rs = NULL;
                size_t nr = 0;
                const char *id = t.members[g[i]].id;
                if (kvi_topology_stream_plan(&t, id, NULL, NULL, &rs, &nr) != KV_OK)
                    continue;
                for (size_t k = 0; k < nr; k++)
                    if (strcmp(rs[k].source, id) == 0 || rs[k].first > rs[k].last ||
                        (k && rs[k - 1].last >= rs[k].first))
                        abort();
                free(rs);
            }
            free(g);
        }
        check_next(&t, &next, kvi_topology_finish(&next, &t, err, sizeof err));
        check_next(&t, &next, kvi_topology_abort(&next, &t, err, sizeof err));
    }
    kvi_topology_free(&next);
    kvi_topology_free(&t);
    return 0;
}
