/*
 * kv/common.h - versions, status codes, error details and logging.
 *
 * Part of the libkv public API; include <kv/kv.h> rather than this file.
 */
#ifndef KV_COMMON_H
#define KV_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* KV_API marks every exported declaration. The library is built with
 * -fvisibility=hidden, so anything without it stays private. */
#if defined(KV_BUILDING_LIBRARY) && defined(__GNUC__)
#define KV_API __attribute__((visibility("default")))
#else
#define KV_API
#endif

/* ---------------------------------------------------------------- versions */

#define KV_VERSION_MAJOR 0
#define KV_VERSION_MINOR 1
#define KV_VERSION_PATCH 0
/* MAJOR * 10000 + MINOR * 100 + PATCH, for #if comparisons. */
#define KV_VERSION_NUMBER \
    (KV_VERSION_MAJOR * 10000 + KV_VERSION_MINOR * 100 + KV_VERSION_PATCH)
#define KV_VERSION_STRING "0.1.0"

/**
 * kv_version - the version of the library actually loaded at run time.
 *
 * Compare with KV_VERSION_* (the version the caller was compiled against).
 *
 * @param major  out, may be NULL
 * @param minor  out, may be NULL
 * @param patch  out, may be NULL
 * @return a static string such as "0.1.0"; never NULL, never freed.
 * Threads: safe from any thread.
 */
KV_API const char *kv_version(int *major, int *minor, int *patch);

/* ------------------------------------------------------------ status codes */

/*
 * Every fallible call returns an int: KV_OK (0) or one of the negative codes
 * below. The numeric values are part of the ABI and never change.
 */
#define KV_OK 0
/** The key does not exist, was deleted, or has expired. */
#define KV_ENOTFOUND (-1)
/** A compare-and-swap found another version than the one expected. */
#define KV_ECONFLICT (-2)
/** A key, value, batch or frame is over its size limit. */
#define KV_ETOOBIG (-3)
/** An argument is invalid (NULL handle, empty key, bad option value...). */
#define KV_EINVAL (-4)
/** A request did not complete within its timeout; nothing was changed. */
#define KV_ETIMEDOUT (-5)
/** Too few replicas could be reached; the write is known NOT applied. */
#define KV_EUNAVAILABLE (-6)
/** A write timed out after it was sent: it may or may not have applied. */
#define KV_EUNKNOWN_OUTCOME (-7)
/** A stored record failed its checksum or format check; it is not served. */
#define KV_ECORRUPT (-8)
/** The storage engine or the operating system reported an I/O error. */
#define KV_EIO (-9)
/** The handle or connection is closed. */
#define KV_ECLOSED (-10)
/** Memory could not be allocated. */
#define KV_ENOMEM (-11)
/** The operation is not supported by this kind of handle (yet). */
#define KV_ENOTSUP (-12)
/** Busy: the store is locked by another process (RocksDB's LOCK file), an
 * address is in use, or another topology change is in progress. */
#define KV_EBUSY (-13)
/** Not permitted: the connection has not authenticated (a client without
 * a valid token on a node that requires one, or a peer operation from a
 * connection that has not proved the cluster secret). Nothing was changed.
 * HTTP 401. */
#define KV_EPERM (-14)

/**
 * kv_strerror - a short static description of a status code.
 *
 * @param code  any int; unknown codes give "unknown error code".
 * @return a static string; never NULL, never freed.
 * Threads: safe from any thread.
 */
KV_API const char *kv_strerror(int code);

/**
 * kv_error_last - the detail message of the last failed call on this thread.
 *
 * Calls that fail set a message naming what went wrong ("key is 2048 bytes,
 * the limit is 1024"). Calls that succeed leave it unchanged.
 *
 * @return a string owned by the library, valid until the next libkv call on
 *         this thread; "" when no call has failed yet. Never NULL.
 * Threads: the message is per thread; threads never see each other's.
 */
KV_API const char *kv_error_last(void);

/* ----------------------------------------------------------------- logging */

/** Log levels, most severe first. */
typedef enum kv_log_level {
    KV_LOG_ERROR = 0,
    KV_LOG_WARN = 1,
    KV_LOG_INFO = 2,
    KV_LOG_DEBUG = 3
} kv_log_level;

/**
 * kv_log_fn - receives the library's log messages. The library itself never
 * writes to stdout or stderr.
 *
 * @param level    severity of the message
 * @param message  NUL-terminated, borrowed for the duration of the call only
 * @param ctx      the log_ctx given in the options
 * Threads: may be called from any library thread (including RocksDB's
 * background threads) and concurrently; the callback must be thread-safe.
 */
typedef void (*kv_log_fn)(kv_log_level level, const char *message, void *ctx);

/* --------------------------------------------------------- shared handles */

/**
 * kv - a handle to a store: embedded (kv_open), node (kv_node_start) or client
 * (kv_client_open). The same data calls work on every kind.
 * Threads: a kv handle is safe to use from many threads at once, except
 * kv_close, which must not run concurrently with any other call on it.
 */
typedef struct kv kv;

/** Consistency level of one request. Embedded handles have one replica, so
 * every level behaves as ONE there. */
typedef enum kv_consistency {
    KV_CONSISTENCY_DEFAULT = 0, /**< the handle's default (QUORUM) */
    KV_CONSISTENCY_ONE = 1,
    KV_CONSISTENCY_QUORUM = 2,
    KV_CONSISTENCY_ALL = 3,
    KV_CONSISTENCY_EXPLICIT = 4, /**< use the explicit r / w field */
    /** Linearizable per key, by per-key Paxos among the key's home replicas
     * (a majority of them must be reachable). The default for kv_cas in a
     * cluster. On an embedded store or a single node every level is. */
    KV_CONSISTENCY_SERIAL = 5
} kv_consistency;

#ifdef __cplusplus
}
#endif
#endif /* KV_COMMON_H */
