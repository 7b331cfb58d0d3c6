/* format/value.h - the kv_value result type: building values, and the
 * accessors behind the public kv_value_* (api/value.c). */
#ifndef KVI_VALUE_H
#define KVI_VALUE_H

#include <kv/value.h>

#include "format/state.h"

/* What kv_value_data, _version, _expiry_ms, _sibling_count, _sibling,
 * _context and _free do (include/kv/value.h), for the layers below api/. */
const void *kvi_value_data(const kv_value *v, size_t *len);
uint64_t kvi_value_version(const kv_value *v);
uint64_t kvi_value_expiry_ms(const kv_value *v);
size_t kvi_value_sibling_count(const kv_value *v);
const void *kvi_value_sibling(const kv_value *v, size_t i, size_t *len);
const void *kvi_value_context(const kv_value *v, size_t *len);
void kvi_value_free(kv_value *v);

/* One allocation holding the struct and a copy of the bytes; NULL when out
 * of memory. */
kv_value *kvi_value_new(const void *data, size_t len, uint64_t version,
                        uint64_t expiry_ms);

/* A value of n siblings (copied), the first being the preferred one; NULL
 * when out of memory. */
kv_value *kvi_value_new_siblings(const void *const *data, const size_t *len, size_t n,
                                 uint64_t version, uint64_t expiry_ms, const void *context,
                                 size_t context_len);

/* A copy of v (NULL when out of memory). */
kv_value *kvi_value_dup(const kv_value *v);

/* A value from a replicated state: the live siblings (not a tombstone, not
 * expired at now_ms), the one with the latest write first (ties broken by
 * node id), at most `limit` of them (0 = all; 1 = last write wins), the
 * highest live version, and the encoded clock as context. Sets *out to NULL
 * and returns KV_ENOTFOUND when no sibling is live; KV_ENOMEM. */
int kvi_value_from_state(kv_value **out, const kvi_state *s, uint64_t now_ms, size_t limit);

#endif
