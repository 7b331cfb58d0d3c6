/* node/node_topology.c - a node's doors to topology changes: the ranges it
 * gains streamed in (cluster/stream.h) from the members it takes them
 * from, and the changes an operator asks for (TOPOLOGY_CHANGE). */
#include "node/node_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/ae_exchange.h"
#include "cluster/ae_plan.h"
#include "cluster/membership.h"
#include "cluster/stream.h"
#include "cluster/topology.h"
#include "storage/digest.h"
#include "storage/store.h"
#include "util/clock.h"
#include "util/error.h"

#include <cJSON.h>

#define DEFAULT_STREAM_BYTES_PER_S (32u * 1024u * 1024u)

static int member_down(void *ctx, const char *id)
{
    return kvi_membership_is_down(ctx, id);
}

/* The end of one check exchange, told to the thread that waits for it. */
typedef struct check_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, rc;
    char why[240];
    kvi_ae_figures fig;
} check_wait;

static void check_done(void *ctx, int rc, const char *why, const kvi_ae_figures *f)
{
    check_wait *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->rc = rc;
    snprintf(w->why, sizeof w->why, "%s", why ? why : "");
    if (f)
        w->fig = *f;
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* A gainer (the joining or replacing node, or a member a leave or a
 * removal gives ranges to), once its ranges are streamed in, runs an
 * anti-entropy exchange with each other member of the future ring it will
 * share ranges with, over those ranges, one after another: a write that
 * reached a quorum without the member it streamed from is taken in here.
 * (A leave's gainer checks all it shares, not only what it gained: a clean
 * exchange costs a few KiB.) KV_OK once every one ended cleanly. */
static int check_streamed(kvi_node *n, kvi_membership *m, const kvi_topology *t, char *err,
                          size_t err_size)
{
    kvi_view *fv = NULL;
    int rc = kvi_membership_future_view(m, t, &fv);
    if (rc != KV_OK) {
        snprintf(err, err_size, "cannot check the streamed ranges: %s", kvi_error_last());
        return rc;
    }
    kvi_coord_env env = {.view = fv, .local = n->store, .log = n->log,
                         .is_down = member_down, .is_down_ctx = m,
                         .tracker = &n->coord_ops};
    size_t peers = 0;
    uint64_t keys = 0;
    for (size_t i = 0; rc == KV_OK && i < fv->n; i++) {
        kvi_token_range *r = NULL;
        size_t nr = 0;
        int shares = (int)i != fv->self &&
                     kvi_ae_shared_ranges(fv->ring, fv->self, (int)i, &r, &nr) == KV_OK && nr;
        free(r);
        if (!shares)
            continue;
        check_wait w = {.done = 0};
        pthread_mutex_init(&w.lock, NULL);
        pthread_cond_init(&w.cond, NULL);
        kvi_ae_exchange_config xc = {.peer = (uint32_t)i,
                                     .rate_bytes = n->stream_bytes_per_s
                                                       ? n->stream_bytes_per_s
                                                       : DEFAULT_STREAM_BYTES_PER_S,
                                     .stop = kvi_membership_stopping(m)};
        rc = kvi_ae_exchange_start(&env, &xc, check_done, &w);
        if (rc == KV_OK) {
            pthread_mutex_lock(&w.lock);
            while (!w.done)
                pthread_cond_wait(&w.cond, &w.lock);
            pthread_mutex_unlock(&w.lock);
            rc = w.rc;
            if (rc != KV_OK)
                snprintf(err, err_size, "the check exchange with %s failed: %s",
                         fv->members[i].id, w.why);
            keys += w.fig.keys_received + w.fig.keys_sent;
            peers++;
        } else {
            snprintf(err, err_size, "cannot start the check exchange with %s: %s",
                     fv->members[i].id, kvi_error_last());
        }
        pthread_cond_destroy(&w.cond);
        pthread_mutex_destroy(&w.lock);
    }
    if (rc == KV_OK && t->op == KVI_TOPO_OP_REPLACE)
        kvi_log(n->log, KV_LOG_INFO, "replace: repaired against %zu member(s), %llu key(s) "
                "taken in or sent", peers, (unsigned long long)keys);
    else if (rc == KV_OK)
        kvi_log(n->log, KV_LOG_INFO, "%s: the streamed ranges checked against %zu member(s) "
                "by anti-entropy, %llu key(s) taken in or sent", kvi_topo_op_name(t->op),
                peers, (unsigned long long)keys);
    kvi_view_unref(fv);
    return rc;
}

int kvi_node_stream_gains(void *ctx, kvi_membership *m, const kvi_topology *t, char *err,
                          size_t err_size)
{
    kvi_node *n = ctx;
    kvi_digest *d = kvi_store_digest(kvi_embedded_store(n->store));
    if (!d || !kvi_digest_ready(d)) {
        snprintf(err, err_size, "this node's digest is not ready to stream with");
        return KV_EUNAVAILABLE;
    }
    kvi_stream_range *plan = NULL;
    size_t count = 0;
    int rc = kvi_topology_stream_plan(t, n->node_id, member_down, m, &plan, &count);
    if (rc != KV_OK) {
        snprintf(err, err_size, "cannot plan the stream: %s", kvi_strerror(rc));
        return rc;
    }
    const char **addrs = calloc(count ? count : 1, sizeof *addrs);
    if (!addrs) {
        free(plan);
        snprintf(err, err_size, "out of memory");
        return KV_ENOMEM;
    }
    for (size_t i = 0; i < count; i++) {
        const kvi_topo_member *src = plan[i].source[0] ? kvi_topology_find(t, plan[i].source)
                                                       : NULL;
        addrs[i] = src ? src->addr : "";
    }
    /* What kvctl streams shows: the change, the sources, since when. */
    pthread_mutex_lock(&n->stream_lock);
    snprintf(n->stream_what, sizeof n->stream_what, "%s of %s", kvi_topo_op_name(t->op),
             t->op_member);
    n->stream_sources[0] = 0;
    for (size_t i = 0; i < count; i++) {
        const char *src = plan[i].source[0] ? plan[i].source : "(none up)";
        char quoted[80];
        snprintf(quoted, sizeof quoted, ",%s,", src);
        char listed[260];
        snprintf(listed, sizeof listed, ",%s,", n->stream_sources);
        if (strstr(listed, quoted))
            continue;
        size_t used = strlen(n->stream_sources);
        snprintf(n->stream_sources + used, sizeof n->stream_sources - used, "%s%s",
                 used ? "," : "", src);
    }
    n->stream_started_ms = kvi_now_ms();
    pthread_mutex_unlock(&n->stream_lock);
    atomic_store(&n->stream_progress.ranges, count);
    atomic_store(&n->stream_progress.ranges_done, 0);
    atomic_store(&n->stream_progress.records, 0);
    atomic_store(&n->stream_progress.bytes, 0);
    atomic_store(&n->stream_progress.millionths, 0);
    kvi_stream_config sc = {
        .local = n->store, .loop = kvi_membership_peers(m), .creds = &n->peer_creds,
        .log = n->log, .digest_bits = kvi_digest_bits(d),
        .bytes_per_s = n->stream_bytes_per_s ? n->stream_bytes_per_s
                                             : DEFAULT_STREAM_BYTES_PER_S,
        .op_epoch = t->op_epoch, .stop = kvi_membership_stopping(m),
        .progress = &n->stream_progress,
    };
    kvi_stream_figures fig;
    kvi_log(n->log, KV_LOG_INFO, "streaming %zu range(s) for the %s of %s (epoch %llu)", count,
            kvi_topo_op_name(t->op), t->op_member, (unsigned long long)t->op_epoch);
    atomic_fetch_add(&n->streams_active, 1);
    rc = kvi_stream_run(&sc, plan, addrs, count, &fig, err, err_size);
    atomic_fetch_sub(&n->streams_active, 1);
    pthread_mutex_lock(&n->stream_lock);
    n->stream_started_ms = 0;
    pthread_mutex_unlock(&n->stream_lock);
    kvi_log(n->log, rc == KV_OK ? KV_LOG_INFO : KV_LOG_WARN,
            "stream %s: %llu of %llu range(s), %llu record(s), %llu bytes in %llu page(s), "
            "%llu dropped outside the ranges, in %llu ms, resumed at token %016llx; every "
            "run of this change: %llu record(s), %llu bytes%s%s",
            rc == KV_OK ? "done" : "stopped", (unsigned long long)fig.ranges_done,
            (unsigned long long)fig.ranges, (unsigned long long)fig.records,
            (unsigned long long)fig.bytes, (unsigned long long)fig.pages,
            (unsigned long long)fig.dropped, (unsigned long long)fig.elapsed_ms,
            (unsigned long long)fig.resumed_from, (unsigned long long)fig.total_records,
            (unsigned long long)fig.total_bytes, rc == KV_OK ? "" : ": ",
            rc == KV_OK ? "" : err);
    atomic_fetch_add(&n->streamed_bytes, fig.bytes);
    atomic_fetch_add(&n->streamed_records, fig.records);
    /* Checked by anti-entropy before this node's part is done: the
     * member a join or a replace brings in, and each member a leave or a
     * removal gives ranges to (a write that reached a quorum without the
     * member streamed from is taken in there). */
    int own = strcmp(t->op_member, n->node_id) == 0;
    int gainer = (t->op == KVI_TOPO_OP_JOIN || t->op == KVI_TOPO_OP_REPLACE)
                     ? own
                     : (t->op == KVI_TOPO_OP_LEAVE || t->op == KVI_TOPO_OP_REMOVE) && count;
    if (rc == KV_OK && gainer)
        rc = check_streamed(n, m, t, err, err_size);
    if (rc == KV_OK)
        kvi_stream_forget(n->store);
    free(addrs);
    free(plan);
    return rc;
}

/* Drops the data of the token ranges this node is no home of (what it
 * streamed out, or kept after others joined): range deletes, then the
 * digest segments they cover recomputed so exchanges stay right. Refused
 * while a change is in progress. *out_json: {"nodeId", "epoch", "ranges",
 * "keysBefore", "keysAfter"} (keys as the digest counts them). */
static int cleanup(kvi_node *n, char **out_json)
{
    kvi_digest *d = kvi_store_digest(kvi_embedded_store(n->store));
    if (!d || !kvi_digest_ready(d))
        return kvi_error(KV_EUNAVAILABLE, "this node's digest is not ready yet (it is being "
                                          "built from the data): try the cleanup again later");
    kvi_topology t;
    kvi_topology_init(&t);
    int rc = kvi_membership_record(n->membership, &t);
    kvi_token_range *ranges = NULL;
    size_t count = 0;
    if (rc == KV_OK)
        rc = kvi_topology_foreign_ranges(&t, n->node_id, &ranges, &count);
    if (rc == KV_EBUSY)
        kvi_error(rc, "a %s of %s is in progress since epoch %llu: a cleanup waits until it "
                  "ends (the data it would drop may still stream, or an abort need it)",
                  kvi_topo_op_name(t.op), t.op_member, (unsigned long long)t.op_epoch);
    else if (rc == KV_EINVAL)
        kvi_error(rc, "node %s is not in its cluster's ring (topology epoch %llu): nothing "
                  "of the data is its to keep or drop", n->node_id,
                  (unsigned long long)t.epoch);
    else if (rc != KV_OK)
        kvi_error(rc, "cannot read the cluster's topology: %s", kvi_strerror(rc));
    uint64_t hash, before = 0, after = 0;
    size_t segments = kvi_digest_segments(d);
    kvi_digest_range(d, 0, segments, &hash, &before);
    for (size_t i = 0; rc == KV_OK && i < count; i++) {
        rc = kvi_store_delete_tokens(kvi_embedded_store(n->store), ranges[i].first,
                                     ranges[i].last);
        if (rc == KV_OK)
            rc = kvi_node_digest_recheck(n, (uint32_t)kvi_digest_segment_of(d, ranges[i].first),
                                         (uint32_t)kvi_digest_segment_of(d, ranges[i].last) + 1);
    }
    /* One compaction for all the ranges: the space comes back now. */
    if (rc == KV_OK && count)
        rc = kvi_store_compact(kvi_embedded_store(n->store));
    kvi_digest_range(d, 0, segments, &hash, &after);
    if (rc == KV_OK) {
        kvi_log(n->log, KV_LOG_INFO, "cleanup: dropped %zu token range(s) this node is no home "
                "of (topology epoch %llu): %llu keys before, %llu after", count,
                (unsigned long long)t.epoch, (unsigned long long)before,
                (unsigned long long)after);
        cJSON *root = cJSON_CreateObject();
        cJSON_AddStringToObject(root, "nodeId", n->node_id);
        cJSON_AddNumberToObject(root, "epoch", (double)t.epoch);
        cJSON_AddNumberToObject(root, "ranges", (double)count);
        cJSON_AddNumberToObject(root, "keysBefore", (double)before);
        cJSON_AddNumberToObject(root, "keysAfter", (double)after);
        *out_json = cJSON_PrintUnformatted(root);
        cJSON_Delete(root);
        if (!*out_json)
            rc = kvi_error(KV_ENOMEM, "out of memory");
    }
    free(ranges);
    kvi_topology_free(&t);
    return rc;
}

/* The record as the admin answer gives it: {"epoch", "operation"}. */
static char *record_json(const kvi_topology *t)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "epoch", (double)t->epoch);
    if (t->op) {
        cJSON *op = cJSON_AddObjectToObject(root, "operation");
        cJSON_AddStringToObject(op, "kind", kvi_topo_op_name(t->op));
        cJSON_AddStringToObject(op, "member", t->op_member);
        cJSON_AddNumberToObject(op, "sinceEpoch", (double)t->op_epoch);
    } else {
        cJSON_AddNullToObject(root, "operation");
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return text;
}

int kvi_node_topology_change(kvi_node *n, const char *change, const char *node_id,
                             char **out_json)
{
    *out_json = NULL;
    if (!kvi_node_clustered(n))
        return kvi_error(KV_ENOTSUP, "this node is not in a cluster: no topology to change");
    if (strcmp(change, "cleanup") == 0) {
        /* Not a change of the record: this node's own data. */
        if (node_id && strcmp(node_id, n->node_id) != 0)
            return kvi_error(KV_EINVAL, "a cleanup runs on the node asked (this is %s, not %s)",
                             n->node_id, node_id);
        int idle = 0;
        if (!atomic_compare_exchange_strong(&n->cleanup_running, &idle, 1))
            return kvi_error(KV_EBUSY, "a cleanup is already running on node %s", n->node_id);
        int rc = cleanup(n, out_json);
        atomic_store(&n->cleanup_running, 0);
        return rc;
    }
    kvi_topology t;
    kvi_topology_init(&t);
    char err[300] = "";
    int rc = kvi_membership_change(n->membership, change, node_id, &t, err, sizeof err);
    if (rc == KV_OK) {
        kvi_log(n->log, KV_LOG_INFO, "topology: the %s%s%s asked for is recorded (epoch %llu)",
                change, node_id ? " of " : "", node_id ? node_id : "",
                (unsigned long long)t.epoch);
        *out_json = record_json(&t);
        if (!*out_json)
            rc = kvi_error(KV_ENOMEM, "out of memory");
    } else {
        kvi_error(rc, "%s", err);
    }
    kvi_topology_free(&t);
    return rc;
}

int kvi_node_topology_change_op(kvi_node *n, const void *body, size_t len, kvi_buf *answer)
{
    cJSON *root = cJSON_ParseWithLength(body, len);
    const cJSON *change = cJSON_GetObjectItemCaseSensitive(root, "change");
    const cJSON *node = cJSON_GetObjectItemCaseSensitive(root, "node");
    int rc = KV_OK;
    if (!cJSON_IsString(change) || (node && !cJSON_IsNull(node) && !cJSON_IsString(node)) ||
        (cJSON_IsString(node) && (!node->valuestring[0] || strlen(node->valuestring) > 64)))
        rc = kvi_error(KV_EINVAL, "a topology change is a JSON object {\"change\": \"leave\" | "
                                  "\"remove\" | \"abort\" | \"cleanup\", \"node\": id or "
                                  "null}");
    char *json = NULL;
    if (rc == KV_OK)
        rc = kvi_node_topology_change(n, change->valuestring,
                                      cJSON_IsString(node) ? node->valuestring : NULL, &json);
    cJSON_Delete(root);
    if (rc == KV_OK)
        kvi_buf_raw(answer, json, strlen(json));
    cJSON_free(json);
    return rc;
}
