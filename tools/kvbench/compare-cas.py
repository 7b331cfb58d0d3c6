#!/usr/bin/env python3
"""compare-cas.py - compare-and-swap and linearizable reads: a 3-node libkv
cluster at SERIAL (per-key Paxos) and at QUORUM, side by side in one run with
a 3-node etcd's transactions.

Usage: tools/kvbench/compare-cas.py [BUILD_DIR]

Systems, each started fresh on 127.0.0.1 (the helpers of compare-cluster.py):
  libkv   three kvd (--peers of all three, N = 3, --sync KVD_SYNC, default
          always), driven by kvbench binary: one client handle learning the
          ring, CONNECTIONS threads over KV_CONNECTIONS connections per node.
  etcd    three etcd members (Debian etcd-server, default durability),
          driven by one kvbench etcd: CONNECTIONS threads, each one keep-alive
          connection, thread t on member t mod 3.

Rows (each a kvbench run of DURATION seconds, CONNECTIONS threads):
  kvd CAS SERIAL    kv_cas at SERIAL: linearizable, per-key Paxos (prepare and
                    propose each synced at every acceptor; commit in the
                    background). The default for kv_cas in a cluster.
  kvd CAS QUORUM    kv_cas at QUORUM: the old path, a compare against a
                    QUORUM read then a QUORUM write; not linearizable (two
                    coordinators can both win).
  etcd CAS          POST /v3/kv/txn: compare the key's mod_revision, put on
                    success, range on failure (which tells the revision).
  kvd GET SERIAL    kv_get at SERIAL (a Paxos read round).
  kvd GET QUORUM    kv_get at QUORUM.
  etcd GET          POST /v3/kv/range, linearizable (etcd's default).
  kvd CAS SERIAL http  (HTTP=1, the default) POST /v1/kv/{key}/cas?consistency=
                    serial over libcurl, thread t on node t mod 3: the same
                    protocol family as etcd's JSON gateway.
Every CAS row first writes the KEYS keys once (kvbench's preload; kvd at
QUORUM) and learns their versions from the answers; each CAS then expects
the version last seen for its key (uniform over KEYS keys, so two threads
rarely meet on one key). A conflict answer carries the current version: it
is counted apart and retried. The GET rows read the data the CAS row of
the same cluster left. Clusters: one for the QUORUM rows, one for the
SERIAL rows (a key with Paxos state sends every later write through Paxos,
so QUORUM CAS must never see one), one etcd, one for the http row.

Server CPU: the user + system time of the three server processes over the
measured phase (from kvbench's "preload done" line to its exit, read in
/proc/PID/stat), divided by the requests answered.

Environment: DURATION=10 CONNECTIONS=32 KV_CONNECTIONS=4 KEYS=10000
VALUE_SIZE=200 KVD_SYNC=always HTTP=1 LOG_DIR= (keeps every tool's output)
PERF_OUT= (a file: perf record -F 499 --call-graph dwarf of the three kvd
during the SERIAL CAS row's measured phase) TMPDIR=/tmp.

Only processes this script started are stopped, by pid; everything listens
on 127.0.0.1 only. Exit status 0 ok, 1 a tool failed, 2 bad setup.
"""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("compare_cluster", os.path.join(HERE, "compare-cluster.py"))
cc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cc)

KVBENCH = cc.KVBENCH
DURATION = int(os.environ.get("DURATION", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "32"))
KV_CONNECTIONS = int(os.environ.get("KV_CONNECTIONS", "4"))
KEYS = int(os.environ.get("KEYS", "10000"))
VALUE_SIZE = int(os.environ.get("VALUE_SIZE", "200"))
HTTP = os.environ.get("HTTP", "1") != "0"
# DEPTH=D: drive kvd's binary rows with the asynchronous client instead, one
# thread keeping KV_CONNECTIONS x D requests in flight; ETCD_THREADS: etcd's
# keep-alive connections (default CONNECTIONS), to meet it at its best.
DEPTH = int(os.environ.get("DEPTH", "0"))
ETCD_THREADS = int(os.environ.get("ETCD_THREADS", "0")) or CONNECTIONS
LOG_DIR = os.environ.get("LOG_DIR", "")
PERF_OUT = os.environ.get("PERF_OUT", "")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def die(msg, code=2):
    print("compare-cas: " + msg, file=sys.stderr)
    sys.exit(code)


cc.die = die  # the helpers' messages under this script's name


def cpu_seconds(procs):
    total = 0
    for p in procs:
        try:
            f = open("/proc/%d/stat" % p.pid).read()
        except OSError:
            continue
        fields = f[f.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLK_TCK


def kvbench(args, tmp, tag, servers, preload=True, perf=False):
    """Runs kvbench; returns its JSON with "server_cpu_s" added: the servers'
    CPU time over the measured phase."""
    out = os.path.join(tmp, tag + ".json")
    err = os.path.join(tmp, tag + ".log")
    perf_p = None
    with open(out, "w") as o, open(err, "w") as e:
        p = subprocess.Popen([KVBENCH] + args + ["--json"], stdout=o, stderr=subprocess.PIPE,
                             text=True)
        cc.started.append(p)
        cpu0 = None if preload else cpu_seconds(servers)
        for line in p.stderr:
            e.write(line)
            if cpu0 is None and "preload done" in line:
                cpu0 = cpu_seconds(servers)
                if perf:
                    perf_p = subprocess.Popen(["perf", "record", "-F", "499", "--call-graph",
                                               "dwarf,16384", "-o", PERF_OUT, "-p",
                                               ",".join(str(s.pid) for s in servers), "--",
                                               "sleep", str(max(1, DURATION - 1))],
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    cc.started.append(perf_p)
        rc = p.wait()
        cpu1 = cpu_seconds(servers)
        cc.started.remove(p)
    if perf_p is not None:
        perf_p.wait()
        cc.started.remove(perf_p)
    if LOG_DIR:
        shutil.copy(out, LOG_DIR)
        shutil.copy(err, LOG_DIR)
    if rc != 0:
        sys.stderr.write(open(err).read()[-2000:])
        die("kvbench %s failed" % tag, 1)
    res = json.load(open(out))
    res["server_cpu_s"] = cpu1 - (cpu0 if cpu0 is not None else cpu1)
    return res


def base(extra, threads=None):
    load = (["--threads", "1", "--depth", str(DEPTH)] if DEPTH and threads is None
            else ["--threads", str(threads or CONNECTIONS)])
    return load + ["--keys", str(KEYS), "--value-size", str(VALUE_SIZE),
                   "--duration", str(DURATION)] + extra


CAS = ["--cas-ratio", "1"]
GET = ["--read-ratio", "1", "--no-preload"]


def stop_group(procs):
    for p in procs:
        cc.stop(p)
        cc.started.remove(p)


def run_kvd(tmp, level):
    """CAS then GET at one level on a fresh cluster."""
    d = os.path.join(tmp, "kvd-" + level)
    os.makedirs(d)
    procs, endpoints = cc.start_libkv(d)
    try:
        b = ["binary", "--endpoints", endpoints, "--connections", str(KV_CONNECTIONS),
             "--consistency", level]
        cas = kvbench(b + ["--preload-consistency", "quorum"] + base(CAS), tmp,
                      "kvd-cas-" + level, procs, perf=bool(PERF_OUT) and level == "serial")
        get = kvbench(b + base(GET), tmp, "kvd-get-" + level, procs, preload=False)
    finally:
        stop_group(procs)
    return cas, get


def run_kvd_http(tmp):
    d = os.path.join(tmp, "kvd-http")
    os.makedirs(d)
    procs, endpoints = cc.start_libkv(d)
    try:
        urls = [_http_of(p) for p in procs]  # each kvd's --http address
        cas = kvbench(["http", "--url", ",".join(urls), "--consistency", "serial",
                       "--preload-consistency", "quorum"] + base(CAS, CONNECTIONS), tmp,
                      "kvd-http-cas-serial",
                      procs)
    finally:
        stop_group(procs)
    return cas


def _http_of(proc):
    args = proc.args
    return "http://" + args[args.index("--http") + 1]


def run_etcd(tmp):
    d = os.path.join(tmp, "etcd")
    os.makedirs(d)
    procs, urls = cc.start_etcd(d)
    try:
        b = ["etcd", "--url", ",".join(urls)]
        cas = kvbench(b + base(CAS, ETCD_THREADS), tmp, "etcd-cas", procs)
        get = kvbench(b + base(GET, ETCD_THREADS), tmp, "etcd-get", procs, preload=False)
    finally:
        stop_group(procs)
    return cas, get


def row(name, r, op):
    o = r["operations"][op]
    answered = r["total"]["ops"]
    cpu = r["server_cpu_s"] / answered * 1e6 if answered else float("nan")
    conf = r.get("conflicts", 0) / r["seconds"] if r["seconds"] else 0
    return "| %s | %.0f | %.0f | %d | %.1f | %.1f | %.1f | %.0f |" % (
        name, o["ops_per_sec"], conf, r["errors"], o["p50_us"] / 1000, o["p99_us"] / 1000,
        o["p999_us"] / 1000, cpu)


def main():
    if not os.access(KVBENCH, os.X_OK) or not os.access(cc.KVD, os.X_OK):
        die("kvd or kvbench not found under %s (build with -DKV_BUILD_TOOLS=ON)" % cc.BUILD)
    if not shutil.which("etcd"):
        die("etcd not found (make bench-deps installs etcd-server)")
    if PERF_OUT and not shutil.which("perf"):
        die("PERF_OUT is set but perf is not installed")
    if LOG_DIR:
        os.makedirs(LOG_DIR, exist_ok=True)
    signal.signal(signal.SIGINT, cc.on_signal)
    signal.signal(signal.SIGTERM, cc.on_signal)
    etcd_version = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print("machine:  %d cpus, %s; everything on this one machine; load average at start %s" %
          (os.cpu_count(), cpu, " ".join(open("/proc/loadavg").read().split()[:3])))
    print("systems:  libkv 3 x kvd (N=3, --sync %s); %s x 3" % (cc.KVD_SYNC, etcd_version))
    print("workload: %d client threads (kvd binary: %d connections per node; http and etcd: one "
          "each), %d keys of 16 bytes, %d-byte values, %d s per row" %
          (CONNECTIONS, KV_CONNECTIONS, KEYS, VALUE_SIZE, DURATION))
    sys.stdout.flush()
    tmp = tempfile.mkdtemp(prefix="kvcas.")
    try:
        s_cas, s_get = run_kvd(tmp, "serial")
        q_cas, q_get = run_kvd(tmp, "quorum")
        e_cas, e_get = run_etcd(tmp)
        h_cas = run_kvd_http(tmp) if HTTP else None
    finally:
        cc.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    print("load average at the end: %s\n" % " ".join(open("/proc/loadavg").read().split()[:3]))
    print("| system | request | ok/s | conflicts/s | errors | p50 ms | p99 ms | p99.9 ms | server CPU us/request |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print(row("kvd SERIAL | CAS (binary)", s_cas, "cas"))
    print(row("kvd QUORUM | CAS (binary)", q_cas, "cas"))
    if h_cas:
        print(row("kvd SERIAL | CAS (http)", h_cas, "cas"))
    print(row("etcd x3 | txn CAS", e_cas, "cas"))
    print(row("kvd SERIAL | GET (binary)", s_get, "get"))
    print(row("kvd QUORUM | GET (binary)", q_get, "get"))
    print(row("etcd x3 | range (linearizable)", e_get, "get"))
    s, e = s_cas["operations"]["cas"], e_cas["operations"]["cas"]
    ratio = s["ops_per_sec"] / e["ops_per_sec"] if e["ops_per_sec"] else float("inf")
    print("\nSERIAL CAS / etcd CAS: %.2fx throughput (goal >= 3x); p99 %.1f ms vs %.1f ms (goal: lower)"
          % (ratio, s["p99_us"] / 1000, e["p99_us"] / 1000))
    sg, eg = s_get["operations"]["get"], e_get["operations"]["get"]
    print("SERIAL GET / etcd range: %.2fx throughput; p99 %.1f ms vs %.1f ms"
          % (sg["ops_per_sec"] / eg["ops_per_sec"] if eg["ops_per_sec"] else float("inf"),
             sg["p99_us"] / 1000, eg["p99_us"] / 1000))
    met = ratio >= 3 and s["p99_us"] < e["p99_us"]
    print("goal (SERIAL CAS >= 3x etcd's, lower p99): %s" % ("met" if met else "NOT met"))


if __name__ == "__main__":
    main()
