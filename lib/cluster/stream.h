/*
 * cluster/stream.h - streaming the ranges a member gains under a topology
 * change (docs/design/TOPOLOGY.md, "Streaming"): pages of records pulled
 * from each range's source in token order, merged through the merge path
 * (writes that arrived meanwhile are kept), with a cursor kept in the meta
 * family after every page, so a kill -9 of either side resumes rather than
 * restarts, and a byte rate it does not exceed.
 *
 * A stream is a message-driven state machine on the peers loop: one page
 * request in flight, its answer merged on the loop, the next one sent (or
 * a timer armed, for the rate). kvi_stream_run starts it and waits.
 *
 * Pages are AE_KEYS requests with records (format/ae.h), over the digest
 * segments that cover each range; records outside the range (in the two
 * segments it covers in part) are dropped on arrival, so a member ends up
 * holding exactly its ranges.
 *
 * Threads: kvi_stream_run from any thread but the peers loop's.
 */
#ifndef KVI_STREAM_H
#define KVI_STREAM_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/topology.h"
#include "net/auth.h"
#include "net/client.h"
#include "storage/embedded.h"
#include "util/log.h"

/* A running stream's figures as it goes, for kvctl streams: written on the
 * peers loop after every page, read by any thread. */
typedef struct kvi_stream_progress {
    atomic_uint_fast64_t ranges, ranges_done;
    atomic_uint_fast64_t records, bytes;  /* taken in by this run */
    atomic_uint_fast64_t millionths;      /* of the plan's tokens that are in */
} kvi_stream_progress;

typedef struct kvi_stream_config {
    kvi_embedded *local;              /* where the records are merged */
    kvi_client_loop *loop;            /* the peers loop */
    const kvi_credentials *creds;     /* proved to the sources; may be NULL */
    const kvi_logger *log;
    unsigned digest_bits;             /* the members' digest segments (AE_KEYS) */
    uint64_t bytes_per_s;             /* 0: no limit */
    uint32_t request_timeout_ms;      /* of one page; 0 = 10000 */
    /* The change the stream belongs to (its op_epoch): a cursor kept for
     * another change is ignored. */
    uint64_t op_epoch;
    /* Set: give up before the next page (KV_ECLOSED); may be NULL. */
    const atomic_int *stop;
    /* Kept up to date as pages come in; may be NULL. */
    kvi_stream_progress *progress;
} kvi_stream_config;

typedef struct kvi_stream_figures {
    uint64_t ranges, ranges_done;
    uint64_t pages, records, bytes;   /* bytes of records taken in */
    uint64_t dropped;                 /* records outside the ranges, dropped */
    uint64_t resumed_from;            /* the token the kept cursor resumed at; 0: none */
    /* Records and bytes taken in by every run of this change, this one
     * included (a stream killed and resumed counts both runs). */
    uint64_t total_records, total_bytes;
    uint64_t elapsed_ms;
} kvi_stream_figures;

/* Streams the n ranges of plan, each from the member plan[i].source at
 * source_addrs[i]. Returns when every range is in (KV_OK), or at the first
 * failure (a source unreachable or refusing, a merge that failed): the
 * cursor stays, and a run again resumes there. err says why. */
int kvi_stream_run(const kvi_stream_config *cfg, const kvi_stream_range *plan,
                   const char *const *source_addrs, size_t n, kvi_stream_figures *fig,
                   char *err, size_t err_size);

/* Forgets the kept cursor (the change is over). */
void kvi_stream_forget(kvi_embedded *local);

#endif
