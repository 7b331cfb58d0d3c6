"""Hand-written register histories, each small enough to reason about."""

import unittest

from support import Builder

from checker import register_check


def verdict(builder):
    return register_check.check_key(builder.ops())


class LinearizableHistories(unittest.TestCase):
    def assertValid(self, b):
        r = verdict(b)
        self.assertTrue(r["valid"], r["anomalies"])

    def test_sequential_write_then_read(self):
        b = Builder().invoke(0, "write", "a").ok(0, version=1)
        b.invoke(0, "read").ok(0, version=1, value="a")
        self.assertValid(b)

    def test_read_of_never_written_key_is_not_found(self):
        self.assertValid(Builder().invoke(0, "read").ok(0))

    def test_concurrent_writes_either_order(self):
        # p0 and p1 overlap; the read may see either, at version 2.
        for winner, winner_version in (("a", 2), ("b", 2)):
            b = Builder().invoke(0, "write", "a").invoke(1, "write", "b")
            b.ok(0, version=2 if winner == "a" else 1)
            b.ok(1, version=2 if winner == "b" else 1)
            b.invoke(2, "read").ok(2, version=winner_version, value=winner)
            self.assertValid(b)

    def test_read_concurrent_with_write_sees_old_or_new(self):
        for seen in ((None, None), (1, "a")):
            b = Builder().invoke(0, "write", "a").invoke(1, "read")
            b.ok(1, version=seen[0], value=seen[1]).ok(0, version=1)
            self.assertValid(b)

    def test_delete_then_read_not_found_then_write_continues(self):
        b = Builder().invoke(0, "write", "a").ok(0, version=1)
        b.invoke(0, "delete").ok(0, version=2)
        b.invoke(1, "read").ok(1)
        b.invoke(1, "write", "b").ok(1, version=3)
        b.invoke(0, "cas", "c", expected=3).ok(0, version=4)
        self.assertValid(b)

    def test_cas_on_absent_key_and_conflict_reports_current_version(self):
        b = Builder().invoke(0, "cas", "a", expected=0).ok(0, version=1)
        b.invoke(1, "cas", "b", expected=0).fail(1, version=1)
        self.assertValid(b)

    def test_info_write_explains_a_read(self):
        # Without the info write, version 2 with "b" is impossible.
        b = Builder().invoke(0, "write", "a").ok(0, version=1)
        b.invoke(1, "write", "b").info(1)
        b.invoke(2, "read").ok(2, version=2, value="b")
        self.assertValid(b)

    def test_info_write_may_never_take_effect(self):
        b = Builder().invoke(1, "write", "b").info(1)
        b.invoke(0, "write", "a").ok(0, version=1)
        b.invoke(2, "read").ok(2, version=1, value="a")
        self.assertValid(b)

    def test_info_cas_makes_a_later_conflict_legal(self):
        b = Builder().invoke(0, "write", "a").ok(0, version=1)
        b.invoke(1, "cas", "b", expected=1).info(1)
        b.invoke(2, "cas", "c", expected=1).fail(2, version=2)
        self.assertValid(b)

    def test_unfinished_invocation_is_info(self):
        b = Builder().invoke(1, "write", "b")
        b.invoke(2, "read").ok(2, version=1, value="b")
        self.assertValid(b)

    def test_failed_write_is_ignored(self):
        b = Builder().invoke(0, "write", "a").fail(0)
        b.invoke(1, "read").ok(1)
        self.assertValid(b)


class NonLinearizableHistories(unittest.TestCase):
    def assertAnomaly(self, b, kind):
        r = verdict(b)
        self.assertIs(r["valid"], False)
        self.assertEqual([a["kind"] for a in r["anomalies"]][:1], [kind], r["anomalies"])
        return r["anomalies"][0]

    def test_stale_read_after_completed_write(self):
        b = Builder().invoke(0, "write", "a").ok(0, version=1)
        b.invoke(0, "write", "b").ok(0, version=2)
        b.invoke(1, "read").ok(1, version=1, value="a")
        a = self.assertAnomaly(b, "not-linearizable")
        # The witness names the read and the write it missed.
        self.assertIn("read", [op.f for op in a["ops"]])
        self.assertIn(2, [op.out_version for op in a["ops"]])

    def test_not_found_after_completed_write(self):
        b = Builder().invoke(0, "write", "a").ok(0, version=1)
        b.invoke(1, "read").ok(1)
        self.assertAnomaly(b, "not-linearizable")

    def test_lost_update_two_cas_from_same_version(self):
        b = Builder().invoke(0, "write", "a").ok(0, version=1)
        b.invoke(1, "cas", "b", expected=1).invoke(2, "cas", "c", expected=1)
        b.ok(1, version=2).ok(2, version=2)
        self.assertAnomaly(b, "duplicate-version")

    def test_lost_update_without_versions_in_common(self):
        # Both cas from version 1 acknowledged with distinct versions: the
        # pre-check cannot see it, the search must.
        b = Builder().invoke(0, "write", "a").ok(0, version=1)
        b.invoke(1, "cas", "b", expected=1).invoke(2, "cas", "c", expected=1)
        b.ok(1, version=2).ok(2, version=3)
        self.assertAnomaly(b, "not-linearizable")

    def test_read_of_version_no_write_made(self):
        b = Builder().invoke(0, "write", "a").ok(0, version=1)
        b.invoke(1, "read").ok(1, version=7, value="a")
        self.assertAnomaly(b, "impossible-version")

    def test_read_of_wrong_value(self):
        b = Builder().invoke(0, "write", "a").ok(0, version=1)
        b.invoke(1, "read").ok(1, version=1, value="z")
        self.assertAnomaly(b, "wrong-value")

    def test_read_from_the_future(self):
        b = Builder().invoke(1, "read").ok(1, version=1, value="a")
        b.invoke(0, "write", "a").ok(0, version=1)
        self.assertAnomaly(b, "read-from-future")

    def test_info_cannot_take_effect_before_its_invocation(self):
        b = Builder().invoke(0, "write", "a").ok(0, version=1)
        b.invoke(2, "read").ok(2, version=2, value="b")
        b.invoke(1, "write", "b").info(1)
        r = verdict(b)
        self.assertIs(r["valid"], False)

    def test_conflict_with_wrong_current_version(self):
        b = Builder().invoke(0, "write", "a").ok(0, version=1)
        b.invoke(1, "cas", "b", expected=5).fail(1, version=0)
        self.assertAnomaly(b, "not-linearizable")

    def test_search_gives_up_instead_of_hanging(self):
        b = Builder()
        for p in range(12):
            b.invoke(p, "write", f"v{p}")
        for p in range(12):
            b.info(p)
        b.invoke(99, "read").ok(99, version=12, value="v0")
        r = register_check.check_key(b.ops(), max_states=50)
        self.assertIsNone(r["valid"])
        self.assertEqual(r["anomalies"][0]["kind"], "too-hard")


if __name__ == "__main__":
    unittest.main()
