"""A node started in this process and clients connecting to it: every call
through both handles, sibling policies, tokens, and the three ways a remote
call can fail (unavailable, timed out, unknown outcome) told apart."""
from __future__ import annotations

import socket
import threading
import unittest
from typing import List

import support
from support import LOOPBACK, libkv


def calls(test: unittest.TestCase, db: "libkv.Store") -> None:
    """The data calls, the same on every kind of handle."""
    test.assertIsNone(db.get(b"k"))
    test.assertEqual(db.put(b"k", b"v1"), 1)
    test.assertEqual(db.put("k", "v2", ttl=3600, consistency="all"), 2)
    v = db.get(b"k", consistency="one")
    test.assertEqual((v, v.version), (b"v2", 2))
    test.assertIsNotNone(v.expiry)
    test.assertEqual(db.cas(b"k", 2, b"v3"), 3)
    with test.assertRaises(libkv.ConflictError) as cm:
        db.cas(b"k", 2, b"lost")
    test.assertEqual(cm.exception.version, 3)
    test.assertEqual(db.delete(b"k"), 4)
    test.assertIsNone(db.get(b"k"))
    test.assertEqual(db.cas(b"k", 0, b"\x00bin\xff"), 5)
    test.assertEqual(db[b"k"], b"\x00bin\xff")
    res = db.batch([("put", b"b1", b"x"), ("get", b"k"), ("delete", b"b1"), ("get", b"b1")])
    test.assertEqual(res[0], 1)
    test.assertEqual(res[1], b"\x00bin\xff")
    test.assertEqual(res[2], 2)
    test.assertIsNone(res[3])
    value, trace = db.get_traced(b"k")
    test.assertEqual(value, b"\x00bin\xff")
    test.assertIn("replicas", trace)
    db.ping()


class NodeAndClient(support.TempDirTest):
    def test_node_handle(self) -> None:
        node = self.node(http=f"{LOOPBACK}:0")
        self.assertEqual(node.kind, "node")
        binary, http = node.ports
        self.assertGreater(binary, 0)
        self.assertGreater(http, 0)
        self.assertEqual(node.address, f"{LOOPBACK}:{binary}")
        self.assertEqual(node.http_address, f"{LOOPBACK}:{http}")
        self.assertEqual(node.describe()["nodeId"], "n1")
        calls(self, node)
        node.compact()

    def test_client_of_a_node(self) -> None:
        node = self.node()
        self.assertIsNone(node.http_address)
        client = self.client(node.address)
        self.assertEqual(client.kind, "client")
        calls(self, client)
        # Both handles see the same data.
        node.put(b"from-node", b"1")
        self.assertEqual(client.get(b"from-node"), b"1")
        client.put(b"from-client", b"2")
        self.assertEqual(node.get(b"from-client"), b"2")
        self.assertEqual(client.describe()["members"][0]["nodeId"], "n1")
        with self.assertRaises(libkv.NotSupportedError):
            client.compact()
        with self.assertRaises(libkv.InvalidArgumentError):
            client.ports
        # Endpoints as a list or as "a,b".
        other = self.client([node.address])
        self.assertEqual(other.get(b"from-node"), b"1")
        other = self.client(f"{node.address}, {node.address}")
        self.assertEqual(other.get(b"from-node"), b"1")

    def test_closing_the_node_under_a_client(self) -> None:
        node = self.node()
        address = node.address
        client = self.client(address, connect_timeout=0.5, request_timeout=1)
        client.put(b"k", b"v")
        node.close()
        with self.assertRaises(libkv.ClosedError):
            node.get(b"k")
        # The node is gone: nothing reachable, nothing applied.
        with self.assertRaises(libkv.RetryableError):
            client.get(b"k")
        # It comes back on the same port; the client reconnects by itself.
        again = support.wait_for("the port to be free again", lambda: self._restart(address))
        self.addCleanup(again.close)
        self.assertEqual(support.wait_for("a reconnection", lambda: client.get(b"k")), b"v")

    def _restart(self, address: str) -> "libkv.Node":
        try:
            return libkv.start_node(self.path("n1"), "n1", listen=address, sync="none")
        except libkv.BusyError:
            return None  # type: ignore[return-value]

    def test_unavailable(self) -> None:
        port = support.free_port()  # nothing listens there
        client = self.client(f"{LOOPBACK}:{port}", connect_timeout=0.5, request_timeout=0.5)
        for call in (client.ping, lambda: client.get(b"k"), lambda: client.put(b"k", b"v"),
                     lambda: client.cas(b"k", 0, b"v"), lambda: client.delete(b"k")):
            with self.assertRaises(libkv.UnavailableError) as cm:
                call()
            self.assertIsInstance(cm.exception, libkv.RetryableError)
            self.assertIn("reach", str(cm.exception))

    def test_timed_out_and_unknown_outcome(self) -> None:
        # A node behind a proxy that passes a connection's first exchange
        # (the client's probe of a new connection) and then swallows
        # everything: the requests are sent and never answered.
        node = self.node()
        upstream = node.address
        srv = socket.socket()
        srv.bind((LOOPBACK, 0))
        srv.listen()
        self.addCleanup(srv.close)
        held: List[socket.socket] = []
        self.addCleanup(lambda: [s.close() for s in held])

        def read_frame(conn: socket.socket) -> bytes:
            data = b""
            while len(data) < 24 or len(data) < 24 + int.from_bytes(data[16:20], "big"):
                chunk = conn.recv(65536)
                if not chunk:
                    raise OSError("closed")
                data += chunk
            return data

        def serve(conn: socket.socket) -> None:
            try:
                host, _, port = upstream.rpartition(":")
                with socket.create_connection((host, int(port)), timeout=5) as up:
                    up.sendall(read_frame(conn))      # the probe, passed on
                    conn.sendall(read_frame(up))      # and its answer
                while conn.recv(65536):               # then silence
                    pass
            except OSError:
                pass

        def accept() -> None:
            while True:
                try:
                    conn = srv.accept()[0]
                except OSError:
                    return
                held.append(conn)
                threading.Thread(target=serve, args=(conn,), daemon=True).start()
        threading.Thread(target=accept, daemon=True).start()
        endpoint = f"{LOOPBACK}:{srv.getsockname()[1]}"
        client = self.client(endpoint, connect_timeout=0.3, request_timeout=0.3)
        with self.assertRaises(libkv.TimedOutError) as cm:  # a read: nothing changed
            client.get(b"k")
        self.assertIsInstance(cm.exception, libkv.RetryableError)
        for write in (lambda: client.put(b"k", b"v"), lambda: client.cas(b"k", 0, b"v"),
                      lambda: client.delete(b"k")):
            with self.assertRaises(libkv.UnknownOutcomeError) as cm2:  # may have applied
                write()
            self.assertNotIsInstance(cm2.exception, libkv.RetryableError)

    def test_administration(self) -> None:
        """backup, repair and topology_change through a client of a
        cluster of one, and their refusals."""
        address = f"{LOOPBACK}:{support.free_port()}"
        self.node(listen=address, seeds=[address])
        db = self.client(address)
        support.wait_for("the cluster of one", lambda: db.put(b"k", b"v"))
        target = self.path("backup")
        report = db.backup(target)
        self.assertEqual(report["nodes"][0]["nodeId"], "n1")
        self.assertEqual(report["nodes"][0]["status"], "OK")
        with self.assertRaises(libkv.InvalidArgumentError) as cm:
            db.backup(target)  # it exists now
        self.assertIn("already exists", str(cm.exception))
        self.assertIsNotNone(cm.exception.report)
        with self.assertRaises(libkv.InvalidArgumentError):
            db.backup("relative/dir")
        with self.assertRaises(ValueError):
            db.backup(self.path("a\0b"))
        started = db.repair()
        self.assertEqual(started["nodes"][0]["nodeId"], "n1")
        cleaned = db.topology_change("cleanup")
        self.assertEqual(cleaned["nodeId"], "n1")
        self.assertGreaterEqual(cleaned["keysAfter"], 1)
        with self.assertRaises(libkv.InvalidArgumentError) as cm2:
            db.topology_change("leave")  # one member for three replicas
        self.assertIn("replicas", str(cm2.exception))
        with self.assertRaises(libkv.InvalidArgumentError):
            db.topology_change("explode")
        with self.assertRaises(TypeError):
            db.topology_change(b"cleanup")  # type: ignore[arg-type]
        with self.assertRaises(libkv.NotSupportedError):
            libkv.open(self.path("embedded")).repair()
        self.assertEqual(db.get(b"k"), b"v")

    def test_siblings_context_and_merge(self) -> None:
        address = f"{LOOPBACK}:{support.free_port()}"
        # A cluster of one (seeds: itself) keeps causal contexts and siblings.
        self.node(listen=address, seeds=[address])
        sib = self.client(address, policy="siblings")
        support.wait_for("the cluster of one", lambda: sib.put(b"k", b"one"))
        sib.put(b"k", b"two")  # no context: a concurrent sibling
        v = sib.get(b"k")
        self.assertEqual(sorted(v.siblings), [b"one", b"two"])
        self.assertIn(bytes(v), v.siblings)
        self.assertTrue(v.context)
        self.assertIn("siblings=2", repr(v))
        sib.put(b"k", b"resolved", context=v.context)  # supersedes both
        v = sib.get(b"k")
        self.assertEqual(v.siblings, (b"resolved",))
        sib.put(b"k", b"other")
        merged = self.client(address, policy="merge",
                             merge=lambda key, s: b"+".join(sorted(s)))
        self.assertEqual(merged.get(b"k"), b"other+resolved")
        self.assertEqual(sib.get(b"k").siblings, (b"other+resolved",))  # written back
        sib.put(b"k", b"again")

        def failing(key: bytes, siblings: List[bytes]) -> bytes:
            raise RuntimeError("cannot merge " + key.decode())
        bad = self.client(address, policy="merge", merge=failing)
        with self.assertRaisesRegex(RuntimeError, "cannot merge k"):
            bad.get(b"k")
        self.assertEqual(self.client(address).get(b"k"), b"again")  # LWW
        sib.delete(b"k", context=sib.get(b"k").context)
        self.assertIsNone(sib.get(b"k"))

    def test_client_tokens(self) -> None:
        node = self.node(client_tokens=["a-token-of-16-bytes"])
        with self.assertRaises(libkv.PermissionDeniedError):
            self.client(node.address).put(b"k", b"v")
        with self.assertRaises(libkv.PermissionDeniedError):
            self.client(node.address, auth_token="wrong").get(b"k")
        self.assertEqual(self.client(node.address, auth_token="a-token-of-16-bytes")
                         .put(b"k", b"v"), 1)

    def test_node_errors(self) -> None:
        node = self.node()
        with self.assertRaises(libkv.BusyError):  # the port is taken
            libkv.start_node(self.path("n2"), "n2", listen=node.address)
        with self.assertRaises(libkv.BusyError):  # the store is open
            libkv.start_node(self.path("n1"), "n1", listen=f"{LOOPBACK}:0")
        with self.assertRaises(libkv.InvalidArgumentError):
            libkv.start_node(self.path("n3"), "bad id!", listen=f"{LOOPBACK}:0")
        with self.assertRaises(libkv.InvalidArgumentError):
            libkv.start_node(self.path("n3"), "n3", listen="nonsense")
        with self.assertRaises(libkv.PermissionDeniedError):  # protected mode
            libkv.start_node(self.path("n3"), "n3", listen="0.0.0.0:0")
        with self.assertRaises(ValueError):
            libkv.start_node(self.path("n3"), "n3", policy="merge")
        with self.assertRaises(TypeError):
            libkv.start_node(self.path("n3"), "n3", peers="127.0.0.1:1")
        with self.assertRaises(libkv.InvalidArgumentError):
            libkv.connect("no-port")
        with self.assertRaises(ValueError):
            libkv.connect([])
        with self.assertRaises(ValueError):
            libkv.connect("127.0.0.1:1", policy="merge")  # no merge function
        with self.assertRaises(ValueError):
            libkv.connect("127.0.0.1:1", merge=lambda k, s: s[0])  # not the merge policy


if __name__ == "__main__":
    unittest.main()
