"""experiments/bench_ranking.py's plumbing at a tiny shape: one JSON line with every key."""
import json

import numpy as np

from experiments import bench_ranking


def test_random_eval_arrays_are_consistent():
    arrays = bench_ranking.random_eval_arrays(20, 15, 6, 2, seed=0)
    assert arrays.inputs.shape == (20, 6) and arrays.targets.min() >= 1 and arrays.targets.max() <= 15
    for u in range(20):
        row = arrays.inputs[u]
        np.testing.assert_array_equal(arrays.seen_items[arrays.seen_offsets[u]:arrays.seen_offsets[u + 1]],
                                      np.unique(row[row > 0]))
        assert (row > 0).sum() >= 2


def test_bench_prints_one_json_line(capsys):
    out = bench_ranking.main(bench_ranking.Config(users=40, items=30, dim=8, max_len=6, min_len=2,
                                                  batch_size=16, chunk_size=16, encode_batch_size=16, roofline=False))
    line = capsys.readouterr().out.strip().splitlines()
    assert len(line) == 1 and json.loads(line[0]) == out
    for key in ("matmul_s", "matmul_1024_s", "ratio_vs_1024", "encode_s", "score_s", "rank_s", "eval_s", "ratio", "peak_rss_mb", "cpu_model"):
        assert key in out
    assert out["ratio"] > 0 and out["users"] == 40 and out["items"] == 30
    # the minimal count by hand: 2 D (N + 1) per user; the table (N + 1) x (D + 1) words once per 16 users
    assert out["flops_per_step"] == 2 * 8 * 31 and out["bytes_per_step"] == 4 * (31 * 9 / 16 + 8)
    assert out["xla_flops_per_step"] >= out["flops_per_step"]  # XLA counts the scoring at least
    assert out["achieved_gflop_s"] == out["users"] / out["rank_s"] * out["flops_per_step"] / 1e9
    assert out["roofline_fraction"] is None  # no probe asked
