"""experiments/bandits.py end to end at a tiny size (synthetic data), and its errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import bandits
from rec_jax.tensorboard import read_scalars

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~17 s: the study's whole pipeline (CI's second step runs it)
def test_bandits_end_to_end_tiny(tmp_path):
    out = tmp_path / "run"
    argv = ["--data", "synthetic", "--out", str(out), "--seeds", "2", "--steps", "6", "--streams", "2",
            "--envs", "bernoulli,ml100k", "--policies", "ucb1,linucb"]
    assert bandits.cli(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    envs, policies = ("bernoulli", "synthetic_recsys"), ("ucb1", "linucb")  # --data synthetic swaps ml100k
    expected = {f"{m}/{e}/{p}{ci}" for m in ("final_regret", "final_ctr", "final_reward")
                for e in envs for p in policies for ci in ("", "_ci95")}
    assert set(metrics) == expected
    curves = np.load(out / "curves.npz")
    np.testing.assert_array_equal(curves["t"], np.arange(1, 7))
    for e in envs:
        for p in policies:
            cum_regret = curves[f"{e}/{p}/cum_regret"].astype(np.float64)  # [seeds, T]
            assert cum_regret.shape == (2, 6) and np.all(np.diff(cum_regret, axis=1) >= -1e-6)
            np.testing.assert_allclose(metrics[f"final_regret/{e}/{p}"], cum_regret[:, -1].mean(), rtol=1e-5)
            half = 12.706 * cum_regret[:, -1].std(ddof=1) / np.sqrt(2)  # t_{0.975, 1 dof}
            np.testing.assert_allclose(metrics[f"final_regret/{e}/{p}_ci95"], half, rtol=1e-4, atol=1e-6)
            ctr = curves[f"{e}/{p}/ctr"]
            np.testing.assert_allclose(metrics[f"final_ctr/{e}/{p}"], ctr[:, -1].mean(), rtol=1e-5)
        assert (out / f"regret_{e}.png").stat().st_size > 0 and (out / f"ctr_{e}.png").stat().st_size > 0
    # TensorBoard events: the seed-mean curves, step by step; the last points are the final metrics
    events = read_scalars(out / "tb")
    assert set(events) == {f"{e}/{p}/{w}" for e in envs for p in policies for w in ("ctr", "cum_regret")}
    for e in envs:
        for p in policies:
            for what in ("ctr", "cum_regret"):
                mean = curves[f"{e}/{p}/{what}"].astype(np.float64).mean(axis=0).astype(np.float32)
                assert [s for s, _ in events[f"{e}/{p}/{what}"]] == list(range(1, 7))
                np.testing.assert_allclose([v for _, v in events[f"{e}/{p}/{what}"]], mean, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(events[f"{e}/{p}/cum_regret"][-1][1], metrics[f"final_regret/{e}/{p}"],
                                       rtol=1e-6)
            np.testing.assert_allclose(events[f"{e}/{p}/ctr"][-1][1], metrics[f"final_ctr/{e}/{p}"], rtol=1e-6)
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["envs"] == list(envs) and config["config"]["seeds"] == 2
    assert {"versions", "git_commit", "device_kind", "device_count", "date"} <= set(config["provenance"])


def test_bandits_unknown_policy_is_one_line_exit_2(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "experiments/bandits.py", "--data", "synthetic", "--out", str(out), "--policies", "nope"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "nope" in proc.stderr
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written
