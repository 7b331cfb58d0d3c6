/*
 * cluster/topology_service.h - a node's topology: the record it holds and
 * its acceptor state for the next epoch, both kept in the store's meta
 * family (synced before anything is answered on their strength); the
 * TOPOLOGY requests it answers as an acceptor; and the proposals it makes,
 * driven by messages on the peers loop (cluster/topology_paxos.h has the
 * state machine). See docs/design/TOPOLOGY.md.
 *
 * Threads: every function may be called from any thread, except
 * kvi_topo_service_close and kvi_topo_service_change (not on the peers
 * loop: it waits for the loop). on_change runs on the thread that took the
 * newer record, with no lock of the service held.
 */
#ifndef KVI_TOPOLOGY_SERVICE_H
#define KVI_TOPOLOGY_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include "cluster/topology_paxos.h"
#include "format/message.h"
#include "format/topology.h"
#include "net/auth.h"
#include "net/client.h"
#include "util/log.h"

struct kvi_store;
struct kvi_etcd;

typedef void (*kvi_topo_changed_fn)(void *ctx, const kvi_topology *record);

typedef struct kvi_topo_service_config {
    const char *self_id;
    /* Where the record and the acceptor state are kept (borrowed); NULL:
     * in memory only (tests). */
    struct kvi_store *store;
    const kvi_credentials *creds;      /* proved to the other members; may be NULL */
    const kvi_logger *log;             /* borrowed */
    kvi_client_loop *loop;             /* the peers loop (borrowed) */
    uint32_t request_timeout_ms;       /* of one message; 0 = 2000 */
    kvi_topo_changed_fn on_change;     /* a newer record was taken; may be NULL */
    void *on_change_ctx;
    /* etcd mode (cluster/topology_etcd.h): changes are recorded there, not
     * agreed by Paxos, and this node is no acceptor. Borrowed; NULL:
     * gossip mode. */
    struct kvi_etcd *etcd;
} kvi_topo_service_config;

typedef struct kvi_topo_service kvi_topo_service;

/* Loads the record and acceptor state kept in the store, if any. KV_OK,
 * KV_ECORRUPT (a kept record that does not decode), KV_EIO, KV_ENOMEM. */
int kvi_topo_service_open(kvi_topo_service **out, const kvi_topo_service_config *cfg);
/* Waits for the proposals in flight to end (each within its timeouts). */
void kvi_topo_service_close(kvi_topo_service *s);

/* A copy of the record held (epoch 0: none yet). KV_OK or KV_ENOMEM. */
int kvi_topo_service_record(kvi_topo_service *s, kvi_topology *out);
uint64_t kvi_topo_service_epoch(kvi_topo_service *s);

/* Takes rec when it is newer than the record held: kept (synced), then
 * on_change. 1 when taken, 0 when not newer, or a negative status. */
int kvi_topo_service_adopt(kvi_topo_service *s, const kvi_topology *rec);

/* The cluster's first record (epoch 1), as this node formed it: taken at
 * once in gossip mode (every member forms the same); in etcd mode written
 * there unless etcd holds one, and what etcd holds is taken. KV_OK, or
 * why nothing was taken (KV_EUNAVAILABLE: etcd unreachable). */
int kvi_topo_service_first(kvi_topo_service *s, const kvi_topology *first);

/* Serves a TOPOLOGY request (a format/topology_paxos.h message): the
 * encoded answer into out. KV_OK, KV_EINVAL (malformed), KV_EIO. */
int kvi_topo_service_handle(kvi_topo_service *s, const void *in, size_t len, kvi_buf *out);

/* Asks the member at addr for its record, and takes it when newer
 * (asynchronous; nothing is told of the outcome). */
void kvi_topo_service_fetch(kvi_topo_service *s, const char *addr);

/* Builds the record to propose from the one held now: KV_OK with *next,
 * or a refusal (status, and why in err). */
typedef int (*kvi_topo_build_fn)(void *ctx, const kvi_topology *cur, kvi_topology *next,
                                 char *err, size_t err_size);

/* A change, waited for: builds the next record from the one held, proposes
 * it to the acceptors the held record names, and, when another record took
 * the epoch first or the held record was stale, takes the newer one and
 * builds again (at most 8 times: a change that still applies goes in on
 * top of others; one that no longer does is refused by build). KV_OK with
 * *chosen (may be NULL) the record that holds the change; else the
 * refusal: build's status, KV_EUNAVAILABLE (no majority answered),
 * KV_EBUSY (rivals kept winning), with err saying why. */
int kvi_topo_service_change(kvi_topo_service *s, kvi_topo_build_fn build, void *ctx,
                            kvi_topology *chosen, char *err, size_t err_size);

#endif
