"""The nemesis: a schedule of faults drawn from a seeded RNG, and the loop
that injects and heals them one at a time.

Kinds (nodes are 0-based indices; their names are n1..n5):
  partition-halves  two sides, 2 | 3 nodes: no traffic between the sides;
  partition-ring    the nodes in a ring: each reaches only its two neighbours;
  partition-bridge  two sides of 2 that both reach a fifth node, the bridge;
  kill              kill -9 of one node, healed by restarting it (same data);
  pause             SIGSTOP of one node, healed by SIGCONT.
Which nodes play which part is drawn from the RNG. The schedule is the
kinds in rounds, each round every requested kind once in a shuffled order,
so the same seed and kinds give the same faults in the same order, and a
longer run only adds faults at the end. This module does no I/O itself:
the loop acts through a cluster object (cluster.py, or a fake in tests).

Topology changes (--topology join|decommission|both), one Change each:
  join          the last node (n5) is not started with the others; it is
                started later with --seeds of n1 on an empty data directory;
  decommission  one node (drawn from the seed; not n1, not the one that
                joins) is asked to leave (kvctl decommission).
timeline() places them among the faults (a join after about a third of
them, a leave after about two thirds; by time when there are no faults)
and moves a kill or pause off a node that is no member at that point. A
change runs alone: no fault is held while it runs, and the loop waits
(bounded) until the cluster says it ended before it goes on.
"""

import itertools
import random
import time
from dataclasses import dataclass
from typing import Tuple

PARTITIONS = ("partition-halves", "partition-ring", "partition-bridge")
KINDS = PARTITIONS + ("kill", "pause")
CHANGES = ("join", "decommission")
TOPOLOGIES = ("join", "decommission", "both")
CHANGE_POLL = 1.0        # seconds between two looks at a change in progress


def node_name(i):
    return f"n{i + 1}"


@dataclass(frozen=True)
class Fault:
    """One fault. `groups`: for a partition, the sides (each a tuple of
    nodes; for the ring every node alone, in ring order; for the bridge
    side, bridge, side); for kill and pause, the victim alone then the
    others, so that availability can be told apart the same way."""
    kind: str
    groups: Tuple[Tuple[int, ...], ...]

    @property
    def victim(self):
        return self.groups[0][0] if self.kind in ("kill", "pause") else None

    def blocked(self):
        """The ordered (from, to) node pairs a partition cuts."""
        g = self.groups
        if self.kind == "partition-halves":
            pairs = [(a, b) for a in g[0] for b in g[1]]
        elif self.kind == "partition-bridge":
            pairs = [(a, b) for a in g[0] for b in g[2]]
        elif self.kind == "partition-ring":
            ring = [grp[0] for grp in g]
            n = len(ring)
            pairs = [(ring[i], ring[j]) for i in range(n) for j in range(i + 1, n)
                     if (j - i) % n not in (1, n - 1)]
        else:
            return []
        return sorted(pairs + [(b, a) for a, b in pairs])

    def describe(self):
        names = [",".join(node_name(i) for i in grp) for grp in self.groups]
        if self.kind == "partition-halves":
            return f"{{{names[0]}}} | {{{names[1]}}}"
        if self.kind == "partition-bridge":
            return f"{{{names[0]}}} | {{{names[2]}}}, bridge {names[1]}"
        if self.kind == "partition-ring":
            return "ring " + "-".join(names) + "-" + names[0]
        return node_name(self.victim)

    def to_json(self):
        return {"fault": self.kind, "groups": [[node_name(i) for i in grp]
                                               for grp in self.groups],
                "what": self.describe()}


def _draw(kind, rng, nodes):
    order = list(range(nodes))
    rng.shuffle(order)
    if kind == "partition-halves":
        cut = nodes // 2
        return Fault(kind, (tuple(sorted(order[:cut])), tuple(sorted(order[cut:]))))
    if kind == "partition-bridge":
        side = (nodes - 1) // 2
        return Fault(kind, (tuple(sorted(order[:side])), (order[side],),
                            tuple(sorted(order[side + 1:]))))
    if kind == "partition-ring":
        return Fault(kind, tuple((i,) for i in order))
    victim = order[0]
    return Fault(kind, ((victim,), tuple(sorted(order[1:]))))


def faults(seed, kinds=KINDS, nodes=5):
    """The endless sequence of faults of a seed: rounds of every kind once,
    shuffled."""
    kinds = list(dict.fromkeys(kinds))
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown fault kind '{k}' (known: {', '.join(KINDS)})")
    if not kinds:
        raise ValueError("no fault kind")
    if nodes < 5:
        raise ValueError("the faults need five nodes")
    rng = random.Random(seed)
    while True:
        for k in rng.sample(kinds, len(kinds)):
            yield _draw(k, rng, nodes)


def schedule(seed, duration, hold, gap, kinds=KINDS, nodes=5):
    """The faults of a run: as many as fit in `duration` s (a quiet `gap`
    first, then each fault held `hold` s and followed by a quiet `gap`),
    but at least one of each kind."""
    if hold <= 0 or gap < 0 or duration <= 0:
        raise ValueError("duration and hold must be positive, gap not negative")
    n_kinds = len(set(kinds))
    fit = int((duration - gap) // (hold + gap))
    return list(itertools.islice(faults(seed, kinds, nodes), max(n_kinds, fit)))


@dataclass(frozen=True)
class Change:
    """A topology change. join: `node` is started with --seeds of `via`'s
    address (and no --peers) on an empty data directory, and has ended once
    `via` (or another member) records it `normal` with no change in
    progress. decommission: `node` is asked to leave (kvctl
    --endpoints <via> decommission --node <node>), and has ended once it
    is `left` with no change in progress. `groups` as for kill: the node
    alone, then the others (availability is counted the same way)."""
    kind: str
    node: int
    via: int
    nodes: int = 5

    @property
    def groups(self):
        return ((self.node,), tuple(i for i in range(self.nodes) if i != self.node))

    @property
    def goal(self):
        """The member state the change ends with."""
        return "normal" if self.kind == "join" else "left"

    def describe(self):
        if self.kind == "join":
            return f"{node_name(self.node)} through {node_name(self.via)}"
        return f"{node_name(self.node)} (kvctl through {node_name(self.via)})"

    def to_json(self):
        return {"fault": self.kind, "groups": [[node_name(i) for i in grp]
                                               for grp in self.groups],
                "what": self.describe(), "node": node_name(self.node)}

    def observe(self, view):
        """(state of the node, the operation in progress, epoch) in a GET
        /v1/cluster answer; state None when the node is not listed. None
        when the answer is no cluster's (no "topology")."""
        if not isinstance(view, dict) or not isinstance(view.get("topology"), dict):
            return None
        topo = view["topology"]
        if "operation" not in topo:
            return None
        me = node_name(self.node)
        state = next((m.get("state") for m in view.get("members") or []
                      if isinstance(m, dict) and m.get("nodeId") == me), None)
        return state, topo["operation"], topo.get("epoch")

    def ended(self, view):
        seen = self.observe(view)
        return seen is not None and seen[0] == self.goal and seen[1] is None

    def in_progress(self, view):
        """The change is recorded (running or over): the operation names
        the node, or its state is already past normal."""
        seen = self.observe(view)
        if seen is None:
            return False
        state, op, _ = seen
        mine = isinstance(op, dict) and op.get("member") == node_name(self.node)
        return mine or state in (("joining", "normal") if self.kind == "join"
                                 else ("leaving", "left"))

    def show(self, view):
        """What a view says of the change, in a few words."""
        seen = self.observe(view)
        if seen is None:
            return "no answer from a member"
        state, op, epoch = seen
        what = (f"{op.get('kind')} of {op.get('member')} since epoch {op.get('sinceEpoch')}"
                if isinstance(op, dict) else "none")
        return f"{node_name(self.node)} {state or 'not listed'}, change in progress: {what}, " \
               f"epoch {epoch}"


def roles(seed, topology, nodes=5):
    """(joiner, leaver, initial): the node that joins (the last one) or
    None, the node that leaves (drawn from the seed among n2.. without the
    joiner) or None, and the nodes started at the beginning."""
    if topology not in (None,) + TOPOLOGIES:
        raise ValueError(f"unknown topology '{topology}' (known: {', '.join(TOPOLOGIES)})")
    joiner = nodes - 1 if topology in ("join", "both") else None
    leaver = None
    if topology in ("decommission", "both"):
        candidates = [i for i in range(1, nodes) if i != joiner]
        leaver = random.Random(f"kvcheck-topology-{seed}").choice(candidates)
    return joiner, leaver, [i for i in range(nodes) if i != joiner]


def timeline(plan, seed, topology, duration, gap, nodes=5):
    """(items, waits): the faults of `plan` with the topology changes put
    among them, and the quiet seconds before each item and after the last
    (len(items) + 1 of them). With faults, a join comes after about a
    third of them and a leave after about two thirds, each in a gap of its
    own (every wait is `gap`); without, a join at a third of `duration`
    and a leave at two thirds. A kill or pause drawn on a node that is no
    member at its point (the joiner before its join, the leaver after its
    leave) is moved to a member, drawn from the seed."""
    joiner, leaver, initial = roles(seed, topology, nodes)
    n = len(plan)
    changes = []                                   # (after how many faults, change)
    if joiner is not None:
        changes.append((int(n / 3 + 0.5), Change("join", joiner, 0, nodes)))
    if leaver is not None:
        at = int(2 * n / 3 + 0.5)
        if changes and at <= changes[0][0] and n >= 2:
            at = min(n, changes[0][0] + 1)
        changes.append((at, Change("decommission", leaver, 0, nodes)))
    items = []
    for k in range(n + 1):
        items.extend(c for at, c in changes if at == k)
        if k < n:
            items.append(plan[k])
    if n:
        waits = [gap] * (len(items) + 1)
    else:
        marks = [duration * (1 if c.kind == "join" else 2) / 3 for _, c in changes]
        waits = [b - a for a, b in zip([0.0] + marks, marks + [duration])]
    members = set(initial)
    out = []
    for index, item in enumerate(items):
        if isinstance(item, Change):
            (members.add if item.kind == "join" else members.discard)(item.node)
        elif item.kind in ("kill", "pause") and item.victim not in members:
            v = random.Random(f"kvcheck-victim-{seed}-{index}").choice(sorted(members))
            item = Fault(item.kind, ((v,), tuple(i for i in range(nodes) if i != v)))
        out.append(item)
    return out, waits


class ChangeRefused(Exception):
    """A topology change was not taken (kvctl failed); it may be asked again."""


class Interrupted(Exception):
    """Raised (by a signal handler) to end the run early; the loop still
    heals the fault it holds."""


def run(plan, cluster, hold, gap, record, stop, log=lambda msg: None, waits=None,
        change_timeout=120.0, clock=time.monotonic):
    """Injects and heals the faults of `plan` in turn, through `cluster`
    (partition(fault), heal_partition(), kill(i), restart(i), pause(i),
    resume(i)), and runs its topology changes (change() below).
    `record(f, **fields)` writes a nemesis event; `stop` is a
    threading.Event whose wait() is the loop's only sleep, so setting it
    ends the run at once. `waits`: the seconds before each item and after
    the last (default: `gap` each). Whatever happens (an error,
    Interrupted), the fault held is healed before this returns or raises.
    A change that does not end within `change_timeout` s ends the run (the
    rest of the plan is skipped). Returns the items done (faults injected,
    changes asked), each with its number."""
    done = []
    waits = list(waits) if waits is not None else [gap] * (len(plan) + 1)
    if len(waits) != len(plan) + 1:
        raise ValueError("waits: one before each item and one after the last")
    stop.wait(waits[0])
    for number, fault in enumerate(plan, start=1):
        if stop.is_set():
            break
        if isinstance(fault, Change):
            done.append((number, fault))
            if not change(fault, number, cluster, record, stop, log, change_timeout, clock):
                if not stop.is_set():
                    log("nemesis: the topology change did not end: the rest of the plan "
                        "is skipped")
                break
            stop.wait(waits[number])
            continue
        info = dict(fault.to_json(), id=number)
        log(f"nemesis: fault {number}: {fault.kind} {fault.describe()}")
        record("start", **info)
        try:
            _inject(cluster, fault)
            done.append((number, fault))
            stop.wait(hold)
        finally:
            _heal(cluster, fault)
            record("stop", **info)
            log(f"nemesis: fault {number} healed")
        stop.wait(waits[number])
    return done


def change(item, number, cluster, record, stop, log, timeout, clock=time.monotonic,
           poll=CHANGE_POLL):
    """Runs one topology change through `cluster`: settle(timeout) (every
    member up first; a message when not, which is logged), ask(change)
    (raises ChangeRefused: asked again at the next poll unless a view shows
    it taken), view(change) (a member's GET /v1/cluster, or None),
    exit_status(i) and, once a leave ended, retire(i). Waits, bounded by
    `timeout` s from the ask, until the change ended. Records a nemesis
    event "start" when it is asked and "stop" when it ended or not, with
    `ended`, the node's `state`, the `epoch` and, when it did not end, the
    `error`. Returns whether it ended."""
    info = dict(item.to_json(), id=number)
    name = node_name(item.node)
    unready = cluster.settle(timeout)
    if unready:
        log(f"nemesis: before topology {number}, not every member is up: {unready}")
    log(f"nemesis: topology {number}: {item.kind} {item.describe()}")
    record("start", **info)
    end = clock() + timeout
    asked, shown, error, seen, finished = False, None, None, None, False
    try:
        while True:
            if not asked:
                try:
                    cluster.ask(item)
                    asked = True
                except ChangeRefused as e:
                    log(f"nemesis: topology {number}: {item.kind} of {name} refused: {e}")
                    error = f"refused: {e}"
            view = cluster.view(item)
            if not asked and item.in_progress(view):
                asked = True                      # taken although the ask failed
            if asked:
                seen = item.observe(view)
                now = item.show(view)
                if now != shown:
                    log(f"nemesis: topology {number}: {now}")
                    shown = now
                if item.ended(view):
                    error = None
                    break
                status = cluster.exit_status(item.node)
                if status is not None:
                    error = f"{name} exited with status {status} during its {item.kind}"
                    break
                error = f"last seen: {now}"
            if clock() >= end:
                error = f"did not end within {timeout:g}s ({error})"
                break
            if stop.wait(poll):
                error = f"the run was stopped before it ended ({error})"
                break
        finished = True
    finally:
        if not finished:
            error = f"interrupted ({error})" if error else "interrupted"
        state, _, epoch = seen if seen else (None, None, None)
        record("stop", **info, ended=error is None, state=state, epoch=epoch, error=error)
    if error is not None:
        log(f"nemesis: topology {number}: {item.kind} of {name} {error}")
        return False
    log(f"nemesis: topology {number}: {item.kind} of {name} ended: {name} {state} at epoch "
        f"{epoch}")
    if item.kind == "decommission":
        cluster.retire(item.node)
    return True


def _inject(cluster, fault):
    if fault.kind in PARTITIONS:
        cluster.partition(fault)
    elif fault.kind == "kill":
        cluster.kill(fault.victim)
    else:
        cluster.pause(fault.victim)


def _heal(cluster, fault):
    if fault.kind in PARTITIONS:
        cluster.heal_partition()
    elif fault.kind == "kill":
        cluster.restart(fault.victim)
    else:
        cluster.resume(fault.victim)
