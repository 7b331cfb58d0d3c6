"""The figures of a nemesis run, from its history: the faults and the
topology changes and when they held, availability on each side of each,
latency of the ok ops."""

CHANGES = ("join", "decommission")     # nemesis.CHANGES: a topology change, not a fault


def fault_windows(nemesis_events):
    """[{id, fault, what, groups, start, stop}] from the nemesis's start and
    stop events (times in ns; stop None if the run ended before it). A
    topology change's window also has `ended`, `state`, `epoch` and
    `error` from its stop event (ended None before it)."""
    windows = {}
    for ev in nemesis_events:
        fid = ev.get("id")
        if ev.get("f") == "start":
            windows[fid] = {"id": fid, "fault": ev.get("fault"), "what": ev.get("what", ""),
                            "groups": ev.get("groups") or [], "start": ev["time"],
                            "stop": None}
            if ev.get("fault") in CHANGES:
                windows[fid].update(node=ev.get("node"), ended=None, state=None, epoch=None,
                                    error=None)
        elif ev.get("f") == "stop" and fid in windows:
            windows[fid]["stop"] = ev["time"]
            if windows[fid]["fault"] in CHANGES:
                windows[fid].update(ended=ev.get("ended") is True, state=ev.get("state"),
                                    epoch=ev.get("epoch"), error=ev.get("error"))
    return [windows[k] for k in sorted(windows, key=lambda k: windows[k]["start"])]


def unfinished_changes(windows):
    """A message for each topology change that did not end (or whose end
    was never recorded)."""
    out = []
    for w in windows:
        if w["fault"] in CHANGES and not w.get("ended"):
            why = w.get("error") or "its end was never recorded"
            out.append(f"the {w['fault']} of {w.get('node') or w['what']} (topology "
                       f"{w['id']}) did not end: {why}")
    return out


def availability(ops, window):
    """For each group of the fault's nodes: (ok, all) of the ops sent to
    those nodes that were in flight at some moment while the fault held:
    issued during it, or issued before and not answered before it began
    (a thread stuck on a paused node issues nothing new, but its stuck op
    counts). An info op was answered when its info completion came (`done`),
    not never: it does not count in the windows after that."""
    end = window["stop"] if window["stop"] is not None else float("inf")
    inf = float("inf")

    def answered(op):
        if op.ret is not None:
            return op.ret
        done = getattr(op, "done", None)
        return done if done is not None else inf

    during = [op for op in ops if op.node and op.call <= end
              and answered(op) >= window["start"]]
    out = []
    for group in window["groups"]:
        mine = [op for op in during if op.node in group]
        out.append((group, sum(op.outcome == "ok" for op in mine), len(mine)))
    return out


def percentile(values, q):
    """The q-quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    v = sorted(values)
    rank = max(1, -(-len(v) * q // 1))       # ceil(q * n), at least 1
    return v[int(rank) - 1]


def latencies_ms(ops):
    return [(op.ret - op.call) / 1e6 for op in ops if op.outcome == "ok" and op.ret is not None]


def write_faults(out, ops, windows, t0):
    """One line per fault: what, when (s from t0), ok/all per group; per
    topology change: when it was asked, when it ended (or why not)."""
    for w in windows:
        start = (w["start"] - t0) / 1e9
        parts = []
        for group, ok, n in availability(ops, w):
            pct = f"{100.0 * ok / n:.0f}%" if n else "-"
            parts.append(f"{{{','.join(group)}}} {ok}/{n} ok ({pct})")
        if w["fault"] in CHANGES:
            if w["stop"] is None:
                when = "its end never recorded"
            elif w.get("ended"):
                when = (f"ended at {(w['stop'] - t0) / 1e9:.1f}s after "
                        f"{(w['stop'] - w['start']) / 1e9:.1f}s ({w.get('node')} "
                        f"{w.get('state')}, epoch {w.get('epoch')})")
            else:
                when = (f"DID NOT END (given up at {(w['stop'] - t0) / 1e9:.1f}s: "
                        f"{w.get('error')})")
            out.write(f"  topology {w['id']} {w['fault']} {w['what']}: asked at {start:.1f}s, "
                      f"{when}; availability {', '.join(parts)}\n")
            continue
        held = f"{(w['stop'] - w['start']) / 1e9:.1f}s" if w["stop"] is not None else "unhealed"
        out.write(f"  fault {w['id']} {w['fault']} {w['what']}: at {start:.1f}s for {held}; "
                  f"availability {', '.join(parts)}\n")
