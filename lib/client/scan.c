/* client/scan.c - a client handle's scan: SCAN to a node, waited for on a
 * condition variable that the answer's callback signals. */
#include "client/scan.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/handle.h"
#include "format/message.h"
#include "format/scan.h"
#include "net/client.h"
#include "util/error.h"

/* On the caller's stack: the caller waits until the callback has run, and
 * the callback runs exactly once (the client's request timeout ends every
 * request). */
typedef struct scan_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done;
    int rc;
    int16_t status;
    unsigned char *body;
    size_t len;
    char why[256];
} scan_wait;

static void on_answer(void *ctx, const kvi_reply *rep)
{
    scan_wait *w = ctx;
    pthread_mutex_lock(&w->lock);
    w->rc = rep->rc;
    if (rep->rc == KV_OK) {
        w->status = rep->h->status;
        w->len = rep->h->body_len;
        w->body = malloc(w->len ? w->len : 1);
        if (!w->body)
            w->rc = KV_ENOMEM;
        else if (w->len)
            memcpy(w->body, rep->body, w->len);
    } else {
        snprintf(w->why, sizeof w->why, "%s", rep->why ? rep->why : "");
    }
    w->done = 1;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

int kvi_remote_scan(kv *db, kv_scan_page **out, const void *after, size_t after_len,
                    size_t limit, const kv_scan_options *so)
{
    *out = NULL;
    kvi_request req = {
        .opcode = KVI_OP_SCAN, .limit = (uint32_t)limit, .key = {after, after_len},
        .consistency = (uint8_t)(so ? so->consistency : KV_CONSISTENCY_DEFAULT),
        .quorum = (uint8_t)(so ? so->r : 0),
        .scan_flags = (uint8_t)(so && so->keys_only ? KVI_SCAN_KEYS_ONLY : 0u),
    };
    if (db->policy != KV_POLICY_LWW)
        req.scan_flags |= KVI_SCAN_SIBLINGS;
    int rc = kvi_client_refuse_on_loop(db->client);
    if (rc != KV_OK)
        return rc;
    kvi_buf frame = {0};
    kvi_frame_begin(&frame);
    kvi_request_encode(&frame, &req);
    scan_wait w;
    memset(&w, 0, sizeof w);
    pthread_mutex_init(&w.lock, NULL);
    pthread_cond_init(&w.cond, NULL);
    rc = kvi_client_submit(db->client, &frame, KVI_OP_SCAN, 0, KVI_SUBMIT_RETRY, on_answer,
                               &w);
    if (rc == KV_OK) {
        /* The callback runs exactly once (answer, timeout, or close), so
         * this wait ends; a manual-loop handle's loop is driven here. */
        kvi_client_wait(db->client, &w.lock, &w.cond, &w.done);
        rc = w.rc;
        if (rc != KV_OK)
            rc = kvi_error(rc, "scan: %s", w.why);
    }
    if (rc == KV_OK && w.status != KV_OK) {
        /* An error frame: u64 version, bytes message. */
        kvi_response resp;
        if (kvi_response_decode(&resp, KVI_OP_SCAN, w.status, w.body, w.len) == 0)
            rc = kvi_error(w.status, "%.*s", (int)resp.message.len,
                           (const char *)resp.message.data);
        else
            rc = kvi_error(w.status, "the node refused the scan");
    } else if (rc == KV_OK) {
        rc = kvi_scan_page_decode(out, w.body, w.len);
        if (rc == KV_EIO)
            rc = kvi_error(KV_EIO, "the node sent a malformed scan page");
        else if (rc != KV_OK)
            rc = kvi_error(rc, "out of memory reading a scan page");
    }
    free(w.body);
    pthread_mutex_destroy(&w.lock);
    pthread_cond_destroy(&w.cond);
    return rc;
}
