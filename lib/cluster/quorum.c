/* cluster/quorum.c - replica counts per consistency level. */
#include "cluster/quorum.h"

#include "util/error.h"

int kvi_quorum_required(unsigned *out, kv_consistency level, unsigned explicit_count,
                        unsigned n_replicas)
{
    if (n_replicas == 0)
        return kvi_error(KV_EINVAL, "no replicas");
    switch (level) {
    case KV_CONSISTENCY_ONE:
        *out = 1;
        return KV_OK;
    case KV_CONSISTENCY_DEFAULT:
    case KV_CONSISTENCY_QUORUM:
    case KV_CONSISTENCY_SERIAL: /* a majority of the home replicas */
        *out = n_replicas / 2 + 1;
        return KV_OK;
    case KV_CONSISTENCY_ALL:
        *out = n_replicas;
        return KV_OK;
    case KV_CONSISTENCY_EXPLICIT:
        if (explicit_count == 0 || explicit_count > n_replicas)
            return kvi_error(KV_EINVAL, "an explicit count of %u replicas is not within 1..%u",
                             explicit_count, n_replicas);
        *out = explicit_count;
        return KV_OK;
    }
    return kvi_error(KV_EINVAL, "unknown consistency level %d", (int)level);
}

int kvi_quorum_write_outcome(unsigned acked, unsigned unknown, unsigned required)
{
    if (acked >= required)
        return KV_OK;
    if (acked == 0 && unknown == 0)
        return kvi_error(KV_EUNAVAILABLE, "%u of %u required replicas acknowledged; "
                                          "the write was not applied", acked, required);
    return kvi_error(KV_EUNKNOWN_OUTCOME, "%u of %u required replicas acknowledged (%u did not "
                                          "answer); the write may have been applied",
                     acked, required, unknown);
}
