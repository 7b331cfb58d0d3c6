"""kvcheck nemesis on five real kvd in a network namespace of their own.

- set at QUORUM under every fault kind (partitions halves, ring and bridge,
  kill -9, SIGSTOP): the run completes, each kind was injected and healed
  at least once (from the history's nemesis events), and no acknowledged
  write is lost;
- counter by CAS at SERIAL under a partition, a kill and a pause: no
  anomaly (acknowledged <= final <= acknowledged + unknown);
- a register (read, write, CAS) at SERIAL under every fault kind: the
  linearizability checker finds no anomaly.
(CAS at QUORUM loses increments: tests/kvcheck/test_runner_cluster.py
proves the checker sees it.)

Outcomes only, no timing or count in a window. Needs KVD (the kvd binary),
root and nft. ctest runs this file, which re-executes itself through
tests/integration/in_netns.sh (unshare -n), or exits 77 (skipped) when not
root or nft is missing. By hand:
  KVD=build/tools/kvd/kvd python3 tests/kvcheck/test_nemesis_cluster.py -v
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

from support import history
from checker import counter, nemesis, setfull

HERE = os.path.dirname(os.path.abspath(__file__))
KVCHECK = os.path.join(HERE, "..", "..", "tools", "kvcheck", "kvcheck")
IN_NETNS = os.path.join(HERE, "..", "integration", "in_netns.sh")
KVD = os.environ.get("KVD")
SKIPPED = 77          # ctest's SKIP_RETURN_CODE for this test
IN_NETNS_ENV = "KVCHECK_TEST_IN_NETNS"
SEED = int(os.environ.get("KVCHECK_SEED", "20251205"))
HOLD, GAP = "8", "3"  # long enough for the failure detector to act on a fault


def missing():
    """Why this machine cannot run the nemesis, or None."""
    if os.geteuid() != 0:
        return "not root (the nemesis needs unshare -n and nft)"
    for tool in ("nft", "unshare", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is missing"
    return None


@unittest.skipUnless(KVD, "KVD is not set: the path of the kvd binary (ctest sets it)")
class NemesisOnFiveNodes(unittest.TestCase):
    def setUp(self):
        reason = missing()
        if reason:
            self.skipTest(reason)
        self.tmp = tempfile.mkdtemp(prefix="kvcheck-nemesis-test-")
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)

    def run_nemesis(self, model, faults, duration, consistency="quorum"):
        out = os.path.join(self.tmp, model)
        cmd = [sys.executable, KVCHECK, "nemesis", "--kvd", KVD, "--model", model,
               "--consistency", consistency, "--seed", str(SEED), "--duration", str(duration),
               "--hold", HOLD, "--gap", GAP, "--faults", ",".join(faults), "--out", out]
        # Bounded: the run is about a minute; the margin covers a slow start,
        # recovery (bounded by kvcheck itself) and a slow machine.
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=500)
        print(p.stdout)
        self.assertIn(p.returncode, (0, 1), "the run did not complete:\n" + p.stdout)
        self.assertRegex(p.stdout, r"\nkvcheck nemesis: (no anomaly|\d+ key)", p.stdout)
        events = history.load_events(os.path.join(out, "history.jsonl"))
        return p.stdout, history.pair_events(events), history.nemesis_events(events)

    def assert_each_kind_injected_and_healed(self, faults, nem, text):
        started = {e["id"]: e["fault"] for e in nem if e["f"] == "start"}
        stopped = {e["id"] for e in nem if e["f"] == "stop"}
        self.assertEqual(set(started.values()), set(faults), text)
        self.assertEqual(set(started), stopped, "a fault was never healed\n" + text)

    def test_set_at_quorum_loses_no_acknowledged_write(self):
        faults = list(nemesis.KINDS)
        text, ops, nem = self.run_nemesis("set", faults, 45)
        self.assert_each_kind_injected_and_healed(faults, nem, text)
        adds = [o for o in ops if o.f == "add" and o.outcome == "ok"]
        self.assertTrue(adds, "no acknowledged write: nothing proven\n" + text)
        self.assertIn(" 0 not read", text)                  # every set read at the end
        lost = sum(setfull.check_key(key_ops)["summary"]["lost"]
                   for key_ops in history.by_key(ops).values())
        print(f"NEMESIS-SET acknowledged={len(adds)} lost={lost}")
        self.assertEqual(lost, 0, text)
        self.assertRegex(text, r"lost acknowledged writes: 0;")

    def test_counter_at_serial_loses_no_increment(self):
        faults = ["partition-halves", "kill", "pause"]
        text, ops, nem = self.run_nemesis("counter", faults, 30, "serial")
        self.assert_each_kind_injected_and_healed(faults, nem, text)
        s = counter.check_key(ops)["summary"]
        self.assertGreater(s["acknowledged"], 0, text)
        self.assertIsNotNone(s["final"], "the final read at consistency=all failed\n" + text)
        m = re.search(r"counter: acknowledged (\d+), unknown (\d+), final \(consistency=all\) "
                      r"(\d+); lost acknowledged writes: (\d+)", text)
        self.assertIsNotNone(m, text)
        self.assertEqual((int(m.group(1)), int(m.group(3))), (s["acknowledged"], s["final"]))
        print(f"NEMESIS-COUNTER acknowledged={s['acknowledged']} unknown={s['unknown']} "
              f"final={s['final']}")
        self.assertGreaterEqual(s["final"], s["acknowledged"], text)
        self.assertLessEqual(s["final"], s["acknowledged"] + s["unknown"], text)
        self.assertIn("\nkvcheck nemesis: no anomaly", text)

    def test_register_at_serial_is_linearizable(self):
        faults = list(nemesis.KINDS)
        text, ops, nem = self.run_nemesis("register", faults, 45, "serial")
        self.assert_each_kind_injected_and_healed(faults, nem, text)
        writes = [o for o in ops if o.f in ("write", "cas") and o.outcome == "ok"]
        self.assertTrue(writes, "no acknowledged write: nothing proven\n" + text)
        print(f"NEMESIS-REGISTER acknowledged writes={len(writes)}")
        self.assertIn("\nkvcheck nemesis: no anomaly", text)

if __name__ == "__main__":
    if KVD and not os.environ.get(IN_NETNS_ENV):
        reason = missing()
        if reason:
            print(f"SKIP: {reason}")
            sys.exit(SKIPPED)
        os.environ[IN_NETNS_ENV] = "1"
        sys.stdout.flush()
        os.execvp("sh", ["sh", IN_NETNS, sys.executable, os.path.abspath(__file__),
                         *sys.argv[1:]])
    unittest.main()
