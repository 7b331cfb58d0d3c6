/*
 * kv/value.h - the value type returned by kv_get.
 *
 * A kv_value is immutable once returned. It holds one or more siblings (an
 * embedded store always has exactly one; a cluster under the SIBLINGS policy
 * may return several), the version, the expiry and the causal context to pass
 * back in kv_write_options.context.
 *
 * Threads: a kv_value may be read from several threads at once; kv_value_free
 * must not run concurrently with any other use of it.
 *
 * Part of the libkv public API; include <kv/kv.h> rather than this file.
 */
#ifndef KV_VALUE_H
#define KV_VALUE_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kv_value kv_value;

/**
 * kv_value_data - the bytes of the value (of its first sibling).
 * @param v    a value; NULL gives NULL and *len = 0
 * @param len  out: number of bytes; may be NULL
 * @return a pointer owned by v, valid until kv_value_free(v); non-NULL
 *         for an empty value. The len bytes are followed by one NUL byte (not
 *         counted in len), so a text value can be read as a C string; a
 *         binary value may of course contain NULs of its own.
 */
KV_API const void *kv_value_data(const kv_value *v, size_t *len);

/**
 * kv_value_version - the scalar version: 1 for the first write of a key, one
 * more for every write that superseded it (deletes included).
 * @return the version, or 0 for NULL.
 */
KV_API uint64_t kv_value_version(const kv_value *v);

/**
 * kv_value_expiry - when the value expires.
 * @return Unix time in milliseconds, or 0 when it never expires (or v is NULL).
 */
KV_API uint64_t kv_value_expiry_ms(const kv_value *v);

/**
 * kv_value_sibling_count - number of concurrent siblings; 1 on embedded
 * handles and under the LWW and MERGE policies. 0 for NULL.
 */
KV_API size_t kv_value_sibling_count(const kv_value *v);

/**
 * kv_value_sibling - the bytes of sibling i (0 <= i < sibling count).
 * @param len  out: number of bytes; may be NULL
 * @return a pointer owned by v, valid until kv_value_free(v); NULL when i is
 *         out of range.
 */
KV_API const void *kv_value_sibling(const kv_value *v, size_t i, size_t *len);

/**
 * kv_value_context - the opaque causal context of this read, to pass back in
 * kv_write_options.context so the next write supersedes what was read.
 * @param len  out: number of bytes; may be NULL
 * @return a pointer owned by v, valid until kv_value_free(v); an empty context
 *         (len 0) on embedded handles.
 */
KV_API const void *kv_value_context(const kv_value *v, size_t *len);

/**
 * kv_value_free - release a value returned by kv_get. NULL is a no-op.
 */
KV_API void kv_value_free(kv_value *v);

#ifdef __cplusplus
}
#endif
#endif /* KV_VALUE_H */
