"""Synthetic logs at the public data sets' shapes: exact counts, distinct pairs, the files' layouts."""
import json

import numpy as np
import pytest

from rec_jax.data import load_interactions
from rec_jax.data.scale_logs import SHAPES, format_rows, get_shape, synthesize, write_log


def test_format_rows_equals_python_formatting():
    rng = np.random.default_rng(0)
    users = np.concatenate([[0, 1, 9, 10, 99, 100], rng.integers(0, 10**9, 200)])
    tenths = np.concatenate([[0, 5, 10, 35, 50, 105], rng.integers(0, 1000, 200)])
    text = format_rows([(users, False), (tenths, True)], b"::").decode()
    want = "".join(f"{u}::{t // 10}.{t % 10}\n" for u, t in zip(users, tenths))
    assert text == want


@pytest.mark.parametrize("name,scale", [("ml20m", 0.002), ("ml1m", 0.05), ("catalog1m", 0.002)])
def test_synthesize_counts_and_pairs(name, scale):
    shape = get_shape(name, scale)
    cols = synthesize(shape, seed=1)
    users, items = cols["user"], cols["item"]
    assert len(users) == shape.num_rows  # exact, as published (scaled)
    keys = users * (items.max() + 1) + items
    assert len(np.unique(keys)) == len(keys)  # one row per (user, item), like a ratings file
    per_user = np.bincount(users)[1:]
    assert len(per_user) == shape.num_users and per_user.min() >= shape.min_len
    assert np.all(np.diff(keys) > 0)  # sorted by user, then item id (the GroupLens file order)
    per_item = np.unique(items, return_counts=True)[1]
    if shape.item_floor:
        assert per_item.min() >= 1 and np.mean(per_item >= shape.item_floor) > 0.95
    # a popularity skew: the top 10% of items hold more than twice their share of the rows
    top = np.sort(per_item)[::-1][: max(1, len(per_item) // 10)]
    assert top.sum() / len(items) > 0.2


@pytest.mark.parametrize("name,scale", [("ml20m", 0.001), ("ml1m", 0.02)])
def test_written_log_loads_back(tmp_path, name, scale):
    shape = get_shape(name, scale)
    path = write_log(shape, tmp_path, seed=2, rows_per_block=997)  # several blocks
    assert path.name == SHAPES[name].file_name and not list(tmp_path.glob("*.partial"))
    inter = load_interactions(path)
    cols = synthesize(shape, seed=2)
    np.testing.assert_array_equal(inter.user, cols["user"])
    np.testing.assert_array_equal(inter.item, cols["item"])
    np.testing.assert_array_equal(inter.timestamp, cols["timestamp"])
    stars = cols["rating10"] / 10 if path.suffix == ".csv" else np.maximum(10, cols["rating10"]) // 10
    np.testing.assert_allclose(inter.rating, stars)


def test_unknown_shape_is_one_line():
    with pytest.raises(ValueError, match="unknown shape 'ml30m'; expected one of: ml20m, ml1m, catalog1m"):
        get_shape("ml30m")


@pytest.mark.slow  # ~10 s: a training epoch and a ranking pass compiled
def test_bench_scale_tiny_run(tmp_path, capsys):
    """The benchmark's plumbing end to end on a tiny ml1m-shaped log (the figures are the script's job)."""
    from experiments.bench_scale import cli

    code = cli(["--shape", "ml1m", "--scale", "0.01", "--max-len", "8", "--dim", "8", "--batch-size", "16",
                "--epoch-fraction", "0.5", "--eval-users", "40", "--eval-batch-size", "16",
                "--workdir", str(tmp_path), "--no-roofline"])
    assert code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    shape = get_shape("ml1m", 0.01)
    assert out["raw_rows"] == shape.num_rows and out["num_interactions"] <= shape.num_rows
    assert out["eval_users"] == 40 and out["epoch_s_extrapolated"] is True
    assert out["epoch_s"] == pytest.approx(out["trained_s"] * out["num_windows"] / out["trained_windows"])
    for key in ("load_s", "preprocess_s", "epoch_s", "eval_s", "encode_s", "score_s", "rank_s", "peak_rss_mb"):
        assert out[key] > 0, key
    assert out["rank_flops_per_step"] == 2 * 8 * (out["num_items"] + 1) and out["train_flops_per_step"] > 0
    assert np.isfinite(out["train_loss"]) and 0 <= out["test_ndcg@10_after_fraction"] <= 1
