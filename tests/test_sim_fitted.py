"""The recommender env fitted to a user's log (``--data PATH``) and its fit check, on a small
generated log with a skewed item popularity."""
import json

import jax
import numpy as np
import pytest
from scipy.stats import spearmanr

from rec_jax import data as rdata
from rec_jax.sim.recsys_calibration import calibrate
from rec_jax.sim.recsys_fit import fit_check, fitted_ground_truth


def _write_log(path, seed=0, users=60, items=40, per_user=12):
    """``user,item,timestamp`` rows; item i drawn with weight (i + 1)^-1.2 (a popularity skew)."""
    rng = np.random.default_rng(seed)
    w = (np.arange(items) + 1.0) ** -1.2
    rows = []
    for u in range(users):
        for t, i in enumerate(rng.choice(items, per_user, replace=False, p=w / w.sum())):
            rows.append(f"{u + 1},{3 * i + 5},{t}\n")  # sparse raw item ids
    path.write_text("user,item,timestamp\n" + "".join(rows))
    return path


@pytest.fixture
def log(tmp_path, monkeypatch):
    monkeypatch.setenv("REC_JAX_DATA", str(tmp_path / "cache"))
    return _write_log(tmp_path / "mine.csv")


def test_fit_check_against_the_data_it_was_fitted_on(log):
    gt, seqs = fitted_ground_truth(str(log), dim=4, epochs=100, seed=0)
    ref = rdata.load(str(log))  # the same 5-core sequences, loaded again
    assert (seqs.num_users, seqs.num_items, len(seqs.items)) == (ref.num_users, ref.num_items, len(ref.items))
    offset, scale = calibrate(gt, 0.05, 0.4)
    check = fit_check(gt, seqs, offset, scale)
    # the calibrated CTRs are the calibration's targets (all 60 users are used by both)
    assert check["random_ctr"] == pytest.approx(0.05, abs=1e-6)
    assert check["best_ctr"] == pytest.approx(0.4, abs=1e-3)
    # popularity: counts from the raw ids, click probabilities from the factors through JAX
    raw_counts = np.array([np.sum(ref.items == i) for i in range(1, ref.num_items + 1)])
    p = jax.nn.sigmoid(scale * (gt.user_factors @ gt.item_factors.T + gt.item_bias) + offset)
    sim_pop = np.asarray(p, np.float64).mean(0)
    assert check["popularity_spearman"] == pytest.approx(spearmanr(raw_counts, sim_pop).statistic, abs=1e-5)
    assert check["popularity_spearman"] > 0.6  # the fit reproduces which items are popular
    top = np.argsort(-raw_counts, kind="stable")[: ref.num_items // 10]
    assert check["top_decile_share_data"] == pytest.approx(raw_counts[top].sum() / raw_counts.sum())
    assert check["top_decile_share_sim"] == pytest.approx(sim_pop[top].sum() / sim_pop.sum(), rel=1e-5)


def test_fit_is_cached_by_the_file_content(log, monkeypatch):
    """A second call reads the cache (no fit); new content under the same name fits again."""
    from rec_jax.sim import ground_truth

    calls = []

    def fake_fit(seqs, dim, epochs, key):  # a cheap deterministic stand-in for the factorisation
        calls.append(len(seqs.items))
        n = seqs.num_items
        return ground_truth.GroundTruth(np.full((seqs.num_users, dim), len(calls), np.float32),
                                        np.ones((n, dim), np.float32), np.zeros(n, np.float32))

    monkeypatch.setattr(ground_truth, "fit_ground_truth", fake_fit)
    gt, _ = fitted_ground_truth(str(log), dim=3, epochs=2, seed=0)
    cached = sorted((log.parent / "cache" / "sim").iterdir())
    assert len(cached) == 1 and cached[0].name.startswith("mine.csv-") and len(calls) == 1
    again, _ = fitted_ground_truth(str(log), dim=3, epochs=2, seed=0)
    assert len(calls) == 1
    np.testing.assert_array_equal(np.asarray(again.user_factors), np.asarray(gt.user_factors))
    _write_log(log, seed=1)  # new content, same name: a new cache entry, not the old factors
    fresh, _ = fitted_ground_truth(str(log), dim=3, epochs=2, seed=0)
    assert len(calls) == 2 and float(fresh.user_factors[0, 0]) == 2.0
    assert len(list((log.parent / "cache" / "sim").iterdir())) == 2


def test_bandits_study_env_follows_data_path(log):
    """``experiments/bandits.py --data PATH``: the ml100k env is the one fitted to PATH; a missing
    path is a one-line ValueError before anything runs."""
    from experiments import bandits

    cfg = bandits.Config(data=str(log), envs="ml100k", policies="ucb1", seeds=2)
    assert bandits.resolve(cfg)["envs"] == ["ml100k"]
    sim, params = bandits.make_env("ml100k", cfg)
    assert sim.num_items == rdata.load(str(log)).num_items
    fit = bandits.sim_fit(cfg, params)
    json.dumps(fit)  # goes to config.json as is
    assert fit["random_ctr"] == pytest.approx(0.03, abs=1e-4)  # the env's default calibration target
    with pytest.raises(ValueError, match="no such file"):
        bandits.resolve(bandits.Config(data=str(log.parent / "nope.csv"), envs="ml100k"))


def test_adaptive_study_env_follows_data_path(log):
    """``experiments/adaptive.py --data PATH``: the three scenarios run on the env fitted to PATH."""
    from experiments import _adaptive_variants, adaptive

    settings = adaptive.resolve(adaptive.Config(data=str(log), quick=True))
    engine, _, env_params = _adaptive_variants.build(settings)
    n = rdata.load(str(log)).num_items
    assert env_params.release_t.shape == (3, n)  # 3 scenarios x the log's items
    assert np.asarray(env_params.shift_steps)[:, 0].tolist() == [-1, -1, settings["steps"] // 2]
    with pytest.raises(ValueError, match="no such file"):
        adaptive.resolve(adaptive.Config(data=str(log.parent / "nope.csv")))


@pytest.mark.slow  # trains a tiny SASRec on the generated log, then the study (~40 s on 2 cores)
def test_large_model_study_on_a_user_log(log, tmp_path):
    """``large_model_ee.py --data PATH``: the model and the simulator both come from PATH's ids."""
    from experiments import large_model_ee
    from rec_jax.train.config import TrainConfig
    from rec_jax.train.run import train_and_evaluate

    model_dir = tmp_path / "tiny"
    config = TrainConfig(data=str(log), model="sasrec", max_len=8, window_stride=8, dim=8, num_layers=1, num_heads=1,
                         ff_dim=16, batch_size=64, batch_unit="window", epochs=1, patience=1)
    train_and_evaluate(config, model_dir, progress=False, log=lambda *_: None)
    out = tmp_path / "ee"
    assert large_model_ee.cli(["--data", str(log), "--model-dir", str(model_dir), "--out", str(out), "--steps", "3",
                               "--streams", "2", "--seeds", "2", "--slate-size", "2",
                               "--policies", "neural_linear_ucb"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    curves = np.load(out / "curves.npz")
    np.testing.assert_allclose(metrics["cumulative_reward/exploit"],
                               curves["exploit/reward"].astype(np.float64).sum(1).mean(), rtol=1e-6)
    assert json.loads((out / "config.json").read_text())["config"]["data"] == str(log)
