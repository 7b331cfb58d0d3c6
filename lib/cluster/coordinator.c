/* cluster/coordinator.c - quorum reads and writes over a cluster view. */
#include "cluster/coordinator.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "format/batch.h"
#include "cluster/hints.h"
#include "cluster/quorum.h"
#include "cluster/paxos_acceptor.h"
#include "cluster/replica_store.h"
#include "cluster/serial.h"
#include "format/record.h"
#include "util/clock.h"
#include "util/error.h"
#include "format/value.h"

#define MAX_PREF 16u

/* The preference list of a key, as member indexes. */
size_t kvi_coord_homes(const kvi_view *v, const void *key, size_t key_len, uint32_t *out)
{
    const uint32_t *list;
    size_t n = kvi_ring_preference(v->ring, kvi_key_token(key, key_len), &list);
    if (n > MAX_PREF)
        n = MAX_PREF;
    memcpy(out, list, n * sizeof *out);
    return n;
}

static int is_self(const kvi_view *v, uint32_t member)
{
    return v->self >= 0 && (uint32_t)v->self == member;
}

/* A member that answered this recently is alive, whatever gossip says:
 * first-hand evidence beats hearsay. Under CPU pressure gossip news can lag
 * by seconds while the member keeps answering requests. */
#define ALIVE_EVIDENCE_MS 2000u

/* The failure detector's word on a member (never on this node itself),
 * overruled when the member itself answered us within ALIVE_EVIDENCE_MS. */
int kvi_coord_down(const kvi_coord_env *env, uint32_t member)
{
    if (!env->is_down || is_self(env->view, member) ||
        !env->is_down(env->is_down_ctx, env->view->members[member].id))
        return 0;
    uint64_t last = kvi_client_last_answer_ms(kvi_view_client(env->view, member));
    uint64_t now = kvi_monotonic_ms();
    return last == 0 || now - last > ALIVE_EVIDENCE_MS;
}

/* How long a coordinator waits for the replicas: the connections' own
 * request timeout. */
uint32_t kvi_coord_timeout_ms(const kvi_view *v)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->members[i].client)
            return kvi_client_timeout_ms(v->members[i].client);
    return 2000;
}

/* ------------------------------------------------------------- reading */

/* Every replica's answer to one read, and their merge. */
typedef struct gathered {
    size_t n;
    uint32_t pref[MAX_PREF];
    kvi_state states[MAX_PREF];
    kvi_buf holders[MAX_PREF];
    int status[MAX_PREF];   /* KV_OK, KV_ENOTFOUND, or why it did not answer */
    unsigned answered;
    kvi_state merged;
} gathered;

static void gathered_free(gathered *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < MAX_PREF; i++)
        kvi_buf_free(&g->holders[i]);
    free(g);
}

/* Takes one replica's answer to GET_STATE (or READ_STATE) into g. */
static int take_state(gathered *g, size_t i, int rc, const kvi_frame_header *h,
                      const unsigned char *body, uint64_t token)
{
    kvi_response resp;
    if (rc == KV_OK)
        rc = kvi_call_decode(&resp, h->opcode == KVI_OP_READ_STATE ? KVI_OP_READ_STATE
                                                                   : KVI_OP_GET_STATE, h, body);
    if (rc == KV_OK) {
        kvi_buf_reset(&g->holders[i]);
        kvi_buf_raw(&g->holders[i], resp.value.data, resp.value.len);
        if (g->holders[i].failed)
            rc = kvi_error(KV_ENOMEM, "out of memory copying a replica's state");
        else if (kvi_state_decode(&g->states[i], g->holders[i].data, g->holders[i].len,
                                  token) != KV_OK)
            rc = kvi_error(KV_EIO, "a replica sent a malformed state");
    }
    if (rc == KV_ENOTFOUND)
        kvi_state_init(&g->states[i]);
    return rc;
}

/* Asks the replicas of key for their state and merges the `required`
 * answers (KV_OK or KV_ENOTFOUND) it waits for.
 *
 * It asks `required` replicas first: this node's own if it is one (a local
 * read), then the others in preference order. Each replica that fails (it
 * refused the connection, or answered an error) is replaced by the next one
 * at once; and when the answers are slow (SPECULATIVE_MS) the remaining
 * replicas are all asked too, so a paused replica costs a read that delay,
 * not the whole timeout. Asking only R keeps a read at R messages instead of
 * N, which is most of the work of a read on a busy node. */
#define SPECULATIVE_MS 20u

static int gather(const kvi_coord_env *env, gathered *g, const void *key, size_t key_len,
                  unsigned required)
{
    kvi_view *v = env->view;
    uint64_t token = kvi_key_token(key, key_len);
    g->n = kvi_coord_homes(v, key, key_len, g->pref);
    int has_self = 0;
    for (size_t i = 0; i < g->n; i++)
        has_self |= is_self(v, g->pref[i]);
    if (has_self) {
        /* Our own replica first: a local read costs no message. */
        for (size_t i = 1; i < g->n; i++)
            if (is_self(v, g->pref[i])) {
                uint32_t self = g->pref[i];
                memmove(&g->pref[1], &g->pref[0], i * sizeof g->pref[0]);
                g->pref[0] = self;
            }
    } else if (g->n > 1) {
        /* Start at a rotating replica (see kvi_view.read_rotation). */
        size_t start = atomic_fetch_add(&v->read_rotation, 1) % g->n;
        uint32_t rotated[MAX_PREF];
        for (size_t i = 0; i < g->n; i++)
            rotated[i] = g->pref[(start + i) % g->n];
        memcpy(g->pref, rotated, g->n * sizeof rotated[0]);
    }
    /* Replicas the detector holds down go last: asked only when the others
     * are not enough. */
    if (env->is_down) {
        uint32_t up[MAX_PREF], dn[MAX_PREF];
        size_t nu = 0, nd = 0;
        for (size_t i = 0; i < g->n; i++) {
            if (kvi_coord_down(env, g->pref[i]))
                dn[nd++] = g->pref[i];
            else
                up[nu++] = g->pref[i];
        }
        memcpy(g->pref, up, nu * sizeof up[0]);
        memcpy(g->pref + nu, dn, nd * sizeof dn[0]);
    }
    kvi_call *calls[MAX_PREF] = {0};
    int asked[MAX_PREF] = {0};
    size_t next = 0;       /* the next replica to ask */
    unsigned started = 0;  /* replicas asked (the local one included) */
    kvi_fanout fo;
    kvi_fanout_init(&fo);
    /* Nodes read each other's replicas; a client reads them as a client
     * (net/auth.h). */
    kvi_request req = {.opcode = v->self >= 0 ? KVI_OP_GET_STATE : KVI_OP_READ_STATE,
                       .key = {key, key_len}};
    struct timespec deadline = kvi_deadline_after(kvi_coord_timeout_ms(v));
    struct timespec speculate = kvi_deadline_after(SPECULATIVE_MS);
    int speculated = 0;
    for (;;) {
        /* Keep `required` replicas in play: asked, and not failed. */
        pthread_mutex_lock(&fo.lock);
        unsigned failed = fo.done - fo.ok;
        pthread_mutex_unlock(&fo.lock);
        unsigned want = speculated ? (unsigned)g->n : required + failed;
        while (started < want && next < g->n) {
            size_t i = next++;
            asked[i] = 1;
            started++;
            if (is_self(v, g->pref[i])) {
                g->status[i] = kvi_replica_read(&g->states[i], &g->holders[i], env->local, key,
                                                key_len);
                if (g->status[i] == KV_ENOTFOUND)
                    kvi_state_init(&g->states[i]);
                kvi_fanout_local(&fo, g->status[i] == KV_OK || g->status[i] == KV_ENOTFOUND);
            } else {
                calls[i] = kvi_call_start(kvi_view_client(v, g->pref[i]), &fo, &req, 0, 0);
            }
        }
        int wait_speculative = !speculated && next < g->n;
        unsigned ok = kvi_fanout_wait(&fo, required, started,
                                      wait_speculative ? &speculate : &deadline);
        pthread_mutex_lock(&fo.lock);
        unsigned done = fo.done;
        pthread_mutex_unlock(&fo.lock);
        if (ok >= required)
            break;
        if (done < started) {
            /* Still waiting: the speculative delay passed, or the deadline. */
            if (!wait_speculative)
                break;
            speculated = 1;
            continue;
        }
        if (next >= g->n)
            break; /* everyone asked has answered or failed */
    }
    int enough = kvi_fanout_wait(&fo, required, 0, &deadline) >= required;
    int timed_out = 0;
    for (size_t i = 0; i < g->n; i++) {
        if (!asked[i]) {
            g->status[i] = KVI_ENOT_ASKED;
            continue;
        }
        if (is_self(v, g->pref[i]))
            continue;
        kvi_frame_header h;
        unsigned char *body = NULL;
        int rc = kvi_call_finish(calls[i], &h, &body);
        g->status[i] = take_state(g, i, rc, &h, body, token);
        /* Still on its way once R had answered: not a failure. */
        if (g->status[i] == KV_ETIMEDOUT && enough)
            g->status[i] = KVI_ENOT_WAITED;
        timed_out |= g->status[i] == KV_ETIMEDOUT;
        free(body);
    }
    kvi_fanout_destroy(&fo);

    kvi_state_init(&g->merged);
    g->answered = 0;
    for (size_t i = 0; i < g->n; i++)
        if (g->status[i] == KVI_ENOT_REPLICA)
            return kvi_error(KVI_ENOT_REPLICA, "a replica has another view of the ring");
    /* A replica that refused the key itself (over its key size limit: a
     * client checks only the ceilings) is no replica failing: the request
     * is what failed, and every replica would say so. */
    for (size_t i = 0; i < g->n; i++)
        if (g->status[i] == KV_ETOOBIG || g->status[i] == KV_EINVAL)
            return kvi_error(g->status[i], "replica %s refused the key: %s",
                             v->members[g->pref[i]].id, kvi_strerror(g->status[i]));
    int rc = KV_OK;
    for (size_t i = 0; i < g->n && rc == KV_OK; i++) {
        if (g->status[i] != KV_OK && g->status[i] != KV_ENOTFOUND)
            continue;
        g->answered++;
        rc = kvi_state_merge(&g->merged, &g->states[i]);
    }
    if (rc != KV_OK)
        return kvi_error(rc, "merging the replicas' answers: %s", kvi_error_last());
    if (g->answered < required)
        return kvi_error(timed_out ? KV_ETIMEDOUT : KV_EUNAVAILABLE,
                         "%u of %zu replicas answered, %u required", g->answered, g->n,
                         required);
    return KV_OK;
}

/* Sends the merged state to the replicas that answered with less. When
 * wait is set, returns once they have taken it (or the deadline passed). */
static void repair(const kvi_coord_env *env, gathered *g, const void *key, size_t key_len,
                   int wait, int *repaired)
{
    kvi_view *v = env->view;
    kvi_buf encoded = {0};
    kvi_call *calls[MAX_PREF] = {0};
    unsigned sent = 0;
    kvi_fanout fo;
    kvi_fanout_init(&fo);
    for (size_t i = 0; i < g->n; i++) {
        repaired[i] = 0;
        if ((g->status[i] != KV_OK && g->status[i] != KV_ENOTFOUND) ||
            kvi_state_equal(&g->states[i], &g->merged))
            continue;
        repaired[i] = 1;
        if (is_self(v, g->pref[i])) {
            if (kvi_replica_merge(NULL, NULL, env->local, key, key_len, &g->merged) != KV_OK)
                kvi_log(env->log, KV_LOG_WARN, "read repair of the local replica failed: %s",
                        kvi_error_last());
            continue;
        }
        if (encoded.len == 0)
            kvi_state_encode(&encoded, &g->merged, kvi_key_token(key, key_len));
        if (encoded.failed)
            break;
        kvi_request req = {.opcode = v->self >= 0 ? KVI_OP_REPLICATE : KVI_OP_REPAIR,
                           .key = {key, key_len}, .value = {encoded.data, encoded.len}};
        calls[i] = kvi_call_start(kvi_view_client(v, g->pref[i]), &fo, &req, 0, 1);
        sent++;
    }
    if (wait && sent) {
        struct timespec deadline = kvi_deadline_after(kvi_coord_timeout_ms(v));
        kvi_fanout_wait(&fo, sent, sent, &deadline);
    }
    /* Unfinished repairs carry on at the replicas; only their answers are
     * dropped. */
    for (size_t i = 0; i < g->n; i++) {
        if (!calls[i])
            continue;
        kvi_frame_header h;
        unsigned char *body = NULL;
        kvi_call_finish(calls[i], &h, &body);
        free(body);
    }
    kvi_fanout_destroy(&fo);
    kvi_buf_free(&encoded);
}

static void fill_report(kvi_read_report *report, const kvi_view *v, const gathered *g,
                        unsigned required, const int *repaired)
{
    if (!report)
        return;
    report->n = g->n;
    report->required = required;
    for (size_t i = 0; i < g->n; i++) {
        kvi_replica_answer *a = &report->answers[i];
        snprintf(a->node, sizeof a->node, "%s", v->members[g->pref[i]].id);
        a->status = g->status[i];
        int has = g->status[i] == KV_OK;
        a->version = has ? kvi_state_version(&g->states[i]) : 0;
        a->siblings = has ? (unsigned)g->states[i].n : 0;
        a->repaired = repaired ? repaired[i] : 0;
    }
}

int kvi_coord_read(const kvi_coord_env *env, kv_value **out, const void *key, size_t key_len,
                   kv_consistency consistency, unsigned r, int siblings,
                   kvi_read_report *report)
{
    *out = NULL;
    kvi_view *v = env->view;
    if (consistency == KV_CONSISTENCY_SERIAL) {
        if (v->self < 0 || !env->local)
            return kvi_error(KV_EINVAL, "a SERIAL read is coordinated by a node (send it as a "
                                        "GET request)");
        kvi_serial_request q = {.op = KVI_SERIAL_GET, .key = key, .key_len = key_len,
                                .all_siblings = siblings};
        return kvi_serial_run(env, &q, out, NULL);
    }
    uint32_t pref[MAX_PREF];
    size_t n = kvi_coord_homes(v, key, key_len, pref);
    unsigned required;
    int rc = kvi_quorum_required(&required, consistency, r, (unsigned)n);
    if (rc != KV_OK)
        return rc;
    gathered *g = calloc(1, sizeof *g);
    if (!g)
        return kvi_error(KV_ENOMEM, "out of memory reading from the replicas");
    int repaired[MAX_PREF] = {0};
    rc = gather(env, g, key, key_len, required);
    if (rc == KV_OK)
        repair(env, g, key, key_len, required > 1, repaired);
    fill_report(report, v, g, required, repaired);
    if (rc == KV_OK) {
        rc = kvi_value_from_state(out, &g->merged, kvi_now_ms(), siblings ? 0 : 1);
        if (rc == KV_ENOMEM)
            rc = kvi_error(KV_ENOMEM, "out of memory copying a value");
        else if (rc == KV_ENOTFOUND)
            rc = kvi_error(KV_ENOTFOUND, "key not found");
    }
    gathered_free(g);
    return rc;
}

/* ------------------------------------------------------------- writing */

/* Says whether member can be reached now: connected, or connectable. */
static int reachable(const kvi_coord_env *env, uint32_t member)
{
    const kvi_view *v = env->view;
    if (is_self(v, member))
        return 1;
    return !kvi_coord_down(env, member) && kvi_client_connect(kvi_view_client(v, member)) == KV_OK;
}

/* Where a write's state goes, per home replica (the key's preference
 * list): to the home itself, to a stand-in that keeps it as a hint (sloppy
 * quorum), or nowhere for now (a hint kept by the coordinator, not counted
 * toward W). */
#define NOWHERE UINT32_MAX

typedef struct write_plan {
    size_t n;                  /* home replicas */
    uint32_t home[MAX_PREF];
    uint32_t via[MAX_PREF];    /* the home, its stand-in, or NOWHERE */
    unsigned live;             /* homes with a `via` */
} write_plan;

/* Plans a write. Homes that are held down or cannot be connected to get
 * the next healthy members clockwise past the preference list as
 * stand-ins, unless home_only. This node, when it is not a home, is the
 * first stand-in (it coordinates because no home could). */
static void plan_write(const kvi_coord_env *env, const uint32_t *pref, size_t n,
                       const void *key, size_t key_len, int home_only, write_plan *p)
{
    const kvi_view *v = env->view;
    p->n = n;
    p->live = 0;
    memcpy(p->home, pref, n * sizeof *pref);
    int any_missing = 0;
    for (size_t i = 0; i < n; i++) {
        p->via[i] = reachable(env, pref[i]) ? pref[i] : NOWHERE;
        p->live += p->via[i] != NOWHERE;
        any_missing |= p->via[i] == NOWHERE;
    }
    if (home_only || !any_missing)
        return;
    uint32_t walk[KVI_RING_MAX_MEMBERS];
    size_t w = kvi_ring_walk(v->ring, kvi_key_token(key, key_len), walk, KVI_RING_MAX_MEMBERS);
    /* Candidates: this node first when it is not a home, then the walk. */
    uint32_t cand[KVI_RING_MAX_MEMBERS + 1];
    size_t nc = 0;
    int self_home = 0;
    for (size_t i = 0; i < n; i++)
        self_home |= is_self(v, pref[i]);
    if (v->self >= 0 && !self_home)
        cand[nc++] = (uint32_t)v->self;
    for (size_t i = n; i < w; i++)
        if (!is_self(v, walk[i]))
            cand[nc++] = walk[i];
    size_t next = 0;
    for (size_t i = 0; i < n; i++) {
        if (p->via[i] != NOWHERE)
            continue;
        while (next < nc && !reachable(env, cand[next]))
            next++;
        if (next == nc)
            break;
        p->via[i] = cand[next++];
        p->live++;
    }
}

/* A hint for `target` that a coordinator keeps itself: a write the target
 * never took (it was down, refused it, or failed while the coordinator
 * had stopped waiting). Runs as a call's after-function (kvi_call_set_after),
 * possibly on a connection's reader thread. */
typedef struct hint_job {
    kvi_hints *hints;
    const kvi_logger *log;
    uint64_t created_ms;
    char target[KVI_DVV_MAX_ID + 1];
    size_t key_len, state_len;
    unsigned char data[];      /* key, then state */
} hint_job;

static hint_job *hint_job_new(const kvi_coord_env *env, const char *target, const void *key,
                              size_t key_len, const kvi_buf *state)
{
    if (!env->hints)
        return NULL;
    hint_job *j = malloc(sizeof *j + key_len + state->len);
    if (!j) {
        kvi_log(env->log, KV_LOG_ERROR, "out of memory keeping a hint for %s", target);
        return NULL;
    }
    j->hints = env->hints;
    j->log = env->log;
    j->created_ms = kvi_now_ms();
    snprintf(j->target, sizeof j->target, "%s", target);
    j->key_len = key_len;
    j->state_len = state->len;
    memcpy(j->data, key, key_len);
    memcpy(j->data + key_len, state->data, state->len);
    return j;
}

static void hint_job_run(void *ctx, int delivered)
{
    hint_job *j = ctx;
    if (!j)
        return;
    if (!delivered &&
        kvi_hints_put(j->hints, j->target, j->created_ms, j->data, j->key_len,
                      j->data + j->key_len, j->state_len) != KV_OK)
        kvi_log(j->log, KV_LOG_ERROR, "cannot keep a hint for %s: %s", j->target,
                kvi_error_last());
    free(j);
}

/* Sends the write to a node: its first home, or, sloppy, any node that
 * can coordinate it. */
static int forward_to(const kvi_coord_env *env, const kvi_coord_write *w, uint32_t member,
                      uint64_t *out_version, int *answered)
{
    kvi_view *v = env->view;
    uint8_t opcode = w->kind == KVI_WRITE_PUT ? KVI_OP_PUT
                   : w->kind == KVI_WRITE_DELETE ? KVI_OP_DELETE : KVI_OP_CAS;
    kvi_request req = {
        .opcode = opcode, .consistency = (uint8_t)w->consistency, .quorum = (uint8_t)w->w,
        .ttl_s = w->ttl_s, .expected_version = w->expected_version,
        .key = {w->key, w->key_len}, .value = {w->value, w->value_len},
        .context = {w->context, w->context_len},
    };
    uint16_t flags = (uint16_t)((w->siblings ? KVI_FRAME_FLAG_SIBLINGS : 0) |
                                (w->home_only ? KVI_FRAME_FLAG_HOME_ONLY : 0) |
                                (v->self >= 0 ? KVI_FRAME_FLAG_FORWARDED : 0));
    kvi_fanout fo;
    kvi_fanout_init(&fo);
    kvi_call *call = kvi_call_start(kvi_view_client(v, member), &fo, &req, flags, 1);
    /* A node forwarding gives the coordinator twice the internode timeout
     * (it waits for its own replicas first). A client waits its own
     * request timeout: the user's bound on a call. */
    struct timespec deadline = kvi_deadline_after((v->self >= 0 ? 2u : 1u) * kvi_coord_timeout_ms(v));
    kvi_fanout_wait(&fo, 1, 1, &deadline);
    kvi_frame_header h;
    unsigned char *body = NULL;
    int rc = kvi_call_finish(call, &h, &body);
    kvi_fanout_destroy(&fo);
    *answered = rc == KV_OK;
    if (rc == KV_OK) {
        kvi_response resp;
        rc = kvi_call_decode(&resp, opcode, &h, body);
        if ((rc == KV_OK || rc == KV_ECONFLICT) && out_version)
            *out_version = resp.version;
    }
    free(body);
    return rc;
}

/* A node that is not a home of the key (or a client) sends the write to
 * the first home that takes it. Homes held down go last, and are skipped
 * altogether under sloppy quorum, where a stand-in takes their place. A
 * client with no home left sends it to a stand-in, which coordinates it.
 * Returns KV_EUNAVAILABLE when nobody applied it. */
static int forward(const kvi_coord_env *env, const kvi_coord_write *w, const uint32_t *pref,
                   size_t n, uint64_t *out_version)
{
    kvi_view *v = env->view;
    uint32_t order[KVI_RING_MAX_MEMBERS];
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < n; i++)
            if ((kvi_coord_down(env, pref[i]) != 0) == pass && (pass == 0 || w->home_only))
                order[k++] = pref[i];
    if (!w->home_only && v->self < 0) {
        /* A client: stand-ins next, in ring order. */
        uint32_t walk[KVI_RING_MAX_MEMBERS];
        size_t nw = kvi_ring_walk(v->ring, kvi_key_token(w->key, w->key_len), walk,
                                  KVI_RING_MAX_MEMBERS);
        for (size_t i = n; i < nw; i++)
            if (!kvi_coord_down(env, walk[i]))
                order[k++] = walk[i];
    }
    int rc = kvi_error(KV_EUNAVAILABLE, "no replica of this key is reachable");
    /* The first node that answered "unavailable" said why (too few
     * replicas reachable from there, not applied): that is the answer to
     * give, not the connection error of a node tried after it. */
    char why[300] = "";
    for (size_t i = 0; i < k; i++) {
        int answered = 0;
        rc = forward_to(env, w, order[i], out_version, &answered);
        if (rc != KV_EUNAVAILABLE)
            return rc; /* done, or it may have applied: another could apply it twice */
        if (answered && !why[0])
            snprintf(why, sizeof why, "%s: %s", v->members[order[i]].id, kvi_error_last());
    }
    if (why[0])
        return kvi_error(KV_EUNAVAILABLE, "%s", why);
    return rc;
}

/* The replication of one coordinated write, started from inside it. */
typedef struct replication {
    const kvi_coord_env *env;
    const kvi_coord_write *w;
    const write_plan *plan;
    kvi_fanout fo;
    kvi_buf encoded;
    kvi_call *calls[MAX_PREF];
    int started;
} replication;

/* kvi_replica_write_args.on_state: sends the new state to each home
 * (REPLICATE) or its stand-in (HINT), without waiting. A call that fails,
 * even after the coordinator stopped waiting for it, leaves a hint here. */
static void start_replication(void *ctx, const kvi_state *state)
{
    replication *rep = ctx;
    const kvi_view *v = rep->env->view;
    const write_plan *p = rep->plan;
    kvi_state_encode(&rep->encoded, state, kvi_key_token(rep->w->key, rep->w->key_len));
    if (rep->encoded.failed)
        return;
    for (size_t i = 0; i < p->n; i++) {
        uint32_t via = p->via[i];
        if (via == NOWHERE || is_self(v, via))
            continue; /* hinted after the local write, or the local write itself */
        const char *home_id = v->members[p->home[i]].id;
        kvi_request req = {.opcode = via == p->home[i] ? KVI_OP_REPLICATE : KVI_OP_HINT,
                           .key = {rep->w->key, rep->w->key_len},
                           .value = {rep->encoded.data, rep->encoded.len},
                           .context = {(const unsigned char *)home_id, strlen(home_id)}};
        rep->calls[i] = kvi_call_start(kvi_view_client(v, via), &rep->fo, &req, 0, 1);
        kvi_call_set_after(rep->calls[i], hint_job_run,
                           hint_job_new(rep->env, home_id, rep->w->key, rep->w->key_len,
                                        &rep->encoded));
    }
    rep->started = 1;
}

/* Keeps hints here for the homes the plan found no place for, and for the
 * home this node stands in for. Called after the local write succeeded. */
static void keep_local_hints(const kvi_coord_env *env, const kvi_coord_write *w,
                             const write_plan *p, const kvi_buf *encoded, uint64_t *sloppy)
{
    const kvi_view *v = env->view;
    for (size_t i = 0; i < p->n; i++) {
        if (is_self(v, p->home[i]) || (p->via[i] != NOWHERE && !is_self(v, p->via[i])))
            continue;
        if (p->via[i] != NOWHERE)
            (*sloppy)++;
        hint_job_run(hint_job_new(env, v->members[p->home[i]].id, w->key, w->key_len,
                                  encoded), 0);
    }
}

/* An absolute expiry ttl_s from now, saturating rather than wrapping into
 * the past (the validation layer keeps TTLs far below this). */
static uint64_t expiry_after(uint64_t now_ms, uint64_t ttl_s)
{
    if (ttl_s > (UINT64_MAX - now_ms) / 1000u)
        return UINT64_MAX;
    return now_ms + ttl_s * 1000u;
}

/* A write run by per-key Paxos on this node (SERIAL). */
static int serial_write(const kvi_coord_env *env, const kvi_coord_write *w,
                        uint64_t *out_version)
{
    kvi_serial_request q = {
        .op = w->kind == KVI_WRITE_PUT ? KVI_SERIAL_PUT
            : w->kind == KVI_WRITE_DELETE ? KVI_SERIAL_DELETE : KVI_SERIAL_CAS,
        .key = w->key, .key_len = w->key_len, .value = w->value, .value_len = w->value_len,
        .ttl_s = w->ttl_s, .expected_version = w->expected_version,
    };
    return kvi_serial_run(env, &q, NULL, out_version);
}

/* CAS is SERIAL unless the caller asked for another level: a CAS that two
 * coordinators can both win is no CAS (issue 11). */
static int wants_serial(const kvi_coord_write *w)
{
    return w->consistency == KV_CONSISTENCY_SERIAL ||
           (w->kind == KVI_WRITE_CAS && w->consistency == KV_CONSISTENCY_DEFAULT);
}

int kvi_coord_write_run(const kvi_coord_env *env, const kvi_coord_write *w,
                        uint64_t *out_version)
{
    kvi_view *v = env->view;
    /* Any node can propose (it need not be a home); a client hands SERIAL
     * writes to a node like any other write. */
    if (v->self >= 0 && env->local && wants_serial(w))
        return serial_write(env, w, out_version);
    uint32_t pref[MAX_PREF];
    size_t n = kvi_coord_homes(v, w->key, w->key_len, pref);
    unsigned required;
    int rc = kvi_quorum_required(&required, w->consistency, w->w, (unsigned)n);
    if (rc != KV_OK)
        return rc;
    int self_home = 0;
    for (size_t i = 0; i < n; i++)
        self_home |= is_self(v, pref[i]);
    /* A client, or a node that is not a home, hands the write to a home.
     * A node coordinates it itself only when forwarded to (never forward
     * twice), or when no home would take it and stand-ins may. */
    if (!self_home && !w->forwarded) {
        rc = forward(env, w, pref, n, out_version);
        if (rc != KV_EUNAVAILABLE || v->self < 0 || w->home_only || !env->local)
            return rc;
    }
    if (!self_home && (w->home_only || !env->local))
        return kvi_error(KV_EUNAVAILABLE, "this node is not a replica of the key; the "
                                          "nodes disagree about the ring");
    /* A key that has seen SERIAL writes keeps its versions in Paxos order:
     * a write at another level to it goes through Paxos too (the level's W
     * becomes a majority of the homes), so it can never fork the versions
     * a SERIAL CAS compares. */
    if (self_home && env->local && v->self >= 0) {
        int has = kvi_paxos_has_record(env->local, w->key, w->key_len);
        if (has < 0)
            return has;
        if (has)
            return serial_write(env, w, out_version);
    }

    /* Too few homes or stand-ins reachable: refuse before applying
     * anything, so the answer can honestly be "not applied" (as
     * Cassandra's Unavailable). */
    write_plan plan;
    plan_write(env, pref, n, w->key, w->key_len, w->home_only, &plan);
    if (plan.live < required)
        return kvi_error(KV_EUNAVAILABLE, "%u of %zu replicas reachable%s, %u required; the "
                                          "write was not applied", plan.live, n,
                         w->home_only ? " (home replicas only)" : " with stand-ins",
                         required);

    kvi_vv *ctx = NULL;
    if (w->context_len) {
        ctx = malloc(sizeof *ctx);
        kvi_reader rd = kvi_reader_init(w->context, w->context_len);
        if (!ctx)
            return kvi_error(KV_ENOMEM, "out of memory reading the context");
        if (kvi_vv_decode(ctx, &rd) != 0 || kvi_reader_done(&rd) != 0) {
            free(ctx);
            return kvi_error(KV_EINVAL, "the context is malformed (pass back the bytes "
                                        "kv_value_context returned)");
        }
    }
    gathered *read = NULL;
    if (w->kind == KVI_WRITE_CAS) {
        /* Compare against a quorum read, not only this replica. */
        unsigned q;
        kvi_quorum_required(&q, KV_CONSISTENCY_QUORUM, 0, (unsigned)n);
        read = calloc(1, sizeof *read);
        rc = read ? gather(env, read, w->key, w->key_len, q)
                  : kvi_error(KV_ENOMEM, "out of memory reading for a CAS");
        if (rc != KV_OK) {
            gathered_free(read);
            free(ctx);
            return rc;
        }
    }

    kvi_state *st = malloc(sizeof *st);
    kvi_buf holder = {0};
    uint64_t now = kvi_now_ms();
    kvi_sibling sib = {
        .tombstone = w->kind == KVI_WRITE_DELETE,
        .expiry_ms = w->kind != KVI_WRITE_DELETE && w->ttl_s ? expiry_after(now, w->ttl_s) : 0,
        .write_ms = now,
        .value = w->kind == KVI_WRITE_DELETE ? NULL : w->value,
        .value_len = w->kind == KVI_WRITE_DELETE ? 0 : w->value_len,
    };
    kvi_replica_write_args args = {
        .node = v->members[v->self].id,
        .ctx = ctx,
        .supersede_held = !w->siblings || w->kind == KVI_WRITE_CAS,
        .merge_first = read ? &read->merged : NULL,
        .check_version = w->kind == KVI_WRITE_CAS,
        .expected_version = w->expected_version,
    };
    /* The replication starts from inside the write, once the new state is
     * known and before it is synced here, so the local fsync and the
     * replicas' round trips overlap. */
    replication rep = {.env = env, .w = w, .plan = &plan};
    kvi_fanout_init(&rep.fo);
    args.on_state = start_replication;
    args.on_state_ctx = &rep;
    uint64_t current = 0;
    rc = st ? kvi_replica_coordinate(st, &holder, env->local, w->key, w->key_len, &args, &sib,
                                     &current)
            : kvi_error(KV_ENOMEM, "out of memory writing");
    free(ctx);
    gathered_free(read);
    if (rc == KV_ECONFLICT && out_version)
        *out_version = current;
    int local_ok = rc == KV_OK;
    char local_error[256] = "";
    if (!local_ok)
        snprintf(local_error, sizeof local_error, "%s", kvi_error_last());
    /* This node's own write counts when it is a home or a stand-in. */
    int self_counts = self_home;
    for (size_t i = 0; i < n; i++)
        self_counts |= plan.via[i] != NOWHERE && is_self(v, plan.via[i]);
    uint64_t sloppy = 0;
    if (local_ok && rep.started)
        keep_local_hints(env, w, &plan, &rep.encoded, &sloppy);
    if (rep.started) {
        kvi_fanout_local(&rep.fo, local_ok && self_counts);
        struct timespec deadline = kvi_deadline_after(kvi_coord_timeout_ms(v));
        if (local_ok)
            kvi_fanout_wait(&rep.fo, required, plan.live, &deadline);
    }
    unsigned acked = local_ok && self_counts, unknown = 0;
    for (size_t i = 0; i < n; i++) {
        if (!rep.calls[i])
            continue;
        int hinted = plan.via[i] != plan.home[i];
        kvi_frame_header h;
        unsigned char *body = NULL;
        int crc = kvi_call_finish(rep.calls[i], &h, &body);
        if (crc == KV_OK) {
            kvi_response resp;
            crc = kvi_call_decode(&resp, hinted ? KVI_OP_HINT : KVI_OP_REPLICATE, &h, body);
            if (crc != KV_OK)
                kvi_log(env->log, KV_LOG_WARN, "%s %s refused a write: %s",
                        hinted ? "stand-in" : "replica", v->members[plan.via[i]].id,
                        kvi_error_last());
        }
        acked += crc == KV_OK;
        sloppy += crc == KV_OK && hinted;
        /* Given up on (the answer was not needed) or lost: may have applied. */
        unknown += crc == KV_EUNKNOWN_OUTCOME || crc == KV_ETIMEDOUT;
        free(body);
    }
    kvi_fanout_destroy(&rep.fo);
    kvi_buf_free(&rep.encoded);
    kvi_buf_free(&holder);
    free(st);
    if (sloppy && env->sloppy_writes)
        atomic_fetch_add(env->sloppy_writes, 1);
    if (!local_ok) {
        /* Refused here before anything was sent (a conflict, the sibling
         * limit): the error as it is. Failed here after the state went out:
         * the replicas may hold it. */
        if (!rep.started || rc == KV_ENOMEM)
            return kvi_error(rc, "%s", local_error);
        if (acked + unknown == 0)
            return kvi_error(rc, "%s", local_error);
        return kvi_error(KV_EUNKNOWN_OUTCOME, "this replica failed to store the write (%s) "
                                              "after sending it to the others; it may have "
                                              "been applied", local_error);
    }
    if (out_version)
        *out_version = sib.version;
    return kvi_quorum_write_outcome(acked, unknown, required);
}

/* -------------------------------------------------------------- batches */

int kvi_coord_batch(const kvi_coord_env *env, kv_batch *b, const kv_write_options *wo,
                    const kv_read_options *ro, int siblings)
{
    kv_write_options wdef = KV_WRITE_OPTIONS_INIT;
    kv_read_options rdef = KV_READ_OPTIONS_INIT;
    if (!wo)
        wo = &wdef;
    if (!ro)
        ro = &rdef;
    kvi_batch_reset_results(b);
    b->executed = 1;
    /* In a cluster each operation stands alone, as DynamoDB's
     * BatchWriteItem: there is no atomicity across keys. */
    for (size_t i = 0; i < b->count; i++) {
        kvi_batch_op *op = &b->ops[i];
        if (op->kind == KV_BATCH_GET) {
            op->status = kvi_coord_read(env, &op->result, op->key, op->key_len,
                                        ro->consistency, ro->r, siblings, NULL);
            op->version = op->result ? kvi_value_version(op->result) : 0;
            continue;
        }
        kvi_coord_write w = {
            .kind = op->kind == KV_BATCH_PUT ? KVI_WRITE_PUT : KVI_WRITE_DELETE,
            .key = op->key, .key_len = op->key_len,
            .value = op->value, .value_len = op->kind == KV_BATCH_PUT ? op->value_len : 0,
            .ttl_s = op->ttl_s, .consistency = wo->consistency, .w = wo->w,
            .siblings = siblings, .home_only = wo->home_only,
        };
        op->status = kvi_coord_write_run(env, &w, &op->version);
    }
    return KV_OK;
}
