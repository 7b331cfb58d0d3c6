"""Nemesis events in a history (kept apart from the ops; the checks ignore
them), the node an op was sent to, and the report's figures: fault windows,
availability per side, percentiles."""

import argparse
import io
import json
import os
import tempfile
import unittest

from support import Builder, history
from checker import nemesis_cmd, report


def lines(*events):
    return [json.dumps(e) for e in events]


HISTORY = lines(
    {"process": 0, "type": "invoke", "f": "add", "key": "s", "value": 1, "node": "n1",
     "time": 100},
    {"process": 0, "type": "ok", "f": "add", "key": "s", "time": 150},
    {"process": "nemesis", "type": "info", "f": "start", "id": 1,
     "fault": "partition-halves", "groups": [["n1", "n2"], ["n3", "n4", "n5"]],
     "what": "{n1,n2} | {n3,n4,n5}", "time": 200},
    {"process": 0, "type": "invoke", "f": "add", "key": "s", "value": 2, "node": "n1",
     "time": 210},
    {"process": 1, "type": "invoke", "f": "add", "key": "s", "value": 3, "node": "n3",
     "time": 220},
    {"process": 0, "type": "fail", "f": "add", "key": "s", "time": 230},
    {"process": 1, "type": "ok", "f": "add", "key": "s", "time": 240},
    {"process": 0, "type": "invoke", "f": "add", "key": "s", "value": 4, "node": "n2",
     "time": 250},
    {"process": 0, "type": "info", "f": "add", "key": "s", "time": 260},
    {"process": "nemesis", "type": "info", "f": "stop", "id": 1,
     "fault": "partition-halves", "groups": [["n1", "n2"], ["n3", "n4", "n5"]],
     "time": 300},
    {"process": 2, "type": "invoke", "f": "read", "key": "s", "node": "n4", "time": 400},
    {"process": 2, "type": "ok", "f": "read", "key": "s", "value": [1, 3, 4], "time": 450},
)


class NemesisEvents(unittest.TestCase):
    def test_kept_apart_from_the_ops(self):
        events = history.parse_events(HISTORY)
        ops = history.pair_events(events)
        self.assertEqual([o.value for o in ops], [1, 2, 3, 4, None])
        self.assertEqual([o.node for o in ops], ["n1", "n1", "n3", "n2", "n4"])
        nem = history.nemesis_events(events)
        self.assertEqual([(e["f"], e["id"], e["time"]) for e in nem],
                         [("start", 1, 200), ("stop", 1, 300)])

    def test_a_nemesis_event_must_be_info_with_a_time(self):
        for bad, message in (({"process": "nemesis", "type": "ok", "time": 1}, "type 'info'"),
                             ({"process": "nemesis", "type": "info"}, "missing field 'time'"),
                             ({"process": "other", "type": "info", "time": 1}, "wrong type")):
            with self.assertRaises(history.HistoryError) as e:
                history.parse_events([json.dumps(bad)])
            self.assertIn(message, str(e.exception))


class Figures(unittest.TestCase):
    def test_windows_and_availability(self):
        events = history.parse_events(HISTORY)
        ops = history.pair_events(events)
        windows = report.fault_windows(history.nemesis_events(events))
        self.assertEqual(len(windows), 1)
        w = windows[0]
        self.assertEqual((w["fault"], w["start"], w["stop"]), ("partition-halves", 200, 300))
        # Side {n1,n2}: a fail and an info; side {n3,n4,n5}: one ok. The op
        # done before and the read after are in neither.
        self.assertEqual(report.availability(ops, w),
                         [(["n1", "n2"], 0, 2), (["n3", "n4", "n5"], 1, 1)])

    def test_an_op_in_flight_when_the_fault_began_counts(self):
        ev = history.parse_events(lines(
            {"process": 0, "type": "invoke", "f": "add", "key": "s", "value": 1,
             "node": "n2", "time": 100},
            {"process": "nemesis", "type": "info", "f": "start", "id": 1, "fault": "pause",
             "groups": [["n2"], ["n1", "n3", "n4", "n5"]], "time": 200},
            {"process": "nemesis", "type": "info", "f": "stop", "id": 1, "fault": "pause",
             "time": 300},
            {"process": 0, "type": "info", "f": "add", "key": "s", "time": 350}))
        w = report.fault_windows(history.nemesis_events(ev))[0]
        self.assertEqual(report.availability(history.pair_events(ev), w)[0], (["n2"], 0, 1))

    def test_an_unhealed_fault_holds_until_the_end(self):
        ev = [{"process": "nemesis", "f": "start", "id": 7, "fault": "kill",
               "groups": [["n1"]], "time": 5}]
        self.assertIsNone(report.fault_windows(ev)[0]["stop"])

    def test_percentile(self):
        self.assertIsNone(report.percentile([], 0.99))
        self.assertEqual(report.percentile([5], 0.99), 5)
        values = list(range(1, 101))
        self.assertEqual(report.percentile(values, 0.99), 99)
        self.assertEqual(report.percentile(values, 0.5), 50)
        self.assertEqual(report.percentile(values, 1.0), 100)


class Report(unittest.TestCase):
    """The nemesis's report from a history file, without a cluster."""

    def report(self, text, model, final):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
            fh.write(text)
        self.addCleanup(os.unlink, fh.name)
        args = argparse.Namespace(seed=7, model=model, consistency="quorum", threads=2,
                                  kvd="kvd", duration=10.0, hold=5.0, gap=2.0,
                                  fault_kinds=["partition-halves"])
        out = io.StringIO()
        status = nemesis_cmd._report(args, fh.name, final, [], [], 1.0, None, [], out)
        return status, out.getvalue()

    def test_set_with_a_lost_write(self):
        text = "\n".join(HISTORY) + "\n" + "\n".join(lines(
            {"process": 3, "type": "invoke", "f": "read", "key": "s", "node": "n1",
             "time": 500},
            {"process": 3, "type": "ok", "f": "read", "key": "s", "value": [3, 4],
             "time": 550})) + "\n"
        status, out = self.report(text, "set", [])
        self.assertEqual(status, 1, out)
        self.assertIn("operations: 4 ok, 1 fail, 1 info", out)
        self.assertIn("fault 1 partition-halves {n1,n2} | {n3,n4,n5}: at ", out)
        self.assertIn("availability {n1,n2} 0/2 ok (0%), {n3,n4,n5} 1/1 ok (100%)", out)
        self.assertIn("lost acknowledged writes: 1;", out)
        self.assertIn("lost: 1 element(s)", out)           # with its witness
        self.assertTrue(out.endswith("kvcheck nemesis: 1 key(s) with anomalies, "
                                     "0 problem(s)\n"), out)

    def test_many_anomalies_are_counted_not_listed(self):
        b = Builder("r")
        for v in range(1, 8):        # seven pairs of cas that both made version v
            b.invoke(0, "cas", f"a{v}", expected=v - 1).invoke(1, "cas", f"b{v}",
                                                               expected=v - 1)
            b.ok(0, version=v).ok(1, version=v)
        status, out = self.report(b.text(), "register", None)
        self.assertEqual(status, 1, out)
        self.assertEqual(out.count("duplicate-version: "), nemesis_cmd.MAX_ANOMALIES_SHOWN, out)
        self.assertIn("... 7 anomalies in all: duplicate-version 7", out)

    def test_only_reads_ok_proves_nothing(self):
        b = Builder("s").invoke(0, "add", 1).fail(0).invoke(1, "read").ok(1, value=[])
        status, out = self.report(b.text(), "set", [])
        self.assertEqual(status, 1, out)
        self.assertIn("problem: no write was acknowledged: nothing proven", out)

    def test_counter_without_a_final_read_proves_nothing(self):
        b = Builder("c").invoke(0, "add", 1).ok(0)
        status, out = self.report(b.text(), "counter", None)
        self.assertEqual(status, 1, out)
        self.assertIn("problem: the final read at consistency=all failed", out)


if __name__ == "__main__":
    unittest.main()
