"""A fairness-aware re-ranker: a proportional controller on item exposure deficits.

Users are served one after another. Before serving a user, every item's
exposure deficit is how far its exposure so far lags the most exposed item's,
per user served:

    deficit_i(t) = (max_j E_j(t) - E_i(t)) / max(t, 1),

and the user's slate is the top K of

    z_ui + lambda * deficit_i(t)

over the items the user may get (z = the model's scores standardised per user,
so lambda is in units of one score standard deviation). After serving, each
shown item's exposure grows by its position weight (1 / log2(k + 2)).

This is FairCo's controller (Morik, Singh, Hong & Joachims 2020, "Controlling
fairness and bias in dynamic learning-to-rank", Eq. 9) with a uniform merit
(the target is equal exposure) and the error divided by the number of users
served, so that lambda sets a steady trade-off instead of a force that grows
with time. lambda = 0 is the plain model ranking; a large lambda serves the
least exposed items first (round robin), driving the Gini of exposure to 0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rec_jax.eval.fairness import position_weights


def exposure_deficit(exposure: jax.Array, num_served) -> jax.Array:
    """f32[N]: (max_j E_j - E_i) / max(num_served, 1), >= 0."""
    exposure = jnp.asarray(exposure, jnp.float32)
    return (jnp.max(exposure) - exposure) / jnp.maximum(jnp.asarray(num_served, jnp.float32), 1.0)


def standardize(scores: jax.Array, excluded: jax.Array) -> jax.Array:
    """Per-row z-scores of ``scores`` f32[..., N] over the items not ``excluded`` (bool, same shape)."""
    keep = ~excluded
    count = jnp.maximum(jnp.sum(keep, axis=-1, keepdims=True), 1)
    mean = jnp.sum(jnp.where(keep, scores, 0.0), axis=-1, keepdims=True) / count
    var = jnp.sum(jnp.where(keep, (scores - mean) ** 2, 0.0), axis=-1, keepdims=True) / count
    return (scores - mean) / jnp.sqrt(jnp.maximum(var, 1e-12))


def fair_rerank(scores: jax.Array, excluded: jax.Array, order: jax.Array, lam, slate_size: int,
                initial_exposure: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """Serve the users in ``order`` one by one with the exposure controller.

    Args:
      scores: f32[U, N] model scores of every item for every user.
      excluded: bool[U, N] items a user may not get (padding, already seen).
      order: int32[T] rows of ``scores`` in serving order (repeats allowed, e.g. a bootstrap draw).
      lam: f32[] controller strength lambda >= 0 (traced: vmap over a grid of lambdas).
      slate_size: K (static).
      initial_exposure: optional f32[N] exposure before the first user (default zeros).
    Returns:
      slates int32[T, K] (row t = the slate of user order[t], slot 0 on top) and the
      final exposure f32[N].
    """
    num_items = scores.shape[-1]
    excluded = jnp.asarray(excluded, bool)
    z = standardize(jnp.asarray(scores, jnp.float32), excluded)
    w = position_weights(slate_size)
    lam = jnp.maximum(jnp.asarray(lam, jnp.float32), 0.0)
    exposure0 = jnp.zeros((num_items,), jnp.float32) if initial_exposure is None else initial_exposure

    def serve(carry, user):
        exposure, t = carry
        adjusted = jnp.where(excluded[user], -jnp.inf, z[user] + lam * exposure_deficit(exposure, t))
        slate = jax.lax.top_k(adjusted, slate_size)[1].astype(jnp.int32)
        return (exposure.at[slate].add(w), t + 1.0), slate

    (exposure, _), slates = jax.lax.scan(serve, (exposure0, jnp.zeros((), jnp.float32)), jnp.asarray(order))
    return slates, exposure


def slate_ndcg(slates: jax.Array, targets: jax.Array) -> jax.Array:
    """NDCG@K of each slate int32[T, K] for one held-out target per row int32[T]: f32[T]."""
    hit = slates == targets[:, None]
    pos = jnp.argmax(hit, axis=-1).astype(jnp.float32)
    return jnp.where(jnp.any(hit, axis=-1), 1.0 / jnp.log2(pos + 2.0), 0.0)
