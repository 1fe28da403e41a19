"""Fairness of exposure: how the attention of users is spread over items, and
how the recommender's utility is spread over user groups.

    exposure = item_exposure(slates, num_items)            # f32[N], position-weighted
    gini(exposure), coverage(slates, num_items), long_tail_share(slates, is_tail)
    exposure_disparity(exposure, is_popular)               # popular vs long-tail items
    group_utility(ndcg_per_user, user_group, num_groups)   # e.g. gender, age bands

Slates are int32[U, K] item indices in 0..N-1 (callers with 1-based ids subtract
1), one row per served user, slot 0 on top. Position weights are the DCG
discount 1 / log2(k + 2), the examination probability of a position-based click
model (the same weights the simulator's PBM uses), so exposure is expected
attention (Singh & Joachims 2018, "Fairness of exposure in rankings").
All functions are ``jax.numpy``, jit/vmap friendly.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def position_weights(slate_size: int) -> jax.Array:
    """f32[K]: examination weight 1 / log2(k + 2) of slot k."""
    return 1.0 / jnp.log2(jnp.arange(slate_size, dtype=jnp.float32) + 2.0)


def item_exposure(slates: jax.Array, num_items: int, weights: jax.Array | None = None) -> jax.Array:
    """Total position-weighted exposure of every item over all served slates: f32[N].

    slates: int32[U, K]; weights: f32[K] (default :func:`position_weights`).
    """
    slates = jnp.asarray(slates)
    w = position_weights(slates.shape[-1]) if weights is None else jnp.asarray(weights, jnp.float32)
    w = jnp.broadcast_to(w, slates.shape)
    return jnp.zeros((num_items,), jnp.float32).at[slates.reshape(-1)].add(w.reshape(-1))


def gini(x: jax.Array) -> jax.Array:
    """Gini index of nonnegative ``x`` f32[N]: 0 = all equal, (N-1)/N = one item gets everything.

    G = sum_i (2i - N - 1) x_(i) / (N sum x), x sorted ascending, i = 1..N
    (= mean absolute difference / (2 mean)). 0 when sum x = 0.
    """
    x = jnp.sort(jnp.asarray(x, jnp.float32))
    n = x.shape[-1]
    i = jnp.arange(1, n + 1, dtype=jnp.float32)
    total = jnp.sum(x, axis=-1)
    num = jnp.sum((2.0 * i - n - 1.0) * x, axis=-1)
    return jnp.where(total > 0, num / (n * jnp.where(total > 0, total, 1.0)), 0.0)


def coverage(slates: jax.Array, num_items: int) -> jax.Array:
    """Fraction of the N items shown at least once: f32[]."""
    shown = jnp.zeros((num_items,), bool).at[jnp.asarray(slates).reshape(-1)].set(True)
    return jnp.mean(shown.astype(jnp.float32))


def long_tail_share(slates: jax.Array, is_long_tail: jax.Array, weights: jax.Array | None = None) -> jax.Array:
    """Share of recommended slots that hold long-tail items: f32[].

    Unweighted by default (each slot counts 1); pass ``weights`` f32[K] (e.g.
    :func:`position_weights`) for the long-tail share of exposure.
    """
    slates = jnp.asarray(slates)
    w = jnp.ones(slates.shape[-1], jnp.float32) if weights is None else jnp.asarray(weights, jnp.float32)
    w = jnp.broadcast_to(w, slates.shape)
    tail = jnp.asarray(is_long_tail)[slates].astype(jnp.float32)
    return jnp.sum(tail * w) / jnp.sum(w)


def popular_items(counts: jax.Array, head_fraction: float = 0.2) -> jax.Array:
    """bool[N]: the ``head_fraction`` of items with the most interactions (ties by lower index).

    The rest are the long tail. ``counts`` f32/int[N] are e.g. training interactions.
    """
    counts = jnp.asarray(counts)
    n = counts.shape[-1]
    num_head = max(1, int(round(head_fraction * n)))
    order = jnp.argsort(-counts, stable=True)
    return jnp.zeros((n,), bool).at[order[:num_head]].set(True)


def exposure_disparity(exposure: jax.Array, is_popular: jax.Array) -> dict[str, jax.Array]:
    """Mean exposure per item of the popular and the long-tail group, and their ratio.

    Under equal exposure the ratio is 1; a ratio of 10 means a popular item gets ten
    times the attention of a long-tail item on average. Returns f32[] values under
    ``popular``, ``long_tail``, ``ratio`` (popular / long_tail; inf if the tail got none)
    and ``share_popular`` (the popular group's share of all exposure).
    """
    exposure = jnp.asarray(exposure, jnp.float32)
    pop = jnp.asarray(is_popular, bool)
    n_pop, n_tail = jnp.sum(pop), jnp.sum(~pop)
    mean_pop = jnp.sum(jnp.where(pop, exposure, 0.0)) / jnp.maximum(n_pop, 1)
    mean_tail = jnp.sum(jnp.where(pop, 0.0, exposure)) / jnp.maximum(n_tail, 1)
    total = jnp.sum(exposure)
    return {
        "popular": mean_pop,
        "long_tail": mean_tail,
        "ratio": jnp.where(mean_tail > 0, mean_pop / jnp.where(mean_tail > 0, mean_tail, 1.0), jnp.inf),
        "share_popular": jnp.where(total > 0, jnp.sum(jnp.where(pop, exposure, 0.0)) / jnp.where(total > 0, total, 1.0), 0.0),
    }


def group_utility(utility: jax.Array, group: jax.Array, num_groups: int) -> dict[str, jax.Array]:
    """Mean utility (e.g. NDCG@10) of each user group, and the disparity between groups.

    utility: f32[U] per-user utility; group: int32[U] in 0..num_groups-1 (-1 = unknown,
    left out). Returns ``mean`` f32[G] (NaN for an empty group), ``count`` f32[G], and
    ``gap`` f32[] = max - min of the non-empty groups' means.
    """
    utility = jnp.asarray(utility, jnp.float32)
    group = jnp.asarray(group, jnp.int32)
    onehot = (group[:, None] == jnp.arange(num_groups)[None, :]).astype(jnp.float32)  # [U, G]
    count = onehot.sum(axis=0)
    mean = jnp.where(count > 0, (onehot * utility[:, None]).sum(axis=0) / jnp.maximum(count, 1.0), jnp.nan)
    gap = jnp.nanmax(mean) - jnp.nanmin(mean)
    return {"mean": mean, "count": count, "gap": gap}
