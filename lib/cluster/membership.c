/* cluster/membership.c - learning the members' ids and building the ring. */
#include "cluster/membership.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kv/kv.h>
#include "client.h"
#include "cluster/ring.h"
#include "cluster/gossip.h"
#include "cluster/view.h"
#include "storage/store.h"
#include "util/clock.h"
#include "util/ticker.h"
#include "net/addr.h"
#include "util/error.h"

#define DISCOVERY_INTERVAL_MS 200u
#define VERIFY_INTERVAL_MS 1000u

typedef struct member {
    char *id;      /* NULL until learned (or loaded from the store) */
    char *addr;
    char *http;    /* as the member reports it; may be NULL */
    int verified;  /* the member itself confirmed id since this node started */
} member;

/* Where the learned ids are kept in the store's meta family, so that a node
 * restarting while a member is down can serve at once. */
#define MEMBERS_META_KEY "kv.cluster.members"

struct kvi_membership {
    const kvi_logger *log;
    unsigned replicas;
    unsigned vnodes;
    uint32_t connect_timeout_ms; /* of the connections to the other members */
    uint32_t request_timeout_ms;
    /* lock guards members[] and view. */
    pthread_mutex_t lock;
    member *members;  /* [0] is this node */
    size_t n;
    kvi_view *view;   /* NULL until complete */
    kvi_store *store; /* where learned ids are saved; may be NULL */
    kvi_gossip *gossip; /* news of the members' health; NULL when alone */
    kvi_ticker discovery; /* asks the members for their ids */
};

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Asks addr for its description; returns its node id and http address
 * (malloc'd), or -1. */
static int ask(const char *addr, char **id, char **http, const kvi_logger *log)
{
    kvi_client *c = NULL;
    const char *eps[] = {addr};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.connect_timeout_ms = 300;
    co.request_timeout_ms = 1000;
    if (kvi_client_open(&c, eps, 1, &co, log) != KV_OK)
        return -1;
    kvi_buf json = {0};
    int rc = kvi_client_cluster(c, &json);
    kvi_client_close(c);
    if (rc != KV_OK) {
        kvi_buf_free(&json);
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength((const char *)json.data, json.len);
    kvi_buf_free(&json);
    const cJSON *node_id = cJSON_GetObjectItemCaseSensitive(root, "nodeId");
    rc = -1;
    if (cJSON_IsString(node_id) && node_id->valuestring[0]) {
        *id = strdup(node_id->valuestring);
        *http = NULL;
        /* Its own entry is the first member it lists. */
        const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "members"), 0);
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(first, "httpAddress");
        if (cJSON_IsString(h) && h->valuestring[0])
            *http = strdup(h->valuestring);
        rc = *id ? 0 : -1;
    }
    cJSON_Delete(root);
    return rc;
}

/* Builds the view (ring and connections) from the members once every id
 * is known, replacing any earlier one; called with m->lock held. Holders of
 * the old view keep it until they let go. */
static void rebuild_view(kvi_membership *m)
{
    const char **ids = malloc(m->n * sizeof *ids);
    const char **addrs = malloc(m->n * sizeof *addrs);
    const char **https = malloc(m->n * sizeof *https);
    for (size_t i = 0; ids && addrs && https && i < m->n; i++) {
        if (!m->members[i].id) {
            free(ids);
            free(addrs);
            free(https);
            return;
        }
        ids[i] = m->members[i].id;
        addrs[i] = m->members[i].addr;
        https[i] = m->members[i].http;
    }
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.connect_timeout_ms = m->connect_timeout_ms;
    co.request_timeout_ms = m->request_timeout_ms;
    co.connections_per_node = 2;
    kvi_view_config vc = {
        .ids = ids, .addrs = addrs, .https = https, .n = m->n, .self = 0,
        .replicas = m->replicas, .vnodes = m->vnodes, .client_opts = &co, .log = m->log,
    };
    kvi_view *fresh = NULL;
    if (!ids || !addrs || !https)
        kvi_log(m->log, KV_LOG_ERROR, "out of memory building the ring");
    else if (kvi_view_build(&fresh, &vc) != KV_OK)
        kvi_log(m->log, KV_LOG_ERROR, "cannot build the ring: %s", kv_error_last());
    else {
        kvi_log(m->log, KV_LOG_INFO, "membership complete: %zu members, ring built", m->n);
        kvi_view_unref(m->view);
        m->view = fresh;
        if (m->gossip)
            kvi_gossip_set_status(m->gossip, KVI_MEMBER_UP);
    }
    free(ids);
    free(addrs);
    free(https);
}

/* Saves the ids known so far; called with m->lock held. */
static void save_members(kvi_membership *m)
{
    if (!m->store)
        return;
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "members");
    for (size_t i = 1; list && i < m->n; i++) {
        if (!m->members[i].id)
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "address", m->members[i].addr);
        cJSON_AddStringToObject(e, "nodeId", m->members[i].id);
        if (m->members[i].http)
            cJSON_AddStringToObject(e, "httpAddress", m->members[i].http);
        cJSON_AddItemToArray(list, e);
    }
    char *text = cJSON_PrintUnformatted(root);
    if (!text || kvi_store_meta_put(m->store, MEMBERS_META_KEY, text, strlen(text)) != KV_OK)
        kvi_log(m->log, KV_LOG_WARN, "cannot save the members' ids: %s",
                text ? kv_error_last() : "out of memory");
    cJSON_free(text);
    cJSON_Delete(root);
}

/* Drops member i (this node under another address); called with m->lock
 * held. */
static void drop_member(kvi_membership *m, size_t i)
{
    kvi_log(m->log, KV_LOG_INFO, "peer %s is this node", m->members[i].addr);
    free(m->members[i].id);
    free(m->members[i].addr);
    free(m->members[i].http);
    m->members[i] = m->members[--m->n];
}

/* Takes the ids saved by an earlier run for the members at the same
 * addresses, unverified until each member answers again. */
static void load_members(kvi_membership *m)
{
    char *text = NULL;
    size_t len = 0;
    if (!m->store || kvi_store_meta_get(m->store, MEMBERS_META_KEY, &text, &len) != KV_OK)
        return;
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "members")) {
        const cJSON *addr = cJSON_GetObjectItemCaseSensitive(e, "address");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "nodeId");
        const cJSON *http = cJSON_GetObjectItemCaseSensitive(e, "httpAddress");
        if (!cJSON_IsString(addr) || !cJSON_IsString(id) || !id->valuestring[0])
            continue;
        for (size_t i = 1; i < m->n; i++) {
            if (m->members[i].id || strcmp(m->members[i].addr, addr->valuestring) != 0)
                continue;
            if (strcmp(id->valuestring, m->members[0].id) == 0) {
                drop_member(m, i);
                break;
            }
            m->members[i].id = strdup(id->valuestring);
            m->members[i].http = cJSON_IsString(http) ? strdup(http->valuestring) : NULL;
            break;
        }
    }
    cJSON_Delete(root);
    free(text);
}

/* One round of discovery: asks every member whose id is unknown or not
 * yet confirmed. An id that changed (a member replaced under the same
 * address) rebuilds the ring. Returns when to ask again, or 0 once every
 * member has confirmed its id. */
static uint32_t discover(void *arg)
{
    kvi_membership *m = arg;
    pthread_mutex_lock(&m->lock);
    int changed = 0, pending = 0;
    for (size_t i = 1; i < m->n && !kvi_ticker_stopping(&m->discovery); i++) {
        if (m->members[i].verified)
            continue;
        char *addr = strdup(m->members[i].addr);
        pthread_mutex_unlock(&m->lock);
        char *id = NULL, *http = NULL;
        int rc = addr ? ask(addr, &id, &http, m->log) : -1;
        free(addr);
        pthread_mutex_lock(&m->lock);
        if (rc != 0) {
            pending++;
            continue;
        }
        if (strcmp(id, m->members[0].id) == 0) {
            /* Our own address in another spelling: not a second member. */
            drop_member(m, i);
            i--;
            free(id);
            free(http);
            changed = 1;
            continue;
        }
        member *mb = &m->members[i];
        if (!mb->id) {
            kvi_log(m->log, KV_LOG_INFO, "learned member %s at %s", id, mb->addr);
            changed = 1;
        } else if (strcmp(mb->id, id) != 0) {
            kvi_log(m->log, KV_LOG_WARN, "the member at %s is now %s (was %s); rebuilding "
                    "the ring", mb->addr, id, mb->id);
            changed = 1;
        }
        free(mb->id);
        free(mb->http);
        mb->id = id;
        mb->http = http;
        mb->verified = 1;
    }
    if (changed || (!m->view && !pending)) {
        rebuild_view(m);
        save_members(m);
    }
    /* Serving from saved ids, a missing member is only to be confirmed:
     * ask less often. */
    uint32_t next = !pending ? 0 : m->view ? VERIFY_INTERVAL_MS : DISCOVERY_INTERVAL_MS;
    pthread_mutex_unlock(&m->lock);
    return next;
}

int kvi_membership_start(kvi_membership **out, const kvi_membership_config *cfg)
{
    *out = NULL;
    unsigned replicas = cfg->replicas ? cfg->replicas : 3;
    unsigned vnodes = cfg->vnodes ? cfg->vnodes : KVI_RING_DEFAULT_VNODES;
    if (replicas > 16 || vnodes > KVI_RING_MAX_VNODES)
        return kvi_error(KV_EINVAL, "replicas must be 1..16 and vnodes 1..%u",
                         KVI_RING_MAX_VNODES);
    if (cfg->n_peers + 1 > KVI_RING_MAX_MEMBERS)
        return kvi_error(KV_EINVAL, "at most %u members", KVI_RING_MAX_MEMBERS);
    for (size_t i = 0; i < cfg->n_peers; i++) {
        kvi_addr a;
        int rc = kvi_addr_parse(&a, cfg->peers[i]);
        if (rc != KV_OK)
            return kvi_error(rc, "peer %zu: %s", i + 1, kv_error_last());
    }
    kvi_membership *m = calloc(1, sizeof *m);
    if (!m)
        return kvi_error(KV_ENOMEM, "out of memory starting membership");
    m->log = cfg->log;
    m->replicas = replicas;
    m->vnodes = vnodes;
    m->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 500;
    m->request_timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms : 2000;
    m->members = calloc(cfg->n_peers + 1, sizeof *m->members);
    pthread_mutex_init(&m->lock, NULL);
    int ok = m->members != NULL;
    if (ok) {
        m->members[0] = (member){strdup(cfg->self_id), strdup(cfg->self_addr),
                                 dup_or_null(cfg->self_http), 1};
        m->n = 1;
        ok = m->members[0].id && m->members[0].addr;
        for (size_t i = 0; ok && i < cfg->n_peers; i++) {
            int seen = strcmp(cfg->peers[i], cfg->self_addr) == 0;
            for (size_t j = 1; j < m->n; j++)
                seen |= strcmp(cfg->peers[i], m->members[j].addr) == 0;
            if (seen)
                continue; /* ourselves, or listed twice */
            m->members[m->n].addr = strdup(cfg->peers[i]);
            ok = m->members[m->n++].addr != NULL;
        }
    }
    if (ok && m->n > 1) {
        /* Gossip with the peers as seeds: it tells which members are up. */
        kvi_gossip_config gc = {
            .self_id = cfg->self_id, .self_addr = cfg->self_addr, .self_http = cfg->self_http,
            .generation = kvi_now_ms(), .seeds = cfg->peers, .n_seeds = cfg->n_peers,
            .timeout_ms = m->connect_timeout_ms * 2, .log = cfg->log,
        };
        if (kvi_gossip_start(&m->gossip, &gc) != KV_OK) {
            kvi_log(cfg->log, KV_LOG_ERROR, "cannot start gossip: %s", kv_error_last());
            ok = 0;
        }
    }
    if (ok) {
        pthread_mutex_lock(&m->lock);
        m->members[0].verified = 1;
        m->store = cfg->store;
        load_members(m);
        /* Alone, or every id known from an earlier run: serve at once. */
        rebuild_view(m);
        pthread_mutex_unlock(&m->lock);
        ok = kvi_ticker_start(&m->discovery, discover, m) == 0;
    }
    if (!ok) {
        kvi_membership_stop(m);
        return kvi_error(KV_ENOMEM, "out of memory starting membership");
    }
    *out = m;
    return KV_OK;
}

void kvi_membership_stop(kvi_membership *m)
{
    if (!m)
        return;
    kvi_gossip_stop(m->gossip); /* announces the clean stop */
    kvi_ticker_stop(&m->discovery);
    for (size_t i = 0; m->members && i < m->n; i++) {
        free(m->members[i].id);
        free(m->members[i].addr);
        free(m->members[i].http);
    }
    free(m->members);
    kvi_view_unref(m->view);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

kvi_view *kvi_membership_view(kvi_membership *m)
{
    pthread_mutex_lock(&m->lock);
    kvi_view *v = m->view;
    if (v)
        kvi_view_ref(v);
    pthread_mutex_unlock(&m->lock);
    return v;
}

int kvi_membership_gossip(kvi_membership *m, const void *in, size_t len, kvi_buf *out)
{
    if (!m->gossip)
        return kvi_error(KV_ENOTSUP, "this node is not in a cluster: no gossip");
    return kvi_gossip_handle(m->gossip, in, len, out);
}

int kvi_membership_is_down(kvi_membership *m, const char *node_id)
{
    if (!m->gossip)
        return 0;
    const char *st = kvi_gossip_status(m->gossip, node_id);
    return strcmp(st, "down") == 0 || strcmp(st, "stopped") == 0;
}

size_t kvi_membership_size(kvi_membership *m)
{
    pthread_mutex_lock(&m->lock);
    size_t n = m->n;
    pthread_mutex_unlock(&m->lock);
    return n;
}

int kvi_membership_complete(kvi_membership *m)
{
    pthread_mutex_lock(&m->lock);
    int complete = m->view != NULL;
    pthread_mutex_unlock(&m->lock);
    return complete;
}

static void raw(kvi_buf *b, const char *text)
{
    kvi_buf_raw(b, text, strlen(text));
}

static void json_string(kvi_buf *b, const char *s)
{
    if (!s) {
        raw(b, "null");
        return;
    }
    cJSON *str = cJSON_CreateString(s);
    char *text = str ? cJSON_PrintUnformatted(str) : NULL;
    if (text)
        kvi_buf_raw(b, text, strlen(text));
    else
        raw(b, "null");
    cJSON_free(text);
    cJSON_Delete(str);
}

void kvi_membership_describe(kvi_membership *m, kvi_buf *out)
{
    char num[96];
    pthread_mutex_lock(&m->lock);
    double *primary = NULL, *replica = NULL;
    if (m->view) {
        primary = calloc(m->n, sizeof *primary);
        replica = calloc(m->n, sizeof *replica);
        if (primary && replica)
            kvi_ring_shares(m->view->ring, primary, replica);
    }
    raw(out, "{\"nodeId\":");
    json_string(out, m->members[0].id);
    snprintf(num, sizeof num, ",\"replicas\":%u,\"vnodes\":%u,\"complete\":%s,\"members\":[",
             m->replicas, m->vnodes, m->view ? "true" : "false");
    raw(out, num);
    for (size_t i = 0; i < m->n; i++) {
        raw(out, i ? ",{\"nodeId\":" : "{\"nodeId\":");
        json_string(out, m->members[i].id);
        raw(out, ",\"address\":");
        json_string(out, m->members[i].addr);
        raw(out, ",\"httpAddress\":");
        json_string(out, m->members[i].http);
        if (m->gossip && m->members[i].id) {
            raw(out, ",\"status\":");
            json_string(out, kvi_gossip_status(m->gossip, m->members[i].id));
        }
        if (primary && replica) {
            /* The ring indexes members in the order they were given. */
            int r = kvi_ring_find(m->view->ring, m->members[i].id);
            snprintf(num, sizeof num, ",\"primaryShare\":%.6f,\"replicaShare\":%.6f",
                     r >= 0 ? primary[r] : 0.0, r >= 0 ? replica[r] : 0.0);
            raw(out, num);
        }
        raw(out, "}");
    }
    raw(out, "]}");
    pthread_mutex_unlock(&m->lock);
    free(primary);
    free(replica);
}
