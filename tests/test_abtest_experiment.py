"""experiments/ab_test.py end to end at a tiny size (synthetic recommender env)."""
import json
import pytest

import numpy as np

from experiments import ab_test


@pytest.mark.slow  # the whole A/B study end to end (its statistics: tests/test_abtest.py)
def test_ab_test_end_to_end_tiny(tmp_path):
    out = tmp_path / "run"
    argv = ["--data", "synthetic", "--out", str(out), "--batches", "4", "--units-per-batch", "6",
            "--session-steps", "3", "--aa-replications", "200", "--power-replications", "200"]
    assert ab_test.cli(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    required = {"alpha"} | {f"aa_false_positive_rate/{p}" for p in ("fixed_horizon", "sequential", "naive_peeking")}
    assert required <= set(metrics) and metrics["alpha"] == 0.05
    for p in ("fixed_horizon", "sequential", "naive_peeking"):
        rate = metrics[f"aa_false_positive_rate/{p}"]
        assert 0.0 <= rate <= 1.0
        np.testing.assert_allclose(metrics[f"aa_false_positive_rate/{p}_ci95"],
                                   1.959964 * np.sqrt(rate * (1 - rate) / 200), rtol=1e-5)
    # Naive peeking rejects in every replication the fixed-horizon test rejects in (its last look).
    assert metrics["aa_false_positive_rate/naive_peeking"] >= metrics["aa_false_positive_rate/fixed_horizon"]
    curves = np.load(out / "curves.npz")
    assert curves["ab/p_always_valid"].shape == (4,) and np.all(np.diff(curves["ab/p_always_valid"]) <= 0)
    np.testing.assert_allclose(curves["aa/naive_peeking/cum_rejection"][-1],
                               metrics["aa_false_positive_rate/naive_peeking"], atol=1e-9)
    np.testing.assert_allclose(metrics["ab/diff"], metrics["ab/ctr/treatment"] - metrics["ab/ctr/control"], atol=1e-6)
    assert metrics["ab/ci_low"] < metrics["ab/diff"] < metrics["ab/ci_high"]
    for name in ("aa_peeking.png", "ab_looks.png", "config.json"):
        assert (out / name).stat().st_size > 0


def test_ab_test_bad_policy_is_a_value_error(tmp_path):
    assert ab_test.cli(["--data", "synthetic", "--out", str(tmp_path / "r"), "--treatment", "nope"]) == 2
    assert not (tmp_path / "r").exists()
