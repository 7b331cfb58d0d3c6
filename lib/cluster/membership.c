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
#include "cluster/view.h"
#include "net/addr.h"
#include "util/error.h"

#define DISCOVERY_INTERVAL_MS 200u

typedef struct member {
    char *id;      /* NULL until learned */
    char *addr;
    char *http;    /* as the member reports it; may be NULL */
} member;

struct kvi_membership {
    const kvi_logger *log;
    unsigned replicas;
    unsigned vnodes;
    uint32_t connect_timeout_ms; /* of the connections to the other members */
    uint32_t request_timeout_ms;
    /* lock guards members[].id/http, ring and stopping. */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    member *members;  /* [0] is this node */
    size_t n;
    kvi_view *view;   /* NULL until complete */
    int stopping;
    int thread_running;
    pthread_t thread;
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

/* Builds the ring once every id is known; called with m->lock held. */
static void maybe_complete(kvi_membership *m)
{
    if (m->view)
        return;
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
    if (!ids || !addrs || !https)
        kvi_log(m->log, KV_LOG_ERROR, "out of memory building the ring");
    else if (kvi_view_build(&m->view, &vc) == KV_OK)
        kvi_log(m->log, KV_LOG_INFO, "membership complete: %zu members, ring built", m->n);
    else
        kvi_log(m->log, KV_LOG_ERROR, "cannot build the ring: %s", kv_error_last());
    free(ids);
    free(addrs);
    free(https);
}

static void *discover(void *arg)
{
    kvi_membership *m = arg;
    pthread_mutex_lock(&m->lock);
    while (!m->stopping && !m->view) {
        for (size_t i = 1; i < m->n && !m->stopping; i++) {
            if (m->members[i].id)
                continue;
            char *addr = strdup(m->members[i].addr);
            pthread_mutex_unlock(&m->lock);
            char *id = NULL, *http = NULL;
            int rc = addr ? ask(addr, &id, &http, m->log) : -1;
            free(addr);
            pthread_mutex_lock(&m->lock);
            if (rc != 0)
                continue;
            if (strcmp(id, m->members[0].id) == 0) {
                /* Our own address in another spelling: not a second member. */
                kvi_log(m->log, KV_LOG_INFO, "peer %s is this node", m->members[i].addr);
                free(m->members[i].addr);
                m->members[i] = m->members[--m->n];
                i--;
                free(id);
                free(http);
                continue;
            }
            m->members[i].id = id;
            m->members[i].http = http;
            kvi_log(m->log, KV_LOG_INFO, "learned member %s at %s", id, m->members[i].addr);
        }
        maybe_complete(m);
        if (m->view || m->stopping)
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)DISCOVERY_INTERVAL_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&m->wake, &m->lock, &until);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
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
    pthread_cond_init(&m->wake, NULL);
    int ok = m->members != NULL;
    if (ok) {
        m->members[0] = (member){strdup(cfg->self_id), strdup(cfg->self_addr),
                                 dup_or_null(cfg->self_http)};
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
    if (ok) {
        pthread_mutex_lock(&m->lock);
        maybe_complete(m); /* alone: complete at once */
        pthread_mutex_unlock(&m->lock);
        ok = pthread_create(&m->thread, NULL, discover, m) == 0;
        m->thread_running = ok;
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
    if (m->thread_running) {
        pthread_mutex_lock(&m->lock);
        m->stopping = 1;
        pthread_cond_signal(&m->wake);
        pthread_mutex_unlock(&m->lock);
        pthread_join(m->thread, NULL);
    }
    for (size_t i = 0; m->members && i < m->n; i++) {
        free(m->members[i].id);
        free(m->members[i].addr);
        free(m->members[i].http);
    }
    free(m->members);
    kvi_view_unref(m->view);
    pthread_cond_destroy(&m->wake);
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
