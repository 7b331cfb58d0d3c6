/*
 * format/gossip_table.h - the member table that gossip spreads (pure: no
 * I/O, no clock). See docs/design/FAILURES.md.
 *
 * Each entry is what a member says about itself: its id, addresses, its
 * generation (when it started, so a restart is newer), its heartbeat
 * (bumped by the member itself every second) and its own status. Tables
 * merge entry by entry:
 *   - an id not known yet is added;
 *   - a higher generation replaces the entry (the member restarted);
 *   - at the same generation, a higher heartbeat replaces it (newer news);
 *   - anything else is older news and is ignored.
 * So merging is idempotent, commutative and associative, and every node
 * converges on each member's latest word. Whether a member is *down* is not
 * in the table: each node concludes that for itself (cluster/phi.h), except
 * for a member that announced its own clean shutdown.
 *
 * Encoding, integers big-endian: u8 format (3), u16 count, then per entry
 * (sorted by id, ids distinct): bytes id, bytes address, bytes http
 * address (may be empty), u64 generation, u64 heartbeat, u8 status, u64
 * repaired_ms, u64 epoch. Formats 1 (without the last two) and 2 (without
 * the epoch) are still read.
 * "bytes" is a u32 length and that many bytes (message.h).
 *
 * Threads: a table is plain data; its owner guards it.
 */
#ifndef KVI_GOSSIP_TABLE_H
#define KVI_GOSSIP_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include <kv/common.h>
#include "format/message.h"

#define KVI_GOSSIP_MAX_MEMBERS 1024u
#define KVI_GOSSIP_MAX_ID 64u
#define KVI_GOSSIP_MAX_ADDR 127u

typedef enum kvi_member_status {
    KVI_MEMBER_JOINING = 1, /* started, learning the cluster */
    KVI_MEMBER_UP = 2,      /* serving */
    KVI_MEMBER_LEAVING = 3, /* leaving the cluster for good */
    KVI_MEMBER_STOPPED = 4  /* stopped cleanly; will be back */
} kvi_member_status;

typedef struct kvi_gossip_entry {
    char id[KVI_GOSSIP_MAX_ID + 1];
    char addr[KVI_GOSSIP_MAX_ADDR + 1];
    char http[KVI_GOSSIP_MAX_ADDR + 1]; /* "" when none */
    uint64_t generation;
    uint64_t heartbeat;
    uint8_t status;                     /* kvi_member_status */
    /* When the member was last fully repaired (cluster/anti_entropy.h):
     * wall-clock ms, 0 = never. Tombstone purges wait on every replica's. */
    uint64_t repaired_ms;
    /* The epoch of the topology record the member holds (format/
     * topology.h); 0 = none. A member that sees a higher one fetches it. */
    uint64_t epoch;
} kvi_gossip_entry;

typedef struct kvi_gossip_table {
    size_t n, cap;
    kvi_gossip_entry *entries; /* sorted by id */
} kvi_gossip_table;

void kvi_gossip_table_init(kvi_gossip_table *t);
void kvi_gossip_table_free(kvi_gossip_table *t);

/* The entry of id, or NULL. */
const kvi_gossip_entry *kvi_gossip_find(const kvi_gossip_table *t, const char *id);

/* Merges one entry by the rules above. Returns 1 when the table changed,
 * 0 when the entry was old news, -1 when it is invalid (empty or too long
 * an id, an empty address, an unknown status) or the table is full or out
 * of memory. */
int kvi_gossip_merge_entry(kvi_gossip_table *t, const kvi_gossip_entry *e);

/* Whether a received entry is believable, before it is merged: NULL when
 * it is, else why not. Even an authenticated peer's news is checked (a
 * bug, or a member that was compromised, must not rewrite the cluster):
 *   - no one else speaks for this node (self_id);
 *   - a member's addresses change only with a new generation (a restart);
 *   - a new id may not take an address a member holds at the same or a
 *     later generation (a rename is a restart too);
 *   - a generation (a start time, ms since the epoch), and a last full
 *     repair, are not more than a day ahead of now_ms. */
#define KVI_GOSSIP_MAX_CLOCK_AHEAD_MS (24ull * 3600u * 1000u)
const char *kvi_gossip_implausible(const kvi_gossip_table *t, const kvi_gossip_entry *e,
                                   const char *self_id, uint64_t now_ms);

/* Merges every entry of other into t; returns how many changed t. */
size_t kvi_gossip_merge(kvi_gossip_table *t, const kvi_gossip_table *other);

void kvi_gossip_encode(kvi_buf *b, const kvi_gossip_table *t);
/* KV_OK, or KV_EINVAL for anything malformed (short, trailing bytes,
 * unsorted or repeated ids, bad lengths or status). out is initialised
 * either way; free it with kvi_gossip_table_free. */
int kvi_gossip_decode(kvi_gossip_table *out, const void *data, size_t len);

#endif
