"""A three-node cluster started in this process, used through a client, with
one node stopped."""
from __future__ import annotations

import unittest
from typing import List

import support
import test_threads
from support import LOOPBACK, libkv


class ThreeNodes(support.TempDirTest):
    def start(self) -> List["libkv.Node"]:
        for _ in range(5):  # a free port may be taken before we bind it
            addrs = [f"{LOOPBACK}:{support.free_port()}" for _ in range(3)]
            nodes: List[libkv.Node] = []
            try:
                for i, a in enumerate(addrs):
                    nodes.append(self.node(f"n{i + 1}", listen=a, peers=addrs,
                                           failure_pause=0.5))
                self.addrs = addrs
                return nodes
            except libkv.BusyError:
                for n in nodes:
                    n.close()
        raise AssertionError("no three free ports")

    def test_cluster_through_a_client(self) -> None:
        nodes = self.start()
        client = self.client(self.addrs, request_timeout=2)
        # Until every member has told its id, data calls are unavailable.
        support.wait_for("the ring", lambda: client.put(b"k", b"v", consistency="all"))
        for n in nodes:  # each node builds its ring once it knows every member
            support.wait_for("a complete ring", lambda: n.describe()["complete"])
        described = nodes[0].describe()
        self.assertEqual(sorted(m["nodeId"] for m in described["members"]), ["n1", "n2", "n3"])
        self.assertEqual(client.get(b"k", consistency="all"), b"v")
        for i in range(30):
            client.put(f"key{i}", f"value{i}")
        _, trace = nodes[0].get_traced(b"k", consistency="all")
        self.assertEqual(len(trace["replicas"]), 3)  # N = 3: every node holds k
        # Every node sees every write (N = 3 on three nodes).
        for n in nodes:
            self.assertEqual(n.get(b"key7", consistency="one"), b"value7")

        # SERIAL: linearizable per key; CAS defaults to it in a cluster.
        self.assertEqual(client.cas(b"s", 0, b"1", consistency="serial"), 1)
        self.assertEqual(client.get(b"s", consistency="serial"), b"1")
        self.assertEqual(client.cas(b"s", 1, b"2"), 2)
        with self.assertRaises(libkv.ConflictError) as cm:
            client.cas(b"s", 1, b"lost")
        self.assertEqual(cm.exception.version, 2)
        self.assertEqual(client.put(b"s", b"3", consistency="serial"), 3)

        nodes[2].close()  # one node stopped
        for i in range(30):  # QUORUM (2 of 3) goes on, reads and writes
            self.assertEqual(client.get(f"key{i}"), f"value{i}".encode())
            client.put(f"key{i}", b"after")
        v = client.get(b"key3", consistency="quorum")
        self.assertEqual((v, v.version), (b"after", 2))
        self.assertEqual(client.cas(b"key3", 2, b"cas"), 3)
        with self.assertRaises(libkv.ConflictError):
            client.cas(b"key3", 2, b"cas")
        self.assertEqual(client.batch([("put", b"b", b"1"), ("get", b"key3")])[1], b"cas")
        # ALL cannot be met: a write is refused, and known not applied.
        with self.assertRaises(libkv.UnavailableError) as cm:
            client.put(b"all", b"x", consistency="all", home_only=True)
        self.assertIsInstance(cm.exception, libkv.RetryableError)
        self.assertIsNone(client.get(b"all", consistency="one"))
        with self.assertRaises(libkv.RetryableError):
            client.get(b"key3", consistency="all")
        self.assertEqual(client.get(b"key3", r=2), b"cas")
        # A majority of the key's homes is still there: SERIAL goes on.
        self.assertEqual(client.cas(b"s", 3, b"4", consistency="serial"), 4)
        self.assertEqual(client.get(b"s", consistency="serial"), b"4")
        # Racing CAS increments at SERIAL through the client lose nothing
        # (each CAS applied at most once, every acknowledged one counted).
        self.assertGreater(test_threads.cas_counter(client, b"serial-counter", threads=4,
                                                    attempts=25, unknown_ok=True), 0)
        client.put(b"w2", b"x", w=2)


if __name__ == "__main__":
    unittest.main()
