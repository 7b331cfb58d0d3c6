"""Bad input: wrong types, oversize keys and values, malformed batches and
options. Each gives a clear exception before or from the library; nothing
crashes and the handle goes on serving."""
from __future__ import annotations

import unittest

import support
from support import libkv


class BadInput(support.TempDirTest):
    def test_wrong_types(self) -> None:
        db = self.open()
        for bad in (None, 1, 1.5, ["k"], {"k": 1}, object()):
            with self.assertRaisesRegex(TypeError, "key must be bytes or str"):
                db.get(bad)  # type: ignore[arg-type]
            with self.assertRaisesRegex(TypeError, "key must be bytes or str"):
                db.put(bad, b"v")  # type: ignore[arg-type]
            with self.assertRaisesRegex(TypeError, "value must be bytes or str"):
                db.put(b"k", bad)  # type: ignore[arg-type]
            with self.assertRaises(TypeError):
                db.delete(bad)  # type: ignore[arg-type]
            with self.assertRaises(TypeError):
                db.cas(b"k", 0, bad)  # type: ignore[arg-type]
        for bad_version in ("1", 1.0, None, True):
            with self.assertRaisesRegex(TypeError, "expected_version"):
                db.cas(b"k", bad_version, b"v")  # type: ignore[arg-type]
        for bad_version in (-1, 2**64):
            with self.assertRaisesRegex(ValueError, "expected_version"):
                db.cas(b"k", bad_version, b"v")
        with self.assertRaisesRegex(TypeError, "ttl"):
            db.put(b"k", b"v", ttl="60")  # type: ignore[arg-type]
        for bad_ttl in (0, -1, float("nan"), float("inf")):
            with self.assertRaisesRegex(ValueError, "ttl"):
                db.put(b"k", b"v", ttl=bad_ttl)
        with self.assertRaisesRegex(ValueError, "consistency"):
            db.get(b"k", consistency="most")
        with self.assertRaisesRegex(ValueError, "consistency"):
            db.put(b"k", b"v", consistency=7)  # type: ignore[arg-type]
        with self.assertRaisesRegex(ValueError, "not both"):
            db.get(b"k", consistency="one", r=1)
        with self.assertRaisesRegex(ValueError, "explicit"):
            db.get(b"k", consistency="explicit")
        with self.assertRaises(TypeError):
            db.get(b"k", r="2")  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            db.put(b"k", b"v", context=5)  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            db.get(b"k", no_such_option=1)  # type: ignore[call-arg]
        self.assertEqual(db.put(b"k", b"still serving"), 1)

    def test_empty_key(self) -> None:
        db = self.open()
        for call in (lambda: db.get(b""), lambda: db.put("", b"v"), lambda: db.delete(b""),
                     lambda: db.cas(b"", 0, b"v"), lambda: db.batch([("get", b"")])):
            with self.assertRaisesRegex(libkv.InvalidArgumentError, "empty"):
                call()

    def test_oversize(self) -> None:
        db = self.open()
        with self.assertRaisesRegex(libkv.TooBigError, "1025"):
            db.put(b"k" * 1025, b"v")
        with self.assertRaises(libkv.TooBigError):
            db.get(b"k" * 1025)
        with self.assertRaises(ValueError):  # TooBigError is a ValueError
            db.put(b"k", b"v" * (1024 * 1024 + 1))
        with self.assertRaises(libkv.TooBigError):
            db.cas(b"k", 0, b"v" * (1024 * 1024 + 1))
        with self.assertRaises(libkv.TooBigError) as cm:
            db.batch([("get", b"a"), ("put", b"k", b"v" * (1024 * 1024 + 1))])
        self.assertEqual(cm.exception.index, 1)
        with self.assertRaises(libkv.TooBigError):
            db.batch([("get", b"k")] * 10001)
        small = self.open("small", max_key_size=8, max_value_size=16)
        with self.assertRaises(libkv.TooBigError):
            small.put(b"123456789", b"v")
        with self.assertRaises(libkv.TooBigError):
            small.put(b"k", b"x" * 17)
        small.put(b"12345678", b"x" * 16)
        self.assertIsNone(db.get(b"k"))
        self.assertEqual(db.put(b"k", b"still serving"), 1)

    def test_malformed_batch(self) -> None:
        db = self.open()
        for ops in ([("get",)], [("put", b"k")], [("fetch", b"k")], ["get"], [b"get"],
                    [("put", b"k", b"v", 1, 2)], [None], [()]):
            with self.assertRaises((TypeError, ValueError)):
                db.batch(ops)  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            db.batch([("put", b"k", None)])
        with self.assertRaises(ValueError):
            db.batch([("put", b"k", b"v", -5)])
        self.assertIsNone(db.get(b"k"))

    def test_bad_options(self) -> None:
        with self.assertRaises(ValueError):
            libkv.open(self.path("x"), log_level="loud")
        with self.assertRaises(TypeError):
            libkv.open(self.path("x"), log=42)
        with self.assertRaises(TypeError):
            libkv.open(self.path("x"), max_key_size="big")  # type: ignore[arg-type]
        with self.assertRaises(ValueError):
            libkv.open(self.path("x"), max_key_size=-1)
        with self.assertRaises(ValueError):
            libkv.open(self.path("x"), sync_interval=-1)
        with self.assertRaises(ValueError):
            libkv.open("a\0b")
        with self.assertRaises(ValueError):
            libkv.connect(["127.0.0.1:1\0"])
        with self.assertRaises(TypeError):
            libkv.connect("127.0.0.1:1", request_timeout="5")  # type: ignore[arg-type]
        with self.assertRaises(TypeError):
            libkv.connect("127.0.0.1:1", merge=1, policy="merge")  # type: ignore[arg-type]


if __name__ == "__main__":
    unittest.main()
