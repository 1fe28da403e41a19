"""experiments/realtime.py end to end at a tiny size (synthetic data), and its errors."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from experiments import realtime
from rec_jax.data import load

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~80 s of CPU: a dozen XLA compilations (training, serving buckets, rebuilds)
def test_realtime_end_to_end_tiny(tmp_path):
    out = tmp_path / "run"
    argv = ["--data", "synthetic", "--preset", "tiny-sasrec", "--epochs", "1", "--out", str(out),
            "--max-events", "120", "--max-events-batch1", "24", "--batch-sizes", "1,4", "--update-every", "4",
            "--hr-bins", "4", "--load-events", "200"]
    assert realtime.cli(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for b in (1, 4):
        for key in ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99", "events_per_s", "incremental_speedup"):
            assert np.isfinite(metrics[f"{key}/batch={b}"]), key
    for key in ("cache_hit_rate", "prequential_hr@10/online", "prequential_hr@10/static",
                "prequential_hr@10/static_reencode"):
        assert 0.0 <= metrics[key] <= 1.0, key
    curves = np.load(out / "curves.npz")
    for b in (1, 4):
        lat = curves[f"latency_ms/batch={b}"]
        assert len(lat) == (24 if b == 1 else 120)
        np.testing.assert_allclose(metrics[f"latency_ms_p99/batch={b}"], np.percentile(lat, 99), rtol=1e-5)
    assert curves["hr_curve/online"].shape == (4,)
    # the bounded cache (a quarter of the users) returns the slates of an unbounded one
    assert metrics["slates_identical_to_unbounded"] == 1.0
    assert metrics["cache_capacity"] == metrics["num_users"] // 4
    # load test: every user cached, so the only misses are each user's first event
    seqs = load("synthetic")
    _, load_users, _ = realtime.concurrent_stream(seqs)
    first_events = len(np.unique(load_users[:200]))
    np.testing.assert_allclose(metrics["load_cache_hit_rate/batch=4"], 1 - first_events / 200)
    assert metrics["load_mean_micro_batch/batch=4"] == 4.0 and metrics["load_events"] == 200
    assert metrics["load_events_per_s/batch=4/quarter_cache"] > 0
    warm = metrics["load_events_per_s_warm/batch=4"]  # NaN when the prefix never leaves the cold start
    assert (np.isnan(warm) and first_events * 1 > 196) or warm > 0
    for name in ("latency_vs_batch.png", "prequential_hr.png", "config.json"):
        assert (out / name).stat().st_size > 0


def test_concurrent_stream_keeps_every_users_order():
    seqs = load("synthetic")
    histories, users, items = realtime.concurrent_stream(seqs)
    assert all(len(h) == 0 for h in histories) and len(users) == len(seqs.items)
    for u in range(seqs.num_users):
        np.testing.assert_array_equal(items[users == u], seqs.items[seqs.offsets[u]:seqs.offsets[u + 1]])
    # round k holds every user's k-th event: a user's k-th event comes after every user's (k-1)-th
    rank = np.zeros(len(users), np.int64)
    for u in range(seqs.num_users):
        rank[users == u] = np.arange(np.sum(users == u))
    assert np.all(np.diff(rank) >= 0)


def test_realtime_bad_option_is_one_line_exit_2(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "experiments/realtime.py", "--data", "synthetic", "--out", str(out), "--eviction", "nope"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "eviction" in proc.stderr
    assert not out.exists() and not list(tmp_path.iterdir())
