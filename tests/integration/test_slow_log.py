#!/usr/bin/env python3
"""The slow-request log on real kvd (issue 16): a write that waits on a
paused replica is logged as one JSON line with its key's hash (never the
key) and each replica's time, the paused one as pending.

Three kvd on 127.0.0.1 (N=3), --slow-request 200 ms, --internode-timeout
1000 ms. Node n3 is paused (SIGSTOP, by pid); two writes of one key at ALL
through n1 wait for it and fail after the timeout; then n3 goes on. n1's
log must hold a slow_request line for each, at consistency "all", with
n2's time and n3 pending (or failed after the threshold), both with the
same hash, and the key nowhere.

Standard library only. Environment: KVD (the binary).
"""
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvnodes  # noqa: E402

KEY = "secret-user-key-1"


PORTS = kvnodes.free_ports(6)


def binary_port(i):
    return PORTS[2 * i]


def http_port(i):
    return PORTS[2 * i + 1]


def request(i, method, path, body=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", http_port(i), timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def main():
    kvd = os.environ.get("KVD")
    if not kvd:
        sys.exit("set KVD to the kvd binary")
    work = tempfile.mkdtemp(prefix="kvtest-slowlog.")
    procs, paused = [], None
    try:
        peers = ",".join(f"127.0.0.1:{binary_port(i)}" for i in range(3))
        for i in range(3):
            argv = [kvd, "--data", os.path.join(work, f"n{i + 1}"),
                    "--listen", f"127.0.0.1:{binary_port(i)}",
                    "--http", f"127.0.0.1:{http_port(i)}", "--node-id", f"n{i + 1}",
                    "--peers", peers, "--slow-request", "200", "--internode-timeout", "1000",
                    "--failure-pause", "60000", "--ae-interval", "0"]
            logf = open(os.path.join(work, f"n{i + 1}.log"), "wb")
            procs.append(subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT))
        kvnodes.wait_cluster_ready(procs, [("127.0.0.1", http_port(i)) for i in range(3)], 120)
        paused = procs[2]
        paused.send_signal(signal.SIGSTOP)
        for attempt in range(2):
            status, body = request(0, "PUT", f"/v1/kv/{KEY}?consistency=all", b'{"value": "b"}')
            if status == 200:
                sys.exit("a write at ALL succeeded with a replica paused")
        paused.send_signal(signal.SIGCONT)
        paused = None

        with open(os.path.join(work, "n1.log"), encoding="utf-8") as f:
            text = f.read()
        if KEY in text:
            sys.exit("the key itself is in the log")
        slow = []
        for line in text.splitlines():
            if '"slow_request"' not in line:
                continue
            entry = json.loads(line)      # each line is one JSON object
            if entry.get("event") == "slow_request" and entry.get("consistency") == "all":
                slow.append(entry)
        if len(slow) != 2:
            sys.exit(f"expected 2 slow_request lines at consistency all, found {len(slow)}:\n"
                     + "\n".join(json.dumps(e) for e in slow))
        hashes = {e["keyHash"] for e in slow}
        if len(hashes) != 1 or not re.fullmatch(r"[0-9a-f]{16}", hashes.pop()):
            sys.exit(f"the two lines do not name the key by one 16-digit hash: {slow}")
        for e in slow:
            if e["op"] != "put" or e["ms"] < 200 or e["consistency"] != "all" or e["level"] != "warn" or "ts" not in e:
                sys.exit(f"a slow line is wrong: {e}")
            nodes = {r["node"]: r for r in e["replicas"]}
            # The paused replica: still pending when the write gave up, or
            # (its own request timing out first, by a hair) failed after
            # the threshold. Either way the line names it as the slow one.
            n3 = nodes.get("n3", {})
            if not (n3.get("pending") or ("error" in n3 and n3.get("ms", 0) >= 200)):
                sys.exit(f"the paused replica is not shown as the slow one: {e}")
            if "ms" not in nodes.get("n2", {}) or nodes["n2"].get("pending"):
                sys.exit(f"the replica that answered has no time: {e}")
        print("ok:", json.dumps(slow[0]))
    finally:
        if paused is not None:
            paused.send_signal(signal.SIGCONT)
        kvnodes.stop_all(procs)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
