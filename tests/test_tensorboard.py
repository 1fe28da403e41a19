"""rec_jax.tensorboard: the reader returns what the writer wrote; training and bandit runs write
event files that agree with their metrics.json, checkpoint history and curves.npz."""
import json
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from rec_jax.tensorboard import EventLog, curve_to_events, read_scalars

REPO = Path(__file__).resolve().parents[1]


def f32(x):
    """What a TensorBoard scalar stores: the float32 rounding of ``x``."""
    return float(np.float32(x))


def test_reader_returns_what_was_written_skipping_non_finite(tmp_path):
    rng = np.random.default_rng(0)
    written = {}
    with EventLog(tmp_path) as log:
        for step in (0, 3, 7, 1000):
            values = {"train/loss": rng.normal(), "valid/ndcg@10": rng.uniform(), "n": int(rng.integers(100))}
            assert log.scalars(step, {**values, "nan": float("nan"), "inf": np.inf, "text": "x",
                                      "flag": True, "none": None, "vec": np.zeros(2)}) == 3
            for tag, v in values.items():
                written.setdefault(tag, []).append((step, f32(v)))
        log.scalars(9, {"np32": np.float32(0.1), "np0d": np.array(2.5), "i64": np.int64(-4)})
    written.update({"np32": [(9, f32(0.1))], "np0d": [(9, 2.5)], "i64": [(9, -4.0)]})
    files = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert len(files) == 1
    assert read_scalars(tmp_path / "tb") == written  # exact: same tags (verbatim, '@' kept), steps, order


def test_unwritten_log_leaves_no_file_and_bad_folder_is_value_error(tmp_path):
    with EventLog(tmp_path) as log:
        assert log.scalars(0, {"nan": float("nan")}) == 0
    assert not (tmp_path / "tb").exists()
    with pytest.raises(ValueError, match="no such folder"):
        read_scalars(tmp_path / "tb")


def test_purge_step_drops_later_steps_of_earlier_files(tmp_path):
    with EventLog(tmp_path) as log:  # a "killed" run logged steps 0..4
        for s in range(5):
            log.scalars(s, {"a": s, "b": 10 * s})
    with EventLog(tmp_path, purge_step="first") as log:  # the resumed run restarts at step 3
        for s in range(3, 6):
            log.scalars(s, {"a": 100 + s})
    got = read_scalars(tmp_path / "tb")
    assert got["a"] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 103.0), (4, 104.0), (5, 105.0)]
    assert got["b"] == [(0, 0.0), (1, 10.0), (2, 20.0)]
    with EventLog(tmp_path, purge_step=0) as log:  # a fresh run: everything before is superseded
        log.scalars(2, {"c": 1.0})
    assert read_scalars(tmp_path / "tb") == {"c": [(2, 1.0)]}
    assert len(list((tmp_path / "tb").iterdir())) == 3


def test_truncated_tail_is_ignored_and_corruption_is_an_error(tmp_path):
    with EventLog(tmp_path) as log:
        for s in range(4):
            log.scalars(s, {"a": s})
    (path,) = (tmp_path / "tb").iterdir()
    data = path.read_bytes()
    # walk the TFRecord framing independently to find the last record's start
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        pos += 12 + struct.unpack("<Q", data[pos:pos + 8])[0] + 4
    assert pos == len(data) and len(starts) == 5  # file_version + 4 scalar events
    path.write_bytes(data[:starts[-1] + 15])  # a killed writer: half of the last record
    assert read_scalars(tmp_path / "tb") == {"a": [(0, 0.0), (1, 1.0), (2, 2.0)]}
    corrupt = bytearray(data)
    corrupt[starts[2] + 14] ^= 0xFF  # a byte inside the third record's payload
    path.write_bytes(bytes(corrupt))
    with pytest.raises(ValueError, match="CRC"):
        read_scalars(tmp_path / "tb")


@pytest.mark.parametrize("reduce", ["last", "mean"])
def test_curve_to_events_subsamples_and_keeps_the_last_step(tmp_path, reduce):
    T, max_points = 2500, 1000
    rng = np.random.default_rng(1)
    y, z = rng.normal(size=T), np.cumsum(rng.uniform(size=T))
    with EventLog(tmp_path) as log:
        n = curve_to_events(log, "env/pol", {"ctr": y, "cum_regret": z}, max_points=max_points, reduce=reduce)
        curve_to_events(log, "single", y[:10])  # short: every entry, steps 1..10
    every = 3  # the smallest stride with ceil(2500 / stride) <= 1000
    kept = list(range(every - 1, T, every)) + [T - 1]  # 0-based indices, the last one forced
    assert n == len(kept) == 834 <= max_points
    got = read_scalars(tmp_path / "tb")
    assert [s for s, _ in got["env/pol/ctr"]] == [i + 1 for i in kept]
    prev = -1
    for (_, v_ctr), (_, v_reg), i in zip(got["env/pol/ctr"], got["env/pol/cum_regret"], kept):
        block = slice(prev + 1, i + 1) if reduce == "mean" else slice(i, i + 1)
        assert v_ctr == pytest.approx(f32(np.mean(y[block])), rel=1e-6, abs=1e-7)
        assert v_reg == pytest.approx(f32(np.mean(z[block])), rel=1e-6)
        prev = i
    assert got["single"] == [(t + 1, f32(v)) for t, v in enumerate(y[:10])]
    with pytest.raises(ValueError, match="curves"):
        curve_to_events(EventLog(tmp_path), "x", {"a": y, "b": y[:5]})


@pytest.fixture(scope="module")
def tiny_training_run(tmp_path_factory):
    sys.path.insert(0, str(REPO))
    from experiments.train_sequential import main

    out = tmp_path_factory.mktemp("train") / "run"
    common = ["--preset", "tiny-sasrec", "--epochs", "2", "--patience", "100", "--no-progress"]
    metrics = main([*common, "--out", str(out)])
    return out, common, metrics


def _checkpoint_history(ckpt_dir):
    """The per-epoch history the trainer saved, restored without a target (raw arrays)."""
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(Path(ckpt_dir).absolute()) as manager:
        raw = manager.restore(manager.latest_step(), args=ocp.args.StandardRestore())
    return {k: np.asarray(v) for k, v in raw["history"].items()}


@pytest.mark.slow  # a whole training run for its event file
def test_training_events_match_history_and_metrics(tiny_training_run):
    out, _, metrics = tiny_training_run
    got = read_scalars(out / "tb")
    history = _checkpoint_history(out / "checkpoints")
    epochs = metrics["epochs_run"]
    assert epochs == 2
    assert got["train/loss"] == [(e, f32(history["train_loss"][e])) for e in range(epochs)]
    assert got["valid/ndcg@10"] == [(e, f32(history["valid_ndcg@10"][e])) for e in range(epochs)]
    assert got["valid_unmasked/ndcg@10"] == [(e, f32(history["valid_other_ndcg@10"][e])) for e in range(epochs)]
    best = metrics["best_epoch"]
    assert dict(got["valid/ndcg@10"])[best] == f32(metrics["valid/ndcg@10"])
    epoch_s = np.array([v for _, v in got["time/epoch_s"]])
    np.testing.assert_allclose(epoch_s[: best + 1].sum(), metrics["train_s_to_best"], rtol=1e-6)
    num_windows = metrics["num_windows"]
    np.testing.assert_allclose([v for _, v in got["throughput/windows_per_s"]], num_windows / epoch_s, rtol=1e-6)
    on_disk = json.loads((out / "metrics.json").read_text())
    test_keys = {k for k in on_disk if k.startswith("test")}
    assert {"test/ndcg@10", "test/hr@10", "test_unmasked/mrr@20"} <= test_keys
    for key in test_keys:  # one point, one step after the last epoch
        assert got[key] == [(epochs, f32(on_disk[key]))], key


@pytest.mark.slow  # a second (resumed) training run
def test_resumed_training_supersedes_the_killed_runs_events(tiny_training_run, tmp_path):
    src, common, metrics = tiny_training_run
    out = tmp_path / "run"
    shutil.copytree(src, out)
    first = read_scalars(out / "tb")
    shutil.rmtree(out / "checkpoints" / "2")  # as if killed after epoch 1's events, before its checkpoint
    sys.path.insert(0, str(REPO))
    from experiments.train_sequential import main

    resumed = main([*common, "--out", str(out), "--resume"])
    assert resumed["test/ndcg@10"] == metrics["test/ndcg@10"]  # exact resume
    assert len(list((out / "tb").iterdir())) == 2
    got = read_scalars(out / "tb")
    assert set(got) == set(first)
    for tag in ("train/loss", "valid/ndcg@10", "test/ndcg@10"):  # each step once, same values (exact resume)
        assert got[tag] == first[tag], tag


# The bandits and adaptive studies' events are checked on the runs their own end-to-end tests
# make (tests/test_bandits.py, tests/test_adapt_experiment.py): one run each, not two.


def test_values_that_are_not_numbers_are_type_errors_naming_the_tag(tmp_path):
    """Skipped by design: NaN / inf, strings, bools, None, non-0-d arrays. Anything else
    that is no real number (it used to vanish without a word) raises, naming its tag."""

    class Unconvertible:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("no array here")

    with EventLog(tmp_path) as log:
        for bad in (Unconvertible(), 1 + 2j, np.array(1j), {"a": 1.0}):
            with pytest.raises(TypeError, match="'bad'"):
                log.scalars(0, {"ok": 1.0, "bad": bad})
        with pytest.raises(TypeError, match="'traced'"):
            import jax

            jax.jit(lambda x: log.scalars(1, {"traced": x}) and x)(1.0)
        assert log.scalars(2, {"ok": 1.0, "nan": float("nan"), "s": "x", "flag": True, "vec": np.zeros(2)}) == 1
    assert read_scalars(tmp_path / "tb") == {"ok": [(2, 1.0)]}
