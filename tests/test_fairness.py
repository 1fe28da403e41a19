"""Fairness-of-exposure metrics, the exposure-controller re-ranker and policy, and the user loader,
each against a slow NumPy reference or a closed form."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.data.errors import DataError
from rec_jax.data.users import AGE_BAND_NAMES, age_band, read_user_file, user_demographics
from rec_jax.eval import fair_ranker, fairness
from rec_jax.policies.base import Observation, PolicySpec
from rec_jax.policies.fair_exposure import FairExposureParams, make_fair_exposure, validate_params


def test_gini_matches_mean_absolute_difference_and_extremes():
    x = np.random.default_rng(0).exponential(size=37)
    brute = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    np.testing.assert_allclose(float(fairness.gini(x)), brute, rtol=1e-5)
    assert float(fairness.gini(np.ones(9))) == pytest.approx(0.0, abs=1e-7)
    np.testing.assert_allclose(float(fairness.gini(np.eye(10)[3] * 5.0)), 9 / 10, rtol=1e-6)
    assert float(fairness.gini(np.zeros(4))) == 0.0


def test_exposure_coverage_and_long_tail_share_match_loops():
    rng = np.random.default_rng(1)
    n, k = 12, 4
    slates = np.stack([rng.choice(n, k, replace=False) for _ in range(7)])
    w = 1.0 / np.log2(np.arange(k) + 2.0)
    expected = np.zeros(n)
    for row in slates:
        for pos, item in enumerate(row):
            expected[item] += w[pos]
    np.testing.assert_allclose(np.asarray(fairness.item_exposure(slates, n)), expected, rtol=1e-6)
    assert float(fairness.coverage(slates, n)) == pytest.approx(len(set(slates.ravel())) / n)
    tail = np.arange(n) >= 3
    assert float(fairness.long_tail_share(slates, tail)) == pytest.approx(tail[slates].mean())
    weighted = (tail[slates] * w).sum() / (w.sum() * len(slates))
    assert float(fairness.long_tail_share(slates, tail, fairness.position_weights(k))) == pytest.approx(weighted)


def test_popular_items_and_exposure_disparity():
    counts = np.array([5, 50, 1, 30, 30, 0, 2, 9, 8, 7])
    pop = np.asarray(fairness.popular_items(counts, head_fraction=0.3))
    np.testing.assert_array_equal(np.flatnonzero(pop), [1, 3, 4])  # the three most interacted
    exposure = np.arange(10, dtype=np.float64)
    d = fairness.exposure_disparity(exposure, pop)
    mean_pop, mean_tail = exposure[pop].mean(), exposure[~pop].mean()
    np.testing.assert_allclose(float(d["ratio"]), mean_pop / mean_tail, rtol=1e-6)
    np.testing.assert_allclose(float(d["share_popular"]), exposure[pop].sum() / exposure.sum(), rtol=1e-6)


def test_group_utility_matches_groupby_and_skips_empty_groups():
    util = np.array([0.1, 0.5, 0.0, 1.0, 0.3, 0.2])
    group = np.array([0, 0, 2, 2, -1, 0])
    out = fairness.group_utility(util, group, 3)
    mean = np.asarray(out["mean"])
    np.testing.assert_allclose(mean[[0, 2]], [util[[0, 1, 5]].mean(), util[[2, 3]].mean()], rtol=1e-6)
    assert np.isnan(mean[1]) and np.asarray(out["count"]).tolist() == [3, 0, 2]
    np.testing.assert_allclose(float(out["gap"]), abs(mean[2] - mean[0]), rtol=1e-6)


def _rerank_reference(scores, excluded, order, lam, k):
    """The controller, one user at a time, in float64 NumPy."""
    n = scores.shape[1]
    exposure, w, slates = np.zeros(n), 1.0 / np.log2(np.arange(k) + 2.0), []
    for t, u in enumerate(order):
        keep = ~excluded[u]
        z = (scores[u] - scores[u][keep].mean()) / scores[u][keep].std()
        adj = np.where(excluded[u], -np.inf, z + lam * (exposure.max() - exposure) / max(t, 1))
        slate = np.argsort(-adj, kind="stable")[:k]
        exposure[slate] += w
        slates.append(slate)
    return np.array(slates), exposure


@pytest.mark.parametrize("lam", [0.0, 0.7, 50.0])
def test_fair_rerank_matches_numpy_controller(lam):
    rng = np.random.default_rng(2)
    u, n, k = 9, 15, 3
    scores = rng.normal(size=(u, n)).astype(np.float32)
    excluded = rng.random((u, n)) < 0.2
    order = rng.integers(0, u, 14)  # repeats, as in a bootstrap draw
    slates, exposure = fair_ranker.fair_rerank(scores, excluded, order, lam, k)
    ref_slates, ref_exposure = _rerank_reference(scores.astype(np.float64), excluded, order, lam, k)
    np.testing.assert_array_equal(np.asarray(slates), ref_slates)
    np.testing.assert_allclose(np.asarray(exposure), ref_exposure, rtol=1e-5)
    assert not np.any(excluded[order[:, None], np.asarray(slates)])  # exclusions respected


def test_fair_rerank_lowers_gini_and_slate_ndcg():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(40, 30)) + np.linspace(3, 0, 30)[None, :]  # a shared popularity bias
    excluded = np.zeros((40, 30), bool)
    lams = jnp.array([0.0, 1.0, 10.0, 1000.0])
    out = jax.vmap(lambda lam: fair_ranker.fair_rerank(scores, excluded, jnp.arange(40), lam, 5)[1])(lams)
    g = np.array([float(fairness.gini(e)) for e in out])
    assert g[0] > g[-1] + 0.3 and g[-1] < 0.05  # round robin at a huge lambda: near-equal exposure
    slates = np.array([[3, 1, 4], [5, 9, 2]])
    np.testing.assert_allclose(np.asarray(fair_ranker.slate_ndcg(slates, jnp.array([4, 7]))),
                               [1 / math.log2(4), 0.0], rtol=1e-6)


def test_fair_exposure_policy_greedy_at_zero_and_deficit_pushes_unexposed_items():
    spec = PolicySpec(num_items=6, slate_size=2)
    policy = make_fair_exposure(spec)
    state = policy.init(jax.random.key(0), spec)
    state = state.replace(clicks=jnp.array([0.0, 9, 0, 3, 0, 0]), shows=jnp.array([10.0, 10, 10, 10, 10, 10]),
                          exposure=jnp.array([0.0, 10, 10, 10, 10, 10]), num_served=jnp.array(10.0))
    obs = Observation(features=jnp.zeros((6, 0)), available=jnp.ones(6, bool), scores=jnp.zeros(6))
    slate, info = policy.act(jax.random.key(1), state, obs, FairExposureParams(lam=0.0))
    np.testing.assert_array_equal(np.asarray(slate), [1, 3])  # the two best CTR estimates
    np.testing.assert_allclose(np.asarray(info.propensity), [1.0, 1.0])
    slate, _ = policy.act(jax.random.key(1), state, obs, FairExposureParams(lam=100.0))
    assert int(slate[0]) == 0  # item 0 lags by 1 exposure per served slate: the controller lifts it
    new = policy.update(jax.random.key(2), state, obs, jnp.array([2, 5]), jnp.array([1.0, 0.0]), FairExposureParams())
    np.testing.assert_allclose(np.asarray(new.exposure - state.exposure), [0, 0, 1, 0, 0, 1 / math.log2(3)], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(new.clicks - state.clicks), [0, 0, 1, 0, 0, 0])
    with pytest.raises(ValueError, match="lam"):
        validate_params(FairExposureParams(lam=-1.0), spec)


def test_user_file_loaders_and_alignment(tmp_path):
    atomic = tmp_path / "x.user"
    atomic.write_text("user_id:token\tage:token\tgender:token\toccupation:token\tzip_code:token\n"
                      "7\t17\tM\tstudent\t1\n3\t18\tF\twriter\t2\n9\t56\tF\tother\t3\n")
    official = tmp_path / "u.user"
    official.write_text("7|17|M|student|1\n3|18|F|writer|2\n9|56|F|other|3\n")
    rec_a, rec_b = read_user_file(atomic), read_user_file(official)
    assert rec_a == rec_b == {7: (17, "M", "student"), 3: (18, "F", "writer"), 9: (56, "F", "other")}
    users = user_demographics(rec_a, np.array([3, 7, 9]))  # remapped users sorted by raw id
    np.testing.assert_array_equal(users.age, [18, 17, 56])
    np.testing.assert_array_equal(users.gender, [1, 0, 1])
    assert [AGE_BAND_NAMES[b] for b in users.age_band] == ["18-24", "0-17", "56+"]
    np.testing.assert_array_equal(age_band(np.array([0, 24, 25, 44, 45, 49, 50, 55])), [0, 1, 2, 3, 4, 4, 5, 5])
    with pytest.raises(DataError, match="raw user ids"):
        user_demographics(rec_a, np.array([3, 4]))
    bad = tmp_path / "bad.user"
    bad.write_text("user_id:token\tage:token\tgender:token\toccupation:token\n1\t20\tX\tnone\n")
    with pytest.raises(DataError, match=r"bad.user:2: field gender"):
        read_user_file(bad)
