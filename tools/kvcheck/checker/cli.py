"""kvcheck check --model register|set|counter FILE

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


def _check(ops, model, max_states):
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


def _print(results, out):
    for key, r in results.items():
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


def main(argv=None, out=sys.stdout, err=sys.stderr):
    parser = argparse.ArgumentParser(prog="kvcheck", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    chk = sub.add_parser("check", help="check a history file")
    chk.add_argument("--model", choices=sorted(MODELS), default="register")
    chk.add_argument("--max-states", type=int, default=linearizable.DEFAULT_MAX_STATES,
                     help="per key, the search's bound before it answers UNKNOWN")
    chk.add_argument("file")
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:
        return 2 if e.code else 0
    try:
        ops = history.load(args.file)
        results = _check(ops, args.model, args.max_states)
    except history.HistoryError as e:
        err.write(f"kvcheck: {args.file}: {e}\n")
        return 2
    _print(results, out)
    c = history.counts(ops)
    bad = [k for k, r in results.items() if r["valid"] is not True]
    out.write(f"{len(results)} key(s), {len(ops)} ops ({c['ok']} ok, {c['fail']} fail, "
              f"{c['info']} info): ")
    out.write(f"{len(bad)} key(s) with anomalies or undecided\n" if bad else "no anomaly\n")
    return 1 if bad else 0
