/* cluster/view.c - members, ring and connections, built together. */
#include "cluster/view.h"
#include "util/metrics.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* A description may not make a client build a ring larger than this
 * (1024 members of 256 vnodes): a bad or hostile node must not be able to
 * make it allocate gigabytes. */
#define MAX_RING_TOKENS (1024.0 * 256.0)
/* Requests in flight per connection to one member. */
#define KVI_VIEW_MAX_INFLIGHT 128u

static void free_members(kvi_view_member *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++) {
        kvi_client_close(m[i].client);
        free(m[i].id);
        free(m[i].addr);
        free(m[i].http);
    }
    free(m);
}

static void view_free(kvi_view *v)
{
    free_members(v->members, v->n);
    free_members(v->extra, v->n_extra);
    kvi_ring_free(v->ring);
    kvi_ring_free(v->future);
    free(v->future_member);
    free(v->no_reads);
    free(v);
}

/* Fills member m (copies; a client unless it is self). */
static int open_member(kvi_view_member *m, const kvi_view_config *cfg, const char *id,
                       const char *addr, const char *http, int self)
{
    m->id = strdup(id);
    m->addr = strdup(addr);
    m->http = http ? strdup(http) : NULL;
    if (!m->id || !m->addr || (http && !m->http))
        return kvi_error(KV_ENOMEM, "out of memory building the cluster view");
    if (self)
        return KV_OK;
    const char *eps[] = {m->addr};
    int rc = cfg->loop ? kvi_client_open_on(&m->client, eps, 1, cfg->client_opts, cfg->log,
                                            cfg->loop)
                       : kvi_client_open(&m->client, eps, 1, cfg->client_opts, cfg->log);
    if (rc != KV_OK)
        return rc;
    kvi_client_set_flags(m->client, cfg->client_flags);
    if (cfg->peer_latency)
        kvi_client_set_latency(m->client, kvi_latency_set_get(cfg->peer_latency, id));
    if (cfg->creds && cfg->creds->secret_len)
        rc = kvi_client_set_credentials(m->client, cfg->creds->secret, cfg->creds->secret_len,
                                        NULL);
    if (cfg->creds && cfg->creds->tls)
        kvi_client_set_tls(m->client, cfg->creds->tls);
    if (cfg->self >= 0)
        kvi_client_set_source(m->client, cfg->addrs[cfg->self]);
    /* Writes at QUORUM do not wait for the slowest replica; this bound
     * keeps it from falling behind without limit. */
    kvi_client_set_max_inflight(m->client, KVI_VIEW_MAX_INFLIGHT);
    return rc;
}

/* The future ring of a change in progress, and where its members are. */
static int build_future(kvi_view *v, const kvi_view_config *cfg)
{
    if (!cfg->n_future)
        return KV_OK;
    if (cfg->n_extra) {
        v->extra = calloc(cfg->n_extra, sizeof *v->extra);
        if (!v->extra)
            return kvi_error(KV_ENOMEM, "out of memory building the cluster view");
        v->n_extra = cfg->n_extra;
    }
    int rc = KV_OK;
    for (size_t i = 0; rc == KV_OK && i < cfg->n_extra; i++)
        rc = open_member(&v->extra[i], cfg, cfg->extra_ids[i], cfg->extra_addrs[i],
                         cfg->extra_https ? cfg->extra_https[i] : NULL, 0);
    if (rc == KV_OK)
        rc = kvi_ring_build(&v->future, cfg->future_ids, cfg->n_future, cfg->vnodes,
                            cfg->replicas);
    if (rc == KV_OK) {
        v->future_member = calloc(cfg->n_future, sizeof *v->future_member);
        if (!v->future_member)
            return kvi_error(KV_ENOMEM, "out of memory building the cluster view");
    }
    for (size_t f = 0; rc == KV_OK && f < cfg->n_future; f++) {
        const char *id = kvi_ring_member_id(v->future, f);
        long at = -1;
        for (size_t i = 0; i < v->n && at < 0; i++)
            if (strcmp(v->members[i].id, id) == 0)
                at = (long)i;
        for (size_t k = 0; k < v->n_extra && at < 0; k++)
            if (strcmp(v->extra[k].id, id) == 0)
                at = (long)(v->n + k);
        if (at < 0)
            rc = kvi_error(KV_EINVAL, "member %s of the future ring has no address", id);
        else
            v->future_member[f] = (uint32_t)at;
    }
    return rc;
}

int kvi_view_build(kvi_view **out, const kvi_view_config *cfg)
{
    *out = NULL;
    if (cfg->n == 0)
        return kvi_error(KV_EINVAL, "a cluster view needs at least one member");
    kvi_view *v = calloc(1, sizeof *v);
    if (!v)
        return kvi_error(KV_ENOMEM, "out of memory building the cluster view");
    atomic_init(&v->refs, 1);
    atomic_init(&v->read_rotation, 0);
    v->self = cfg->self;
    v->replicas = cfg->replicas;
    v->vnodes = cfg->vnodes;
    v->members = calloc(cfg->n, sizeof *v->members);
    int rc = v->members ? KV_OK : kvi_error(KV_ENOMEM, "out of memory building the cluster view");
    if (rc == KV_OK)
        v->n = cfg->n;
    for (size_t i = 0; rc == KV_OK && i < cfg->n; i++)
        rc = open_member(&v->members[i], cfg, cfg->ids[i], cfg->addrs[i],
                         cfg->https ? cfg->https[i] : NULL, (int)i == cfg->self);
    if (rc == KV_OK)
        rc = kvi_ring_build(&v->ring, cfg->ids, cfg->n, cfg->vnodes, cfg->replicas);
    if (rc == KV_OK)
        rc = build_future(v, cfg);
    for (size_t i = 0; rc == KV_OK && cfg->no_reads && i < cfg->n; i++)
        if (cfg->no_reads[i] && !v->no_reads) {
            v->no_reads = malloc(cfg->n);
            if (!v->no_reads)
                rc = kvi_error(KV_ENOMEM, "out of memory building the cluster view");
            else
                memcpy(v->no_reads, cfg->no_reads, cfg->n);
        }
    v->epoch = cfg->epoch;
    if (rc != KV_OK) {
        view_free(v);
        return rc;
    }
    *out = v;
    return KV_OK;
}

int kvi_view_from_json(kvi_view **out, const void *json, size_t len,
                       const kv_client_options *client_opts, uint16_t client_flags,
                       const kvi_logger *log, kvi_client_loop *loop)
{
    *out = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return kvi_error(KV_EIO, "the node sent a malformed cluster description");
    const cJSON *complete = cJSON_GetObjectItemCaseSensitive(root, "complete");
    /* N: "replicationFactor"; a node older than it sent N as "replicas"
     * (which now counts the copies a key has, at most N). */
    const cJSON *replicas = cJSON_GetObjectItemCaseSensitive(root, "replicationFactor");
    if (!replicas)
        replicas = cJSON_GetObjectItemCaseSensitive(root, "replicas");
    const cJSON *vnodes = cJSON_GetObjectItemCaseSensitive(root, "vnodes");
    const cJSON *members = cJSON_GetObjectItemCaseSensitive(root, "members");
    int rc = KV_OK;
    if (!cJSON_IsBool(complete) || !cJSON_IsNumber(replicas) || !cJSON_IsNumber(vnodes) ||
        !cJSON_IsArray(members) || cJSON_GetArraySize(members) < 1 ||
        replicas->valuedouble < 1 || replicas->valuedouble > 16 || vnodes->valuedouble < 1 ||
        vnodes->valuedouble > KVI_RING_MAX_VNODES ||
        cJSON_GetArraySize(members) > (int)KVI_RING_MAX_MEMBERS ||
        (double)cJSON_GetArraySize(members) * vnodes->valuedouble > MAX_RING_TOKENS)
        rc = kvi_error(KV_EIO, "the node sent a malformed cluster description");
    else if (!cJSON_IsTrue(complete))
        rc = kvi_error(KV_EUNAVAILABLE, "the cluster is still learning its members");
    size_t n = rc == KV_OK ? (size_t)cJSON_GetArraySize(members) : 0;
    const char **ids = calloc(n + 1, sizeof *ids);
    const char **addrs = calloc(n + 1, sizeof *addrs);
    const char **https = calloc(n + 1, sizeof *https);
    unsigned char *no_reads = calloc(n + 1, 1);
    if (rc == KV_OK && (!ids || !addrs || !https || !no_reads))
        rc = kvi_error(KV_ENOMEM, "out of memory reading the cluster description");
    size_t in_ring = 0;
    for (size_t i = 0; rc == KV_OK && i < n; i++) {
        const cJSON *m = cJSON_GetArrayItem(members, (int)i);
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(m, "nodeId");
        const cJSON *addr = cJSON_GetObjectItemCaseSensitive(m, "address");
        const cJSON *http = cJSON_GetObjectItemCaseSensitive(m, "httpAddress");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(m, "state");
        if (!cJSON_IsString(id) || !cJSON_IsString(addr)) {
            rc = kvi_error(KV_EIO, "the node sent a malformed cluster description");
            break;
        }
        /* A member's topology state, when the node tells it: the ring is
         * the members normal, leaving and replacing (a joining one is not
         * in it yet, one that left no more). */
        if (cJSON_IsString(st) && strcmp(st->valuestring, "normal") != 0 &&
            strcmp(st->valuestring, "leaving") != 0 && strcmp(st->valuestring, "replacing") != 0)
            continue;
        ids[in_ring] = id->valuestring;
        addrs[in_ring] = addr->valuestring;
        https[in_ring] = cJSON_IsString(http) ? http->valuestring : NULL;
        /* A replacing member takes writes but answers no reads yet. */
        no_reads[in_ring] = cJSON_IsString(st) && strcmp(st->valuestring, "replacing") == 0;
        in_ring++;
    }
    n = in_ring;
    if (rc == KV_OK && n == 0)
        rc = kvi_error(KV_EUNAVAILABLE, "the cluster description names no member in its ring");
    if (rc == KV_OK) {
        kvi_view_config cfg = {
            .ids = ids, .addrs = addrs, .https = https, .n = n, .self = -1,
            .replicas = (unsigned)replicas->valuedouble, .vnodes = (unsigned)vnodes->valuedouble,
            .client_opts = client_opts, .client_flags = client_flags, .log = log,
            .loop = loop, .no_reads = no_reads,
        };
        /* The epoch of the record the members' states come from: the
         * client's reads carry it (docs/design/TOPOLOGY.md). */
        const cJSON *topo = cJSON_GetObjectItemCaseSensitive(root, "topology");
        const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(topo, "epoch");
        if (cJSON_IsNumber(epoch) && epoch->valuedouble >= 1 && epoch->valuedouble < 9.0e15)
            cfg.epoch = (uint64_t)epoch->valuedouble;
        rc = kvi_view_build(out, &cfg);
    }
    /* The limits the nodes enforce; a description without them (an older
     * node) or with nonsense leaves them unknown. */
    const cJSON *limits = cJSON_GetObjectItemCaseSensitive(root, "limits");
    const cJSON *max_key = cJSON_GetObjectItemCaseSensitive(limits, "maxKeySize");
    const cJSON *max_value = cJSON_GetObjectItemCaseSensitive(limits, "maxValueSize");
    if (rc == KV_OK && cJSON_IsNumber(max_key) && cJSON_IsNumber(max_value) &&
        max_key->valuedouble >= 1 && max_key->valuedouble <= KV_MAX_KEY_SIZE_LIMIT &&
        max_value->valuedouble >= 0 && max_value->valuedouble <= KV_MAX_VALUE_SIZE_LIMIT) {
        (*out)->max_key_size = (uint32_t)max_key->valuedouble;
        (*out)->max_value_size = (uint32_t)max_value->valuedouble;
    }
    free(ids);
    free(addrs);
    free(https);
    free(no_reads);
    cJSON_Delete(root);
    return rc;
}

void kvi_view_ref(kvi_view *v)
{
    atomic_fetch_add(&v->refs, 1);
}

void kvi_view_unref(kvi_view *v)
{
    if (v && atomic_fetch_sub(&v->refs, 1) == 1)
        view_free(v);
}

typedef struct view_release {
    kvi_view *view;
    void (*then)(void *ctx);
    void *ctx;
} view_release;

static void *free_elsewhere(void *arg)
{
    view_release r = *(view_release *)arg;
    free(arg);
    view_free(r.view);
    r.then(r.ctx);
    return NULL;
}

void kvi_view_unref_then(kvi_view *v, int elsewhere, void (*then)(void *ctx), void *ctx)
{
    if (atomic_fetch_sub(&v->refs, 1) != 1) {
        then(ctx);
        return;
    }
    if (elsewhere) {
        view_release *r = malloc(sizeof *r);
        if (r) {
            *r = (view_release){v, then, ctx};
            pthread_attr_t attr;
            pthread_t th;
            pthread_attr_init(&attr);
            pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
            int ok = pthread_create(&th, &attr, free_elsewhere, r) == 0;
            pthread_attr_destroy(&attr);
            if (ok)
                return;
            free(r);
        }
        /* No thread to be had: the view is kept (leaked) rather than
         * freed where freeing it would wait for itself. */
        then(ctx);
        return;
    }
    view_free(v);
    then(ctx);
}
