/*
 * util/validate.h - the one validation layer: every request is checked here
 * against the limits of whoever serves it, whatever door it came in by.
 *
 * The doors: the public C API on each kind of handle (lib/api.c), a node's
 * entry points for requests it serves (lib/node.c: binary frames from
 * clients, frames forwarded by other nodes, the HTTP API and node handles
 * all arrive there), and batches one operation at a time. Each check runs
 * before anything is allocated or stored, and names what was wrong in the
 * thread's detail message (kv_error_last).
 *
 * Pure: no I/O, no allocation; safe from any thread.
 */
#ifndef KVI_VALIDATE_H
#define KVI_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include <kv/options.h>
#include <kv/scan.h>

/* Longest TTL and grace period: 100 years, far from overflowing an
 * absolute expiry in ms (now_ms + ttl_s * 1000 < 2^63 for centuries). */
#define KVI_MAX_TTL_S (100ull * 365u * 86400u)
/* Largest causal context a request may carry. A context encodes one
 * counter per node that wrote the key and one dot per sibling (16 at
 * most), a few KiB in practice. */
#define KVI_MAX_CONTEXT_BYTES (64u * 1024u)
/* Largest explicit R or W: the binary protocol carries it in one byte, and
 * a larger number would be truncated silently. (The cluster then checks
 * it against its replication factor.) */
#define KVI_MAX_QUORUM 255u

/* The size limits of the store a request lands in. */
typedef struct kvi_limits {
    uint32_t max_key_size;   /* 1..KV_MAX_KEY_SIZE_LIMIT */
    uint32_t max_value_size; /* ..KV_MAX_VALUE_SIZE_LIMIT */
} kvi_limits;

/* Key 1..max_key_size bytes, not NULL. KV_EINVAL or KV_ETOOBIG. */
int kvi_check_key(const kvi_limits *l, const void *key, size_t key_len);
/* Value 0..max_value_size bytes, not NULL with a length. */
int kvi_check_value(const kvi_limits *l, const void *value, size_t value_len);
/* TTL 0..KVI_MAX_TTL_S seconds. */
int kvi_check_ttl(uint64_t ttl_s);
/* A known consistency level; with KV_CONSISTENCY_EXPLICIT, a count of
 * 1..KVI_MAX_QUORUM. `what` names the count ("r" or "w") in the message. */
int kvi_check_level(kv_consistency level, unsigned count, const char *what);
/* A context of 0..KVI_MAX_CONTEXT_BYTES, not NULL with a length. */
int kvi_check_context(const void *context, size_t context_len);

/* The whole of a write: key, value (put and cas), TTL, level and W,
 * context. o may be NULL (defaults); it must be a current-version struct
 * (kvi_write_options_upgrade). */
typedef enum kvi_write_check {
    KVI_CHECK_PUT = 0,
    KVI_CHECK_DELETE = 1, /* no value */
    KVI_CHECK_CAS = 2
} kvi_write_check;
int kvi_check_write(const kvi_limits *l, kvi_write_check kind, const void *key, size_t key_len,
                    const void *value, size_t value_len, const kv_write_options *o);
/* The whole of a read: key, level and R. o may be NULL. */
/* A scan's limit (1..KV_SCAN_MAX_LIMIT) and options (version, a level
 * other than SERIAL). KV_OK or KV_EINVAL. */
int kvi_check_scan(size_t limit, const kv_scan_options *o);
int kvi_check_read(const kvi_limits *l, const void *key, size_t key_len,
                   const kv_read_options *o);
/* One operation of a batch (its index names it in the message). */
int kvi_check_batch_op(const kvi_limits *l, size_t index, int is_put, const void *key,
                       size_t key_len, const void *value, size_t value_len, uint64_t ttl_s);

/* The status a public call may return for rc: public codes as they are;
 * the library's internal ones (below -99, such as "not a replica") and
 * unknown numbers from the wire become the public code that means the
 * same to a caller, with the detail message kept. */
int kvi_public_status(int rc);

/* A backup's directory, from any door (the API, a BACKUP frame, the HTTP
 * API): len bytes at dir, 1..KV_BACKUP_MAX_PATH, no NUL among them, an
 * absolute path. what names the field in the message. KV_EINVAL. */
int kvi_check_backup_dir(const char *dir, size_t len, const char *what);

#endif
