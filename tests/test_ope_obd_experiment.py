"""The OBD OPE study end to end on a tiny generated copy of the dataset."""
import json

import numpy as np
import pytest

from experiments import ope_obd
from rec_jax.data import is_fetched

NUM_ACTIONS, N = 4, 90


def _write_tiny_obd(root):
    rng = np.random.default_rng(0)
    for policy in ("random", "bts"):
        d = root / policy / "all"
        d.mkdir(parents=True)
        header = ",timestamp,item_id,position,click,propensity_score,user_feature_0,user_feature_1"
        lines = [header]
        for k in range(N):
            p = 1.0 / NUM_ACTIONS if policy == "random" else rng.uniform(0.05, 0.9)
            lines.append(f"{k},2019-11-24 00:00:{k % 60:02d}.5+00:00,{rng.integers(NUM_ACTIONS)},{rng.integers(1, 4)},"
                         f"{int(rng.random() < 0.2)},{p:.4f},{'abc'[rng.integers(3)]},{'xy'[rng.integers(2)]}")
        (d / "all.csv").write_text("\n".join(lines) + "\n")
        (d / "item_context.csv").write_text(
            ",item_id,item_feature_0,item_feature_1\n" + "".join(f"{j},{j},{0.3 * j},{'pq'[j % 2]}\n" for j in range(NUM_ACTIONS)))
    (root / "prior_bts.yaml").write_text(
        "all:\n  alpha:\n" + "".join(f"    - {a}.0\n" for a in range(1, NUM_ACTIONS + 1))
        + "  beta:\n" + "".join(f"    - {5 * b}.0\n" for b in range(1, NUM_ACTIONS + 1)))


def test_ope_obd_tiny(tmp_path):
    _write_tiny_obd(tmp_path / "obd")
    out = tmp_path / "run"
    metrics = ope_obd.cli(["--data", str(tmp_path / "obd"), "--campaigns", "all", "--resamples", "3",
                           "--mc-samples", "1000", "--out", str(out)])
    assert (out / "config.json").exists() and (out / "rel_error.png").exists()
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)
    for direction, (_, evaluation) in ope_obd.DIRECTIONS.items():
        rewards = np.loadtxt(tmp_path / "obd" / evaluation / "all" / "all.csv", delimiter=",", skiprows=1,
                             usecols=4)
        truth = metrics[f"ground_truth/{direction}/all"]
        assert truth == pytest.approx(rewards.mean())  # on-policy CTR of the other log
        for e in ope_obd.ESTIMATORS:
            for prefix in ("estimate", "rel_error"):
                assert np.isfinite(metrics[f"{prefix}/{direction}/all/{e}"])
    # random_from_bts: pi_e = 1/A at every position, so IPW on the full log is a one-liner
    log = np.loadtxt(tmp_path / "obd" / "bts" / "all" / "all.csv", delimiter=",", skiprows=1, usecols=(4, 5))
    ipw = np.mean((1.0 / NUM_ACTIONS) / log[:, 1] * log[:, 0])
    assert metrics["estimate/random_from_bts/all/ipw"] == pytest.approx(ipw, rel=1e-5)


def test_ope_obd_bad_log(tmp_path):
    _write_tiny_obd(tmp_path / "obd")
    path = tmp_path / "obd" / "bts" / "all" / "all.csv"
    lines = path.read_text().splitlines()
    parts = lines[5].split(",")
    parts[5] = "0.0"
    lines[5] = ",".join(parts)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"bts/all/all\.csv: log field 'pscore' row 4 is 0.0"):
        ope_obd.cli(["--data", str(tmp_path / "obd"), "--campaigns", "all", "--directions", "random_from_bts",
                     "--resamples", "2", "--out", str(tmp_path / "run")])
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(not is_fetched("obd"), reason="OBD not in cache ($REC_JAX_DATA); run python -m rec_jax.data fetch obd")
def test_cached_logs_pass_checks_and_on_policy_ipw_is_the_mean():
    """On the random log, IPW of the random policy has every weight 1: it is the logged CTR."""
    from rec_jax import ope
    from rec_jax.data import load_obd

    for policy in ("random", "bts"):
        log = load_obd(policy, "all")
        uniform = np.full((len(log), log.num_actions), 1.0 / log.num_actions, np.float32)
        d = ope.validate_log(log, pi_e=uniform)
        if policy == "random":
            np.testing.assert_allclose(float(ope.ipw(d)), log.reward.astype(np.float64).mean(), rtol=1e-5)
