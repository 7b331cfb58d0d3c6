"""start_node's options of kv_node_options versions 5 to 8: slow_request,
ae_interval, repair_bytes_per_s, ae_digest_bits, stream_bytes_per_s and
replace. Each is shown to reach the library by a value only the library
refuses (InvalidArgumentError naming the field), next to a node started
with valid ones; ae_interval by a cluster of two whose periodic exchanges
run (a short interval) or never do (math.inf) while a repair asked for
runs; replace by the library's refusals."""
from __future__ import annotations

import math
import threading
import unittest
from typing import Any, Dict, List, Tuple

import support
from support import LOOPBACK, libkv
from libkv import _native


class NodeOptionsRefused(support.TempDirTest):
    def start(self, **kw: Any) -> None:
        """start_node that must be refused: the exception is raised."""
        node = libkv.start_node(self.path("refused"), "refused", sync="none", **kw)
        node.close()
        self.fail(f"a node was started with {kw!r}")

    def assert_library_refuses(self, field: str, **kw: Any) -> None:
        with self.assertRaises(libkv.InvalidArgumentError) as cm:
            self.start(**kw)
        self.assertEqual(cm.exception.code, _native.KV_EINVAL)
        self.assertIn(field, str(cm.exception))  # the library's message names it

    def test_slow_request_reaches_the_library(self) -> None:
        self.assert_library_refuses("slow_request_ms", slow_request=3600.001)
        self.assert_library_refuses("slow_request_ms", slow_request=1e12)  # clamped, refused
        node = self.node(slow_request=3600)
        node.put(b"k", b"v")
        self.node("n2", slow_request=0.001).ping()

    def test_ae_interval_reaches_the_library(self) -> None:
        self.assert_library_refuses("ae_interval_s", ae_interval=604801)
        self.assert_library_refuses("ae_interval_s", ae_interval=604800.5)  # rounded up
        self.assert_library_refuses("ae_interval_s", ae_interval=2.0**40)  # never "never"
        self.node("n1", ae_interval=604800).ping()
        self.node("n2", ae_interval=math.inf).ping()
        self.node("n3", ae_interval=0.2).ping()

    def test_ae_digest_bits_reaches_the_library(self) -> None:
        for bad in (1, 3, 25, 2**32 - 1):
            with self.subTest(ae_digest_bits=bad):
                self.assert_library_refuses("ae_digest_bits", ae_digest_bits=bad)
        for i, good in enumerate((4, 24, 0)):
            self.node(f"n{i}", ae_digest_bits=good).ping()

    def test_replace_reaches_the_library(self) -> None:
        # A node that replaces a member needs a cluster to fetch it from.
        self.assert_library_refuses("replaces a member", replace=True)
        self.node("n1", replace=False).ping()

    def test_rates_start_a_node(self) -> None:
        # 0 is the library's default; any 64-bit rate is taken.
        node = self.node(repair_bytes_per_s=1, stream_bytes_per_s=2**64 - 1)
        node.put(b"k", b"v")
        self.node("n2", repair_bytes_per_s=0, stream_bytes_per_s=0).ping()

    def test_checked_by_the_binding(self) -> None:
        for kw in ({"slow_request": "1"}, {"slow_request": True}, {"ae_interval": "60"},
                   {"ae_interval": False}, {"repair_bytes_per_s": 1.5},
                   {"repair_bytes_per_s": True}, {"ae_digest_bits": 18.0},
                   {"ae_digest_bits": "18"}, {"stream_bytes_per_s": b"1"}):
            with self.subTest(**kw), self.assertRaises(TypeError):
                self.start(**kw)
        for kw in ({"slow_request": 0}, {"slow_request": -1}, {"slow_request": math.nan},
                   {"slow_request": math.inf}, {"ae_interval": 0}, {"ae_interval": -1},
                   {"ae_interval": -math.inf}, {"ae_interval": math.nan},
                   {"repair_bytes_per_s": -1}, {"repair_bytes_per_s": 2**64},
                   {"stream_bytes_per_s": -1}, {"stream_bytes_per_s": 2**64},
                   {"ae_digest_bits": -1}, {"ae_digest_bits": 2**32}):
            with self.subTest(**kw), self.assertRaises(ValueError) as cm:
                self.start(**kw)
            # Refused before C: not the library's InvalidArgumentError.
            self.assertNotIsInstance(cm.exception, libkv.Error)


class AntiEntropyInterval(support.TempDirTest):
    def two_nodes(self, **per_node: Dict[str, Any]) -> List["libkv.Node"]:
        """n1 and n2 as a cluster of two (N = 2), each with its own options."""
        for _ in range(5):  # a free port may be taken before we bind it
            addrs = [f"{LOOPBACK}:{support.free_port()}" for _ in range(2)]
            nodes: List[libkv.Node] = []
            try:
                for i, a in enumerate(addrs):
                    nid = f"n{i + 1}"
                    nodes.append(self.node(nid, listen=a, peers=addrs, replicas=2,
                                           failure_pause=0.5, **per_node.get(nid, {})))
                return nodes
            except libkv.BusyError:
                for n in nodes:
                    n.close()
        raise AssertionError("no two free ports")

    @staticmethod
    def ae(node: "libkv.Node") -> Dict[str, Any]:
        return node.describe()["antiEntropy"]

    def test_periodic_exchanges_or_never(self) -> None:
        # n1 never runs a periodic exchange; n2 runs one about every second
        # (jittered by a quarter).
        n1, n2 = self.two_nodes(n1={"ae_interval": math.inf}, n2={"ae_interval": 1})
        for n in (n1, n2):
            support.wait_for("a complete ring", lambda: n.describe()["complete"])
        n1.put(b"k", b"v", consistency="all")
        # n2's periodic exchanges run (with the default of 60 s, none would
        # start within this wait's bound: the option reaches the library).
        support.wait_for("n2's periodic exchanges",
                         lambda: self.ae(n2)["exchanges"] >= 3, timeout=60)
        # Meanwhile n1 ran none: answering n2's exchanges is not running one.
        before = self.ae(n1)
        self.assertEqual(before["exchanges"] + before["exchangesFailed"], 0, before)
        self.assertEqual(before["round"]["id"], 0, before)
        # A repair asked for runs on n1 all the same: one exchange, with n2.
        report = n1.repair("n1")
        self.assertTrue(report, report)

        def round_done() -> Dict[str, Any]:
            r = self.ae(n1)["round"]
            return r if r["id"] and not r["running"] else {}
        done = support.wait_for("n1's repair round", round_done, timeout=60)
        self.assertEqual((done["peers"], done["peersDone"], done["peersFailed"]), (1, 1, 0),
                         done)
        after = self.ae(n1)
        self.assertEqual(after["lastPeer"], "n2", after)
        # The round's exchange, and no other (nothing periodic).
        self.assertEqual(after["exchanges"] + after["exchangesFailed"], 1, after)
        self.assertEqual(n2.get(b"k", consistency="one"), b"v")


class Replace(support.TempDirTest):
    def test_refused_while_the_member_answers(self) -> None:
        # A cluster of one: n1, whose seed is itself.
        address = f"{LOOPBACK}:{support.free_port()}"
        self.node("n1", listen=address, seeds=[address])
        db = self.client(address)
        support.wait_for("the cluster of one", lambda: db.put(b"k", b"v"))
        # Another process taking n1's place, while n1 still answers: it
        # starts (on an empty directory), fetches the cluster's topology
        # from its seed, and refuses to take the place, saying why.
        seen: List[Tuple[int, str]] = []
        lock = threading.Lock()

        def log(level: int, message: str) -> None:
            with lock:
                seen.append((level, message))

        def refusal() -> str:
            with lock:
                return next((m for _, m in seen if "still answers" in m), "")
        replacer = libkv.start_node(self.path("replacer"), "n1", listen=f"{LOOPBACK}:0",
                                    seeds=[address], replace=True, sync="none", log=log,
                                    log_level="warn")
        self.addCleanup(replacer.close)
        message = support.wait_for("the replace's refusal", refusal, timeout=60)
        self.assertIn("n1", message)
        self.assertIn(address, message)
        # n1 is still the member, and serves.
        self.assertEqual(db.get(b"k"), b"v")
        self.assertEqual({m["nodeId"] for m in db.describe()["members"]}, {"n1"})


if __name__ == "__main__":
    unittest.main()
