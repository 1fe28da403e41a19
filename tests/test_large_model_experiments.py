"""experiments/large_model_ee.py and online_learning.py end to end at a tiny size:
a tiny SASRec trained for one epoch on the cached ML-100K, a few users and steps."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rec_jax.data.fetch import is_fetched

pytestmark = pytest.mark.skipif(not is_fetched("ml-100k"), reason="ML-100K is not in the data cache "
                                "(run `python -m rec_jax.data fetch ml-100k`)")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from rec_jax.train.config import TrainConfig
    from rec_jax.train.run import train_and_evaluate

    out = tmp_path_factory.mktemp("tiny_sasrec")
    config = TrainConfig(data="ml-100k", model="sasrec", max_len=8, window_stride=8, dim=8, num_layers=1,
                         num_heads=1, ff_dim=16, batch_size=256, batch_unit="window", epochs=1, patience=1,
                         eval_batch_size=512)
    train_and_evaluate(config, out, progress=False, log=lambda *_: None)
    return out


@pytest.mark.slow  # trains a tiny SASRec on ML-100K, then the whole study (about a minute on 2 cores)
def test_large_model_ee_tiny(tiny_model_dir, tmp_path):
    from experiments import large_model_ee

    out = tmp_path / "ee"
    argv = ["--model-dir", str(tiny_model_dir), "--out", str(out), "--steps", "3", "--streams", "2",
            "--seeds", "2", "--slate-size", "2", "--policies", "neural_linear_ucb"]
    assert large_model_ee.cli(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    curves = np.load(out / "curves.npz")
    for p in ("exploit", "neural_linear_ucb"):  # exploit is always the baseline
        per_seed = curves[f"{p}/reward"].astype(np.float64).sum(1)
        np.testing.assert_allclose(metrics[f"cumulative_reward/{p}"], per_seed.mean(), rtol=1e-6)
        assert f"cumulative_regret/{p}_ci95" in metrics
        assert np.all(curves[f"{p}/regret"] >= -1e-6)  # never better than the best slate
    for name in ("reward_curves.png", "regret_curves.png", "config.json"):
        assert (out / name).stat().st_size > 0


def test_large_model_ee_unknown_policy_is_one_line_error(tmp_path, capsys):
    from experiments import large_model_ee

    assert large_model_ee.cli(["--out", str(tmp_path / "r"), "--policies", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--policies" in err and err.count("\n") == 1 and not (tmp_path / "r").exists()


@pytest.mark.slow  # eight online-learning programs (2 scenarios x 4 variants) to compile
def test_online_learning_tiny(tiny_model_dir, tmp_path):
    from experiments import online_learning

    out = tmp_path / "ol"
    argv = ["--model-dir", str(tiny_model_dir), "--out", str(out), "--steps", "4", "--update-every", "2",
            "--streams", "2", "--seeds", "2", "--slate-size", "2"]
    assert online_learning.cli(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for scenario in ("stationary", "abrupt_drift"):
        for v in ("frozen", "online_full_ctr", "online_adapter_ctr", "online_full_reinforce"):
            assert f"cumulative_reward/{scenario}/{v}_ci95" in metrics
    assert metrics["reinforce_tradeoff/uncapped_k1/bias_norm"] < metrics["reinforce_tradeoff/cap2_k1/bias_norm"]
