"""End-to-end training runs at tiny size: every preset family, the CLI, and exact resume after a kill."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "experiments" / "train_sequential.py"
ACCURACY_KEYS = ("test/ndcg@10", "test/hr@10", "test/mrr@10", "test_masked/ndcg@20",
                 "test_unmasked/hr@20", "valid/ndcg@10", "best_epoch", "epochs_run")


def _run_main(args):
    sys.path.insert(0, str(REPO))
    from experiments.train_sequential import main

    return main(args)


# BERT4Rec and GRU4Rec end to end run with -m slow (their models: tests/test_models_*.py).
@pytest.mark.parametrize("preset", ["tiny-sasrec", pytest.param("tiny-bert4rec", marks=pytest.mark.slow),
                                    pytest.param("tiny-gru4rec", marks=pytest.mark.slow)])
def test_preset_end_to_end(tmp_path, preset):
    out = tmp_path / preset
    metrics = _run_main(["--preset", preset, "--out", str(out), "--epochs", "2", "--no-progress"])
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == pytest.approx(metrics)
    for key in ("test/ndcg@10", "test/hr@10", "test/mrr@10", "test/ndcg@20", "test/hr@20", "valid/ndcg@10",
                "best_epoch", "epochs_run", "train_epoch_s_median", "train_s_to_best", "compile_s", "eval_s",
                "encode_s", "score_s", "rank_s",
                "num_users", "num_items", "num_interactions", "test_masked/ndcg@10", "test_unmasked/ndcg@10"):
        assert key in metrics, key
    # test/* follows the run's switch (masking on by default); per_user.npz holds what the means came from
    per_user = np.load(out / "per_user.npz")
    np.testing.assert_allclose(metrics["test/ndcg@10"], per_user["masked__ndcg@10"].mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics["test_unmasked/hr@10"], per_user["unmasked__hr@10"].mean(), rtol=1e-6)
    assert metrics["num_users"] == per_user["masked__ndcg@10"].shape[0]
    assert metrics["epochs_run"] == 2
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["model"] == preset.split("-")[1]
    assert "jax" in config["provenance"]["versions"]
    assert (out / "learning_curve.png").stat().st_size > 1000


@pytest.mark.slow  # a whole (tiny) training run for one CLI switch (~10 s cold)
def test_no_mask_history_switch_changes_test_keys(tmp_path):
    metrics = _run_main(["--preset", "tiny-sasrec", "--out", str(tmp_path), "--epochs", "1",
                         "--no-mask-history", "--no-progress"])
    assert metrics["test/ndcg@10"] == metrics["test_unmasked/ndcg@10"]
    assert metrics["test/hr@20"] == metrics["test_unmasked/hr@20"]


def test_bad_preset_and_data_give_one_line_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,timestamp\n1,2,3\n1,x,4\n")
    for args, needle in ((["--preset", "nope"], "unknown preset 'nope'"),
                         (["--preset", "tiny-sasrec", "--data", str(bad)], "line 3")):
        out = tmp_path / "out"
        proc = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", str(out)],
                              capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"})
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], proc.stderr
        assert not out.exists()  # nothing half-written


@pytest.mark.slow  # a killed training subprocess and its resumed run (~20 s cold)
def test_killed_run_resumes_to_identical_metrics(tmp_path):
    """SIGKILL a run after its second checkpoint, --resume it, compare with an uninterrupted run."""
    common = ["--preset", "tiny-sasrec", "--epochs", "6", "--patience", "100", "--no-progress"]
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(SCRIPT), *common, "--out", str(killed)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpts = killed / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        steps = [int(p.name) for p in ckpts.glob("*") if p.name.isdigit()] if ckpts.exists() else []
        if steps and max(steps) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.json").exists()

    resumed = _run_main([*common, "--out", str(killed), "--resume"])
    config = json.loads((killed / "config.json").read_text())
    assert config["resumed_from_epoch"] >= 2
    straight = _run_main([*common, "--out", str(tmp_path / "straight")])
    for key in ACCURACY_KEYS:
        assert resumed[key] == straight[key], key


def test_resume_without_checkpoint_starts_fresh(tmp_path, capsys):
    _run_main(["--preset", "tiny-gru4rec", "--epochs", "1", "--out", str(tmp_path), "--resume", "--no-progress"])
    assert "no checkpoint" in capsys.readouterr().out
