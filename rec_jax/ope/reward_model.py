"""Reward model q(x, a) for DM and DR: L2-regularised logistic regression, cross-fitted.

``fit_logistic`` minimises  sum_i s_i [softplus(z_i) - y_i z_i] + l2/2 ||w[:-1]||^2,
z_i = X_i w, by a fixed number of Newton steps (the last column of X is the
intercept, left unpenalised; l2 = 1 is scikit-learn's default C = 1). Sample weights
s_i carry the fold mask of cross-fitting, so every fold is fitted with the same
shapes and the folds are vmapped.

Cross-fitting (Chernozhukov et al. 2018; as in the Open Bandit Pipeline's K-fold
``fit_predict``): rows are split into K folds, the model for fold k is fitted on
the other folds, and round i is predicted by the model that never saw it, so the
DR correction term is not fitted to its own noise.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def with_intercept(x: jax.Array) -> jax.Array:
    """f32[..., d + 1]: ``x`` with a trailing column of ones."""
    return jnp.concatenate([x, jnp.ones(x.shape[:-1] + (1,), x.dtype)], axis=-1)


def fit_logistic(x: jax.Array, y: jax.Array, sample_weight: jax.Array, l2: float = 1.0,
                 num_steps: int = 25) -> jax.Array:
    """f32[d] coefficients (last = intercept) of a weighted L2 logistic regression.

    x: f32[n, d] with the intercept column last; y: f32[n] in [0, 1];
    sample_weight: f32[n] >= 0. Newton steps start from the weighted base rate.
    """
    x = x.astype(jnp.float32)
    s = sample_weight.astype(jnp.float32)
    d = x.shape[1]
    penalty = jnp.full((d,), l2, jnp.float32).at[-1].set(1e-6)  # tiny ridge keeps the intercept solve stable
    rate = jnp.clip(jnp.sum(s * y) / jnp.maximum(jnp.sum(s), 1e-12), 1e-6, 1 - 1e-6)
    w0 = jnp.zeros((d,), jnp.float32).at[-1].set(jnp.log(rate / (1 - rate)))

    def newton(_, w):
        p = jax.nn.sigmoid(x @ w)
        grad = x.T @ (s * (p - y)) + penalty * w
        hess = (x * (s * p * (1 - p))[:, None]).T @ x + jnp.diag(penalty)
        return w - jnp.linalg.solve(hess, grad)

    return jax.lax.fori_loop(0, num_steps, newton, w0)


def cross_fit_logistic(x: jax.Array, y: jax.Array, fold: jax.Array, num_folds: int, l2: float = 1.0,
                       num_steps: int = 25, sample_weight: jax.Array | None = None) -> jax.Array:
    """f32[K, d]: model k fitted on every row whose ``fold`` i32[n] is not k (``num_folds`` static)."""
    s = jnp.ones_like(y) if sample_weight is None else sample_weight
    masks = (fold[None, :] != jnp.arange(num_folds)[:, None]).astype(jnp.float32) * s[None, :]
    return jax.vmap(lambda m: fit_logistic(x, y, m, l2, num_steps))(masks)


def predict_cross_fit(coef: jax.Array, x_all: jax.Array, fold: jax.Array) -> jax.Array:
    """f32[n, A] q(x_i, a) from the model that left round i out.

    coef: f32[K, d]; x_all: f32[n, A, d] features of every action at round i.
    """
    return jax.nn.sigmoid(jnp.einsum("nad,nd->na", x_all, coef[fold]))


def predict_cross_fit_additive(coef: jax.Array, item_x: jax.Array, row_x: jax.Array, fold: jax.Array) -> jax.Array:
    """f32[n, A] q for features [item part, row part]: logit = item_x_a . w_a + row_x_i . w_r.

    coef: f32[K, d_a + d_r], fitted on ``concat(item_x[a_i], row_x_i)`` (row_x ends with
    the intercept column); item_x: f32[A, d_a]; row_x: f32[n, d_r]. Never builds the
    n x A x d feature tensor.
    """
    d_a = item_x.shape[1]
    row_logit = jnp.sum(row_x * coef[fold, d_a:], axis=1)  # [n]
    item_logit = item_x @ coef[:, :d_a].T  # [A, K]
    return jax.nn.sigmoid(row_logit[:, None] + item_logit.T[fold])
