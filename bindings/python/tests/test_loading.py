"""How the package finds libkv.so: LIBKV_LIBRARY, then the build tree of a
checkout, then the system's search path; a clear ImportError otherwise. And
the GIL is released while the library works."""
from __future__ import annotations

import ctypes.util
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import unittest
from typing import Dict, List, Optional

import support
from support import LOOPBACK, libkv

PROBE = "import libkv; print(libkv.library_path()); print(libkv.library_version())"


def run(code: str, cwd: str, env: Dict[str, Optional[str]]) -> "subprocess.CompletedProcess[str]":
    e = dict(os.environ)
    e.pop("LIBKV_LIBRARY", None)
    for k, v in env.items():
        if v is None:
            e.pop(k, None)
        else:
            e[k] = v
    e["PYTHONDONTWRITEBYTECODE"] = "1"
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=e,
                          capture_output=True, text=True, timeout=120)


class Loading(unittest.TestCase):
    def setUp(self) -> None:
        self.lib = os.path.abspath(libkv.library_path())
        # A copy of the package outside the repository: no build tree near it.
        self.tmp = tempfile.mkdtemp(prefix="libkv-load-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        shutil.copytree(os.path.dirname(libkv.__file__), os.path.join(self.tmp, "libkv"),
                        ignore=shutil.ignore_patterns("__pycache__"))

    def test_environment_variable(self) -> None:
        r = run(PROBE, self.tmp, {"LIBKV_LIBRARY": self.lib})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split()[0], self.lib)

    def test_environment_variable_wrong(self) -> None:
        r = run(PROBE, self.tmp, {"LIBKV_LIBRARY": "/nonexistent/libkv.so"})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("LIBKV_LIBRARY=/nonexistent/libkv.so", r.stderr)

    def test_build_tree(self) -> None:
        build_lib = os.path.join(support.REPO, "build", "lib", "libkv.so")
        if not os.path.exists(build_lib):
            self.skipTest("no build/ in this checkout")
        r = run(PROBE, support.PACKAGE_ROOT, {})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split()[0], build_lib)

    def test_system_search_path(self) -> None:
        r = run(PROBE, self.tmp, {"LD_LIBRARY_PATH": os.path.dirname(self.lib)})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.split()[0], "libkv.so.0")

    def test_not_found(self) -> None:
        if ctypes.util.find_library("kv"):
            self.skipTest("a libkv is installed on this system")
        r = run(PROBE, self.tmp, {"LD_LIBRARY_PATH": None})
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError: libkv: cannot find the shared library libkv.so", r.stderr)
        self.assertIn("LIBKV_LIBRARY", r.stderr)


class GilReleased(support.TempDirTest):
    def test_other_threads_run_during_a_call(self) -> None:
        # A server that never answers: the client's get waits in the library.
        srv = socket.socket()
        srv.bind((LOOPBACK, 0))
        srv.listen()
        srv.settimeout(60)
        self.addCleanup(srv.close)
        client = self.client(f"{LOOPBACK}:{srv.getsockname()[1]}", request_timeout=60)
        outcome: List[BaseException] = []

        def blocked_get() -> None:
            try:
                client.get(b"k")
            except libkv.Error as e:
                outcome.append(e)
        t = threading.Thread(target=blocked_get)
        t.start()
        conn, _ = srv.accept()  # the get's connection
        self.addCleanup(conn.close)
        support.wait_for("the get to be inside the library", lambda: len(client._g.inflight) == 1)
        # Meanwhile this thread works, in Python and in the library.
        db = self.open()
        for i in range(200):
            db.put(str(i), b"x")
        self.assertEqual(len(client._g.inflight), 1, "the get should still be waiting")
        srv.close()
        conn.shutdown(socket.SHUT_RDWR)  # the broken connection ends the get
        t.join(120)
        self.assertFalse(t.is_alive())
        self.assertEqual(len(outcome), 1)

if __name__ == "__main__":
    unittest.main()
