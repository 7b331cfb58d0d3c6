/* cluster/topology_etcd.c - the topology record kept in etcd (see
 * topology_etcd.h). */
#include "cluster/topology_etcd.h"

#include <stdio.h>
#include <string.h>

#include <kv/kv.h>
#include "format/topology.h"
#include "util/error.h"

#define MAX_CHANGE_ROUNDS 8

static void say_unreachable(kvi_etcd *e, char *err, size_t err_size)
{
    (void)e; /* the message names it */
    snprintf(err, err_size, "the cluster's metadata store cannot be reached, so topology "
             "changes are refused until it answers; the cluster serves on the topology it "
             "has (%s)", kvi_error_last());
}

/* The record etcd holds into *out (initialised by the caller) and the
 * key's mod revision: KV_OK; KV_ENOTFOUND (*rev 0); KV_EUNAVAILABLE,
 * KV_ECORRUPT, KV_EIO, KV_ENOMEM, with err saying why. */
static int read_record(kvi_etcd *e, kvi_topology *out, int64_t *rev, char *err,
                       size_t err_size)
{
    kvi_buf b = {0};
    int rc = kvi_etcd_get(e, KVI_TOPO_ETCD_KEY, &b, rev);
    if (rc == KV_OK && b.failed)
        rc = KV_ENOMEM;
    if (rc == KV_OK) {
        kvi_topology_free(out);
        if (kvi_topology_decode(out, b.data, b.len) != KV_OK || kvi_topology_invalid(out)) {
            rc = KV_ECORRUPT;
            snprintf(err, err_size, "the topology record in %s does not decode (%zu bytes at "
                     "revision %lld): it was not written by libkv, or is damaged",
                     kvi_etcd_describe(e), b.len, (long long)*rev);
        }
    } else if (rc == KV_EUNAVAILABLE || rc == KV_EIO) {
        say_unreachable(e, err, err_size);
        rc = KV_EUNAVAILABLE;
    } else if (rc != KV_ENOTFOUND) {
        snprintf(err, err_size, "reading the topology from %s: %s", kvi_etcd_describe(e),
                 kvi_error_last());
    }
    kvi_buf_free(&b);
    return rc;
}

/* Writes next if the key is still at rev (0: absent). KV_OK; KV_ECONFLICT
 * (another record was written first); else a failure with err. An answer
 * lost after the write went out is settled by reading the key back: the
 * write is ours when etcd holds exactly its bytes. */
static int write_record(kvi_etcd *e, const kvi_topology *next, int64_t rev, char *err,
                        size_t err_size)
{
    kvi_buf b = {0};
    kvi_topology_encode(&b, next);
    if (b.failed) {
        kvi_buf_free(&b);
        snprintf(err, err_size, "out of memory encoding the topology");
        return KV_ENOMEM;
    }
    int rc = kvi_etcd_put_if(e, KVI_TOPO_ETCD_KEY, b.data, b.len, rev, NULL);
    if (rc == KV_EUNKNOWN_OUTCOME) {
        kvi_buf back = {0};
        int64_t now = 0;
        int got = kvi_etcd_get(e, KVI_TOPO_ETCD_KEY, &back, &now);
        if (got == KV_OK && !back.failed && back.len == b.len &&
            memcmp(back.data, b.data, b.len) == 0)
            rc = KV_OK;
        else if (got == KV_OK || got == KV_ENOTFOUND)
            rc = KV_ECONFLICT; /* not ours: build again on what is there */
        kvi_buf_free(&back);
    }
    if (rc == KV_EUNAVAILABLE || rc == KV_EUNKNOWN_OUTCOME || rc == KV_EIO) {
        say_unreachable(e, err, err_size);
        rc = KV_EUNAVAILABLE;
    } else if (rc != KV_OK && rc != KV_ECONFLICT) {
        snprintf(err, err_size, "writing the topology to %s: %s", kvi_etcd_describe(e),
                 kvi_error_last());
    }
    kvi_buf_free(&b);
    return rc;
}

int kvi_topo_etcd_change(kvi_topo_service *s, kvi_etcd *e, kvi_topo_build_fn build, void *ctx,
                         kvi_topology *chosen, char *err, size_t err_size)
{
    kvi_topology cur, next;
    kvi_topology_init(&cur);
    kvi_topology_init(&next);
    int rc = KV_EBUSY;
    snprintf(err, err_size, "the topology kept changing under this change");
    for (int round = 0; round < MAX_CHANGE_ROUNDS; round++) {
        int64_t rev = 0;
        rc = read_record(e, &cur, &rev, err, err_size);
        if (rc == KV_ENOTFOUND) {
            /* etcd holds none yet: this node's record is the base. */
            kvi_topology_free(&cur);
            if (kvi_topo_service_record(s, &cur) != KV_OK) {
                rc = KV_ENOMEM;
                snprintf(err, err_size, "out of memory");
                break;
            }
            rc = KV_OK;
        } else if (rc == KV_OK) {
            (void)kvi_topo_service_adopt(s, &cur); /* newer than ours: taken first */
        }
        if (rc != KV_OK)
            break;
        if (cur.epoch == 0) {
            rc = KV_EUNAVAILABLE;
            snprintf(err, err_size, "neither this node nor %s holds a topology record yet",
                     kvi_etcd_describe(e));
            break;
        }
        kvi_topology_free(&next);
        kvi_topology_init(&next);
        rc = build(ctx, &cur, &next, err, err_size);
        if (rc != KV_OK)
            break;
        if (next.epoch == cur.epoch) { /* nothing to change */
            if (chosen)
                rc = kvi_topology_copy(chosen, &cur);
            break;
        }
        rc = write_record(e, &next, rev, err, err_size);
        if (rc == KV_OK) {
            /* Recorded; this node takes it now (the others from their
             * watches). Keeping it here can fail only on this node's disk. */
            if (kvi_topo_service_adopt(s, &next) < 0) {
                rc = KV_EIO;
                snprintf(err, err_size, "recorded in %s, but not kept here: %s",
                         kvi_etcd_describe(e), kvi_error_last());
            } else if (chosen) {
                rc = kvi_topology_copy(chosen, &next);
            }
            break;
        }
        if (rc != KV_ECONFLICT)
            break;
        rc = KV_EBUSY; /* another change was recorded first: build on it */
        snprintf(err, err_size, "other topology changes kept being recorded in %s first",
                 kvi_etcd_describe(e));
    }
    kvi_topology_free(&cur);
    kvi_topology_free(&next);
    return rc;
}

int kvi_topo_etcd_first(kvi_topo_service *s, kvi_etcd *e, const kvi_topology *first)
{
    char err[512];
    kvi_topology held;
    kvi_topology_init(&held);
    int64_t rev = 0;
    int rc = read_record(e, &held, &rev, err, sizeof err);
    if (rc == KV_ENOTFOUND) {
        rc = write_record(e, first, 0, err, sizeof err);
        if (rc == KV_ECONFLICT) /* another member wrote it first: take that */
            rc = read_record(e, &held, &rev, err, sizeof err);
        else if (rc == KV_OK)
            rc = kvi_topology_copy(&held, first);
    }
    if (rc == KV_OK && kvi_topo_service_adopt(s, &held) < 0)
        rc = KV_EIO;
    else if (rc != KV_OK)
        rc = kvi_error(rc == KV_ENOTFOUND ? KV_EUNAVAILABLE : rc, "%s", err);
    kvi_topology_free(&held);
    return rc;
}

/* The watch's callback, on its thread. */
static void record_changed(void *ctx, const void *value, size_t len, int64_t revision)
{
    kvi_topo_etcd_watcher *w = ctx;
    if (!value) {
        kvi_log(w->log, KV_LOG_WARN, "the topology record was deleted from %s (revision %lld); "
                "this node keeps the one it holds", kvi_etcd_describe(w->etcd),
                (long long)revision);
        return;
    }
    kvi_topology t;
    kvi_topology_init(&t);
    if (kvi_topology_decode(&t, value, len) != KV_OK || kvi_topology_invalid(&t))
        kvi_log(w->log, KV_LOG_ERROR, "the topology record in %s (revision %lld) does not "
                "decode; ignored", kvi_etcd_describe(w->etcd), (long long)revision);
    else if (kvi_topo_service_adopt(w->service, &t) < 0)
        kvi_log(w->log, KV_LOG_ERROR, "cannot take the topology from %s: %s",
                kvi_etcd_describe(w->etcd), kvi_error_last());
    kvi_topology_free(&t);
}

int kvi_topo_etcd_watch(kvi_topo_etcd_watcher *w)
{
    return kvi_etcd_watch_start(w->etcd, KVI_TOPO_ETCD_KEY, record_changed, w);
}
