"""Threads: counters by CAS raced from many threads (the final value equals
the number of successful CAS), and close() while other threads are inside
the library (they finish or raise ClosedError; nothing crashes)."""
from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import unittest
from typing import Callable, List

import support
from support import libkv

THREADS = 8
ATTEMPTS = 150


def cas_counter(db: "libkv.Store", key: bytes, threads: int = THREADS,
                attempts: int = ATTEMPTS, unknown_ok: bool = False) -> int:
    """`threads` threads each try `attempts` read-then-CAS increments; returns
    the number of CAS that succeeded, after checking the stored counter: it
    equals that number. With unknown_ok (a cluster, where a CAS whose
    proposal was superseded may answer UnknownOutcomeError), the counter is
    at least the successes and at most the successes plus the unknowns."""
    first = db.put(key, b"0")
    wins: List[int] = []
    unknown: List[int] = []
    errors: List[BaseException] = []
    start = threading.Barrier(threads)

    def worker() -> None:
        ok = 0
        try:
            start.wait()
            for _ in range(attempts):
                v = db.get(key)
                try:
                    db.cas(key, v.version, str(int(v) + 1).encode())
                    ok += 1
                except libkv.ConflictError as e:
                    assert e.version > v.version, (e.version, v.version)
                except (libkv.UnknownOutcomeError, libkv.TimedOutError):
                    # In a cluster a CAS may also give up after losing every
                    # Paxos round to the others ("not applied"): counted
                    # with the unknowns, which only widens the range.
                    if not unknown_ok:
                        raise
                    unknown.append(1)
        except BaseException as e:  # reported by the main thread
            errors.append(e)
        wins.append(ok)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join(300)
        assert not t.is_alive(), "a CAS worker is stuck"
    if errors:
        raise errors[0]
    final = db.get(key)
    won, maybe = sum(wins), len(unknown)
    assert won <= int(final) <= won + maybe, (int(final), won, maybe)
    assert final.version == first + int(final), (final.version, first, int(final))
    return won


class Threads(support.TempDirTest):
    def test_cas_counter_embedded(self) -> None:
        self.assertGreater(cas_counter(self.open(), b"counter"), 0)

    def test_cas_counter_node(self) -> None:
        node = self.node()
        self.assertGreater(cas_counter(node, b"counter"), 0)

    def test_cas_counter_client_of_a_node(self) -> None:
        node = self.node()
        self.assertGreater(cas_counter(self.client(node.address), b"counter"), 0)

    def close_under_load(self, db: "libkv.Store", extra: List[Callable[[], object]]) -> None:
        stop = threading.Event()
        outcomes: List[str] = []
        unexpected: List[BaseException] = []
        ready = threading.Barrier(5)

        def worker(i: int) -> None:
            ready.wait()
            n = 0
            while not stop.is_set():
                try:
                    key = f"t{i}-{n % 50}".encode()
                    db.put(key, b"x" * 100)
                    db.get(key)
                    db.batch([("get", key), ("put", key, b"y")])
                    for call in extra:
                        call()
                    n += 1
                except libkv.ClosedError:
                    outcomes.append("closed")
                    return
                except BaseException as e:  # noqa: B036
                    unexpected.append(e)
                    return
            outcomes.append("stopped")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        ready.wait()
        support.wait_for("some calls", lambda: db.get(b"t0-1") is not None
                         or db.get(b"t1-1") is not None)
        db.close()  # while the workers are busy
        for t in threads:
            t.join(120)
            self.assertFalse(t.is_alive())
        stop.set()
        self.assertEqual(unexpected, [])
        self.assertEqual(outcomes, ["closed"] * 4)

    def test_close_during_calls_embedded(self) -> None:
        db = libkv.open(self.path("db"), sync="none")
        self.close_under_load(db, [])

    def test_close_during_calls_node_and_client(self) -> None:
        node = self.node()
        client = libkv.connect(node.address, **support.loop_kw())
        self.close_under_load(client, [client.ping])
        self.close_under_load(node, [node.describe])

    def test_concurrent_close(self) -> None:
        db = libkv.open(self.path("db"), sync="none")
        threads = [threading.Thread(target=db.close) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertTrue(db.closed)

    def test_forgotten_handle_is_closed(self) -> None:
        db = libkv.open(self.path("db"), sync="none")
        db.put(b"k", b"v")
        del db
        gc.collect()
        with libkv.open(self.path("db")) as again:  # the store's lock was released
            self.assertEqual(again.get(b"k"), b"v")

    def test_exit_while_daemon_threads_call(self) -> None:
        # The interpreter exits while daemon threads are inside the library:
        # the handles close at exit without freeing them under a call.
        code = (
            "import os, sys, threading, libkv\n"
            "db = libkv.open(sys.argv[1], sync='none')\n"
            "node = libkv.start_node(sys.argv[2], 'n1', listen='127.0.0.1:0', sync='none')\n"
            "client = libkv.connect(node.address, loop=os.environ.get('LIBKV_TEST_LOOP') "
            "or 'thread')\n"
            "def work(h):\n"
            "    while True:\n"
            "        try:\n"
            "            h.put(b'k', b'v'); h.get(b'k')\n"
            "        except libkv.ClosedError:\n"
            "            return\n"
            "for h in (db, db, node, client, client):\n"
            "    threading.Thread(target=work, args=(h,), daemon=True).start()\n"
            "print('started')\n")
        env = dict(os.environ, PYTHONPATH=support.PACKAGE_ROOT,
                   LIBKV_LIBRARY=os.path.abspath(libkv.library_path()))
        for _ in range(3):
            r = subprocess.run([sys.executable, "-c", code, self.path("db"), self.path("node")],
                               env=env, capture_output=True, text=True, timeout=120)
            self.assertEqual((r.returncode, r.stdout), (0, "started\n"), r.stderr)


if __name__ == "__main__":
    unittest.main()
