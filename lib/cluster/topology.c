/* cluster/topology.c - a topology record's rings, changes and stream plans. */
#include "cluster/topology.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kv/common.h>

int kvi_topology_in_ring(const kvi_topology *t, const kvi_topo_member *m, kvi_topo_ring which)
{
    (void)t; /* the state says it all, today */
    switch (m->state) {
    case KVI_TOPO_NORMAL:
    case KVI_TOPO_REPLACING:
        return 1;
    case KVI_TOPO_JOINING:
        return which == KVI_TOPO_FUTURE;
    case KVI_TOPO_LEAVING:
        return which == KVI_TOPO_CURRENT;
    default:
        return 0;
    }
}

int kvi_topology_readable(const kvi_topo_member *m)
{
    return m->state == KVI_TOPO_NORMAL || m->state == KVI_TOPO_LEAVING;
}

int kvi_topology_acceptor(const kvi_topology *t, const kvi_topo_member *m)
{
    return kvi_topology_in_ring(t, m, KVI_TOPO_CURRENT) && m->state != KVI_TOPO_REPLACING;
}

int kvi_topology_build_ring(kvi_ring **out, const kvi_topology *t, kvi_topo_ring which)
{
    *out = NULL;
    const char **ids = malloc((t->n ? t->n : 1) * sizeof *ids);
    if (!ids)
        return KV_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        if (kvi_topology_in_ring(t, &t->members[i], which))
            ids[n++] = t->members[i].id;
    int rc = n ? kvi_ring_build(out, ids, n, t->vnodes, t->replicas) : KV_EINVAL;
    free(ids);
    return rc;
}

static int refuse(int rc, char *err, size_t size, const char *fmt, ...)
{
    if (err && size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, size, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int kvi_topology_first(kvi_topology *next, unsigned replicas, unsigned vnodes,
                       const char *const *ids, const char *const *addrs,
                       const char *const *https, size_t n)
{
    kvi_topology_free(next);
    next->epoch = 1;
    next->replicas = (uint16_t)replicas;
    next->vnodes = (uint16_t)vnodes;
    for (size_t i = 0; i < n; i++) {
        int rc = kvi_topology_add(next, ids[i], addrs[i], https ? https[i] : NULL,
                                  KVI_TOPO_NORMAL);
        if (rc != KV_OK) {
            kvi_topology_free(next);
            return rc;
        }
    }
    if (n == 0 || kvi_topology_invalid(next)) {
        kvi_topology_free(next);
        return KV_EINVAL;
    }
    return KV_OK;
}

/* The members of that ring. */
static size_t ring_size(const kvi_topology *t, kvi_topo_ring which)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++)
        n += (size_t)kvi_topology_in_ring(t, &t->members[i], which);
    return n;
}

/* Another member (not left, not id) at addr, or NULL. */
static const kvi_topo_member *at_address(const kvi_topology *t, const char *addr, const char *id)
{
    for (size_t i = 0; i < t->n; i++) {
        const kvi_topo_member *m = &t->members[i];
        if (m->state != KVI_TOPO_LEFT && strcmp(m->id, id) != 0 && strcmp(m->addr, addr) == 0)
            return m;
    }
    return NULL;
}

/* *next = cur at the next epoch, its done marks cleared. */
static int advance(kvi_topology *next, const kvi_topology *cur)
{
    kvi_topology_free(next);
    if (kvi_topology_copy(next, cur) != KV_OK)
        return KV_ENOMEM;
    next->epoch = cur->epoch + 1;
    return KV_OK;
}

static void clear_operation(kvi_topology *t)
{
    t->op = KVI_TOPO_OP_NONE;
    t->op_member[0] = 0;
    t->op_epoch = 0;
    for (size_t i = 0; i < t->n; i++)
        t->members[i].done = 0;
}

static int busy(const kvi_topology *cur, char *err, size_t size)
{
    return refuse(KV_EBUSY, err, size,
                  "a %s of %s is in progress since epoch %llu: one topology change at a time "
                  "(let it finish, or abort it)",
                  kvi_topo_op_name(cur->op), cur->op_member,
                  (unsigned long long)cur->op_epoch);
}

static int begin_join(kvi_topology *next, const kvi_topology *cur, const char *id,
                      const char *addr, const char *http, char *err, size_t size)
{
    const kvi_topo_member *m = kvi_topology_find(cur, id);
    if (m && m->state != KVI_TOPO_LEFT)
        return refuse(KV_EINVAL, err, size, "%s is already a member (%s)", id,
                      kvi_topo_state_name(m->state));
    const kvi_topo_member *other = addr ? at_address(cur, addr, id) : NULL;
    if (other)
        return refuse(KV_EINVAL, err, size, "address %s belongs to member %s", addr, other->id);
    if (advance(next, cur) != KV_OK)
        return KV_ENOMEM;
    kvi_topology_remove(next, id); /* left earlier: joins again */
    int rc = kvi_topology_add(next, id, addr, http, KVI_TOPO_JOINING);
    if (rc != KV_OK) {
        kvi_topology_free(next);
        return refuse(rc, err, size, "cannot add member %s at %s (an empty or overlong id or "
                      "address, or %u members already)", id, addr ? addr : "(none)",
                      KVI_TOPO_MAX_MEMBERS);
    }
    return KV_OK;
}

int kvi_topology_begin(kvi_topology *next, const kvi_topology *cur, kvi_topo_op op,
                       const char *id, const char *addr, const char *http, char *err,
                       size_t err_size)
{
    kvi_topology_free(next);
    if (!id || !id[0])
        return refuse(KV_EINVAL, err, err_size, "a topology change needs a member id");
    if (cur->op != KVI_TOPO_OP_NONE)
        return busy(cur, err, err_size);
    int rc = KV_OK;
    if (op == KVI_TOPO_OP_JOIN)
        rc = begin_join(next, cur, id, addr, http, err, err_size);
    else if (op == KVI_TOPO_OP_LEAVE || op == KVI_TOPO_OP_REMOVE || op == KVI_TOPO_OP_REPLACE) {
        const kvi_topo_member *m = kvi_topology_find(cur, id);
        if (!m)
            return refuse(KV_EINVAL, err, err_size, "%s is not a member", id);
        if (m->state != KVI_TOPO_NORMAL)
            return refuse(KV_EINVAL, err, err_size, "%s is %s, not normal", id,
                          kvi_topo_state_name(m->state));
        size_t stay = ring_size(cur, KVI_TOPO_CURRENT) - 1;
        if (op != KVI_TOPO_OP_REPLACE && stay < cur->replicas)
            return refuse(KV_EINVAL, err, err_size,
                          "%s of %s would leave %zu member(s) for %u replicas per key; add a "
                          "member first", kvi_topo_op_name(op), id, stay, cur->replicas);
        const kvi_topo_member *other =
            op == KVI_TOPO_OP_REPLACE && addr ? at_address(cur, addr, id) : NULL;
        if (other)
            return refuse(KV_EINVAL, err, err_size, "address %s belongs to member %s", addr,
                          other->id);
        if (op == KVI_TOPO_OP_REPLACE &&
            (!addr || !addr[0] || strlen(addr) > KVI_TOPO_MAX_ADDR ||
             (http && strlen(http) > KVI_TOPO_MAX_ADDR)))
            return refuse(KV_EINVAL, err, err_size, "a replace needs the new process's address");
        if (advance(next, cur) != KV_OK)
            return KV_ENOMEM;
        kvi_topo_member *n = kvi_topology_find_mut(next, id);
        n->state = op == KVI_TOPO_OP_REPLACE ? KVI_TOPO_REPLACING : KVI_TOPO_LEAVING;
        if (op == KVI_TOPO_OP_REPLACE) {
            snprintf(n->addr, sizeof n->addr, "%s", addr);
            snprintf(n->http, sizeof n->http, "%s", http ? http : "");
        }
    } else {
        return refuse(KV_EINVAL, err, err_size, "unknown topology operation %d", (int)op);
    }
    if (rc != KV_OK)
        return rc;
    next->op = (uint8_t)op;
    snprintf(next->op_member, sizeof next->op_member, "%s", id);
    next->op_epoch = next->epoch;
    return KV_OK;
}

/* Calls fn for each stretch of token space on which both rings' homes stay
 * the same, in token order, with the two preference lists as ids. */
typedef void (*stretch_fn)(void *ctx, uint64_t first, uint64_t last, const char *const *cur,
                           size_t n_cur, const char *const *fut, size_t n_fut);

static int each_stretch(const kvi_topology *t, stretch_fn fn, void *ctx)
{
    kvi_ring *c = NULL, *f = NULL;
    int rc = kvi_topology_build_ring(&c, t, KVI_TOPO_CURRENT);
    if (rc == KV_OK)
        rc = kvi_topology_build_ring(&f, t, KVI_TOPO_FUTURE);
    if (rc != KV_OK) {
        kvi_ring_free(c);
        return rc;
    }
    const char *cur[16], *fut[16]; /* N is at most 16 */
    uint64_t token = 0;
    for (;;) {
        uint64_t last_c = kvi_ring_range_last(c, token), last_f = kvi_ring_range_last(f, token);
        uint64_t last = last_c < last_f ? last_c : last_f;
        const uint32_t *pc, *pf;
        size_t nc = kvi_ring_preference(c, token, &pc);
        size_t nf = kvi_ring_preference(f, token, &pf);
        for (size_t i = 0; i < nc; i++)
            cur[i] = kvi_ring_member_id(c, pc[i]);
        for (size_t i = 0; i < nf; i++)
            fut[i] = kvi_ring_member_id(f, pf[i]);
        fn(ctx, token, last, cur, nc, fut, nf);
        if (last == UINT64_MAX)
            break;
        token = last + 1;
    }
    kvi_ring_free(c);
    kvi_ring_free(f);
    return KV_OK;
}

static int listed(const char *const *ids, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ids[i], id) == 0)
            return 1;
    return 0;
}

/* Whether member id gains the stretch whose homes are cur and fut. */
static int gains(const kvi_topology *t, const char *id, const char *const *cur, size_t n_cur,
                 const char *const *fut, size_t n_fut)
{
    const kvi_topo_member *m = kvi_topology_find(t, id);
    if (m && m->state == KVI_TOPO_REPLACING)
        return listed(cur, n_cur, id);
    return listed(fut, n_fut, id) && !listed(cur, n_cur, id);
}

typedef struct gainers_walk {
    const kvi_topology *t;
    unsigned char *gains; /* per member */
} gainers_walk;

static void mark_gainers(void *ctx, uint64_t first, uint64_t last, const char *const *cur,
                         size_t n_cur, const char *const *fut, size_t n_fut)
{
    (void)first;
    (void)last;
    gainers_walk *w = ctx;
    for (size_t i = 0; i < w->t->n; i++)
        if (!w->gains[i])
            w->gains[i] = (unsigned char)gains(w->t, w->t->members[i].id, cur, n_cur, fut, n_fut);
}

int kvi_topology_gainers(const kvi_topology *t, size_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (t->op == KVI_TOPO_OP_NONE)
        return KV_OK;
    gainers_walk w = {t, calloc(t->n ? t->n : 1, 1)};
    if (!w.gains)
        return KV_ENOMEM;
    int rc = each_stretch(t, mark_gainers, &w);
    size_t count = 0;
    for (size_t i = 0; rc == KV_OK && i < t->n; i++)
        count += w.gains[i];
    if (rc == KV_OK && count) {
        *out = malloc(count * sizeof **out);
        if (!*out)
            rc = KV_ENOMEM;
        for (size_t i = 0; *out && i < t->n; i++)
            if (w.gains[i])
                (*out)[(*n)++] = i;
    }
    free(w.gains);
    return rc;
}

int kvi_topology_mark_done(kvi_topology *next, int *changed, const kvi_topology *cur,
                           const char *id, char *err, size_t err_size)
{
    kvi_topology_free(next);
    *changed = 0;
    if (cur->op == KVI_TOPO_OP_NONE)
        return refuse(KV_EINVAL, err, err_size, "no topology change is in progress");
    size_t *g, n;
    if (kvi_topology_gainers(cur, &g, &n) != KV_OK)
        return KV_ENOMEM;
    long at = -1;
    for (size_t i = 0; i < n && at < 0; i++)
        if (strcmp(cur->members[g[i]].id, id) == 0)
            at = (long)g[i];
    free(g);
    if (at < 0)
        return refuse(KV_EINVAL, err, err_size, "%s gains no ranges under the %s of %s", id,
                      kvi_topo_op_name(cur->op), cur->op_member);
    if (cur->members[at].done)
        return kvi_topology_copy(next, cur);
    if (advance(next, cur) != KV_OK)
        return KV_ENOMEM;
    next->members[at].done = 1;
    *changed = 1;
    return KV_OK;
}

int kvi_topology_finish(kvi_topology *next, const kvi_topology *cur, char *err,
                        size_t err_size)
{
    kvi_topology_free(next);
    if (cur->op == KVI_TOPO_OP_NONE)
        return refuse(KV_EINVAL, err, err_size, "no topology change is in progress");
    size_t *g, n;
    if (kvi_topology_gainers(cur, &g, &n) != KV_OK)
        return KV_ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!cur->members[g[i]].done) {
            int rc = refuse(KV_EBUSY, err, err_size, "%s has not finished streaming for the "
                            "%s of %s", cur->members[g[i]].id, kvi_topo_op_name(cur->op),
                            cur->op_member);
            free(g);
            return rc;
        }
    free(g);
    if (advance(next, cur) != KV_OK)
        return KV_ENOMEM;
    kvi_topo_member *m = kvi_topology_find_mut(next, cur->op_member);
    m->state = m->state == KVI_TOPO_LEAVING ? KVI_TOPO_LEFT : KVI_TOPO_NORMAL;
    clear_operation(next);
    return KV_OK;
}

int kvi_topology_abort(kvi_topology *next, const kvi_topology *cur, char *err,
                       size_t err_size)
{
    kvi_topology_free(next);
    if (cur->op == KVI_TOPO_OP_NONE)
        return refuse(KV_EINVAL, err, err_size, "no topology change is in progress");
    if (advance(next, cur) != KV_OK)
        return KV_ENOMEM;
    if (cur->op == KVI_TOPO_OP_JOIN)
        kvi_topology_remove(next, cur->op_member);
    else
        kvi_topology_find_mut(next, cur->op_member)->state = KVI_TOPO_NORMAL;
    clear_operation(next);
    return KV_OK;
}

/* base (n items of size bytes, room for *cap) with room for one more:
 * base itself or a bigger copy (then *cap is its room); NULL when out of
 * memory (base untouched). */
static void *room_for_one_more(void *base, size_t n, size_t *cap, size_t size)
{
    if (n < *cap)
        return base;
    size_t more = *cap ? *cap * 2 : 16;
    void *bigger = realloc(base, more * size);
    if (bigger)
        *cap = more;
    return bigger;
}

typedef struct plan_walk {
    const kvi_topology *t;
    const char *id;
    kvi_topo_down_fn is_down;
    void *ctx;
    kvi_stream_range *out;
    size_t n, cap;
    int failed;
} plan_walk;

/* Whether member id can serve a stream now. */
static int can_source(const plan_walk *w, const char *id)
{
    const kvi_topo_member *m = kvi_topology_find(w->t, id);
    if (!m || !kvi_topology_readable(m) || strcmp(id, w->id) == 0)
        return 0;
    if (w->t->op == KVI_TOPO_OP_REMOVE && strcmp(id, w->t->op_member) == 0)
        return 0;
    return !(w->is_down && w->is_down(w->ctx, id));
}

static void plan_stretch(void *ctx, uint64_t first, uint64_t last, const char *const *cur,
                         size_t n_cur, const char *const *fut, size_t n_fut)
{
    plan_walk *w = ctx;
    if (w->failed || !gains(w->t, w->id, cur, n_cur, fut, n_fut))
        return;
    const char *source = NULL;
    int substitute = 1;
    const kvi_topo_member *self = kvi_topology_find(w->t, w->id);
    if (self->state != KVI_TOPO_REPLACING)
        for (size_t i = 0; i < n_cur && !source; i++)
            if (!listed(fut, n_fut, cur[i]) && can_source(w, cur[i])) {
                source = cur[i]; /* the displaced replica */
                substitute = 0;
            }
    for (size_t i = 0; i < n_cur && !source; i++)
        if (can_source(w, cur[i]))
            source = cur[i];
    if (!source)
        source = "";
    kvi_stream_range *prev = w->n ? &w->out[w->n - 1] : NULL;
    if (prev && prev->last + 1 == first && prev->substitute == substitute &&
        strcmp(prev->source, source) == 0) {
        prev->last = last;
        return;
    }
    kvi_stream_range *room = room_for_one_more(w->out, w->n, &w->cap, sizeof *room);
    if (!room) {
        w->failed = 1;
        return;
    }
    w->out = room;
    kvi_stream_range *r = &w->out[w->n++];
    memset(r, 0, sizeof *r);
    r->first = first;
    r->last = last;
    snprintf(r->source, sizeof r->source, "%s", source);
    r->substitute = substitute;
}

int kvi_topology_stream_plan(const kvi_topology *t, const char *id, kvi_topo_down_fn is_down,
                             void *ctx, kvi_stream_range **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!kvi_topology_find(t, id))
        return KV_EINVAL;
    if (t->op == KVI_TOPO_OP_NONE)
        return KV_OK;
    plan_walk w = {.t = t, .id = id, .is_down = is_down, .ctx = ctx};
    int rc = each_stretch(t, plan_stretch, &w);
    if (rc == KV_OK && w.failed)
        rc = KV_ENOMEM;
    if (rc != KV_OK) {
        free(w.out);
        return rc;
    }
    *out = w.out;
    *n = w.n;
    return KV_OK;
}

typedef struct foreign_walk {
    const char *id;
    kvi_token_range *out;
    size_t n, cap;
    int failed;
} foreign_walk;

static void note_foreign(void *ctx, uint64_t first, uint64_t last, const char *const *cur,
                         size_t n_cur, const char *const *fut, size_t n_fut)
{
    (void)fut;
    (void)n_fut;
    foreign_walk *w = ctx;
    if (w->failed || listed(cur, n_cur, w->id))
        return;
    if (w->n && w->out[w->n - 1].last + 1 == first) {
        w->out[w->n - 1].last = last;
        return;
    }
    kvi_token_range *room = room_for_one_more(w->out, w->n, &w->cap, sizeof *room);
    if (!room) {
        w->failed = 1;
        return;
    }
    w->out = room;
    w->out[w->n++] = (kvi_token_range){first, last};
}

int kvi_topology_foreign_ranges(const kvi_topology *t, const char *id, kvi_token_range **out,
                                size_t *n)
{
    *out = NULL;
    *n = 0;
    if (t->op != KVI_TOPO_OP_NONE)
        return KV_EBUSY;
    const kvi_topo_member *m = kvi_topology_find(t, id);
    if (!m || !kvi_topology_in_ring(t, m, KVI_TOPO_CURRENT))
        return KV_EINVAL;
    foreign_walk w = {.id = id};
    int rc = each_stretch(t, note_foreign, &w);
    if (rc == KV_OK && w.failed)
        rc = KV_ENOMEM;
    if (rc != KV_OK) {
        free(w.out);
        return rc;
    }
    *out = w.out;
    *n = w.n;
    return KV_OK;
}
