#!/usr/bin/env python3
"""compare-cluster.py - a 3-node libkv cluster (N = 3) at ONE, QUORUM and ALL,
side by side in one run with a 3-node etcd cluster and a single Redis.

Usage: tools/kvbench/compare-cluster.py [BUILD_DIR]

Systems, each started fresh on 127.0.0.1 for every workload:
  libkv   three kvd processes (--peers of all three, --sync KVD_SYNC, default
          always: the write-ahead log is fsynced before a write is
          acknowledged, with group commit), driven by kvbench binary: one
          client handle learning the ring, CONNECTIONS threads, reads and
          writes at the consistency level of the row.
  etcd    three etcd members (Debian etcd-server; default durability: every
          raft entry fsynced), driven by kvbench etcd through the v3 JSON
          gateway (POST /v3/kv/put, POST /v3/kv/range, linearizable reads),
          CONNECTIONS threads each with one keep-alive connection, spread
          over the three members.
  redis   one redis-server without persistence (--save '' --appendonly no),
          driven by redis-benchmark -c CONNECTIONS: all SETs then all GETs;
          the mix figure is the weighted harmonic mean of the two rates (see
          compare-redis.sh). Redis is the single-node speed anchor, not a
          replicated system.

Workloads: READ_RATIOS (default "0.9 0.5 0"): 0.9 and 0.5 are the issue's
90/10 and 50/50 mixes; 0 is writes only, for the goal "QUORUM writes at 10x
etcd's put throughput". KEYS keys of 16 bytes are written once (kvbench's
preload), then DURATION seconds are measured. Values are VALUE_SIZE bytes.

Environment: DURATION=10 CONNECTIONS=32 KEYS=10000 VALUE_SIZE=200
READ_RATIOS="0.9 0.5 0" KVD_SYNC=always LEVELS="one quorum all"
REDIS_REQUESTS=200000 TMPDIR=/tmp LOG_DIR= (keeps every tool's output).
DEPTH=D (default 0): drive libkv with kvbench's asynchronous mode instead,
one thread keeping LIBKV_CONNECTIONS (default 4) x D requests in flight.
ETCD_CONNECTIONS="32 128 512" (default: CONNECTIONS): scan etcd at each
number of keep-alive connections in all and report its best row.
REDIS_AOF=no|everysec|always|none (default none: no persistence): Redis's
appendfsync, with --appendonly yes unless none.

Only processes this script started are stopped, by pid; everything listens
on 127.0.0.1 only. Exit status 0 ok, 1 a tool failed, 2 bad setup.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
KVD = os.environ.get("KVD", os.path.join(BUILD, "tools/kvd/kvd"))
KVBENCH = os.environ.get("KVBENCH", os.path.join(BUILD, "tools/kvbench/kvbench"))
DURATION = int(os.environ.get("DURATION", "10"))
CONNECTIONS = int(os.environ.get("CONNECTIONS", "32"))
KEYS = int(os.environ.get("KEYS", "10000"))
VALUE_SIZE = int(os.environ.get("VALUE_SIZE", "200"))
READ_RATIOS = os.environ.get("READ_RATIOS", "0.9 0.5 0").split()
LEVELS = os.environ.get("LEVELS", "one quorum all").split()
KVD_SYNC = os.environ.get("KVD_SYNC", "always")
REDIS_REQUESTS = int(os.environ.get("REDIS_REQUESTS", "200000"))
LOG_DIR = os.environ.get("LOG_DIR", "")
DEPTH = int(os.environ.get("DEPTH", "0"))
LIBKV_CONNECTIONS = int(os.environ.get("LIBKV_CONNECTIONS", "4"))
ETCD_CONNECTIONS = [int(x) for x in os.environ.get("ETCD_CONNECTIONS", str(CONNECTIONS)).split()]
REDIS_AOF = os.environ.get("REDIS_AOF", "none")

started = []  # Popen objects of every process this script started


def die(msg, code=2):
    print("compare-cluster: " + msg, file=sys.stderr)
    sys.exit(code)


def stop(p):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def stop_all():
    for p in started:
        stop(p)
    started.clear()


def on_signal(signum, frame):
    stop_all()
    sys.exit(128 + signum)


used = set()


def ephemeral_low():
    try:
        return int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    # Below the ephemeral range: a port probed free there could be taken by
    # an outgoing connection before the server binds it.
    top = max(ephemeral_low() - 1, 20100)
    for _ in range(200):
        p = random.randint(20000, top)
        if p in used:
            continue
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", p)) != 0:
                used.add(p)
                return p
    die("no free port found", 1)


def spawn(args, log):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    started.append(p)
    return p


def wait_until(check, what, procs, limit_s=30):
    deadline = time.time() + limit_s
    while time.time() < deadline:
        if check():
            return
        for p in procs:
            if p.poll() is not None:
                die(what + ": a process exited at start", 1)
        time.sleep(0.2)
    die(what + " did not start within %d s" % limit_s, 1)


def http_ok(url, data=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=2) as r:
            return r.status == 200
    except Exception:
        return False


def start_libkv(tmp):
    ports = [(free_port(), free_port()) for _ in range(3)]
    peers = ",".join("127.0.0.1:%d" % b for b, _ in ports)
    procs = []
    for i, (b, h) in enumerate(ports):
        procs.append(spawn([KVD, "--data", os.path.join(tmp, "kvd%d" % i), "--node-id", "n%d" % (i + 1),
                            "--listen", "127.0.0.1:%d" % b, "--http", "127.0.0.1:%d" % h,
                            "--peers", peers, "--sync", KVD_SYNC, "--log-level", "warn"],
                           os.path.join(tmp, "kvd%d.log" % i)))

    def ready():
        for _, h in ports:
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/v1/cluster" % h, timeout=2) as r:
                    if not json.load(r).get("complete"):
                        return False
            except Exception:
                return False
        return True
    wait_until(ready, "the kvd cluster", procs)
    return procs, ",".join("127.0.0.1:%d" % b for b, _ in ports)


def start_etcd(tmp):
    ports = [(free_port(), free_port()) for _ in range(3)]
    cluster = ",".join("e%d=http://127.0.0.1:%d" % (i + 1, p) for i, (_, p) in enumerate(ports))
    procs = []
    for i, (c, p) in enumerate(ports):
        procs.append(spawn(["etcd", "--name", "e%d" % (i + 1), "--data-dir", os.path.join(tmp, "etcd%d" % i),
                            "--listen-client-urls", "http://127.0.0.1:%d" % c,
                            "--advertise-client-urls", "http://127.0.0.1:%d" % c,
                            "--listen-peer-urls", "http://127.0.0.1:%d" % p,
                            "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % p,
                            "--initial-cluster", cluster, "--initial-cluster-state", "new",
                            "--log-level", "error"],
                           os.path.join(tmp, "etcd%d.log" % i)))
    wait_until(lambda: all(http_ok("http://127.0.0.1:%d/health" % c) for c, _ in ports),
               "the etcd cluster", procs)
    return procs, ["http://127.0.0.1:%d" % c for c, _ in ports]


def kvbench(args, tmp, tag):
    out = os.path.join(tmp, tag + ".json")
    err = os.path.join(tmp, tag + ".log")
    with open(out, "w") as o, open(err, "w") as e:
        rc = subprocess.call([KVBENCH] + args + ["--json"], stdout=o, stderr=e)
    if LOG_DIR:
        shutil.copy(out, LOG_DIR)
        shutil.copy(err, LOG_DIR)
    if rc != 0:
        sys.stderr.write(open(err).read()[-2000:])
        die("kvbench %s failed" % tag, 1)
    return json.load(open(out))


def common(ratio):
    return ["--threads", str(CONNECTIONS), "--keys", str(KEYS), "--value-size", str(VALUE_SIZE),
            "--read-ratio", ratio, "--duration", str(DURATION)]


def run_libkv(tmp, ratio):
    results = {}
    procs, endpoints = start_libkv(tmp)
    try:
        # The key space, once, at ALL, so every level reads the same data.
        kvbench(["binary", "--endpoints", endpoints, "--connections", "4", "--consistency", "all",
                 "--requests", "1"] + common(ratio), tmp, "libkv-preload-%s" % ratio)
        for level in LEVELS:
            if DEPTH:
                load = ["--threads", "1", "--depth", str(DEPTH), "--connections",
                        str(LIBKV_CONNECTIONS), "--keys", str(KEYS), "--value-size",
                        str(VALUE_SIZE), "--read-ratio", ratio, "--duration", str(DURATION)]
            else:
                load = ["--connections", "4"] + common(ratio)
            pids = ",".join(str(p.pid) for p in procs)
            results[level] = kvbench(["binary", "--endpoints", endpoints, "--server-pids", pids,
                                      "--consistency", level, "--no-preload"] + load,
                                     tmp, "libkv-%s-%s" % (level, ratio))
    finally:
        for p in procs:
            stop(p)
            started.remove(p)
    return results


def run_etcd_best(tmp, ratio):
    """etcd at each of ETCD_CONNECTIONS, fresh each time; its best row."""
    best = None
    for conns in ETCD_CONNECTIONS:
        # A fresh cluster each time: new data directories, new ports.
        sub = os.path.join(tmp, "etcd-at-%d" % conns)
        os.makedirs(sub, exist_ok=True)
        r = run_etcd(sub, ratio, conns)
        r["connections"] = conns
        if len(ETCD_CONNECTIONS) > 1:
            print(fmt_row("etcd x3 at %d connections" % conns, r["total"]))
        if best is None or r["total"]["ops_per_sec"] > best["total"]["ops_per_sec"]:
            best = r
    return best


def run_etcd(tmp, ratio, connections):
    procs, urls = start_etcd(tmp)
    try:
        # One kvbench per member, connections/3 threads each, at once.
        per = max(1, connections // 3)
        base = ["--threads", str(per), "--keys", str(KEYS), "--value-size", str(VALUE_SIZE),
                "--read-ratio", ratio, "--duration", str(DURATION), "--json"]
        kvbench(["etcd", "--url", urls[0], "--requests", "1"] + common(ratio), tmp,
                "etcd-preload-%s" % ratio)
        runs = []
        for i, u in enumerate(urls):
            out = open(os.path.join(tmp, "etcd-%s-%d.json" % (ratio, i)), "w")
            err = open(os.path.join(tmp, "etcd-%s-%d.log" % (ratio, i)), "w")
            runs.append((subprocess.Popen([KVBENCH, "etcd", "--url", u, "--no-preload",
                                           "--seed", str(i + 1)] + base, stdout=out, stderr=err), out.name))
        parts = []
        for p, name in runs:
            if p.wait() != 0:
                die("kvbench etcd failed (%s)" % name.replace(".json", ".log"), 1)
            parts.append(json.load(open(name)))
            if LOG_DIR:
                shutil.copy(name, LOG_DIR)
    finally:
        for p in procs:
            stop(p)
            started.remove(p)
    # Throughputs add up; latencies: the worst member's percentile (an
    # upper bound; the runs' histograms are not merged).
    total = {"ops_per_sec": sum(r["total"]["ops_per_sec"] for r in parts),
             "p50_us": max(r["total"]["p50_us"] for r in parts),
             "p99_us": max(r["total"]["p99_us"] for r in parts),
             "p999_us": max(r["total"]["p999_us"] for r in parts),
             "errors": sum(r["total"]["errors"] for r in parts)}
    ops = {}
    for op in ("get", "put"):
        have = [r["operations"][op] for r in parts if op in r.get("operations", {})]
        if have:
            ops[op] = {"ops_per_sec": sum(x["ops_per_sec"] for x in have),
                       "p50_us": max(x["p50_us"] for x in have),
                       "p99_us": max(x["p99_us"] for x in have),
                       "p999_us": max(x["p999_us"] for x in have)}
    return {"total": total, "operations": ops}


def run_redis(tmp, ratio):
    port = free_port()
    d = os.path.join(tmp, "redis")
    os.makedirs(d, exist_ok=True)
    persistence = (["--appendonly", "no"] if REDIS_AOF == "none"
                   else ["--appendonly", "yes", "--appendfsync", REDIS_AOF])
    p = spawn(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
               "--dir", d, "--logfile", os.path.join(tmp, "redis.log")] + persistence,
              os.path.join(tmp, "redis.err"))

    def pong():
        return subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True,
                              text=True).stdout.strip() == "PONG"
    try:
        wait_until(pong, "redis-server", [p])
        out = subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", str(CONNECTIONS),
                              "-n", str(REDIS_REQUESTS), "-d", str(VALUE_SIZE), "-r", str(KEYS),
                              "-t", "set,get", "--csv"], capture_output=True, text=True)
    finally:
        stop(p)
        started.remove(p)
    rows = {}
    for line in out.stdout.splitlines():
        f = [x.strip('"') for x in line.split(",")]
        if f and f[0] in ("SET", "GET"):
            rows[f[0]] = {"ops_per_sec": float(f[1]), "p50_us": float(f[4]) * 1000,
                          "p99_us": float(f[6]) * 1000}
    if "SET" not in rows or "GET" not in rows:
        die("redis-benchmark gave no SET/GET result: " + out.stderr[-500:], 1)
    r = float(ratio)
    mix = 1 / (r / rows["GET"]["ops_per_sec"] + (1 - r) / rows["SET"]["ops_per_sec"])
    return {"mix": mix, "set": rows["SET"], "get": rows["GET"]}


def fmt_row(name, t):
    return "| %s | %.0f | %.0f | %.0f | %.0f |" % (name, t["ops_per_sec"], t["p50_us"], t["p99_us"],
                                                  t.get("p999_us", float("nan")))


def main():
    for tool, path in (("kvd", KVD), ("kvbench", KVBENCH)):
        if not os.access(path, os.X_OK):
            die("%s not found at %s (build with -DKV_BUILD_TOOLS=ON)" % (tool, path))
    for tool in ("etcd", "redis-server", "redis-benchmark", "redis-cli"):
        if not shutil.which(tool):
            die("%s not found (make bench-deps installs etcd-server, redis-server, redis-tools)" % tool)
    if LOG_DIR:
        os.makedirs(LOG_DIR, exist_ok=True)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    etcd_version = subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    redis_version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.strip()
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    print("machine:  %d cpus, %s; everything on this one machine" % (os.cpu_count(), cpu))
    print("systems:  libkv 3 x kvd (N=3, --sync %s); %s x 3; %s (%s)" %
          (KVD_SYNC, etcd_version, redis_version,
           "no persistence" if REDIS_AOF == "none" else "AOF, appendfsync " + REDIS_AOF))
    if DEPTH:
        print("workload: libkv one thread, %d connections x depth %d; etcd at %s connections; "
              "redis %d; %d keys of 16 bytes, %d-byte values, %d s per row" %
              (LIBKV_CONNECTIONS, DEPTH, "/".join(map(str, ETCD_CONNECTIONS)), CONNECTIONS, KEYS,
               VALUE_SIZE, DURATION))
    else:
        print("workload: %d client threads, %d keys of 16 bytes, %d-byte values, %d s per row" %
              (CONNECTIONS, KEYS, VALUE_SIZE, DURATION))
    try:
        for ratio in READ_RATIOS:
            tmp = tempfile.mkdtemp(prefix="kvcluster.")
            try:
                print("\n### read ratio %s\n" % ratio)
                print("| system | ops/s | p50 us | p99 us | p99.9 us |")
                print("|---|---:|---:|---:|---:|")
                lib = run_libkv(tmp, ratio)
                for level in LEVELS:
                    print(fmt_row("libkv %s" % level.upper(), lib[level]["total"]))
                    cpu = lib[level].get("cpu_us_per_op", {})
                    if "servers" in cpu:
                        print("| &nbsp;&nbsp;CPU per op: 3 kvd %.1f us, kvbench %.1f us | | | | |" %
                              (cpu["servers"], cpu.get("kvbench", 0.0)))
                    for op in ("get", "put"):
                        if op in lib[level].get("operations", {}):
                            print(fmt_row("&nbsp;&nbsp;%s" % op, lib[level]["operations"][op]))
                etcd = run_etcd_best(tmp, ratio)
                print(fmt_row("etcd x3 (best: %d connections)" % etcd["connections"], etcd["total"]))
                for op in ("get", "put"):
                    if op in etcd["operations"]:
                        print(fmt_row("&nbsp;&nbsp;%s" % op, etcd["operations"][op]))
                red = run_redis(tmp, ratio)
                print("| redis x1 (mix) | %.0f | - | - | - |" % red["mix"])
                for op in ("get", "set"):
                    print("| &nbsp;&nbsp;%s | %.0f | %.0f | %.0f | - |" %
                          (op, red[op]["ops_per_sec"], red[op]["p50_us"], red[op]["p99_us"]))
                if "quorum" in lib and "put" in lib["quorum"].get("operations", {}) and "put" in etcd["operations"]:
                    q = lib["quorum"]["operations"]["put"]
                    e = etcd["operations"]["put"]
                    print("\nQUORUM puts / etcd puts: %.2fx throughput; p99 %.0f us vs %.0f us" %
                          (q["ops_per_sec"] / e["ops_per_sec"], q["p99_us"], e["p99_us"]))
                    print("QUORUM puts / one Redis's SET: %.2fx" %
                          (q["ops_per_sec"] / red["set"]["ops_per_sec"]))
                sys.stdout.flush()
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    finally:
        stop_all()


if __name__ == "__main__":
    main()
