"""Full-ranking metrics and losses against slow NumPy references (ties included)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.eval.bootstrap import bootstrap_ci95, paired_bootstrap_ci95
from rec_jax.eval.ranking import metrics_from_rank, target_rank
from rec_jax.train.losses import compact_softmax_ce, full_softmax_ce, sampled_bce


def numpy_metrics(logits, targets, k):
    """One user at a time: sort, ties placed before the target (pessimistic)."""
    out = {"hr": [], "ndcg": [], "mrr": []}
    for row, t in zip(logits, targets):
        others = np.delete(row, t)
        rank = int(np.sum(others >= row[t]))  # strictly higher + ties with another item
        hit = rank < k
        out["hr"].append(float(hit))
        out["ndcg"].append(1.0 / np.log2(rank + 2) if hit else 0.0)
        out["mrr"].append(1.0 / (rank + 1) if hit else 0.0)
    return {name: np.array(v) for name, v in out.items()}


@pytest.mark.parametrize("k", [1, 3, 10])
def test_metrics_match_numpy_with_ties(k):
    rng = np.random.default_rng(0)
    # integer-valued scores over few levels: many ties, including with the target
    logits = rng.integers(0, 4, size=(64, 15)).astype(np.float32)
    logits[:, 0] = -np.inf
    targets = rng.integers(1, 15, size=64)
    ref = numpy_metrics(logits, targets, k)
    got = metrics_from_rank(target_rank(jnp.asarray(logits), jnp.asarray(targets)), ks=(k,))
    for name in ("hr", "ndcg", "mrr"):
        np.testing.assert_allclose(np.asarray(got[f"{name}@{k}"]), ref[name], rtol=1e-6, atol=1e-7)


def test_constant_scores_rank_last():
    logits = jnp.zeros((3, 11)).at[:, 0].set(-jnp.inf)
    rank = target_rank(logits, jnp.array([1, 5, 10]))
    np.testing.assert_array_equal(np.asarray(rank), [9, 9, 9])  # 10 real items, target behind all ties


def test_full_softmax_ce_matches_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 4, 7)).astype(np.float32)
    targets = rng.integers(1, 7, size=(3, 4))
    mask = rng.random((3, 4)) < 0.6
    mask[0, 0] = True
    z = logits[..., 1:]
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, (targets - 1)[..., None], -1)[..., 0]
    ref = (nll * mask).sum() / mask.sum()
    got = full_softmax_ce(jnp.asarray(logits), jnp.asarray(targets), jnp.asarray(mask))
    np.testing.assert_allclose(float(got), ref, rtol=1e-5)


@pytest.mark.parametrize("capacity", [16, 5])  # 16: gathered; 5 < the 9 loss positions: dense fallback
def test_compact_softmax_ce_matches_numpy_with_gradients(capacity):
    rng = np.random.default_rng(3)
    hidden = rng.normal(size=(3, 5, 4)).astype(np.float32)
    table = rng.normal(size=(8, 4)).astype(np.float32)
    targets = rng.integers(1, 8, size=(3, 5))
    mask = np.zeros((3, 5), bool)
    mask.ravel()[rng.choice(15, 9, replace=False)] = True

    def reference(h, e):  # NumPy: log-softmax over items 1..7 at the masked positions
        z = h @ e[1:].T
        logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
        return -(np.take_along_axis(logp, (targets - 1)[..., None], -1)[..., 0] * mask).sum() / mask.sum()

    def loss(h, e):
        return compact_softmax_ce(lambda x: x @ e.T, h, jnp.asarray(targets), jnp.asarray(mask), capacity)

    value, (grad_h, grad_e) = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(hidden, table)
    np.testing.assert_allclose(float(value), reference(hidden, table), rtol=1e-5)
    # gradients against central differences of the NumPy reference, in a few coordinates
    for arr, grad, idx in ((hidden, grad_h, (1, 2, 3)), (table, grad_e, (4, 1))):
        step = np.zeros_like(arr, np.float64)
        step[idx] = 1e-3
        args = [hidden.astype(np.float64), table.astype(np.float64)]
        which = 0 if arr is hidden else 1
        plus, minus = list(args), list(args)
        plus[which], minus[which] = args[which] + step, args[which] - step
        numeric = (reference(*plus) - reference(*minus)) / 2e-3
        np.testing.assert_allclose(float(np.asarray(grad)[idx]), numeric, rtol=1e-3, atol=1e-6)


def test_sampled_bce_matches_numpy():
    rng = np.random.default_rng(2)
    hidden = rng.normal(size=(2, 3, 4)).astype(np.float32)
    table = rng.normal(size=(9, 4)).astype(np.float32)
    targets = rng.integers(1, 9, size=(2, 3))
    mask = np.array([[True, False, True], [True, True, True]])
    key = jax.random.key(0)
    negatives = np.asarray(jax.random.randint(key, targets.shape, 1, 9))
    pos = (hidden * table[targets]).sum(-1)
    neg = (hidden * table[negatives]).sum(-1)
    per = np.log1p(np.exp(-pos)) + np.log1p(np.exp(neg))
    ref = (per * mask).sum() / mask.sum()
    got = sampled_bce(key, jnp.asarray(hidden), jnp.asarray(table), jnp.asarray(targets), jnp.asarray(mask))
    np.testing.assert_allclose(float(got), ref, rtol=1e-5)


def test_bootstrap_ci_matches_normal_approximation():
    rng = np.random.default_rng(3)
    values = rng.random(2000)
    half = bootstrap_ci95(values, num_resamples=2000)
    normal = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert abs(half - normal) / normal < 0.1
    mean, lo, hi = paired_bootstrap_ci95(values, values - 0.1)
    np.testing.assert_allclose([mean, lo, hi], [0.1, 0.1, 0.1], atol=1e-9)


def test_evaluator_masking_matches_numpy():
    """Masked ranking drops seen items (never the target); unmasked keeps them."""
    from types import SimpleNamespace

    from rec_jax.train.evaluate import Evaluator

    rng = np.random.default_rng(4)
    num_users, num_items, length, dim = 37, 12, 5, 3
    inputs = rng.integers(0, num_items + 1, size=(num_users, length)).astype(np.int32)
    inputs[:, -1] = rng.integers(1, num_items + 1, size=num_users)
    targets = rng.integers(1, num_items + 1, size=num_users).astype(np.int32)
    seen = rng.random((num_users, num_items + 1)) < 0.4
    seen[:, 0] = False
    seen[np.arange(0, num_users, 3), targets[::3]] = True  # a target that was seen before stays rankable
    params = {"u": rng.normal(size=(num_items + 1, dim)).astype(np.float32),
              "v": rng.normal(size=(num_items + 1, dim)).astype(np.float32)}
    model = SimpleNamespace(encode=lambda p, seq: p["u"][seq[:, -1]], score=lambda p, h: h @ p["v"].T)
    arrays = SimpleNamespace(inputs=inputs, targets=targets, seen=seen)
    got = Evaluator(model, arrays, batch_size=16).per_user(params)  # 3 batches, last one padded

    logits = params["u"][inputs[:, -1]] @ params["v"].T
    logits[:, 0] = -np.inf
    masked = logits.copy()
    drop = seen.copy()
    drop[np.arange(num_users), targets] = False
    masked[drop] = -np.inf
    for name, lg in (("unmasked", logits), ("masked", masked)):
        ref = numpy_metrics(lg, targets, 10)
        np.testing.assert_allclose(got[f"{name}/ndcg@10"], ref["ndcg"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(got[f"{name}/hr@10"], ref["hr"])


def test_windows_per_batch_counts_targets_or_windows():
    import dataclasses

    from rec_jax.train.config import TrainConfig, windows_per_batch

    config = TrainConfig(batch_size=256, batch_unit="target")
    # 3532 windows carrying 96,458 targets: 27.31 targets a window, so 9 windows hold
    # 245.8 targets on average and 10 hold 273.1: 9 is the closest to 256.
    assert windows_per_batch(config, 3532, 96458) == 9
    # By search: the window count in [1, num_windows] whose mean target count is nearest
    # batch_size (cases without a tie), clamped to the windows there are.
    for windows, targets, batch in [(3532, 96458, 256), (50, 50, 32), (5, 50, 256), (1, 1000, 256), (40, 7000, 512)]:
        nearest = min(range(1, windows + 1), key=lambda w: abs(w * targets / windows - batch))
        assert windows_per_batch(dataclasses.replace(config, batch_size=batch), windows, targets) == nearest
    assert windows_per_batch(dataclasses.replace(config, batch_size=32), 50, 50) == 32  # 1 target a window
    assert windows_per_batch(dataclasses.replace(config, batch_size=256), 5, 50) == 5  # all there are
    assert windows_per_batch(dataclasses.replace(config, batch_unit="window"), 3532, 96458) == 256
    assert windows_per_batch(dataclasses.replace(config, batch_unit="window"), 100, 500) == 100
    with pytest.raises(ValueError, match="batch_unit"):
        windows_per_batch(dataclasses.replace(config, batch_unit="rows"), 10, 10)


def test_t_ci95_matches_student_t_formula():
    from rec_jax.eval.confidence import t_ci95

    x = np.array([[1.0, 2.0], [3.0, 5.0], [2.0, 2.0]])  # 3 runs: t_{0.975, 2} = 4.303 (printed tables)
    expected = 4.303 * x.std(axis=0, ddof=1) / np.sqrt(3)
    np.testing.assert_allclose(t_ci95(x), expected, rtol=1e-4)
    assert np.isnan(t_ci95(np.array([1.0])))


def test_t_ci95_quantile_for_every_sample_size():
    """n = 2..200 against scipy's t.ppf, and the printed table's 2.042 (30 dof) / 2.040 (31 dof):
    the old table jumped to 1.96 at 31 degrees of freedom."""
    from scipy.stats import t

    from rec_jax.eval.confidence import t_ci95

    rng = np.random.default_rng(0)
    for n in range(2, 201):
        x = rng.standard_normal(n)
        expected = t.ppf(0.975, n - 1) * x.std(ddof=1) / np.sqrt(n)
        np.testing.assert_allclose(t_ci95(x), expected, rtol=1e-12)
    x = np.array([0.0, 1.0] * 16)  # n = 32: 31 degrees of freedom
    np.testing.assert_allclose(t_ci95(x) / (x.std(ddof=1) / np.sqrt(32)), 2.0395, atol=1e-4)


def test_nan_scores_rank_pessimistically():
    """A NaN target ranks last; a NaN competitor ranks above the target (NumPy reference
    with NaN replaced by +inf for competitors)."""
    logits = np.array(
        [
            [-np.inf, 0.5, np.nan, 0.1, 0.9],  # target 3 (0.1): 0.5, NaN, 0.9 above -> rank 3
            [-np.inf, np.nan, 0.2, 0.3, 0.4],  # target 1 is NaN -> last: rank 4
            [-np.inf, 0.7, np.nan, np.nan, 0.1],  # target 1 (0.7): two NaN above -> rank 2
        ],
        np.float32,
    )
    targets = np.array([3, 1, 1])
    rank = np.asarray(target_rank(jnp.asarray(logits), jnp.asarray(targets)))
    np.testing.assert_array_equal(rank, [3, 4, 2])
    ref = numpy_metrics(np.where(np.isnan(logits), np.inf, logits)[[0, 2]], targets[[0, 2]], 3)
    got = metrics_from_rank(jnp.asarray(rank), ks=(3,))
    np.testing.assert_allclose(np.asarray(got["ndcg@3"])[[0, 2]], ref["ndcg"], rtol=1e-6)
    assert float(got["hr@3"][1]) == 0.0 and np.isfinite(np.asarray(got["ndcg@3"])).all()
