"""kvcheck nemesis --topology without a cluster: who joins and who leaves
(from the seed), where the changes fall among the faults (timeline()), a
kill or pause never aimed at a node that is no member then, the loop's
handling of a change against a fake cluster (asked, polled until the view
says it ended, bounded, recorded), and the report's lines. Needs no root."""

import io
import unittest

from support import history  # noqa: F401  (puts the checker on sys.path)
from checker import nemesis, report

ALL = nemesis.KINDS


def view(node, state, op=None, epoch=3):
    members = [{"nodeId": f"n{i}", "state": "normal", "status": "up"} for i in (1, 2, 3, 4)
               if f"n{i}" != node]
    if state is not None:
        members.append({"nodeId": node, "state": state, "status": "up"})
    return {"members": members, "topology": {"epoch": epoch, "viewEpoch": epoch,
                                             "operation": op}}


class Roles(unittest.TestCase):
    def test_no_topology(self):
        self.assertEqual(nemesis.roles(1, None), (None, None, [0, 1, 2, 3, 4]))

    def test_join_is_the_fifth_node(self):
        self.assertEqual(nemesis.roles(1, "join"), (4, None, [0, 1, 2, 3]))

    def test_the_leaver_is_never_n1_nor_the_joiner(self):
        for seed in range(200):
            j, leaver, initial = nemesis.roles(seed, "both")
            self.assertEqual((j, initial), (4, [0, 1, 2, 3]))
            self.assertIn(leaver, (1, 2, 3))
            j, leaver, initial = nemesis.roles(seed, "decommission")
            self.assertEqual((j, initial), (None, [0, 1, 2, 3, 4]))
            self.assertIn(leaver, (1, 2, 3, 4))
        self.assertEqual({nemesis.roles(s, "both")[1] for s in range(50)}, {1, 2, 3})

    def test_same_seed_same_roles(self):
        for seed in range(50):
            self.assertEqual(nemesis.roles(seed, "both"), nemesis.roles(seed, "both"))

    def test_unknown_topology(self):
        with self.assertRaises(ValueError):
            nemesis.roles(1, "shrink")


class Timeline(unittest.TestCase):
    def test_without_topology_it_is_the_plan(self):
        for seed in range(20):
            plan = nemesis.schedule(seed, 120, 8, 3)
            items, waits = nemesis.timeline(plan, seed, None, 120, 3)
            self.assertEqual(items, plan)
            self.assertEqual(waits, [3] * (len(plan) + 1))
        self.assertEqual(nemesis.timeline([], 1, None, 40, 3), ([], [40]))

    def positions(self, items):
        faults_before = {}
        n = 0
        for item in items:
            if isinstance(item, nemesis.Change):
                faults_before[item.kind] = n
            else:
                n += 1
        return faults_before, n

    def test_join_after_a_third_of_the_faults_leave_after_two_thirds(self):
        for seed in range(40):
            for duration in (1, 40, 80, 200):
                plan = nemesis.schedule(seed, duration, 10, 5)
                items, waits = nemesis.timeline(plan, seed, "both", duration, 5)
                self.assertEqual([i for i in items if not isinstance(i, nemesis.Change)
                                  and i.kind not in ("kill", "pause")],
                                 [f for f in plan if f.kind not in ("kill", "pause")])
                before, n = self.positions(items)
                self.assertEqual(n, len(plan))
                self.assertEqual(before["join"], round(n / 3 + 1e-9))
                self.assertLess(before["join"], before["decommission"])
                self.assertLessEqual(abs(before["decommission"] - 2 * n / 3), 1)
                self.assertEqual(waits, [5] * (len(items) + 1))
                kinds = [i.kind for i in items if isinstance(i, nemesis.Change)]
                self.assertEqual(kinds, ["join", "decommission"])

    def test_few_faults_still_separate_the_changes(self):
        for kinds in (["kill"], ["kill", "pause"], ["pause", "kill", "partition-ring"]):
            plan = nemesis.schedule(3, 1, 10, 5, kinds)
            items, _ = nemesis.timeline(plan, 3, "both", 1, 5)
            before, n = self.positions(items)
            self.assertLess(before["join"], before["decommission"], items)

    def test_without_faults_at_a_third_and_two_thirds(self):
        items, waits = nemesis.timeline([], 9, "both", 60, 5)
        self.assertEqual([i.kind for i in items], ["join", "decommission"])
        self.assertEqual([round(w, 6) for w in waits], [20, 20, 20])
        items, waits = nemesis.timeline([], 9, "join", 60, 5)
        self.assertEqual([round(w, 6) for w in waits], [20, 40])
        items, waits = nemesis.timeline([], 9, "decommission", 60, 5)
        self.assertEqual([round(w, 6) for w in waits], [40, 20])

    def test_no_kill_or_pause_on_a_node_that_is_no_member(self):
        for seed in range(100):
            plan = nemesis.schedule(seed, 200, 10, 5)
            for topology in nemesis.TOPOLOGIES:
                items, _ = nemesis.timeline(plan, seed, topology, 200, 5)
                joiner, leaver, initial = nemesis.roles(seed, topology)
                members = set(initial)
                for item in items:
                    if isinstance(item, nemesis.Change):
                        self.assertEqual(item.via, 0)
                        self.assertEqual(item.node, joiner if item.kind == "join" else leaver)
                        (members.add if item.kind == "join" else members.discard)(item.node)
                    elif item.kind in ("kill", "pause"):
                        self.assertIn(item.victim, members, (seed, topology, items))
                        self.assertEqual(sorted((item.victim,) + item.groups[1]),
                                         list(range(5)))

    def test_same_seed_same_timeline(self):
        for seed in range(30):
            plan = nemesis.schedule(seed, 100, 10, 5)
            self.assertEqual(nemesis.timeline(plan, seed, "both", 100, 5),
                             nemesis.timeline(plan, seed, "both", 100, 5))


class ChangeView(unittest.TestCase):
    join = nemesis.Change("join", 4, 0)
    leave = nemesis.Change("decommission", 2, 0)

    def test_join_ends_when_normal_and_nothing_in_progress(self):
        op = {"kind": "join", "member": "n5", "sinceEpoch": 2}
        self.assertFalse(self.join.ended(view("n5", None)))
        self.assertFalse(self.join.in_progress(view("n5", None)))
        self.assertFalse(self.join.ended(view("n5", "joining", op)))
        self.assertTrue(self.join.in_progress(view("n5", "joining", op)))
        self.assertFalse(self.join.ended(view("n5", "normal", op)))
        self.assertTrue(self.join.ended(view("n5", "normal")))
        self.assertFalse(self.join.ended(None))
        self.assertFalse(self.join.ended({"members": [{"nodeId": "n5", "state": "normal"}]}))

    def test_leave_ends_when_left(self):
        op = {"kind": "leave", "member": "n3", "sinceEpoch": 4}
        self.assertFalse(self.leave.ended(view("n3", "normal")))
        self.assertFalse(self.leave.in_progress(view("n3", "normal")))
        self.assertTrue(self.leave.in_progress(view("n3", "leaving", op)))
        self.assertFalse(self.leave.ended(view("n3", "leaving", op)))
        self.assertTrue(self.leave.ended(view("n3", "left")))

    def test_event_fields(self):
        j = self.join.to_json()
        self.assertEqual((j["fault"], j["node"], j["groups"][0]), ("join", "n5", ["n5"]))
        self.assertEqual(self.leave.describe(), "n3 (kvctl through n1)")


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Waits:
    """A stop event whose wait() advances the fake clock (and may raise)."""

    def __init__(self, clock, raise_at=None):
        self.clock, self.raise_at, self.waits = clock, raise_at, 0

    def wait(self, seconds):
        self.waits += 1
        if self.waits == self.raise_at:
            raise nemesis.Interrupted("test")
        self.clock.now += seconds
        return False

    def is_set(self):
        return False


class FakeCluster:
    """Answers views from a script (one per poll; the last repeats)."""

    def __init__(self, views, refuse=0, exits=None):
        self.views, self.refuse, self.exits = list(views), refuse, exits
        self.actions = []

    def settle(self, timeout):
        self.actions.append(("settle",))
        return None

    def ask(self, change):
        self.actions.append(("ask", change.kind, change.node))
        if self.refuse:
            self.refuse -= 1
            raise nemesis.ChangeRefused("busy")

    def view(self, change):
        asked = sum(a[0] == "ask" for a in self.actions)
        return self.views.pop(0) if asked and len(self.views) > 1 else self.views[0]

    def exit_status(self, i):
        return self.exits

    def retire(self, i):
        self.actions.append(("retire", i))

    def kill(self, i):
        self.actions.append(("kill", i))

    def restart(self, i):
        self.actions.append(("restart", i))


class Loop(unittest.TestCase):
    def run_plan(self, plan, cluster, timeout=120, raise_at=None):
        clock = FakeClock()
        events = []
        done = nemesis.run(plan, cluster, 5, 2, lambda f, **kw: events.append((f, kw)),
                           Waits(clock, raise_at), change_timeout=timeout, clock=clock)
        return done, events, clock

    def test_a_join_is_asked_polled_and_recorded(self):
        op = {"kind": "join", "member": "n5", "sinceEpoch": 2}
        cl = FakeCluster([view("n5", None), view("n5", "joining", op),
                          view("n5", "joining", op), view("n5", "normal", epoch=4)])
        change = nemesis.Change("join", 4, 0)
        done, events, _ = self.run_plan([change], cl)
        self.assertEqual(done, [(1, change)])
        self.assertEqual(cl.actions, [("settle",), ("ask", "join", 4)])
        self.assertEqual([f for f, _ in events], ["start", "stop"])
        stop = events[1][1]
        self.assertEqual((stop["ended"], stop["state"], stop["epoch"], stop["error"]),
                         (True, "normal", 4, None))

    def test_a_leave_retires_its_node(self):
        cl = FakeCluster([view("n3", "leaving", {"kind": "leave", "member": "n3"}),
                          view("n3", "left", epoch=6)])
        done, events, _ = self.run_plan([nemesis.Change("decommission", 2, 0)], cl)
        self.assertEqual(cl.actions[-1], ("retire", 2))
        self.assertTrue(events[-1][1]["ended"])

    def test_a_refused_ask_is_asked_again(self):
        cl = FakeCluster([view("n3", "normal")] * 3 + [view("n3", "left")], refuse=2)
        done, events, _ = self.run_plan([nemesis.Change("decommission", 2, 0)], cl)
        self.assertEqual([a for a in cl.actions if a[0] == "ask"], [("ask", "decommission", 2)] * 3)
        self.assertTrue(events[-1][1]["ended"])

    def test_a_change_that_does_not_end_is_bounded_and_stops_the_plan(self):
        cl = FakeCluster([view("n5", "joining", {"kind": "join", "member": "n5"})])
        kill = nemesis.Fault("kill", ((1,), (0, 2, 3, 4)))
        done, events, clock = self.run_plan([nemesis.Change("join", 4, 0), kill], cl, timeout=30)
        self.assertEqual(len(done), 1)                # the kill never came
        self.assertNotIn(("kill", 1), cl.actions)
        stop = events[-1][1]
        self.assertFalse(stop["ended"])
        self.assertIn("did not end within 30s", stop["error"])
        self.assertLess(clock.now, 30 + 2 + 2 * nemesis.CHANGE_POLL)
        w = report.fault_windows([dict(kw, f=f, time=i) for i, (f, kw) in enumerate(events)])
        self.assertEqual(len(report.unfinished_changes(w)), 1)

    def test_a_joiner_that_exits_ends_the_wait_at_once(self):
        cl = FakeCluster([view("n5", None)], exits=1)
        done, events, clock = self.run_plan([nemesis.Change("join", 4, 0)], cl)
        self.assertIn("exited with status 1", events[-1][1]["error"])
        self.assertLess(clock.now, 10)

    def test_a_failed_ask_that_was_taken_is_not_asked_again(self):
        # kvctl failed (a timeout, say) but the leave was recorded.
        cl = FakeCluster([view("n3", "leaving", {"kind": "leave", "member": "n3"}),
                          view("n3", "left")], refuse=5)
        done, events, _ = self.run_plan([nemesis.Change("decommission", 2, 0)], cl)
        self.assertEqual([a for a in cl.actions if a[0] == "ask"], [("ask", "decommission", 2)])
        self.assertTrue(events[-1][1]["ended"])

    def test_interrupted_during_a_change_still_records_its_stop(self):
        cl = FakeCluster([view("n5", "joining", {"kind": "join", "member": "n5"})])
        events = []
        clock = FakeClock()
        with self.assertRaises(nemesis.Interrupted):
            nemesis.run([nemesis.Change("join", 4, 0)], cl, 5, 2,
                        lambda f, **kw: events.append((f, kw)), Waits(clock, raise_at=3),
                        clock=clock)
        self.assertEqual([f for f, _ in events], ["start", "stop"])
        self.assertFalse(events[-1][1]["ended"])
        self.assertTrue(events[-1][1]["error"].startswith("interrupted"))

    def test_waits_are_used_between_items(self):
        cl = FakeCluster([view("n5", "normal")])
        clock = FakeClock()
        nemesis.run([nemesis.Change("join", 4, 0)], cl, 5, 2, lambda f, **kw: None,
                    Waits(clock), waits=[20, 40], clock=clock)
        self.assertEqual(clock.now, 60)
        with self.assertRaises(ValueError):
            nemesis.run([], cl, 5, 2, lambda f, **kw: None, Waits(clock), waits=[1, 2])


class Report(unittest.TestCase):
    def test_topology_lines(self):
        ev = [
            {"process": "nemesis", "type": "info", "f": "start", "id": 3, "fault": "join",
             "node": "n5", "what": "n5 through n1", "groups": [["n5"], ["n1", "n2"]],
             "time": 2_000_000_000},
            {"process": "nemesis", "type": "info", "f": "stop", "id": 3, "fault": "join",
             "node": "n5", "what": "n5 through n1", "groups": [["n5"], ["n1", "n2"]],
             "ended": True, "state": "normal", "epoch": 4, "error": None,
             "time": 7_500_000_000},
        ]
        w = report.fault_windows(ev)
        out = io.StringIO()
        report.write_faults(out, [], w, 0)
        self.assertIn("topology 3 join n5 through n1: asked at 2.0s, ended at 7.5s after 5.5s "
                      "(n5 normal, epoch 4)", out.getvalue())
        self.assertEqual(report.unfinished_changes(w), [])
        w = report.fault_windows(ev[:1])
        out = io.StringIO()
        report.write_faults(out, [], w, 0)
        self.assertIn("its end never recorded", out.getvalue())
        self.assertEqual(len(report.unfinished_changes(w)), 1)

    def test_an_info_op_answered_before_a_window_is_not_in_it(self):
        import json
        ev = history.parse_events([json.dumps(e) for e in (
            {"process": 0, "type": "invoke", "f": "add", "key": "s", "value": 1,
             "node": "n1", "time": 100},
            {"process": 0, "type": "info", "f": "add", "key": "s", "time": 150},
            {"process": "nemesis", "type": "info", "f": "start", "id": 1, "fault": "join",
             "node": "n5", "groups": [["n5"], ["n1"]], "time": 200},
            {"process": 1, "type": "invoke", "f": "add", "key": "s", "value": 2,
             "node": "n1", "time": 210},
            {"process": 1, "type": "ok", "f": "add", "key": "s", "time": 220},
            {"process": "nemesis", "type": "info", "f": "stop", "id": 1, "fault": "join",
             "ended": True, "time": 300})])
        ops = history.pair_events(ev)
        self.assertEqual([(o.ret, o.done) for o in ops], [(None, 150), (220, 220)])
        w = report.fault_windows(history.nemesis_events(ev))[0]
        self.assertEqual(report.availability(ops, w), [(["n5"], 0, 0), (["n1"], 1, 1)])


if __name__ == "__main__":
    unittest.main()
