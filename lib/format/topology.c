/* format/topology.c - the topology record: members, consistency, codec. */
#include "format/topology.h"

#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "util/sorted.h"

#define FORMAT 1u
#define MAX_REPLICAS 16u
#define MAX_VNODES 4096u

void kvi_topology_init(kvi_topology *t)
{
    memset(t, 0, sizeof *t);
}

void kvi_topology_free(kvi_topology *t)
{
    free(t->members);
    kvi_topology_init(t);
}

int kvi_topology_copy(kvi_topology *dst, const kvi_topology *src)
{
    kvi_topo_member *m = NULL;
    if (src->n) {
        m = malloc(src->n * sizeof *m);
        if (!m)
            return KV_ENOMEM;
        memcpy(m, src->members, src->n * sizeof *m);
    }
    free(dst->members);
    *dst = *src;
    dst->members = m;
    dst->cap = src->n;
    return KV_OK;
}

static size_t locate(const kvi_topology *t, const char *id, int *found)
{
    return kvi_sorted_find(t->members, t->n, sizeof *t->members, offsetof(kvi_topo_member, id),
                           id, found);
}

const kvi_topo_member *kvi_topology_find(const kvi_topology *t, const char *id)
{
    int found;
    size_t i = locate(t, id, &found);
    return found ? &t->members[i] : NULL;
}

kvi_topo_member *kvi_topology_find_mut(kvi_topology *t, const char *id)
{
    int found;
    size_t i = locate(t, id, &found);
    return found ? &t->members[i] : NULL;
}

static int valid_state(int s)
{
    return s >= KVI_TOPO_NORMAL && s <= KVI_TOPO_LEFT;
}

int kvi_topology_add(kvi_topology *t, const char *id, const char *addr, const char *http,
                     kvi_topo_state state)
{
    if (!http)
        http = "";
    size_t id_len = id ? strlen(id) : 0, addr_len = addr ? strlen(addr) : 0;
    if (id_len == 0 || id_len > KVI_TOPO_MAX_ID || addr_len == 0 ||
        addr_len > KVI_TOPO_MAX_ADDR || strlen(http) > KVI_TOPO_MAX_ADDR ||
        !valid_state((int)state) || t->n >= KVI_TOPO_MAX_MEMBERS)
        return KV_EINVAL;
    int found;
    size_t i = locate(t, id, &found);
    if (found)
        return KV_EINVAL;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        kvi_topo_member *p = realloc(t->members, cap * sizeof *p);
        if (!p)
            return KV_ENOMEM;
        t->members = p;
        t->cap = cap;
    }
    memmove(&t->members[i + 1], &t->members[i], (t->n - i) * sizeof *t->members);
    kvi_topo_member *m = &t->members[i];
    memset(m, 0, sizeof *m);
    memcpy(m->id, id, id_len);
    memcpy(m->addr, addr, addr_len);
    memcpy(m->http, http, strlen(http));
    m->state = (uint8_t)state;
    t->n++;
    return KV_OK;
}

void kvi_topology_remove(kvi_topology *t, const char *id)
{
    int found;
    size_t i = locate(t, id, &found);
    if (!found)
        return;
    memmove(&t->members[i], &t->members[i + 1], (t->n - i - 1) * sizeof *t->members);
    t->n--;
}

/* The state an operation puts its member in. */
static int state_of_op(int op)
{
    switch (op) {
    case KVI_TOPO_OP_JOIN:
        return KVI_TOPO_JOINING;
    case KVI_TOPO_OP_LEAVE:
    case KVI_TOPO_OP_REMOVE:
        return KVI_TOPO_LEAVING;
    case KVI_TOPO_OP_REPLACE:
        return KVI_TOPO_REPLACING;
    default:
        return 0;
    }
}

static int terminated(const char *s, size_t room)
{
    return memchr(s, 0, room) != NULL;
}

const char *kvi_topology_invalid(const kvi_topology *t)
{
    if (t->replicas < 1 || t->replicas > MAX_REPLICAS)
        return "replicas must be 1..16";
    if (t->vnodes < 1 || t->vnodes > MAX_VNODES)
        return "vnodes must be 1..4096";
    if (t->n > KVI_TOPO_MAX_MEMBERS)
        return "too many members";
    size_t in_motion = 0;
    for (size_t i = 0; i < t->n; i++) {
        const kvi_topo_member *m = &t->members[i];
        if (!terminated(m->id, sizeof m->id) || !terminated(m->addr, sizeof m->addr) ||
            !terminated(m->http, sizeof m->http) || !m->id[0] || !m->addr[0])
            return "a member with an empty or overlong id or address";
        if (i && strcmp(t->members[i - 1].id, m->id) >= 0)
            return "members not sorted by id, or an id twice";
        if (!valid_state(m->state))
            return "a member in an unknown state";
        if (m->done > 1 || (m->done && t->op == KVI_TOPO_OP_NONE))
            return "a member done with no operation in progress";
        if (m->state == KVI_TOPO_JOINING || m->state == KVI_TOPO_LEAVING ||
            m->state == KVI_TOPO_REPLACING)
            in_motion++;
    }
    if (!terminated(t->op_member, sizeof t->op_member))
        return "an overlong operation member";
    if (t->op == KVI_TOPO_OP_NONE) {
        if (t->op_member[0] || t->op_epoch)
            return "an operation member or epoch with no operation";
        if (in_motion)
            return "a member joining, leaving or replacing with no operation in progress";
        return NULL;
    }
    int want = state_of_op(t->op);
    if (!want)
        return "an unknown operation";
    const kvi_topo_member *m = kvi_topology_find(t, t->op_member);
    if (!m || m->state != want)
        return "the operation's member is not in the operation's state";
    if (in_motion != 1)
        return "more than one member joining, leaving or replacing";
    if (t->op_epoch == 0 || t->op_epoch > t->epoch)
        return "an operation that began at no epoch, or after the record's";
    return NULL;
}

const char *kvi_topo_state_name(int state)
{
    static const char *const names[] = {"?", "normal", "joining", "leaving", "replacing",
                                        "left"};
    return valid_state(state) ? names[state] : "?";
}

const char *kvi_topo_op_name(int op)
{
    static const char *const names[] = {"none", "join", "leave", "replace", "remove"};
    return op >= 0 && op <= KVI_TOPO_OP_REMOVE ? names[op] : "?";
}

void kvi_topology_encode(kvi_buf *b, const kvi_topology *t)
{
    kvi_buf_u8(b, FORMAT);
    kvi_buf_u64(b, t->epoch);
    kvi_buf_u16(b, t->replicas);
    kvi_buf_u16(b, t->vnodes);
    kvi_buf_u8(b, t->op);
    kvi_buf_bytes(b, t->op_member, strlen(t->op_member));
    kvi_buf_u64(b, t->op_epoch);
    kvi_buf_u16(b, (uint16_t)t->n);
    for (size_t i = 0; i < t->n; i++) {
        const kvi_topo_member *m = &t->members[i];
        kvi_buf_bytes(b, m->id, strlen(m->id));
        kvi_buf_bytes(b, m->addr, strlen(m->addr));
        kvi_buf_bytes(b, m->http, strlen(m->http));
        kvi_buf_u8(b, m->state);
        kvi_buf_u8(b, m->done);
    }
}

int kvi_topology_decode(kvi_topology *out, const void *data, size_t len)
{
    kvi_topology_init(out);
    kvi_reader r = kvi_reader_init(data, len);
    if (kvi_read_u8(&r) != FORMAT)
        return KV_EINVAL;
    out->epoch = kvi_read_u64(&r);
    out->replicas = kvi_read_u16(&r);
    out->vnodes = kvi_read_u16(&r);
    out->op = kvi_read_u8(&r);
    kvi_bytes op_member = kvi_read_bytes(&r);
    out->op_epoch = kvi_read_u64(&r);
    uint16_t count = kvi_read_u16(&r);
    if (r.failed || count > KVI_TOPO_MAX_MEMBERS ||
        kvi_bytes_to_cstring(out->op_member, sizeof out->op_member, op_member))
        return KV_EINVAL;
    if (count) {
        out->members = calloc(count, sizeof *out->members);
        if (!out->members)
            return KV_ENOMEM;
        out->cap = count;
    }
    for (uint16_t i = 0; i < count; i++) {
        kvi_topo_member *m = &out->members[i];
        kvi_bytes id = kvi_read_bytes(&r);
        kvi_bytes addr = kvi_read_bytes(&r);
        kvi_bytes http = kvi_read_bytes(&r);
        m->state = kvi_read_u8(&r);
        m->done = kvi_read_u8(&r);
        if (r.failed || kvi_bytes_to_cstring(m->id, sizeof m->id, id) ||
            kvi_bytes_to_cstring(m->addr, sizeof m->addr, addr) ||
            kvi_bytes_to_cstring(m->http, sizeof m->http, http)) {
            kvi_topology_free(out);
            return KV_EINVAL;
        }
        out->n++;
    }
    if (kvi_reader_done(&r) != 0 || kvi_topology_invalid(out)) {
        kvi_topology_free(out);
        return KV_EINVAL;
    }
    return KV_OK;
}

int kvi_topology_equal(const kvi_topology *a, const kvi_topology *b)
{
    if (a->epoch != b->epoch || a->replicas != b->replicas || a->vnodes != b->vnodes ||
        a->op != b->op || a->op_epoch != b->op_epoch || strcmp(a->op_member, b->op_member) ||
        a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; i++) {
        const kvi_topo_member *x = &a->members[i], *y = &b->members[i];
        if (strcmp(x->id, y->id) || strcmp(x->addr, y->addr) || strcmp(x->http, y->http) ||
            x->state != y->state || x->done != y->done)
            return 0;
    }
    return 1;
}
