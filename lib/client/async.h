/*
 * client/async.h - a client handle's asynchronous data calls (kv_*_async): the
 * request goes to a node of the handle's endpoints, which coordinates it;
 * the answer is decoded into a kv_result on the client's loop thread.
 *
 * Threads: any, as the handle.
 */
#ifndef KVI_ASYNC_H
#define KVI_ASYNC_H

#include <kv/kv.h>
#include "format/message.h"

/* Starts req (a GET, PUT, DELETE or CAS request, already validated) on
 * db's client. KV_OK: cb will run once; otherwise it will not. ropts: the
 * read options of a GET (for a MERGE write-back and re-read). */
int kvi_async_start(kv *db, const kvi_request *req, const kv_read_options *ropts,
                    kv_callback cb, void *ctx);

#endif
