"""Every call of the embedded handle (libkv.open), its results and errors."""
from __future__ import annotations

import logging
import os
import pickle
import time
import unittest

import support
from support import libkv


class Embedded(support.TempDirTest):
    def test_put_get_versions(self) -> None:
        db = self.open()
        self.assertEqual(db.kind, "embedded")
        self.assertIsNone(db.get(b"k"))
        self.assertEqual(db.put(b"k", b"v1"), 1)
        self.assertEqual(db.put(b"k", b"v2"), 2)
        v = db.get(b"k")
        self.assertIsInstance(v, libkv.Value)
        self.assertIsInstance(v, bytes)
        self.assertEqual(v, b"v2")
        self.assertEqual(v.data, b"v2")
        self.assertIs(type(v.data), bytes)
        self.assertEqual(v.version, 2)
        self.assertIsNone(v.expiry)
        self.assertEqual(v.expiry_ms, 0)
        self.assertEqual(v.siblings, (b"v2",))
        self.assertEqual(v.context, b"")
        self.assertIn("version=2", repr(v))
        w = pickle.loads(pickle.dumps(v))
        self.assertEqual((w, w.version), (b"v2", 2))

    def test_str_keys_and_values_are_utf8(self) -> None:
        db = self.open()
        db.put("clé", "välue ✓")
        self.assertEqual(db.get("clé".encode()), "välue ✓".encode())
        self.assertEqual(db.get("clé").decode(), "välue ✓")
        db.put(bytearray(b"ba"), memoryview(b"mv"))
        self.assertEqual(db.get(b"ba"), b"mv")

    def test_binary_keys_and_values(self) -> None:
        db = self.open()
        keys = [b"\x00", b"\x00\x00", b"a\x00b", bytes(range(256)), b"\xff" * 1024]
        for i, k in enumerate(keys):
            db.put(k, bytes([i]) + b"\x00" + k)
        for i, k in enumerate(keys):
            self.assertEqual(db.get(k), bytes([i]) + b"\x00" + k)
        db.put(b"empty", b"")
        v = db.get(b"empty")
        self.assertIsNotNone(v)  # an empty value is not a missing key
        self.assertEqual((v, v.version), (b"", 1))
        big = os.urandom(1024 * 1024)  # the default limit, exactly
        db.put(b"big", big)
        self.assertEqual(db.get(b"big"), big)

    def test_delete(self) -> None:
        db = self.open()
        self.assertIsNone(db.delete(b"k"))
        db.put(b"k", b"v")
        self.assertEqual(db.delete(b"k"), 2)  # the tombstone takes a version
        self.assertIsNone(db.get(b"k"))
        self.assertIsNone(db.delete(b"k"))
        self.assertEqual(db.put(b"k", b"again"), 3)

    def test_cas(self) -> None:
        db = self.open()
        self.assertEqual(db.cas(b"c", 0, b"first"), 1)
        with self.assertRaises(libkv.ConflictError) as cm:
            db.cas(b"c", 0, b"again")
        self.assertEqual(cm.exception.version, 1)
        self.assertEqual(cm.exception.code, -2)
        self.assertEqual(db.cas(b"c", 1, b"second"), 2)
        with self.assertRaises(libkv.ConflictError) as cm:
            db.cas(b"c", 1, b"stale")
        self.assertEqual(cm.exception.version, 2)
        self.assertIn("conflict", str(cm.exception))
        db.delete(b"c")
        with self.assertRaises(libkv.ConflictError) as cm:
            db.cas(b"c", 2, b"x")
        self.assertEqual(cm.exception.version, 0)  # absent
        self.assertEqual(db.cas(b"c", 0, b"back"), 4)
        self.assertEqual(db.get(b"c"), b"back")

    def test_ttl(self) -> None:
        db = self.open()
        before = time.time()
        db.put(b"t", b"short", ttl=1)
        db.put(b"long", b"x", ttl=3600)
        db.cas(b"c", 0, b"x", ttl=1)
        v = db.get(b"long")
        self.assertIsNotNone(v.expiry)
        self.assertGreater(v.expiry, before + 3000)
        self.assertEqual(v.expiry_ms // 1000, int(v.expiry))
        # Expired values are never returned: wait (bounded) for the expiry.
        support.wait_for("ttl=1 to expire", lambda: db.get(b"t") is None, 30)
        support.wait_for("cas ttl=1 to expire", lambda: db.get(b"c") is None, 30)
        self.assertEqual(db.get(b"long"), b"x")
        self.assertNotIn(b"t", db)
        # A fractional TTL rounds up to whole seconds.
        db.put(b"f", b"x", ttl=0.2)
        self.assertIsNotNone(db.get(b"f").expiry)
        db.compact()  # drops what expired
        self.assertIsNone(db.get(b"t"))

    def test_batch(self) -> None:
        db = self.open()
        db.put(b"a", b"old")
        res = db.batch([("put", b"a", b"new"), ("get", b"a"), ("delete", b"a"),
                        ("get", b"a"), ("delete", b"none"), ("put", "b", "x", 60),
                        ["get", "b"]])
        self.assertEqual(res[0], 2)
        self.assertEqual((res[1], res[1].version), (b"new", 2))
        self.assertEqual(res[2], 3)
        self.assertIsNone(res[3])
        self.assertIsNone(res[4])
        self.assertEqual(res[5], 1)
        self.assertEqual(res[6], b"x")
        self.assertIsNotNone(res[6].expiry)
        self.assertEqual(db.batch([("get", b"b")]), [b"x"])

    def test_batch_is_atomic(self) -> None:
        db = self.open(max_value_size=10)
        with self.assertRaises(libkv.TooBigError) as cm:
            db.batch([("put", b"x", b"ok"), ("put", b"y", b"z" * 11)])
        self.assertEqual(cm.exception.index, 1)
        self.assertIsNone(db.get(b"x"))  # nothing applied
        with self.assertRaises(libkv.InvalidArgumentError):
            db.batch([])

    def test_mapping_protocol(self) -> None:
        db = self.open()
        db[b"m"] = b"1"
        self.assertEqual(db[b"m"], b"1")
        self.assertEqual(db["m"].version, 1)
        self.assertIn(b"m", db)
        del db[b"m"]
        self.assertNotIn(b"m", db)
        with self.assertRaises(KeyError):
            db[b"m"]
        with self.assertRaises(libkv.NotFoundError):
            del db[b"m"]
        with self.assertRaises(TypeError):
            iter(db)

    def test_other_calls(self) -> None:
        db = self.open()
        db.ping()
        db.compact()
        with self.assertRaises(libkv.NotSupportedError):
            db.describe()
        with self.assertRaises(libkv.InvalidArgumentError):
            db.ports  # only nodes have ports
        v, trace = db.get_traced(b"nope")
        self.assertIsNone(v)
        self.assertEqual(trace["replicas"], [])
        db.put(b"k", b"v")
        v, trace = db.get_traced(b"k", consistency="one")
        self.assertEqual(v, b"v")
        # Every level is accepted on an embedded store (one replica).
        for level in libkv.CONSISTENCY_LEVELS:
            self.assertEqual(db.get(b"k", consistency=level), b"v")
            db.put(b"k", b"v", consistency=level)
        db.put(b"k", b"v", w=1)
        self.assertEqual(db.get(b"k", r=1), b"v")
        self.assertEqual(db.get(b"k", consistency="QUORUM"), b"v")

    def test_close(self) -> None:
        db = libkv.open(self.path("c"), sync="always")
        db.put(b"k", b"durable")
        self.assertFalse(db.closed)
        db.close()
        self.assertTrue(db.closed)
        db.close()  # idempotent
        self.assertIn("closed", repr(db))
        for call in (lambda: db.get(b"k"), lambda: db.put(b"k", b"v"),
                     lambda: db.delete(b"k"), lambda: db.cas(b"k", 1, b"v"),
                     lambda: db.batch([("get", b"k")]), db.ping, db.compact,
                     lambda: db.get_traced(b"k"), db.describe):
            with self.assertRaises(libkv.ClosedError):
                call()
        with libkv.open(self.path("c")) as again:
            self.assertEqual(again.get(b"k"), b"durable")
        self.assertTrue(again.closed)

    def test_open_errors(self) -> None:
        self.open("busy")
        with self.assertRaises(libkv.BusyError) as cm:
            libkv.open(self.path("busy"))
        self.assertTrue(cm.exception.detail)
        with self.assertRaises(libkv.InvalidArgumentError):
            libkv.open(self.path("missing"), create_if_missing=False)
        with self.assertRaises(libkv.InvalidArgumentError):
            libkv.open(self.path("x"), max_key_size=70000)
        with self.assertRaises(ValueError):
            libkv.open(self.path("x"), sync="sometimes")
        with self.assertRaises(TypeError):
            libkv.open(self.path("x"), no_such_option=1)
        with self.assertRaises(ValueError):
            libkv.open("")

    def test_options(self) -> None:
        for sync in ("always", "periodic", "none"):
            with libkv.open(self.path(sync), sync=sync, sync_interval=0.05,
                            block_cache_bytes=8 << 20, tombstone_grace=0) as db:
                db.put(b"k", b"v")
                db.delete(b"k")
                db.compact()
                # tombstone_grace=0: the tombstone is gone, versions restart.
                self.assertEqual(db.put(b"k", b"v"), 1)
        # The row cache: none (0) or a size; either reads back its writes.
        for rows in (0, 1 << 20):
            with libkv.open(self.path(f"rows{rows}"), sync="none", row_cache_bytes=rows) as db:
                db.put(b"k", b"one")
                db.put(b"k", b"two")
                self.assertEqual(db.get(b"k"), b"two")
                self.assertEqual(db.get(b"k").version, 2)
        with self.assertRaises(ValueError):
            libkv.open(self.path("rows-bad"), row_cache_bytes=-1)

    def test_log_callback(self) -> None:
        seen = []
        with libkv.open(self.path("log"), log=lambda level, msg: seen.append((level, msg)),
                        log_level="debug", sync="none") as db:
            db.put(b"k", b"v")
        self.assertTrue(seen)
        self.assertTrue(all(level in ("error", "warn", "info", "debug") for level, _ in seen))
        logger = logging.getLogger("libkv.test")
        with self.assertLogs(logger, level="DEBUG"):
            with libkv.open(self.path("log2"), log=logger, log_level="debug", sync="none"):
                pass

    def test_module(self) -> None:
        self.assertRegex(libkv.library_version(), r"^\d+\.\d+\.\d+$")
        self.assertTrue(libkv.library_path())
        self.assertIn("not found", libkv.strerror(-1))
        self.assertEqual(libkv.strerror(12345), "unknown error code")
        self.assertEqual(set(libkv.CONSISTENCY_LEVELS) & {"one", "quorum", "all"},
                         {"one", "quorum", "all"})
        for name in libkv.__all__:
            self.assertTrue(hasattr(libkv, name), name)
        self.assertTrue(libkv.open.__doc__)
        # The exception hierarchy a caller relies on.
        self.assertTrue(issubclass(libkv.NotFoundError, KeyError))
        self.assertTrue(issubclass(libkv.TooBigError, ValueError))
        self.assertTrue(issubclass(libkv.UnavailableError, libkv.RetryableError))
        self.assertTrue(issubclass(libkv.TimedOutError, libkv.RetryableError))
        self.assertFalse(issubclass(libkv.UnknownOutcomeError, libkv.RetryableError))
        for cls in (libkv.NotFoundError, libkv.ConflictError, libkv.ClosedError):
            self.assertTrue(issubclass(cls, libkv.Error))


if __name__ == "__main__":
    unittest.main()
