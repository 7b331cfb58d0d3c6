/* util/validate.c - the checks every request passes (see validate.h). */
#include "util/validate.h"

#include <stdio.h>
#include <string.h>

#include <kv/kv.h>

#include "util/error.h"

int kvi_check_key(const kvi_limits *l, const void *key, size_t key_len)
{
    if (key_len == 0)
        return kvi_error(KV_EINVAL, "key is empty");
    if (!key)
        return kvi_error(KV_EINVAL, "key is NULL with a length of %zu", key_len);
    if (key_len > l->max_key_size)
        return kvi_error(KV_ETOOBIG, "key is %zu bytes, the limit is %u", key_len,
                         l->max_key_size);
    return KV_OK;
}

int kvi_check_value(const kvi_limits *l, const void *value, size_t value_len)
{
    if (!value && value_len)
        return kvi_error(KV_EINVAL, "value is NULL with a length of %zu", value_len);
    if (value_len > l->max_value_size)
        return kvi_error(KV_ETOOBIG, "value is %zu bytes, the limit is %u", value_len,
                         l->max_value_size);
    return KV_OK;
}

int kvi_check_ttl(uint64_t ttl_s)
{
    if (ttl_s > KVI_MAX_TTL_S)
        return kvi_error(KV_EINVAL, "ttl of %llu s is over the limit of %llu s (100 years)",
                         (unsigned long long)ttl_s, (unsigned long long)KVI_MAX_TTL_S);
    return KV_OK;
}

int kvi_check_level(kv_consistency level, unsigned count, const char *what)
{
    /* An enum may hold any int: compare as unsigned so negatives fail too. */
    if ((unsigned)level > (unsigned)KV_CONSISTENCY_SERIAL)
        return kvi_error(KV_EINVAL, "unknown consistency level %d", (int)level);
    if (level == KV_CONSISTENCY_EXPLICIT && (count == 0 || count > KVI_MAX_QUORUM))
        return kvi_error(KV_EINVAL, "explicit %s of %u: it must be 1..%u (and at most the "
                                    "replication factor)", what, count, KVI_MAX_QUORUM);
    return KV_OK;
}

int kvi_check_context(const void *context, size_t context_len)
{
    if (!context && context_len)
        return kvi_error(KV_EINVAL, "context is NULL with a length of %zu", context_len);
    if (context_len > KVI_MAX_CONTEXT_BYTES)
        return kvi_error(KV_ETOOBIG, "context is %zu bytes, the limit is %u", context_len,
                         KVI_MAX_CONTEXT_BYTES);
    return KV_OK;
}

int kvi_check_write(const kvi_limits *l, kvi_write_check kind, const void *key, size_t key_len,
                    const void *value, size_t value_len, const kv_write_options *o)
{
    int rc;
    if ((rc = kvi_check_key(l, key, key_len)) != KV_OK)
        return rc;
    if (kind != KVI_CHECK_DELETE && (rc = kvi_check_value(l, value, value_len)) != KV_OK)
        return rc;
    if (!o)
        return KV_OK;
    if ((rc = kvi_check_ttl(o->ttl_s)) != KV_OK ||
        (rc = kvi_check_level(o->consistency, o->w, "w")) != KV_OK)
        return rc;
    return kvi_check_context(o->context, o->context ? o->context_len : 0);
}

int kvi_check_read(const kvi_limits *l, const void *key, size_t key_len,
                   const kv_read_options *o)
{
    int rc = kvi_check_key(l, key, key_len);
    if (rc == KV_OK && o)
        rc = kvi_check_level(o->consistency, o->r, "r");
    return rc;
}

int kvi_check_scan(size_t limit, const kv_scan_options *o)
{
    if (o && o->version != KV_SCAN_OPTIONS_VERSION)
        return kvi_error(KV_EINVAL, "scan options: unknown version %u", o->version);
    if (limit == 0 || limit > KV_SCAN_MAX_LIMIT)
        return kvi_error(KV_EINVAL, "a scan's limit must be 1..%u, not %zu", KV_SCAN_MAX_LIMIT,
                         limit);
    if (!o)
        return KV_OK;
    int rc = kvi_check_level(o->consistency, o->r, "r");
    if (rc == KV_OK && o->consistency == KV_CONSISTENCY_SERIAL)
        rc = kvi_error(KV_EINVAL, "a scan reads at ONE, QUORUM, ALL or an explicit r, not "
                                  "SERIAL (it is not linearizable)");
    return rc;
}

int kvi_check_batch_op(const kvi_limits *l, size_t index, int is_put, const void *key,
                       size_t key_len, const void *value, size_t value_len, uint64_t ttl_s)
{
    int rc = kvi_check_key(l, key, key_len);
    if (rc == KV_OK && is_put)
        rc = kvi_check_value(l, value, value_len);
    if (rc == KV_OK && is_put)
        rc = kvi_check_ttl(ttl_s);
    if (rc != KV_OK)
        return kvi_error(rc, "batch operation %zu: %s", index, kvi_error_last());
    return KV_OK;
}

int kvi_public_status(int rc)
{
    if (rc <= 0 && rc >= KV_EPERM)
        return rc;
    const char *detail = kvi_error_last(); /* kvi_error may wrap its own message */
    /* The internal codes (not a replica: the ring moved under the request;
     * not waited for; not asked) all mean the replicas the request needed
     * did not serve it, which a caller may retry. */
    if (rc <= KVI_INTERNAL_STATUS)
        return kvi_error(KV_EUNAVAILABLE, "%s", detail);
    return kvi_error(KV_EIO, "unexpected status %d: %s", rc, detail);
}

int kvi_check_backup_dir(const char *dir, size_t len, const char *what)
{
    if (!dir || len == 0)
        return kvi_error(KV_EINVAL, "%s is empty: give an absolute directory", what);
    if (len > KV_BACKUP_MAX_PATH)
        return kvi_error(KV_EINVAL, "%s is %zu bytes, the limit is %u", what, len,
                         (unsigned)KV_BACKUP_MAX_PATH);
    if (memchr(dir, 0, len))
        return kvi_error(KV_EINVAL, "%s contains a NUL byte", what);
    if (dir[0] != '/')
        return kvi_error(KV_EINVAL, "%s must be an absolute path (starting with '/'), "
                                    "not relative to the server's working directory", what);
    return KV_OK;
}
