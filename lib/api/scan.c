/* api/scan.c - kv_scan on every kind of handle, and the page's accessors. */
#include <stdlib.h>

#include <kv/kv.h>
#include "client/handle.h"
#include "client/scan.h"
#include "format/frame.h"
#include "format/scan.h"
#include "node/node.h"
#include "storage/embedded.h"
#include "util/error.h"
#include "util/validate.h"

int kv_scan(kv_scan_page **out, kv *db, const char *cursor, size_t limit,
            const kv_scan_options *opts)
{
    if (!out)
        return kvi_error(KV_EINVAL, "kv_scan: out is NULL");
    *out = NULL;
    if (!db)
        return kvi_error(KV_EINVAL, "handle is NULL");
    int rc = kvi_check_scan(limit, opts);
    if (rc != KV_OK)
        return rc;
    unsigned char *pos = malloc(KVI_SCAN_MAX_POSITION);
    if (!pos)
        return kvi_error(KV_ENOMEM, "out of memory starting a scan");
    size_t len = 0;
    rc = kvi_scan_cursor_decode(pos, &len, cursor);
    if (rc != KV_OK) {
        free(pos);
        return kvi_error(KV_EINVAL, "kv_scan: malformed cursor (pass the cursor of an "
                                    "earlier page as it was given)");
    }
    if (db->kind == KVI_KIND_NODE) {
        unsigned flags = db->policy_fixed ? (db->policy == KV_POLICY_SIBLINGS
                                                 ? KVI_FRAME_FLAG_SIBLINGS : 0u)
                                          : kvi_node_flags(db->node);
        rc = kvi_node_scan(db->node, out, pos, len, limit, opts, flags);
    } else if (db->kind == KVI_KIND_CLIENT) {
        rc = kvi_remote_scan(db, out, pos, len, limit, opts);
    } else {
        rc = kvi_embedded_scan(db->embedded, out, pos, len, limit,
                               opts && opts->keys_only ? KVI_SCAN_KEYS_ONLY : 0u);
    }
    free(pos);
    return kvi_public_status(rc);
}

size_t kv_scan_page_count(const kv_scan_page *page)
{
    return kvi_scan_page_count(page);
}

const void *kv_scan_page_key(const kv_scan_page *page, size_t i, size_t *len)
{
    return kvi_scan_page_key(page, i, len);
}

const kv_value *kv_scan_page_value(const kv_scan_page *page, size_t i)
{
    return kvi_scan_page_value(page, i);
}

uint64_t kv_scan_page_version(const kv_scan_page *page, size_t i)
{
    return kvi_scan_page_version(page, i);
}

const char *kv_scan_page_cursor(const kv_scan_page *page)
{
    return kvi_scan_page_cursor(page);
}

void kv_scan_page_free(kv_scan_page *page)
{
    kvi_scan_page_free(page);
}
