"""The K = 1 pick of the epsilon-ranked slate (:func:`rec_jax.policies._slates.epsilon_ranked_slate`):
with probability eps a uniform item among those left, else the best one, exact ties
broken uniformly at random; exact propensities and marginals, O(N) and no sort.

Row reductions are XLA:CPU's slow ops, so the pick takes two over the N values (their
max as order-preserving int32 keys, then one integer sum packing the number of best items
and the only one's index); the pool a stream draws from when it explores or has a tie is
built only inside a branch that runs when some stream of the batch needs it.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rec_jax.topk import chunked as _chunked
from rec_jax.topk import from_total_order_key, total_order_key

# Finite stand-in for -inf / NaN values so ranking keys stay ordered.
_LOWEST = -3.0e38


def _finite(values):
    """f32 values with NaN and -inf (and anything below) raised to the lowest finite rank value."""
    return jnp.where(jnp.isnan(values), _LOWEST, jnp.maximum(values.astype(jnp.float32), _LOWEST))


def _best_items(values, mask):
    """(top f32[], best bool[N], number of best i32[], the only best's index when there is
    one) of the available ``values``: the max, then ONE packed integer sum."""
    v_left = jnp.where(mask, _finite(values), -jnp.inf)
    top = _row_max(v_left)
    best = mask & (v_left == top)
    num_best, only_best = _count_and_only_index(best)
    return top, best, num_best, only_best


def epsilon_argmax(key, values, mask, eps):
    """(pick i32[], its propensity f32[], the marginal f32[N]) of the K = 1 epsilon-ranked
    slate (same distribution, O(N), no sort):
    three uniforms per act -- the exploration coin, then the index of the pick among
    the pool (all items left when exploring, else the exact ties for the best).

    Two passes over the N values: their max, then ONE integer sum that gives both the
    number of best items and, when there is just one, its index (row reductions are
    XLA:CPU's slow ops; this was five of them). Only a stream that explores or has a
    tie needs a prefix count (:func:`_nth_in_pool_unless`), run when some stream does."""
    top, best, num_best, only_best = _best_items(values, mask)
    num_left = jnp.sum(mask, dtype=jnp.int32)
    u = jax.random.uniform(key, (3,))
    explore = u[0] < eps
    count = jnp.where(explore, num_left, num_best)  # the pool: every item left if exploring, else the best
    j = jnp.minimum((u[1] * count.astype(jnp.float32)).astype(jnp.int32), count - 1)  # uniform in [0, count)
    # Not exploring among one best item: the pick is that item. Otherwise the (j+1)-th item of
    # the pool, built inside the rare branch (so that no [N] pool is materialised every step).
    pick = _nth_in_pool_unless(values, top, mask, explore, j, only_best, explore | (num_best != 1))
    nb, nl = num_best.astype(jnp.float32), num_left.astype(jnp.float32)
    probs = (1.0 - eps) * best / nb + eps * mask / nl  # f32[N], the marginal (dropped when unused)
    prop = (1.0 - eps) * best[pick] / nb + eps * mask[pick] / nl  # = probs[pick], without a pass over N
    return pick, prop, probs


def greedy_argmax(key, values, mask):
    """:func:`epsilon_argmax` for an epsilon of 0 known when tracing (LinUCB, UCB, greedy):
    the same pick, propensity and marginal, from the same draw; the draw is made only in
    the rare branch that needs it (a stream with tied best items), so that the common path
    hashes no per-stream uniforms."""
    top, best, num_best, only_best = _best_items(values, mask)
    pick = _tied_pick_unless(key, values, top, mask, num_best, only_best, num_best != 1)
    nb = num_best.astype(jnp.float32)
    probs = best / nb
    prop = best[pick] / nb
    return pick, prop, probs


def _tied_nth(key, values, top, mask, num_best):
    """The pick among ``num_best`` tied best items: the (j+1)-th, j from the second of three
    uniforms of ``key`` (the draw :func:`epsilon_argmax` makes, so the same pick)."""
    u = jax.random.uniform(key, (3,))
    j = jnp.minimum((u[..., 1] * num_best.astype(jnp.float32)).astype(jnp.int32), num_best - 1)
    explore = jnp.zeros(j.shape, bool)
    return _pool_nth(values, top, mask, explore, j)


@jax.custom_batching.custom_vmap
def _tied_pick_unless(key, values, top, mask, num_best, known, unknown):
    """``_tied_nth(...)`` where ``unknown``, else ``known``; under vmap the draw and the
    prefix count run only when some stream of the batch has a tie."""
    return jax.lax.cond(unknown, lambda: _tied_nth(key, values, top, mask, num_best), lambda: known)


@_tied_pick_unless.def_vmap
def _tied_pick_unless_vmap(axis_size, in_batched, key, values, top, mask, num_best, known, unknown):
    full = lambda x, b: x if b else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x))
    key, values, top, mask, num_best, known, unknown = (
        full(x, b) for x, b in zip((key, values, top, mask, num_best, known, unknown), in_batched))
    rare = lambda: jnp.where(unknown, jax.vmap(_tied_nth)(key, values, top, mask, num_best), known)
    return jax.lax.cond(jnp.any(unknown), rare, lambda: known), True


def _count_and_only_index(best):
    """(number of True in ``best`` bool[N], the index of the True when there is exactly one):
    one int32 sum of 1 + (N + 1) n over the True n when that cannot overflow, else two
    reductions."""
    n = best.shape[-1]
    if (n + 1) * n * (n - 1) // 2 + n < 2**31:
        packed = _chunked(jnp.sum, jnp.add, jnp.where(
            best, 1 + (n + 1) * jax.lax.broadcasted_iota(jnp.int32, best.shape, best.ndim - 1), 0))
        return packed % (n + 1), packed // (n + 1)
    return jnp.sum(best, axis=-1, dtype=jnp.int32), _first_true(best)


def _first_true(mask):
    """``jnp.argmax(mask, axis=-1)`` of a bool mask (the first True; 0 where none), as a
    plain min over an iota: XLA:CPU's (value, index) argmax reduction is the slower one
    (the engine's batched act over [4096, 100]: 1.35 -> 1.14 ms a step, same picks)."""
    n = mask.shape[-1]
    iota = jax.lax.broadcasted_iota(jnp.int32, mask.shape, mask.ndim - 1)
    first = jnp.min(jnp.where(mask, iota, n), axis=-1)
    return jnp.where(first == n, 0, first)


def _nth_true_scan(mask, j):
    return _first_true(jax.lax.associative_scan(jnp.add, mask.astype(jnp.int32), axis=-1) > j[..., None])


def _pool_nth(values, top, mask, explore, j):
    """The (j+1)-th item of the pool: every item left when exploring, else the best ones
    (``top`` = the max of the available ``_finite(values)``)."""
    best = mask & (_finite(values) == top[..., None])
    return _nth_true_scan(jnp.where(explore[..., None], mask, best), j)


@jax.custom_batching.custom_vmap
def _nth_in_pool_unless(values, top, mask, explore, j, known, unknown):
    """``_pool_nth(...)`` where ``unknown``, else ``known`` (the caller's answer, equal to it);
    under vmap the prefix count runs only when some stream of the batch is unknown."""
    return jax.lax.cond(unknown, lambda: _pool_nth(values, top, mask, explore, j), lambda: known)


@_nth_in_pool_unless.def_vmap
def _nth_in_pool_unless_vmap(axis_size, in_batched, values, top, mask, explore, j, known, unknown):
    full = lambda x, b: x if b else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x))
    mask_b = in_batched[2]
    values, top, mask_full, explore, j, known, unknown = (
        full(x, b) for x, b in zip((values, top, mask, explore, j, known, unknown), in_batched))
    if mask_b:
        rare = lambda: jnp.where(unknown, _pool_nth(values, top, mask_full, explore, j), known)
        return jax.lax.cond(jnp.any(unknown), rare, lambda: known), True
    # One availability mask for the whole batch (fixed catalogue): the exploring streams'
    # picks come from ONE prefix count of it, the (j+1)-th True being the number of
    # positions whose count is <= j: a compare-and-sum over [S, N] instead of a prefix scan
    # per stream (epsilon-greedy explores in some stream at nearly every step).
    counts = jnp.cumsum(mask.astype(jnp.int32))
    explored = lambda: jnp.where(explore, jnp.sum(counts <= j[:, None], axis=-1, dtype=jnp.int32), known)
    picked = jax.lax.cond(jnp.any(explore), explored, lambda: known)
    ties = unknown & ~explore  # not exploring, several best items: a per-stream prefix scan
    rare = lambda: jnp.where(ties, _pool_nth(values, top, mask_full, explore, j), picked)
    return jax.lax.cond(jnp.any(ties), rare, lambda: picked), True


def _row_max(v):
    """max over the last axis of f32 ``v`` (no NaN), reduced as order-preserving int32 keys
    (:func:`rec_jax.topk.total_order_key`; -0.0 keys just below +0.0, and they compare equal
    afterwards anyway, as floats).

    XLA:CPU hands an f32 row max to a library (YNN) reduction that took ~280 us on
    [4,096, 100]; the same max over int32 keys stays an XLA loop (~170 us, profiled in
    the LinUCB engine; less again in slices, :func:`rec_jax.topk.chunked`)."""
    return from_total_order_key(_chunked(jnp.max, jnp.maximum, total_order_key(v)))
