"""experiments/hparam_search.py end to end at a tiny size (synthetic data), and its errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import hparam_search

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # the whole search end to end (population training itself: tests/test_population.py)
def test_hparam_search_end_to_end_tiny(tmp_path):
    out = tmp_path / "run"
    metrics = hparam_search.main([
        "--preset", "tiny-sasrec", "--data", "synthetic", "--out", str(out), "--lrs", "1e-3,1e-2",
        "--dropouts", "0.1", "--weight-decays", "0", "--epochs", "1", "--sequential-epochs", "1", "--no-progress"])
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)
    names = ["lr_0.001_dropout_0.1_wd_0", "lr_0.01_dropout_0.1_wd_0"]
    for name in names:
        assert 0.0 <= metrics[f"valid_ndcg@10/{name}"] <= 1.0 and 0.0 <= metrics[f"test_ndcg@10/{name}"] <= 1.0
    for key in ("seconds_per_config/population", "seconds_per_config/sequential", "seconds_per_config/ratio",
                "compile_s/population", "compile_s/sequential", "seconds_per_epoch/population_train",
                "seconds_per_epoch/sequential_train"):
        assert metrics[key] > 0, key
    np.testing.assert_allclose(
        metrics["seconds_per_config/ratio"],
        metrics["seconds_per_config/population"] / metrics["seconds_per_config/sequential"])
    # Selection is the argmax of the per-config validation NDCG@10, and its values are the grid's.
    valid = [metrics[f"valid_ndcg@10/{n}"] for n in names]
    assert metrics["selected/index"] == int(np.argmax(valid))
    assert metrics["selected/valid_ndcg@10"] == max(valid)
    assert metrics["selected/learning_rate"] == [1e-3, 1e-2][metrics["selected/index"]]
    assert metrics["compiles/sequential"] == 1  # hyperparameters are data: every P=1 run reuses one compile
    # The P=1 runs retrace the members' first epoch: only float noise apart.
    assert metrics["check/max_abs_diff_valid_ndcg@10"] < 1e-4
    curves = np.load(out / "curves.npz")
    np.testing.assert_allclose(curves["valid_ndcg10"].max(axis=0), valid, rtol=1e-6)
    config = json.loads((out / "config.json").read_text())
    assert [c["name"] for c in config["config"]["configs"]] == names
    assert {"versions", "git_commit", "device_kind", "date"} <= set(config["provenance"])
    assert (out / "valid_ndcg.png").stat().st_size > 1000


def test_hparam_search_bad_grid_is_one_line_exit_2(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "experiments/hparam_search.py", "--preset", "tiny-sasrec", "--data", "synthetic",
         "--out", str(out), "--dropouts", "0.1,1.0"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "dropout=1.0" in proc.stderr, proc.stderr
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing half-written
