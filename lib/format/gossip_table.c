/* format/gossip_table.c - the gossiped member table: merge and codec. */
#include "format/gossip_table.h"

#include <stdlib.h>
#include <string.h>

#include <kv/common.h>
#include "util/sorted.h"

/* Format 2 added each member's last full repair, format 3 its topology
 * epoch; the older ones are still read (as 0: never, none). */
#define FORMAT 3u
#define FORMAT_2 2u
#define FORMAT_1 1u

void kvi_gossip_table_init(kvi_gossip_table *t)
{
    memset(t, 0, sizeof *t);
}

void kvi_gossip_table_free(kvi_gossip_table *t)
{
    free(t->entries);
    kvi_gossip_table_init(t);
}

/* The index of id, or where it would go (*found says which). */
static size_t locate(const kvi_gossip_table *t, const char *id, int *found)
{
    return kvi_sorted_find(t->entries, t->n, sizeof *t->entries,
                           offsetof(kvi_gossip_entry, id), id, found);
}

const kvi_gossip_entry *kvi_gossip_find(const kvi_gossip_table *t, const char *id)
{
    int found;
    size_t i = locate(t, id, &found);
    return found ? &t->entries[i] : NULL;
}

static int valid(const kvi_gossip_entry *e)
{
    size_t id_len = strnlen(e->id, sizeof e->id);
    size_t addr_len = strnlen(e->addr, sizeof e->addr);
    return id_len > 0 && id_len <= KVI_GOSSIP_MAX_ID && addr_len > 0 &&
           addr_len <= KVI_GOSSIP_MAX_ADDR && strnlen(e->http, sizeof e->http) <= KVI_GOSSIP_MAX_ADDR &&
           e->status >= KVI_MEMBER_JOINING && e->status <= KVI_MEMBER_STOPPED;
}

int kvi_gossip_merge_entry(kvi_gossip_table *t, const kvi_gossip_entry *e)
{
    if (!valid(e))
        return -1;
    int found;
    size_t i = locate(t, e->id, &found);
    if (found) {
        kvi_gossip_entry *have = &t->entries[i];
        int newer = e->generation > have->generation ||
                    (e->generation == have->generation && e->heartbeat > have->heartbeat);
        if (!newer)
            return 0;
        *have = *e;
        return 1;
    }
    if (t->n == KVI_GOSSIP_MAX_MEMBERS)
        return -1;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        kvi_gossip_entry *p = realloc(t->entries, cap * sizeof *p);
        if (!p)
            return -1;
        t->entries = p;
        t->cap = cap;
    }
    memmove(&t->entries[i + 1], &t->entries[i], (t->n - i) * sizeof *t->entries);
    t->entries[i] = *e;
    t->n++;
    return 1;
}

const char *kvi_gossip_implausible(const kvi_gossip_table *t, const kvi_gossip_entry *e,
                                   const char *self_id, uint64_t now_ms)
{
    if (self_id && strncmp(e->id, self_id, sizeof e->id) == 0)
        return "an entry about this node from another";
    if (e->generation > now_ms + KVI_GOSSIP_MAX_CLOCK_AHEAD_MS)
        return "a generation more than a day ahead of this node's clock";
    /* Tombstones are purged on the strength of it: never from the future. */
    if (e->repaired_ms > now_ms + KVI_GOSSIP_MAX_CLOCK_AHEAD_MS)
        return "a last full repair more than a day ahead of this node's clock";
    const kvi_gossip_entry *have = kvi_gossip_find(t, e->id);
    if (have) {
        if (e->generation == have->generation &&
            (strncmp(e->addr, have->addr, sizeof e->addr) != 0 ||
             strncmp(e->http, have->http, sizeof e->http) != 0))
            return "a member's address changed without a new generation";
        return NULL;
    }
    for (size_t i = 0; i < t->n; i++)
        if (strncmp(t->entries[i].addr, e->addr, sizeof e->addr) == 0 &&
            t->entries[i].generation >= e->generation)
            return "a new id at a member's address without a newer generation";
    return NULL;
}

size_t kvi_gossip_merge(kvi_gossip_table *t, const kvi_gossip_table *other)
{
    size_t changed = 0;
    for (size_t i = 0; i < other->n; i++)
        changed += kvi_gossip_merge_entry(t, &other->entries[i]) == 1;
    return changed;
}

void kvi_gossip_encode(kvi_buf *b, const kvi_gossip_table *t)
{
    kvi_buf_u8(b, FORMAT);
    kvi_buf_u16(b, (uint16_t)t->n);
    for (size_t i = 0; i < t->n; i++) {
        const kvi_gossip_entry *e = &t->entries[i];
        kvi_buf_bytes(b, e->id, strlen(e->id));
        kvi_buf_bytes(b, e->addr, strlen(e->addr));
        kvi_buf_bytes(b, e->http, strlen(e->http));
        kvi_buf_u64(b, e->generation);
        kvi_buf_u64(b, e->heartbeat);
        kvi_buf_u8(b, e->status);
        kvi_buf_u64(b, e->repaired_ms);
        kvi_buf_u64(b, e->epoch);
    }
}

int kvi_gossip_decode(kvi_gossip_table *out, const void *data, size_t len)
{
    kvi_gossip_table_init(out);
    kvi_reader r = kvi_reader_init(data, len);
    unsigned format = kvi_read_u8(&r);
    if (format != FORMAT && format != FORMAT_2 && format != FORMAT_1)
        return KV_EINVAL;
    uint16_t count = kvi_read_u16(&r);
    if (r.failed || count > KVI_GOSSIP_MAX_MEMBERS)
        return KV_EINVAL;
    for (uint16_t i = 0; i < count; i++) {
        kvi_gossip_entry e;
        memset(&e, 0, sizeof e);
        kvi_bytes id = kvi_read_bytes(&r);
        kvi_bytes addr = kvi_read_bytes(&r);
        kvi_bytes http = kvi_read_bytes(&r);
        e.generation = kvi_read_u64(&r);
        e.heartbeat = kvi_read_u64(&r);
        e.status = kvi_read_u8(&r);
        if (format >= FORMAT_2)
            e.repaired_ms = kvi_read_u64(&r);
        if (format >= FORMAT)
            e.epoch = kvi_read_u64(&r);
        if (r.failed || kvi_bytes_to_cstring(e.id, sizeof e.id, id) ||
            kvi_bytes_to_cstring(e.addr, sizeof e.addr, addr) ||
            kvi_bytes_to_cstring(e.http, sizeof e.http, http) || !valid(&e) ||
            (out->n && strcmp(out->entries[out->n - 1].id, e.id) >= 0) ||
            kvi_gossip_merge_entry(out, &e) != 1) {
            kvi_gossip_table_free(out);
            return KV_EINVAL;
        }
    }
    if (kvi_reader_done(&r) != 0) {
        kvi_gossip_table_free(out);
        return KV_EINVAL;
    }
    return KV_OK;
}
