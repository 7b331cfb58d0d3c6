"""The handle: one class for the three kinds (embedded, node, client), as in C.

Guarding close: kv_close frees the C handle, so no call may be inside the
library then. Every call registers itself in ``inflight`` (a deque, whose
append and pop are atomic) *before* it looks at ``closed``; closing sets
``closed`` first and then waits for ``inflight`` to drain. Either a call
sees ``closed`` and raises ClosedError, or the close sees the call and waits
for it: the C handle is never used after kv_close, whatever the threads do.
This costs two deque operations per call instead of a lock round trip.
The state lives in a _Guard apart from the Store, so that the finalizer
that closes a forgotten handle (collected, or at exit while daemon threads
may still use it) follows the same rule.
"""
from __future__ import annotations

import ctypes
import json
import math
import os
import threading
import time
import weakref
from collections import deque
from ctypes import byref, c_int, c_size_t, c_uint64, c_void_p
from typing import (Any, Callable, Dict, Iterable, List, Optional, Sequence,
                    Tuple, Union)

from . import _native as n
from ._errors import ClosedError, ConflictError, NotFoundError, from_code

Key = Union[bytes, str, bytearray, memoryview]
Data = Union[bytes, str, bytearray, memoryview]

_lib = n.lib
_string_at = ctypes.string_at
_kv_get = _lib.kv_get
_kv_put = _lib.kv_put
_kv_delete = _lib.kv_delete
_kv_cas = _lib.kv_cas
_kv_value_data = _lib.kv_value_data
_kv_value_version = _lib.kv_value_version
_kv_value_expiry_ms = _lib.kv_value_expiry_ms
_kv_value_sibling_count = _lib.kv_value_sibling_count
_kv_value_sibling = _lib.kv_value_sibling
_kv_value_context = _lib.kv_value_context
_kv_value_free = _lib.kv_value_free
# kv_value_data again, returning the bytes up to the first NUL (see _read_value).
_kv_value_cstr = _lib["kv_value_data"]
_kv_value_cstr.restype = ctypes.c_char_p
_kv_value_cstr.argtypes = [c_void_p, ctypes.POINTER(c_size_t)]

EMBEDDED, NODE, CLIENT = "embedded", "node", "client"


# ------------------------------------------------------------------ values
class Value(bytes):
    """A value read from the store. It *is* the bytes of the value (of its
    first sibling), so ``db.get(k) == b"..."`` works, and also carries:

    - ``version``: the key's version (1 for the first write, +1 per write);
    - ``expiry``: Unix time in seconds when it expires, or None;
      ``expiry_ms`` is the same in integer milliseconds, 0 for never;
    - ``siblings``: every concurrent sibling (a tuple of bytes; one, unless a
      cluster client uses the "siblings" policy);
    - ``context``: the opaque causal context to pass back as
      ``context=`` in a write, so it supersedes exactly what was read
      (empty on embedded handles).

    Equality and hashing are those of the bytes; the metadata is ignored.
    """

    version: int
    expiry_ms: int
    # Class defaults, so a read sets only what differs from them.
    context: bytes = b""
    _siblings: Optional[Tuple[bytes, ...]] = None

    @property
    def expiry(self) -> Optional[float]:
        """Expiry as Unix time in seconds, None when the value never expires."""
        return self.expiry_ms / 1000.0 if self.expiry_ms else None

    @property
    def siblings(self) -> Tuple[bytes, ...]:
        """Every concurrent sibling's bytes, the first one being the value."""
        s = self._siblings
        return s if s is not None else (bytes(self),)

    @property
    def data(self) -> bytes:
        """The value as plain bytes."""
        return bytes(self)

    def __repr__(self) -> str:
        extra = f", siblings={len(self.siblings)}" if self._siblings else ""
        exp = f", expiry_ms={self.expiry_ms}" if self.expiry_ms else ""
        return f"Value({bytes.__repr__(self)}, version={self.version}{exp}{extra})"


def _read_value(p: Any, full: bool) -> Value:
    """Copies a kv_value into a Value (p stays owned by the caller). Embedded
    values always have one sibling and no context, so `full` skips those two
    calls there."""
    size = c_size_t()
    # The header guarantees a NUL after the value's bytes, so reading it as
    # a C string copies it in the same foreign call; only a value holding a
    # NUL of its own needs a second call (measured: -0.2 us per get).
    data = _kv_value_cstr(p, byref(size))
    if len(data) != size.value:
        data = _string_at(_kv_value_data(p, None), size.value)
    v = Value(data)
    v.version = _kv_value_version(p)
    v.expiry_ms = _kv_value_expiry_ms(p)
    if full:
        count = _kv_value_sibling_count(p)
        if count > 1:
            sibs = []
            for i in range(count):
                ptr = _kv_value_sibling(p, i, byref(size))
                sibs.append(_string_at(ptr, size.value))
            v._siblings = tuple(sibs)
        ptr = _kv_value_context(p, byref(size))
        if size.value:
            v.context = _string_at(ptr, size.value)
    return v


# --------------------------------------------------------- argument helpers
def as_bytes(x: Any, what: str) -> bytes:
    """bytes as they are, str as UTF-8, bytearray/memoryview copied."""
    t = type(x)
    if t is bytes:
        return x
    if t is str:
        return x.encode("utf-8")
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    if isinstance(x, str):
        return str(x).encode("utf-8")
    raise TypeError(f"{what} must be bytes or str, not {t.__name__}")


def as_text(x: Any, what: str) -> bytes:
    """A name passed to the library as a C string: str, without NUL."""
    if not isinstance(x, str):
        raise TypeError(f"{what} must be str, not {type(x).__name__}")
    if "\0" in x:
        raise ValueError(f"{what} must not hold a NUL character")
    return x.encode("utf-8")


def _uint(x: Any, what: str, bits: int = 32) -> int:
    if type(x) is not int and not (isinstance(x, int) and not isinstance(x, bool)):
        raise TypeError(f"{what} must be an int, not {type(x).__name__}")
    if x < 0 or x >= 1 << bits:
        raise ValueError(f"{what} must be between 0 and {(1 << bits) - 1}, not {x}")
    return int(x)


def _ms(x: Any, what: str) -> int:
    """Seconds (int or float) to whole milliseconds; None = 0 = default."""
    if x is None:
        return 0
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(x).__name__}")
    if not x > 0 or math.isinf(x):
        raise ValueError(f"{what} must be a positive number of seconds, not {x}")
    return max(1, min(int(round(x * 1000)), 2**32 - 1))


def _staleness_ms(x: Any, what: str, limit_ms: int) -> int:
    """Seconds (int or float) to whole milliseconds for a bound that 0
    turns off: None or 0 = 0 (off); otherwise above 0 and up to limit_ms
    (at least 1 ms once above 0)."""
    if x is None:
        return 0
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {type(x).__name__}")
    if not x >= 0 or math.isinf(x):
        raise ValueError(f"{what} must be a number of seconds >= 0 (0 or None: off), not {x}")
    if x > limit_ms / 1000:
        raise ValueError(f"{what} must be at most {limit_ms / 1000:g} seconds, not {x}")
    if x == 0:
        return 0
    return max(1, min(int(round(x * 1000)), limit_ms))


def _uint_max(x: Any, what: str, limit: int) -> int:
    """An int from 0 to limit (0 = the library's default)."""
    v = _uint(x, what)
    if v > limit:
        raise ValueError(f"{what} must be between 0 and {limit}, not {x}")
    return v


def _ttl(x: Any) -> int:
    if x is None:
        return 0
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"ttl must be a number of seconds, not {type(x).__name__}")
    if not x > 0 or math.isinf(x):
        raise ValueError(f"ttl must be > 0 seconds (None means no expiry), not {x}")
    return min(math.ceil(x), 2**64 - 1)


def _choice(x: Any, table: Dict[str, int], what: str) -> int:
    if isinstance(x, str):
        v = table.get(x.lower())
        if v is not None:
            return v
    raise ValueError(f"{what} must be one of {', '.join(map(repr, table))}, not {x!r}")


def _consistency(level: Any, count: Any, count_name: str) -> int:
    if count is not None:
        if level is not None and str(level).lower() != "explicit":
            raise ValueError(f"give either consistency or {count_name}, not both")
        return n.KV_CONSISTENCY_EXPLICIT
    if level is None:
        return 0
    if level == "explicit" or level == n.KV_CONSISTENCY_EXPLICIT:
        raise ValueError(f"consistency 'explicit' needs {count_name}=N")
    return _choice(level, n.CONSISTENCY, "consistency")


_wcache: Dict[Tuple[Any, ...], n.WriteOptions] = {}
_rcache: Dict[Tuple[Any, ...], n.ReadOptions] = {}


def write_options(ttl: Any = None, consistency: Any = None, w: Any = None,
                  context: Any = None, home_only: bool = False) -> Optional[n.WriteOptions]:
    """A kv_write_options for these arguments, or None for all defaults.
    Options without a context are immutable once built and shared (the
    library only reads them during a call), so they are built once."""
    if context is None:
        if ttl is None and consistency is None and w is None and not home_only:
            return None
        ck = (ttl, consistency, w, bool(home_only))
        try:
            o = _wcache.get(ck)
        except TypeError:  # an unhashable argument: let the checks say why
            o, ck = None, None
        if o is not None:
            return o
    o = n.WriteOptions()
    _lib.kv_write_options_init(byref(o), n.KV_WRITE_OPTIONS_VERSION)
    o.ttl_s = _ttl(ttl)
    o.consistency = _consistency(consistency, w, "w")
    if w is not None:
        o.w = _uint(w, "w")
    if context is not None:
        c = as_bytes(context, "context")
        o.context = c
        o.context_len = len(c)
    o.home_only = 1 if home_only else 0
    if context is None and ck is not None and len(_wcache) < 1024:
        _wcache[ck] = o
    return o


def read_options(consistency: Any = None, r: Any = None) -> Optional[n.ReadOptions]:
    """A kv_read_options for these arguments (shared, see write_options)."""
    if consistency is None and r is None:
        return None
    ck = (consistency, r)
    try:
        o = _rcache.get(ck)
    except TypeError:
        o, ck = None, None
    if o is not None:
        return o
    o = n.ReadOptions()
    _lib.kv_read_options_init(byref(o), n.KV_READ_OPTIONS_VERSION)
    o.consistency = _consistency(consistency, r, "r")
    if r is not None:
        o.r = _uint(r, "r")
    if ck is not None and len(_rcache) < 1024:
        _rcache[ck] = o
    return o


# ----------------------------------------------------------------- logging
_LEVEL_NAMES = ("error", "warn", "info", "debug")
LOG_LEVELS = {name: i for i, name in enumerate(_LEVEL_NAMES)}
LogSink = Callable[[str, str], Any]


def make_log_fn(log: Any) -> Any:
    """A C log callback around a logging.Logger or a callable(level, message).
    The library calls it from its own threads; an exception in it is dropped
    (it cannot travel back into those threads)."""
    import logging
    if isinstance(log, logging.Logger):
        logger = log
        to_py = (logging.ERROR, logging.WARNING, logging.INFO, logging.DEBUG)

        def sink(level: int, message: str) -> None:
            logger.log(to_py[level] if 0 <= level < 4 else logging.INFO, "%s", message)
    elif callable(log):
        def sink(level: int, message: str) -> None:
            log(_LEVEL_NAMES[level] if 0 <= level < 4 else str(level), message)
    else:
        raise TypeError("log must be a logging.Logger or a callable(level, message)")

    def callback(level: int, message: bytes, ctx: Any) -> None:
        try:
            sink(level, message.decode("utf-8", "replace"))
        except BaseException:  # noqa: B036 - nowhere to raise it
            pass
    return n.LOG_FN(callback)


def fill_open_options(o: n.OpenOptions, keep: List[Any], *, create_if_missing: bool = True,
                      max_key_size: Optional[int] = None,
                      max_value_size: Optional[int] = None, sync: str = "always",
                      sync_interval: Optional[float] = None,
                      block_cache_bytes: Optional[int] = None,
                      row_cache_bytes: Optional[int] = None,
                      tombstone_grace: Optional[float] = None,
                      log: Any = None, log_level: str = "info") -> None:
    """kv_open_options from keyword arguments (shared by open and start_node)."""
    _lib.kv_open_options_init(byref(o), n.KV_OPEN_OPTIONS_VERSION)
    o.create_if_missing = 1 if create_if_missing else 0
    if max_key_size is not None:
        o.max_key_size = _uint(max_key_size, "max_key_size")
    if max_value_size is not None:
        o.max_value_size = _uint(max_value_size, "max_value_size")
    o.sync = _choice(sync, n.SYNC, "sync")
    o.sync_interval_ms = _ms(sync_interval, "sync_interval")
    if block_cache_bytes is not None:
        o.block_cache_bytes = _uint(block_cache_bytes, "block_cache_bytes", 64)
    if row_cache_bytes is not None:
        o.row_cache_bytes = (n.KV_ROW_CACHE_NONE if row_cache_bytes == 0
                             else _uint(row_cache_bytes, "row_cache_bytes", 64))
    if tombstone_grace is not None:
        if tombstone_grace == 0:
            o.tombstone_grace_s = n.KV_GRACE_NONE
        else:
            o.tombstone_grace_s = _uint(tombstone_grace, "tombstone_grace", 64)
    o.log_level = _choice(log_level, LOG_LEVELS, "log_level")
    if log is not None:
        fn = make_log_fn(log)
        keep.append(fn)
        o.log_fn = fn


def cstrings(items: Sequence[Any], what: str) -> Any:
    """A char *[] for a list of str, kept alive by the array itself."""
    enc = [as_bytes(x, what) for x in items]
    for e in enc:
        if b"\0" in e:
            raise ValueError(f"{what} must not contain NUL bytes")
    return (ctypes.c_char_p * len(enc))(*enc)


# ------------------------------------------------------------------ handle
_merge_errors = threading.local()


class _Guard:
    """What closing shares with the calls (see the module's docstring)."""
    __slots__ = ("closed", "released", "inflight", "lock")

    def __init__(self) -> None:
        self.closed = False      # no new call may start
        self.released = False    # kv_close has run
        self.inflight: deque = deque()
        self.lock = threading.Lock()  # serializes closers


def _release(g: _Guard, ptr: c_void_p, limit: Optional[float]) -> None:
    """Closes the C handle once no call is inside it. limit: seconds to wait
    for calls in flight (None: as long as they take); past it the handle is
    left open (leaked) rather than freed under a running call."""
    with g.lock:
        g.closed = True
        if g.released:
            return
        deadline = None if limit is None else time.monotonic() + limit
        delay = 0.0001
        while g.inflight:
            if deadline is not None and time.monotonic() > deadline:
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.01)
        g.released = True
        _lib.kv_close(ptr)


class Store:
    """A libkv handle: an embedded store (libkv.open), a node hosted in this
    process (libkv.start_node) or a client of remote nodes (libkv.connect).

    The same calls work on all three. A Store is safe to share between
    threads (the GIL is released while the library works); close() waits
    for calls already inside the library, and any call after it raises
    ClosedError. Use it as a context manager to close it.

    It also answers ``db[key]`` (the Value; KeyError when absent),
    ``db[key] = value``, ``del db[key]`` (KeyError when absent) and
    ``key in db``. It cannot be iterated: libkv has no scans.
    """

    __slots__ = ("_ptr", "_kind", "_g", "_inflight", "_finalizer", "_keep", "_merge",
                 "_full", "__weakref__")

    def __init__(self, ptr: c_void_p, kind: str, keep: List[Any],
                 merge: Optional[Callable[..., Any]] = None) -> None:
        # Built by libkv.open / start_node / connect only.
        self._ptr = ptr
        self._kind = kind
        self._g = _Guard()
        self._inflight = self._g.inflight  # one attribute load less per call
        self._keep = keep  # callbacks and buffers the C side points to
        self._merge = merge
        self._full = kind != EMBEDDED
        # A handle dropped without close() is closed when collected or at
        # exit (before the interpreter goes, so no callback outlives it).
        self._finalizer = weakref.finalize(self, _release, self._g, ptr, 30.0)

    # -------------------------------------------------------------- plumbing
    @property
    def kind(self) -> str:
        """The kind of handle: "embedded", "node" or "client"."""
        return self._kind

    @property
    def closed(self) -> bool:
        """True once close() has begun (every call then raises ClosedError)."""
        return self._g.closed

    def close(self) -> None:
        """Close the handle: waits for calls running in other threads, then
        releases it (an embedded store syncs its log first; a node stops
        serving). Calls made after this raise ClosedError. Idempotent.
        Not from a log or merge callback of this handle: it would wait for
        the call that runs the callback."""
        self._finalizer.detach()
        _release(self._g, self._ptr, None)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._g.closed else "open"
        return f"<libkv.Store {self._kind} {state}>"

    def _closed_error(self, what: str) -> ClosedError:
        return ClosedError(f"{what}: the handle is closed", n.KV_ECLOSED)

    def _fail(self, rc: int, what: str) -> BaseException:
        if self._merge is not None:
            err = getattr(_merge_errors, "error", None)
            if err is not None:  # the merge function's own exception
                _merge_errors.error = None
                return err
        return from_code(rc, what)

    def _call(self, what: str, fn: Callable[..., int], *args: Any) -> int:
        """fn(*args) inside the close guard, with the handle's pointer where
        args hold _PTR (for the calls off the hot path)."""
        inflight = self._inflight
        inflight.append(None)
        try:
            if self._g.closed:
                raise self._closed_error(what)
            return fn(*[self._ptr if a is _PTR else a for a in args])
        finally:
            inflight.pop()

    # ------------------------------------------------------------ data calls
    def get(self, key: Key, *, consistency: Optional[str] = None,
            r: Optional[int] = None) -> Optional[Value]:
        """The value of key, or None when it is absent, deleted or expired.

        consistency: "one", "quorum" (the default in a cluster), "all" or
        "serial" (linearizable per key); or r=N replicas. Embedded handles
        have one replica.
        Raises TimedOutError, UnavailableError (cluster), CorruptError,
        TooBigError (key over the limit), InvalidArgumentError (empty key).
        """
        k = key if type(key) is bytes else as_bytes(key, "key")
        opts = None if consistency is None and r is None else read_options(consistency, r)
        out = c_void_p()
        inflight = self._inflight
        inflight.append(None)
        try:
            if self._g.closed:
                raise self._closed_error("get")
            rc = _kv_get(byref(out), self._ptr, k, len(k), opts)
        finally:
            inflight.pop()
        if rc:
            if rc == n.KV_ENOTFOUND:
                return None
            raise self._fail(rc, "get")
        try:
            return _read_value(out, self._full)
        finally:
            _kv_value_free(out)

    def get_traced(self, key: Key, *, consistency: Optional[str] = None,
                   r: Optional[int] = None) -> Tuple[Optional[Value], Dict[str, Any]]:
        """get, and which replicas answered what (a dict, from the library's
        JSON: {"required": R, "replicas": [...]}; the list is empty outside a
        cluster). Returns (value or None, trace)."""
        k = as_bytes(key, "key")
        opts = read_options(consistency, r)
        out, trace = c_void_p(), c_void_p()
        rc = self._call("get_traced", _lib.kv_get_traced, byref(out), byref(trace), _PTR,
                        k, len(k), opts)
        try:
            doc = json.loads(_string_at(trace.value).decode()) if trace.value else {}
        finally:
            _lib.kv_string_free(trace)
        if rc:
            if rc == n.KV_ENOTFOUND:
                return None, doc
            raise self._fail(rc, "get_traced")
        try:
            return _read_value(out, self._full), doc
        finally:
            _kv_value_free(out)

    def put(self, key: Key, value: Data, *, ttl: Optional[float] = None,
            consistency: Optional[str] = None, w: Optional[int] = None,
            context: Optional[bytes] = None, home_only: bool = False) -> int:
        """Store value under key, replacing any previous value; returns the
        new version.

        ttl: seconds until it expires (None: never). consistency / w: as get's,
        for writes. context: a Value.context from an earlier get, so that this
        write supersedes the siblings that get saw. home_only: count only the
        key's home replicas (no sloppy quorum).
        Raises TooBigError, InvalidArgumentError, UnavailableError (not
        applied), UnknownOutcomeError (may have applied), TimedOutError.
        """
        k = key if type(key) is bytes else as_bytes(key, "key")
        v = value if type(value) is bytes else as_bytes(value, "value")
        opts = (None if ttl is None and consistency is None and w is None and context is None
                and not home_only else write_options(ttl, consistency, w, context, home_only))
        ver = c_uint64()
        inflight = self._inflight
        inflight.append(None)
        try:
            if self._g.closed:
                raise self._closed_error("put")
            rc = _kv_put(byref(ver), self._ptr, k, len(k), v, len(v), opts)
        finally:
            inflight.pop()
        if rc:
            raise self._fail(rc, "put")
        return ver.value

    def delete(self, key: Key, *, consistency: Optional[str] = None,
               w: Optional[int] = None, context: Optional[bytes] = None,
               home_only: bool = False) -> Optional[int]:
        """Delete key. Returns the version of the tombstone written, or None
        when there was no live value (nothing is written then; a cluster
        always writes the tombstone). Options as put's."""
        k = key if type(key) is bytes else as_bytes(key, "key")
        opts = write_options(None, consistency, w, context, home_only)
        ver = c_uint64()
        rc = self._call("delete", _kv_delete, byref(ver), _PTR, k, len(k), opts)
        if rc:
            if rc == n.KV_ENOTFOUND:
                return None
            raise self._fail(rc, "delete")
        return ver.value

    def cas(self, key: Key, expected_version: int, value: Data, *,
            ttl: Optional[float] = None, consistency: Optional[str] = None,
            w: Optional[int] = None, context: Optional[bytes] = None,
            home_only: bool = False) -> int:
        """Compare-and-swap: store value only if key's current version is
        expected_version (0: only if the key is absent). Returns the new
        version; raises ConflictError, whose .version is the current one
        (0 if absent), when another version is there. In a cluster CAS runs at
        "serial" unless consistency says otherwise. Options as put's."""
        k = key if type(key) is bytes else as_bytes(key, "key")
        v = value if type(value) is bytes else as_bytes(value, "value")
        ev = _uint(expected_version, "expected_version", 64)
        opts = write_options(ttl, consistency, w, context, home_only)
        ver = c_uint64()
        inflight = self._inflight
        inflight.append(None)
        try:
            if self._g.closed:
                raise self._closed_error("cas")
            rc = _kv_cas(byref(ver), self._ptr, k, len(k), ev, v, len(v), opts)
        finally:
            inflight.pop()
        if rc:
            e = self._fail(rc, "cas")
            if isinstance(e, ConflictError):
                e.version = ver.value
            raise e
        return ver.value

    def batch(self, ops: Iterable[Sequence[Any]], *, consistency: Optional[str] = None,
              w: Optional[int] = None, r: Optional[int] = None) -> List[Any]:
        """Run a list of operations and return one result per operation, in
        order. Operations are tuples:

            ("put", key, value)  or  ("put", key, value, ttl)  -> new version
            ("get", key)                                       -> Value or None
            ("delete", key)                                    -> version or None

        On an embedded handle the batch is atomic and each operation sees the
        ones before it. In a cluster each operation stands alone: one that
        failed has its exception (an Error instance) as its result instead
        of raising. When the batch as a whole is refused (an invalid or
        oversized operation), nothing is applied and the exception is raised,
        with .index naming the operation when the library says which.
        consistency applies to the writes and the reads, w to the writes,
        r to the reads.
        """
        wopts = write_options(None, consistency, w)
        ropts = read_options(consistency, r)
        b = c_void_p()
        rc = _lib.kv_batch_new(byref(b))
        if rc:
            raise from_code(rc, "batch")
        try:
            count = 0
            for op in ops:
                self._batch_add(b, op, count)
                count += 1
            rc = self._call("batch", _lib.kv_batch_execute, _PTR, b, wopts, ropts)
            if rc:
                e = self._fail(rc, "batch")
                e.index = None  # type: ignore[attr-defined]
                for i in range(count):
                    if _lib.kv_batch_result(None, None, b, i) in (n.KV_ETOOBIG, n.KV_EINVAL):
                        e.index = i  # type: ignore[attr-defined]
                        e.args = (f"{e.args[0]} [operation {i}]",)
                        break
                raise e
            return [self._batch_result(b, i) for i in range(count)]
        finally:
            _lib.kv_batch_free(b)

    @staticmethod
    def _batch_add(b: c_void_p, op: Sequence[Any], i: int) -> None:
        if isinstance(op, (str, bytes)) or not isinstance(op, (tuple, list)) or not op:
            raise TypeError(f"batch operation {i} must be a tuple such as ('get', key), "
                            f"not {op!r:.60}")
        kind = op[0]
        if kind == "put" and len(op) in (3, 4):
            k, v = as_bytes(op[1], "key"), as_bytes(op[2], "value")
            ttl = _ttl(op[3]) if len(op) == 4 else 0
            rc = _lib.kv_batch_put(b, k, len(k), v, len(v), ttl)
        elif kind == "get" and len(op) == 2:
            k = as_bytes(op[1], "key")
            rc = _lib.kv_batch_get(b, k, len(k))
        elif kind == "delete" and len(op) == 2:
            k = as_bytes(op[1], "key")
            rc = _lib.kv_batch_delete(b, k, len(k))
        else:
            raise ValueError(f"batch operation {i}: expected ('put', key, value[, ttl]), "
                             f"('get', key) or ('delete', key), not {op!r:.60}")
        if rc:
            e = from_code(rc, f"batch operation {i} ({kind})")
            e.index = i  # type: ignore[attr-defined]
            raise e

    def _batch_result(self, b: c_void_p, i: int) -> Any:
        val, ver = c_void_p(), c_uint64()
        rc = _lib.kv_batch_result(byref(val), byref(ver), b, i)
        if rc == n.KV_OK:
            return _read_value(val, self._full) if val.value else ver.value
        if rc == n.KV_ENOTFOUND:
            return None
        return from_code(rc, f"batch operation {i}")

    # ---------------------------------------------------------- other calls
    def ping(self) -> None:
        """Check the handle can serve: a round trip to a node on a client;
        nothing to do on embedded and node handles. Raises UnavailableError
        or TimedOutError when no node answers."""
        rc = self._call("ping", _lib.kv_ping, _PTR)
        if rc:
            raise self._fail(rc, "ping")

    def describe(self) -> Dict[str, Any]:
        """The cluster as a node sees it (kv_cluster_describe), as a dict.
        Raises NotSupportedError on an embedded handle."""
        out = c_void_p()
        rc = self._call("describe", _lib.kv_cluster_describe, byref(out), _PTR)
        if rc:
            raise self._fail(rc, "describe")
        try:
            return json.loads(_string_at(out.value).decode())
        finally:
            _lib.kv_string_free(out)

    # ------------------------------------------------------ administration
    def _report(self, name: str, fn: Any, *args: Any) -> Dict[str, Any]:
        """Runs a call that gives a JSON report (kv_backup, kv_repair,
        kv_topology_change) and returns it as a dict; on failure raises with
        the library's message (the report, when one came, is on the
        exception as .report)."""
        out = c_void_p()
        rc = self._call(name, fn, byref(out), _PTR, *args)
        report: Optional[Dict[str, Any]] = None
        if out.value:
            try:
                report = json.loads(_string_at(out.value).decode())
            finally:
                _lib.kv_string_free(out)
        if rc:
            err = self._fail(rc, name)
            err.report = report  # type: ignore[attr-defined]
            raise err
        return report if report is not None else {}

    def backup(self, directory: Union[str, "os.PathLike[str]"]) -> Dict[str, Any]:
        """A consistent snapshot (kv_backup) into directory, an absolute path
        that must not exist yet: of the store (embedded), of the node, or of
        every node of the cluster (client: each into directory/<node-id>, on
        its own machine). Returns the JSON report as a dict. Raises
        InvalidArgumentError (a relative path, or it exists) and the errors
        of a round trip."""
        path = os.fsencode(directory)
        if b"\0" in path:
            raise ValueError("directory must not hold a NUL character")
        return self._report("backup", _lib.kv_backup, path)

    def repair(self, node_id: Optional[str] = None) -> Dict[str, Any]:
        """Start an anti-entropy repair round (kv_repair) on node_id, or on
        every member; returns the report (the round each node started).
        Raises NotSupportedError on an embedded handle."""
        nid = None if node_id is None else as_text(node_id, "node_id")
        return self._report("repair", _lib.kv_repair, nid)

    def topology_change(self, change: str, node_id: Optional[str] = None) -> Dict[str, Any]:
        """Change the cluster's shape (kv_topology_change): change is
        "leave" (decommission node_id, or the node reached), "remove" (a
        dead node_id), "abort" (the change in progress) or "cleanup" (the
        node reached drops what it no longer holds). Returns the record
        holding the change (for cleanup: what was dropped). Raises BusyError
        while another change runs (the message names it),
        InvalidArgumentError for a change that cannot be made,
        UnavailableError when no majority (or etcd) answers."""
        nid = None if node_id is None else as_text(node_id, "node_id")
        return self._report("topology_change", _lib.kv_topology_change,
                            as_text(change, "change"), nid)

    def compact(self) -> None:
        """Compact the store now (drops expired values and old tombstones).
        Raises NotSupportedError on a client."""
        rc = self._call("compact", _lib.kv_compact, _PTR)
        if rc:
            raise self._fail(rc, "compact")

    @property
    def ports(self) -> Tuple[int, int]:
        """A node's (binary protocol port, HTTP port or 0). Raises
        InvalidArgumentError on other handles."""
        b, h = c_int(), c_int()
        rc = self._call("ports", _lib.kv_node_ports, byref(b), byref(h), _PTR)
        if rc:
            raise self._fail(rc, "ports")
        return b.value, h.value

    # --------------------------------------------------- mapping conveniences
    def __getitem__(self, key: Key) -> Value:
        v = self.get(key)
        if v is None:
            raise NotFoundError(repr(key))
        return v

    def __setitem__(self, key: Key, value: Data) -> None:
        self.put(key, value)

    def __delitem__(self, key: Key) -> None:
        if self.delete(key) is None:
            raise NotFoundError(repr(key))

    def __contains__(self, key: Key) -> bool:
        return self.get(key) is not None

    __iter__ = None  # type: ignore[assignment]  # no scans: not iterable


_PTR = object()  # stands for the handle's pointer in Store._call's arguments


def merge_callback(fn: Callable[[bytes, List[bytes]], Data]) -> Any:
    """The C merge callback around fn(key, siblings) -> merged value. It runs
    on the thread of the get that found the siblings; an exception in fn is
    kept and raised by that get."""
    def callback(ctx: Any, result: Any, key: Any, key_len: int, value: Any) -> int:
        try:
            size = c_size_t()
            count = _kv_value_sibling_count(value)
            sibs = []
            for i in range(count):
                ptr = _kv_value_sibling(value, i, byref(size))
                sibs.append(_string_at(ptr, size.value))
            merged = as_bytes(fn(_string_at(key, key_len), sibs), "merged value")
            return _lib.kv_merge_result_set(result, merged, len(merged))
        except BaseException as e:  # noqa: B036 - raised again by the get
            _merge_errors.error = e
            return n.KV_EINVAL
    return n.MERGE_FN(callback)
