"""experiments/fairness.py end to end at a tiny size (synthetic data, one training epoch)."""
import json
import pytest

import numpy as np

from experiments import fairness


@pytest.mark.slow  # the whole fairness study end to end (its pieces: tests/test_fairness.py)
def test_fairness_end_to_end_tiny(tmp_path):
    out = tmp_path / "run"
    lambdas = [0.0, 1.0, 10.0, 100.0, 1000.0]
    argv = ["--data", "synthetic", "--out", str(out), "--epochs", "1", "--seeds", "2",
            "--lambdas", ",".join(map(str, lambdas)), "--sim-lambdas", "0,100", "--sim-streams", "2",
            "--sim-steps", "3", "--sim-slate-size", "2"]
    assert fairness.cli(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for lam in lambdas:
        for name in ("gini@10", "ndcg@10", "coverage@10"):
            key = f"{name}/lambda={lam!r}"
            assert key in metrics and f"{key}_ci95" in metrics
    curves = np.load(out / "curves.npz")
    gini = curves["offline/gini"]  # [seeds, lambdas]
    assert gini.shape == (2, 5)
    for j, lam in enumerate(lambdas):
        np.testing.assert_allclose(metrics[f"gini@10/lambda={lam!r}"], gini[:, j].mean(), rtol=1e-6)
        np.testing.assert_allclose(metrics[f"gini@10/lambda={lam!r}_ci95"],
                                   12.706 * gini[:, j].std(ddof=1) / np.sqrt(2), rtol=1e-4, atol=1e-9)
    assert metrics["gini_monotone_in_lambda"] == float(np.all(np.diff(gini.mean(0)) <= 1e-9))
    assert gini.mean(0)[-1] < gini.mean(0)[0]  # the knob spreads exposure
    assert {"sim/ctr/lambda=0.0", "sim/gini/lambda=100.0_ci95"} <= set(metrics)
    for name in ("tradeoff_offline.png", "tradeoff_sim.png", "config.json"):
        assert (out / name).stat().st_size > 0


def test_fairness_bad_lambdas_is_one_line_error(tmp_path, capsys):
    assert fairness.cli(["--data", "synthetic", "--out", str(tmp_path / "r"), "--lambdas", "0,-1"]) == 2
    assert "--lambdas" in capsys.readouterr().err and not (tmp_path / "r").exists()
