/* util/options.h - reading option structs of any supported version. */
#ifndef KVI_OPTIONS_H
#define KVI_OPTIONS_H

#include <stddef.h>

#include <kv/options.h>

/* The bytes of version v of a struct that grew; 0 when v is unknown. */
size_t kvi_open_options_prefix(unsigned int v);
size_t kvi_node_options_prefix(unsigned int v);
size_t kvi_client_options_prefix(unsigned int v);
size_t kvi_write_options_prefix(unsigned int v);

/* Copies in (NULL = defaults) into out at the current version, with the
 * defaults for fields an older version lacks. KV_OK or KV_EINVAL. */
int kvi_open_options_upgrade(kv_open_options *out, const kv_open_options *in);
int kvi_node_options_upgrade(kv_node_options *out, const kv_node_options *in);
int kvi_client_options_upgrade(kv_client_options *out, const kv_client_options *in);
int kvi_write_options_upgrade(kv_write_options *out, const kv_write_options *in);

#endif
