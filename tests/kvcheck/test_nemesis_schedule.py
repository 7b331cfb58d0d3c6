"""The nemesis without a cluster: the seeded schedule (same seed, same
faults; every kind present; the shapes of the partitions), and the loop
that injects and heals them, against a fake cluster (every fault healed,
also when the run is interrupted). Needs no root."""

import threading
import unittest
from collections import Counter

from support import history  # noqa: F401  (puts the checker on sys.path)
from checker import nemesis

ALL = nemesis.KINDS


class Schedule(unittest.TestCase):
    def test_same_seed_same_schedule(self):
        for seed in range(50):
            a = nemesis.schedule(seed, 120, 8, 3)
            b = nemesis.schedule(seed, 120, 8, 3)
            self.assertEqual(a, b)
            self.assertEqual([f.describe() for f in a], [f.describe() for f in b])

    def test_seeds_differ(self):
        plans = {tuple(nemesis.schedule(seed, 120, 8, 3)) for seed in range(20)}
        self.assertGreater(len(plans), 15)

    def test_a_longer_run_only_adds_faults_at_the_end(self):
        short = nemesis.schedule(3, 60, 5, 2)
        long_ = nemesis.schedule(3, 600, 5, 2)
        self.assertGreater(len(long_), len(short))
        self.assertEqual(long_[:len(short)], short)

    def test_every_kind_at_least_once_even_in_a_short_run(self):
        for seed in range(30):
            plan = nemesis.schedule(seed, 1, 10, 5)
            self.assertEqual(sorted(f.kind for f in plan), sorted(ALL))
            plan = nemesis.schedule(seed, 1, 10, 5, kinds=["kill", "pause"])
            self.assertEqual(sorted(f.kind for f in plan), ["kill", "pause"])

    def test_rounds_keep_kinds_balanced(self):
        plan = nemesis.schedule(11, 10 * 5 * 13, 10, 3)   # 10 rounds fit (plus one gap)
        self.assertEqual(len(plan), 49)
        counts = Counter(f.kind for f in plan)
        self.assertEqual(set(counts), set(ALL))
        self.assertLessEqual(max(counts.values()) - min(counts.values()), 1)

    def test_bad_arguments(self):
        with self.assertRaises(ValueError):
            nemesis.schedule(1, 60, 5, 2, kinds=["flood"])
        with self.assertRaises(ValueError):
            nemesis.schedule(1, 60, 0, 2)
        with self.assertRaises(ValueError):
            nemesis.schedule(1, 60, 5, 2, kinds=[])


class Shapes(unittest.TestCase):
    def plan(self, kind, seeds=40):
        return [f for s in range(seeds) for f in nemesis.schedule(s, 1, 5, 2, kinds=[kind])]

    def reach(self, fault):
        """node -> the set of nodes it can still reach."""
        cut = set(fault.blocked())
        return {a: {b for b in range(5) if b != a and (a, b) not in cut} for a in range(5)}

    def test_blocked_pairs_are_symmetric(self):
        for kind in nemesis.PARTITIONS:
            for f in self.plan(kind):
                cut = set(f.blocked())
                self.assertEqual(cut, {(b, a) for a, b in cut})
                self.assertFalse([p for p in cut if p[0] == p[1]])

    def test_halves(self):
        for f in self.plan("partition-halves"):
            a, b = f.groups
            self.assertEqual((len(a), len(b)), (2, 3))
            self.assertEqual(sorted(a + b), list(range(5)))
            reach = self.reach(f)
            for side in (a, b):
                for n in side:
                    self.assertEqual(reach[n], set(side) - {n})

    def test_ring(self):
        for f in self.plan("partition-ring"):
            order = [g[0] for g in f.groups]
            self.assertEqual(sorted(order), list(range(5)))
            reach = self.reach(f)
            for i, n in enumerate(order):
                self.assertEqual(reach[n], {order[i - 1], order[(i + 1) % 5]})

    def test_bridge(self):
        for f in self.plan("partition-bridge"):
            a, (bridge,), b = f.groups
            self.assertEqual(sorted(a + (bridge,) + b), list(range(5)))
            reach = self.reach(f)
            self.assertEqual(reach[bridge], set(range(5)) - {bridge})
            for n in a:
                self.assertEqual(reach[n], set(a) - {n} | {bridge})
            for n in b:
                self.assertEqual(reach[n], set(b) - {n} | {bridge})

    def test_kill_and_pause_name_one_victim(self):
        for kind in ("kill", "pause"):
            for f in self.plan(kind):
                self.assertEqual(f.blocked(), [])
                self.assertEqual(sorted((f.victim,) + f.groups[1]), list(range(5)))
                self.assertEqual(f.describe(), f"n{f.victim + 1}")


class FakeCluster:
    """Records what the nemesis does and keeps the state it leaves."""

    def __init__(self, fail_on=None):
        self.actions, self.partitioned, self.down, self.paused = [], None, set(), set()
        self.fail_on = fail_on

    def _do(self, *action):
        self.actions.append(action)
        if self.fail_on == action[0]:
            raise RuntimeError(f"{action[0]} failed")

    def partition(self, fault):
        self.partitioned = fault
        self._do("partition", fault.kind)

    def heal_partition(self):
        self.partitioned = None
        self._do("heal_partition")

    def kill(self, i):
        self.down.add(i)
        self._do("kill", i)

    def restart(self, i):
        self.down.discard(i)
        self._do("restart", i)

    def pause(self, i):
        self.paused.add(i)
        self._do("pause", i)

    def resume(self, i):
        self.paused.discard(i)
        self._do("resume", i)

    def clean(self):
        return self.partitioned is None and not self.down and not self.paused


class NoWait:
    """A stop event whose wait() returns at once (optionally: raises or sets
    itself after n waits), so the loop runs in no time."""

    def __init__(self, raise_at=None, stop_at=None):
        self.waits, self.raise_at, self.stop_at, self.flag = 0, raise_at, stop_at, False

    def wait(self, seconds):
        self.waits += 1
        if self.waits == self.raise_at:
            raise nemesis.Interrupted("test")
        if self.waits == self.stop_at:
            self.flag = True
        return self.flag

    def is_set(self):
        return self.flag


HEAL = {"partition": "heal_partition", "kill": "restart", "pause": "resume"}


class Loop(unittest.TestCase):
    def run_plan(self, plan, cluster, stop):
        events = []
        done = nemesis.run(plan, cluster, 5, 2, lambda f, **kw: events.append((f, kw)), stop)
        return done, events

    def test_every_fault_is_healed_in_order(self):
        plan = nemesis.schedule(5, 300, 5, 2)
        cluster = FakeCluster()
        done, events = self.run_plan(plan, cluster, NoWait())
        self.assertEqual([f for _, f in done], plan)
        self.assertTrue(cluster.clean())
        # Each action is an injection followed at once by its heal.
        acts = cluster.actions
        self.assertEqual(len(acts), 2 * len(plan))
        for (inj, heal), f in zip(zip(acts[::2], acts[1::2]), plan):
            self.assertEqual(heal[0], HEAL[inj[0]])
            if inj[0] != "partition":
                self.assertEqual(inj[1], f.victim)
                self.assertEqual(heal[1], f.victim)
        # One start and one stop event per fault, numbered from 1.
        self.assertEqual([(f, kw["id"]) for f, kw in events],
                         [(f, i) for i in range(1, len(plan) + 1) for f in ("start", "stop")])
        self.assertEqual({kw["fault"] for _, kw in events}, set(ALL))

    def test_interrupted_while_holding_still_heals(self):
        plan = nemesis.schedule(8, 1, 5, 2)
        for raise_at in range(2, 2 * len(plan) + 1):      # wait 1 is the lead-in gap
            cluster = FakeCluster()
            with self.assertRaises(nemesis.Interrupted):
                self.run_plan(plan, cluster, NoWait(raise_at=raise_at))
            self.assertTrue(cluster.clean(), (raise_at, cluster.actions))

    def test_a_failed_injection_is_still_healed(self):
        for kind in ("partition", "kill", "pause"):
            cluster = FakeCluster(fail_on=kind)
            plan = [f for f in nemesis.schedule(1, 1, 5, 2) if f.kind.startswith(kind)][:1]
            with self.assertRaises(RuntimeError):
                self.run_plan(plan, cluster, NoWait())
            self.assertTrue(cluster.clean())
            self.assertEqual(cluster.actions[-1][0], HEAL[kind])

    def test_stop_ends_the_run_between_faults(self):
        plan = nemesis.schedule(2, 300, 5, 2)
        cluster = FakeCluster()
        stop = NoWait(stop_at=4)          # lead-in, hold 1, gap 1, hold 2: then stop
        done, events = self.run_plan(plan, cluster, stop)
        self.assertEqual(len(done), 2)
        self.assertTrue(cluster.clean())

    def test_a_real_event_stops_a_real_wait(self):
        stop = threading.Event()
        cluster = FakeCluster()
        t = threading.Timer(0.2, stop.set)
        t.start()
        done, _ = self.run_plan(nemesis.schedule(1, 3600, 600, 600), cluster, stop)
        t.join()
        self.assertEqual(done, [])        # stopped during the lead-in gap
        self.assertTrue(cluster.clean())


if __name__ == "__main__":
    unittest.main()
