/*
 * client/scan.h - kv_scan on a client handle: one SCAN request to a node
 * (one of the handle's endpoints), which scans its store or, in a cluster,
 * coordinates the scan over the ring (cluster/scan.h). A client handle does
 * not route a scan itself: the SCAN_RANGE reads of the replicas are
 * internode requests.
 *
 * Threads: as the handle; not from a completion callback of the handle's
 * own asynchronous calls (it would wait for the loop it holds up).
 */
#ifndef KVI_CLIENT_SCAN_H
#define KVI_CLIENT_SCAN_H

#include <kv/kv.h>

/* A page after position `after` (format/scan.h); limit and options already
 * checked. KV_OK with *out (the caller's), or the failure. */
int kvi_remote_scan(kv *db, kv_scan_page **out, const void *after, size_t after_len,
                    size_t limit, const kv_scan_options *so);

#endif
