/* storage/expiry_filter.c - drop expired values and old tombstones. */
#include "storage/expiry_filter.h"

#include <stdlib.h>

#include <kv/common.h>
#include "format/state.h"
#include "format/record.h"
#include "util/clock.h"
#include "util/endian.h"

typedef struct filter_state {
    uint64_t grace_ms;
    int keep_keys; /* never drop a record whole (see the header) */
} filter_state;

/* A replicated state (format 2) goes whole once every sibling is dead (a
 * tombstone, or expired) for longer than the grace period; until then it
 * stays as it is, and reads skip its dead siblings. */
static kvi_expiry_action decide_state(const char *value, size_t value_len, uint64_t token,
                                      uint64_t now_ms, uint64_t grace_ms)
{
    kvi_state *st = malloc(sizeof *st);
    if (!st)
        return KVI_EXPIRY_KEEP;
    kvi_expiry_action action = KVI_EXPIRY_KEEP;
    if (kvi_state_decode(st, value, value_len, token) == KV_OK) {
        action = KVI_EXPIRY_DROP;
        for (size_t i = 0; i < st->n && action == KVI_EXPIRY_DROP; i++) {
            const kvi_sibling *x = &st->sibs[i];
            uint64_t dead_since = x->tombstone ? x->write_ms
                                  : x->expiry_ms && x->expiry_ms <= now_ms ? x->expiry_ms
                                                                            : UINT64_MAX;
            if (dead_since == UINT64_MAX || dead_since + grace_ms > now_ms)
                action = KVI_EXPIRY_KEEP;
        }
    }
    free(st);
    return action;
}

kvi_expiry_action kvi_expiry_decide(const char *key, size_t key_len,
                                    const char *value, size_t value_len,
                                    uint64_t now_ms, uint64_t grace_ms)
{
    if (key_len < KVI_TOKEN_SIZE)
        return KVI_EXPIRY_KEEP;
    uint64_t token = kvi_get_be64((const unsigned char *)key);
    if (value_len > 0 && (unsigned char)value[0] == KVI_STATE_FORMAT)
        return decide_state(value, value_len, token, now_ms, grace_ms);
    kvi_record rec;
    /* A corrupt record is kept: it is evidence, and reads report it. */
    if (kvi_record_decode(&rec, value, value_len, token) != KV_OK)
        return KVI_EXPIRY_KEEP;
    uint64_t dead_since;
    if (rec.tombstone)
        dead_since = rec.write_ms;
    else if (rec.expiry_ms != 0 && rec.expiry_ms <= now_ms)
        dead_since = rec.expiry_ms;
    else
        return KVI_EXPIRY_KEEP;
    /* grace_ms is bounded when the store opens, so this cannot overflow. */
    if (dead_since + grace_ms <= now_ms)
        return KVI_EXPIRY_DROP;
    return rec.tombstone ? KVI_EXPIRY_KEEP : KVI_EXPIRY_TO_TOMBSTONE;
}

static unsigned char filter(void *state, int level, const char *key,
                            size_t key_len, const char *value, size_t value_len,
                            char **new_value, size_t *new_value_len,
                            unsigned char *value_changed)
{
    (void)level;
    const filter_state *fs = state;
    kvi_expiry_action action = kvi_expiry_decide(key, key_len, value, value_len,
                                                 kvi_now_ms(), fs->grace_ms);
    if (action == KVI_EXPIRY_DROP && fs->keep_keys) {
        /* A format-1 expired value still becomes a tombstone, which keeps
         * its entry hash; anything else stays as it is. */
        int expired_value = value_len > 0 &&
                            (unsigned char)value[0] == KVI_RECORD_FORMAT_1 &&
                            value_len > 1 && !((unsigned char)value[1] & KVI_RECORD_FLAG_TOMBSTONE);
        action = expired_value ? KVI_EXPIRY_TO_TOMBSTONE : KVI_EXPIRY_KEEP;
    }
    if (action == KVI_EXPIRY_DROP)
        return 1;
    if (action == KVI_EXPIRY_TO_TOMBSTONE) {
        /* RocksDB's C wrapper copies *new_value and never frees it, and
         * compactions run on several threads at once, so the replacement is
         * built in a per-thread buffer. A tombstone has a fixed size. */
        static _Thread_local unsigned char tombstone[KVI_RECORD_OVERHEAD];
        uint64_t token = kvi_get_be64((const unsigned char *)key);
        kvi_record rec;
        kvi_record_decode(&rec, value, value_len, token);
        kvi_record dead = {
            .version = rec.version, .expiry_ms = 0, .write_ms = rec.expiry_ms,
            .tombstone = 1, .value = NULL, .value_len = 0};
        kvi_record_encode(tombstone, &dead, token);
        *new_value = (char *)tombstone;
        *new_value_len = sizeof tombstone;
        *value_changed = 1;
    }
    return 0;
}

static const char *filter_name(void *state)
{
    (void)state;
    return "kv.expiry";
}

rocksdb_compactionfilter_t *kvi_expiry_filter_create(uint64_t grace_ms, int keep_keys)
{
    filter_state *fs = malloc(sizeof *fs);
    if (!fs)
        return NULL;
    fs->grace_ms = grace_ms;
    fs->keep_keys = keep_keys;
    return rocksdb_compactionfilter_create(fs, free, filter, filter_name);
}
