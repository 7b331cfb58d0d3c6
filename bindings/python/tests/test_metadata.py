"""start_node(metadata=...): where a cluster's topology record is kept
(kv_node_options.metadata, "etcd://HOST:PORT[,HOST:PORT...]/PREFIX").
The refusals need nothing but the library; one test starts a real etcd on
loopback ports when /usr/bin/etcd is installed (Debian's etcd-server), and
is skipped otherwise."""
from __future__ import annotations

import os
import subprocess
import time
import unittest
import urllib.request
from typing import Any, Dict, Optional

import support
from support import LOOPBACK, libkv

ETCD = "/usr/bin/etcd"


class MetadataRefused(support.TempDirTest):
    def start(self, **kw: Any) -> None:
        """start_node that must be refused: the exception is raised."""
        node = libkv.start_node(self.path("n1"), "n1", sync="none", **kw)
        node.close()
        self.fail(f"a node was started with {kw!r}")

    def test_without_peers_or_seeds(self) -> None:
        # A node alone keeps no topology.
        with self.assertRaises(libkv.InvalidArgumentError) as cm:
            self.start(metadata="etcd://127.0.0.1:2379/kv")
        self.assertIn("metadata", str(cm.exception))
        self.assertIn("peers or seeds", str(cm.exception))
        self.assertEqual(cm.exception.code, -4)

    def test_malformed(self) -> None:
        # On a node that could keep it (a cluster of one: its seed is itself).
        for bad in ("http://127.0.0.1:2379/kv", "etcd:///kv", "127.0.0.1:2379"):
            address = f"{LOOPBACK}:{support.free_port()}"
            with self.subTest(metadata=bad):
                with self.assertRaises(libkv.InvalidArgumentError) as cm:
                    self.start(listen=address, seeds=[address], metadata=bad)
                self.assertIn("metadata", str(cm.exception))
                self.assertIn(bad, str(cm.exception))

    def test_checked_by_the_binding(self) -> None:
        with self.assertRaises(TypeError):
            self.start(seeds=["127.0.0.1:1"], metadata=b"etcd://127.0.0.1:2379/kv")
        with self.assertRaises(ValueError):
            self.start(seeds=["127.0.0.1:1"], metadata="etcd://127.0.0.1:2379/k\0v")


class Etcd:
    """A real etcd on free loopback ports, killed by its pid and reaped."""

    def __init__(self, directory: str) -> None:
        self.client = f"{LOOPBACK}:{support.free_port()}"
        peer = f"http://{LOOPBACK}:{support.free_port()}"
        self.log_path = os.path.join(directory, "etcd.log")
        url = f"http://{self.client}"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [ETCD, "--name", "default", "--data-dir", os.path.join(directory, "data"),
                 "--listen-client-urls", url, "--advertise-client-urls", url,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"default={peer}"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def healthy(self, timeout: float = 20.0) -> Optional[str]:
        """None once /health says true; else why not (it exited, or
        timeout seconds passed)."""
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"etcd exited with {self.proc.returncode}"
            try:
                with urllib.request.urlopen(f"http://{self.client}/health", timeout=1) as r:
                    body = r.read().decode("utf-8", "replace")
                    if r.status == 200 and "true" in body:
                        return None
                    last = f"/health: {r.status} {body!r}"
            except OSError as e:
                last = repr(e)
            time.sleep(0.1)
        return f"no healthy answer within {timeout} s; last: {last}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def log_tail(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-20:]).decode("utf-8", "replace")
        except OSError:
            return "(no log)"


@unittest.skipUnless(os.access(ETCD, os.X_OK),
                     f"no etcd at {ETCD} (Debian's etcd-server): the refusals are tested without")
class MetadataInEtcd(support.TempDirTest):
    def etcd(self) -> Etcd:
        why = ""
        for attempt in range(3):  # a free port may be taken before etcd binds it
            directory = self.path(f"etcd-{attempt}")
            os.mkdir(directory)
            e = Etcd(directory)
            self.addCleanup(e.stop)
            why = e.healthy() or ""
            if not why:
                return e
            e.stop()
        self.fail(f"etcd did not start: {why}\n{e.log_tail()}")

    def test_a_cluster_of_one_in_etcd(self) -> None:
        e = self.etcd()
        address = f"{LOOPBACK}:{support.free_port()}"
        node = self.node(listen=address, seeds=[address],
                         metadata=f"etcd://{e.client}/libkv-py-test")
        db = self.client(address)
        support.wait_for("the cluster of one", lambda: db.put(b"k", b"v"))

        def lease_held() -> Dict[str, Any]:
            md = node.describe()["topology"]["metadata"]
            return md if md and e.client in md.get("etcd", "") and md.get("leaseHeld") else {}
        support.wait_for(f"the node's lease in etcd at {e.client}", lease_held)
        cleaned = db.topology_change("cleanup")
        self.assertEqual(cleaned["nodeId"], "n1")
        with self.assertRaises(libkv.InvalidArgumentError) as cm:
            db.topology_change("leave", "ghost")
        self.assertIn("ghost", str(cm.exception))
        self.assertEqual(node.get(b"k"), b"v")


if __name__ == "__main__":
    unittest.main()
