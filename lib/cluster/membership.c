/* cluster/membership.c - learning the members' ids and building the ring. */
#include "cluster/membership.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kv/kv.h>
#include "net/client.h"
#include "cluster/ring.h"
#include "cluster/gossip.h"
#include "cluster/topology_etcd.h"
#include "net/etcd.h"
#include "cluster/members.h"
#include "cluster/topology.h"
#include "cluster/topology_service.h"
#include "cluster/view.h"
#include "storage/store.h"
#include "util/clock.h"
#include "util/ticker.h"
#include "net/addr.h"
#include "util/error.h"

#define DISCOVERY_INTERVAL_MS 200u
#define VERIFY_INTERVAL_MS 1000u
/* How often the members gossip tells of are looked at. Gossip itself runs
 * once a second; this only bounds how late a change reaches the ring. */
#define SYNC_INTERVAL_MS 250u

/* Where the members are kept in the store's meta family, so that a node
 * restarting while a member is down can serve at once. */
#define MEMBERS_META_KEY "kv.cluster.members"

struct kvi_membership {
    const kvi_logger *log;
    const kvi_credentials *creds; /* borrowed from the node; may be NULL */
    struct kvi_latency_set *peer_latency; /* borrowed from the node; may be NULL */
    unsigned replicas;
    unsigned vnodes;
    uint32_t connect_timeout_ms; /* of the connections to the other members */
    uint32_t request_timeout_ms;
    /* lock guards list, view and await_seed. */
    pthread_mutex_t lock;
    kvi_member_list list; /* [0] is this node */
    kvi_view *view;   /* NULL until complete */
    /* Views replaced under the lock, let go of only once it is released
     * (unlock_membership): letting go of the last reference closes the
     * view's clients, which waits for the peers loop, and the peers loop
     * takes this lock (a CLUSTER or GOSSIP request served there). */
    kvi_view *retired[4];
    size_t n_retired;
    kvi_store *store; /* where the members are saved; may be NULL */
    kvi_gossip *gossip; /* news of the members; NULL when alone */
    /* Started with seeds: in a cluster even while alone, so that the
     * members who join later make it a real one. */
    int has_seeds;
    /* Joining through seeds with nothing saved: a ring of this node and
     * its seed alone would place keys where the cluster does not, so there
     * is no ring until a seed has described a complete cluster. */
    int await_seed;
    char **seeds;     /* the seeds, to ask while await_seed */
    size_t n_seeds;
    size_t join_round; /* which seed is asked first; discovery thread only */
    /* One loop, on one thread, for the connections to every member (the
     * view's clients) and gossip's. */
    kvi_client_loop *peers_loop;
    kvi_ticker discovery; /* asks the configured peers for their ids */
    kvi_ticker sync;      /* takes the members gossip tells of */
    kvi_ticker duties;    /* this node's part in a topology change of others */
    char self_id[KVI_TOPO_MAX_ID + 1]; /* a copy any thread may read */
    atomic_int stopping;  /* streams give up: the node is stopping */
    /* The topology (docs/design/TOPOLOGY.md): in a cluster, the ring is the
     * current ring of the record this service holds; NULL alone. */
    kvi_topo_service *topo;
    atomic_int topo_changed; /* a newer record was taken: rebuild the view */
    atomic_uint_fast64_t ring_asked_ms; /* when a refusing replica was last asked */
    /* etcd mode: the handle (its watch and the member's lease run on
     * threads of its own) and what the watch takes records into. */
    kvi_etcd *etcd;
    kvi_topo_etcd_watcher watcher;
    int first_said;                     /* logged that etcd refused epoch 1 */
    pthread_mutex_t poke_lock;          /* guards sync_started against stop */
    int sync_started;                   /* m->sync may be poked */
    /* Without a record yet: how many rounds the members were asked for
     * theirs before this node forms the first one. Discovery thread. */
    unsigned record_asks;
    int join_said;           /* logged that the join waits; discovery thread */
    /* Started to replace the dead member of this node's id, with no
     * record of its own yet; cleared once the replace is done. */
    int replace;
    char topo_refusal[256];  /* why the topology refused to start */
    int (*stream_gains)(void *ctx, kvi_membership *m, const kvi_topology *t, char *err,
                        size_t err_size);
    void *stream_ctx;
    uint64_t (*hints_pending)(void *ctx); /* (with stream_ctx) */
    uint64_t hints_said_ms;  /* when the leave last said it waits on hints */
};

/* Rounds of asking the other members for their topology record before the
 * nodes of a new cluster form the first one from their member list. */
#define RECORD_ASK_ROUNDS 3u

/* Asks addr for its CLUSTER description; the parsed JSON (cJSON_Delete
 * it), or NULL. */
static cJSON *describe_of(const char *addr, const kvi_credentials *creds,
                          const kvi_logger *log)
{
    kvi_client *c = NULL;
    const char *eps[] = {addr};
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.connect_timeout_ms = 300;
    co.request_timeout_ms = 1000;
    if (kvi_client_open(&c, eps, 1, &co, log) != KV_OK)
        return NULL;
    if (creds && creds->secret_len &&
        kvi_client_set_credentials(c, creds->secret, creds->secret_len, NULL) != KV_OK) {
        kvi_client_close(c);
        return NULL;
    }
    if (creds && creds->tls)
        kvi_client_set_tls(c, creds->tls);
    kvi_buf json = {0};
    int rc = kvi_client_cluster(c, &json);
    kvi_client_close(c);
    cJSON *root = rc == KV_OK ? cJSON_ParseWithLength((const char *)json.data, json.len) : NULL;
    kvi_buf_free(&json);
    return root;
}

/* Asks addr for its description; returns its node id and http address
 * (malloc'd), or -1. */
static int ask(const char *addr, char **id, char **http, const kvi_credentials *creds,
               const kvi_logger *log)
{
    cJSON *root = describe_of(addr, creds, log);
    if (!root)
        return -1;
    int rc = -1;
    const cJSON *node_id = cJSON_GetObjectItemCaseSensitive(root, "nodeId");
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

typedef struct future_ring future_ring;
static void install_view(kvi_membership *m, const char **ids, const char **addrs,
                         const char **https, size_t n, int self, const future_ring *fut);
static void rebuild_view_from_record(kvi_membership *m);
static void take_record_members(kvi_membership *m);

/* Builds the view (ring and connections) from the members once every id
 * is known (and, joining through seeds, once gossip has told of the
 * cluster), replacing any earlier one; called with m->lock held. Holders
 * of the old view keep it until they let go. */
static void rebuild_view(kvi_membership *m)
{
    const kvi_member_list *l = &m->list;
    if (m->topo) {
        rebuild_view_from_record(m);
        return;
    }
    if (m->await_seed || !kvi_members_complete(l))
        return;
    const char **ids = malloc(l->n * sizeof *ids);
    const char **addrs = malloc(l->n * sizeof *addrs);
    const char **https = malloc(l->n * sizeof *https);
    for (size_t i = 0; ids && addrs && https && i < l->n; i++) {
        ids[i] = l->items[i].id;
        addrs[i] = l->items[i].addr;
        https[i] = l->items[i].http;
    }
    install_view(m, ids, addrs, https, l->n, 0, NULL);
    free(ids);
    free(addrs);
    free(https);
}

/* Builds a view of n members (self: this node's index; fut: a topology
 * change's future ring, or NULL) and makes it the view; called with
 * m->lock held. */
typedef struct future_ring {
    const char **ids;
    size_t n;
    const char **extra_ids, **extra_addrs, **extra_https;
    size_t n_extra;
    uint64_t epoch;
    const unsigned char *no_reads; /* per current member: replacing; may be NULL */
} future_ring;

static void install_view(kvi_membership *m, const char **ids, const char **addrs,
                         const char **https, size_t n, int self, const future_ring *fut)
{
    kv_client_options co = KV_CLIENT_OPTIONS_INIT;
    co.connect_timeout_ms = m->connect_timeout_ms;
    co.request_timeout_ms = m->request_timeout_ms;
    co.connections_per_node = 2;
    kvi_view_config vc = {
        .ids = ids, .addrs = addrs, .https = https, .n = n, .self = self,
        .replicas = m->replicas, .vnodes = m->vnodes, .client_opts = &co, .creds = m->creds,
        .log = m->log, .loop = m->peers_loop, .peer_latency = m->peer_latency,
    };
    if (fut) {
        vc.epoch = fut->epoch;
        vc.no_reads = fut->no_reads;
    }
    if (fut && fut->n) {
        vc.future_ids = fut->ids;
        vc.n_future = fut->n;
        vc.extra_ids = fut->extra_ids;
        vc.extra_addrs = fut->extra_addrs;
        vc.extra_https = fut->extra_https;
        vc.n_extra = fut->n_extra;
    }
    kvi_view *fresh = NULL;
    if (!ids || !addrs || !https)
        kvi_log(m->log, KV_LOG_ERROR, "out of memory building the ring");
    else if (kvi_view_build(&fresh, &vc) != KV_OK)
        kvi_log(m->log, KV_LOG_ERROR, "cannot build the ring: %s", kvi_error_last());
    else {
        kvi_log(m->log, KV_LOG_INFO, "membership complete: %zu members, ring built", n);
        if (m->view && m->n_retired < sizeof m->retired / sizeof m->retired[0])
            m->retired[m->n_retired++] = m->view;
        else
            kvi_view_unref(m->view); /* never: one rebuild per locked section */
        m->view = fresh;
        if (m->gossip)
            kvi_gossip_set_status(m->gossip, KVI_MEMBER_UP);
    }
}

/* The view of the record's current ring, with each member at the address
 * the member list knows (gossip follows a member that moved), else the
 * record's. A node outside the current ring (joining) has no view: it
 * neither coordinates nor serves until its join is done. Called with
 * m->lock held. */
static void rebuild_view_from_record(kvi_membership *m)
{
    kvi_topology t;
    kvi_topology_init(&t);
    if (kvi_topo_service_record(m->topo, &t) != KV_OK || t.epoch == 0) {
        kvi_topology_free(&t);
        return;
    }
    const char **ids = malloc(t.n * sizeof *ids);
    const char **addrs = malloc(t.n * sizeof *addrs);
    const char **https = malloc(t.n * sizeof *https);
    unsigned char *no_reads = calloc(t.n, 1);
    size_t n = 0;
    int self = -1;
    for (size_t i = 0; ids && addrs && https && no_reads && i < t.n; i++) {
        const kvi_topo_member *tm = &t.members[i];
        if (!kvi_topology_in_ring(&t, tm, KVI_TOPO_CURRENT))
            continue;
        long at = kvi_members_find_id(&m->list, tm->id);
        ids[n] = tm->id;
        addrs[n] = at >= 0 ? m->list.items[at].addr : tm->addr;
        https[n] = at >= 0 ? m->list.items[at].http : (tm->http[0] ? tm->http : NULL);
        if (at == 0)
            self = (int)n;
        no_reads[n] = !kvi_topology_readable(tm);
        n++;
    }
    /* A change in progress: the future ring, and the members only it has
     * (a joining one), so that writes reach the homes of both. */
    future_ring fut = {.epoch = t.epoch, .no_reads = no_reads};
    fut.ids = malloc(t.n * sizeof *fut.ids);
    fut.extra_ids = malloc(t.n * sizeof *fut.extra_ids);
    fut.extra_addrs = malloc(t.n * sizeof *fut.extra_addrs);
    fut.extra_https = malloc(t.n * sizeof *fut.extra_https);
    int have_future = t.op != KVI_TOPO_OP_NONE && fut.ids && fut.extra_ids &&
                      fut.extra_addrs && fut.extra_https;
    for (size_t i = 0; have_future && i < t.n; i++) {
        const kvi_topo_member *tm = &t.members[i];
        if (!kvi_topology_in_ring(&t, tm, KVI_TOPO_FUTURE))
            continue;
        fut.ids[fut.n++] = tm->id;
        if (kvi_topology_in_ring(&t, tm, KVI_TOPO_CURRENT))
            continue;
        long at = kvi_members_find_id(&m->list, tm->id);
        fut.extra_ids[fut.n_extra] = tm->id;
        fut.extra_addrs[fut.n_extra] = at >= 0 ? m->list.items[at].addr : tm->addr;
        fut.extra_https[fut.n_extra] = at >= 0 ? m->list.items[at].http
                                               : (tm->http[0] ? tm->http : NULL);
        fut.n_extra++;
    }
    if (self >= 0 && !no_reads) {
        kvi_log(m->log, KV_LOG_ERROR, "out of memory building the ring");
    } else if (self >= 0) {
        if (!have_future)
            fut.n = fut.n_extra = 0; /* the epoch alone */
        install_view(m, ids, addrs, https, n, self, &fut);
    } else if (m->view && m->n_retired < sizeof m->retired / sizeof m->retired[0]) {
        /* Out of the ring (it left): it no longer coordinates or serves. */
        m->retired[m->n_retired++] = m->view;
        m->view = NULL;
        kvi_log(m->log, KV_LOG_WARN, "this node is no longer in the ring (topology epoch "
                "%llu): it serves no data; stop it", (unsigned long long)t.epoch);
    }
    free(fut.ids);
    free(fut.extra_ids);
    free(fut.extra_addrs);
    free(fut.extra_https);
    free(no_reads);
    free(ids);
    free(addrs);
    free(https);
    kvi_topology_free(&t);
}

/* Releases m->lock, then lets go of the views replaced while it was held. */
static void unlock_membership(kvi_membership *m)
{
    kvi_view *old[sizeof m->retired / sizeof m->retired[0]];
    size_t n = m->n_retired;
    memcpy(old, m->retired, n * sizeof old[0]);
    m->n_retired = 0;
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < n; i++)
        kvi_view_unref(old[i]);
}

/* Saves the members whose ids are known; called with m->lock held. */
static void save_members(kvi_membership *m)
{
    if (!m->store)
        return;
    cJSON *root = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(root, "members");
    for (size_t i = 1; list && i < m->list.n; i++) {
        const kvi_member *mb = &m->list.items[i];
        if (!mb->id)
            continue;
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "address", mb->addr);
        cJSON_AddStringToObject(e, "nodeId", mb->id);
        if (mb->http)
            cJSON_AddStringToObject(e, "httpAddress", mb->http);
        cJSON_AddItemToArray(list, e);
    }
    char *text = cJSON_PrintUnformatted(root);
    if (!text || kvi_store_meta_put(m->store, MEMBERS_META_KEY, text, strlen(text)) != KV_OK)
        kvi_log(m->log, KV_LOG_WARN, "cannot save the members: %s",
                text ? kvi_error_last() : "out of memory");
    cJSON_free(text);
    cJSON_Delete(root);
}

/* Drops member i (this node under another address); called with m->lock
 * held. */
static void drop_member(kvi_membership *m, size_t i)
{
    kvi_log(m->log, KV_LOG_INFO, "peer %s is this node", m->list.items[i].addr);
    kvi_members_remove(&m->list, i);
}

/* Takes the members saved by an earlier run: the ids of the configured
 * peers at the same addresses (unverified until each answers again), and
 * every other member, learned by gossip then. Returns how many it took. */
static size_t load_members(kvi_membership *m)
{
    char *text = NULL;
    size_t len = 0, taken = 0;
    if (!m->store || kvi_store_meta_get(m->store, MEMBERS_META_KEY, &text, &len) != KV_OK)
        return 0;
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "members")) {
        const cJSON *addr = cJSON_GetObjectItemCaseSensitive(e, "address");
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "nodeId");
        const cJSON *http = cJSON_GetObjectItemCaseSensitive(e, "httpAddress");
        if (!cJSON_IsString(addr) || !cJSON_IsString(id) || !id->valuestring[0] ||
            !addr->valuestring[0])
            continue;
        const char *h = cJSON_IsString(http) && http->valuestring[0] ? http->valuestring : NULL;
        long i = kvi_members_find_addr(&m->list, addr->valuestring);
        if (strcmp(id->valuestring, m->list.items[0].id) == 0) {
            if (i > 0)
                drop_member(m, (size_t)i);
            continue;
        }
        if (i > 0 && m->list.items[i].configured && !m->list.items[i].id) {
            kvi_member *mb = &m->list.items[i];
            mb->id = strdup(id->valuestring);
            mb->http = h ? strdup(h) : NULL;
            taken += mb->id != NULL;
            continue;
        }
        if (i >= 0 || kvi_members_find_id(&m->list, id->valuestring) >= 0)
            continue;
        if (kvi_members_add(&m->list, id->valuestring, addr->valuestring, h, 0) == KV_OK)
            taken++;
    }
    cJSON_Delete(root);
    free(text);
    return taken;
}

/* Started with neither peers nor seeds on a store that remembers other
 * members: the node is still one of their cluster (its ring holds them, and
 * a write at QUORUM needs them), which surprises someone who meant to start
 * a node of its own, so say so once, naming them. Called before any thread
 * starts. */
static void warn_remembered(const kvi_membership *m, size_t loaded)
{
    char names[400];
    size_t used = 0;
    names[0] = 0;
    for (size_t i = 1; i < m->list.n && used < sizeof names; i++) {
        const kvi_member *mb = &m->list.items[i];
        int w = snprintf(names + used, sizeof names - used, "%s%s (%s)", i > 1 ? ", " : "",
                         mb->id ? mb->id : "?", mb->addr);
        used += w > 0 ? (size_t)w : 0;
    }
    if (used >= sizeof names)
        memcpy(names + sizeof names - 4, "...", 4);
    kvi_log(m->log, KV_LOG_WARN,
            "started without peers or seeds, but this store remembers %zu other member(s) of "
            "its cluster: %s. It is still their member: its ring holds them and requests "
            "need them for quorum (unavailable, HTTP 503, while they are down). To run a "
            "node of its own, start it on a new, empty data directory",
            loaded, names);
}

/* Joining through seeds: asks each seed in turn for its description, and
 * once one describes a complete cluster takes its members (but those
 * joining or leaving) and builds the ring. Its ring members are the
 * cluster as it knows it; its gossip table may not yet name them all.
 * Called with m->lock held; returns 1 once joined. */
static int join_through_seed(kvi_membership *m, size_t round)
{
    for (size_t k = 0; k < m->n_seeds; k++) {
        const char *seed = m->seeds[(round + k) % m->n_seeds];
        if (strcmp(seed, m->list.items[0].addr) == 0)
            continue;
        char *addr = strdup(seed);
        pthread_mutex_unlock(&m->lock);
        cJSON *root = addr ? describe_of(addr, m->creds, m->log) : NULL;
        free(addr);
        pthread_mutex_lock(&m->lock);
        if (!m->await_seed) {
            cJSON_Delete(root);
            return 1; /* (stopping, or joined meanwhile) */
        }
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "complete"))) {
            cJSON_Delete(root);
            continue; /* unreachable, or still learning itself */
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(root, "members")) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "nodeId");
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(e, "address");
            const cJSON *h = cJSON_GetObjectItemCaseSensitive(e, "httpAddress");
            const cJSON *st = cJSON_GetObjectItemCaseSensitive(e, "status");
            if (!cJSON_IsString(id) || !id->valuestring[0] || !cJSON_IsString(a) ||
                !a->valuestring[0] ||
                (cJSON_IsString(st) && (strcmp(st->valuestring, "joining") == 0 ||
                                        strcmp(st->valuestring, "leaving") == 0)) ||
                kvi_members_find_id(&m->list, id->valuestring) >= 0 ||
                kvi_members_find_addr(&m->list, a->valuestring) >= 0)
                continue;
            kvi_members_add(&m->list, id->valuestring, a->valuestring,
                            cJSON_IsString(h) && h->valuestring[0] ? h->valuestring : NULL, 0);
        }
        cJSON_Delete(root);
        m->await_seed = 0;
        kvi_log(m->log, KV_LOG_INFO, "joined the cluster through seed %s: %zu members",
                seed, m->list.n);
        rebuild_view(m);
        save_members(m);
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------ topology */

/* The changes a joining (or replacing) node makes to the record, each a
 * no-op once made (a node restarted half-way through goes on from there). */
static int build_join(void *ctx, const kvi_topology *cur, kvi_topology *next, char *err,
                      size_t err_size)
{
    const kvi_member *self = ctx;
    const kvi_topo_member *tm = kvi_topology_find(cur, self->id);
    if (tm && (tm->state == KVI_TOPO_NORMAL ||
               (tm->state == KVI_TOPO_JOINING && cur->op == KVI_TOPO_OP_JOIN)))
        return kvi_topology_copy(next, cur);
    return kvi_topology_begin(next, cur, KVI_TOPO_OP_JOIN, self->id, self->addr, self->http,
                              err, err_size);
}

static int build_replace(void *ctx, const kvi_topology *cur, kvi_topology *next, char *err,
                         size_t err_size)
{
    const kvi_member *self = ctx;
    const kvi_topo_member *tm = kvi_topology_find(cur, self->id);
    if (tm && tm->state == KVI_TOPO_REPLACING && cur->op == KVI_TOPO_OP_REPLACE)
        return kvi_topology_copy(next, cur);
    return kvi_topology_begin(next, cur, KVI_TOPO_OP_REPLACE, self->id, self->addr,
                              self->http, err, err_size);
}

/* The operation in progress is this node's own join or replace. */
static int own_operation(const kvi_topology *cur, const char *id)
{
    return (cur->op == KVI_TOPO_OP_JOIN || cur->op == KVI_TOPO_OP_REPLACE) &&
           strcmp(cur->op_member, id) == 0;
}

static int build_own_done(void *ctx, const kvi_topology *cur, kvi_topology *next, char *err,
                          size_t err_size)
{
    const kvi_member *self = ctx;
    if (!own_operation(cur, self->id))
        return kvi_topology_copy(next, cur);
    int changed;
    return kvi_topology_mark_done(next, &changed, cur, self->id, err, err_size);
}

static int build_own_finish(void *ctx, const kvi_topology *cur, kvi_topology *next, char *err,
                            size_t err_size)
{
    const kvi_member *self = ctx;
    if (!own_operation(cur, self->id))
        return kvi_topology_copy(next, cur);
    return kvi_topology_finish(next, cur, err, err_size);
}

/* A member replaced must be dead: when the record places it at another
 * address than this node's, that address must not answer as it. Called
 * with no lock held; 1 when it answers (err says so). */
static int replaced_member_alive(kvi_membership *m, const kvi_topology *t, const char *id,
                                 const char *own_addr, char *err, size_t err_size)
{
    const kvi_topo_member *old = kvi_topology_find(t, id);
    if (!old || old->state != KVI_TOPO_NORMAL || strcmp(old->addr, own_addr) == 0)
        return 0;
    char *other_id = NULL, *http = NULL;
    int alive = ask(old->addr, &other_id, &http, m->creds, m->log) == 0 && other_id &&
                strcmp(other_id, id) == 0;
    if (alive)
        snprintf(err, err_size, "member %s still answers at %s: a replace takes the place "
                 "of a dead member (stop it, or decommission it instead)", id, old->addr);
    free(other_id);
    free(http);
    return alive;
}

/* Takes this node's place in the cluster whose record it holds: joins it
 * (op JOIN: the node is not a member) or replaces its dead member of the
 * same id (op REPLACE). The change is recorded (joining or replacing),
 * then what the node gains streams in (and, for a replace, is repaired
 * against the survivors), then its part is recorded done, then the change
 * finished (the node is normal, in the current ring). Runs on the
 * discovery thread, with no lock held; 1 once done, 0 to try again. */
static int take_place_by_record(kvi_membership *m, const kvi_topology *t, kvi_topo_op op)
{
    if (t->replicas != m->replicas || t->vnodes != m->vnodes) {
        kvi_log(m->log, KV_LOG_ERROR, "cannot join: the cluster keeps %u replicas on %u vnodes "
                "per member, this node was started with %u and %u",
                t->replicas, t->vnodes, m->replicas, m->vnodes);
        return 0;
    }
    const char *what = op == KVI_TOPO_OP_REPLACE ? "replace" : "join";
    kvi_member self;
    pthread_mutex_lock(&m->lock);
    self.id = strdup(m->list.items[0].id);
    self.addr = strdup(m->list.items[0].addr);
    self.http = m->list.items[0].http ? strdup(m->list.items[0].http) : NULL;
    pthread_mutex_unlock(&m->lock);
    char err[600] = "";
    int rc = self.id && self.addr ? KV_OK : KV_ENOMEM;
    if (rc == KV_OK && op == KVI_TOPO_OP_REPLACE &&
        replaced_member_alive(m, t, self.id, self.addr, err, sizeof err))
        rc = KV_EINVAL;
    kvi_topology begun;
    kvi_topology_init(&begun);
    if (rc == KV_OK)
        rc = kvi_topo_service_change(m->topo,
                                     op == KVI_TOPO_OP_REPLACE ? build_replace : build_join,
                                     &self, &begun, err, sizeof err);
    /* Begun: writes of the ranges it gains reach it already; what was
     * there before streams in from the members it takes them from. */
    const kvi_topo_member *me = rc == KV_OK ? kvi_topology_find(&begun, self.id) : NULL;
    if (rc == KV_OK && m->stream_gains && own_operation(&begun, self.id) && me && !me->done)
        rc = m->stream_gains(m->stream_ctx, m, &begun, err, sizeof err);
    kvi_topology_free(&begun);
    kvi_topo_build_fn steps[] = {build_own_done, build_own_finish};
    for (size_t i = 0; rc == KV_OK && i < sizeof steps / sizeof steps[0]; i++)
        rc = kvi_topo_service_change(m->topo, steps[i], &self, NULL, err, sizeof err);
    if (rc == KV_OK)
        kvi_log(m->log, KV_LOG_INFO, "%s of the cluster done: epoch %llu",
                op == KVI_TOPO_OP_REPLACE ? "replace" : "join",
                (unsigned long long)kvi_topo_service_epoch(m->topo));
    else if (!m->join_said++)
        kvi_log(m->log, KV_LOG_WARN, "cannot %s the cluster yet (trying again): %s",
                op == KVI_TOPO_OP_REPLACE ? "take a member's place in" : what, err);
    free(self.id);
    free(self.addr);
    free(self.http);
    return rc == KV_OK;
}

/* The first record of a new cluster, from its member list (every id
 * known): the nodes started together with the same list form the same
 * record. Called with m->lock held. */
static void form_first_record(kvi_membership *m)
{
    const char **ids = malloc(m->list.n * sizeof *ids);
    const char **addrs = malloc(m->list.n * sizeof *addrs);
    const char **https = malloc(m->list.n * sizeof *https);
    for (size_t i = 0; ids && addrs && https && i < m->list.n; i++) {
        ids[i] = m->list.items[i].id;
        addrs[i] = m->list.items[i].addr;
        https[i] = m->list.items[i].http;
    }
    kvi_topology first;
    kvi_topology_init(&first);
    if (ids && addrs && https &&
        kvi_topology_first(&first, m->replicas, m->vnodes, ids, addrs, https, m->list.n) == KV_OK) {
        /* In etcd mode, recorded there unless a member was first. */
        if (kvi_topo_service_first(m->topo, &first) != KV_OK && !m->first_said++)
            kvi_log(m->log, KV_LOG_WARN, "cannot record the cluster's first topology (trying "
                    "again): %s", kvi_error_last());
    } else {
        kvi_log(m->log, KV_LOG_ERROR, "cannot form the cluster's first topology record");
    }
    kvi_topology_free(&first);
    free(ids);
    free(addrs);
    free(https);
}

/* The topology's part of a discovery round, once every id is known (or a
 * seed is awaited): without a record, ask the members (or seeds) for
 * theirs a few rounds, then form the first one; with a record that does
 * not hold this node, join. Called with m->lock held (released while it
 * joins); returns when to run again, 0 when done. */
static uint32_t discover_topology(kvi_membership *m)
{
    uint64_t epoch = kvi_topo_service_epoch(m->topo);
    int fresh = 0; /* a record formed or a join made here: a new view */
    if (epoch == 0) {
        if (m->await_seed || m->record_asks < RECORD_ASK_ROUNDS) {
            m->record_asks++;
            for (size_t i = 1; i < m->list.n; i++)
                kvi_topo_service_fetch(m->topo, m->list.items[i].addr);
            for (size_t i = 0; m->await_seed && i < m->n_seeds; i++)
                if (strcmp(m->seeds[i], m->list.items[0].addr) != 0)
                    kvi_topo_service_fetch(m->topo, m->seeds[i]);
            return DISCOVERY_INTERVAL_MS;
        }
        form_first_record(m);
        epoch = kvi_topo_service_epoch(m->topo);
        fresh = 1;
    }
    kvi_topology t;
    kvi_topology_init(&t);
    if (epoch == 0 || kvi_topo_service_record(m->topo, &t) != KV_OK) {
        kvi_topology_free(&t);
        return DISCOVERY_INTERVAL_MS;
    }
    m->await_seed = 0;
    const kvi_topo_member *self = kvi_topology_find(&t, m->list.items[0].id);
    uint32_t next = 0;
    kvi_topo_op op = KVI_TOPO_OP_NONE;
    if (!self && m->replace) {
        if (!m->join_said++)
            kvi_log(m->log, KV_LOG_ERROR, "cannot replace member %s: the cluster has no such "
                    "member (its members are in GET /v1/cluster)", m->list.items[0].id);
        kvi_topology_free(&t);
        return VERIFY_INTERVAL_MS;
    }
    if (!self || self->state == KVI_TOPO_JOINING || self->state == KVI_TOPO_LEFT)
        op = KVI_TOPO_OP_JOIN;
    else if (self->state == KVI_TOPO_REPLACING ||
             (m->replace && self->state == KVI_TOPO_NORMAL))
        op = KVI_TOPO_OP_REPLACE;
    if (op != KVI_TOPO_OP_NONE) {
        pthread_mutex_unlock(&m->lock);
        int done = take_place_by_record(m, &t, op);
        pthread_mutex_lock(&m->lock);
        next = done ? 0 : VERIFY_INTERVAL_MS;
        fresh = done;
        if (done)
            m->replace = 0;
    }
    if (fresh || !m->view) {
        take_record_members(m);
        rebuild_view(m);
        save_members(m);
    }
    kvi_topology_free(&t);
    return next;
}

/* One round of discovery: asks every configured peer whose id is unknown
 * or not yet confirmed. An id that changed (a member replaced under the
 * same address) rebuilds the ring. Returns when to ask again, or 0 once
 * every peer has confirmed its id. */
static uint32_t discover(void *arg)
{
    kvi_membership *m = arg;
    pthread_mutex_lock(&m->lock);
    if (m->await_seed && m->topo) {
        uint32_t next = discover_topology(m);
        unlock_membership(m);
        return next;
    }
    if (m->await_seed) {
        int joined = join_through_seed(m, m->join_round++);
        unlock_membership(m);
        return joined ? 0 : DISCOVERY_INTERVAL_MS;
    }
    int changed = 0, pending = 0;
    for (size_t i = 1; i < m->list.n && !kvi_ticker_stopping(&m->discovery); i++) {
        if (m->list.items[i].verified || !m->list.items[i].configured)
            continue;
        char *addr = strdup(m->list.items[i].addr);
        pthread_mutex_unlock(&m->lock);
        char *id = NULL, *http = NULL;
        int rc = addr ? ask(addr, &id, &http, m->creds, m->log) : -1;
        free(addr);
        pthread_mutex_lock(&m->lock);
        if (rc != 0) {
            pending++;
            continue;
        }
        if (strcmp(id, m->list.items[0].id) == 0) {
            /* Our own address in another spelling: not a second member. */
            drop_member(m, i);
            i--;
            free(id);
            free(http);
            changed = 1;
            continue;
        }
        /* The same member known at another address (saved, or told by
         * gossip): it moved here. */
        long other = kvi_members_find_id(&m->list, id);
        if (other > 0 && (size_t)other != i && !m->list.items[other].configured) {
            kvi_members_remove(&m->list, (size_t)other);
            if ((size_t)other < i)
                i = (size_t)other; /* the last member took its place: see it again */
            i--;
            free(id);
            free(http);
            changed = 1;
            continue;
        }
        kvi_member *mb = &m->list.items[i];
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
    /* Every id known (or a record already held): the topology's turn. */
    if (m->topo && !kvi_ticker_stopping(&m->discovery) &&
        (kvi_members_complete(&m->list) || kvi_topo_service_epoch(m->topo))) {
        uint32_t t = discover_topology(m);
        if (t && (!next || t < next))
            next = t;
    }
    unlock_membership(m);
    return next;
}

/* The members of the record that the member list lacks (a member that
 * joined while this node was away), at the record's addresses. Called
 * with m->lock held. */
static void take_record_members(kvi_membership *m)
{
    kvi_topology t;
    kvi_topology_init(&t);
    if (kvi_topo_service_record(m->topo, &t) != KV_OK)
        return;
    for (size_t i = 0; i < t.n; i++) {
        const kvi_topo_member *tm = &t.members[i];
        long known = kvi_members_find_id(&m->list, tm->id);
        if (known > 0 && tm->state == KVI_TOPO_REPLACING &&
            strcmp(m->list.items[known].addr, tm->addr) != 0) {
            /* A replace moved the member to the new process's address
             * (agreed in the record): that wins even over --peers, which
             * named the dead process's. */
            char *addr = strdup(tm->addr), *http = tm->http[0] ? strdup(tm->http) : NULL;
            if (addr && (http || !tm->http[0])) {
                kvi_log(m->log, KV_LOG_INFO, "member %s is replaced at %s (was %s)", tm->id,
                        addr, m->list.items[known].addr);
                free(m->list.items[known].addr);
                free(m->list.items[known].http);
                m->list.items[known].addr = addr;
                m->list.items[known].http = http;
            } else {
                free(addr);
                free(http);
            }
            continue;
        }
        if (tm->state == KVI_TOPO_LEFT || known >= 0)
            continue;
        long at = kvi_members_find_addr(&m->list, tm->addr);
        if (at < 0) {
            kvi_members_add(&m->list, tm->id, tm->addr, tm->http[0] ? tm->http : NULL, 0);
        } else if (!m->list.items[at].id) {
            /* A configured peer not asked yet (a node that fetched the
             * record first): the record names it. */
            char *id = strdup(tm->id), *http = tm->http[0] ? strdup(tm->http) : NULL;
            if (id && (http || !tm->http[0])) {
                m->list.items[at].id = id;
                free(m->list.items[at].http);
                m->list.items[at].http = http;
            } else {
                free(id);
                free(http);
            }
        }
    }
    kvi_topology_free(&t);
}

/* The topology service took a newer record (on whatever thread): the sync
 * thread rebuilds the view, since a view let go of on the peers loop
 * would wait for that loop. It does so at once, not at its next tick:
 * replicas refuse requests routed by an older ring than theirs, so the
 * members' views should move together. */
static void topology_changed(void *ctx, const kvi_topology *record)
{
    kvi_membership *m = ctx;
    (void)record;
    atomic_store(&m->topo_changed, 1);
    pthread_mutex_lock(&m->poke_lock);
    if (m->sync_started)
        kvi_ticker_poke(&m->sync);
    pthread_mutex_unlock(&m->poke_lock);
}

/* Takes the members gossip tells of (members.h says which): a new member,
 * or one that moved, rebuilds the ring and is saved. */
static uint32_t sync_gossip(void *arg)
{
    kvi_membership *m = arg;
    kvi_gossip_table t;
    if (kvi_gossip_snapshot(m->gossip, &t) != KV_OK)
        return SYNC_INTERVAL_MS;
    pthread_mutex_lock(&m->lock);
    size_t before = m->list.n;
    int changed = kvi_members_merge_gossip(&m->list, &t);
    if (changed < 0)
        kvi_log(m->log, KV_LOG_ERROR, "cannot take the members gossip tells of: out of memory "
                "or over %u members", KVI_RING_MAX_MEMBERS);
    if (changed > 0)
        kvi_log(m->log, KV_LOG_INFO, "gossip told of %zu new member(s) and %d change(s)%s",
                m->list.n - before, changed - (int)(m->list.n - before),
                m->await_seed ? "" : "; rebuilding the ring");
    /* Not saved while joining: a restart would take a partial list for
     * the cluster's. */
    int topo_changed = m->topo && atomic_exchange(&m->topo_changed, 0);
    if (topo_changed)
        take_record_members(m);
    if ((changed > 0 || topo_changed) && !m->await_seed) {
        rebuild_view(m);
        save_members(m);
    }
    if (m->topo) {
        /* A member on a newer epoch than ours: ask it for its record. */
        uint64_t mine = kvi_topo_service_epoch(m->topo), best = mine;
        const char *from = NULL;
        for (size_t i = 0; i < t.n; i++)
            if (t.entries[i].epoch > best) {
                best = t.entries[i].epoch;
                from = t.entries[i].addr;
            }
        if (from)
            kvi_topo_service_fetch(m->topo, from);
        kvi_gossip_set_epoch(m->gossip, mine);
    }
    unlock_membership(m);
    kvi_gossip_table_free(&t);
    return SYNC_INTERVAL_MS;
}

/* --------------------------------------------- changes and this node's part */

typedef struct change_args {
    kvi_topo_op op;           /* KVI_TOPO_OP_NONE: abort */
    const char *target;
} change_args;

static int build_change(void *ctx, const kvi_topology *cur, kvi_topology *next, char *err,
                        size_t err_size)
{
    const change_args *a = ctx;
    if (a->op == KVI_TOPO_OP_NONE)
        return kvi_topology_abort(next, cur, err, err_size);
    return kvi_topology_begin(next, cur, a->op, a->target, NULL, NULL, err, err_size);
}

int kvi_membership_change(kvi_membership *m, const char *change, const char *node_id,
                          kvi_topology *record, char *err, size_t err_size)
{
    if (!m->topo) {
        snprintf(err, err_size, "this node is not in a cluster: no topology to change");
        return KV_ENOTSUP;
    }
    change_args a = {KVI_TOPO_OP_NONE, node_id};
    const char *self = m->self_id;
    if (strcmp(change, "leave") == 0) {
        a.op = KVI_TOPO_OP_LEAVE;
        if (!a.target)
            a.target = self;
        if (kvi_membership_is_down(m, a.target)) {
            snprintf(err, err_size, "%s is down: a member that leaves streams its ranges to "
                     "their new homes, so it must run (for a member that is gone for good, "
                     "remove it)", a.target);
            return KV_EUNAVAILABLE;
        }
    } else if (strcmp(change, "remove") == 0) {
        a.op = KVI_TOPO_OP_REMOVE;
        if (!a.target || strcmp(a.target, self) == 0) {
            snprintf(err, err_size, "remove names another member, one that is down for good");
            return KV_EINVAL;
        }
        if (!kvi_membership_is_down(m, a.target)) {
            snprintf(err, err_size, "%s is not down: a member that runs leaves (decommission) "
                     "rather than being removed", a.target);
            return KV_EINVAL;
        }
    } else if (strcmp(change, "abort") != 0) {
        snprintf(err, err_size, "unknown topology change \"%s\" (leave, remove, abort or cleanup)",
                 change);
        return KV_EINVAL;
    }
    return kvi_topo_service_change(m->topo, build_change, &a, record, err, err_size);
}

static int build_done(void *ctx, const kvi_topology *cur, kvi_topology *next, char *err,
                      size_t err_size)
{
    int changed;
    return kvi_topology_mark_done(next, &changed, cur, ctx, err, err_size);
}

/* Ends the change once every member that gains ranges is done (any member
 * may: the record says when). */
static int build_finish_when_done(void *ctx, const kvi_topology *cur, kvi_topology *next,
                                  char *err, size_t err_size)
{
    (void)ctx;
    if (cur->op == KVI_TOPO_OP_NONE)
        return kvi_topology_copy(next, cur);
    return kvi_topology_finish(next, cur, err, err_size);
}

/* This node's part in a change of others (a leave, a remove): when it
 * gains ranges, it streams them, then says it is done; once all are, it
 * ends the change. A join's or replace's own steps are its node's
 * (discovery thread). Runs on its own ticker: a stream takes long. */
static uint32_t do_duties(void *arg)
{
    kvi_membership *m = arg;
    kvi_topology t;
    kvi_topology_init(&t);
    if (kvi_topo_service_record(m->topo, &t) != KV_OK || t.op == KVI_TOPO_OP_NONE ||
        own_operation(&t, m->self_id)) {
        kvi_topology_free(&t);
        return VERIFY_INTERVAL_MS;
    }
    const char *self = m->self_id;
    size_t *g = NULL, n = 0;
    int mine = 0, pending = 0;
    if (kvi_topology_gainers(&t, &g, &n) == KV_OK)
        for (size_t i = 0; i < n; i++) {
            const kvi_topo_member *tm = &t.members[g[i]];
            pending += !tm->done;
            mine |= strcmp(tm->id, self) == 0 && !tm->done;
        }
    free(g);
    char err[256] = "";
    int rc = KV_OK;
    if (mine && m->stream_gains) {
        rc = m->stream_gains(m->stream_ctx, m, &t, err, sizeof err);
        if (rc == KV_OK)
            rc = kvi_topo_service_change(m->topo, build_done, (void *)self, NULL, err,
                                         sizeof err);
        if (rc == KV_OK)
            pending--;
        else
            kvi_log(m->log, KV_LOG_WARN, "the %s of %s: this node's part failed (trying "
                    "again): %s", kvi_topo_op_name(t.op), t.op_member, err);
    }
    /* A leave ends by the leaving node's hand: once its hints are handed
     * off to their targets (it keeps none when it is left). */
    int leave = t.op == KVI_TOPO_OP_LEAVE;
    if (leave && strcmp(t.op_member, self) != 0)
        pending++;
    uint64_t hints = leave && pending == 0 && m->hints_pending
                         ? m->hints_pending(m->stream_ctx) : 0;
    if (hints) {
        uint64_t now = kvi_monotonic_ms();
        if (!m->hints_said_ms || now - m->hints_said_ms >= 30000u) {
            m->hints_said_ms = now;
            kvi_log(m->log, KV_LOG_INFO, "the leave of %s waits for this node to hand off "
                    "its %llu hint(s) to their members (a member down holds it up: bring it "
                    "back, or abort the leave)", self, (unsigned long long)hints);
        }
        pending++;
    }
    if (rc == KV_OK && pending == 0 &&
        kvi_topo_service_change(m->topo, build_finish_when_done, NULL, NULL, err,
                                sizeof err) != KV_OK)
        kvi_log(m->log, KV_LOG_INFO, "the %s of %s is not over yet: %s",
                kvi_topo_op_name(t.op), t.op_member, err);
    kvi_topology_free(&t);
    return VERIFY_INTERVAL_MS;
}

/* etcd mode: the handle, and this member's lease on PREFIX/members/ID
 * (what etcd shows of who is alive; gossip and the failure detector still
 * decide where requests go). 1, or 0 with m->topo_refusal set. */
static int open_metadata(kvi_membership *m, const kvi_membership_config *cfg)
{
    kvi_etcd_config ec = {.url = cfg->metadata, .timeout_ms = m->request_timeout_ms,
                          .log = cfg->log};
    if (kvi_etcd_open(&m->etcd, &ec) != KV_OK) {
        snprintf(m->topo_refusal, sizeof m->topo_refusal, "--metadata: %s", kvi_error_last());
        return 0;
    }
    char key[KVI_TOPO_MAX_ID + 16], value[KVI_TOPO_MAX_ID + 2 * KVI_TOPO_MAX_ADDR + 64];
    snprintf(key, sizeof key, "members/%s", cfg->self_id);
    snprintf(value, sizeof value, "{\"nodeId\":\"%s\",\"address\":\"%s\",\"httpAddress\":\"%s\"}",
             cfg->self_id, cfg->self_addr, cfg->self_http ? cfg->self_http : "");
    if (kvi_etcd_session_start(m->etcd, key, value, strlen(value), 10) != KV_OK) {
        snprintf(m->topo_refusal, sizeof m->topo_refusal, "cannot hold a lease in %s: %s",
                 kvi_etcd_describe(m->etcd), kvi_error_last());
        return 0;
    }
    kvi_log(m->log, KV_LOG_INFO, "topology kept in %s", kvi_etcd_describe(m->etcd));
    return 1;
}

/* The topology service of a node in a cluster. A node that left refuses
 * to start (its data is no longer the cluster's); the first seed of a new
 * cluster forms its first record at once, alone. 1, or 0 with
 * m->topo_refusal set (or out of memory). */
static int open_topology(kvi_membership *m, const kvi_membership_config *cfg, int first_seed)
{
    if (cfg->metadata && !open_metadata(m, cfg))
        return 0;
    kvi_topo_service_config tc = {
        .self_id = cfg->self_id, .store = cfg->store, .creds = cfg->creds, .log = cfg->log,
        .loop = m->peers_loop, .request_timeout_ms = m->request_timeout_ms,
        .on_change = topology_changed, .on_change_ctx = m, .etcd = m->etcd,
    };
    if (kvi_topo_service_open(&m->topo, &tc) != KV_OK) {
        snprintf(m->topo_refusal, sizeof m->topo_refusal, "%s", kvi_error_last());
        return 0;
    }
    if (m->etcd) {
        m->watcher = (kvi_topo_etcd_watcher){.service = m->topo, .log = m->log, .etcd = m->etcd};
        if (kvi_topo_etcd_watch(&m->watcher) != KV_OK) {
            snprintf(m->topo_refusal, sizeof m->topo_refusal, "cannot watch the topology in "
                     "%s: %s", kvi_etcd_describe(m->etcd), kvi_error_last());
            return 0;
        }
    }
    kvi_topology t;
    kvi_topology_init(&t);
    if (kvi_topo_service_record(m->topo, &t) != KV_OK)
        return 0;
    const kvi_topo_member *self = kvi_topology_find(&t, cfg->self_id);
    int ok = 1;
    if (self && self->state == KVI_TOPO_LEFT) {
        snprintf(m->topo_refusal, sizeof m->topo_refusal,
                 "node %s left its cluster (topology epoch %llu): its data is no longer the "
                 "cluster's. To join again, start it on an empty data directory",
                 cfg->self_id, (unsigned long long)t.epoch);
        ok = 0;
    } else if (t.epoch && (t.replicas != m->replicas || t.vnodes != m->vnodes)) {
        snprintf(m->topo_refusal, sizeof m->topo_refusal,
                 "this node's cluster keeps %u replicas on %u vnodes per member; it was "
                 "started with %u and %u", t.replicas, t.vnodes, m->replicas, m->vnodes);
        ok = 0;
    } else if (t.epoch && m->replace && (!self || self->state != KVI_TOPO_REPLACING)) {
        kvi_log(m->log, KV_LOG_INFO, "this store already holds its cluster's topology (epoch "
                "%llu): starting as member %s, not replacing it", (unsigned long long)t.epoch,
                cfg->self_id);
        m->replace = 0;
    } else if (t.epoch == 0 && first_seed && !m->replace) {
        pthread_mutex_lock(&m->lock);
        form_first_record(m);
        pthread_mutex_unlock(&m->lock);
        atomic_store(&m->topo_changed, 0);
    }
    if (ok && m->gossip)
        kvi_gossip_set_epoch(m->gossip, kvi_topo_service_epoch(m->topo));
    kvi_topology_free(&t);
    return ok;
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
    size_t n_seeds = cfg->seeds ? cfg->n_seeds : 0;
    for (size_t i = 0; i < cfg->n_peers + n_seeds; i++) {
        const char *a = i < cfg->n_peers ? cfg->peers[i] : cfg->seeds[i - cfg->n_peers];
        kvi_addr parsed;
        int rc = kvi_addr_parse(&parsed, a);
        if (rc != KV_OK)
            return kvi_error(rc, "%s %zu: %s", i < cfg->n_peers ? "peer" : "seed",
                             (i < cfg->n_peers ? i : i - cfg->n_peers) + 1, kvi_error_last());
    }
    kvi_membership *m = calloc(1, sizeof *m);
    if (!m)
        return kvi_error(KV_ENOMEM, "out of memory starting membership");
    m->log = cfg->log;
    m->creds = cfg->creds;
    m->peer_latency = cfg->peer_latency;
    m->stream_gains = cfg->stream_gains;
    m->stream_ctx = cfg->stream_ctx;
    m->replace = cfg->replace;
    m->hints_pending = cfg->hints_pending;
    snprintf(m->self_id, sizeof m->self_id, "%s", cfg->self_id);
    m->replicas = replicas;
    m->vnodes = vnodes;
    m->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 500;
    m->request_timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms : 2000;
    m->has_seeds = n_seeds > 0;
    m->seeds = n_seeds ? calloc(n_seeds, sizeof *m->seeds) : NULL;
    for (size_t i = 0; m->seeds && i < n_seeds; i++)
        m->n_seeds += (m->seeds[i] = strdup(cfg->seeds[i])) != NULL;
    kvi_members_init(&m->list);
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->poke_lock, NULL);
    int ok = kvi_client_loop_new(&m->peers_loop) == KV_OK &&
             kvi_members_add(&m->list, cfg->self_id, cfg->self_addr, cfg->self_http, 0) == KV_OK;
    size_t configured = 0;
    for (size_t i = 0; ok && i < cfg->n_peers; i++) {
        if (kvi_members_find_addr(&m->list, cfg->peers[i]) >= 0)
            continue; /* ourselves, or listed twice */
        ok = kvi_members_add(&m->list, NULL, cfg->peers[i], NULL, 1) == KV_OK;
        configured++;
    }
    /* Members saved by an earlier run: taken before gossip starts, so that
     * they are gossiped with too (a restarted node whose seeds are down
     * still reaches the others). */
    m->store = cfg->store;
    m->list.items[0].verified = 1;
    size_t loaded = ok ? load_members(m) : 0;
    if (loaded && cfg->n_peers == 0 && n_seeds == 0)
        warn_remembered(m, loaded);
    /* Gossip runs with the peers, the seeds and the saved members as seeds:
     * it tells which members are up, and of the members nobody configured
     * here. */
    size_t n_gossip_seeds = cfg->n_peers + n_seeds + m->list.n;
    const char **seeds = calloc(n_gossip_seeds, sizeof *seeds);
    ok = ok && seeds;
    int seed_of_self = 0;
    for (size_t i = 0; ok && i < cfg->n_peers + n_seeds; i++) {
        seeds[i] = i < cfg->n_peers ? cfg->peers[i] : cfg->seeds[i - cfg->n_peers];
        seed_of_self |= i >= cfg->n_peers && strcmp(seeds[i], cfg->self_addr) == 0;
    }
    for (size_t i = 1; ok && i < m->list.n; i++)
        seeds[cfg->n_peers + n_seeds + i - 1] = m->list.items[i].addr;
    if (ok && (m->list.n > 1 || m->has_seeds)) {
        kvi_gossip_config gc = {
            .self_id = cfg->self_id, .self_addr = cfg->self_addr, .self_http = cfg->self_http,
            .generation = kvi_now_ms(), .seeds = seeds,
            .n_seeds = cfg->n_peers + n_seeds + m->list.n - 1,
            .timeout_ms = m->connect_timeout_ms * 2, .creds = cfg->creds, .log = cfg->log,
            .phi = {.acceptable_pause_ms = cfg->failure_pause_ms}, .loop = m->peers_loop,
        };
        if (kvi_gossip_start(&m->gossip, &gc) != KV_OK) {
            kvi_log(cfg->log, KV_LOG_ERROR, "cannot start gossip: %s", kvi_error_last());
            ok = 0;
        }
    }
    free(seeds);
    if (ok && m->gossip)
        ok = open_topology(m, cfg, seed_of_self && configured == 0 && loaded == 0);
    if (ok) {
        pthread_mutex_lock(&m->lock);
        /* A seed (its own address among the seeds) starts at once, alone
         * if need be: the first seed of a cluster has nobody to wait for,
         * and seeds listing each other must not wait for each other. */
        m->await_seed = m->has_seeds && configured == 0 && loaded == 0 && !seed_of_self;
        /* A replacing node has no ring until it holds the cluster's record,
         * which it asks its peers and seeds for. */
        m->await_seed |= m->replace;
        /* Alone, or every id known from an earlier run: serve at once. */
        rebuild_view(m);
        unlock_membership(m);
        ok = kvi_ticker_start(&m->discovery, discover, m) == 0;
        if (ok && m->gossip)
            ok = kvi_ticker_start(&m->sync, sync_gossip, m) == 0;
        if (ok && m->gossip) {
            pthread_mutex_lock(&m->poke_lock);
            m->sync_started = 1;
            pthread_mutex_unlock(&m->poke_lock);
        }
        if (ok && m->topo)
            ok = kvi_ticker_start(&m->duties, do_duties, m) == 0;
    }
    if (!ok) {
        char why[300];
        snprintf(why, sizeof why, "%s", m->topo_refusal[0] ? m->topo_refusal
                                                            : "out of memory starting membership");
        int rc = m->topo_refusal[0] ? KV_EINVAL : KV_ENOMEM;
        kvi_membership_stop(m);
        return kvi_error(rc, "%s", why);
    }
    *out = m;
    return KV_OK;
}

void kvi_membership_stop(kvi_membership *m)
{
    if (!m)
        return;
    atomic_store(&m->stopping, 1);
    kvi_ticker_stop(&m->duties);
    pthread_mutex_lock(&m->poke_lock);
    m->sync_started = 0;
    pthread_mutex_unlock(&m->poke_lock);
    kvi_ticker_stop(&m->sync);
    kvi_gossip_stop(m->gossip); /* announces the clean stop */
    kvi_ticker_stop(&m->discovery);
    kvi_etcd_close(m->etcd); /* its watch feeds the service: ended first */
    kvi_topo_service_close(m->topo); /* its proposals end first: they run on the loop */
    kvi_members_free(&m->list);
    for (size_t i = 0; i < m->n_seeds; i++)
        free(m->seeds[i]);
    free(m->seeds);
    kvi_view_unref(m->view); /* views still in use keep the loop running */
    kvi_client_loop_release(m->peers_loop);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->poke_lock);
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

int kvi_membership_topology(kvi_membership *m, const void *in, size_t len, kvi_buf *out)
{
    if (!m->topo)
        return kvi_error(KV_ENOTSUP, "this node is not in a cluster: no topology");
    return kvi_topo_service_handle(m->topo, in, len, out);
}

int kvi_membership_future_view(kvi_membership *m, const kvi_topology *t, kvi_view **out)
{
    *out = NULL;
    const char **ids = malloc((t->n ? t->n : 1) * sizeof *ids);
    const char **addrs = malloc((t->n ? t->n : 1) * sizeof *addrs);
    const char **https = malloc((t->n ? t->n : 1) * sizeof *https);
    int rc = ids && addrs && https ? KV_OK : kvi_error(KV_ENOMEM, "out of memory");
    size_t n = 0;
    int self = -1;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; rc == KV_OK && i < t->n; i++) {
        const kvi_topo_member *tm = &t->members[i];
        if (!kvi_topology_in_ring(t, tm, KVI_TOPO_FUTURE))
            continue;
        long at = kvi_members_find_id(&m->list, tm->id);
        ids[n] = tm->id;
        addrs[n] = at >= 0 ? m->list.items[at].addr : tm->addr;
        https[n] = at >= 0 ? m->list.items[at].http : (tm->http[0] ? tm->http : NULL);
        if (strcmp(tm->id, m->self_id) == 0)
            self = (int)n;
        n++;
    }
    if (rc == KV_OK && self < 0)
        rc = kvi_error(KV_EINVAL, "this node is not in the topology's future ring");
    if (rc == KV_OK) {
        kv_client_options co = KV_CLIENT_OPTIONS_INIT;
        co.connect_timeout_ms = m->connect_timeout_ms;
        co.request_timeout_ms = m->request_timeout_ms;
        kvi_view_config vc = {
            .ids = ids, .addrs = addrs, .https = https, .n = n, .self = self,
            .replicas = t->replicas, .vnodes = t->vnodes, .client_opts = &co,
            .creds = m->creds, .log = m->log, .loop = m->peers_loop, .epoch = t->epoch,
            .peer_latency = m->peer_latency,
        };
        rc = kvi_view_build(out, &vc);
    }
    pthread_mutex_unlock(&m->lock);
    free(ids);
    free(addrs);
    free(https);
    return rc;
}

int kvi_membership_joining(kvi_membership *m)
{
    if (!m || !m->topo)
        return 0;
    kvi_topology t;
    kvi_topology_init(&t);
    int joining = kvi_topo_service_record(m->topo, &t) == KV_OK && t.op == KVI_TOPO_OP_JOIN &&
                  strcmp(t.op_member, m->self_id) == 0;
    kvi_topology_free(&t);
    return joining;
}

void kvi_membership_learn_ring(kvi_membership *m, const char *addr)
{
    if (!m || !m->topo || !addr)
        return;
    uint64_t now = kvi_now_ms(), last = atomic_load(&m->ring_asked_ms);
    if (now < last + 100 || !atomic_compare_exchange_strong(&m->ring_asked_ms, &last, now))
        return;
    kvi_topo_service_fetch(m->topo, addr);
}

int kvi_membership_record(kvi_membership *m, kvi_topology *out)
{
    if (!m->topo)
        return kvi_error(KV_ENOTSUP, "this node is not in a cluster: no topology");
    return kvi_topo_service_record(m->topo, out);
}

uint64_t kvi_membership_epoch(kvi_membership *m)
{
    return m->topo ? kvi_topo_service_epoch(m->topo) : 0;
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
    size_t n = m->list.n;
    pthread_mutex_unlock(&m->lock);
    return n;
}

kvi_client_loop *kvi_membership_peers(kvi_membership *m)
{
    return m->peers_loop;
}

const atomic_int *kvi_membership_stopping(kvi_membership *m)
{
    return &m->stopping;
}

struct kvi_loop *kvi_membership_loop(kvi_membership *m)
{
    return kvi_client_loop_event_loop(m->peers_loop);
}

int kvi_membership_clustered(kvi_membership *m)
{
    pthread_mutex_lock(&m->lock);
    int clustered = m->has_seeds || m->list.n > 1;
    pthread_mutex_unlock(&m->lock);
    return clustered;
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
    kvi_topology topo;
    kvi_topology_init(&topo);
    if (m->topo && kvi_topo_service_record(m->topo, &topo) != KV_OK)
        kvi_topology_free(&topo);
    pthread_mutex_lock(&m->lock);
    double *primary = NULL, *replica = NULL;
    if (m->view) {
        /* Sized by the ring, which may hold fewer members than the list
         * (a member learned while a peer's id is still unknown). */
        size_t ring_n = kvi_ring_members(m->view->ring);
        primary = calloc(ring_n, sizeof *primary);
        replica = calloc(ring_n, sizeof *replica);
        if (primary && replica)
            kvi_ring_shares(m->view->ring, primary, replica);
    }
    raw(out, "{\"nodeId\":");
    json_string(out, m->list.items[0].id);
    /* "replicas" is how many copies a key has: N, or fewer while the ring
     * holds fewer members (a node alone keeps one). "replicationFactor" is
     * N itself, which readers of this description build their ring with;
     * older nodes sent only "replicas", as N. */
    size_t holders = m->view ? kvi_ring_members(m->view->ring) : m->list.n;
    snprintf(num, sizeof num,
             ",\"replicas\":%u,\"replicationFactor\":%u,\"vnodes\":%u,\"complete\":%s,"
             "\"members\":[",
             holders < m->replicas ? (unsigned)holders : m->replicas, m->replicas, m->vnodes,
             m->view ? "true" : "false");
    raw(out, num);
    for (size_t i = 0; i < m->list.n; i++) {
        const kvi_member *mb = &m->list.items[i];
        raw(out, i ? ",{\"nodeId\":" : "{\"nodeId\":");
        json_string(out, mb->id);
        if (topo.epoch && mb->id) {
            /* Its place in the topology: normal, joining, leaving,
             * replacing, left, or "none" (known, but not in the record).
             * Clients build their ring of the members normal, leaving and
             * replacing. */
            const kvi_topo_member *tm = kvi_topology_find(&topo, mb->id);
            raw(out, ",\"state\":");
            json_string(out, tm ? kvi_topo_state_name(tm->state) : "none");
        }
        raw(out, ",\"address\":");
        json_string(out, mb->addr);
        raw(out, ",\"httpAddress\":");
        json_string(out, mb->http);
        if (m->gossip && mb->id) {
            raw(out, ",\"status\":");
            json_string(out, kvi_gossip_status(m->gossip, mb->id));
            /* When the member's current run started (ms since the epoch):
             * a restart shows as a new generation. */
            uint64_t gen = kvi_gossip_generation(m->gossip, mb->id);
            if (gen) {
                snprintf(num, sizeof num, ",\"generation\":%llu", (unsigned long long)gen);
                raw(out, num);
            }
        }
        if (primary && replica) {
            /* The ring indexes members in the order they were given. */
            int r = kvi_ring_find(m->view->ring, mb->id ? mb->id : "");
            snprintf(num, sizeof num, ",\"primaryShare\":%.6f,\"replicaShare\":%.6f",
                     r >= 0 ? primary[r] : 0.0, r >= 0 ? replica[r] : 0.0);
            raw(out, num);
        }
        raw(out, "}");
    }
    raw(out, "]");
    if (topo.epoch) {
        /* viewEpoch: the record this node routes requests with (its view
         * follows a newer record within a moment). */
        snprintf(num, sizeof num, ",\"topology\":{\"epoch\":%llu,\"viewEpoch\":%llu,"
                 "\"operation\":", (unsigned long long)topo.epoch,
                 (unsigned long long)(m->view ? m->view->epoch : 0));
        raw(out, num);
        if (topo.op) {
            raw(out, "{\"kind\":");
            json_string(out, kvi_topo_op_name(topo.op));
            raw(out, ",\"member\":");
            json_string(out, topo.op_member);
            snprintf(num, sizeof num, ",\"sinceEpoch\":%llu}",
                     (unsigned long long)topo.op_epoch);
            raw(out, num);
        } else {
            raw(out, "null");
        }
        /* Where the record is agreed: null (the members, by Paxos), or
         * etcd and whether this member's lease is held there now. */
        raw(out, ",\"metadata\":");
        if (m->etcd) {
            raw(out, "{\"etcd\":");
            json_string(out, kvi_etcd_describe(m->etcd));
            raw(out, kvi_etcd_session_alive(m->etcd) ? ",\"leaseHeld\":true}"
                                                     : ",\"leaseHeld\":false}");
        } else {
            raw(out, "null");
        }
        raw(out, "}");
    }
    raw(out, "}");
    pthread_mutex_unlock(&m->lock);
    kvi_topology_free(&topo);
    free(primary);
    free(replica);
}

void kvi_membership_set_repaired(kvi_membership *m, uint64_t repaired_ms)
{
    if (m->gossip)
        kvi_gossip_set_repaired(m->gossip, repaired_ms);
}

uint64_t kvi_membership_repaired(kvi_membership *m, const char *node_id)
{
    return m->gossip ? kvi_gossip_repaired(m->gossip, node_id) : 0;
}

uint64_t kvi_membership_suspicions(kvi_membership *m)
{
    return m->gossip ? kvi_gossip_suspicions(m->gossip) : 0;
}
