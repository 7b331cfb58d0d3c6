/*
 * cluster/anti_entropy.h - a node's anti-entropy: when to run an exchange
 * (cluster/ae_exchange.h) and with whom, repair rounds an operator asks
 * for, and the figures of both.
 *
 * Periodically (every interval, jittered by a quarter either way) the node
 * exchanges with the next member it shares token ranges with, in turn,
 * skipping members the failure detector holds down. A repair round
 * (kvctl repair) exchanges with every such member now, one after another.
 * One exchange runs at a time.
 *
 * A node is "fully repaired as of T" when, for every member it shares
 * ranges with, an exchange that started at T or later ended cleanly:
 * tombstone purges are tied to this (docs/design/ANTI_ENTROPY.md).
 *
 * Threads: kvi_anti_entropy_repair, _status and _stop from any thread;
 * exchanges run on the given loop. _free only once the loop has stopped
 * (or will never run again) and the tracker the environment counts with
 * has drained.
 */
#ifndef KVI_ANTI_ENTROPY_H
#define KVI_ANTI_ENTROPY_H

#include <stdint.h>

#include "cluster/ae_exchange.h"
#include "cluster/coordinator.h"
#include "net/loop.h"
#include "util/log.h"

typedef struct kvi_anti_entropy_config {
    /* The coordinator's environment with a reference on its view (the
     * caller drops it), or an error while membership is incomplete. */
    int (*env)(void *ctx, kvi_coord_env *out);
    void *env_ctx;
    kvi_loop *loop;        /* the loop of the view's connections */
    uint32_t interval_ms;  /* between periodic exchanges; 0: none (rounds only) */
    uint64_t rate_bytes;   /* per second, each exchange; 0: no limit */
    uint32_t recheck_ms;   /* 0: the exchange's default */
    const char *self_id;   /* seeds the jitter; copied */
    /* Told each time the node's last full repair moves (on the loop; may
     * be NULL): the node gossips it, for purges. */
    void (*on_full_repair)(void *ctx, uint64_t repaired_ms);
    const kvi_logger *log; /* borrowed */
} kvi_anti_entropy_config;

/* A repair round an operator asked for. */
typedef struct kvi_ae_round {
    uint64_t id;          /* 0: none yet */
    int running;
    uint64_t started_ms, finished_ms; /* wall clock */
    uint32_t peers, peers_done, peers_failed;
    uint64_t keys_repaired, bytes;
    char error[240];      /* the first failure's, "" when none */
} kvi_ae_round;

typedef struct kvi_ae_status {
    uint64_t exchanges_ok, exchanges_failed;
    uint64_t keys_received, keys_sent, records_damaged;
    uint64_t bytes[KVI_AE_PHASES];
    /* Wall clock ms; 0: never. */
    uint64_t last_full_repair_ms;
    uint64_t last_exchange_ms;
    /* The age of the oldest difference the last exchange repaired, as of
     * its end (ms; 0: it found none). */
    uint64_t lag_ms;
    char last_peer[72];
    char last_error[240]; /* the last exchange's failure, "" when it ended cleanly */
    kvi_ae_round round;   /* the current or last round */
} kvi_ae_status;

/* What one member's exchanges with this node came to: the ranges the two
 * share were last fully compared by the exchange that started at
 * clean_start_ms. */
typedef struct kvi_ae_peer_status {
    char id[72];
    uint64_t clean_start_ms; /* the last clean exchange's start; 0: never */
    uint64_t last_end_ms;    /* when the last exchange, clean or not, ended */
    char last_error[240];    /* its failure; "" when it ended cleanly */
} kvi_ae_peer_status;

typedef struct kvi_anti_entropy kvi_anti_entropy;

int kvi_anti_entropy_start(kvi_anti_entropy **out, const kvi_anti_entropy_config *cfg);
/* Starts a repair round now (or joins the one running): *round_id
 * receives its id. KV_OK, or KV_EUNAVAILABLE once stopping. */
int kvi_anti_entropy_repair(kvi_anti_entropy *ae, uint64_t *round_id);
void kvi_anti_entropy_status(kvi_anti_entropy *ae, kvi_ae_status *out);
/* Each member this node has exchanged with: up to max into out; returns
 * how many there are. */
size_t kvi_anti_entropy_peers(kvi_anti_entropy *ae, kvi_ae_peer_status *out, size_t max);
/* Starts no more exchanges and asks the running one to end. */
void kvi_anti_entropy_stop(kvi_anti_entropy *ae);
void kvi_anti_entropy_free(kvi_anti_entropy *ae);

#endif
