"""connect(loop=...): "thread" (the default) gives the C client a thread of
its own; "caller" opens it with kv_client_options.manual_loop = 1, so that
each blocking call runs the client's I/O on the calling thread. Shown from
the outside, without timing: kv_fd answers only for a manual-loop handle,
and only a "thread" client adds a thread to the process. The rest of the
suite runs in either mode with LIBKV_TEST_LOOP=caller|thread."""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import threading
import unittest
from typing import List

import support
from support import libkv
from libkv import _native

NOWHERE = "127.0.0.1:1"  # nothing connects before the first call


def kv_fd_status(client: "libkv.Store") -> int:
    """kv_fd's return: KV_OK for a client opened with manual_loop, KV_EINVAL
    (a client with a thread of its own) otherwise."""
    fd = ctypes.c_int(-1)
    return _native.lib.kv_fd(ctypes.byref(fd), client._ptr)


class LoopOption(unittest.TestCase):
    def test_caller_opens_a_manual_loop_client(self) -> None:
        with libkv.connect(NOWHERE, loop="caller") as c:
            self.assertEqual(kv_fd_status(c), 0)

    def test_thread_and_the_default_do_not(self) -> None:
        for kw in ({"loop": "thread"}, {}):
            with self.subTest(**kw), libkv.connect(NOWHERE, **kw) as c:
                self.assertEqual(kv_fd_status(c), _native.KV_EINVAL)

    def test_bad_values(self) -> None:
        for bad in ("", "manual", "threads", None, 1, True):
            with self.subTest(bad=bad), self.assertRaisesRegex(ValueError, "loop must be one of"):
                libkv.connect(NOWHERE, loop=bad)  # type: ignore[arg-type]

    def test_threads_in_the_process(self) -> None:
        # In a fresh process (no other handle's threads coming and going):
        # the tasks in /proc/self/task before and after connect.
        code = ("import os, sys, libkv\n"
                "n = lambda: len(os.listdir('/proc/self/task'))\n"
                "before = n()\n"
                "c = libkv.connect('127.0.0.1:1', loop=sys.argv[1])\n"
                "after = n()\n"
                "c.close()\n"
                "print(after - before, n() - before)\n")
        env = dict(os.environ, PYTHONPATH=support.PACKAGE_ROOT,
                   LIBKV_LIBRARY=os.path.abspath(libkv.library_path()))
        added = {}
        for mode in libkv.LOOPS:
            r = subprocess.run([sys.executable, "-c", code, mode], env=env,
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            added[mode] = [int(x) for x in r.stdout.split()]
        self.assertEqual(added["caller"], [0, 0])
        self.assertGreaterEqual(added["thread"][0], 1)  # the loop's (and the router's)
        self.assertEqual(added["thread"][1], 0)         # joined by close


class CallerLoopAgainstANode(support.TempDirTest):
    """Many threads on one "caller" client: one drives the loop at a time
    and hands it over when its answer is in (lib/net/client.c); every call
    ends with its own answer."""

    def test_many_threads_share_one_client(self) -> None:
        node = self.node()
        client = self.client(node.address, loop="caller")
        errors: List[BaseException] = []
        start = threading.Barrier(8)

        def worker(t: int) -> None:
            try:
                start.wait()
                for i in range(300):
                    key = f"t{t}-{i % 20}".encode()
                    version = client.put(key, b"%d:%d" % (t, i))
                    got = client.get(key)
                    assert got == b"%d:%d" % (t, i) and got.version == version, (key, got)
            except BaseException as e:  # noqa: B036
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(120)
        self.assertEqual(errors, [])
        self.assertFalse(any(th.is_alive() for th in threads))
        got = client.batch([("get", f"t{t}-{i}".encode()) for t in range(8) for i in range(20)])
        self.assertTrue(all(v is not None for v in got), got)


if __name__ == "__main__":
    unittest.main()
