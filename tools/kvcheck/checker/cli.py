"""kvcheck check --model register|set|counter FILE
kvcheck run --model counter|register|set --http HOST:PORT[,...] --out FILE ...
kvcheck nemesis --kvd PATH --model register|set|counter --duration S --seed N
                [--topology join|decommission|both] ...

Exit status: 0 no anomaly, 1 an anomaly (or a key too hard to decide:
nothing was proven), 2 bad input or usage.
"""

import argparse
import sys

from . import counter, history, linearizable, register, register_check, setfull

MODELS = {
    "register": (register.check_op_shape, None),
    "set": (setfull.check_op_shape, setfull.check_key),
    "counter": (counter.check_op_shape, counter.check_key),
}


def check_ops(ops, model, max_states):
    """{key: result} of the model's check of each key (raises HistoryError
    when an op does not fit the model)."""
    shape, check_key = MODELS[model]
    for op in ops:
        msg = shape(op)
        if msg:
            raise history.HistoryError(msg)
    results = {}
    for key, key_ops in sorted(history.by_key(ops).items()):
        if model == "register":
            results[key] = register_check.check_key(key_ops, max_states)
        else:
            results[key] = check_key(key_ops)
        results[key]["counts"] = history.counts(key_ops)
    return results


_check = check_ops   # its former name


LIST_OK_KEYS = 20     # with more keys than this, only the keys with anomalies are listed


def print_results(results, out):
    quiet = len(results) > LIST_OK_KEYS
    for key, r in results.items():
        if quiet and r["valid"] is True:
            continue
        verdict = {True: "ok", False: "ANOMALY", None: "UNKNOWN"}[r["valid"]]
        c = r["counts"]
        line = f"key {key}: {verdict}  ({c['ok']} ok, {c['fail']} fail, {c['info']} info"
        if "states" in r:
            line += f"; {r['states']} states searched"
        out.write(line + ")\n")
        if "summary" in r:
            out.write("  " + ", ".join(f"{k} {v}" for k, v in r["summary"].items()))
            if r.get("worst_stale_ns"):
                out.write(f", worst staleness {r['worst_stale_ns'] / 1e6:.3f}ms")
            out.write("\n")
        for a in r["anomalies"]:
            out.write(f"  {a['kind']}: {a['message']}\n")
            for op in a["ops"]:
                out.write(f"    {history.describe(op)}\n")
    if quiet:
        n_ok = sum(r["valid"] is True for r in results.values())
        out.write(f"{n_ok} key(s) without anomaly not listed\n")
        totals = {}
        for r in results.values():
            for k, v in r.get("summary", {}).items():
                if isinstance(v, int) and not isinstance(v, bool):
                    totals[k] = totals.get(k, 0) + v
        if totals:
            out.write("all keys: " + ", ".join(f"{k} {v}" for k, v in totals.items()) + "\n")


def main(argv=None, out=sys.stdout, err=sys.stderr):
    parser = argparse.ArgumentParser(prog="kvcheck", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    chk = sub.add_parser("check", help="check a history file")
    chk.add_argument("--model", choices=sorted(MODELS), default="register")
    chk.add_argument("--max-states", type=int, default=linearizable.DEFAULT_MAX_STATES,
                     help="per key, the search's bound before it answers UNKNOWN")
    chk.add_argument("file")
    run = sub.add_parser("run", help="run a workload against a cluster, then check it")
    run.add_argument("--model", choices=("counter", "register", "set"), default="counter")
    door = run.add_mutually_exclusive_group(required=True)
    door.add_argument("--http", help="the nodes' HTTP API: HOST:PORT[,HOST:PORT...]")
    door.add_argument("--client", help="the nodes' binary protocol, through libkv's client "
                      "handle (the Python binding): HOST:PORT[,HOST:PORT...]")
    run.add_argument("--threads", type=int, default=3)
    run.add_argument("--duration", type=float, default=10.0, help="seconds")
    run.add_argument("--key", help="the key (default: a fresh one per run)")
    run.add_argument("--token-file", help="a file holding the bearer token")
    run.add_argument("--timeout", type=float, default=5.0, help="per request, seconds")
    run.add_argument("--max-retries", type=int, default=50,
                     help="counter: cas attempts per increment before it fails")
    run.add_argument("--max-states", type=int, default=linearizable.DEFAULT_MAX_STATES)
    run.add_argument("--consistency", default="quorum",
                     help="?consistency= of every request (default quorum; the final reads "
                          "are at all)")
    run.add_argument("--out", required=True, help="the history file to write")
    nem = sub.add_parser("nemesis", help="start five kvd, inject faults under a workload, "
                         "then check (root; runs in a network namespace of its own)")
    from . import nemesis_cmd
    nemesis_cmd.add_arguments(nem)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    if args.command == "run":
        return _run(args, out, err)
    if args.command == "nemesis":
        return nemesis_cmd.main(args, list(sys.argv[1:] if argv is None else argv), out, err)
    return _check_file(args.file, args.model, args.max_states, out, err)


def _run(args, out, err):
    from . import runner
    if args.threads < 1 or args.duration <= 0 or args.timeout <= 0 or args.max_retries < 1:
        err.write("kvcheck run: --threads, --duration, --timeout and --max-retries "
                  "must be positive\n")
        return 2
    if not args.consistency.replace("_", "").isalnum():
        err.write(f"kvcheck run: --consistency '{args.consistency}' is not a word\n")
        return 2
    try:
        path, summary = runner.run(args, out)
    except (ValueError, OSError) as e:
        err.write(f"kvcheck run: {e}\n")
        return 2
    out.write(f"kvcheck check --model {args.model} {path}\n")
    out.flush()
    status = _check_file(path, args.model, args.max_states, out, err)
    if status == 0 and (summary["ok"] == 0
                        or (args.model == "counter" and summary["final"] is None)
                        or (args.model == "set" and summary["unread_sets"])):
        out.write("kvcheck run: no operation succeeded or the final read failed: "
                  "nothing proven\n")
        return 1
    return status


def _check_file(path, model, max_states, out, err):
    try:
        ops = history.load(path)
        results = check_ops(ops, model, max_states)
    except history.HistoryError as e:
        err.write(f"kvcheck: {path}: {e}\n")
        return 2
    print_results(results, out)
    c = history.counts(ops)
    bad = [k for k, r in results.items() if r["valid"] is not True]
    out.write(f"{len(results)} key(s), {len(ops)} ops ({c['ok']} ok, {c['fail']} fail, "
              f"{c['info']} info): ")
    out.write(f"{len(bad)} key(s) with anomalies or undecided\n" if bad else "no anomaly\n")
    return 1 if bad else 0
