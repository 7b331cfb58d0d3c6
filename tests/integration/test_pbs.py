#!/usr/bin/env python3
"""Staleness predicted against staleness seen (issue 16, PBS).

Three kvd (N=3) on 127.0.0.11-13, in a network namespace of their own
(integration/in_netns.sh), where an nft rule drops a share of the packets
node n1 sends to the other two: its replica writes then reach them late,
by TCP's retransmission, as on a lossy network. A client writes keys
through n1 at ONE and reads them through n2 at ONE a measured delay after
each write was acknowledged, and counts the reads that miss the write.
n1's own prediction (GET /v1/consistency/prediction and kvctl
predict-consistency), made from the round trips it measured to its peers,
must agree with the fraction seen, at each delay.

Standard library only. Environment: KVD, KVCTL (paths of the binaries).
"""
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kvnodes  # noqa: E402

NODES = 3
BINARY_PORT, HTTP_PORT = 7400, 8080
DROP_PERCENT = int(os.environ.get("PBS_DROP_PERCENT", "20"))
DELAYS_MS = [0, 5, 15, 40]
# A write every PERIOD_MS whatever its read's delay: how fast TCP recovers a
# lost packet depends on what the connection sends after it (a later packet
# reveals the loss at once; silence waits for a timer), so every write must
# be followed alike.
PERIOD_MS = 60
TRIALS = int(os.environ.get("PBS_TRIALS", "150"))


def ip(i):
    return f"127.0.0.{11 + i}"


def log(msg):
    print(msg, flush=True)


class Conn:
    """A kept-alive HTTP connection to one node."""

    def __init__(self, i):
        self.host = ip(i)
        self.c = http.client.HTTPConnection(self.host, HTTP_PORT, timeout=30)

    def request(self, method, path, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            self.c.request(method, path, body=body, headers=headers)
            r = self.c.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException):
            self.c.close()
            self.c = http.client.HTTPConnection(self.host, HTTP_PORT, timeout=30)
            raise


def get_json(i, path):
    return kvnodes.get_json(ip(i), HTTP_PORT, path)


def nft(script):
    subprocess.run(["nft", "-f", "-"], input=script.encode(), check=True)


def run_trials(writer, reader):
    """TRIALS writes through n1 at ONE for each delay, each read through n2
    at ONE that long after its acknowledgement. The delays take turns, so
    that each sees the network as the others do (a lost packet holds up
    what follows it on its connection for a while: a delay tried alone,
    at its own pace, would meet another share of those moments). Returns
    per delay: stale reads, and the mean delay measured from the
    acknowledgement to the read being sent, in ms; and the reads' median
    round trip (the time the acknowledgement and the read spend between
    the client and the nodes, which a read at 'zero' ms adds)."""
    next_write = time.monotonic()
    stale = {d: 0 for d in DELAYS_MS}
    measured = {d: 0.0 for d in DELAYS_MS}
    read_rtts = []
    for k in range(TRIALS * len(DELAYS_MS)):
        d = DELAYS_MS[k % len(DELAYS_MS)]
        key = f"/v1/kv/pbs-{k}"
        while time.monotonic() < next_write:
            time.sleep(max(0.0, next_write - time.monotonic()))
        next_write = time.monotonic() + PERIOD_MS / 1000.0
        status, _ = writer.request("PUT", key + "?consistency=one", b'{"value": "x"}')
        acked = time.monotonic()
        if status != 200:
            sys.exit(f"a write at ONE failed: HTTP {status}")
        while time.monotonic() < acked + d / 1000.0:
            time.sleep(max(0.0, acked + d / 1000.0 - time.monotonic()))
        asked = time.monotonic()
        status, body = reader.request("GET", key + "?consistency=one")
        read_rtts.append((time.monotonic() - asked) * 1000.0)
        measured[d] += (asked - acked) * 1000.0
        if status == 404:
            stale[d] += 1
        elif status != 200:
            sys.exit(f"a read at ONE failed: HTTP {status} {body[:200]!r}")
    read_rtts.sort()
    return ({d: (stale[d] / TRIALS, measured[d] / TRIALS) for d in DELAYS_MS},
            read_rtts[len(read_rtts) // 2])


def main():
    kvd = os.environ.get("KVD")
    kvctl = os.environ.get("KVCTL")
    if not kvd or not kvctl:
        sys.exit("set KVD and KVCTL to the binaries")
    work = tempfile.mkdtemp(prefix="kvtest-pbs.")
    procs = []
    try:
        # Before the nodes start, so that every round trip n1 measures was
        # made on the same lossy network.
        peers_ips = ", ".join(ip(i) for i in range(1, NODES))
        nft(f"""table inet kvpbs {{
  chain out {{
    type filter hook output priority 0;
    ip saddr {ip(0)} ip daddr {{ {peers_ips} }} tcp dport {BINARY_PORT} numgen random mod 100 < {DROP_PERCENT} drop
  }}
}}""")
        peers = ",".join(f"{ip(i)}:{BINARY_PORT}" for i in range(NODES))
        for i in range(NODES):
            argv = [kvd, "--data", os.path.join(work, f"n{i + 1}"), "--listen",
                    f"{ip(i)}:{BINARY_PORT}", "--http", f"{ip(i)}:{HTTP_PORT}",
                    "--node-id", f"n{i + 1}", "--peers", peers, "--sync", "none",
                    "--ae-interval", "0"]
            logf = open(os.path.join(work, f"n{i + 1}.log"), "wb")
            procs.append(subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT))
        kvnodes.wait_cluster_ready(procs, [(ip(i), HTTP_PORT) for i in range(NODES)], 120)
        writer, reader = Conn(0), Conn(1)
        seen, offset = run_trials(writer, reader)
        # Questions without an answer are refused, and the node goes on.
        for query in ["r=4", "w=9", "consistency=serial", "t=abc", "r=0"]:
            status, body = get_json(0, f"/v1/consistency/prediction?{query}")
            if status != 400:
                sys.exit(f"prediction?{query} answered HTTP {status}, not 400: {body}")
        status, p = get_json(0, "/v1/consistency/prediction?consistency=quorum")
        if status != 200 or any(pt["consistent"] != 1.0 for pt in p["predictions"]):
            sys.exit(f"QUORUM/QUORUM (R + W > N) is predicted stale: {p}")
        failures = []
        log(f"{'DELAY':>8} {'MEASURED':>9} {'STALE SEEN':>11} {'PREDICTED':>10} {'KVCTL':>8}")
        for d in DELAYS_MS:
            frac, measured = seen[d]
            t = measured + offset
            status, p = get_json(0, f"/v1/consistency/prediction?consistency=one&t={t:.3f}")
            if status != 200:
                sys.exit(f"the prediction failed: HTTP {status} {p}")
            predicted = 1.0 - p["predictions"][0]["consistent"]
            out = subprocess.run([kvctl, "--endpoints", f"{ip(0)}:{BINARY_PORT}", "-w", "json",
                                  "predict-consistency", "--r", "1", "--w", "1",
                                  "--t", f"{t:.3f}"],
                                 capture_output=True, timeout=60)
            if out.returncode != 0:
                sys.exit(f"kvctl predict-consistency failed: {out.stderr.decode()}")
            k = json.loads(out.stdout)
            by_kvctl = 1.0 - k["predictions"][0]["consistent"]
            log(f"{d:>6} ms {t:>6.1f} ms {frac:>10.1%} {predicted:>9.1%} {by_kvctl:>7.1%}")
            if abs(by_kvctl - predicted) > 0.03:
                failures.append(f"at {d} ms kvctl predicted {by_kvctl:.1%}, the node {predicted:.1%}")
            if d == DELAYS_MS[0] and (frac < 0.05 or predicted < 0.05):
                failures.append(f"at {d} ms too few stale reads to compare ({frac:.1%} seen, "
                                f"{predicted:.1%} predicted): the lossy network did not work")
            # Binomial noise of TRIALS reads, plus the model's own error.
            sigma = (max(predicted * (1 - predicted), 0.02) / TRIALS) ** 0.5
            if abs(frac - predicted) > 0.08 + 4 * sigma:
                failures.append(f"at {d} ms: {frac:.1%} stale seen, {predicted:.1%} predicted")
        # kvctl refuses bad flags (exit 2) and a quorum past the replicas
        # (exit 1, saying why).
        for flags, code in ((["--r", "0"], 2), (["--t", "abc"], 2), (["--t", "-1"], 2),
                            (["--w", "65"], 2), (["--r", "4"], 1)):
            out = subprocess.run([kvctl, "--endpoints", f"{ip(0)}:{BINARY_PORT}",
                                  "predict-consistency", *flags], capture_output=True, timeout=60)
            if out.returncode != code or not out.stderr:
                failures.append(f"kvctl predict-consistency {' '.join(flags)}: exit "
                                f"{out.returncode}, not {code}: {out.stderr.decode()[:200]}")
        if failures:
            sys.exit("the prediction missed: " + "; ".join(failures))
        log("ok")
    finally:
        kvnodes.stop_all(procs)
        subprocess.run(["nft", "delete", "table", "inet", "kvpbs"], stderr=subprocess.DEVNULL)
        if os.environ.get("PBS_KEEP"):
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
