/*
 * kv/options.h - versioned option structs.
 *
 * Every struct starts with `unsigned int version`. Initialise it with its
 * KV_..._INIT macro (C) or its kv_..._init() function (bindings), then set
 * the fields you need. Fields are only ever appended, so a program compiled
 * against an older header keeps working with a newer library. Passing NULL
 * where options are expected means "all defaults".
 *
 * Part of the libkv public API; include <kv/kv.h> rather than this file.
 */
#ifndef KV_OPTIONS_H
#define KV_OPTIONS_H

#include "common.h"
#include "value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Size limits (BRIEF section 3). 0 in an option means the default. */
#define KV_DEFAULT_MAX_KEY_SIZE 1024u
#define KV_MAX_KEY_SIZE_LIMIT (64u * 1024u)
#define KV_DEFAULT_MAX_VALUE_SIZE (1024u * 1024u)
#define KV_MAX_VALUE_SIZE_LIMIT (64u * 1024u * 1024u)
/** Most operations one batch may hold. */
#define KV_BATCH_MAX_OPS 10000u

/** When the write-ahead log reaches the disk. */
typedef enum kv_sync_policy {
    /** fsync before every write returns; concurrent writers share one fsync
     * (RocksDB group commit). Survives power loss. The default. */
    KV_SYNC_ALWAYS = 0,
    /** Writes return once in the OS page cache; a background thread fsyncs
     * the log every sync_interval_ms. Survives a crash of the process; a
     * power loss may lose the last interval. */
    KV_SYNC_PERIODIC = 1,
    /** Writes return once in the OS page cache; the OS decides when to write
     * back. Survives a crash of the process, not a power loss. */
    KV_SYNC_NONE = 2
} kv_sync_policy;

/* ------------------------------------------------------------ open options */

#define KV_OPEN_OPTIONS_VERSION 2

/** Options of kv_open (the embedded store). */
typedef struct kv_open_options {
    unsigned int version;       /**< KV_OPEN_OPTIONS_VERSION */
    int create_if_missing;      /**< create the directory's store if absent (default 1) */
    uint32_t max_key_size;      /**< bytes, 1..KV_MAX_KEY_SIZE_LIMIT; 0 = 1024 */
    uint32_t max_value_size;    /**< bytes, up to KV_MAX_VALUE_SIZE_LIMIT; 0 = 1 MiB */
    kv_sync_policy sync;        /**< default KV_SYNC_ALWAYS */
    uint32_t sync_interval_ms;  /**< for KV_SYNC_PERIODIC; 0 = 100 ms */
    uint64_t block_cache_bytes; /**< RocksDB block cache; 0 = 64 MiB */
    /** How long a tombstone (and an expired record) is kept before compaction
     * may drop it, so replicas can still learn of the delete; seconds.
     * 0 = the default of 86400 (one day); KV_GRACE_NONE = drop at once.
     * A node of a cluster drops none in compactions; it purges a dead key
     * once the hint window plus this margin has passed and every replica
     * of the key has been fully repaired since (docs/design/ANTI_ENTROPY.md). */
    uint64_t tombstone_grace_s;
    kv_log_fn log_fn;           /**< NULL = no logging */
    void *log_ctx;              /**< passed to log_fn */
    kv_log_level log_level;     /**< most verbose level delivered; default INFO */
    /* version 2 */
    /** The latest records of recently read and written keys, kept in a
     * hash table in front of RocksDB so that a read of a key in it searches
     * no skip list and no file (docs/STORAGE.md); bytes. 0 = 64 MiB;
     * KV_ROW_CACHE_NONE = no row cache. */
    uint64_t row_cache_bytes;
} kv_open_options;

/** tombstone_grace_s value meaning "no grace period". */
#define KV_GRACE_NONE UINT64_MAX
/** row_cache_bytes value meaning "no row cache". */
#define KV_ROW_CACHE_NONE UINT64_MAX

#define KV_OPEN_OPTIONS_INIT \
    { KV_OPEN_OPTIONS_VERSION, 1, 0, 0, KV_SYNC_ALWAYS, 0, 0, 0, NULL, NULL, KV_LOG_INFO, 0 }

/**
 * kv_open_options_init - fill opts with the defaults of the given version.
 * @return KV_OK, or KV_EINVAL for a NULL opts or an unknown version.
 * Threads: safe from any thread.
 */
KV_API int kv_open_options_init(kv_open_options *opts, unsigned int version);

/* ----------------------------------------------------------- write options */

#define KV_WRITE_OPTIONS_VERSION 2

/** Options of one write (put, delete, cas, batch). */
typedef struct kv_write_options {
    unsigned int version;        /**< KV_WRITE_OPTIONS_VERSION */
    /** Time to live in seconds; the value expires at (now + ttl). 0 = never.
     * Ignored by deletes. */
    uint64_t ttl_s;
    kv_consistency consistency;  /**< default QUORUM (ONE on embedded) */
    unsigned int w;              /**< for KV_CONSISTENCY_EXPLICIT */
    /** Causal context from an earlier kv_get (kv_value_context), so that this
     * write supersedes exactly what that read saw. Borrowed for the duration
     * of the call. NULL = none. Ignored by embedded handles, which have a
     * single replica and so no concurrent siblings. */
    const void *context;
    size_t context_len;
    /** Since version 2. In a cluster, count only the key's home replicas
     * toward the consistency level, as Riak's pw: when a home replica is
     * down, a stand-in's acknowledgement (sloppy quorum, see
     * docs/CLUSTER.md) does not count, and the write fails with
     * KV_EUNAVAILABLE instead. 0 (the default): stand-ins count. */
    int home_only;
} kv_write_options;

#define KV_WRITE_OPTIONS_INIT \
    { KV_WRITE_OPTIONS_VERSION, 0, KV_CONSISTENCY_DEFAULT, 0, NULL, 0, 0 }

/**
 * kv_write_options_init - fill opts with the defaults of the given version.
 * @return KV_OK, or KV_EINVAL for a NULL opts or an unknown version.
 * Threads: safe from any thread.
 */
KV_API int kv_write_options_init(kv_write_options *opts, unsigned int version);

/* ------------------------------------------------------------ read options */

#define KV_READ_OPTIONS_VERSION 1

/** Options of one read (get, and the gets of a batch). */
typedef struct kv_read_options {
    unsigned int version;       /**< KV_READ_OPTIONS_VERSION */
    kv_consistency consistency; /**< default QUORUM (ONE on embedded) */
    unsigned int r;             /**< for KV_CONSISTENCY_EXPLICIT */
} kv_read_options;

#define KV_READ_OPTIONS_INIT { KV_READ_OPTIONS_VERSION, KV_CONSISTENCY_DEFAULT, 0 }

/**
 * kv_read_options_init - fill opts with the defaults of the given version.
 * @return KV_OK, or KV_EINVAL for a NULL opts or an unknown version.
 * Threads: safe from any thread.
 */
KV_API int kv_read_options_init(kv_read_options *opts, unsigned int version);

/* -------------------------------------------------------- conflict policy */

/** How a handle resolves concurrent writes to one key (siblings). */
typedef enum kv_conflict_policy {
    /** Last write wins: a read returns the sibling with the latest write
     * time (ties broken by node id); a write supersedes what the
     * coordinating replica holds. The default. */
    KV_POLICY_LWW = 0,
    /** A read returns every sibling and one context; a write carrying that
     * context supersedes them, one without a context adds a sibling. */
    KV_POLICY_SIBLINGS = 1,
    /** As SIBLINGS, but a read that finds several siblings calls the
     * handle's merge callback and writes its result back with the context. */
    KV_POLICY_MERGE = 2
} kv_conflict_policy;

/** Where a merge callback puts its result (owned by the library). */
typedef struct kv_merge_result kv_merge_result;

/**
 * kv_merge_result_set - the merged value: the bytes are copied.
 * @return KV_OK, KV_EINVAL (NULL result, or NULL data with a length),
 *         KV_ENOMEM.
 */
KV_API int kv_merge_result_set(kv_merge_result *result, const void *data, size_t len);

/**
 * A merge callback: fold the siblings of key (read them with
 * kv_value_sibling_count / kv_value_sibling) into one value and pass it to
 * kv_merge_result_set. Return KV_OK, or any KV_E* code to fail the read with
 * it. Called on the thread of the kv_get that found the siblings; must not
 * call back into the same handle. siblings is valid only during the call.
 */
typedef int (*kv_merge_fn)(void *ctx, kv_merge_result *result, const void *key,
                           size_t key_len, const kv_value *siblings);

/* ------------------------------------------------------------ node options */

#define KV_NODE_OPTIONS_VERSION 9

/** Options of kv_node_start (a storage node hosted in-process). */
typedef struct kv_node_options {
    unsigned int version;        /**< KV_NODE_OPTIONS_VERSION */
    const char *data_dir;        /**< where the node keeps its store; copied */
    const char *node_id;         /**< unique, stable name of the node; copied */
    const char *listen_addr;     /**< binary protocol, "HOST:PORT"; copied */
    const char *http_addr;       /**< HTTP/JSON API, "HOST:PORT" or NULL; copied */
    const kv_open_options *store;/**< options of the node's store; NULL = defaults */
    unsigned int io_threads;     /**< binary protocol event loops, the first
                                      shared with the node's connections to
                                      its peers; 0 = 2 */
    unsigned int http_threads;   /**< HTTP thread pool, >= 2; 0 = 2. In a
                                      cluster a get, put, delete or CAS
                                      waits on replicas with no thread; a
                                      batch, scan or backup holds one */
    /** Largest request frame body accepted, in bytes; 0 = 16 MiB. Larger
     * frames are refused from their header, before anything is allocated. */
    uint32_t max_request_bytes;
    /** Connections silent this long are closed (a half-sent frame
     * included); 0 = 60000 ms. */
    uint32_t idle_timeout_ms;
    unsigned int max_connections;/**< per protocol; 0 = 4096 */
    /** Binary-protocol addresses ("HOST:PORT") of the cluster's members; this
     * node's own may be among them. Copied. NULL/0 (and no seeds) = a node
     * alone, not clustered. The node learns each member's id by asking it,
     * and builds the ring once it knows them all (see kv_cluster_describe);
     * members gossip tells of are added. */
    const char *const *peers;
    size_t peer_count;
    unsigned int replicas;       /**< replication factor N; 0 = 3 */
    unsigned int vnodes;         /**< virtual nodes per member; 0 = 256 */
    /** Policy of the node's own handle and of its HTTP API (LWW or
     * SIBLINGS; binary-protocol clients bring their own). */
    kv_conflict_policy policy;
    /** Timeout of requests between members, in ms; 0 = 2000. */
    uint32_t internode_timeout_ms;
    /* ---- version 3 ---- */
    /** Binary-protocol addresses ("HOST:PORT") of members to join the
     * cluster through; copied. The node gossips with them and asks them
     * for their description; once one describes a complete cluster it
     * takes its members, builds its ring and serves (until then,
     * KV_EUNAVAILABLE). Later members come by gossip.
     * Seeds including this node's own address start it at once, alone if
     * need be: a cluster of one that others can join. May be combined with
     * peers.
     * NULL/0 with no peers = a node alone, not clustered. Members learned
     * by gossip are saved in the store, so a restart serves at once. */
    const char *const *seeds;
    size_t seed_count;
    /** Hints older than this are dropped (anti-entropy repairs those keys
     * later), in seconds; 0 = 10800 (3 h). */
    uint32_t hint_window_s;
    /** Budget of hinted handoff replay, in KiB per second, so that live
     * traffic keeps priority; 0 = 4096. */
    uint32_t handoff_kib_per_s;
    /** How long a member may stay silent before the failure detector may
     * suspect it (the phi accrual detector's acceptable pause), in ms;
     * 0 = 2000. A killed or paused member is held down about this plus
     * 2 s after its last heartbeat; larger values flap less on a loaded
     * network and detect later. */
    uint32_t failure_pause_ms;
    /* ---- version 4 (docs/SECURITY.md) ---- */
    /** The cluster secret, 16..1024 bytes shared by every member; copied.
     * Peers prove it to each other (HMAC challenge-response; it never
     * travels) before any internode request is accepted. NULL/0 = none:
     * internode requests are then accepted from any connection, which is
     * safe on loopback only (see insecure). */
    const void *cluster_secret;
    size_t cluster_secret_len;
    /** Tokens a client must show (kv_client_options.auth_token, or HTTP's
     * `Authorization: Bearer`) before any data request; copied. NULL/0 =
     * clients need none. A clustered node with tokens needs a cluster
     * secret too. */
    const char *const *client_tokens;
    size_t client_token_count;
    /** A node with neither a cluster secret nor client tokens refuses to
     * listen on anything but a loopback address (KV_EPERM), as Redis's
     * protected mode; 1 accepts that risk. */
    int insecure;
    /** TLS for both protocols: this node's certificate (chain, leaf first)
     * and its unencrypted private key, as PEM text; both or neither
     * (neither: plain TCP and HTTP). Copied. */
    const char *tls_cert_pem;
    const char *tls_key_pem;
    /** The CA (PEM text) that signed every member's certificate: with it,
     * members verify each other's certificates (both ways) on the binary
     * protocol, and clients that show a certificate are verified too.
     * Required with tls_cert_pem in a cluster. Copied. */
    const char *tls_ca_pem;
    /** Bytes the binary protocol's connections may hold in all (input
     * buffers, requests waiting for a worker, answers not yet written);
     * near it the node stops reading from clients until answers drain,
     * and a request that cannot fit is refused with KV_ENOMEM ("server
     * busy"). 0 = 256 MiB. Keep it well above max_request_bytes. */
    uint64_t max_buffered_bytes;
    /* ---- version 5 ---- */
    /** A request that takes this long or longer is slow: counted in
     * kv_slow_requests_total, and once a minute the node logs (at warn)
     * how many there were and the slowest. 0 = 500 ms. */
    uint32_t slow_request_ms;
    /* ---- version 6 (docs/design/ANTI_ENTROPY.md) ---- */
    /** In a cluster, how often the node runs an anti-entropy exchange with
     * the next member it shares token ranges with, in seconds, jittered by
     * a quarter either way; 0 = 60. KV_AE_INTERVAL_NEVER: only repair
     * rounds asked for (kv_repair). */
    uint32_t ae_interval_s;
    /** Bytes per second an exchange may send and receive in all, so that
     * live traffic keeps priority; 0 = 16777216 (16 MiB/s). */
    uint64_t repair_bytes_per_s;
    /** The anti-entropy digest cuts the token space into 2^ae_digest_bits
     * segments (16 bytes each: 2^18 is 4 MiB); 4..24, 0 = 18. More
     * segments compare fewer keys a difference, at more memory. Every
     * member must use the same, or their exchanges fail (saying so). */
    unsigned int ae_digest_bits;
    /* ---- version 7 (docs/design/TOPOLOGY.md) ---- */
    /** Bytes per second a node joining (or gaining ranges in another
     * topology change) may stream in from the members it takes them from;
     * 0 = 33554432 (32 MiB/s). */
    uint64_t stream_bytes_per_s;
    /* ---- version 8 ---- */
    /** 1: this process takes the place of the dead member whose id is
     * node_id (as Cassandra's replace_address): on an empty data directory
     * it fetches the cluster's topology from its seeds or peers (one is
     * required), records the replace (the member is "replacing" at this
     * node's addresses), streams every range the member is a home of from
     * the surviving replicas, repairs against them, then serves reads.
     * Refused while that member still answers at its old address. Once
     * this node's store holds the cluster's topology, ignored (a restart
     * with the flag still set goes on as a member, or resumes the replace). */
    int replace;
    /* ---- version 9 ---- */
    /** Where the cluster's topology record is kept: NULL (default) among
     * the members themselves (Paxos per change, spread by gossip), or
     * "etcd://HOST:PORT[,HOST:PORT...]/PREFIX": in etcd, through its v3
     * JSON gateway, changed by transactions that compare the record's
     * revision, watched by every member, with a lease per member on
     * PREFIX/members/ID. Every member of a cluster must be given the same.
     * When etcd cannot be reached the node serves on the record it holds
     * and refuses topology changes. Copied. See docs/CLUSTER.md. */
    const char *metadata;
} kv_node_options;

/** ae_interval_s value meaning "no periodic exchanges". */
#define KV_AE_INTERVAL_NEVER UINT32_MAX

#define KV_NODE_OPTIONS_INIT \
    { KV_NODE_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL, 0, 0, 0, \
      KV_POLICY_LWW, 0, NULL, 0, 0, 0, 0, NULL, 0, NULL, 0, 0, NULL, NULL, NULL, 0, 0, 0, 0, 0, \
      0, 0, NULL }

/**
 * kv_node_options_init - fill opts with the defaults of the given version.
 * @return KV_OK, or KV_EINVAL for a NULL opts or an unknown version.
 * Threads: safe from any thread.
 */
KV_API int kv_node_options_init(kv_node_options *opts, unsigned int version);

/* ---------------------------------------------------------- client options */

#define KV_CLIENT_OPTIONS_VERSION 5

/** Options of kv_client_open (a connection to a remote cluster). */
typedef struct kv_client_options {
    unsigned int version;         /**< KV_CLIENT_OPTIONS_VERSION */
    uint32_t connect_timeout_ms;  /**< 0 = 1000 */
    uint32_t request_timeout_ms;  /**< 0 = 5000 */
    unsigned int connections_per_node; /**< 0 = 1 */
    kv_log_fn log_fn;             /**< NULL = no logging */
    void *log_ctx;
    kv_log_level log_level;
    kv_conflict_policy policy;    /**< default KV_POLICY_LWW */
    kv_merge_fn merge;            /**< required with KV_POLICY_MERGE */
    void *merge_ctx;              /**< passed to merge */
    /* ---- version 3 ---- */
    /** A token the nodes accept (kvd --client-token-file), shown on every
     * connection before any request; 1..1024 bytes; copied. NULL = none
     * (nodes that require a token then answer KV_EPERM). It travels as it
     * is: use TLS beyond a trusted network (docs/SECURITY.md). */
    const char *auth_token;
    /** TLS on every connection (kvd --tls-cert): 1 = on. The nodes'
     * certificates are checked against tls_ca_pem, or against the system's
     * trust store when it is NULL, and must name the address dialled (an
     * IP address in the subjectAltName). */
    int tls;
    /** The CA that signed the nodes' certificates, PEM text; copied. Given
     * alone, it turns tls on. */
    const char *tls_ca_pem;
    /** A client certificate and its unencrypted key (PEM text), shown to
     * nodes that ask for one; both or neither; copied. */
    const char *tls_cert_pem;
    const char *tls_key_pem;
    /* ---- version 4 ---- */
    /** 0: the client runs its event loop on a thread of its own, and
     * completion callbacks of the asynchronous calls run there. 1: no
     * thread; the application drives the loop with kv_run (polling kv_fd,
     * or calling it in a loop of its own), and callbacks run inside kv_run.
     * Blocking calls work either way (with 1 they drive the loop while
     * they wait). */
    int manual_loop;
    /** Requests in flight on one connection at most; more wait in the
     * client's queue (up to the request timeout) until answers free
     * slots. 0 = 4096. */
    unsigned int max_inflight;
    /* ---- version 5 ---- */
    /** A cache of hot keys' values in the client, to absorb a read
     * hotspot (docs/CLUSTER.md, "The client's cache of hot keys"): a read
     * of a key read lately may be answered from it, up to this many
     * milliseconds stale. 0 = no cache (the default). Reads at SERIAL or
     * ALL, traced reads and scans never use it; a write of a key through
     * this handle (put, delete, CAS, batch) drops its entry, so the handle
     * reads its own writes. Up to 1 hour. */
    uint32_t hot_cache_staleness_ms;
    /** Keys the cache holds at most, least recently read dropped first;
     * 0 = 1024 (when the cache is on). Up to 1048576. */
    uint32_t hot_cache_entries;
} kv_client_options;

#define KV_CLIENT_OPTIONS_INIT \
    { KV_CLIENT_OPTIONS_VERSION, 0, 0, 0, NULL, NULL, KV_LOG_INFO, KV_POLICY_LWW, NULL, NULL, \
      NULL, 0, NULL, NULL, NULL, 0, 0, 0, 0 }

/**
 * kv_client_options_init - fill opts with the defaults of the given version.
 * @return KV_OK, or KV_EINVAL for a NULL opts or an unknown version.
 * Threads: safe from any thread.
 */
KV_API int kv_client_options_init(kv_client_options *opts, unsigned int version);

#ifdef __cplusplus
}
#endif
#endif /* KV_OPTIONS_H */
