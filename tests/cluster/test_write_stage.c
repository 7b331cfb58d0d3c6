/* A loop iteration's writes applied together (cluster/write_stage.h): what
 * the iteration's work staged, wherever in the iteration, is written once
 * the rest of it is done, with one store write, in the order staged; and
 * the loop's late deferred work that it rests on. A real loop and a real
 * store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "api/fixture.h"
#include "cluster/state_values.h"
#include "client/handle.h"
#include "cluster/write_stage.h"
#include "net/loop.h"

typedef struct staging {
    kvi_write_stage *stage;
    kvi_embedded *store;
    kvi_replica_write_args args;
    kvi_sibling values[3];
    kvi_staged_write writes[3];
    kvi_loop_task start;
    kvi_loop_deferred second, third;
    int done[3];
    int b_there_when_a_done; /* "b" was written when "a"'s write was */
    char log[16];            /* the order done callbacks ran in */
} staging;

static void written(kvi_staged_write *w)
{
    staging *s = w->item.args->on_state_ctx;
    size_t i = (size_t)(w - s->writes);
    s->done[i] = w->item.status == KV_OK ? 1 : -1;
    s->log[strlen(s->log)] = (char)('0' + i);
    if (i == 0) {
        kvi_state st;
        kvi_buf holder = {0};
        s->b_there_when_a_done = kvi_replica_read(&st, &holder, s->store, "b", 1) == KV_OK;
        kvi_buf_free(&holder);
    }
}

static void stage(staging *s, size_t i, const char *key)
{
    s->writes[i].item = (kvi_merge_item){.key = key, .key_len = 1, .args = &s->args,
                                          .value = &s->values[i]};
    s->writes[i].done = written;
    kvi_write_stage_add(s->stage, &s->writes[i]);
}

/* Staged by deferred work queued after the first write was staged. */
static void third(void *ctx)
{
    stage(ctx, 2, "a");
}

static void second(void *ctx)
{
    staging *s = ctx;
    stage(s, 1, "b");
    kvi_loop_defer(kvi_write_stage_loop(s->stage), &s->third);
}

/* The stage's flush is queued after the deferred work here: a plain
 * deferred (last in, first out) would run it first, alone. */
static void first(void *ctx)
{
    staging *s = ctx;
    kvi_loop_defer(kvi_write_stage_loop(s->stage), &s->second);
    stage(s, 0, "a");
}

/* A loop, a stage on it for the fixture's store, and plain writes' args. */
static kvi_loop *staging_open(staging *s, fixture *f)
{
    kvi_loop *loop;
    assert_int_equal(kvi_loop_new(&loop), KV_OK);
    memset(s, 0, sizeof *s);
    s->store = f->db->embedded;
    s->args = (kvi_replica_write_args){.node = "n1", .supersede_held = 1, .on_state_ctx = s};
    assert_int_equal(kvi_write_stage_new(&s->stage, loop, s->store), KV_OK);
    return loop;
}

static void staging_close(staging *s, kvi_loop *loop)
{
    kvi_loop_free(loop);
    kvi_write_stage_free(s->stage);
}

static void writes_of_an_iteration_go_in_one_write_after_its_other_work(void **state)
{
    staging s;
    kvi_loop *loop = staging_open(&s, *state);
    s.values[0] = value_of("a1");
    s.values[1] = value_of("b1");
    s.values[2] = value_of("a2");
    kvi_loop_deferred_init(&s.second, second, &s);
    kvi_loop_deferred_init(&s.third, third, &s);
    kvi_loop_post(loop, &s.start, first, &s);
    /* One iteration: the posted task, the deferred work it queued, then the
     * stage's write. */
    kvi_loop_run_once(loop, 0);
    assert_int_equal(s.done[0], 1);
    assert_int_equal(s.done[1], 1);
    assert_int_equal(s.done[2], 1);
    assert_string_equal(s.log, "012");
    assert_true(s.b_there_when_a_done); /* one write for all three */
    /* "a" written twice in the batch: the second counts on from the first. */
    assert_int_equal(s.values[0].version, 1);
    assert_int_equal(s.values[2].version, 2);
    kvi_state st;
    kvi_buf holder = {0};
    assert_int_equal(kvi_replica_read(&st, &holder, s.store, "a", 1), KV_OK);
    assert_int_equal(st.n, 1);
    assert_int_equal(kvi_state_version(&st), 2);
    assert_memory_equal(st.sibs[0].value, "a2", 2);
    kvi_buf_free(&holder);
    staging_close(&s, loop);
}

/* A CAS refused in the batch says why in its own message, whatever the
 * other items did. */
static void a_refused_write_keeps_its_own_message(void **state)
{
    staging s;
    kvi_loop *loop = staging_open(&s, *state);
    kvi_replica_write_args cas = s.args;
    cas.check_version = 1;
    cas.expected_version = 5;
    s.values[0] = value_of("x");
    s.values[1] = value_of("y");
    s.writes[0].item = (kvi_merge_item){.key = "c", .key_len = 1, .args = &cas,
                                          .value = &s.values[0]};
    s.writes[0].done = written;
    s.writes[1].item = (kvi_merge_item){.key = "d", .key_len = 1, .args = &s.args,
                                          .value = &s.values[1]};
    s.writes[1].done = written;
    kvi_write_stage_add(s.stage, &s.writes[0]);
    kvi_write_stage_add(s.stage, &s.writes[1]);
    kvi_loop_run_once(loop, 0);
    assert_int_equal(s.done[0], -1);
    assert_int_equal(s.writes[0].item.status, KV_ECONFLICT);
    assert_non_null(strstr(s.writes[0].why, "expected version 5"));
    assert_int_equal(s.done[1], 1);
    staging_close(&s, loop);
}

/* Paxos messages for this node's acceptor, staged likewise. */
typedef struct paxos_staging paxos_staging;
typedef struct px_item {
    kvi_staged_paxos sp; /* first: the done callback casts back */
    paxos_staging *owner;
    int i;
} px_item;

struct paxos_staging {
    kvi_embedded *store;
    px_item items[3];
    int granted[3];
    char log[8];
    int q_there_when_first_done; /* "q" had a record when the first was told */
};

static void paxos_applied(kvi_staged_paxos *sp)
{
    px_item *it = (px_item *)sp;
    paxos_staging *ps = it->owner;
    kvi_paxos_answer ans;
    if (sp->msg.status == KV_OK &&
        kvi_paxos_answer_decode(&ans, sp->msg.answer.data, sp->msg.answer.len) == 0)
        ps->granted[it->i] = ans.granted ? 1 : -1;
    kvi_buf_free(&sp->msg.answer);
    ps->log[strlen(ps->log)] = (char)('0' + it->i);
    if (it->i == 0)
        ps->q_there_when_first_done = kvi_paxos_has_record(ps->store, "q", 1) == 1;
}

static void stage_paxos(paxos_staging *ps, kvi_write_stage *stage, int i, int kind,
                        const char *key, const kvi_ballot *ballot, const kvi_buf *proposal)
{
    ps->items[i] = (px_item){.owner = ps, .i = i};
    ps->items[i].sp.msg = (kvi_paxos_msg){
        .kind = kind, .key = key, .key_len = 1, .ballot = *ballot,
        .proposal = proposal ? proposal->data : NULL, .proposal_len = proposal ? proposal->len : 0};
    ps->items[i].sp.done = paxos_applied;
    kvi_write_stage_add_paxos(stage, &ps->items[i].sp);
}

/* A promise and an accept of one key, and a promise of another, staged in
 * that order: nothing is applied until the iteration ends; then all go in
 * one store write, in order (the accept meets the promise before it). */
static void paxos_messages_of_an_iteration_go_in_one_write_in_order(void **state)
{
    staging s;
    kvi_loop *loop = staging_open(&s, *state);
    paxos_staging ps;
    memset(&ps, 0, sizeof ps);
    ps.store = s.store;
    kvi_ballot b1;
    assert_int_equal(kvi_ballot_next(&b1, "n1", 1000, &(kvi_ballot){0}), KV_OK);
    kvi_buf proposal = {0};
    kvi_proposal_encode(&proposal, kvi_proposal_id(&b1), "state", 5);
    stage_paxos(&ps, s.stage, 0, KVI_PAXOS_PREPARE, "p", &b1, NULL);
    stage_paxos(&ps, s.stage, 1, KVI_PAXOS_PROPOSE, "p", &b1, &proposal);
    stage_paxos(&ps, s.stage, 2, KVI_PAXOS_PREPARE, "q", &b1, NULL);
    assert_int_equal(kvi_paxos_has_record(s.store, "p", 1), 0);
    kvi_loop_run_once(loop, 0);
    assert_string_equal(ps.log, "012");
    assert_int_equal(ps.granted[0], 1);
    assert_int_equal(ps.granted[1], 1);
    assert_int_equal(ps.granted[2], 1);
    assert_true(ps.q_there_when_first_done);
    assert_int_equal(kvi_paxos_has_record(s.store, "p", 1), 1);
    kvi_buf_free(&proposal);
    staging_close(&s, loop);
}

typedef struct order {
    kvi_loop *loop;
    kvi_loop_deferred early, late, after;
    char log[8];
} order;

static void note(order *o, char c)
{
    o->log[strlen(o->log)] = c;
}

static void after_fn(void *ctx)
{
    note(ctx, 'A');
}

static void late_fn(void *ctx)
{
    order *o = ctx;
    note(o, 'L');
    kvi_loop_defer(o->loop, &o->after); /* runs in this iteration still */
}

static void early_fn(void *ctx)
{
    note(ctx, 'E');
}

static void late_work_runs_after_the_rest_and_before_the_loop_sleeps(void **state)
{
    (void)state;
    order o;
    memset(&o, 0, sizeof o);
    assert_int_equal(kvi_loop_new(&o.loop), KV_OK);
    kvi_loop_deferred_init(&o.early, early_fn, &o);
    kvi_loop_deferred_init(&o.late, late_fn, &o);
    kvi_loop_deferred_init(&o.after, after_fn, &o);
    kvi_loop_defer_late(o.loop, &o.late); /* queued first, runs after */
    kvi_loop_defer(o.loop, &o.early);
    kvi_loop_run_once(o.loop, 0);
    assert_string_equal(o.log, "ELA");
    /* Undeferred late work does not run. */
    memset(o.log, 0, sizeof o.log);
    kvi_loop_defer_late(o.loop, &o.late);
    kvi_loop_undefer(o.loop, &o.late);
    kvi_loop_run_once(o.loop, 0);
    assert_string_equal(o.log, "");
    kvi_loop_free(o.loop);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fixture_open, fixture_close)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(writes_of_an_iteration_go_in_one_write_after_its_other_work),
        T(a_refused_write_keeps_its_own_message),
        T(paxos_messages_of_an_iteration_go_in_one_write_in_order),
        cmocka_unit_test(late_work_runs_after_the_rest_and_before_the_loop_sleeps),
    };
    return cmocka_run_group_tests_name("cluster.write_stage", tests, NULL, NULL);
}
