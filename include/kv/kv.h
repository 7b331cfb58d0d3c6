/*
 * kv/kv.h - libkv, a Dynamo-style key-value store as an embeddable library.
 *
 * This header (with the headers it includes) is the whole public API: what
 * is not declared here is not part of it.
 *
 * Caveats, read first:
 *  - Keys and values are binary: every call takes a pointer and a length.
 *    Keys are 1..max_key_size bytes (default 1024), values 0..max_value_size
 *    bytes (default 1 MiB). Over a limit gives KV_ETOOBIG before anything is
 *    allocated.
 *  - Not found is a status code (KV_ENOTFOUND), never a NULL value, so an
 *    empty value and a missing key are always told apart.
 *  - Every stored value carries a version: 1 for the first write of a key,
 *    one more for each later write. A delete leaves a tombstone that also
 *    takes a version; a put after a delete continues from it. Tombstones
 *    (and expired values) are purged by compaction after the tombstone grace
 *    period; a key written after that starts again at 1.
 *  - Memory the library returns through an out-parameter belongs to the
 *    caller and is released with the matching kv_*_free function, never with
 *    free().
 *  - A kv handle is thread-safe; kv_close must not race with other calls.
 *  - The library never prints; give a kv_log_fn in the options to see logs.
 *
 * Three kinds of handle share the data calls:
 *  - embedded (kv_open): a local store in this process, on RocksDB;
 *  - node (kv_node_start): a storage node hosted in this process, serving
 *    its store over the binary protocol and HTTP;
 *  - client (kv_client_open): a connection to remote nodes.
 *
 * In a cluster (nodes started with peers) node and client handles run each
 * call against the key's replicas, at the consistency level in the options
 * (default QUORUM). Cluster calls add these outcomes:
 *  - KV_EUNAVAILABLE: too few replicas reachable; a write was NOT applied.
 *  - KV_EUNKNOWN_OUTCOME: a write reached fewer than W replicas in time; it
 *    may have been applied and can surface later.
 *  - KV_ETIMEDOUT: a read got fewer than R answers in time.
 * Concurrent writes to one key become siblings, resolved by the handle's
 * policy (kv_conflict_policy: LWW by default). A delete is a replicated
 * tombstone and answers KV_OK even when no replica held a live value. A
 * batch runs each operation on its own, with no atomicity across keys. CAS
 * compares against a QUORUM read and is not linearizable under failures.
 * See docs/CLUSTER.md.
 */
#ifndef KV_KV_H
#define KV_KV_H

#include "common.h"
#include "options.h"
#include "value.h"
#include "batch.h"
#include "scan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ constructors */

/**
 * kv_open - open (or create) an embedded store in a directory.
 *
 * @param out   receives the handle, owned by the caller, released with
 *              kv_close. Set to NULL on failure.
 * @param path  directory of the store; copied.
 * @param opts  NULL for defaults.
 * @return KV_OK; KV_EINVAL (NULL out or path, option out of range, or the
 *         store is missing and create_if_missing is 0); KV_EBUSY (another
 *         process has the store open); KV_EIO; KV_ENOMEM.
 * Threads: the returned handle may be used from any number of threads.
 */
KV_API int kv_open(kv **out, const char *path, const kv_open_options *opts);

/**
 * kv_node_start - start a storage node in this process: it opens its store in
 * opts->data_dir and serves it over the binary protocol (opts->listen_addr)
 * and, when opts->http_addr is set, over the HTTP/JSON API. The data calls on
 * the returned handle run against the node's own store directly.
 *
 * @param out   receives the handle, owned by the caller; kv_close stops the
 *              node (requests already read are answered) and closes the store.
 * @param opts  required: data_dir, node_id (1-64 of [A-Za-z0-9._-]) and
 *              listen_addr ("HOST:PORT"; port 0 picks a free port, see
 *              kv_node_ports); opts->store gives the store's options.
 * @return KV_OK; KV_EINVAL (missing or bad option, unparsable address, a
 *         secret, token, certificate or key that is malformed or too short);
 *         KV_EBUSY (a port is in use, or the store is open elsewhere);
 *         KV_EPERM (protected mode: an address beyond loopback with neither
 *         a cluster secret nor client tokens, and insecure not set; see
 *         docs/SECURITY.md); KV_EIO; KV_ENOMEM.
 * Threads: the handle may be used from any number of threads; the node's
 * servers run threads of their own.
 */
KV_API int kv_node_start(kv **out, const kv_node_options *opts);

/**
 * kv_node_ports - the ports a node actually listens on (useful after asking
 * for port 0).
 * @param out_binary_port  receives the binary protocol's port; may be NULL
 * @param out_http_port    receives the HTTP port, 0 without HTTP; may be NULL
 * @return KV_OK, or KV_EINVAL when db is not a node handle.
 */
KV_API int kv_node_ports(int *out_binary_port, int *out_http_port, const kv *db);

/**
 * kv_client_open - open a client of remote nodes. The data calls travel over
 * the binary protocol, on persistent connections shared by all threads with
 * many requests in flight on each.
 *
 * No connection is made here: the first call connects, trying the endpoints
 * in order, and a connection that breaks (a node restarted) is replaced by the
 * next call. When no node can be reached a call returns KV_EUNAVAILABLE (or
 * KV_ETIMEDOUT); a write whose answer is lost returns KV_EUNKNOWN_OUTCOME,
 * since it may have been applied; a read whose answer does not come within
 * request_timeout_ms returns KV_ETIMEDOUT.
 *
 * @param endpoints  array of "HOST:PORT" strings; copied.
 * @param count      number of endpoints, at least 1
 * @param opts       NULL for defaults (timeouts, connections)
 * @return KV_OK; KV_EINVAL (no endpoints, an unparsable one, bad options);
 *         KV_ENOMEM.
 * Threads: the handle may be used from any number of threads.
 */
KV_API int kv_client_open(kv **out, const char *const *endpoints, size_t count,
                          const kv_client_options *opts);

/**
 * kv_cluster_describe - the cluster as a node sees it, as JSON:
 * {"nodeId": "...", "replicas": R, "replicationFactor": N, "vnodes": V,
 *  "complete": true|false,
 *  "members": [{"nodeId": "..." or null while unknown, "address": "HOST:PORT",
 *               "httpAddress": "..." or null, "primaryShare": 0.33,
 *               "replicaShare": 1.0}, ...]}
 * (the shares appear once every member's id is known: "complete").
 * N is the replication factor; R, the copies a key has now, is N or fewer
 * while the ring holds fewer members (1 for a node alone).
 *
 * @param out  receives a NUL-terminated string owned by the caller, released
 *             with kv_string_free; NULL on failure.
 * @return KV_OK; KV_ENOTSUP on embedded handles; on clients the codes of a
 *         round trip (KV_EUNAVAILABLE, KV_ETIMEDOUT); KV_EINVAL; KV_ENOMEM.
 */
KV_API int kv_cluster_describe(char **out, kv *db);

/** kv_string_free - release a string returned by libkv. NULL is a no-op. */
KV_API void kv_string_free(char *s);

/**
 * kv_ping - check that the handle can serve: on a client, a round trip to a
 * node; on embedded and node handles, always KV_OK.
 * @return KV_OK; KV_EUNAVAILABLE; KV_ETIMEDOUT; KV_EINVAL (NULL handle).
 */
KV_API int kv_ping(kv *db);

/**
 * kv_close - close a handle of any kind and release it. Embedded: syncs the
 * write-ahead log first, so every acknowledged write is on disk whatever the
 * sync policy. NULL is a no-op.
 * Threads: must not run concurrently with any other call on the handle.
 */
KV_API void kv_close(kv *db);

/* --------------------------------------------------------------- data calls */

/*
 * Every argument of a data call is checked, on every kind of handle and by
 * every node that serves it, against the limits in docs/SECURITY.md (key,
 * value, TTL, consistency level and R/W, context, batch size) before
 * anything is allocated or stored. On client handles (and node handles in a
 * cluster) every call may also return KV_EUNAVAILABLE, KV_ETIMEDOUT,
 * KV_EUNKNOWN_OUTCOME (writes), and KV_EPERM when the nodes require a
 * client token that kv_client_options.auth_token does not give, or their
 * TLS certificate does not verify. No other code is ever returned.
 */

/**
 * kv_put - store a value under a key, replacing any previous value.
 *
 * @param out_version  receives the new version; may be NULL.
 * @param db           the handle
 * @param key,key_len  the key, 1..max_key_size bytes; borrowed for the call
 * @param value,value_len  the value, 0..max_value_size bytes; borrowed for
 *                     the call; value may be NULL when value_len is 0
 * @param opts         NULL for defaults; ttl_s sets an expiry
 * @return KV_OK; KV_EINVAL; KV_ETOOBIG; KV_ECORRUPT (the previous record
 *         failed its checksum; nothing written); KV_EIO; KV_ENOMEM.
 */
KV_API int kv_put(uint64_t *out_version, kv *db, const void *key, size_t key_len,
                  const void *value, size_t value_len,
                  const kv_write_options *opts);

/**
 * kv_get - read the value of a key.
 *
 * @param out   receives the value, owned by the caller, released with
 *              kv_value_free; set to NULL on any failure.
 * @param opts  NULL for defaults
 * @return KV_OK; KV_ENOTFOUND (absent, deleted or expired); KV_EINVAL;
 *         KV_ETOOBIG (key over the limit); KV_ECORRUPT (the record failed its
 *         checksum and is not returned); KV_EIO; KV_ENOMEM.
 */
KV_API int kv_get(kv_value **out, kv *db, const void *key, size_t key_len,
                  const kv_read_options *opts);

/**
 * kv_get_traced - kv_get that also says which replicas answered what, as
 * JSON: {"required": R, "replicas": [{"nodeId": "n1", "status": "OK",
 * "version": 7, "siblings": 1, "repaired": false}, ...]}. status is "OK",
 * "NOT_FOUND" or why the replica did not answer; version is the highest it
 * holds (tombstones included); repaired says it was sent the merged state.
 * Outside a cluster the list is empty. On a node handle the node itself
 * coordinates; on a client handle the client does.
 *
 * @param out        as kv_get
 * @param out_trace  receives the JSON (NUL-terminated, owned by the caller,
 *                   released with kv_string_free) whatever the outcome of the
 *                   read, or NULL when out of memory.
 * @return as kv_get.
 */
KV_API int kv_get_traced(kv_value **out, char **out_trace, kv *db, const void *key,
                         size_t key_len, const kv_read_options *opts);

/**
 * kv_delete - delete a key, leaving a tombstone with the next version.
 *
 * @param out_version  receives the tombstone's version; may be NULL.
 * @return KV_OK (a live value was deleted); KV_ENOTFOUND (there was no live
 *         value; nothing is written); KV_EINVAL; KV_ETOOBIG; KV_ECORRUPT;
 *         KV_EIO.
 */
KV_API int kv_delete(uint64_t *out_version, kv *db, const void *key,
                     size_t key_len, const kv_write_options *opts);

/**
 * kv_cas - compare-and-swap: store the value only if the key's current
 * version is expected_version (0 = only if the key is absent, deleted or
 * expired). Atomic against every other writer of the same handle.
 *
 * @param out_version  on KV_OK the new version; on KV_ECONFLICT the current
 *                     version (0 if absent). May be NULL.
 * @return KV_OK; KV_ECONFLICT; KV_EINVAL; KV_ETOOBIG; KV_ECORRUPT; KV_EIO.
 */
KV_API int kv_cas(uint64_t *out_version, kv *db, const void *key,
                  size_t key_len, uint64_t expected_version, const void *value,
                  size_t value_len, const kv_write_options *opts);

/* ------------------------------------------------------- asynchronous calls
 *
 * The same four calls without waiting: each returns at once and reports its
 * outcome to a callback, so one thread can keep many requests in flight (as
 * hiredis's async context and libcurl's multi interface do).
 *
 * On a client handle the requests travel over the client's connections,
 * many in flight on each (up to kv_client_options.max_inflight), and are
 * written once per turn of the client's event loop; the callback runs on
 * the loop's thread: a thread of the client's own, or, with
 * kv_client_options.manual_loop, the application's thread inside kv_run.
 * Asynchronous requests go to a node of the handle's endpoints, which
 * coordinates them (a blocking call on a handle that has learned the
 * cluster coordinates in the client instead). With KV_POLICY_MERGE, a get
 * that finds siblings runs the merge callback on the loop's thread, writes
 * the result back and reads again before its callback runs, as kv_get does.
 *
 * On an embedded or node handle the call runs to completion first and the
 * callback runs on the calling thread before the call returns.
 *
 * Callbacks must not block and must not call the blocking functions of the
 * same handle (they fail with KV_EBUSY) or close it; they may start more
 * asynchronous calls. Threads: the calls are safe from any thread, like the
 * blocking ones.
 */

/** What an asynchronous call ended with, as the blocking call would have
 * returned it. Valid during the callback only, except value. */
typedef struct kv_result {
    int status;          /**< KV_OK or a KV_E* code, as the blocking call */
    const char *message; /**< the detail kv_error_last would give; "" on KV_OK */
    uint64_t version;    /**< put/delete/cas: the new version; cas with
                          * KV_ECONFLICT: the current one (0: absent) */
    kv_value *value;     /**< get with KV_OK: the value, owned by the callback
                          * (release it with kv_value_free); otherwise NULL */
} kv_result;

/** Called once per asynchronous call, with ctx as given to it. */
typedef void (*kv_callback)(void *ctx, kv_result *result);

/**
 * kv_get_async, kv_put_async, kv_delete_async, kv_cas_async - start the
 * call; arguments as the blocking calls (key and value are copied before
 * the call returns).
 *
 * @param cb   required; runs exactly once when the call returned KV_OK
 * @param ctx  passed to cb
 * @return KV_OK: started (cb will run); otherwise the call was refused and
 *         cb will not run: KV_EINVAL (bad arguments, NULL cb), KV_ETOOBIG,
 *         KV_ENOMEM.
 */
KV_API int kv_get_async(kv *db, const void *key, size_t key_len, const kv_read_options *opts,
                        kv_callback cb, void *ctx);
KV_API int kv_put_async(kv *db, const void *key, size_t key_len, const void *value,
                        size_t value_len, const kv_write_options *opts, kv_callback cb,
                        void *ctx);
KV_API int kv_delete_async(kv *db, const void *key, size_t key_len,
                           const kv_write_options *opts, kv_callback cb, void *ctx);
KV_API int kv_cas_async(kv *db, const void *key, size_t key_len, uint64_t expected_version,
                        const void *value, size_t value_len, const kv_write_options *opts,
                        kv_callback cb, void *ctx);

/**
 * kv_run - run the event loop of a client opened with manual_loop: one
 * turn, waiting at most timeout_ms (-1: until there is work; 0: not at all)
 * for answers, then running their callbacks. Call it whenever kv_fd is
 * readable, or in a loop.
 *
 * @return the number of events handled (>= 0), or KV_EINVAL (not a
 *         manual_loop client handle), KV_EBUSY (called from a callback).
 * Threads: one thread at a time (others wait).
 */
KV_API int kv_run(kv *db, int timeout_ms);

/**
 * kv_fd - a descriptor that is readable whenever kv_run has work (answers,
 * timeouts): add it to the application's own poll, epoll or event loop.
 * Owned by the handle; do not read or close it.
 *
 * @return KV_OK; KV_EINVAL when db is not a manual_loop client handle.
 */
KV_API int kv_fd(int *out_fd, kv *db);

/**
 * kv_batch_execute - run every operation of a batch; read the outcomes with
 * kv_batch_result. On an embedded handle the batch is atomic (see batch.h).
 *
 * @param wopts  options of the batch's writes (consistency); NULL = defaults.
 *               Per-operation TTLs are given to kv_batch_put.
 * @param ropts  options of the batch's gets; NULL = defaults.
 * @return KV_OK when the batch ran (each operation has its own status,
 *         KV_ENOTFOUND among them); otherwise nothing was applied and the
 *         code says why: KV_EINVAL (empty batch, an invalid operation),
 *         KV_ETOOBIG (an operation over the handle's limits; its result says
 *         which), KV_ECORRUPT, KV_EIO, KV_ENOMEM.
 */
KV_API int kv_batch_execute(kv *db, kv_batch *b, const kv_write_options *wopts,
                            const kv_read_options *ropts);

/**
 * kv_compact - compact the whole store now: expired values and tombstones
 * past their grace period are dropped, the rest is rewritten in sorted runs.
 * Runs in the calling thread and may take long on a large store.
 * @return KV_OK; KV_ENOTSUP on client handles; KV_EIO.
 */
KV_API int kv_compact(kv *db);

/* ------------------------------------------------------- backup and restore */

/** Longest directory a backup or restore accepts, in bytes (without the
 * terminating NUL). */
#define KV_BACKUP_MAX_PATH 1024

/**
 * kv_backup - take a consistent snapshot of the store (like etcd's snapshot
 * save and Cassandra's nodetool snapshot). Each snapshot is a RocksDB
 * checkpoint of the whole store (data, hints, Paxos state and metadata):
 * the memtables are flushed, then the store's files are hard-linked into
 * the new directory (copied when it is on another file system), so it is
 * cheap in time and space; a file "kv-backup.json" beside them names the
 * snapshot (format, node id, time, library version, an estimate of the keys).
 * A snapshot directory opens with kv_open as a store of its own, and
 * kv_restore (kvd --restore-from) copies it into a node's data directory.
 *
 *  - embedded handle: the store is snapshotted into dir.
 *  - node handle: the node's own store is snapshotted into dir.
 *  - client handle: every member of the cluster (or the node the client is
 *    connected to, when it is a node of its own) snapshots its store into
 *    dir/<node-id> on its own machine and file system. The members'
 *    snapshots are each consistent but taken at slightly different moments
 *    (docs/DEPLOY.md, "Backup and restore"). A member that cannot be reached
 *    or fails makes the call fail, naming it; the others keep theirs.
 *
 * @param out_report  receives (may be NULL) a JSON report whatever the
 *             outcome, NUL-terminated, owned by the caller, released with
 *             kv_string_free (NULL when out of memory):
 *             {"dir": "...", "nodes": [{"nodeId": "n1" or null, "status":
 *             "OK", "path": "...", "bytes": B, "estimatedKeys": K}, {"nodeId":
 *             "n2", "status": "UNAVAILABLE", "message": "..."}, ...]}
 *             bytes is the snapshot's size (its hard-linked files counted).
 * @param db   the handle
 * @param dir  an absolute path, 1..KV_BACKUP_MAX_PATH bytes; copied. The
 *             snapshot's directory (dir, or dir/<node-id> for a client)
 *             must not exist yet; missing parents are created (mode 0700).
 * @return KV_OK when every snapshot was taken; KV_EINVAL (NULL handle, a
 *         relative, empty or too long dir, or the snapshot's directory
 *         exists already); KV_EIO; KV_ENOMEM; on clients the codes of a
 *         round trip (KV_EUNAVAILABLE, KV_ETIMEDOUT, KV_EUNKNOWN_OUTCOME when
 *         a member did not answer in time, KV_EPERM) or the first failing
 *         member's code, with its id in kv_error_last().
 * Threads: any thread; other calls on the handle go on meanwhile (writes
 *         made during the call may or may not be in the snapshot).
 */
KV_API int kv_backup(char **out_report, kv *db, const char *dir);

/**
 * kv_repair - start an anti-entropy repair now (as Cassandra's nodetool
 * repair): each node asked runs a round that exchanges with every member
 * it shares token ranges with, one after another, comparing their digests
 * and repairing what differs in both directions
 * (docs/design/ANTI_ENTROPY.md). The call only starts the rounds; each
 * node's progress and outcome are in its cluster description
 * (kv_cluster_describe on a handle to that node: "antiEntropy" ->
 * "round"), which `kvctl repair --wait` follows. A node whose round is
 * running joins it rather than starting another.
 *
 *  - client handle: every member (or only node_id) starts a round.
 *  - node handle: the node starts its own (node_id is ignored).
 *  - embedded handle: KV_ENOTSUP.
 *
 * @param out_report  receives (may be NULL) a JSON report whatever the
 *             outcome, owned by the caller, released with kv_string_free:
 *             {"nodes": [{"nodeId": "n1", "status": "OK", "round": 3},
 *             {"nodeId": "n2", "status": "UNAVAILABLE", "message": "..."}]}
 * @param db   the handle
 * @param node_id  a member's id, or NULL for every member; copied
 * @return KV_OK when every node asked started (or joined) a round;
 *         KV_EINVAL (NULL handle, no member node_id); KV_ENOTSUP (an
 *         embedded store, or a node that is not in a cluster); the codes
 *         of a round trip; else the first failing node's code, its id in
 *         kv_error_last().
 * Threads: any thread.
 */
KV_API int kv_repair(char **out_report, kv *db, const char *node_id);

/**
 * kv_topology_change - change the cluster's shape, one change at a time
 * (docs/CLUSTER.md, "Changing the cluster"). The change is recorded at the
 * next epoch of the cluster's topology, agreed on by its members; it then
 * runs on its own (follow it in kv_cluster_describe: "topology").
 *
 *  - "leave" (as nodetool decommission): node_id (NULL: the node a node
 *    handle is, or the one a client handle reaches) streams its ranges to
 *    their new homes, which take its writes meanwhile; then it is left
 *    and serves nothing more: stop it. It must be up.
 *  - "remove" (as nodetool removenode): node_id is down for good; the
 *    other members stream its ranges from the surviving replicas.
 *  - "abort": the change in progress is undone (node_id NULL).
 *  - "cleanup" (as nodetool cleanup): not a change of the record: the node
 *    (a node handle itself, a client handle the node it reaches; node_id,
 *    when given, must be that node's id) drops the data of the token
 *    ranges it is no home of, once a change has moved them elsewhere.
 *    Refused (KV_EBUSY) while a change is in progress. out_json then is
 *    {"nodeId": "n1", "epoch": 9, "ranges": 40, "keysBefore": 12000,
 *    "keysAfter": 9000} (keys as the node's anti-entropy digest counts
 *    them). kvctl cleanup runs it on every member.
 *
 * @param out_json  receives (may be NULL) the record that holds the change,
 *             owned by the caller, released with kv_string_free:
 *             {"epoch": 7, "operation": {"kind": "leave", "member": "n2",
 *             "sinceEpoch": 7}}
 * @param db   a client or node handle
 * @param change  "leave", "remove", "abort" or "cleanup"
 * @param node_id  the member, or NULL as said above; copied
 * @return KV_OK once recorded; KV_EBUSY (another change is in progress: the
 *         message names it), KV_EINVAL (no such member, or one in the wrong
 *         state; leaving would leave fewer members than replicas),
 *         KV_EUNAVAILABLE (too few members answered; a leaving member that
 *         is down), KV_ENOTSUP (an embedded store, a node alone), or the
 *         codes of a round trip.
 * Threads: any thread.
 */
KV_API int kv_topology_change(char **out_json, kv *db, const char *change, const char *node_id);

/**
 * kv_restore - copy a snapshot taken by kv_backup into a store directory,
 * before the store (or the node) is opened on it. The files are copied,
 * not linked, so the backup stays intact whatever the restored store does.
 *
 * @param backup_dir  a snapshot directory (it holds kv-backup.json), or,
 *             with node_id, a cluster backup whose backup_dir/<node_id> is
 *             one. Copied.
 * @param data_dir    the store's directory: missing or empty (anything else
 *             is refused: a restore never overwrites a store). Copied.
 * @param node_id     the node being restored, or NULL for an embedded
 *             store. A snapshot of another node is refused: its data is that
 *             node's share of the ring.
 * @return KV_OK; KV_EINVAL (NULL or bad path, no snapshot there, data_dir
 *         not empty, a snapshot of another node, an unknown snapshot
 *         format); KV_EIO; KV_ENOMEM.
 * Threads: any thread; nothing may have data_dir open meanwhile.
 */
KV_API int kv_restore(const char *backup_dir, const char *data_dir, const char *node_id);

#ifdef __cplusplus
}
#endif
#endif /* KV_KV_H */
