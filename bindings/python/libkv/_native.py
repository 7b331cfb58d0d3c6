"""The C side: finding libkv.so, and ctypes mirrors of include/kv/*.h.

Everything here follows the header exactly: the option structs field by
field (tests/test_layout.py compares sizes and offsets with a C compiler's),
the status codes and the enums. Nothing outside this module touches ctypes
declarations directly.

ctypes.CDLL releases the GIL around every foreign call, so other Python
threads run while libkv works; keep it a CDLL (never PyDLL).
"""
from __future__ import annotations

import ctypes
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_int, c_size_t,
                    c_uint, c_uint32, c_uint64, c_void_p)
from typing import List, Optional

# The ABI major this binding was written against (the SONAME's number).
ABI_MAJOR = 0

# ------------------------------------------------------------ status codes
KV_OK = 0
KV_ENOTFOUND = -1
KV_ECONFLICT = -2
KV_ETOOBIG = -3
KV_EINVAL = -4
KV_ETIMEDOUT = -5
KV_EUNAVAILABLE = -6
KV_EUNKNOWN_OUTCOME = -7
KV_ECORRUPT = -8
KV_EIO = -9
KV_ECLOSED = -10
KV_ENOMEM = -11
KV_ENOTSUP = -12
KV_EBUSY = -13
KV_EPERM = -14

# ------------------------------------------------------------------- enums
KV_LOG_ERROR, KV_LOG_WARN, KV_LOG_INFO, KV_LOG_DEBUG = 0, 1, 2, 3

# kv_consistency, by name. When the header gains a level, add it here with
# the header's value; tests/test_layout.py fails until the two agree.
CONSISTENCY = {
    "default": 0,
    "one": 1,
    "quorum": 2,
    "all": 3,
    "explicit": 4,
    "serial": 5,   # linearizable per key (Paxos among the key's homes)
}
KV_CONSISTENCY_EXPLICIT = CONSISTENCY["explicit"]

SYNC = {"always": 0, "periodic": 1, "none": 2}
POLICY = {"lww": 0, "siblings": 1, "merge": 2}
KV_POLICY_MERGE = POLICY["merge"]

KV_BATCH_PUT, KV_BATCH_GET, KV_BATCH_DELETE = 1, 2, 3

KV_DEFAULT_MAX_KEY_SIZE = 1024
KV_MAX_KEY_SIZE_LIMIT = 64 * 1024
KV_DEFAULT_MAX_VALUE_SIZE = 1024 * 1024
KV_MAX_VALUE_SIZE_LIMIT = 64 * 1024 * 1024
KV_BATCH_MAX_OPS = 10000
KV_GRACE_NONE = 2**64 - 1
KV_ROW_CACHE_NONE = 2**64 - 1
KV_AE_INTERVAL_NEVER = 2**32 - 1

# Option struct versions this binding fills (the library accepts older ones).
KV_OPEN_OPTIONS_VERSION = 2
KV_WRITE_OPTIONS_VERSION = 2
KV_READ_OPTIONS_VERSION = 1
KV_NODE_OPTIONS_VERSION = 9
KV_CLIENT_OPTIONS_VERSION = 5

# kv_client_options' limits on the cache of hot keys (checked by kv_client_open).
KV_HOT_CACHE_MAX_STALENESS_MS = 3600 * 1000
KV_HOT_CACHE_MAX_ENTRIES = 1048576

# ----------------------------------------------------------------- structs
LOG_FN = CFUNCTYPE(None, c_int, c_char_p, c_void_p)
# int (*)(void *ctx, kv_merge_result *result, const void *key, size_t key_len,
#         const kv_value *siblings)
MERGE_FN = CFUNCTYPE(c_int, c_void_p, c_void_p, c_void_p, c_size_t, c_void_p)


class OpenOptions(Structure):
    """kv_open_options, version 2."""
    _fields_ = [
        ("version", c_uint),
        ("create_if_missing", c_int),
        ("max_key_size", c_uint32),
        ("max_value_size", c_uint32),
        ("sync", c_int),
        ("sync_interval_ms", c_uint32),
        ("block_cache_bytes", c_uint64),
        ("tombstone_grace_s", c_uint64),
        ("log_fn", LOG_FN),
        ("log_ctx", c_void_p),
        ("log_level", c_int),
        ("row_cache_bytes", c_uint64),
    ]


class WriteOptions(Structure):
    """kv_write_options, version 2."""
    _fields_ = [
        ("version", c_uint),
        ("ttl_s", c_uint64),
        ("consistency", c_int),
        ("w", c_uint),
        ("context", c_char_p),
        ("context_len", c_size_t),
        ("home_only", c_int),
    ]


class ReadOptions(Structure):
    """kv_read_options, version 1."""
    _fields_ = [
        ("version", c_uint),
        ("consistency", c_int),
        ("r", c_uint),
    ]


class NodeOptions(Structure):
    """kv_node_options, version 9."""
    _fields_ = [
        ("version", c_uint),
        ("data_dir", c_char_p),
        ("node_id", c_char_p),
        ("listen_addr", c_char_p),
        ("http_addr", c_char_p),
        ("store", POINTER(OpenOptions)),
        ("io_threads", c_uint),
        ("http_threads", c_uint),
        ("max_request_bytes", c_uint32),
        ("idle_timeout_ms", c_uint32),
        ("max_connections", c_uint),
        ("peers", POINTER(c_char_p)),
        ("peer_count", c_size_t),
        ("replicas", c_uint),
        ("vnodes", c_uint),
        ("policy", c_int),
        ("internode_timeout_ms", c_uint32),
        # version 3
        ("seeds", POINTER(c_char_p)),
        ("seed_count", c_size_t),
        ("hint_window_s", c_uint32),
        ("handoff_kib_per_s", c_uint32),
        ("failure_pause_ms", c_uint32),
        # version 4
        ("cluster_secret", c_char_p),
        ("cluster_secret_len", c_size_t),
        ("client_tokens", POINTER(c_char_p)),
        ("client_token_count", c_size_t),
        ("insecure", c_int),
        ("tls_cert_pem", c_char_p),
        ("tls_key_pem", c_char_p),
        ("tls_ca_pem", c_char_p),
        ("max_buffered_bytes", c_uint64),
        # version 5
        ("slow_request_ms", c_uint32),
        # version 6
        ("ae_interval_s", c_uint32),
        ("repair_bytes_per_s", c_uint64),
        ("ae_digest_bits", c_uint),
        # version 7
        ("stream_bytes_per_s", c_uint64),
        # version 8
        ("replace", c_int),
        # version 9
        ("metadata", c_char_p),
    ]


class ClientOptions(Structure):
    """kv_client_options, version 5."""
    _fields_ = [
        ("version", c_uint),
        ("connect_timeout_ms", c_uint32),
        ("request_timeout_ms", c_uint32),
        ("connections_per_node", c_uint),
        ("log_fn", LOG_FN),
        ("log_ctx", c_void_p),
        ("log_level", c_int),
        ("policy", c_int),
        ("merge", MERGE_FN),
        ("merge_ctx", c_void_p),
        # version 3
        ("auth_token", c_char_p),
        ("tls", c_int),
        ("tls_ca_pem", c_char_p),
        ("tls_cert_pem", c_char_p),
        ("tls_key_pem", c_char_p),
        # version 4
        # manual_loop: connect(loop="caller") sets 1; the binding makes only
        # blocking calls, which then drive the loop on the calling thread.
        ("manual_loop", c_int),
        ("max_inflight", c_uint),
        # version 5
        ("hot_cache_staleness_ms", c_uint32),
        ("hot_cache_entries", c_uint32),
    ]


# ---------------------------------------------------------------- loading
_ENV = "LIBKV_LIBRARY"


def _repo_candidates() -> List[str]:
    """libkv.so in the build tree, when this package runs from a checkout
    (bindings/python/libkv/ -> the repository is three levels up)."""
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(os.path.dirname(here)))
    if not os.path.isfile(os.path.join(root, "include", "kv", "kv.h")):
        return []
    return [os.path.join(root, "build", "lib", "libkv.so")]


def _load() -> ctypes.CDLL:
    tried: List[str] = []
    explicit = os.environ.get(_ENV)
    if explicit:
        # Asked for by name: that one or nothing, never a silent substitute.
        try:
            return ctypes.CDLL(explicit)
        except OSError as e:
            raise ImportError(f"libkv: cannot load {_ENV}={explicit}: {e}") from None
    for path in _repo_candidates():
        if os.path.exists(path):
            try:
                return ctypes.CDLL(path)
            except OSError as e:
                tried.append(f"{path} ({e})")
        else:
            tried.append(f"{path} (not built)")
    # The system's search path (LD_LIBRARY_PATH, ld.so.cache, /usr/lib...):
    # the SONAME first, so an incompatible major is never picked up.
    for name in (f"libkv.so.{ABI_MAJOR}", "libkv.so"):
        try:
            return ctypes.CDLL(name)
        except OSError as e:
            tried.append(f"{name} ({e})")
    raise ImportError(
        "libkv: cannot find the shared library libkv.so. Tried:\n  "
        + "\n  ".join(tried)
        + f"\nSet {_ENV}=/path/to/libkv.so, build it in the repository "
        "(cmake -S . -B build && cmake --build build), or install it "
        "(cmake --install build; ldconfig).")


def _declare(lib: ctypes.CDLL) -> None:
    """argtypes and restype of every call, set once."""
    vp, sz, u64 = c_void_p, c_size_t, c_uint64
    pvp, psz, pu64, pint = POINTER(c_void_p), POINTER(c_size_t), POINTER(c_uint64), POINTER(c_int)
    wo, ro = POINTER(WriteOptions), POINTER(ReadOptions)
    table = {
        "kv_version": (c_char_p, [pint, pint, pint]),
        "kv_strerror": (c_char_p, [c_int]),
        "kv_error_last": (c_char_p, []),
        "kv_open_options_init": (c_int, [POINTER(OpenOptions), c_uint]),
        "kv_write_options_init": (c_int, [wo, c_uint]),
        "kv_read_options_init": (c_int, [ro, c_uint]),
        "kv_node_options_init": (c_int, [POINTER(NodeOptions), c_uint]),
        "kv_client_options_init": (c_int, [POINTER(ClientOptions), c_uint]),
        "kv_open": (c_int, [pvp, c_char_p, POINTER(OpenOptions)]),
        "kv_node_start": (c_int, [pvp, POINTER(NodeOptions)]),
        "kv_node_ports": (c_int, [pint, pint, vp]),
        "kv_client_open": (c_int, [pvp, POINTER(c_char_p), sz, POINTER(ClientOptions)]),
        "kv_cluster_describe": (c_int, [pvp, vp]),
        "kv_backup": (c_int, [pvp, vp, c_char_p]),
        "kv_repair": (c_int, [pvp, vp, c_char_p]),
        "kv_topology_change": (c_int, [pvp, vp, c_char_p, c_char_p]),
        "kv_string_free": (None, [vp]),
        "kv_ping": (c_int, [vp]),
        "kv_close": (None, [vp]),
        "kv_put": (c_int, [pu64, vp, c_char_p, sz, c_char_p, sz, wo]),
        "kv_get": (c_int, [pvp, vp, c_char_p, sz, ro]),
        "kv_get_traced": (c_int, [pvp, pvp, vp, c_char_p, sz, ro]),
        "kv_delete": (c_int, [pu64, vp, c_char_p, sz, wo]),
        "kv_cas": (c_int, [pu64, vp, c_char_p, sz, u64, c_char_p, sz, wo]),
        "kv_batch_execute": (c_int, [vp, vp, wo, ro]),
        "kv_compact": (c_int, [vp]),
        "kv_value_data": (vp, [vp, psz]),
        "kv_value_version": (u64, [vp]),
        "kv_value_expiry_ms": (u64, [vp]),
        "kv_value_sibling_count": (sz, [vp]),
        "kv_value_sibling": (vp, [vp, sz, psz]),
        "kv_value_context": (vp, [vp, psz]),
        "kv_value_free": (None, [vp]),
        "kv_merge_result_set": (c_int, [vp, c_char_p, sz]),
        "kv_batch_new": (c_int, [pvp]),
        "kv_batch_put": (c_int, [vp, c_char_p, sz, c_char_p, sz, u64]),
        "kv_batch_get": (c_int, [vp, c_char_p, sz]),
        "kv_batch_delete": (c_int, [vp, c_char_p, sz]),
        "kv_batch_count": (sz, [vp]),
        "kv_batch_result": (c_int, [pvp, pu64, vp, sz]),
        "kv_batch_free": (None, [vp]),
    }
    for name, (restype, argtypes) in table.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes


lib = _load()
_declare(lib)


def library_version() -> str:
    """The version of the libkv.so actually loaded, such as "0.1.0"."""
    return lib.kv_version(None, None, None).decode()


def _check_abi() -> None:
    major = c_int()
    lib.kv_version(ctypes.byref(major), None, None)
    if major.value != ABI_MAJOR:
        raise ImportError(
            f"libkv: the loaded library is version {library_version()} (ABI "
            f"{major.value}); this binding needs ABI {ABI_MAJOR}")


_check_abi()


def library_path() -> Optional[str]:
    """The file the library was loaded from, as dlopen was given it."""
    return lib._name
