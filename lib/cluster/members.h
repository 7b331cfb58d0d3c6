/*
 * cluster/members.h - the member list a node builds its ring from (pure:
 * no I/O, no clock, no locks).
 *
 * Members come from three places: the --peers a node is told about (their
 * ids learned by asking each one), the members saved in its store by an
 * earlier run, and the members gossip tells of. Entry 0 is this node.
 *
 * What gossip may change (kvi_members_merge_gossip), per table entry:
 *   - only entries whose status is up or stopped count: a joining member
 *     is not in the ring until it has built its own view and says it is
 *     up; a leaving one is on its way out;
 *   - an unknown id at an unknown address is added;
 *   - a known id at another address (or HTTP address) moves there, unless
 *     it is a configured peer: a peer's address is what the operator gave,
 *     and the peer itself confirms its id when asked;
 *   - an unknown id at the address of a known member that is not a
 *     configured peer replaces it when the table's entry is of a later
 *     generation than the known member's (a node restarted there under a
 *     new id): every node applies the same rule to the same table, so the
 *     rings agree.
 * In a cluster the ring comes from the topology record, not from this list
 * (cluster/membership.h); the list is the address book: where each member
 * is, as gossip follows it.
 *
 * Threads: a list is plain data; its owner guards it.
 */
#ifndef KVI_MEMBERS_H
#define KVI_MEMBERS_H

#include <stddef.h>

#include "format/gossip_table.h"

typedef struct kvi_member {
    char *id;        /* NULL until learned (a configured peer) */
    char *addr;      /* binary protocol */
    char *http;      /* may be NULL */
    int configured;  /* from --peers: its id is learned by asking it */
    int verified;    /* the member itself confirmed its id in this run */
} kvi_member;

typedef struct kvi_member_list {
    kvi_member *items; /* [0] is this node */
    size_t n, cap;
} kvi_member_list;

void kvi_members_init(kvi_member_list *l);
void kvi_members_free(kvi_member_list *l);

/* Appends a member (strings copied; id and http may be NULL). KV_OK,
 * KV_EINVAL past KVI_RING_MAX_MEMBERS, KV_ENOMEM. */
int kvi_members_add(kvi_member_list *l, const char *id, const char *addr, const char *http,
                    int configured);
/* Removes member i (i > 0); the last member takes its place. */
void kvi_members_remove(kvi_member_list *l, size_t i);

/* The index of the member with that id (or address), or -1. */
long kvi_members_find_id(const kvi_member_list *l, const char *id);
long kvi_members_find_addr(const kvi_member_list *l, const char *addr);

/* 1 when every member's id is known. */
int kvi_members_complete(const kvi_member_list *l);

/* Applies the gossiped table t by the rules above. Returns how many
 * members were added or changed (0: the ring stays as it is), or -1 when
 * out of memory or full (what was applied stays). */
int kvi_members_merge_gossip(kvi_member_list *l, const kvi_gossip_table *t);

#endif
