"""kvcheck nemesis: start five kvd, run a workload against them while the
nemesis injects faults from a seeded schedule (and, with --topology, a
node joins and/or one leaves), heal everything, do the final reads, check
the history and print the report.

The main thread starts and stops the nodes and runs the nemesis (so it is
the one that receives signals and spawns every kvd); the workload runs in
threads of its own. Exit status: 0 no anomaly; 1 an anomaly, a kvd that
exited by itself, a cluster that did not recover, or nothing proven; 2
usage or environment (not root, nft missing); 3 the run could not be done
(the cluster did not start, interrupted). A topology change that did not
end in time: verdict UNKNOWN, exit 1.
"""

import io
import os
import random
import shlex
import shutil
import signal
import tempfile
import threading
import time
from collections import Counter

from . import cluster as cluster_mod
from . import history, nemesis, report, runner
from .nemesis import node_name

KVCHECK = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "kvcheck")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
MAX_KEYS_SHOWN = 5      # keys with anomalies printed (each anomaly with its witness)
MAX_ANOMALIES_SHOWN = 5  # anomalies printed per key; the rest are counted by kind


def add_arguments(p):
    p.add_argument("--kvd", required=True, help="the kvd binary")
    p.add_argument("--model", choices=runner.MODELS, default="set")
    p.add_argument("--duration", type=float, default=60.0,
                   help="seconds of faults (at least one of each kind is injected)")
    p.add_argument("--seed", type=int, help="the schedule's seed (default: a random one, "
                   "printed)")
    p.add_argument("--consistency", default="quorum",
                   help="?consistency= of every workload request (default quorum)")
    p.add_argument("--faults", default=",".join(nemesis.KINDS),
                   help="comma-separated kinds (default: all): " + ", ".join(nemesis.KINDS)
                   + "; or none")
    p.add_argument("--topology", choices=nemesis.TOPOLOGIES,
                   help="topology changes during the workload (default: none): join (n5 "
                   "starts later with --seeds and joins at about a third of the run), "
                   "decommission (a node leaves at about two thirds), both")
    p.add_argument("--kvctl", help="the kvctl binary, for a decommission (default: "
                   "DIR/kvctl/kvctl where --kvd is DIR/kvd/kvd)")
    p.add_argument("--topology-timeout", type=float, default=120.0,
                   help="seconds a topology change may take to end (default 120)")
    p.add_argument("--hold", type=float, default=10.0, help="seconds each fault holds")
    p.add_argument("--gap", type=float, default=5.0, help="quiet seconds between faults")
    p.add_argument("--threads", type=int, help="workload threads (default 10; register 5)")
    p.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    p.add_argument("--max-retries", type=int, default=50,
                   help="counter: cas attempts per increment before it fails")
    p.add_argument("--recover-timeout", type=float, default=120.0,
                   help="seconds to wait for the cluster to be ready: at the start, and "
                        "after healing (every member up, no hint pending)")
    p.add_argument("--kvd-args", default="", help="more arguments for every kvd (one string)")
    p.add_argument("--out", help="a directory for the history, the kvd logs and the report "
                   "(default: the temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory "
                   "(the nodes' data)")


def default_kvctl(kvd):
    """kvctl beside kvd in a build tree: .../tools/kvd/kvd -> .../tools/kvctl/kvctl;
    else kvctl in kvd's directory (an install)."""
    d = os.path.dirname(os.path.abspath(kvd))
    if os.path.basename(d) == "kvd":
        return os.path.join(os.path.dirname(d), "kvctl", "kvctl")
    return os.path.join(d, "kvctl")


def _validate(args):
    kinds = [k.strip() for k in args.faults.split(",") if k.strip()]
    if kinds == ["none"]:
        kinds = []
    elif not kinds:
        return "--faults names no fault kind (say none for no fault)"
    bad = [k for k in kinds if k not in nemesis.KINDS]
    if bad:
        return f"unknown fault kind(s) {', '.join(bad)} (known: {', '.join(nemesis.KINDS)})"
    args.fault_kinds = kinds
    if not (args.duration > 0 and args.hold > 0 and args.gap >= 0 and args.timeout > 0
            and args.max_retries >= 1 and args.recover_timeout > 0
            and args.topology_timeout > 0):
        return "--duration, --hold, --timeout, --max-retries, --recover-timeout, " \
               "--topology-timeout must be positive and --gap not negative"
    if args.threads is None:
        args.threads = 5 if args.model == "register" else 10
    if args.threads < 1:
        return "--threads must be positive"
    if not args.consistency.replace("_", "").isalnum():
        return f"--consistency '{args.consistency}' is not a word"
    if not (os.path.isfile(args.kvd) and os.access(args.kvd, os.X_OK)):
        return f"--kvd {args.kvd}: not an executable file"
    try:
        args.kvd_argv = shlex.split(args.kvd_args)
    except ValueError as e:
        return f"--kvd-args: {e}"
    if args.topology in ("decommission", "both"):
        args.kvctl = args.kvctl or default_kvctl(args.kvd)
        if not (os.path.isfile(args.kvctl) and os.access(args.kvctl, os.X_OK)):
            return f"--kvctl {args.kvctl}: not an executable file (a decommission runs it)"
    return None


def main(args, argv, out, err):
    """argv: the command's arguments, to re-execute it in a namespace."""
    msg = _validate(args)
    if msg:
        err.write(f"kvcheck nemesis: {msg}\n")
        return 2
    msg = cluster_mod.isolate([KVCHECK, *argv])
    if msg:
        err.write(f"kvcheck nemesis: {msg}\n")
        return 2
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 32)
    faults = (nemesis.schedule(args.seed, args.duration, args.hold, args.gap,
                               args.fault_kinds) if args.fault_kinds else [])
    plan, waits = nemesis.timeline(faults, args.seed, args.topology, args.duration, args.gap)
    joiner, leaver, initial = nemesis.roles(args.seed, args.topology)
    clients = [i for i in range(cluster_mod.NODES) if i not in (joiner, leaver)]
    out.write(f"kvcheck nemesis: seed {args.seed}, model {args.model}, consistency "
              f"{args.consistency}, faults {','.join(args.fault_kinds) or 'none'}, hold "
              f"{args.hold:g}s, gap {args.gap:g}s, topology {args.topology or 'none'}\n")
    if args.topology:
        what = []
        if joiner is not None:
            what.append(f"{node_name(joiner)} starts later (--seeds {node_name(0)}) and joins")
        if leaver is not None:
            what.append(f"{node_name(leaver)} leaves (kvctl decommission)")
        out.write(f"  topology: {'; '.join(what)}; the workload talks to "
                  f"{','.join(node_name(i) for i in clients)} only; each change runs with no "
                  f"fault held and is bounded by {args.topology_timeout:g}s\n")
    at, changes = waits[0], 0
    for i, f in enumerate(plan, start=1):
        change = isinstance(f, nemesis.Change)
        later = f" + the time of the {changes} change(s) before" if changes else ""
        out.write(f"  plan {i}: {f.kind} {f.describe()} ("
                  f"{'topology change' if change else 'fault'}, at about {at:.0f}s{later})\n")
        at += waits[i] + (0 if change else args.hold)
        changes += change
    out.flush()

    work = tempfile.mkdtemp(prefix="kvcheck-nemesis-")
    outdir = args.out or work
    os.makedirs(outdir, exist_ok=True)

    def log(line):
        out.write(f"[{time.monotonic() - t0:7.1f}s] {line}\n")
        out.flush()

    t0 = time.monotonic()
    cl = cluster_mod.Cluster(args.kvd, os.path.join(work, "data"), outdir, args.kvd_argv, log,
                             initial=initial, kvctl=args.kvctl)
    interrupted = []

    def on_signal(signum, frame):
        if not interrupted:
            interrupted.append(signum)
            raise nemesis.Interrupted(signal.Signals(signum).name)

    previous = {s: signal.signal(s, on_signal) for s in SIGNALS}
    status = 3
    try:
        status = _run(args, plan, waits, clients, cl, outdir, log, out)
    except nemesis.Interrupted as e:
        out.write(f"kvcheck nemesis: interrupted by {e}: cleaning up\n")
    except cluster_mod.ClusterError as e:
        out.write(f"kvcheck nemesis: the cluster failed: {e}\n")
    finally:
        for s in SIGNALS:                   # a second signal must not cut the cleanup short
            signal.signal(s, signal.SIG_IGN)
        try:
            if status == 3 or cl.crashes:    # an anomaly's evidence is the history
                out.write(cl.log_tails() + "\n")
            cl.stop()
        finally:
            if args.keep:
                out.write(f"kvcheck nemesis: kept {work}\n")
            else:
                shutil.rmtree(work, ignore_errors=True)
            for s, h in previous.items():
                signal.signal(s, h)
    out.write(f"kvcheck nemesis: history and logs in {outdir}\n" if args.out or args.keep
              else "kvcheck nemesis: history and logs deleted (keep them with --out DIR)\n")
    return status


def _run(args, plan, waits, clients, cl, outdir, log, out):
    """The run proper; returns the exit status. Raises ClusterError when
    the cluster does not start. `clients`: the nodes the workload talks to
    (every node but one that joins or leaves)."""
    started = [node_name(i) for i in cl.initial]
    log(f"starting {len(started)} kvd ({','.join(started)}; {args.kvd})")
    cl.start(args.recover_timeout)
    log("cluster complete, every member up")
    path = os.path.join(outdir, "history.jsonl")
    names = [node_name(i) for i in clients]
    w = runner.Workload(args.model, [cl.http(i) for i in clients], path,
                        args.threads, args.timeout, None, args.consistency, args.max_retries,
                        names=names)
    # The threads stop when told; the deadline is only a bound in case they
    # are not (the schedule's length, plus a margin: a change may take
    # twice its timeout, the wait for every member up before it and itself).
    n_changes = sum(isinstance(f, nemesis.Change) for f in plan)
    bound = (sum(waits) + (len(plan) - n_changes) * args.hold
             + n_changes * (2 * args.topology_timeout + 2 * cluster_mod.KVCTL_TIMEOUT_S
                            + cluster_mod.STOP_TIMEOUT_S)
             + 120 + 10 * args.timeout)
    start = time.monotonic()
    recovered = None
    try:
        w.start(bound)
        stop = threading.Event()
        done = nemesis.run(plan, cl, args.hold, args.gap, w.rec.nemesis, stop, log,
                           waits=waits, change_timeout=args.topology_timeout)
        alive = w.finish(4 * args.timeout)
        elapsed = time.monotonic() - start
        cl.heal_all()
        log("workload stopped, everything healed; waiting for every member up and no hint")
        try:
            cl.wait_ready(args.recover_timeout, hints=True)
            log("recovered")
        except cluster_mod.ClusterError as e:
            recovered = str(e)
            log(f"not recovered: {e}")
        final = w.final()
        log("final reads done")
    finally:
        w.finish(4 * args.timeout)
        w.close()
    buf = io.StringIO()
    status = _report(args, path, final, done, alive, elapsed, recovered, cl.crashes, buf,
                     names)
    text = buf.getvalue()
    out.write(text)
    with open(os.path.join(outdir, "report.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    return status


def _report(args, path, final, done, alive, elapsed, recovered, crashes, out, names=None):
    from . import cli
    names = names or [node_name(i) for i in range(cluster_mod.NODES)]
    events = history.load_events(path)
    ops = history.pair_events(events)
    windows = report.fault_windows(history.nemesis_events(events))
    results = cli.check_ops(ops, args.model, cli.linearizable.DEFAULT_MAX_STATES)
    c = history.counts(ops)
    t0 = min((op.call for op in ops), default=0)
    on = f"{len(names)} nodes" + (f" ({','.join(names)})" if len(names) < cluster_mod.NODES
                                  else "")
    topology = getattr(args, "topology", None)
    out.write(f"kvcheck nemesis: seed {args.seed}, model {args.model}, consistency "
              f"{args.consistency}, {args.threads} thread(s) on {on}, "
              f"{elapsed:.1f}s of workload\n")
    out.write(f"  reproduce: kvcheck nemesis --kvd {args.kvd} --model {args.model} --seed "
              f"{args.seed} --duration {args.duration:g} --hold {args.hold:g} --gap "
              f"{args.gap:g} --faults {','.join(args.fault_kinds) or 'none'} --consistency "
              f"{args.consistency}" + (f" --topology {topology}" if topology else "") + "\n")
    out.write(f"  operations: {c['ok']} ok, {c['fail']} fail, {c['info']} info\n")
    lat = report.latencies_ms(ops)
    if lat:
        out.write(f"  latency of ok ops: p50 {report.percentile(lat, 0.5):.1f}ms, p99 "
                  f"{report.percentile(lat, 0.99):.1f}ms, max {max(lat):.1f}ms\n")
    faults = [f for _, f in done if not isinstance(f, nemesis.Change)]
    injected = sorted({f.kind for f in faults})
    out.write(f"  faults injected: {len(faults)} ({', '.join(injected) or 'none'})\n")
    if topology:
        changes = [w for w in windows if w["fault"] in nemesis.CHANGES]
        out.write(f"  topology changes: {len(changes)} asked, "
                  f"{sum(bool(w.get('ended')) for w in changes)} ended\n")
    report.write_faults(out, ops, windows, t0)
    problems = []
    unfinished = report.unfinished_changes(windows)
    if not any(op.outcome == "ok" and op.f != "read" for op in ops):
        problems.append("no write was acknowledged: nothing proven")
    if recovered:
        problems.append(f"the cluster did not recover after healing: {recovered}")
    for i, code in crashes:
        problems.append(f"{node_name(i)} exited by itself with status {code}")
    if alive:
        problems.append(f"{len(alive)} workload thread(s) still running at the end")
    _model_summary(args.model, results, final, problems, out)
    bad = {k: r for k, r in results.items() if r["valid"] is not True}
    if bad:
        more = f" (the first {MAX_KEYS_SHOWN} shown)" if len(bad) > MAX_KEYS_SHOWN else ""
        out.write(f"  anomalies in {len(bad)} key(s){more}:\n")
        for key, r in list(bad.items())[:MAX_KEYS_SHOWN]:
            sub = io.StringIO()
            cli.print_results({key: dict(r, anomalies=r["anomalies"][:MAX_ANOMALIES_SHOWN])},
                              sub)
            kinds = Counter(a["kind"] for a in r["anomalies"])
            if len(r["anomalies"]) > MAX_ANOMALIES_SHOWN:
                sub.write(f"  ... {len(r['anomalies'])} anomalies in all: " + ", ".join(
                    f"{k} {n}" for k, n in kinds.most_common()) + "\n")
            out.write("".join("    " + line + "\n" for line in sub.getvalue().splitlines()))
    for p in problems:
        out.write(f"  problem: {p}\n")
    for msg in unfinished:
        out.write(f"  problem: {msg}\n")
    if bad:
        verdict = f"{len(bad)} key(s) with anomalies, {len(problems) + len(unfinished)} " \
                  f"problem(s)"
    elif unfinished:
        # Nothing is proven of a change that did not end: its node may
        # still be joining or leaving.
        verdict = f"UNKNOWN: {len(unfinished)} topology change(s) did not end" + \
            (f", {len(problems)} other problem(s)" if problems else "")
    elif problems:
        verdict = f"0 key(s) with anomalies, {len(problems)} problem(s)"
    else:
        verdict = "no anomaly"
    out.write(f"kvcheck nemesis: {verdict}\n")
    return 0 if not bad and not problems and not unfinished else 1


def _model_summary(model, results, final, problems, out):
    if model == "set":
        total = {}
        worst = 0
        for r in results.values():
            for k, v in r["summary"].items():
                total[k] = total.get(k, 0) + v
            worst = max(worst, r.get("worst_stale_ns", 0))
        out.write(f"  final reads (consistency=all): {len(results)} set(s), "
                  f"{len(final or [])} not read\n")
        if final:
            problems.append(f"the final read of {len(final)} set(s) never succeeded: "
                            f"their elements are not proven")
        out.write(f"  set: lost acknowledged writes: {total.get('lost', 0)}; stale reads: "
                  f"{total.get('stale-reads', 0)} (of {total.get('stale', 0)} element(s)), "
                  f"worst staleness {worst / 1e6:.1f}ms; unexpected: "
                  f"{total.get('unexpected', 0)}; stable: {total.get('stable', 0)}; "
                  f"first seen by the final read (adds of unknown outcome that took "
                  f"effect): {total.get('never-read', 0)}\n")
    elif model == "counter":
        s = next(iter(results.values()))["summary"] if results else {}
        if final is None:
            problems.append("the final read at consistency=all failed: nothing proven")
        ack = s.get("acknowledged", 0)
        lost = max(0, ack - final) if final is not None else "?"
        out.write(f"  counter: acknowledged {ack}, unknown {s.get('unknown', 0)}, final "
                  f"(consistency=all) {final}; lost acknowledged writes: {lost}; stale reads: "
                  f"n/a\n")
    else:
        out.write("  register: lost acknowledged writes and stale reads: see anomalies "
                  "(linearizability)\n")
