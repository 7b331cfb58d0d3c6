/* cluster/topology_service.c - the record a node holds, its acceptor side,
 * and its proposals as message-driven state machines on the peers loop. */
#include "cluster/topology_service.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kv/kv.h>
#include "cluster/topology.h"
#include "cluster/topology_etcd.h"
#include "format/frame.h"
#include "net/loop.h"
#include "storage/store.h"
#include "util/clock.h"
#include "util/error.h"

/* The record and the acceptor state in the store's meta family. */
#define RECORD_META "kv.topology"
#define ACCEPTOR_META "kv.topology.paxos"
/* Connections to other members for topology messages, kept for the
 * service's life: one per address a proposal has talked to. */
#define MAX_CLIENTS 64u
#define MAX_CHANGE_ROUNDS 8

struct kvi_topo_service {
    char self[KVI_TOPO_MAX_ID + 1];
    kvi_store *store;
    const kvi_credentials *creds;
    const kvi_logger *log;
    kvi_client_loop *loop;
    uint32_t timeout_ms;
    kvi_topo_changed_fn on_change;
    void *on_change_ctx;
    struct kvi_etcd *etcd; /* etcd mode; NULL: gossip mode */
    /* lock guards record, acc, clients and random. */
    pthread_mutex_t lock;
    kvi_topology record;
    kvi_tpx_acceptor acc;
    struct {
        char addr[KVI_TOPO_MAX_ADDR + 1];
        kvi_client *client;
    } clients[MAX_CLIENTS];
    size_t n_clients;
    uint64_t random;
    /* Proposals and fetches in flight, which close waits for. */
    pthread_mutex_t live_lock;
    pthread_cond_t idle;
    unsigned live;
};

/* ------------------------------------------------------------- keeping */

static int keep_record(kvi_topo_service *s, const kvi_topology *t)
{
    if (!s->store)
        return KV_OK;
    kvi_buf b = {0};
    kvi_topology_encode(&b, t);
    int rc = b.failed ? KV_ENOMEM : kvi_store_meta_put(s->store, RECORD_META, b.data, b.len);
    kvi_buf_free(&b);
    return rc;
}

static int keep_acceptor(kvi_topo_service *s, const kvi_tpx_acceptor *a)
{
    if (!s->store)
        return KV_OK;
    kvi_buf b = {0};
    kvi_tpx_acceptor_encode(&b, a);
    int rc = b.failed ? KV_ENOMEM : kvi_store_meta_put(s->store, ACCEPTOR_META, b.data, b.len);
    kvi_buf_free(&b);
    return rc;
}

static int load(kvi_topo_service *s)
{
    if (!s->store)
        return KV_OK;
    char *text = NULL;
    size_t len = 0;
    int rc = kvi_store_meta_get(s->store, RECORD_META, &text, &len);
    if (rc == KV_OK) {
        rc = kvi_topology_decode(&s->record, text, len);
        free(text);
        if (rc != KV_OK)
            return kvi_error(KV_ECORRUPT, "the topology record kept in the store does not "
                             "decode");
    } else if (rc != KV_ENOTFOUND) {
        return rc;
    }
    rc = kvi_store_meta_get(s->store, ACCEPTOR_META, &text, &len);
    if (rc == KV_OK) {
        rc = kvi_tpx_acceptor_decode(&s->acc, text, len);
        free(text);
        if (rc != KV_OK)
            return kvi_error(KV_ECORRUPT, "the topology acceptor state kept in the store "
                             "does not decode");
    } else if (rc != KV_ENOTFOUND) {
        return rc;
    }
    return KV_OK;
}

int kvi_topo_service_open(kvi_topo_service **out, const kvi_topo_service_config *cfg)
{
    *out = NULL;
    if (!cfg->self_id || !cfg->self_id[0] || strlen(cfg->self_id) > KVI_TOPO_MAX_ID)
        return kvi_error(KV_EINVAL, "the topology needs this node's id");
    kvi_topo_service *s = calloc(1, sizeof *s);
    if (!s)
        return kvi_error(KV_ENOMEM, "out of memory");
    snprintf(s->self, sizeof s->self, "%s", cfg->self_id);
    s->store = cfg->store;
    s->creds = cfg->creds;
    s->log = cfg->log;
    s->loop = cfg->loop;
    s->timeout_ms = cfg->request_timeout_ms ? cfg->request_timeout_ms : 2000;
    s->on_change = cfg->on_change;
    s->on_change_ctx = cfg->on_change_ctx;
    s->etcd = cfg->etcd;
    s->random = kvi_now_ms() ^ (uintptr_t)s;
    kvi_topology_init(&s->record);
    kvi_tpx_acceptor_init(&s->acc);
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->live_lock, NULL);
    pthread_cond_init(&s->idle, NULL);
    int rc = load(s);
    if (rc != KV_OK) {
        kvi_topo_service_close(s);
        return rc;
    }
    if (s->record.epoch)
        kvi_log(s->log, KV_LOG_INFO, "topology: epoch %llu, %zu member(s)%s%s",
                (unsigned long long)s->record.epoch, s->record.n,
                s->record.op ? ", in progress: " : "",
                s->record.op ? kvi_topo_op_name(s->record.op) : "");
    *out = s;
    return KV_OK;
}

void kvi_topo_service_close(kvi_topo_service *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->live_lock);
    while (s->live)
        pthread_cond_wait(&s->idle, &s->live_lock);
    pthread_mutex_unlock(&s->live_lock);
    for (size_t i = 0; i < s->n_clients; i++)
        kvi_client_close(s->clients[i].client);
    kvi_topology_free(&s->record);
    kvi_tpx_acceptor_free(&s->acc);
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->live_lock);
    pthread_cond_destroy(&s->idle);
    free(s);
}

static void live_add(kvi_topo_service *s)
{
    pthread_mutex_lock(&s->live_lock);
    s->live++;
    pthread_mutex_unlock(&s->live_lock);
}

static void live_drop(kvi_topo_service *s)
{
    pthread_mutex_lock(&s->live_lock);
    if (--s->live == 0)
        pthread_cond_broadcast(&s->idle);
    pthread_mutex_unlock(&s->live_lock);
}

int kvi_topo_service_record(kvi_topo_service *s, kvi_topology *out)
{
    pthread_mutex_lock(&s->lock);
    int rc = kvi_topology_copy(out, &s->record);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

uint64_t kvi_topo_service_epoch(kvi_topo_service *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t e = s->record.epoch;
    pthread_mutex_unlock(&s->lock);
    return e;
}

/* Tells on_change of the record, with no lock held. */
static void changed(kvi_topo_service *s, const kvi_topology *t)
{
    if (t->op)
        kvi_log(s->log, KV_LOG_INFO, "topology: now epoch %llu (%s of %s in progress)",
                (unsigned long long)t->epoch, kvi_topo_op_name(t->op), t->op_member);
    else
        kvi_log(s->log, KV_LOG_INFO, "topology: now epoch %llu", (unsigned long long)t->epoch);
    if (s->on_change)
        s->on_change(s->on_change_ctx, t);
}

int kvi_topo_service_adopt(kvi_topo_service *s, const kvi_topology *rec)
{
    if (kvi_topology_invalid(rec))
        return kvi_error(KV_EINVAL, "an inconsistent topology record: %s",
                         kvi_topology_invalid(rec));
    pthread_mutex_lock(&s->lock);
    if (rec->epoch <= s->record.epoch) {
        pthread_mutex_unlock(&s->lock);
        return 0;
    }
    int rc = keep_record(s, rec);
    if (rc == KV_OK)
        rc = kvi_topology_copy(&s->record, rec);
    pthread_mutex_unlock(&s->lock);
    if (rc != KV_OK)
        return kvi_error(rc, "cannot keep topology epoch %llu: %s",
                         (unsigned long long)rec->epoch, kvi_error_last());
    changed(s, rec);
    return 1;
}

int kvi_topo_service_first(kvi_topo_service *s, const kvi_topology *first)
{
    if (s->etcd)
        return kvi_topo_etcd_first(s, s->etcd, first);
    int rc = kvi_topo_service_adopt(s, first);
    return rc < 0 ? rc : KV_OK;
}

int kvi_topo_service_handle(kvi_topo_service *s, const void *in, size_t len, kvi_buf *out)
{
    kvi_tpx_msg m;
    if (kvi_tpx_msg_decode(&m, in, len) != KV_OK)
        return kvi_error(KV_EINVAL, "a malformed topology message");
    kvi_tpx_answer a;
    if (s->etcd && m.kind != KVI_TPX_FETCH) {
        /* etcd records the changes: no proposal of a member (one started
         * without --metadata) may change the record here. */
        kvi_tpx_answer_init(&a);
        a.verdict = KVI_TPX_NOT_ACCEPTOR;
        int rc = kvi_topo_service_record(s, &a.current);
        if (rc == KV_OK)
            kvi_tpx_answer_encode(out, &a);
        kvi_tpx_answer_free(&a);
        kvi_tpx_msg_free(&m);
        return rc;
    }
    kvi_topology now;
    kvi_topology_init(&now);
    pthread_mutex_lock(&s->lock);
    /* On copies: what is kept in the store comes first, then what is held. */
    kvi_topology cur;
    kvi_tpx_acceptor acc;
    kvi_topology_init(&cur);
    kvi_tpx_acceptor_init(&acc);
    int rc = kvi_topology_copy(&cur, &s->record);
    if (rc == KV_OK) {
        acc = s->acc;
        kvi_topology_init(&acc.value);
        rc = kvi_topology_copy(&acc.value, &s->acc.value);
    }
    int cur_changed = 0, acc_changed = 0;
    if (rc == KV_OK)
        rc = kvi_tpx_accept(&cur, &acc, s->self, &m, &a, &cur_changed, &acc_changed);
    if (rc == KV_OK && cur_changed)
        rc = keep_record(s, &cur);
    if (rc == KV_OK && acc_changed)
        rc = keep_acceptor(s, &acc);
    if (rc == KV_OK) {
        if (cur_changed) {
            kvi_topology_free(&s->record);
            s->record = cur;
            kvi_topology_init(&cur);
            rc = kvi_topology_copy(&now, &s->record);
        }
        if (acc_changed) {
            kvi_tpx_acceptor_free(&s->acc);
            s->acc = acc;
            kvi_tpx_acceptor_init(&acc);
        }
    }
    pthread_mutex_unlock(&s->lock);
    kvi_topology_free(&cur);
    kvi_tpx_acceptor_free(&acc);
    kvi_tpx_msg_free(&m);
    if (rc == KV_OK)
        kvi_tpx_answer_encode(out, &a);
    kvi_tpx_answer_free(&a);
    if (rc == KV_OK && now.epoch)
        changed(s, &now);
    kvi_topology_free(&now);
    if (rc != KV_OK)
        return kvi_error(rc, "cannot keep the topology state: %s", kvi_error_last());
    return out->failed ? kvi_error(KV_ENOMEM, "out of memory") : KV_OK;
}

/* The connection to the member at addr, opened on first use. */
static kvi_client *client_for(kvi_topo_service *s, const char *addr)
{
    pthread_mutex_lock(&s->lock);
    kvi_client *c = NULL;
    for (size_t i = 0; i < s->n_clients && !c; i++)
        if (strcmp(s->clients[i].addr, addr) == 0)
            c = s->clients[i].client;
    if (!c && s->n_clients < MAX_CLIENTS) {
        kv_client_options co = KV_CLIENT_OPTIONS_INIT;
        co.connect_timeout_ms = 500;
        co.request_timeout_ms = s->timeout_ms;
        if (kvi_client_open_peer(&c, addr, &co, s->creds, s->log, s->loop) == KV_OK) {
            snprintf(s->clients[s->n_clients].addr, sizeof s->clients[0].addr, "%s", addr);
            s->clients[s->n_clients++].client = c;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return c;
}

/* Sends a topology message to c; fn runs once on the loop when it ends.
 * KV_OK, or the failure (fn never runs). */
static int send_message(kvi_client *c, const kvi_tpx_msg *m, kvi_reply_fn fn, void *ctx)
{
    kvi_buf body = {0};
    kvi_tpx_msg_encode(&body, m);
    int rc = body.failed ? KV_ENOMEM
                         : kvi_client_submit_value(c, KVI_OP_TOPOLOGY, body.data, body.len, 0,
                                                   fn, ctx);
    kvi_buf_free(&body);
    return rc;
}

/* An answer's body decoded; KV_OK or a failure. */
static int answer_of(const kvi_reply *reply, kvi_tpx_answer *out)
{
    kvi_tpx_answer_init(out);
    kvi_response resp;
    int rc = kvi_reply_decode(&resp, reply, KVI_OP_TOPOLOGY);
    if (rc != KV_OK)
        return rc;
    return kvi_tpx_answer_decode(out, resp.value.data, resp.value.len);
}

/* --------------------------------------------------------------- fetch */

typedef struct fetch_call {
    kvi_topo_service *s;
} fetch_call;

static void fetched(void *ctx, const kvi_reply *reply)
{
    fetch_call *f = ctx;
    kvi_tpx_answer a;
    if (answer_of(reply, &a) == KV_OK && a.verdict == KVI_TPX_GRANTED && a.current.epoch)
        kvi_topo_service_adopt(f->s, &a.current);
    kvi_tpx_answer_free(&a);
    live_drop(f->s);
    free(f);
}

void kvi_topo_service_fetch(kvi_topo_service *s, const char *addr)
{
    kvi_client *c = client_for(s, addr);
    fetch_call *f = c ? calloc(1, sizeof *f) : NULL;
    if (!f)
        return;
    f->s = s;
    kvi_tpx_msg m;
    kvi_tpx_msg_init(&m);
    m.kind = KVI_TPX_FETCH;
    live_add(s);
    if (send_message(c, &m, fetched, f) != KV_OK) {
        live_drop(s);
        free(f);
    }
}

/* ------------------------------------------------------------ proposals */

typedef void (*proposal_done_fn)(void *ctx, const kvi_tpx_proposer *p);

typedef struct slot {
    int state; /* 0 nothing yet, 1 an answer, 2 failed */
    kvi_tpx_answer answer;
} slot;

typedef struct proposal {
    kvi_topo_service *s;
    kvi_tpx_proposer p;
    kvi_client **clients;  /* per acceptor; NULL: this node itself */
    slot *slots;
    unsigned seq;          /* the current message; older answers are dropped */
    int busy, again, finished;
    unsigned refs;         /* its own, and one per message in flight */
    kvi_loop *loop;
    kvi_loop_timer timer;
    kvi_loop_task task;
    proposal_done_fn done;
    void *done_ctx;
} proposal;

typedef struct proposal_call {
    proposal *pr;
    size_t i;
    unsigned seq;
} proposal_call;

static void proposal_unref(proposal *pr)
{
    if (--pr->refs)
        return;
    for (size_t i = 0; pr->slots && i < pr->p.n; i++)
        kvi_tpx_answer_free(&pr->slots[i].answer);
    kvi_topo_service *s = pr->s;
    kvi_tpxp_free(&pr->p);
    free(pr->slots);
    free(pr->clients);
    free(pr);
    live_drop(s);
}

static void pump(proposal *pr);

static void answered(void *ctx, const kvi_reply *reply)
{
    proposal_call *call = ctx;
    proposal *pr = call->pr;
    if (!pr->finished && call->seq == pr->seq) {
        slot *sl = &pr->slots[call->i];
        kvi_tpx_answer_free(&sl->answer);
        sl->state = answer_of(reply, &sl->answer) == KV_OK ? 1 : 2;
        pump(pr);
    }
    free(call);
    proposal_unref(pr);
}

/* A COMMIT's answer: nothing to learn. */
static void committed(void *ctx, const kvi_reply *reply)
{
    (void)reply;
    proposal_unref(ctx);
}

/* Sends the current message to every acceptor (this node's own answer is
 * taken at once). */
static void send_all(proposal *pr)
{
    pr->seq++;
    kvi_buf own = {0};
    for (size_t i = 0; i < pr->p.n; i++) {
        slot *sl = &pr->slots[i];
        kvi_tpx_answer_free(&sl->answer);
        sl->state = 0;
    }
    for (size_t i = 0; i < pr->p.n; i++) {
        slot *sl = &pr->slots[i];
        if (!pr->clients[i] && strcmp(pr->p.acceptors[i], pr->s->self) == 0) {
            kvi_buf_reset(&own);
            kvi_tpx_msg_encode(&own, &pr->p.msg);
            kvi_buf answer = {0};
            int rc = own.failed ? KV_ENOMEM
                                : kvi_topo_service_handle(pr->s, own.data, own.len, &answer);
            sl->state = rc == KV_OK &&
                                kvi_tpx_answer_decode(&sl->answer, answer.data, answer.len) ==
                                    KV_OK
                            ? 1
                            : 2;
            kvi_buf_free(&answer);
            continue;
        }
        proposal_call *call = pr->clients[i] ? malloc(sizeof *call) : NULL;
        if (!call) {
            sl->state = 2;
            continue;
        }
        *call = (proposal_call){pr, i, pr->seq};
        pr->refs++;
        if (send_message(pr->clients[i], &pr->p.msg, answered, call) != KV_OK) {
            pr->refs--;
            free(call);
            sl->state = 2;
        }
    }
    kvi_buf_free(&own);
    pr->again = 1;
}

static void retry_now(void *ctx)
{
    proposal *pr = ctx;
    if (!pr->finished) {
        kvi_tpxp_step st = kvi_tpxp_retry(&pr->p, kvi_now_ms() * 1000u);
        if (st == KVI_TPXP_SEND)
            send_all(pr);
        pump(pr);
    }
    proposal_unref(pr);
}

/* Ends the proposal: a chosen record is taken here and committed to every
 * member it names, then the caller is told. */
static void finish(proposal *pr)
{
    pr->finished = 1;
    kvi_tpx_proposer *p = &pr->p;
    if (p->outcome == KVI_TPXP_CHOSEN || p->outcome == KVI_TPXP_LOST_TO) {
        kvi_topo_service_adopt(pr->s, &p->chosen);
        kvi_tpx_msg c;
        kvi_tpx_msg_init(&c);
        c.kind = KVI_TPX_COMMIT;
        if (kvi_topology_copy(&c.base, &p->chosen) == KV_OK)
            for (size_t i = 0; i < p->chosen.n; i++) {
                const kvi_topo_member *m = &p->chosen.members[i];
                if (m->state == KVI_TOPO_LEFT || strcmp(m->id, pr->s->self) == 0)
                    continue;
                kvi_client *cl = client_for(pr->s, m->addr);
                pr->refs++;
                if (!cl || send_message(cl, &c, committed, pr) != KV_OK)
                    pr->refs--;
            }
        kvi_tpx_msg_free(&c);
    } else if (p->outcome == KVI_TPXP_MOVED_ON && p->chosen.epoch > p->base.epoch) {
        kvi_topo_service_adopt(pr->s, &p->chosen);
    }
    pr->done(pr->done_ctx, p);
    proposal_unref(pr); /* its own: whoever called pump holds another */
}

/* Feeds what came in to the proposer and acts on its steps, until nothing
 * new is left. Re-entrant calls (a send that fails at once) leave the work
 * to the running one. */
static void pump(proposal *pr)
{
    if (pr->busy) {
        pr->again = 1;
        return;
    }
    pr->busy = 1;
    do {
        pr->again = 0;
        for (size_t i = 0; i < pr->p.n && !pr->finished; i++) {
            slot *sl = &pr->slots[i];
            if (!sl->state)
                continue;
            int state = sl->state;
            sl->state = 0;
            kvi_tpxp_step st = state == 1 ? kvi_tpxp_answer(&pr->p, i, &sl->answer)
                                          : kvi_tpxp_failed(&pr->p, i);
            if (st == KVI_TPXP_SEND) {
                send_all(pr);
            } else if (st == KVI_TPXP_BACKOFF) {
                pr->seq++; /* answers still coming belong to the old message */
                pr->refs++;
                if (kvi_loop_timer_set(pr->loop, &pr->timer,
                                       kvi_loop_now_ms() + pr->p.backoff_ms) != KV_OK) {
                    pr->refs--;
                    pr->p.outcome = KVI_TPXP_UNAVAILABLE;
                    snprintf(pr->p.message, sizeof pr->p.message, "out of memory");
                    finish(pr);
                }
            } else if (st == KVI_TPXP_DONE) {
                finish(pr);
            }
        }
    } while (pr->again && !pr->finished);
    pr->busy = 0;
}

static void proposal_start(void *ctx)
{
    proposal *pr = ctx;
    kvi_tpxp_step st = kvi_tpxp_start(&pr->p, kvi_now_ms() * 1000u);
    if (st == KVI_TPXP_SEND)
        send_all(pr);
    pump(pr);
    proposal_unref(pr); /* the start's own */
}

/* Starts a proposal of want on base; done runs once, on the peers loop. */
static int propose(kvi_topo_service *s, const kvi_topology *base, const kvi_topology *want,
                   proposal_done_fn done, void *ctx)
{
    proposal *pr = calloc(1, sizeof *pr);
    if (!pr)
        return KV_ENOMEM;
    pthread_mutex_lock(&s->lock);
    uint64_t seed = s->random = s->random * 6364136223846793005ull + 1442695040888963407ull;
    pthread_mutex_unlock(&s->lock);
    int rc = kvi_tpxp_init(&pr->p, s->self, base, want, seed);
    if (rc != KV_OK) {
        kvi_tpxp_free(&pr->p);
        free(pr);
        return rc;
    }
    pr->s = s;
    pr->done = done;
    pr->done_ctx = ctx;
    pr->loop = kvi_client_loop_event_loop(s->loop);
    pr->clients = calloc(pr->p.n, sizeof *pr->clients);
    pr->slots = calloc(pr->p.n, sizeof *pr->slots);
    for (size_t i = 0; pr->slots && i < pr->p.n; i++)
        kvi_tpx_answer_init(&pr->slots[i].answer);
    if (!pr->clients || !pr->slots) {
        kvi_tpxp_free(&pr->p);
        free(pr->clients);
        free(pr->slots);
        free(pr);
        return KV_ENOMEM;
    }
    for (size_t i = 0; i < pr->p.n; i++) {
        if (strcmp(pr->p.acceptors[i], s->self) == 0)
            continue;
        const kvi_topo_member *m = kvi_topology_find(base, pr->p.acceptors[i]);
        pr->clients[i] = m ? client_for(s, m->addr) : NULL;
    }
    kvi_loop_timer_init(&pr->timer, retry_now, pr);
    pr->refs = 2; /* its own, dropped at the end; and the start's */
    live_add(s);
    kvi_loop_post(pr->loop, &pr->task, proposal_start, pr);
    return KV_OK;
}

/* A proposal waited for. */
typedef struct waiter {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int outcome;
    kvi_topology chosen;
    char message[256];
} waiter;

static void wake(void *ctx, const kvi_tpx_proposer *p)
{
    waiter *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->outcome = p->outcome;
    snprintf(w->message, sizeof w->message, "%s", p->message);
    if (kvi_topology_copy(&w->chosen, &p->chosen) != KV_OK)
        kvi_topology_free(&w->chosen);
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int kvi_topo_service_change(kvi_topo_service *s, kvi_topo_build_fn build, void *ctx,
                            kvi_topology *chosen, char *err, size_t err_size)
{
    if (s->etcd)
        return kvi_topo_etcd_change(s, s->etcd, build, ctx, chosen, err, err_size);
    kvi_topology cur, next;
    kvi_topology_init(&cur);
    kvi_topology_init(&next);
    int rc = KV_EBUSY;
    snprintf(err, err_size, "the topology kept changing under this change");
    for (int round = 0; round < MAX_CHANGE_ROUNDS; round++) {
        if (kvi_topo_service_record(s, &cur) != KV_OK) {
            rc = KV_ENOMEM;
            break;
        }
        if (cur.epoch == 0) {
            rc = KV_EUNAVAILABLE;
            snprintf(err, err_size, "this node holds no topology record yet");
            break;
        }
        rc = build(ctx, &cur, &next, err, err_size);
        if (rc != KV_OK)
            break;
        if (next.epoch == cur.epoch) { /* nothing to change */
            if (chosen)
                rc = kvi_topology_copy(chosen, &cur);
            break;
        }
        waiter w = {.outcome = 0};
        pthread_mutex_init(&w.lock, NULL);
        pthread_cond_init(&w.cond, NULL);
        kvi_topology_init(&w.chosen);
        rc = propose(s, &cur, &next, wake, &w);
        if (rc == KV_OK) {
            pthread_mutex_lock(&w.lock);
            while (!w.done)
                pthread_cond_wait(&w.cond, &w.lock);
            pthread_mutex_unlock(&w.lock);
        }
        pthread_mutex_destroy(&w.lock);
        pthread_cond_destroy(&w.cond);
        if (rc != KV_OK) {
            snprintf(err, err_size, "cannot start a proposal: out of memory");
            kvi_topology_free(&w.chosen);
            break;
        }
        int outcome = w.outcome;
        if (outcome == KVI_TPXP_CHOSEN) {
            if (chosen)
                rc = kvi_topology_copy(chosen, &w.chosen);
            kvi_topology_free(&w.chosen);
            break;
        }
        kvi_topology_free(&w.chosen);
        snprintf(err, err_size, "%s", w.message);
        if (outcome == KVI_TPXP_UNAVAILABLE) {
            rc = KV_EUNAVAILABLE;
            break;
        }
        if (outcome == KVI_TPXP_CONTENDED) {
            rc = KV_EBUSY;
            break;
        }
        /* LOST_TO, MOVED_ON: the newer record is taken; build again. */
        rc = KV_EBUSY;
        kvi_log(s->log, KV_LOG_INFO, "topology: %s; trying again on the newer record",
                w.message);
    }
    kvi_topology_free(&cur);
    kvi_topology_free(&next);
    return rc;
}
