"""Shared by the tests: import libkv from this checkout (unless
LIBKV_TEST_INSTALLED=1, to test an installed copy), temp dirs, free
loopback ports and bounded waits. Nothing here asserts on time."""
from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import time
import unittest
from typing import Any, Callable

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)                      # bindings/python
REPO = os.path.dirname(os.path.dirname(PACKAGE_ROOT))
if not os.environ.get("LIBKV_TEST_INSTALLED"):
    sys.path.insert(0, PACKAGE_ROOT)

import libkv  # noqa: E402

LOOPBACK = "127.0.0.1"

#: LIBKV_TEST_LOOP=caller|thread runs every client the tests open with that
#: connect(loop=...); unset: the default. CI runs the suite both ways.
LOOP = os.environ.get("LIBKV_TEST_LOOP") or None


def loop_kw() -> dict:
    """connect()'s loop= for the tests' clients: {} unless LIBKV_TEST_LOOP."""
    return {"loop": LOOP} if LOOP else {}


def free_port() -> int:
    """A port nothing listens on right now (another process may take it
    before we do: callers retry on BusyError)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Calls fn until it returns something true (returned) or timeout seconds
    pass (AssertionError naming what was awaited and the last exception)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            got = fn()
            if got:
                return got
        except libkv.Error as e:
            last = e
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout} s waiting for {what}; last: {last!r}")
        time.sleep(0.05)


class TempDirTest(unittest.TestCase):
    """A test case with self.dir, a fresh temporary directory."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="libkv-py-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, name: str) -> str:
        return os.path.join(self.dir, name)

    def open(self, name: str = "db", **kw: Any) -> "libkv.Store":
        kw.setdefault("sync", "none")
        db = libkv.open(self.path(name), **kw)
        self.addCleanup(db.close)
        return db

    def node(self, node_id: str = "n1", **kw: Any) -> "libkv.Node":
        kw.setdefault("sync", "none")
        kw.setdefault("listen", f"{LOOPBACK}:0")
        node = libkv.start_node(self.path(node_id), node_id, **kw)
        self.addCleanup(node.close)
        return node

    def client(self, endpoints: Any, **kw: Any) -> "libkv.Store":
        kw.setdefault("request_timeout", 5.0)
        for k, v in loop_kw().items():
            kw.setdefault(k, v)
        c = libkv.connect(endpoints, **kw)
        self.addCleanup(c.close)
        return c
