"""The set-full check (Jepsen's set-full), for QUORUM writes.

Processes add unique elements to a set (f "add", value the element) and read
the whole set (f "read", value a list). For each element:
  known    when we first knew it was in: its add's ok completion, or the
           completion of the first read that saw it, whichever is earlier;
  then the reads that *began* after `known` either saw it or did not:
  never-read  no read began after it was known: nothing to say;
  lost        the last such read did not see it: an acknowledged (or
              observed) element vanished (an anomaly);
  stale       some such read missed it but a later one saw it: reported with
              the worst staleness (how long after `known` a read still
              missed it); not an anomaly: QUORUM reads may lag under
              failures (sloppy quorum, hinted handoff); each read that
              missed a stale element is a stale read (counted once);
  stable      every read that began after `known` saw it.
An element read but never added, or whose add failed, is unexpected (an
anomaly). An info add may or may not show up: either is fine.
"""

from .register import canonical


def check_op_shape(op):
    if op.f not in ("add", "read"):
        return f"line {op.line}: '{op.f}' is not a set operation (add, read)"
    if op.f == "read" and op.outcome == "ok" and not isinstance(op.out_value, list):
        return f"line {op.ret_line}: an ok set read needs 'value' to be a list"
    return None


def check_key(ops):
    adds = {}
    for op in ops:
        if op.f == "add":
            adds.setdefault(canonical(op.value), []).append(op)
    reads = sorted((op for op in ops if op.f == "read" and op.outcome == "ok"),
                   key=lambda o: o.call)
    seen_in = [{canonical(e) for e in r.out_value} for r in reads]

    known = {}
    for el, el_adds in adds.items():
        t = [a.ret for a in el_adds if a.outcome == "ok"]
        known[el] = min(t) if t else None
    for r, seen in zip(reads, seen_in):
        for el in seen:
            if known.get(el) is None or r.ret < known[el]:
                known[el] = r.ret

    result = {"lost": [], "stale": [], "never-read": [], "stable": [], "unexpected": []}
    worst_stale = 0
    stale_reads = set()          # reads that missed a stale element
    for el, t in sorted(known.items()):
        el_adds = adds.get(el, [])
        if not el_adds or all(a.outcome == "fail" for a in el_adds):
            if any(el in s for s in seen_in):
                result["unexpected"].append(el)
                continue
        if t is None:
            continue                      # an info or failed add never seen
        after = [(r, el in s) for r, s in zip(reads, seen_in) if r.call > t]
        if not after:
            result["never-read"].append(el)
        elif not after[-1][1]:
            result["lost"].append(el)
        elif any(not present for _, present in after):
            last_miss = max(r.call for r, present in after if not present)
            worst_stale = max(worst_stale, last_miss - t)
            result["stale"].append(el)
            stale_reads.update(id(r) for r, present in after if not present)
        else:
            result["stable"].append(el)

    anomalies = []
    if result["lost"]:
        anomalies.append({"kind": "lost", "message": f"{len(result['lost'])} element(s) "
                          f"known to be in the set are missing from the last read: "
                          f"{', '.join(result['lost'][:10])}", "ops": _witness(
                              result["lost"][0], adds, reads)})
    if result["unexpected"]:
        anomalies.append({"kind": "unexpected", "message": f"{len(result['unexpected'])} "
                          f"element(s) read that were never added or whose add failed: "
                          f"{', '.join(result['unexpected'][:10])}",
                          "ops": adds.get(result["unexpected"][0], [])[:1] + [
                              r for r, seen in zip(reads, seen_in)
                              if result["unexpected"][0] in seen][:1]})
    return {"valid": not anomalies, "anomalies": anomalies,
            "summary": dict({k: len(v) for k, v in result.items()},
                            **{"stale-reads": len(stale_reads)}),
            "worst_stale_ns": worst_stale}


def _witness(el, adds, reads):
    """The element's add and the last read that missed it."""
    return adds.get(el, [])[:1] + reads[-1:]
