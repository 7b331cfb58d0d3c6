/* value.h - building kv_value results. */
#ifndef KVI_VALUE_H
#define KVI_VALUE_H

#include <kv/value.h>

/* One allocation holding the struct and a copy of the bytes; NULL when out
 * of memory. */
kv_value *kvi_value_new(const void *data, size_t len, uint64_t version,
                        uint64_t expiry_ms);

#endif
