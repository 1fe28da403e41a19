"""Reward model (logistic, cross-fitted) and the Beta-TS ranking probabilities, each checked another way."""
import jax
import jax.numpy as jnp
import numpy as np
from scipy import integrate, optimize, stats

from rec_jax import ope


def _data(seed=0, n=300, d=4):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=(n, d)), np.ones((n, 1))], axis=1).astype(np.float32)
    w_true = rng.normal(size=d + 1)
    y = (rng.random(n) < 1 / (1 + np.exp(-(x @ w_true - 1.0)))).astype(np.float32)
    return x, y


def _objective(w, x, y, s, l2):
    z = x @ w
    pen = np.full(len(w), l2)
    pen[-1] = 1e-6
    return np.sum(s * (np.logaddexp(0, z) - y * z)) + 0.5 * np.sum(pen * w * w)


def test_fit_logistic_matches_scipy():
    x, y = _data()
    s = np.random.default_rng(1).uniform(0.5, 2.0, len(y)).astype(np.float32)
    w = np.asarray(ope.fit_logistic(jnp.asarray(x), jnp.asarray(y), jnp.asarray(s), l2=1.0, num_steps=25))
    ref = optimize.minimize(_objective, np.zeros(x.shape[1]), args=(x.astype(np.float64), y, s, 1.0),
                            method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(w, ref, atol=2e-4)


def test_cross_fit_leaves_each_fold_out():
    x, y = _data(2, n=240)
    fold = np.arange(240) % 3
    coef = np.asarray(ope.cross_fit_logistic(jnp.asarray(x), jnp.asarray(y), jnp.asarray(fold), 3, num_steps=25))
    for k in range(3):
        keep = fold != k
        alone = ope.fit_logistic(jnp.asarray(x[keep]), jnp.asarray(y[keep]), jnp.ones(keep.sum()), num_steps=25)
        np.testing.assert_allclose(coef[k], np.asarray(alone), atol=1e-4)
    # additive prediction == prediction from the explicit [n, A, d] features, model of the row's own fold held out
    rng = np.random.default_rng(3)
    item_x = rng.normal(size=(5, 2)).astype(np.float32)
    row_x = x[:, 2:]  # 2 row features + intercept; the first 2 columns act as the item part
    q_add = np.asarray(ope.predict_cross_fit_additive(jnp.asarray(coef), jnp.asarray(item_x), jnp.asarray(row_x),
                                                      jnp.asarray(fold)))
    x_all = np.concatenate([np.broadcast_to(item_x, (240, 5, 2)), np.broadcast_to(row_x[:, None], (240, 5, 3))], -1)
    q_full = np.asarray(ope.predict_cross_fit(jnp.asarray(coef), jnp.asarray(x_all), jnp.asarray(fold)))
    np.testing.assert_allclose(q_add, q_full, rtol=1e-5)
    z = x_all[7] @ coef[fold[7]]
    np.testing.assert_allclose(q_full[7], 1 / (1 + np.exp(-z)), rtol=1e-5)


def test_bts_action_dist_matches_quadrature():
    alpha = np.array([2.0, 3.0, 5.0, 4.0])
    beta = np.array([20.0, 20.0, 40.0, 60.0])
    n = 40_000
    dist = np.asarray(ope.bts_action_dist(jax.random.key(0), alpha, beta, 2, num_samples=n, chunk=10_000))
    np.testing.assert_allclose(dist.sum(axis=0), 1.0, rtol=1e-6)
    f = [stats.beta(a, b) for a, b in zip(alpha, beta)]
    for a in range(4):
        others = [j for j in range(4) if j != a]
        top = integrate.quad(lambda t: f[a].pdf(t) * np.prod([f[j].cdf(t) for j in others]), 0, 1, limit=200)[0]
        second = integrate.quad(lambda t: f[a].pdf(t) * sum(
            f[j].sf(t) * np.prod([f[m].cdf(t) for m in others if m != j]) for j in others), 0, 1, limit=200)[0]
        for k, p in ((0, top), (1, second)):
            tol = 5 * np.sqrt(p * (1 - p) / n) + 1e-4
            assert abs(dist[a, k] - p) < tol, (a, k, dist[a, k], p)
