"""The history file: one JSON object per line, one event per object.

An event is an invocation or a completion of one operation by one process,
or a nemesis event (process "nemesis", type "info": a fault injected or
healed), which is kept apart from the ops. This module parses and validates
the lines, then pairs each invocation with its process's next completion
into an Op. It knows nothing about models.
"""

import json
from dataclasses import dataclass
from typing import Any, List, Optional

EVENT_TYPES = ("invoke", "ok", "fail", "info")
NEMESIS = "nemesis"         # the process of the fault injector's events


class HistoryError(Exception):
    """Bad input: the message names the line."""


@dataclass
class Op:
    """One operation, from its invocation to its completion.

    outcome is "ok", "fail" (definitely not applied) or "info" (unknown: it
    may have taken effect at any moment after `call`, or never). An info op
    has ret None, which the checkers read as "returns at infinity".
    """
    index: int                 # order of invocation in the history, from 0
    process: int
    f: str
    key: str
    value: Any                 # the invocation's value: what a write writes
    expected: Optional[int]    # a cas's expected version (0 = absent)
    outcome: str
    out_value: Any             # the completion's value: what a read read
    out_version: Optional[int]  # the completion's version
    call: int                  # invocation time, monotonic ns
    ret: Optional[int]         # completion time; None when outcome is info
    line: int                  # line of the invocation
    ret_line: Optional[int]    # line of the completion; None if it never came
    node: Optional[str] = None  # the node the invocation was sent to, if recorded
    done: Optional[int] = None  # the completion's time, info included; None if it never
                                # came (the checkers use ret; the report's availability this)


def _field(obj, name, types, lineno, required=True):
    if name not in obj or obj[name] is None:
        if required:
            raise HistoryError(f"line {lineno}: missing field '{name}'")
        return None
    v = obj[name]
    # bool is an int in Python; a version or a time is never true/false.
    if isinstance(v, bool) or not isinstance(v, types):
        raise HistoryError(f"line {lineno}: field '{name}' has the wrong type: {v!r}")
    return v


def parse_events(lines):
    """Parse the lines into event dicts, each with its 'line' number."""
    events = []
    for lineno, text in enumerate(lines, start=1):
        text = text.strip()
        if not text or text.startswith("#"):
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise HistoryError(f"line {lineno}: not JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise HistoryError(f"line {lineno}: not a JSON object")
        if obj.get("process") == NEMESIS:
            events.append(_nemesis_event(obj, lineno))
            continue
        ev = {
            "line": lineno,
            "process": _field(obj, "process", int, lineno),
            "type": _field(obj, "type", str, lineno),
            "time": _field(obj, "time", int, lineno),
            "f": _field(obj, "f", str, lineno, required=False),
            "key": _field(obj, "key", str, lineno, required=False),
            "value": obj.get("value"),
            "version": _field(obj, "version", int, lineno, required=False),
            "expected": _field(obj, "expected", int, lineno, required=False),
            "node": _field(obj, "node", str, lineno, required=False),
        }
        if ev["type"] not in EVENT_TYPES:
            raise HistoryError(f"line {lineno}: unknown type '{ev['type']}'")
        if ev["type"] == "invoke":
            if ev["f"] is None or ev["key"] is None:
                raise HistoryError(f"line {lineno}: an invoke needs 'f' and 'key'")
        for name in ("version", "expected"):
            if ev[name] is not None and ev[name] < 0:
                raise HistoryError(f"line {lineno}: negative '{name}'")
        events.append(ev)
    return events


def _nemesis_event(obj, lineno):
    """A fault injected or healed: kept whole (its fields are the nemesis's
    own), with its line; only the process, type and time are checked."""
    if obj.get("type") != "info":
        raise HistoryError(f"line {lineno}: a nemesis event has type 'info'")
    ev = dict(obj)
    ev["time"] = _field(obj, "time", int, lineno)
    ev["line"] = lineno
    return ev


def nemesis_events(events):
    """The nemesis's events, in time order."""
    return sorted((e for e in events if e["process"] == NEMESIS), key=lambda e: e["time"])


def pair_events(events) -> List[Op]:
    """Pair invocations and completions per process into Ops.

    Events are taken in time order (stable, so equal times keep the file's
    order): a runner with many threads may write its lines slightly out of
    order, but a process's own events are always in time order. An
    invocation whose completion never came (the runner stopped) is info.
    """
    pending = {}
    ops: List[Op] = []
    for ev in sorted(events, key=lambda e: e["time"]):
        p = ev["process"]
        if p == NEMESIS:
            continue
        if ev["type"] == "invoke":
            if p in pending:
                raise HistoryError(f"line {ev['line']}: process {p} invokes while its "
                                   f"operation of line {pending[p].line} is still open")
            op = Op(index=len(ops), process=p, f=ev["f"], key=ev["key"],
                    value=ev["value"], expected=ev["expected"], outcome="info",
                    out_value=None, out_version=None, call=ev["time"], ret=None,
                    line=ev["line"], ret_line=None, node=ev["node"])
            pending[p] = op
            ops.append(op)
            continue
        op = pending.pop(p, None)
        if op is None:
            raise HistoryError(f"line {ev['line']}: process {p} completes an operation "
                               f"it never invoked")
        for name, mine in (("f", op.f), ("key", op.key)):
            if ev[name] is not None and ev[name] != mine:
                raise HistoryError(f"line {ev['line']}: '{name}' differs from its "
                                   f"invocation on line {op.line}")
        op.outcome = ev["type"]
        op.out_value = ev["value"]
        op.out_version = ev["version"]
        op.ret_line = ev["line"]
        op.ret = None if ev["type"] == "info" else ev["time"]
        op.done = ev["time"]
    return ops


def load_events(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return parse_events(fh)
    except OSError as e:
        raise HistoryError(f"{path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise HistoryError(f"{path}: not UTF-8") from None


def load(path) -> List[Op]:
    return pair_events(load_events(path))


def by_key(ops):
    """The ops grouped per key, each group in invocation order."""
    groups = {}
    for op in ops:
        groups.setdefault(op.key, []).append(op)
    return groups


def counts(ops):
    c = {"ok": 0, "fail": 0, "info": 0}
    for op in ops:
        c[op.outcome] += 1
    return c


def describe(op: Op) -> str:
    """One line a person can read: who, what, what came back, when."""
    def ms(t):
        return "inf" if t is None else f"{t / 1e6:.3f}ms"
    what = f"{op.f}"
    if op.f == "cas":
        what += f" expected={op.expected}"
    if op.value is not None:
        what += f" {json.dumps(op.value)}"
    got = op.outcome
    if op.outcome != "info" and (op.out_value is not None or op.out_version is not None):
        parts = []
        if op.out_value is not None:
            parts.append(json.dumps(op.out_value))
        if op.out_version is not None:
            parts.append(f"v{op.out_version}")
        got += " " + " ".join(parts)
    elif op.outcome == "ok" and op.f == "read":
        got += " not-found"
    return (f"p{op.process} {what} -> {got}  [{ms(op.call)} .. {ms(op.ret)}] "
            f"(line {op.line})")
