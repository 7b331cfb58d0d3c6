"""libkv: Python binding of libkv, a Dynamo-style key-value store.

    import libkv

    with libkv.open("/tmp/demo.kv") as db:          # an embedded store
        db.put("user:1", b"ada", ttl=3600)
        v = db.get("user:1")                        # a Value, or None
        print(v, v.version)                         # b'ada' 1
        db.cas("user:1", v.version, b"grace")       # ConflictError if raced

    node = libkv.start_node("/tmp/n1", node_id="n1", listen="127.0.0.1:0")
    with libkv.connect(node.address) as client:     # a client of that node
        client.put(b"k", b"v", consistency="all")

The binding uses ctypes on libkv.so (set LIBKV_LIBRARY to choose the file).
Keys and values are bytes; str is encoded as UTF-8. Every handle is
thread-safe and releases the GIL while the library works.
"""
from __future__ import annotations

import math
import os
from ctypes import byref, c_void_p
from typing import Any, Callable, Iterable, List, Optional, Sequence, Union

from . import _native
from ._errors import (BusyError, ClosedError, ConflictError, CorruptError, Error,
                      InvalidArgumentError, NotFoundError, NotSupportedError,
                      OutOfMemoryError, PermissionDeniedError, RetryableError,
                      StorageError, TimedOutError, TooBigError, UnavailableError,
                      UnknownOutcomeError, from_code, strerror)
from ._store import (CLIENT, EMBEDDED, NODE, Store, Value, as_bytes, as_text, cstrings,
                     fill_open_options, make_log_fn, merge_callback, LOG_LEVELS, _ms, _uint,
                     _uint_max, _staleness_ms, _choice)

__version__ = "0.1.0"

__all__ = [
    "open", "start_node", "connect", "Store", "Node", "Value", "library_version",
    "library_path", "strerror", "CONSISTENCY_LEVELS",
    "Error", "NotFoundError", "ConflictError", "InvalidArgumentError", "TooBigError",
    "RetryableError", "UnavailableError", "TimedOutError", "UnknownOutcomeError",
    "CorruptError", "StorageError", "ClosedError", "OutOfMemoryError",
    "NotSupportedError", "BusyError", "PermissionDeniedError",
]

#: The consistency levels this library knows, for the consistency= argument
#: (besides r=N / w=N for explicit counts).
CONSISTENCY_LEVELS = tuple(k for k in _native.CONSISTENCY if k != "explicit")

#: connect(loop=...): where a client's I/O runs, and its manual_loop value.
LOOPS = {"thread": 0, "caller": 1}

library_version = _native.library_version
library_path = _native.library_path

_open = open  # the builtin, before `open` below shadows it here
PathLike = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def open(path: PathLike, *, create_if_missing: bool = True,
         max_key_size: Optional[int] = None, max_value_size: Optional[int] = None,
         sync: str = "always", sync_interval: Optional[float] = None,
         block_cache_bytes: Optional[int] = None, tombstone_grace: Optional[int] = None,
         log: Any = None, log_level: str = "info",
         row_cache_bytes: Optional[int] = None) -> Store:
    """Open (or create) an embedded store in the directory path.

    sync: "always" (fsync before each write returns; the default),
    "periodic" (every sync_interval seconds, default 0.1) or "none".
    max_key_size (default 1024, up to 65536) and max_value_size (default
    1 MiB, up to 64 MiB) in bytes. block_cache_bytes: RocksDB's block cache
    (default 64 MiB). row_cache_bytes: the latest records of recently used
    keys, held in front of RocksDB (default 64 MiB; 0 for none). tombstone_grace: seconds a tombstone is kept (default
    one day; 0 drops it at the next compaction). log: a logging.Logger or a
    callable(level, message) for the library's messages, up to log_level
    ("error", "warn", "info", "debug").

    Raises BusyError (open in another process), InvalidArgumentError,
    StorageError.
    """
    p = os.fsencode(path)
    if not p or b"\0" in p:
        raise ValueError("path must be a non-empty path without NUL bytes")
    keep: List[Any] = []
    o = _native.OpenOptions()
    fill_open_options(o, keep, create_if_missing=create_if_missing,
                      max_key_size=max_key_size, max_value_size=max_value_size,
                      sync=sync, sync_interval=sync_interval,
                      block_cache_bytes=block_cache_bytes, row_cache_bytes=row_cache_bytes,
                      tombstone_grace=tombstone_grace, log=log, log_level=log_level)
    ptr = c_void_p()
    rc = _native.lib.kv_open(byref(ptr), p, byref(o))
    if rc:
        raise from_code(rc, f"open {os.fsdecode(p)}")
    return Store(ptr, EMBEDDED, keep)


class Node(Store):
    """A storage node hosted in this process (libkv.start_node): a Store on
    the node's own data, which also serves other processes."""

    __slots__ = ("_host",)

    @property
    def address(self) -> str:
        """The binary protocol's "HOST:PORT", with the port actually bound;
        give it to libkv.connect or to other nodes' peers / seeds."""
        return f"{self._host}:{self.ports[0]}"

    @property
    def http_address(self) -> Optional[str]:
        """The HTTP API's "HOST:PORT", or None when it does not serve HTTP."""
        port = self.ports[1]
        return f"{self._host}:{port}" if port else None


def _host_of(addr: str) -> str:
    return addr.rsplit(":", 1)[0] if ":" in addr else addr


def _ae_interval_s(x: Any) -> int:
    """ae_interval in seconds to kv_node_options.ae_interval_s: None = 0
    (the default), math.inf = KV_AE_INTERVAL_NEVER, otherwise whole seconds
    rounded up (above the library's limit, it refuses them)."""
    if x is None:
        return 0
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"ae_interval must be a number of seconds, not {type(x).__name__}")
    if x == math.inf:
        return _native.KV_AE_INTERVAL_NEVER
    if not x > 0:
        raise ValueError("ae_interval must be a positive number of seconds (None: the "
                         f"default, math.inf: never), not {x}")
    return min(math.ceil(x), _native.KV_AE_INTERVAL_NEVER - 1)


def start_node(data_dir: PathLike, node_id: str, *, listen: str = "127.0.0.1:0",
               http: Optional[str] = None, peers: Sequence[str] = (),
               seeds: Sequence[str] = (), replicas: Optional[int] = None,
               vnodes: Optional[int] = None, policy: str = "lww",
               io_threads: Optional[int] = None, http_threads: Optional[int] = None,
               max_request_bytes: Optional[int] = None,
               idle_timeout: Optional[float] = None,
               max_connections: Optional[int] = None,
               internode_timeout: Optional[float] = None,
               hint_window: Optional[int] = None, handoff_kib_per_s: Optional[int] = None,
               failure_pause: Optional[float] = None,
               cluster_secret: Optional[bytes] = None,
               client_tokens: Sequence[str] = (), insecure: bool = False,
               tls_cert_pem: Optional[str] = None, tls_key_pem: Optional[str] = None,
               tls_ca_pem: Optional[str] = None,
               max_buffered_bytes: Optional[int] = None,
               sync: str = "always", max_key_size: Optional[int] = None,
               max_value_size: Optional[int] = None, sync_interval: Optional[float] = None,
               block_cache_bytes: Optional[int] = None,
               tombstone_grace: Optional[int] = None, log: Any = None,
               log_level: str = "info", row_cache_bytes: Optional[int] = None,
               metadata: Optional[str] = None, slow_request: Optional[float] = None,
               ae_interval: Optional[float] = None,
               repair_bytes_per_s: Optional[int] = None,
               ae_digest_bits: Optional[int] = None,
               stream_bytes_per_s: Optional[int] = None,
               replace: bool = False) -> Node:
    """Start a storage node in this process, serving its store in data_dir
    over the binary protocol on listen ("HOST:PORT"; port 0 picks a free
    one, see Node.address) and over HTTP on http when given.

    node_id: the node's stable name (1-64 of [A-Za-z0-9._-]). peers: the
    binary addresses of the cluster's members (this node's own may be among
    them); seeds: members to join through. replicas (default 3), vnodes
    (default 256), policy "lww" or "siblings" for the node's own reads.
    Durations are in seconds: idle_timeout, internode_timeout, failure_pause,
    hint_window. cluster_secret, client_tokens, insecure and the tls_*
    PEM texts: see docs/SECURITY.md. metadata: where the cluster's topology
    record is kept: None (the default) among the members themselves, or
    "etcd://HOST:PORT[,HOST:PORT...]/PREFIX" in etcd (its v3 JSON gateway);
    every member must be given the same, and it needs peers or seeds (see
    docs/CLUSTER.md). The store options (sync, max_key_size, ..., log) are
    those of libkv.open.

    slow_request: seconds (int or float, up to 3600; default 0.5) from which
    a request counts as slow (kv_slow_requests_total; logged once a minute
    at warn).

    Anti-entropy, on a node of a cluster (docs/design/ANTI_ENTROPY.md):
    ae_interval: seconds between the node's periodic exchanges with the
    members it shares ranges with (whole seconds, rounded up; up to 604800,
    a week; default 60), or math.inf for none at all: only the repair
    rounds asked for (Store.repair) run. repair_bytes_per_s: what an
    exchange may send and receive in all, in bytes per second (default
    16 MiB/s). ae_digest_bits: the digest cuts the token space into
    2**ae_digest_bits segments, 4..24 (default 18); every member must use
    the same.

    stream_bytes_per_s: bytes per second a joining node (or one gaining
    ranges) may stream in (default 32 MiB/s). replace=True: this process
    takes the place of the dead member whose id is node_id, on an empty
    data_dir, through peers or seeds (one is required); the member must no
    longer answer at its old address (while it does, the node starts but
    does not take its place, and logs why at warn). See docs/CLUSTER.md.

    None (or leaving an option out) means the library's default. Raises
    TypeError or ValueError for an option of the wrong type or one that
    cannot be represented (negative, NaN), BusyError (a port in use, the
    store open elsewhere), InvalidArgumentError, a ValueError too, for
    what the library refuses (metadata without peers or seeds, or one that
    is no etcd URL; slow_request over 3600, ae_interval over 604800,
    ae_digest_bits outside 4..24; replace without peers or seeds),
    PermissionDeniedError (beyond loopback without a secret or tokens),
    StorageError.
    """
    keep: List[Any] = []
    store = _native.OpenOptions()
    fill_open_options(store, keep, max_key_size=max_key_size,
                      max_value_size=max_value_size, sync=sync,
                      sync_interval=sync_interval, block_cache_bytes=block_cache_bytes,
                      row_cache_bytes=row_cache_bytes,
                      tombstone_grace=tombstone_grace, log=log, log_level=log_level)
    o = _native.NodeOptions()
    _native.lib.kv_node_options_init(byref(o), _native.KV_NODE_OPTIONS_VERSION)
    listen_b = as_bytes(listen, "listen")
    o.data_dir = os.fsencode(data_dir)
    o.node_id = as_bytes(node_id, "node_id")
    o.listen_addr = listen_b
    if http is not None:
        o.http_addr = as_bytes(http, "http")
    o.store = _native.ctypes.pointer(store)
    keep.append(store)
    if isinstance(peers, (str, bytes)) or isinstance(seeds, (str, bytes)):
        raise TypeError("peers and seeds are lists of 'HOST:PORT' strings")
    if peers:
        o.peers = cstrings(list(peers), "peers")
        o.peer_count = len(peers)
    if seeds:
        o.seeds = cstrings(list(seeds), "seeds")
        o.seed_count = len(seeds)
    for field, val in (("replicas", replicas), ("vnodes", vnodes),
                       ("io_threads", io_threads), ("http_threads", http_threads),
                       ("max_request_bytes", max_request_bytes),
                       ("max_connections", max_connections),
                       ("hint_window_s", hint_window),
                       ("handoff_kib_per_s", handoff_kib_per_s)):
        if val is not None:
            setattr(o, field, _uint(val, field))
    if max_buffered_bytes is not None:
        o.max_buffered_bytes = _uint(max_buffered_bytes, "max_buffered_bytes", 64)
    o.policy = _choice(policy, {"lww": 0, "siblings": 1}, "policy")
    o.idle_timeout_ms = _ms(idle_timeout, "idle_timeout")
    o.internode_timeout_ms = _ms(internode_timeout, "internode_timeout")
    o.failure_pause_ms = _ms(failure_pause, "failure_pause")
    if cluster_secret is not None:
        secret = as_bytes(cluster_secret, "cluster_secret")
        o.cluster_secret = secret
        o.cluster_secret_len = len(secret)
    if isinstance(client_tokens, (str, bytes)):
        raise TypeError("client_tokens is a list of strings")
    if client_tokens:
        o.client_tokens = cstrings(list(client_tokens), "client_tokens")
        o.client_token_count = len(client_tokens)
    o.insecure = 1 if insecure else 0
    for field, val in (("tls_cert_pem", tls_cert_pem), ("tls_key_pem", tls_key_pem),
                       ("tls_ca_pem", tls_ca_pem)):
        if val is not None:
            setattr(o, field, as_bytes(val, field))
    # kv_node_options versions 5 to 8. The library's own limits (slow_request
    # up to an hour, ae_interval up to a week, ae_digest_bits 4..24) are
    # checked by kv_node_start: its refusal raises InvalidArgumentError.
    o.slow_request_ms = _ms(slow_request, "slow_request")
    o.ae_interval_s = _ae_interval_s(ae_interval)
    if repair_bytes_per_s is not None:
        o.repair_bytes_per_s = _uint(repair_bytes_per_s, "repair_bytes_per_s", 64)
    if ae_digest_bits is not None:
        o.ae_digest_bits = _uint(ae_digest_bits, "ae_digest_bits")
    if stream_bytes_per_s is not None:
        o.stream_bytes_per_s = _uint(stream_bytes_per_s, "stream_bytes_per_s", 64)
    o.replace = 1 if replace else 0
    if metadata is not None:
        o.metadata = as_text(metadata, "metadata")  # kv_node_options version 9
    ptr = c_void_p()
    rc = _native.lib.kv_node_start(byref(ptr), byref(o))
    if rc:
        raise from_code(rc, f"start_node {node_id}")
    node = Node(ptr, NODE, keep)
    node._host = _host_of(listen)
    return node


def connect(endpoints: Union[str, Iterable[str]], *, connect_timeout: Optional[float] = None,
            request_timeout: Optional[float] = None,
            connections_per_node: Optional[int] = None, policy: str = "lww",
            merge: Optional[Callable[[bytes, List[bytes]], Any]] = None,
            auth_token: Optional[str] = None, tls: bool = False,
            tls_ca_pem: Optional[str] = None, tls_cert_pem: Optional[str] = None,
            tls_key_pem: Optional[str] = None, log: Any = None,
            log_level: str = "info", max_inflight: Optional[int] = None,
            hot_cache_staleness: Optional[float] = None,
            hot_cache_entries: Optional[int] = None, loop: str = "thread") -> Store:
    """A client of remote nodes: endpoints is "HOST:PORT", a comma-separated
    list of them, or an iterable of them. Nothing connects until the first
    call (ping() checks that a node answers).

    connect_timeout (default 1 s) and request_timeout (default 5 s) in
    seconds; connections_per_node (default 1). policy: how concurrent writes
    are resolved: "lww" (default), "siblings" (get returns every sibling in
    Value.siblings; a write with that Value.context supersedes them) or
    "merge" with merge=fn(key, siblings) -> merged value, called on the
    thread of the get. auth_token, tls, tls_*_pem: see docs/SECURITY.md.

    max_inflight: requests in flight on one connection at most (default
    4096); more wait in the client's queue, up to request_timeout.

    hot_cache_staleness: seconds (int or float, up to 3600) for which the
    client may answer a read of a key it read lately from a cache of hot
    keys' values, without asking the cluster: such a read may miss writes
    made through other handles within that bound. None or 0 (the default):
    no cache. Reads at "serial" or "all", get_traced, and batches never use
    it; a put, delete, cas or batch through this client drops the key's
    entry, so the client reads its own writes. hot_cache_entries: keys the
    cache holds at most, the least recently read dropped first (default
    1024, up to 1048576; used only with hot_cache_staleness). See
    docs/CLUSTER.md, "The client's cache of hot keys".

    loop: where the client's network I/O runs (kv_client_options
    manual_loop).
      "thread" (the default): on a thread of the client's own; each call
        hands its request to that thread and is woken by it. In a cluster
        the client learns the members and coordinates each request itself:
        it goes straight to the key's replicas, and backup() and repair()
        reach every member.
      "caller": on the calling thread, inside each call, as redis-py does
        its socket I/O (with many threads, one at a time reads for all, and
        hands over when its own answer is in): no thread of the client's
        own and no hand-off, so each call is cheaper (bindings/python/
        README.md has figures). But the client keeps no view of the
        cluster: each request goes to a node of the endpoints, which
        coordinates it (one more network hop, and that node does the
        coordination for this client), get_traced shows no replica's
        answer, backup() of a cluster of more than one member is refused,
        and repair() asks only that node.
    Against one node nothing but the speed differs. The default stays
    "thread", what a client was before this option.

    Raises TypeError or ValueError for an option of the wrong type or out of
    range, InvalidArgumentError (no endpoint, an unparsable one, an option
    the library refuses).
    """
    manual_loop = _choice(loop, LOOPS, "loop")
    if isinstance(endpoints, (str, bytes)):
        eps = [e.strip() for e in os.fsdecode(endpoints).split(",") if e.strip()]
    else:
        eps = list(endpoints)
    if not eps:
        raise ValueError("connect needs at least one 'HOST:PORT' endpoint")
    arr = cstrings(eps, "endpoints")
    keep: List[Any] = []
    o = _native.ClientOptions()
    _native.lib.kv_client_options_init(byref(o), _native.KV_CLIENT_OPTIONS_VERSION)
    o.connect_timeout_ms = _ms(connect_timeout, "connect_timeout")
    o.request_timeout_ms = _ms(request_timeout, "request_timeout")
    if connections_per_node is not None:
        o.connections_per_node = _uint(connections_per_node, "connections_per_node")
    # kv_client_options version 4: manual_loop 1 for loop="caller" (the
    # binding makes only blocking calls, which then drive the loop on the
    # calling thread; kv_run is never needed).
    o.manual_loop = manual_loop
    if max_inflight is not None:
        o.max_inflight = _uint(max_inflight, "max_inflight")
    # Version 5: the cache of hot keys (kv_client_open checks the same
    # limits and its refusal raises InvalidArgumentError).
    o.hot_cache_staleness_ms = _staleness_ms(hot_cache_staleness, "hot_cache_staleness",
                                             _native.KV_HOT_CACHE_MAX_STALENESS_MS)
    if hot_cache_entries is not None:
        o.hot_cache_entries = _uint_max(hot_cache_entries, "hot_cache_entries",
                                        _native.KV_HOT_CACHE_MAX_ENTRIES)
    o.policy = _choice(policy, _native.POLICY, "policy")
    if (o.policy == _native.KV_POLICY_MERGE) != (merge is not None):
        raise ValueError('merge=fn goes with policy="merge", and only with it')
    if merge is not None:
        if not callable(merge):
            raise TypeError("merge must be callable(key, siblings) -> bytes")
        cb = merge_callback(merge)
        keep.append(cb)
        o.merge = cb
    o.log_level = _choice(log_level, LOG_LEVELS, "log_level")
    if log is not None:
        fn = make_log_fn(log)
        keep.append(fn)
        o.log_fn = fn
    if auth_token is not None:
        o.auth_token = as_bytes(auth_token, "auth_token")
    o.tls = 1 if tls else 0
    for field, val in (("tls_ca_pem", tls_ca_pem), ("tls_cert_pem", tls_cert_pem),
                       ("tls_key_pem", tls_key_pem)):
        if val is not None:
            setattr(o, field, as_bytes(val, field))
    ptr = c_void_p()
    rc = _native.lib.kv_client_open(byref(ptr), arr, len(eps), byref(o))
    if rc:
        raise from_code(rc, "connect")
    return Store(ptr, CLIENT, keep, merge)
