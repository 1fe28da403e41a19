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
    # ... and all seven estimators against a float64 reference: the cross-fitted L2
    # logistic reward model refitted by scipy, the estimators and SLOPE in NumPy.
    ref = _numpy_estimates(tmp_path / "obd", "random_from_bts", metrics)
    for e in ope_obd.ESTIMATORS:
        assert metrics[f"estimate/random_from_bts/all/{e}"] == pytest.approx(ref[e], rel=2e-4, abs=1e-6), e


def _numpy_estimates(root, direction, metrics, seed=0, folds=3, l2=1.0):
    """The study's full-log estimates of ``direction`` on campaign "all", from scratch.

    Folds as the study draws them (a permutation of the rows modulo the fold count,
    from the key of its direction and campaign); reward model: minimise
    sum_i softplus(z_i) - y_i z_i + l2/2 |w|^2 (intercept last, unpenalised but for
    the study's 1e-6 ridge) over [item features, user one-hot, position one-hot, 1]
    by scipy; SLOPE: the last grid point whose +-2 se interval meets all before it."""
    import jax
    from scipy.optimize import minimize
    from scipy.special import expit

    from rec_jax import ope
    from rec_jax.data import load_obd

    behavior, _ = ope_obd.DIRECTIONS[direction]
    log = load_obd(behavior, "all", folder=str(root))
    n, num_actions = len(log), log.num_actions
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), list(ope_obd.DIRECTIONS).index(direction)),
                             ope_obd.CAMPAIGNS.index("all"))
    fold = np.asarray(jax.random.permutation(jax.random.fold_in(key, 2), n)) % folds
    item_x = np.asarray(log.item_features, np.float64)
    row_x = np.concatenate([log.context, np.eye(log.len_list)[log.position], np.ones((n, 1))], axis=1)
    x = np.concatenate([item_x[log.action], row_x], axis=1)
    y = np.asarray(log.reward, np.float64)
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 1e-6

    def loss(w, m):
        z = x[m] @ w
        return np.sum(np.logaddexp(0, z) - y[m] * z) + 0.5 * penalty @ (w * w)

    def grad(w, m):
        return x[m].T @ (expit(x[m] @ w) - y[m]) + penalty * w

    q = np.zeros((n, num_actions))
    for k in range(folds):
        w = minimize(loss, np.zeros(x.shape[1]), args=(fold != k,), jac=grad, method="BFGS",
                     options={"gtol": 1e-10, "maxiter": 10_000}).x
        d_a = item_x.shape[1]
        rows = fold == k
        q[rows] = expit((row_x[rows] @ w[d_a:])[:, None] + (item_x @ w[:d_a])[None, :])
    pi_e = np.full((n, num_actions), 1.0 / num_actions)
    r, a, p = y, log.action, np.asarray(log.pscore, np.float64)
    idx = np.arange(n)
    wgt, qpi, resid = pi_e[idx, a] / p, (pi_e * q).sum(1), r - q[idx, a]
    out = {"dm": qpi.mean(), "ipw": np.mean(wgt * r), "snipw": np.sum(wgt * r) / np.sum(wgt),
           "dr": np.mean(qpi + wgt * resid), "sndr": qpi.mean() + np.sum(wgt * resid) / np.sum(wgt)}
    for name, grid in (("switch_dr", ope.DEFAULT_TAUS), ("dr_os", ope.DEFAULT_LAMBDAS)):
        terms = []
        for h in grid:
            corr = np.where(wgt <= h, wgt, 0.0) if name == "switch_dr" else (
                wgt if np.isinf(h) else h * wgt / (wgt * wgt + h))
            terms.append(qpi + corr * resid)
        terms = np.stack(terms)
        theta, se = terms.mean(1), terms.std(1) / np.sqrt(n)
        lo, hi = np.maximum.accumulate(theta - 2 * se), np.minimum.accumulate(theta + 2 * se)
        chosen = int(np.argmin(lo <= hi) - 1) if not np.all(lo <= hi) else len(grid) - 1
        out[name] = theta[chosen]
        tuned = metrics[f"tuning/{direction}/all/{'switch_dr_tau' if name == 'switch_dr' else 'dr_os_lambda'}"]
        assert tuned == grid[chosen], (name, tuned, grid[chosen])
    return out


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
