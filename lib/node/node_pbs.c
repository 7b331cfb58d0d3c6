/*
 * node/node_pbs.c - staleness predicted from this node's round trips to
 * its peers (util/pbs.h): GET /v1/consistency/prediction, and the peer
 * histograms in the cluster description, from which kvctl
 * predict-consistency computes the same answer.
 */
#include "node/node_internal.h"
#include "net/http_json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/view.h"
#include "util/pbs.h"

/* The read delays a prediction answers for, when not asked for one. */
static const double default_points_ms[] = {0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000};
#define N_DEFAULT_POINTS (sizeof default_points_ms / sizeof default_points_ms[0])
#define TRIALS 20000u

/* Every peer's histogram, copied. */
typedef struct peer_copies {
    uint64_t *counts; /* n * n_counts */
    size_t n, cap, n_counts;
    int failed;
} peer_copies;

static void copy_peer(void *ctx, const char *name, const uint64_t *counts, size_t n_counts)
{
    (void)name;
    peer_copies *pc = ctx;
    if (pc->failed)
        return;
    if (pc->n == pc->cap) {
        size_t cap = pc->cap ? pc->cap * 2 : 8;
        uint64_t *grown = realloc(pc->counts, cap * n_counts * sizeof *grown);
        if (!grown) {
            pc->failed = 1;
            return;
        }
        pc->counts = grown;
        pc->cap = cap;
    }
    pc->n_counts = n_counts;
    memcpy(pc->counts + pc->n * n_counts, counts, n_counts * sizeof *counts);
    pc->n++;
}

static unsigned replicas_of(const kvi_node *n)
{
    kvi_view *v = kvi_membership_view(n->membership);
    unsigned replicas = v ? v->replicas : 1;
    size_t members = v ? v->n : 1;
    kvi_view_unref(v);
    return replicas < members ? replicas : (unsigned)members;
}

/* R or W for a level: an explicit count, or the level's count of n. */
static int quorum_of(int consistency, unsigned explicit_count, unsigned n, unsigned *out,
                     const char **why)
{
    switch (consistency) {
    case KV_CONSISTENCY_DEFAULT: /* not asked: ONE, where staleness is */
    case KV_CONSISTENCY_ONE: *out = 1; return 0;
    case KV_CONSISTENCY_QUORUM: *out = n / 2 + 1; return 0;
    case KV_CONSISTENCY_ALL: *out = n; return 0;
    case KV_CONSISTENCY_EXPLICIT: *out = explicit_count; return 0;
    default:
        *why = "SERIAL is linearizable: there is no staleness to predict";
        return -1;
    }
}

static void render_prediction(kvi_buf *out, const kvi_node *n, const kvi_pbs_input *in,
                              const kvi_pbs_point *points, size_t n_points)
{
    char text[256];
    kvi_http_json_raw(out, "{\"nodeId\":");
    kvi_http_json_message(out, n->node_id ? n->node_id : "");
    snprintf(text, sizeof text,
             ",\"replicas\":%u,\"r\":%u,\"w\":%u,\"trials\":%u,"
             "\"peersMeasured\":%zu,\"predictions\":[",
             in->n, in->r, in->w, in->trials, in->n_peers);
    kvi_buf_raw(out, text, strlen(text));
    for (size_t i = 0; i < n_points; i++) {
        if (isfinite(points[i].versions_behind))
            snprintf(text, sizeof text,
                     "%s{\"tMs\":%g,\"consistent\":%.4f,\"expectedVersionsBehind\":%.4f}",
                     i ? "," : "", points[i].t_ms, points[i].consistent,
                     points[i].versions_behind);
        else
            snprintf(text, sizeof text,
                     "%s{\"tMs\":%g,\"consistent\":%.4f,\"expectedVersionsBehind\":null}",
                     i ? "," : "", points[i].t_ms, points[i].consistent);
        kvi_buf_raw(out, text, strlen(text));
    }
    kvi_buf_raw(out, "]}", 2);
}

int kvi_node_predict(void *ctx, kvi_buf *out, const kv_read_options *ro,
                     const kv_write_options *wo, double t_ms, const char **why)
{
    const kvi_node *n = ctx;
    kvi_pbs_input in = {.n = replicas_of(n), .trials = TRIALS};
    if (quorum_of(ro->consistency, ro->r, in.n, &in.r, why) != 0 ||
        quorum_of(wo->consistency, wo->w, in.n, &in.w, why) != 0)
        return KV_EINVAL;
    const uint64_t *bounds_ns;
    in.n_bounds = kvi_metrics_bounds(&bounds_ns);
    double bounds_us[128];
    if (in.n_bounds > sizeof bounds_us / sizeof bounds_us[0])
        in.n_bounds = sizeof bounds_us / sizeof bounds_us[0];
    for (size_t i = 0; i < in.n_bounds; i++)
        bounds_us[i] = (double)bounds_ns[i] / 1000.0;
    in.bounds_us = bounds_us;

    peer_copies pc = {0};
    kvi_latency_set_each(n->peer_latency, copy_peer, &pc);
    kvi_pbs_peer *peers = calloc(pc.n ? pc.n : 1, sizeof *peers);
    if (pc.failed || !peers) {
        free(pc.counts);
        free(peers);
        *why = "out of memory";
        return KV_ENOMEM;
    }
    for (size_t i = 0; i < pc.n; i++)
        peers[i].counts = pc.counts + i * pc.n_counts;
    in.peers = peers;
    in.n_peers = pc.n;

    kvi_pbs_point points[N_DEFAULT_POINTS];
    size_t n_points = t_ms >= 0 ? 1 : N_DEFAULT_POINTS;
    for (size_t i = 0; i < n_points; i++)
        points[i].t_ms = t_ms >= 0 ? t_ms : default_points_ms[i];
    int rc = kvi_pbs_predict(points, n_points, &in, why) == 0 ? KV_OK : KV_EINVAL;
    if (rc == KV_OK)
        render_prediction(out, n, &in, points, n_points);
    free(peers);
    free(pc.counts);
    return rc;
}

void kvi_node_describe_peer_latency(const kvi_node *n, kvi_buf *out)
{
    kvi_http_json_raw(out, ",\"peerLatency\":");
    kvi_latency_set_render_json(n->peer_latency, out);
}
