/* cluster/members.c - the member list and what gossip may change in it. */
#include "cluster/members.h"

#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "cluster/ring.h"
#include "util/error.h"

void kvi_members_init(kvi_member_list *l)
{
    memset(l, 0, sizeof *l);
}

static void member_free(kvi_member *m)
{
    free(m->id);
    free(m->addr);
    free(m->http);
}

void kvi_members_free(kvi_member_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        member_free(&l->items[i]);
    free(l->items);
    kvi_members_init(l);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int kvi_members_add(kvi_member_list *l, const char *id, const char *addr, const char *http,
                    int configured)
{
    if (l->n >= KVI_RING_MAX_MEMBERS)
        return kvi_error(KV_EINVAL, "at most %u members", KVI_RING_MAX_MEMBERS);
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        kvi_member *p = realloc(l->items, cap * sizeof *p);
        if (!p)
            return kvi_error(KV_ENOMEM, "out of memory adding a member");
        l->items = p;
        l->cap = cap;
    }
    kvi_member m = {dup_or_null(id), strdup(addr), dup_or_null(http), configured, 0};
    if (!m.addr || (id && !m.id) || (http && !m.http)) {
        member_free(&m);
        return kvi_error(KV_ENOMEM, "out of memory adding a member");
    }
    l->items[l->n++] = m;
    return KV_OK;
}

void kvi_members_remove(kvi_member_list *l, size_t i)
{
    member_free(&l->items[i]);
    l->items[i] = l->items[--l->n];
}

long kvi_members_find_id(const kvi_member_list *l, const char *id)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->items[i].id && strcmp(l->items[i].id, id) == 0)
            return (long)i;
    return -1;
}

long kvi_members_find_addr(const kvi_member_list *l, const char *addr)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->items[i].addr, addr) == 0)
            return (long)i;
    return -1;
}

int kvi_members_complete(const kvi_member_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        if (!l->items[i].id)
            return 0;
    return 1;
}

/* Replaces *field with a copy of value ("" = NULL); 1 when it changed, -1
 * when out of memory. */
static int set_field(char **field, const char *value)
{
    if (!*value)
        value = NULL;
    if ((!*field && !value) || (*field && value && strcmp(*field, value) == 0))
        return 0;
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return -1;
    free(*field);
    *field = copy;
    return 1;
}

/* What gossip says of one member; 1 when the list changed, 0, or -1. */
static int apply(kvi_member_list *l, const kvi_gossip_table *t, const kvi_gossip_entry *e)
{
    if (e->status != KVI_MEMBER_UP && e->status != KVI_MEMBER_STOPPED)
        return 0;
    if (l->n && l->items[0].id && strcmp(e->id, l->items[0].id) == 0)
        return 0;
    long i = kvi_members_find_id(l, e->id);
    if (i >= 0) {
        kvi_member *m = &l->items[i];
        if (m->configured)
            return 0;
        int a = set_field(&m->addr, e->addr);
        int h = a < 0 ? 0 : set_field(&m->http, e->http);
        return a < 0 || h < 0 ? -1 : (a || h);
    }
    i = kvi_members_find_addr(l, e->addr);
    if (i == 0)
        return 0; /* an earlier life of this node, under another id */
    if (i > 0) {
        kvi_member *m = &l->items[i];
        if (m->configured)
            return 0;
        const kvi_gossip_entry *known = m->id ? kvi_gossip_find(t, m->id) : NULL;
        if (known && known->generation >= e->generation)
            return 0;
        char *id = strdup(e->id);
        if (!id)
            return -1;
        free(m->id);
        m->id = id;
        m->verified = 0;
        return set_field(&m->http, e->http) < 0 ? -1 : 1;
    }
    return kvi_members_add(l, e->id, e->addr, e->http[0] ? e->http : NULL, 0) == KV_OK ? 1
                                                                                     : -1;
}

int kvi_members_merge_gossip(kvi_member_list *l, const kvi_gossip_table *t)
{
    int changed = 0;
    for (size_t k = 0; k < t->n; k++) {
        int rc = apply(l, t, &t->entries[k]);
        if (rc < 0)
            return -1;
        changed += rc;
    }
    return changed;
}
