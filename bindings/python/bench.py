#!/usr/bin/env python3
"""The Python binding against Debian's Python anchors, side by side:

  embedded: libkv.open's put/get against plyvel (LevelDB) and lmdb on the
            same keys and values, in the same random order, one thread;
            plus "ctypes floor", the fewest ctypes calls that give what
            plyvel gives (bytes; no version, no Value, no guard) on a libkv
            store, to split the binding's own cost from the library's.
  client:   libkv.connect to a kvd against redis-py to a redis-server, both
            local processes, with the same number of threads (one request in
            flight per thread, no pipelining); libkv once per connect(loop=)
            mode ("libkv thread", "libkv caller"), each a contender.

    python3 bindings/python/bench.py [--num N] [--rounds R] [--only embedded|client]
                                     [--loop thread|caller|both]

Needs python3-plyvel, python3-lmdb, python3-redis, redis-server (run with
/usr/bin/python3, whose site-packages hold them) and, for "client", kvd
(build/tools/kvd/kvd or $KVD). The contenders take turns block by block
(a block: 2000 keys embedded, 1/20 of the requests for the client, the first
contender rotating), so that this machine's drift from one minute to the
next falls on all of them alike. Figures: medians over the rounds, and the
ratio to the anchor taken round by round (median, min-max). CPU is this
process's (user+system) and, for client runs, the server process's, per
operation.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import libkv  # noqa: E402
from libkv import _native  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def timed(fn: Callable[[], None], server_pid: int = 0) -> Tuple[float, float, float]:
    """(wall s, this process's CPU s, the server's CPU s) of fn()."""
    s0 = proc_cpu(server_pid) if server_pid else 0.0
    c0, t0 = time.process_time(), time.perf_counter()
    fn()
    t1, c1 = time.perf_counter(), time.process_time()
    s1 = proc_cpu(server_pid) if server_pid else 0.0
    return t1 - t0, c1 - c0, s1 - s0


# ------------------------------------------------------------------ embedded
def floor_calls(handle: "libkv.Store") -> Tuple[Callable[..., Any], Callable[..., Any],
                                                 Callable[[], None]]:
    """put, get and close with the fewest foreign calls that give what
    plyvel and redis-py give (bytes; no version, no Value, no guard against
    close), on a libkv handle: what any ctypes binding would pay at least."""
    lib, ptr = _native.lib, handle._ptr
    kv_put, kv_get, free = lib.kv_put, lib.kv_get, lib.kv_value_free
    cstr = lib["kv_value_data"]  # bytes up to the NUL that follows the value
    cstr.restype, cstr.argtypes = ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_void_p]
    byref, c_uint64, c_void_p = ctypes.byref, ctypes.c_uint64, ctypes.c_void_p

    def floor_put(k: bytes, v: bytes) -> int:
        ver = c_uint64()
        kv_put(byref(ver), ptr, k, len(k), v, len(v), None)
        return ver.value

    def floor_get(k: bytes) -> Any:
        val = c_void_p()
        if kv_get(byref(val), ptr, k, len(k), None):
            return None
        b = cstr(val, None)
        free(val)
        return b
    return floor_put, floor_get, handle.close


def interleaved(names: List[str], run: Callable[[str, Any], None],
                blocks: List[Any]) -> Dict[str, Tuple[float, float, float]]:
    """Runs run(name, block) for every block and every contender, the
    contenders taking turns block by block (the first one rotating), so that
    the machine's drift falls on all of them alike. Returns each one's summed
    (wall s, CPU s, 0)."""
    totals = {name: [0.0, 0.0, 0.0] for name in names}
    for i, block in enumerate(blocks):
        for name in names[i % len(names):] + names[:i % len(names)]:
            w, c, _ = timed(lambda: run(name, block))
            totals[name][0] += w
            totals[name][1] += c
    return {name: (t[0], t[1], t[2]) for name, t in totals.items()}


def report(results: Dict[Tuple[str, str], List[Tuple[float, float, float]]], names: List[str],
           anchor: str, op: str, n: int, label: str, server: bool) -> None:
    """One line per contender: medians over the rounds, and the throughput
    ratio to the anchor taken round by round (median, min-max)."""
    base = results[(anchor, op)]
    for name in names:
        runs = results[(name, op)]
        wall = statistics.median(w for w, _, _ in runs)
        cpu = statistics.median(c for _, c, _ in runs)
        ratios = sorted(b[0] / r[0] for b, r in zip(base, runs))
        line = (f"{name:14} {label:7} {op:9} {n / wall:9.0f} {wall / n * 1e6:8.2f} "
                f"{cpu / n * 1e6:9.2f}")
        if server:
            line += f" {statistics.median(s for _, _, s in runs) / n * 1e6:9.1f}"
        print(f"{line}  {statistics.median(ratios):5.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})")


def embedded_contenders(d: str, value: bytes) -> Dict[str, Tuple[Any, ...]]:
    """name -> (put(k, v), get(k), close(), put_many(keys) or None), where
    put_many writes the keys in one batch (one atomic write)."""
    import lmdb
    import plyvel

    out: Dict[str, Any] = {}
    db = libkv.open(os.path.join(d, "libkv"), sync="none")  # WAL written, not fsynced
    out["libkv"] = (db.put, db.get, db.close,
                    lambda keys: db.batch([("put", k, value) for k in keys]))

    raw = libkv.open(os.path.join(d, "floor"), sync="none")
    out["ctypes floor"] = floor_calls(raw) + (None,)

    ldb = plyvel.DB(os.path.join(d, "plyvel"), create_if_missing=True)  # sync=False

    def plyvel_many(keys: List[bytes]) -> None:
        with ldb.write_batch() as wb:
            for k in keys:
                wb.put(k, value)
    out["plyvel"] = (ldb.put, ldb.get, ldb.close, plyvel_many)

    env = lmdb.open(os.path.join(d, "lmdb"), map_size=4 << 30, sync=False, metasync=False)

    def lmdb_put(k: bytes, v: bytes) -> None:
        with env.begin(write=True) as txn:
            txn.put(k, v)

    def lmdb_get(k: bytes) -> Any:
        with env.begin(buffers=False) as txn:
            return txn.get(k)

    def lmdb_many(keys: List[bytes]) -> None:
        with env.begin(write=True) as txn:
            for k in keys:
                txn.put(k, value)
    out["lmdb"] = (lmdb_put, lmdb_get, env.close, lmdb_many)
    return out


def bench_embedded(args: argparse.Namespace) -> None:
    rnd = random.Random(1)
    keys = [b"%0*d" % (args.key_size, i) for i in range(args.num)]
    value = bytes(rnd.getrandbits(8) for _ in range(args.value_size))
    put_order = keys[:]
    rnd.shuffle(put_order)
    get_order = keys[:]
    rnd.shuffle(get_order)
    results: Dict[Tuple[str, str], List[Tuple[float, float, float]]] = {}
    names = ["libkv", "ctypes floor", "plyvel", "lmdb"]
    for r in range(args.rounds):
        d = tempfile.mkdtemp(prefix="libkv-bench-")
        try:
            cont = embedded_contenders(d, value)

            def puts(name: str, block: List[bytes]) -> None:
                put = cont[name][0]
                for k in block:
                    put(k, value)

            def gets(name: str, block: List[bytes]) -> None:
                get = cont[name][1]
                for k in block:
                    get(k)

            def batches(name: str, block: List[bytes]) -> None:
                many = cont[name][3]
                for i in range(0, len(block), args.batch):
                    many(block[i:i + args.batch])
            for op, fn, who, order in (("put", puts, names, put_order),
                                       ("get", gets, names, get_order),
                                       ("batch put", batches, ["libkv", "plyvel", "lmdb"],
                                        put_order)):
                blocks = [order[i:i + args.block] for i in range(0, len(order), args.block)]
                for name, total in interleaved(who, fn, blocks).items():
                    results.setdefault((name, op), []).append(total)
            got = cont["libkv"][1](keys[7])
            assert got == value, "libkv read back something else"
            for name in names:
                cont[name][2]()
        finally:
            shutil.rmtree(d, True)
    print(f"\nembedded: {args.num} keys of {args.key_size} B, values of {args.value_size} B, "
          f"1 thread, {args.rounds} rounds of blocks of {args.block} keys, the contenders taking "
          "turns block by block; medians, ratio vs plyvel per round")
    print(f"{'':14} {'':7} {'op':9} {'ops/s':>9} {'us/op':>8} {'CPU us':>9}  vs plyvel")
    for op in ("put", "get"):
        report(results, names, "plyvel", op, args.num, "", False)
    print(f"batch put: the same keys again, {args.batch} per batch (libkv batch, plyvel "
          "write_batch, one lmdb transaction); per key")
    report(results, ["libkv", "plyvel", "lmdb"], "plyvel", "batch put", args.num, "", False)


# -------------------------------------------------------------------- client
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} did not listen on {port} within 30 s")


def lockstep(threads: int, names: List[str], ops: Dict[str, Callable[[bytes], Any]],
             pids: Dict[str, int], keys: List[bytes], requests: int,
             nblocks: int) -> Dict[str, Tuple[float, float, float]]:
    """`threads` threads do `requests` calls in all, in nblocks blocks per
    contender; the contenders take turns block by block (all threads on one
    contender at a time, a barrier between turns). Returns each contender's
    summed (wall s, this process's CPU s, its server's CPU s)."""
    per = requests // threads // nblocks
    schedule = [name for b in range(nblocks)
                for name in names[b % len(names):] + names[:b % len(names)]]
    barrier = threading.Barrier(threads + 1)

    def worker(t: int) -> None:
        rnd = random.Random(t)
        for name in schedule:
            mine = [keys[rnd.randrange(len(keys))] for _ in range(per)]
            op = ops[name]
            barrier.wait()
            for k in mine:
                op(k)
        barrier.wait()
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    marks = []
    for _ in range(len(schedule) + 1):
        barrier.wait()
        marks.append((time.perf_counter(), time.process_time(),
                      {name: proc_cpu(pid) for name, pid in pids.items()}))
    for t in ts:
        t.join()
    totals = {name: [0.0, 0.0, 0.0] for name in names}
    for i, name in enumerate(schedule):
        (w0, c0, s0), (w1, c1, s1) = marks[i], marks[i + 1]
        totals[name][0] += w1 - w0
        totals[name][1] += c1 - c0
        totals[name][2] += s1[name] - s0[name]
    return {name: (t[0], t[1], t[2]) for name, t in totals.items()}


def libkv_name(loop: str) -> str:
    return f"libkv {loop}"


def bench_client(args: argparse.Namespace) -> None:
    import redis

    kvd = os.environ.get("KVD") or os.path.join(REPO, "build", "tools", "kvd", "kvd")
    if not os.path.exists(kvd):
        raise SystemExit(f"no kvd at {kvd}: build the tools or set KVD")
    keys = [b"%0*d" % (args.key_size, i) for i in range(args.num)]
    value = os.urandom(args.value_size)
    results: Dict[Tuple[str, str, str], List[Tuple[float, float, float]]] = {}
    for r in range(args.rounds):
        d = tempfile.mkdtemp(prefix="libkv-bench-")
        procs: List[subprocess.Popen] = []
        try:
            kp, rp = free_port(), free_port()
            kproc = subprocess.Popen([kvd, "--data", os.path.join(d, "kvd"), "--listen",
                                      f"127.0.0.1:{kp}", "--node-id", "bench", "--sync",
                                      "none", "--log-level", "warn"],
                                     stderr=subprocess.DEVNULL)
            procs.append(kproc)
            rproc = subprocess.Popen(["redis-server", "--port", str(rp), "--bind", "127.0.0.1",
                                      "--save", "", "--appendonly", "no", "--dir", d],
                                     stdout=subprocess.DEVNULL)
            procs.append(rproc)
            wait_port(kp, kproc, "kvd")
            wait_port(rp, rproc, "redis-server")
            # Preload every key on both, so that every get finds its value.
            with libkv.connect(f"127.0.0.1:{kp}") as client:
                for i in range(0, len(keys), 1000):
                    client.batch([("put", k, value) for k in keys[i:i + 1000]])
            with redis.Redis(host="127.0.0.1", port=rp) as rc:
                for i in range(0, len(keys), 1000):
                    rc.mset({k: value for k in keys[i:i + 1000]})
            for threads in args.threads:
                # One libkv client per loop mode asked for (connect(loop=)),
                # each a contender; the ctypes floor runs on the first.
                clients = {libkv_name(m): libkv.connect(f"127.0.0.1:{kp}",
                                                        connections_per_node=1, loop=m)
                           for m in args.loops}
                pool = redis.ConnectionPool(host="127.0.0.1", port=rp,
                                            max_connections=threads)
                rc = redis.Redis(connection_pool=pool)
                fput, fget, _ = floor_calls(next(iter(clients.values())))
                names = list(clients) + ["ctypes floor", "redis-py"]
                pids = {name: kproc.pid for name in names}
                pids["redis-py"] = rproc.pid
                puts: Dict[str, Callable[[bytes], Any]] = {
                    name: (lambda c: lambda k: c.put(k, value))(c)
                    for name, c in clients.items()}
                puts.update({"ctypes floor": lambda k: fput(k, value),
                             "redis-py": lambda k: rc.set(k, value)})
                gets: Dict[str, Callable[[bytes], Any]] = {
                    name: c.get for name, c in clients.items()}
                gets.update({"ctypes floor": fget, "redis-py": rc.get})
                for op, fns in (("put", puts), ("get", gets)):
                    got = lockstep(threads, names, fns, pids, keys, args.requests, 20)
                    for name, total in got.items():
                        results.setdefault((name, f"{threads}", op), []).append(total)
                for c in clients.values():
                    assert c.get(keys[0]) == value
                    c.close()
                assert rc.get(keys[0]) == value
                pool.disconnect()
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
            shutil.rmtree(d, True)
    print(f"\nclient: {args.requests} requests per run over {args.num} keys of {args.key_size} B, "
          f"values of {args.value_size} B, {args.rounds} rounds of 20 blocks, the contenders "
          "taking turns block by block; kvd --sync none, redis-server without persistence; "
          "medians, ratio vs redis-py per round")
    print(f"{'':14} {'threads':7} {'op':9} {'ops/s':>9} {'us/op':>8} {'CPU us':>9} "
          f"{'srv CPU':>9}  vs redis-py")
    names = [libkv_name(m) for m in args.loops] + ["ctypes floor", "redis-py"]
    for threads in args.threads:
        for op in ("put", "get"):
            flat = {(name, op): results[(name, f"{threads}", op)] for name in names}
            report(flat, names, "redis-py", op, args.requests, f"{threads}", True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--num", type=int, default=100000, help="keys (default 100000)")
    ap.add_argument("--key-size", type=int, default=16)
    ap.add_argument("--value-size", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=100, help="embedded: keys per batch put")
    ap.add_argument("--block", type=int, default=2000,
                    help="embedded: keys per turn of a contender (default 2000)")
    ap.add_argument("--requests", type=int, default=40000,
                    help="client: requests per measured run (default 40000)")
    ap.add_argument("--threads", default="1,8",
                    help="client: thread counts, comma-separated (default 1,8)")
    ap.add_argument("--only", choices=("embedded", "client"))
    ap.add_argument("--loop", default="both", choices=("both",) + tuple(libkv.LOOPS),
                    help="client: libkv's connect(loop=...), or both as two contenders "
                         "taking turns (default both)")
    args = ap.parse_args()
    args.loops = list(libkv.LOOPS) if args.loop == "both" else [args.loop]
    args.threads = [int(t) for t in args.threads.split(",")]
    print(f"python {sys.version.split()[0]} ({sys.executable}), libkv {libkv.library_version()} "
          f"({libkv.library_path()})")
    if args.only != "client":
        bench_embedded(args)
    if args.only != "embedded":
        bench_client(args)


if __name__ == "__main__":
    main()
