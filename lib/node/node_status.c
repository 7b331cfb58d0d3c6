/*
 * node/node_status.c - GET /v1/status, what the status page (GET /ui,
 * lib/net/ui/status.html) shows: this node's own description and each
 * member's, which this node asks for over the binary protocol (CLUSTER),
 * through its view's connections to its peers, all at once.
 *
 *   {"nodeId": "n1", "timeoutMs": 1000, "nodes": [
 *     {"nodeId", "address", "httpAddress", "self": bool, "up": bool,
 *      "status": "up"|"down" (this node's failure detector; null for
 *      itself), "error": null or why the member did not answer,
 *      "description": its GET /v1/cluster object, or null}]}
 *
 * A small state machine on the peers loop (where the view's connections
 * run): it sends the requests, keeps each answer as it comes, and renders
 * the document when the last one is in or its deadline (?timeoutMs=,
 * 1000 ms by default) has passed, whichever comes first. The HTTP
 * connection is suspended meanwhile: no HTTP thread waits on a member, so
 * a status page open while a member is paused holds up no data request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "cluster/view.h"
#include "net/client.h"
#include "format/message.h"
#include "net/http.h"
#include "net/http_json.h"
#include "net/loop.h"
#include "node/node_internal.h"

typedef struct status_run status_run;

typedef struct status_member {
    status_run *run;
    const kvi_view_member *vm; /* borrowed from the run's view */
    int self;
    int answered;              /* its answer (or failure) is in */
    int rc;                    /* KV_OK: desc holds its description */
    char *desc;                /* malloc'd JSON object */
    size_t desc_len;
    char why[600];             /* rc != KV_OK */
} status_member;

/* One GET /v1/status. Touched on the peers loop only (after the start,
 * which runs there too), so it needs no lock. */
struct status_run {
    kvi_node *n;
    kvi_view *view; /* a reference; NULL: this node alone */
    kvi_loop *loop;
    unsigned timeout_ms;
    size_t count;
    status_member *m;
    unsigned pending;  /* members asked that have not answered */
    unsigned refs;     /* the run's own, and one per request in flight */
    int finished;      /* the document has gone to done */
    int cut_short;     /* finished early: the node is stopping */
    int linked;        /* in the node's list of runs waiting on members */
    status_run *next, *prev;
    kvi_loop_task start;
    kvi_loop_timer deadline;
    kvi_http_done_fn done;
    void *done_ctx;
};

/* "nodeId", "address" and "httpAddress" of a member (opening its object). */
static void member_head(kvi_buf *out, const char *id, const char *addr, const char *http)
{
    kvi_http_json_raw(out, "{\"nodeId\":");
    kvi_http_json_message(out, id);
    kvi_http_json_raw(out, ",\"address\":");
    if (addr)
        kvi_http_json_message(out, addr);
    else
        kvi_http_json_raw(out, "null");
    kvi_http_json_raw(out, ",\"httpAddress\":");
    if (http)
        kvi_http_json_message(out, http);
    else
        kvi_http_json_raw(out, "null");
}

static void self_entry(const kvi_node *n, kvi_buf *out)
{
    member_head(out, n->node_id, n->listen_addr, n->http_addr);
    kvi_http_json_raw(out, ",\"self\":true,\"up\":true,\"status\":null,\"error\":null,"
                           "\"description\":");
    kvi_node_describe(n, out);
    kvi_http_json_raw(out, "}");
}

/* A peer's entry from what it answered: its description, or "up": false
 * and why. */
static void peer_entry(kvi_node *n, const status_member *m, const status_run *r, kvi_buf *out)
{
    member_head(out, m->vm->id, m->vm->addr, m->vm->http);
    int up = m->answered && m->rc == KV_OK;
    kvi_http_json_raw(out, up ? ",\"self\":false,\"up\":true,\"status\":"
                              : ",\"self\":false,\"up\":false,\"status\":");
    kvi_http_json_raw(out, kvi_membership_is_down(n->membership, m->vm->id) ? "\"down\""
                                                                            : "\"up\"");
    if (up) {
        kvi_http_json_raw(out, ",\"error\":null,\"description\":");
        kvi_buf_raw(out, m->desc, m->desc_len);
    } else {
        char why[64];
        if (!m->answered && r->cut_short)
            snprintf(why, sizeof why, "no answer before this node began to stop");
        else if (!m->answered)
            snprintf(why, sizeof why, "no answer within %u ms", r->timeout_ms);
        kvi_http_json_raw(out, ",\"error\":");
        kvi_http_json_message(out, m->answered ? m->why : why);
        kvi_http_json_raw(out, ",\"description\":null");
    }
    kvi_http_json_raw(out, "}");
}

/* Keeps a member's answer: its description when it gave one that parses as
 * a JSON object (so a broken answer cannot break the whole document). */
static void keep_answer(status_member *m, const kvi_reply *reply)
{
    kvi_response resp;
    int rc = kvi_reply_decode(&resp, reply, KVI_OP_CLUSTER);
    if (rc == KV_OK) {
        cJSON *root = cJSON_ParseWithLength((const char *)resp.value.data, resp.value.len);
        if (!cJSON_IsObject(root))
            rc = kvi_error(KV_EIO, "its description is not a JSON object");
        cJSON_Delete(root);
    }
    if (rc == KV_OK) {
        m->desc = malloc(resp.value.len ? resp.value.len : 1);
        if (!m->desc)
            rc = kvi_error(KV_ENOMEM, "out of memory keeping its description");
        else
            memcpy(m->desc, resp.value.data, resp.value.len);
        m->desc_len = resp.value.len;
    }
    m->rc = rc;
    if (rc != KV_OK)
        snprintf(m->why, sizeof m->why, "%s", kvi_error_last());
    m->answered = 1;
}

/* The document, in the view's order (the ring's members, then joining
 * ones); this node once, first when the view does not have it yet. */
static void render(status_run *r, kvi_buf *out)
{
    kvi_node *n = r->n;
    kvi_http_json_raw(out, "{\"nodeId\":");
    kvi_http_json_message(out, n->node_id);
    kvi_http_json_raw(out, ",\"timeoutMs\":");
    kvi_http_json_u64(out, r->timeout_ms);
    kvi_http_json_raw(out, ",\"nodes\":[");
    int self_in_view = 0, self_done = 0;
    size_t shown = 0;
    for (size_t i = 0; i < r->count; i++)
        self_in_view |= r->m[i].self;
    if (!self_in_view) {
        self_entry(n, out);
        shown++;
    }
    for (size_t i = 0; i < r->count; i++) {
        if (r->m[i].self && self_done)
            continue; /* listed twice: shown once */
        if (shown++)
            kvi_http_json_raw(out, ",");
        if (r->m[i].self) {
            self_entry(n, out);
            self_done = 1;
        } else {
            peer_entry(n, &r->m[i], r, out);
        }
    }
    kvi_http_json_raw(out, "]}");
}

static void run_unref(status_run *r)
{
    if (--r->refs)
        return;
    for (size_t i = 0; i < r->count; i++)
        free(r->m[i].desc);
    free(r->m);
    if (r->view)
        kvi_view_unref(r->view);
    free(r);
}

/* Renders the document and hands it to the HTTP server, once: when the
 * last member has answered, or at the deadline. Requests still in flight
 * keep the run until their callbacks come. */
static void finish(status_run *r)
{
    if (r->finished)
        return;
    r->finished = 1;
    if (r->loop)
        kvi_loop_timer_cancel(r->loop, &r->deadline);
    if (r->linked) { /* waiting on members: unlink (on the peers loop) */
        r->linked = 0;
        if (r->prev)
            r->prev->next = r->next;
        else
            r->n->status_runs = r->next;
        if (r->next)
            r->next->prev = r->prev;
    }
    kvi_buf out = {0};
    render(r, &out);
    kvi_http_result res = {.rc = KV_OK, .json = (char *)out.data, .json_len = out.len};
    if (out.failed) {
        res = (kvi_http_result){.rc = KV_ENOMEM, .message = "out of memory rendering the status"};
        kvi_buf_free(&out);
    }
    r->done(r->done_ctx, &res); /* takes res.json */
    run_unref(r);
}

static void on_deadline(void *ctx)
{
    finish(ctx);
}

/* On the peers loop: one member's answer, or why there is none. */
static void on_answer(void *ctx, const kvi_reply *reply)
{
    status_member *m = ctx;
    status_run *r = m->run;
    if (!r->finished) {
        keep_answer(m, reply);
        if (--r->pending == 0)
            finish(r);
    }
    run_unref(r);
}

/* On the peers loop: asks every other member, then waits for their answers
 * or the deadline. */
static void start(void *ctx)
{
    status_run *r = ctx;
    kvi_node *n = r->n;
    if (atomic_load(&n->status_stopping)) {
        r->cut_short = 1;
        finish(r);
        return;
    }
    r->linked = 1; /* so that kvi_node_status_stop finds it */
    r->next = n->status_runs;
    if (r->next)
        r->next->prev = r;
    n->status_runs = r;
    for (size_t i = 0; i < r->count; i++) {
        status_member *m = &r->m[i];
        if (m->self)
            continue;
        kvi_buf frame = {0};
        kvi_frame_begin(&frame);
        kvi_request req = {.opcode = KVI_OP_CLUSTER};
        kvi_request_encode(&frame, &req);
        r->refs++;
        r->pending++;
        if (kvi_client_submit(m->vm->client, &frame, KVI_OP_CLUSTER, 0, 0, on_answer, m) != KV_OK) {
            r->refs--;
            r->pending--;
            m->answered = 1;
            m->rc = KV_EUNAVAILABLE;
            snprintf(m->why, sizeof m->why, "%s", kvi_error_last());
        }
    }
    if (r->pending == 0 ||
        kvi_loop_timer_set(r->loop, &r->deadline, kvi_loop_now_ms() + r->timeout_ms) != KV_OK)
        finish(r);
}

void kvi_node_status_async(void *ctx, unsigned timeout_ms, kvi_http_done_fn done,
                           void *done_ctx)
{
    kvi_node *n = ctx;
    status_run *r = calloc(1, sizeof *r);
    if (!r) {
        kvi_http_result res = {.rc = KV_ENOMEM, .message = "out of memory starting the status"};
        done(done_ctx, &res);
        return;
    }
    r->n = n;
    r->timeout_ms = timeout_ms;
    r->done = done;
    r->done_ctx = done_ctx;
    r->refs = 1;
    kvi_loop_timer_init(&r->deadline, on_deadline, r);
    /* No view yet (a node alone, or a cluster still forming): itself only,
     * answered here. */
    r->view = n->membership ? kvi_membership_view(n->membership) : NULL;
    r->count = r->view ? r->view->n + r->view->n_extra : 0;
    r->m = r->count ? calloc(r->count, sizeof *r->m) : NULL;
    if (!r->m)
        r->count = 0;
    int ask = 0;
    for (size_t i = 0; i < r->count; i++) {
        status_member *m = &r->m[i];
        m->run = r;
        m->vm = kvi_view_member_at(r->view, i);
        m->self = !m->vm->client || strcmp(m->vm->id, n->node_id) == 0;
        ask |= !m->self;
    }
    if (!ask) {
        finish(r);
        return;
    }
    r->loop = kvi_membership_loop(n->membership);
    kvi_loop_post(r->loop, &r->start, start, r);
}

/* On the peers loop: ends every run still waiting on members, with what
 * they have. */
static void finish_all(void *ctx)
{
    kvi_node *n = ctx;
    while (n->status_runs) {
        n->status_runs->cut_short = 1;
        finish(n->status_runs); /* unlinks it */
    }
}

void kvi_node_status_stop(kvi_node *n)
{
    /* Runs that start from now on end at once (start), and those already
     * waiting end in finish_all, posted after the flag: a run either
     * started before finish_all, and is in the list, or sees the flag. */
    atomic_store(&n->status_stopping, 1);
    if (n->membership)
        kvi_loop_post(kvi_membership_loop(n->membership), &n->status_stop_task, finish_all, n);
}
