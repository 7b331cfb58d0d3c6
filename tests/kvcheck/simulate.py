"""Histories from a simulated real register, so they are linearizable by
construction: every op takes effect at one random instant inside its
[call, return] interval, in the order of those instants. And injections of
one anomaly each, chosen so that no linearization can exist."""

import json
import random

from support import history

FUNCTIONS = ("read",) * 4 + ("write",) * 3 + ("cas",) * 2 + ("delete",)


def simulate(seed, key="x", processes=4, n_ops=40, info_rate=0.05, deletes=True,
             first_process=0):
    rng = random.Random(seed)
    ops = []
    clock = {p: rng.randint(0, 20_000) for p in range(processes)}
    for i in range(n_ops):
        p = i % processes
        call = clock[p]
        ret = call + rng.randint(2_000, 30_000)
        clock[p] = ret + rng.randint(1, 10_000)
        f = rng.choice(FUNCTIONS if deletes else [x for x in FUNCTIONS if x != "delete"])
        ops.append({"process": first_process + p, "f": f, "key": key,
                    "value": f"{key}-{i}" if f in ("write", "cas") else None,
                    "call": call, "ret": ret, "at": rng.uniform(call + 1, ret - 1)})
    version, value, live = 0, None, False
    for op in sorted(ops, key=lambda o: o["at"]):
        visible = version if live else 0
        f = op["f"]
        unknown = f != "read" and rng.random() < info_rate
        applied = not unknown or rng.random() < 0.5
        op["type"], op["out_value"], op["out_version"] = ("info" if unknown else "ok"), None, None
        if f == "read":
            if live:
                op["out_value"], op["out_version"] = value, version
        elif f == "write":
            if applied:
                version, value, live = version + 1, op["value"], True
                op["out_version"] = version
        elif f == "delete":
            if applied and live:
                version, value, live = version + 1, None, False
                op["out_version"] = version
        elif f == "cas":
            op["expected"] = visible if rng.random() < 0.6 else rng.randint(0, version + 1)
            if op["expected"] != visible:
                if not unknown:
                    op["type"], op["out_version"] = "fail", visible
            elif applied:
                version, value, live = version + 1, op["value"], True
                op["out_version"] = version
    return ops


def to_lines(ops):
    lines = []
    for op in ops:
        lines.append((op["call"], json.dumps({
            "process": op["process"], "type": "invoke", "f": op["f"], "key": op["key"],
            "value": op["value"], "expected": op.get("expected"), "time": op["call"]})))
        done = {"process": op["process"], "type": op["type"], "time": op["ret"]}
        if op["type"] != "info":
            done.update(value=op["out_value"], version=op["out_version"])
        lines.append((op["ret"], json.dumps(done)))
    return [text for _, text in sorted(lines, key=lambda x: x[0])]


def to_ops(ops):
    return history.pair_events(history.parse_events(to_lines(ops)))


def _acked(ops, fs):
    return [o for o in ops if o["f"] in fs and o["type"] == "ok" and o["out_version"]]


def inject(ops, rng):
    """Break the history in one way that leaves no linearization. Returns the
    name of the injection, or None when this history offers no candidate."""
    writes = _acked(ops, ("write", "cas"))
    reads = [o for o in ops if o["f"] == "read" and o["type"] == "ok"]
    choices = []
    # A read that misses a write completed before it began, after another.
    stale = [(r, w1) for r in reads for w1 in writes for w2 in writes
             if w1["ret"] < w2["call"] and w2["ret"] < r["call"]]
    if stale:
        choices.append("stale-read")
    # Not found after a completed write, in a history without deletes.
    lost = [r for r in reads if r["out_version"] and not any(o["f"] == "delete" for o in ops)
            and any(w["ret"] < r["call"] for w in writes)]
    if lost:
        choices.append("not-found-after-write")
    # A cas acknowledged against a version the key never had just then.
    cas = [c for c in writes if c["f"] == "cas" and c["expected"] > 0]
    if cas:
        choices.append("cas-from-wrong-version")
    if len(writes) >= 2:
        choices.append("duplicate-version")
    if not choices:
        return None
    kind = rng.choice(choices)
    if kind == "stale-read":
        r, w1 = rng.choice(stale)
        r["out_value"], r["out_version"] = w1["value"], w1["out_version"]
    elif kind == "not-found-after-write":
        r = rng.choice(lost)
        r["out_value"], r["out_version"] = None, None
    elif kind == "cas-from-wrong-version":
        c = rng.choice(cas)
        c["expected"] = c["out_version"] + 7
    else:
        a, b = rng.sample(writes, 2)
        b["out_version"] = a["out_version"]
    return kind
