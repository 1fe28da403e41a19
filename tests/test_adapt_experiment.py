"""experiments/adaptive.py end to end at a tiny size: keys, CIs and files."""
import json

import numpy as np
import pytest

from experiments import adaptive
from rec_jax.tensorboard import read_scalars


# Five engine programs on the recommender env compile here (~1 min on 2 free cores, several
# under load): behind the slow marker, per the suite's time budget.
@pytest.mark.slow
def test_adaptive_end_to_end_tiny(tmp_path):
    out = tmp_path / "run"
    argv = ["--out", str(out), "--seeds", "2", "--steps", "20", "--streams", "2", "--pbt-members", "2",
            "--period", "10", "--pbt-interval", "10", "--grid", "0.05,0.5"]
    assert adaptive.cli(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    variants = ["fixed_eps_0.05", "fixed_eps_0.5", "adaptive_meta_ts", "adaptive_meta_exp3", "adaptive_pbt",
                "adaptive_drift_reset"]
    expected = {f"cumulative_reward/{s}/{v}{ci}" for s in ("stationary", "gradual_drift", "abrupt_drift")
                for v in variants for ci in ("", "_ci95")}
    expected |= {"false_alarm_rate/stationary/adaptive_drift_reset",
                 "false_alarm_rate/stationary/adaptive_drift_reset_ci95"}
    assert set(metrics) == expected
    curves = np.load(out / "curves.npz")
    for s, scen in enumerate(("stationary", "gradual_drift", "abrupt_drift")):
        for v in variants:
            per_step = curves[v][s].astype(np.float64)  # [seeds, T]
            assert per_step.shape == (2, 20)
            total = per_step.sum(axis=1)
            np.testing.assert_allclose(metrics[f"cumulative_reward/{scen}/{v}"], total.mean(), rtol=1e-6)
            half = 12.706 * total.std(ddof=1) / np.sqrt(2)  # t_{0.975, 1 dof}
            np.testing.assert_allclose(metrics[f"cumulative_reward/{scen}/{v}_ci95"], half, rtol=1e-4, atol=1e-9)
    chosen = curves["trace__meta_ts__epsilon"]  # [3, seeds, periods]: always a grid value
    assert chosen.shape == (3, 2, 2) and set(np.unique(chosen)) <= {np.float32(0.05), np.float32(0.5)}
    # TensorBoard events: the epsilons chosen over time and the reward curves, means over seeds
    events = read_scalars(out / "tb")
    for s, scen in enumerate(("stationary", "gradual_drift", "abrupt_drift")):
        for method in ("ts", "exp3"):  # the choice for the period starting at step t
            mean = curves[f"trace__meta_{method}__epsilon"][s].astype(np.float64).mean(axis=0)  # [P]
            expected = [(p * 10 + 1, np.float32(e)) for p, e in enumerate(mean)]
            np.testing.assert_allclose(events[f"{scen}/adaptive_meta_{method}/epsilon"], expected, rtol=1e-6)
        pbt = curves["trace__pbt__epsilon"][s].astype(np.float64)  # [seeds, R, M]
        expected = [((r + 1) * 10, np.float32(e)) for r, e in enumerate(pbt.mean(axis=(0, 2)))]
        np.testing.assert_allclose(events[f"{scen}/adaptive_pbt/epsilon"], expected, rtol=1e-6)
        for v in variants:
            step, total = events[f"{scen}/{v}/cum_reward"][-1]
            assert step == 20
            np.testing.assert_allclose(total, metrics[f"cumulative_reward/{scen}/{v}"], rtol=1e-6)
            per_step = curves[v][s].astype(np.float64).mean(axis=0)
            np.testing.assert_allclose([y for _, y in events[f"{scen}/{v}/reward"]], per_step, rtol=1e-6, atol=1e-7)
    for name in ("cumulative_reward.png", "chosen_setting.png", "pbt_trajectories.png"):
        assert (out / name).stat().st_size > 0
    targets = json.loads((out / "targets.json").read_text())
    assert "abrupt_drift/some_adaptive_beats_every_fixed" in targets
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["grid"] == [0.05, 0.5] and config["config"]["shift_step"] == 10


def test_bad_grid_is_a_one_line_error(tmp_path, capsys):
    assert adaptive.cli(["--out", str(tmp_path / "run"), "--grid", "0.1"]) == 2
    assert "--grid" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_steps_must_be_a_multiple_of_the_period():
    with pytest.raises(ValueError, match="--steps"):
        adaptive.resolve(adaptive.Config(steps=30, period=25))
