/* cluster/serial.c - the driver of SERIAL requests (see serial.h). */
#include "cluster/serial.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "cluster/paxos_acceptor.h"
#include "format/record.h"
#include "util/clock.h"
#include "util/error.h"
#include "format/value.h"

uint64_t kvi_serial_homes_hash(const kvi_view *v, const void *key, size_t key_len)
{
    uint32_t homes[KVI_PX_MAX_HOMES];
    size_t n = kvi_coord_homes(v, key, key_len, homes);
    uint64_t h = n;
    for (size_t i = 0; i < n; i++) {
        const char *id = v->members[homes[i]].id;
        h = XXH3_64bits_withSeed(id, strlen(id), h); /* chained: order counts */
    }
    return h;
}

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint8_t opcode_of(kvi_px_phase phase)
{
    return phase == KVI_PX_PREPARE ? KVI_OP_PAXOS_PREPARE
         : phase == KVI_PX_PROPOSE ? KVI_OP_PAXOS_PROPOSE : KVI_OP_PAXOS_COMMIT;
}

/* The current message applied to this node's own replica. */
static int local_message(const kvi_coord_env *env, const kvi_px_round *r, kvi_buf *answer)
{
    const kvi_serial_request *q = &r->req;
    switch (r->msg.phase) {
    case KVI_PX_PREPARE:
        return kvi_paxos_on_prepare(env->local, q->key, q->key_len, &r->msg.ballot, answer);
    case KVI_PX_PROPOSE:
        return kvi_paxos_on_propose(env->local, q->key, q->key_len, &r->msg.ballot,
                                    r->msg.state.data, r->msg.state.len, answer);
    case KVI_PX_COMMIT:
        return kvi_paxos_on_commit(env->local, q->key, q->key_len, &r->msg.ballot,
                                   r->msg.state.data, r->msg.state.len, answer);
    }
    return kvi_error(KV_EINVAL, "no Paxos message");
}

/* The calls of the message in flight, one per home. */
typedef struct flight {
    kvi_fanout fo;
    kvi_call *calls[KVI_PX_MAX_HOMES];
    int fed[KVI_PX_MAX_HOMES];
    unsigned remote_fed;
    int live;
} flight;

static void flight_drop(flight *f)
{
    if (!f->live)
        return;
    /* Calls still out are given up: the homes act on them all the same. */
    for (size_t i = 0; i < KVI_PX_MAX_HOMES; i++) {
        if (!f->calls[i])
            continue;
        kvi_frame_header h;
        unsigned char *body = NULL;
        kvi_call_finish(f->calls[i], &h, &body);
        free(body);
        f->calls[i] = NULL;
    }
    kvi_fanout_destroy(&f->fo);
    f->live = 0;
}

typedef struct driver {
    const kvi_coord_env *env;
    kvi_px_round *r;
    uint32_t homes[KVI_PX_MAX_HOMES];
    size_t n;
    uint64_t homes_hash;
    unsigned ring_disagree;   /* homes that said our ring is not theirs */
    flight f;
} driver;

/* One home's answer to the message in flight (rc: the call's outcome). */
static kvi_px_step feed(driver *d, size_t i, int rc, const kvi_frame_header *h,
                        const unsigned char *body)
{
    kvi_response resp;
    if (rc == KV_OK)
        rc = kvi_call_decode(&resp, opcode_of(d->r->msg.phase), h, body);
    if (rc == KVI_ENOT_REPLICA)
        d->ring_disagree++;
    if (rc != KV_OK) {
        kvi_log(d->env->log, KV_LOG_DEBUG, "home %s did not take a Paxos message: %s",
                d->env->view->members[d->homes[i]].id, kvi_error_last());
        return kvi_px_failed(d->r, i);
    }
    return kvi_px_answer(d->r, i, resp.value.data, resp.value.len);
}

/* Sends the round's message to every home; the local one and the homes
 * known down are answered at once (fed in turn until the round moves on). */
static kvi_px_step send_message(driver *d)
{
    const kvi_coord_env *env = d->env;
    kvi_view *v = env->view;
    kvi_px_round *r = d->r;
    flight_drop(&d->f);
    memset(&d->f, 0, sizeof d->f);
    kvi_fanout_init(&d->f.fo);
    d->f.live = 1;
    kvi_buf ballot = {0};
    kvi_ballot_encode(&ballot, &r->msg.ballot);
    kvi_request req = {
        .opcode = opcode_of(r->msg.phase), .expected_version = d->homes_hash,
        .key = {r->req.key, r->req.key_len}, .context = {ballot.data, ballot.len},
        .value = {r->msg.state.data, r->msg.phase == KVI_PX_PREPARE ? 0 : r->msg.state.len},
    };
    int self = -1;
    int is_down[KVI_PX_MAX_HOMES] = {0};
    for (size_t i = 0; i < d->n; i++) {
        if (v->self >= 0 && d->homes[i] == (uint32_t)v->self) {
            self = (int)i;
            continue;
        }
        is_down[i] = kvi_coord_down(env, d->homes[i]);
        if (!is_down[i] && !ballot.failed)
            d->f.calls[i] = kvi_call_start(kvi_view_client(v, d->homes[i]), &d->f.fo, &req, 0,
                                           1);
    }
    /* Homes held down, and calls that could not even be made, fail now. */
    kvi_px_step step = KVI_PX_WAIT;
    for (size_t i = 0; i < d->n && step == KVI_PX_WAIT; i++) {
        if ((int)i == self || (!is_down[i] && d->f.calls[i]))
            continue;
        if (!is_down[i] && !ballot.failed)
            d->f.remote_fed++; /* a NULL call was counted in the fan-out */
        d->f.fed[i] = 1;
        step = kvi_px_failed(r, i);
    }
    if (self >= 0 && step == KVI_PX_WAIT) {
        kvi_buf answer = {0};
        int rc = local_message(env, r, &answer);
        d->f.fed[self] = 1;
        if (rc == KV_OK && !answer.failed) {
            step = kvi_px_answer(r, (size_t)self, answer.data, answer.len);
        } else {
            kvi_log(env->log, KV_LOG_WARN, "this node's replica failed a Paxos message: %s",
                    kvi_error_last());
            step = kvi_px_failed(r, (size_t)self);
        }
        kvi_buf_free(&answer);
    }
    kvi_buf_free(&ballot);
    return step;
}

/* Waits for the next answers of the message in flight, until the deadline. */
static kvi_px_step wait_answers(driver *d, const struct timespec *deadline)
{
    kvi_fanout_wait(&d->f.fo, UINT_MAX, d->f.remote_fed + 1, deadline);
    kvi_px_step step = KVI_PX_WAIT;
    int progressed = 0;
    for (size_t i = 0; i < d->n && step == KVI_PX_WAIT; i++) {
        if (d->f.fed[i] || !d->f.calls[i] || !kvi_call_done(d->f.calls[i]))
            continue;
        kvi_frame_header h;
        unsigned char *body = NULL;
        int rc = kvi_call_finish(d->f.calls[i], &h, &body);
        d->f.calls[i] = NULL;
        d->f.fed[i] = 1;
        d->f.remote_fed++;
        progressed = 1;
        step = feed(d, i, rc, &h, body);
        free(body);
    }
    if (!progressed) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec > deadline->tv_sec ||
            (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec))
            return kvi_px_deadline(d->r);
    }
    return step;
}

static void sleep_until(uint64_t ms, const struct timespec *deadline)
{
    struct timespec now, until;
    clock_gettime(CLOCK_MONOTONIC, &now);
    until = now;
    until.tv_sec += (time_t)(ms / 1000u);
    until.tv_nsec += (long)(ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    if (until.tv_sec > deadline->tv_sec ||
        (until.tv_sec == deadline->tv_sec && until.tv_nsec > deadline->tv_nsec))
        until = *deadline;
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) != 0) {
    }
}

int kvi_serial_run(const kvi_coord_env *env, kvi_serial_request *req, kv_value **out_value,
                   uint64_t *out_version)
{
    if (out_value)
        *out_value = NULL;
    kvi_view *v = env->view;
    if (v->self < 0 || !env->local)
        return kvi_error(KV_EINVAL, "SERIAL requests are coordinated by a node");
    driver d = {.env = env};
    d.n = kvi_coord_homes(v, req->key, req->key_len, d.homes);
    d.homes_hash = kvi_serial_homes_hash(v, req->key, req->key_len);
    req->node = v->members[v->self].id;
    req->now_ms = kvi_now_ms();
    kvi_px_round *r = malloc(sizeof *r);
    if (!r)
        return kvi_error(KV_ENOMEM, "out of memory starting a SERIAL request");
    struct timespec seed;
    clock_gettime(CLOCK_MONOTONIC, &seed);
    if (kvi_px_init(r, req, d.n, (uint64_t)seed.tv_nsec ^ (uint64_t)(uintptr_t)r) != KV_OK) {
        free(r);
        return kvi_error(KV_EINVAL, "no home replicas for this key");
    }
    d.r = r;
    struct timespec deadline = kvi_deadline_after(kvi_coord_timeout_ms(v));
    kvi_px_step step = kvi_px_start(r, now_us());
    while (step != KVI_PX_DONE) {
        switch (step) {
        case KVI_PX_SEND:
            step = send_message(&d);
            break;
        case KVI_PX_WAIT:
            step = wait_answers(&d, &deadline);
            break;
        case KVI_PX_BACKOFF:
            flight_drop(&d.f);
            if (r->backoff_ms)
                sleep_until(r->backoff_ms, &deadline);
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec > deadline.tv_sec ||
                (now.tv_sec == deadline.tv_sec && now.tv_nsec >= deadline.tv_nsec))
                step = kvi_px_deadline(r);
            else
                step = kvi_px_retry(r, now_us());
            break;
        case KVI_PX_DONE:
            break;
        }
    }
    flight_drop(&d.f);
    int rc = r->rc;
    if ((rc == KV_EUNAVAILABLE || rc == KV_ETIMEDOUT) && d.ring_disagree)
        rc = kvi_error(KV_EUNAVAILABLE, "%u home replica(s) of this key see other homes (the "
                       "ring is changing); SERIAL is refused until the nodes agree; not "
                       "applied", d.ring_disagree);
    else if (rc == KV_OK && req->op == KVI_SERIAL_GET) {
        rc = kvi_value_from_state(out_value, &r->result, req->now_ms,
                                  req->all_siblings ? 0 : 1);
        if (rc == KV_ENOTFOUND)
            rc = kvi_error(KV_ENOTFOUND, "key not found");
        else if (rc != KV_OK)
            rc = kvi_error(rc, "out of memory copying a value");
    } else if (rc != KV_OK)
        rc = kvi_error(rc, "%s", r->message);
    if (out_version && (rc == KV_OK || rc == KV_ECONFLICT))
        *out_version = r->version;
    kvi_px_free(r);
    free(r);
    return rc;
}
