"""Online ridge regression over FIXED item features: per-item variances and means kept by
rank-one updates, the Gram matrix formed only when it is needed.

The engine uses this form (``Policy.fixed_features``) when the item features x_n f32[N, D]
are the same for every stream and step (it reads that from the program). Then, per
Sherman-Morrison update with u = A^-1 x, c = 1 + x.u, w_n = x_n.u (one [N] GEMV):

    A^-1 -= u (u / c)^T        var_n -= w_n (w_n / c)      (var_n = x_n^T A^-1 x_n)
    g = (r - x.theta) / c      theta += g u                mean_n += g w_n   (mean_n = x_n.theta)
    b += r x                   counts[item] += 1

O(N D + D^2) instead of the O(N D^2) recomputation of the variances and the O(N D) of the
means at act. No Gram matrix is kept: every rank-one term is some x_n x_n^T, so the Gram
matrix is ``X^T diag(counts) X`` (:func:`full_gram`), with ``counts`` f32[N] the number
of updates with each item (exact integers in float32 up to 2^24 per item). That spares
the two [D, D] passes per stream-step an accumulated Gram matrix costs (the engine's
LinUCB step is bound by state traffic), and counts that are never reset spare the pass
that emptied a count of pending terms after each re-factorisation. At each
re-factorisation (every ``refactor_every`` updates, or a new ``reg``) the Gram matrix is
formed from the counts, A^-1 refreshed from it (one Newton-Schulz step from the kept A^-1,
or a Cholesky inverse where that one is too far: :mod:`rec_jax.policies._refined_inverse`),
and var, theta and mean recomputed from it: float32 drift never outlives one refactor period.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.policies._refined_inverse import refined_inverse, refined_inverses
from rec_jax.policies._ridge import _quad_forms, clip_reg, init_ridge, quadratic_forms


@struct.dataclass
class ItemVarianceRidgeState:
    """The ridge state for the run's fixed item features x_n f32[N, D] (module docstring):
    b f32[D] = sum r x, a_inv f32[D, D] = (X^T diag(counts) X + reg I)^-1, reg f32[] (the
    regulariser a_inv was built with), num_updates i32[] (rank-one updates), counts f32[N]
    (updates per item), var f32[N] = x_n^T a_inv x_n, theta f32[D] = a_inv b and mean
    f32[N] = x_n.theta. Before the first update (num_updates == 0) ``var`` is unset and act
    uses |x_n|^2 / reg, the variances of the acting inverse (reg I)^-1; theta and mean are
    0 then (b = 0)."""

    b: jax.Array
    a_inv: jax.Array
    reg: jax.Array
    num_updates: jax.Array
    counts: jax.Array
    var: jax.Array
    theta: jax.Array
    mean: jax.Array


def init_item_variances(feature_dim: int, num_items: int) -> ItemVarianceRidgeState:
    base = init_ridge(feature_dim)
    zeros_n = jnp.zeros((num_items,), jnp.float32)
    return ItemVarianceRidgeState(b=base.b, a_inv=base.a_inv, reg=base.reg, num_updates=base.num_updates,
                                  counts=zeros_n, var=zeros_n, theta=jnp.zeros((feature_dim,), jnp.float32),
                                  mean=zeros_n)


def full_gram(state: ItemVarianceRidgeState, features: jax.Array) -> jax.Array:
    """f32[D, D] sum of x x^T over every update so far: ``X^T diag(counts) X``."""
    return _gram(state.counts, features)


def _gram(counts, features):
    return (features * counts[:, None]).T @ features


def acting_variances(state: ItemVarianceRidgeState, features: jax.Array, reg) -> jax.Array:
    """f32[N] variances for act: |x_n|^2 / reg before any update (a_inv = (reg I)^-1 then),
    else the kept ``var``. Under vmap with fixed features the squared norms are computed
    once for all streams; only the select is per stream."""
    fresh = state.num_updates == 0
    return jnp.where(fresh, jnp.sum(features * features, axis=-1) / clip_reg(reg), state.var)


def _small_dot(a: jax.Array, b: jax.Array) -> jax.Array:
    """a . b for short vectors f32[D], as D explicit products and sums (D <= 64). Under vmap
    both ``a @ b`` (a batched dot_general) and ``jnp.sum(a * b)`` (a row reduction) become
    XLA:CPU library calls, 100+ us for 4,096 x 16 (profiled); the unrolled form is one fused
    elementwise loop."""
    d = a.shape[-1]
    if d > 64:
        return jnp.sum(a * b, axis=-1)
    terms = [a[..., i] * b[..., i] for i in range(d)]
    while len(terms) > 1:  # pairwise, as a reduction would add them
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def ridge_update_item_variances(state: ItemVarianceRidgeState, items: jax.Array, rewards: jax.Array, reg,
                                refactor_every, features: jax.Array) -> ItemVarianceRidgeState:
    """Rank-one updates with the items ``items`` i32[K] of the fixed ``features`` f32[N, D] and
    rewards f32[K] (module docstring), then the re-factorisation if due."""
    # Before the first update a_inv is (state.reg I)^-1, so the variances are |x|^2 / state.reg.
    var0 = jnp.where(state.num_updates == 0, jnp.sum(features * features, axis=-1) / state.reg, state.var)

    def step(carry, item_reward):
        a_inv, b, var, theta, mean, counts = carry
        item, r = item_reward
        x = features[item]
        u = a_inv @ x
        # one division per stream: a divide per element of the [D, D] and [N] passes is what
        # made the A^-1 update compute-bound (~1.5x slower, profiled)
        inv_c = 1.0 / (1.0 + _small_dot(x, u))
        g = (r - _small_dot(x, theta)) * inv_c
        # ``u @ features.T`` (not features @ u): under vmap the product comes out [S, N], no transpose.
        w = u @ features.T
        # a one-hot add, not ``.at[item].add``: an elementwise pass XLA fuses, where the scatter's
        # in-place buffer cost two [N] copies per step around the re-factorisation branch
        hit = jax.lax.broadcasted_iota(jnp.int32, counts.shape, 0) == item
        return (a_inv - jnp.outer(u, u * inv_c), b + r * x, var - w * (w * inv_c), theta + g * u, mean + g * w,
                counts + hit.astype(jnp.float32)), None

    carry = (state.a_inv, state.b, var0, state.theta, state.mean, state.counts)
    (a_inv, b, var, theta, mean, counts), _ = jax.lax.scan(step, carry, (items, rewards))
    reg = clip_reg(reg)
    every = jnp.maximum(jnp.asarray(refactor_every, jnp.int32), 1)
    num_updates = state.num_updates + items.shape[0]
    due = (num_updates // every != state.num_updates // every) | (reg != state.reg)
    a_inv, var, theta, mean = refactor_variances_if_due(due, counts, reg, b, features, a_inv, var, theta, mean)
    return ItemVarianceRidgeState(b=b, a_inv=a_inv, reg=reg, num_updates=num_updates, counts=counts, var=var,
                                  theta=theta, mean=mean)


def _refreshed(counts, reg, b, features, a_inv):
    inv = refined_inverse(_gram(counts, features), reg, a_inv)
    theta = inv @ b
    var = jnp.maximum(_quad_forms(features, inv), 0.0)
    return inv, var, theta, features @ theta


@jax.custom_batching.custom_vmap
def refactor_variances_if_due(due, counts, reg, b, features, a_inv, var, theta, mean):
    """``(A^-1, var, theta, mean)`` recomputed from the Gram matrix of ``counts``, ``reg``
    and ``b`` if ``due``, else the kept ones; like ``_ridge.refactor_if_due``, a real
    branch also under vmap (the refresh runs only in steps where some stream is due)."""
    return jax.lax.cond(due, lambda: _refreshed(counts, reg, b, features, a_inv), lambda: (a_inv, var, theta, mean))


@refactor_variances_if_due.def_vmap
def _refactor_variances_if_due_vmap(axis_size, in_batched, due, counts, reg, b, features, a_inv, var, theta, mean):
    in_batched = tuple(in_batched)
    due_b, f_b = in_batched[0], in_batched[4]

    def full(x, batched):
        return x if batched else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x))

    kept_names = (counts, reg, b, a_inv, var, theta, mean)
    kept_batched = in_batched[1:4] + in_batched[5:]
    counts, reg, b, a_inv, var, theta, mean = (full(x, bt) for x, bt in zip(kept_names, kept_batched))
    any_due = jnp.any(due) if due_b else due
    kept = (a_inv, var, theta, mean)

    def refactor():
        if f_b:
            fresh = jax.vmap(_refreshed)(counts, reg, b, features, a_inv)
        else:
            # fixed (unbatched) features: every stream's Gram matrix, variances and means are
            # GEMMs against the one copy of the features (quadratic_forms' rule)
            n, d = features.shape
            pairs = (features[:, :, None] * features[:, None, :]).reshape(n, d * d)
            inv = refined_inverses((counts @ pairs).reshape(axis_size, d, d), reg, a_inv)
            new_theta = jnp.einsum("sij,sj->si", inv, b)
            new_var = jnp.maximum(jax.vmap(quadratic_forms, in_axes=(None, 0))(features, inv), 0.0)
            fresh = (inv, new_var, new_theta, new_theta @ features.T)
        if not due_b:
            return fresh
        return tuple(jnp.where(due.reshape((axis_size,) + (1,) * (f.ndim - 1)), f, k) for f, k in zip(fresh, kept))

    return jax.lax.cond(any_due, refactor, lambda: kept), (True,) * 4
