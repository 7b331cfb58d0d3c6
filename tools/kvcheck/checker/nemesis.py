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
"""

import itertools
import random
from dataclasses import dataclass
from typing import Tuple

PARTITIONS = ("partition-halves", "partition-ring", "partition-bridge")
KINDS = PARTITIONS + ("kill", "pause")


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


class Interrupted(Exception):
    """Raised (by a signal handler) to end the run early; the loop still
    heals the fault it holds."""


def run(plan, cluster, hold, gap, record, stop, log=lambda msg: None):
    """Injects and heals the faults of `plan` in turn, through `cluster`
    (partition(fault), heal_partition(), kill(i), restart(i), pause(i),
    resume(i)). `record(f, **fields)` writes a nemesis event; `stop` is a
    threading.Event whose wait() is the loop's only sleep, so setting it
    ends the run at once. Whatever happens (an error, Interrupted), the
    fault held is healed before this returns or raises. Returns the faults
    injected, each with its number."""
    done = []
    stop.wait(gap)
    for number, fault in enumerate(plan, start=1):
        if stop.is_set():
            break
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
        stop.wait(gap)
    return done


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
