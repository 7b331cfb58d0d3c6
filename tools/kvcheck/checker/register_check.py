"""The register check of one key: the version pre-check, then the
linearizability search, then (on failure) a small witness."""

from dataclasses import replace

from . import linearizable, register, versions


def _truncate(ops, cutoff):
    """The history as it stood at time `cutoff`: ops invoked by then, those
    still open turned into info (their outcome was not known yet). Reads
    that were open observed nothing yet and are dropped."""
    out = []
    for op in ops:
        if op.call > cutoff:
            continue
        if op.ret is not None and op.ret <= cutoff:
            out.append(op)
        elif op.f in register.WRITES:
            out.append(replace(op, outcome="info", ret=None, out_value=None,
                               out_version=None))
    return out


def _witness(ops, max_states):
    """The smallest prefix of the history (cut at a return) that is already
    not linearizable, found by bisection (a prefix of a linearizable history
    is linearizable), and the ops around the return that breaks it: the ops
    concurrent with it and the two that completed just before it began."""
    cutoffs = sorted({op.ret for op in ops if op.ret is not None})
    lo, hi = 0, len(cutoffs) - 1           # cutoffs[hi] is known to fail
    failing = None
    while lo <= hi:
        mid = (lo + hi) // 2
        res = linearizable.check(_truncate(ops, cutoffs[mid]), register.INITIAL,
                                 register.step, max_states)
        if res.linearizable is False:
            failing, hi = (mid, res), mid - 1
        else:
            lo = mid + 1
    if failing is None:
        return None
    mid, res = failing
    cutoff = cutoffs[mid]
    culprits = [op for op in ops if op.ret == cutoff]
    first = min(c.call for c in culprits)
    concurrent = [op for op in ops if op not in culprits and op.call <= cutoff
                  and (op.ret is None or op.ret > first)]
    before = sorted((op for op in ops if op.ret is not None and op.ret <= first
                     and op not in culprits), key=lambda o: o.ret)[-2:]
    window = {op.index: op for op in before + concurrent + culprits}
    return {
        "culprits": culprits,
        "window": sorted(window.values(), key=lambda o: o.call),
        "prefix_ops": sum(1 for op in ops if op.call <= cutoff),
        "state": res.best_state,
    }


def check_key(ops, max_states=linearizable.DEFAULT_MAX_STATES):
    """ops: one key's ops (all of them). Returns a dict:
    {"valid": True|False|None, "anomalies": [...], "states": int}."""
    ops = [op for op in ops if register.relevant(op)]
    anomalies = versions.check(ops)
    if anomalies:
        return {"valid": False, "anomalies": anomalies, "states": 0}
    res = linearizable.check(ops, register.INITIAL, register.step, max_states)
    if res.linearizable is None:
        return {"valid": None, "states": res.states, "anomalies": [{
            "kind": "too-hard",
            "message": f"gave up after {res.states} states (--max-states); "
                       f"not proven either way",
            "ops": []}]}
    if res.linearizable:
        return {"valid": True, "anomalies": [], "states": res.states}
    w = _witness(ops, max_states)
    if w is None:
        # Only when a prefix search gave up: report without a window.
        return {"valid": False, "states": res.states, "anomalies": [{
            "kind": "not-linearizable", "message": "no linearization exists "
            "(the witness search gave up)", "ops": []}]}
    names = " and ".join(f"line {c.ret_line}" for c in w["culprits"])
    return {"valid": False, "states": res.states, "anomalies": [{
        "kind": "not-linearizable",
        "message": f"no linearization of the first {w['prefix_ops']} ops survives the "
                   f"completion on {names}; the furthest linearization reached "
                   f"state {register.describe_state(w['state'])}",
        "ops": w["window"]}]}
