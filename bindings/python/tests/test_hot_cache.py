"""The client's cache of hot keys (connect(hot_cache_staleness=...),
kv_client_options version 5) end to end against a node in this process,
and the bad input of the new client options (max_inflight,
hot_cache_staleness, hot_cache_entries).

The key is changed behind the cached client's back through the node's own
handle: a read through the client then still returns the old value, which
only a cache can do. The staleness bound is an hour (the most allowed), so
no test can outrun it; nothing here waits for time to pass."""
from __future__ import annotations

import unittest
from ctypes import byref, c_void_p

import support
from support import libkv
from libkv import _native as n

HOUR = 3600.0


class HotCache(support.TempDirTest):
    def test_cache_serves_a_read_within_its_bound(self) -> None:
        node = self.node()
        cached = self.client(node.address, hot_cache_staleness=HOUR)
        node.put(b"k", b"a")
        first = cached.get(b"k")
        self.assertEqual(first, b"a")

        # Changed behind the client's back: the client's reads at the
        # default level, ONE and QUORUM are answered from its cache.
        node.put(b"k", b"b")
        self.assertEqual(node.get(b"k"), b"b")
        again = cached.get(b"k")
        self.assertEqual((again, again.version), (b"a", first.version))
        self.assertEqual(cached.get(b"k", consistency="one"), b"a")
        self.assertEqual(cached.get(b"k", consistency="quorum"), b"a")
        self.assertEqual(cached[b"k"], b"a")

        # Reads at ALL and traced reads never use the cache.
        self.assertEqual(cached.get(b"k", consistency="all"), b"b")
        value, _ = cached.get_traced(b"k")
        self.assertEqual(value, b"b")

    def test_serial_reads_bypass_the_cache(self) -> None:
        node = self.node()
        cached = self.client(node.address, hot_cache_staleness=HOUR)
        node.put(b"k", b"a")
        self.assertEqual(cached.get(b"k"), b"a")
        node.put(b"k", b"b")
        self.assertEqual(cached.get(b"k"), b"a")
        try:
            got = cached.get(b"k", consistency="serial")
        except libkv.NotSupportedError:
            self.skipTest("SERIAL reads are not served by a node alone")
        self.assertEqual(got, b"b")

    def test_own_writes_drop_the_key(self) -> None:
        node = self.node()
        cached = self.client(node.address, hot_cache_staleness=HOUR)
        node.put(b"k", b"a")
        self.assertEqual(cached.get(b"k"), b"a")

        # put through the cached client: its next read is the new value.
        node.put(b"k", b"b")
        self.assertEqual(cached.get(b"k"), b"a")
        cached.put(b"k", b"c")
        self.assertEqual(cached.get(b"k"), b"c")
        # ...which is cached in turn.
        node.put(b"k", b"d")
        self.assertEqual(cached.get(b"k"), b"c")

        # cas.
        version = node.get(b"k").version
        cached.cas(b"k", version, b"e")
        self.assertEqual(cached.get(b"k"), b"e")

        # A batch that writes the key.
        node.put(b"k", b"f")
        self.assertEqual(cached.get(b"k"), b"e")
        cached.batch([("put", b"k", b"g")])
        self.assertEqual(cached.get(b"k"), b"g")

        # delete.
        node.put(b"k", b"h")
        self.assertEqual(cached.get(b"k"), b"g")
        cached.delete(b"k")
        self.assertIsNone(cached.get(b"k"))
        self.assertIsNone(node.get(b"k"))

    def test_no_cache_by_default(self) -> None:
        node = self.node()
        for plain in (self.client(node.address),
                      self.client(node.address, hot_cache_staleness=None),
                      self.client(node.address, hot_cache_staleness=0)):
            node.put(b"k", b"a")
            self.assertEqual(plain.get(b"k"), b"a")
            node.put(b"k", b"b")
            self.assertEqual(plain.get(b"k"), b"b")

    def test_entries_bound_the_cache(self) -> None:
        node = self.node()
        cached = self.client(node.address, hot_cache_staleness=HOUR, hot_cache_entries=1)
        node.put(b"k1", b"a")
        node.put(b"k2", b"x")
        self.assertEqual(cached.get(b"k1"), b"a")
        self.assertEqual(cached.get(b"k2"), b"x")  # the one entry: k1 dropped
        node.put(b"k1", b"b")
        node.put(b"k2", b"y")
        self.assertEqual(cached.get(b"k2"), b"x")  # still cached
        self.assertEqual(cached.get(b"k1"), b"b")  # was dropped: asked the node

    def test_max_inflight_is_accepted(self) -> None:
        node = self.node()
        for m in (1, 2, 4096, 2**32 - 1, 0, None):
            c = self.client(node.address, max_inflight=m)
            c.put(b"k", b"v")
            self.assertEqual(c.get(b"k"), b"v")
            # All of them, with the cache on too.
            c = self.client(node.address, max_inflight=m, hot_cache_staleness=0.5,
                            hot_cache_entries=1048576)
            self.assertEqual(c.get(b"k"), b"v")

    def test_limits_are_accepted(self) -> None:
        node = self.node()
        for staleness, entries in ((HOUR, 1048576), (3600, 1), (0.001, 0), (1, None),
                                   (0.0001, 2)):
            c = self.client(node.address, hot_cache_staleness=staleness,
                            hot_cache_entries=entries)
            node.put(b"k", b"a")
            self.assertEqual(c.get(b"k"), b"a")


class HotCacheBadInput(support.TempDirTest):
    ADDR = "127.0.0.1:1"  # nothing connects before the first call

    def test_wrong_types(self) -> None:
        for name in ("max_inflight", "hot_cache_entries"):
            for bad in ("8", 1.0, 1.5, True, False, [1], b"1", object()):
                with self.assertRaisesRegex(TypeError, name):
                    libkv.connect(self.ADDR, **{name: bad})
        for bad in ("60", b"60", True, [60], object(), 60j):
            with self.assertRaisesRegex(TypeError, "hot_cache_staleness"):
                libkv.connect(self.ADDR, hot_cache_staleness=bad)

    def test_out_of_range(self) -> None:
        for bad in (-1, 2**32, 2**64):
            with self.assertRaisesRegex(ValueError, "max_inflight"):
                libkv.connect(self.ADDR, max_inflight=bad)
        for bad in (-1, 1048577, 2**32, 2**32 + 5):
            with self.assertRaisesRegex(ValueError, "hot_cache_entries"):
                libkv.connect(self.ADDR, hot_cache_entries=bad)
        for bad in (-1, -0.001, 3600.001, 3601, 86400, float("nan"), float("inf"),
                    float("-inf"), 2**40):
            with self.assertRaisesRegex(ValueError, "hot_cache_staleness"):
                libkv.connect(self.ADDR, hot_cache_staleness=bad)
        # None of these is an InvalidArgumentError: refused before C.
        with self.assertRaises(ValueError) as cm:
            libkv.connect(self.ADDR, hot_cache_entries=1048577)
        self.assertNotIsInstance(cm.exception, libkv.Error)

    def test_the_librarys_own_checks(self) -> None:
        """kv_client_open refuses what the binding refuses, with the same
        limits; its refusal is the binding's InvalidArgumentError."""
        eps = support.libkv.cstrings([self.ADDR], "endpoints")

        def open_with(**fields: int) -> int:
            o = n.ClientOptions()
            self.assertEqual(n.lib.kv_client_options_init(byref(o), n.KV_CLIENT_OPTIONS_VERSION),
                             n.KV_OK)
            for k, v in fields.items():
                setattr(o, k, v)
            ptr = c_void_p()
            rc = n.lib.kv_client_open(byref(ptr), eps, 1, byref(o))
            if rc == n.KV_OK:
                n.lib.kv_close(ptr)
            return rc

        limit_ms, limit_entries = n.KV_HOT_CACHE_MAX_STALENESS_MS, n.KV_HOT_CACHE_MAX_ENTRIES
        self.assertEqual(open_with(hot_cache_staleness_ms=limit_ms), n.KV_OK)
        self.assertEqual(open_with(hot_cache_staleness_ms=1, hot_cache_entries=limit_entries),
                         n.KV_OK)
        self.assertEqual(open_with(max_inflight=1), n.KV_OK)
        for fields in ({"hot_cache_staleness_ms": limit_ms + 1},
                       {"hot_cache_staleness_ms": 2**32 - 1},
                       {"hot_cache_staleness_ms": 1, "hot_cache_entries": limit_entries + 1}):
            rc = open_with(**fields)
            self.assertEqual(rc, n.KV_EINVAL, fields)
            err = libkv.from_code(rc, "connect")
            self.assertIsInstance(err, libkv.InvalidArgumentError)
            self.assertIsInstance(err, ValueError)
            self.assertIn("hot_cache", str(err))


if __name__ == "__main__":
    unittest.main()
