"""The set-full and counter checks, and the CLI's output and exit codes."""

import io
import os
import tempfile
import unittest

from support import Builder

from checker import cli, counter, setfull


class SetFull(unittest.TestCase):
    def test_stable_stale_lost_unexpected(self):
        b = Builder("s")
        b.invoke(0, "add", 1).ok(0)
        b.invoke(0, "add", 2).ok(0)
        b.invoke(1, "read").ok(1, value=[1])          # misses 2: stale so far
        b.invoke(0, "add", 3).fail(0)
        b.invoke(1, "read").ok(1, value=[1, 2])       # 2 is back; 1 then vanishes
        b.invoke(1, "read").ok(1, value=[2, 3, 9])    # 3 failed, 9 never added
        r = setfull.check_key(b.ops())
        self.assertIs(r["valid"], False)
        self.assertEqual(r["summary"]["lost"], 1)
        self.assertEqual(r["summary"]["stale"], 1)
        self.assertEqual(r["summary"]["unexpected"], 2)
        self.assertGreater(r["worst_stale_ns"], 0)

    def test_info_add_may_show_up_or_not_and_late_add_is_never_read(self):
        b = Builder("s").invoke(0, "add", 1).info(0)
        b.invoke(1, "read").ok(1, value=[1])
        b.invoke(2, "add", 2).info(2)
        b.invoke(1, "read").ok(1, value=[1])
        b.invoke(3, "add", 3).ok(3)
        r = setfull.check_key(b.ops())
        self.assertIs(r["valid"], True, r["anomalies"])
        self.assertEqual(r["summary"]["never-read"], 1)


class Counter(unittest.TestCase):
    def test_bounds(self):
        b = Builder("c").invoke(0, "add", 2).ok(0)
        b.invoke(1, "add", 5).info(1)
        b.invoke(0, "read").ok(0, value=7)
        self.assertIs(counter.check_key(b.ops())["valid"], True)
        b.invoke(0, "read").ok(0, value=1)
        r = counter.check_key(b.ops())
        self.assertEqual(r["anomalies"][0]["kind"], "lost-increments")
        b = Builder("c").invoke(0, "add", 2).ok(0).invoke(0, "read").ok(0, value=3)
        r = counter.check_key(b.ops())
        self.assertEqual(r["anomalies"][0]["kind"], "extra-increments")
        self.assertEqual(r["summary"]["final_minus_acknowledged"], 1)


class Cli(unittest.TestCase):
    def run_cli(self, text, *args):
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as fh:
            fh.write(text)
        try:
            out, err = io.StringIO(), io.StringIO()
            rc = cli.main(["check", *args, fh.name], out=out, err=err)
            return rc, out.getvalue(), err.getvalue()
        finally:
            os.unlink(fh.name)

    def test_exit_codes(self):
        good = Builder().invoke(0, "write", "a").ok(0, version=1)
        rc, out, _ = self.run_cli(good.text())
        self.assertEqual(rc, 0)
        self.assertIn("key x: ok  (1 ok, 0 fail, 0 info", out)
        bad = good.invoke(1, "read").ok(1)
        rc, out, _ = self.run_cli(bad.text(), "--model", "register")
        self.assertEqual(rc, 1)
        self.assertIn("ANOMALY", out)
        self.assertIn("(line 3)", out)                 # the witness names lines

    def test_malformed_lines_are_named(self):
        cases = [("{\"process\": 0}\n", "line 1: missing field 'type'"),
                 ("\n\nnot json\n", "line 3: not JSON"),
                 ('{"process":0,"type":"ok","time":1}\n', "line 1: process 0 completes"),
                 ('{"process":"0","type":"invoke","time":1}\n', "line 1: field 'process'")]
        for text, message in cases:
            rc, _, err = self.run_cli(text)
            self.assertEqual(rc, 2, text)
            self.assertIn(message, err)

    def test_wrong_model_for_the_ops_is_bad_input(self):
        b = Builder().invoke(0, "add", 1).ok(0)
        self.assertEqual(self.run_cli(b.text(), "--model", "register")[0], 2)
        self.assertEqual(self.run_cli(b.text(), "--model", "set")[0], 0)


if __name__ == "__main__":
    unittest.main()
