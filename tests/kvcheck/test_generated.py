"""Generated register histories: linearizable by construction (must pass),
then each with one injected anomaly (must fail), over fixed seeds."""

import random
import unittest

from simulate import inject, simulate, to_ops

from checker import cli, history, register_check

SEEDS = range(300)


class GeneratedHistories(unittest.TestCase):
    def test_simulated_register_is_linearizable(self):
        for seed in SEEDS:
            with self.subTest(seed=seed):
                r = register_check.check_key(to_ops(simulate(seed)))
                self.assertIs(r["valid"], True, r["anomalies"])

    def test_simulated_register_with_more_concurrency(self):
        for seed in range(50):
            with self.subTest(seed=seed):
                ops = to_ops(simulate(seed, processes=8, n_ops=60, info_rate=0.03))
                self.assertIs(register_check.check_key(ops)["valid"], True)

    def test_one_injected_anomaly_is_found(self):
        injected = {}
        for seed in SEEDS:
            rng = random.Random(seed ^ 0x5EED)
            # Half without deletes, where a not-found read can be impossible.
            ops = simulate(seed, deletes=seed % 2 == 0)
            kind = inject(ops, rng)
            if kind is None:
                continue
            injected[kind] = injected.get(kind, 0) + 1
            with self.subTest(seed=seed, kind=kind):
                r = register_check.check_key(to_ops(ops))
                self.assertIs(r["valid"], False, kind)
                self.assertTrue(r["anomalies"][0]["ops"] or r["anomalies"][0]["kind"])
        # The generator must keep offering candidates, or this test proves little.
        self.assertGreater(sum(injected.values()), len(SEEDS) * 9 // 10, injected)
        self.assertEqual(len(injected), 4, injected)


class Performance(unittest.TestCase):
    def test_thousand_ops_on_ten_keys_completes(self):
        # No timing assertion (BRIEF section 6): ctest's TIMEOUT bounds it.
        ops = []
        for k in range(10):
            ops += simulate(1000 + k, key=f"k{k}", processes=5, first_process=10 * k, n_ops=100, info_rate=0.02)
        results = cli._check(to_ops(ops), "register", 200_000)
        self.assertEqual(len(results), 10)
        for key, r in results.items():
            self.assertIs(r["valid"], True, (key, r["anomalies"]))
        self.assertEqual(sum(history.counts(to_ops(ops)).values()), 1000)


if __name__ == "__main__":
    unittest.main()
