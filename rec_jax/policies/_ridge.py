"""Online ridge regression with a maintained float32 inverse (LinUCB, LinTS, SquareCB).

State keeps the sufficient statistics ``gram = sum x x^T`` and ``b = sum r x``
(exactly mergeable by summed deltas) and ``a_inv = (gram + reg I)^{-1}``, kept by
Sherman-Morrison rank-one updates and recomputed from ``gram`` by Cholesky every
``refactor_every`` rank-one updates (float32 drift control), and whenever the
regulariser in params differs from the one the inverse was built with. A new
``reg`` therefore takes effect at the next update. ``init`` cannot see params (it
builds reg = 1), so before the first update act uses (reg I)^{-1} with the params'
``reg`` (:func:`acting_state`): the first act honours ``params.reg`` too.

Under ``vmap`` (the engine's per-stream mode) the refactor predicate is batched,
which would turn a plain ``lax.cond`` into a select running the Cholesky for every
stream at every update. :func:`refactor_if_due` has its own batching rule
(``jax.custom_batching.custom_vmap``): it branches on "any stream due" (unbatched),
so the Cholesky runs only on updates where some stream is due and there replaces
``a_inv`` of exactly the due streams. Streams stepped in lockstep (the engine)
therefore refactor together, once every ``refactor_every`` updates, with the same
result per stream as unbatched use.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common


@struct.dataclass
class RidgeState:
    """gram f32[D, D], b f32[D], a_inv f32[D, D] = (gram + reg I)^-1,
    reg f32[] (the regulariser a_inv was built with), num_updates i32[] (rank-one updates)."""

    gram: jax.Array
    b: jax.Array
    a_inv: jax.Array
    reg: jax.Array
    num_updates: jax.Array


def init_ridge(feature_dim: int, reg: float = 1.0) -> RidgeState:
    d = feature_dim
    return RidgeState(
        gram=jnp.zeros((d, d), jnp.float32),
        b=jnp.zeros((d,), jnp.float32),
        a_inv=jnp.eye(d, dtype=jnp.float32) / reg,
        reg=jnp.asarray(reg, jnp.float32),
        num_updates=jnp.zeros((), jnp.int32),
    )


def acting_state(state: RidgeState, reg) -> RidgeState:
    """The state ``act`` reads: before any update (num_updates == 0, gram = 0) the
    inverse and regulariser of ``reg`` (the params'), else ``state`` as kept. Leaves
    may carry leading axes (an ensemble of heads)."""
    reg = clip_reg(reg)
    fresh = state.num_updates == 0
    d = state.gram.shape[-1]
    a_inv = jnp.where(fresh[..., None, None], jnp.eye(d, dtype=jnp.float32) / reg, state.a_inv)
    return state.replace(a_inv=a_inv, reg=jnp.where(fresh, reg, state.reg))


def clip_reg(reg) -> jax.Array:
    return jnp.maximum(jnp.asarray(reg, jnp.float32), _common.TINY)


def ridge_inverse(gram: jax.Array, reg: jax.Array) -> jax.Array:
    """(gram + reg I)^{-1} via Cholesky, symmetrised."""
    d = gram.shape[-1]
    eye = jnp.eye(d, dtype=gram.dtype)
    chol = jnp.linalg.cholesky(gram + reg * eye)
    inv = jax.scipy.linalg.cho_solve((chol, True), eye)
    return 0.5 * (inv + inv.T)


def sherman_morrison(a_inv: jax.Array, x: jax.Array) -> jax.Array:
    """(A + x x^T)^{-1} from A^{-1}, in the symmetric form A^-1 - u u^T / (1 + x.u), u = A^-1 x."""
    u = a_inv @ x
    return a_inv - jnp.outer(u, u) / (1.0 + x @ u)


def ridge_update(state: RidgeState, xs: jax.Array, rewards: jax.Array, reg, refactor_every) -> RidgeState:
    """Rank-one updates with contexts ``xs`` f32[K, D] and rewards f32[K], then refactor if due."""

    def one(carry, xr):
        gram, b, a_inv = carry
        x, r = xr
        return (gram + jnp.outer(x, x), b + r * x, sherman_morrison(a_inv, x)), None

    (gram, b, a_inv), _ = jax.lax.scan(one, (state.gram, state.b, state.a_inv), (xs, rewards))
    reg = clip_reg(reg)
    every = jnp.maximum(jnp.asarray(refactor_every, jnp.int32), 1)
    num_updates = state.num_updates + xs.shape[0]
    due = (num_updates // every != state.num_updates // every) | (reg != state.reg)
    a_inv = refactor_if_due(due, gram, reg, a_inv)
    return RidgeState(gram=gram, b=b, a_inv=a_inv, reg=reg, num_updates=num_updates)


@jax.custom_batching.custom_vmap
def refactor_if_due(due: jax.Array, gram: jax.Array, reg: jax.Array, a_inv: jax.Array) -> jax.Array:
    """``ridge_inverse(gram, reg)`` if ``due`` else ``a_inv`` (a real branch, also under vmap)."""
    return jax.lax.cond(due, lambda: ridge_inverse(gram, reg), lambda: a_inv)


@refactor_if_due.def_vmap
def _refactor_if_due_vmap(axis_size, in_batched, due, gram, reg, a_inv):
    due_b, gram_b, reg_b, a_inv_b = in_batched

    def full(x, batched):
        return x if batched else jnp.broadcast_to(x, (axis_size,) + jnp.shape(x))

    gram, reg, a_inv = full(gram, gram_b), full(reg, reg_b), full(a_inv, a_inv_b)
    # Branch on an unbatched predicate: the batched Cholesky runs only when a stream is due.
    any_due = jnp.any(due) if due_b else due

    def refactor():
        fresh = jax.vmap(ridge_inverse)(gram, reg)
        return jnp.where(due[:, None, None], fresh, a_inv) if due_b else fresh

    return jax.lax.cond(any_due, refactor, lambda: a_inv), True


def _quad_forms(features: jax.Array, a: jax.Array) -> jax.Array:
    return jnp.sum((features @ a) * features, axis=-1)


@jax.custom_batching.custom_vmap
def quadratic_forms(features: jax.Array, a: jax.Array) -> jax.Array:
    """f32[N] x_n^T A x_n for features f32[N, D] and a symmetric A f32[D, D].

    Under ``vmap`` with the features shared by the batch (unbatched, e.g. fixed item
    features) and a batched A, all B x N forms are ONE GEMM over the upper triangle:
    f32[B, D(D+1)/2] x f32[D(D+1)/2, N], with no [B, N, D] intermediate.
    """
    return _quad_forms(features, a)


@quadratic_forms.def_vmap
def _quadratic_forms_vmap(axis_size, in_batched, features, a):
    f_b, a_b = in_batched
    if f_b or not a_b:
        full = lambda x, b: x if b else jnp.broadcast_to(x, (axis_size,) + x.shape)
        return jax.vmap(_quad_forms)(full(features, f_b), full(a, a_b)), True
    n, d = features.shape
    pairs = (features[:, :, None] * features[:, None, :]).reshape(n, d * d)  # [N, D*D], once for the batch
    return a.reshape(axis_size, d * d) @ pairs.T, True


def ridge_merge(state: RidgeState, new_states: RidgeState) -> RidgeState:
    """Shared mode: sum the deltas of gram, b and counts over streams, recompute the inverse."""

    def fold(old, new):
        return (old + jnp.sum(new - old[None], axis=0)).astype(old.dtype)

    gram = fold(state.gram, new_states.gram)
    reg = new_states.reg[0]  # every stream updated with the same params
    return RidgeState(
        gram=gram,
        b=fold(state.b, new_states.b),
        a_inv=ridge_inverse(gram, reg),
        reg=reg,
        num_updates=fold(state.num_updates, new_states.num_updates),
    )


def ridge_theta(state: RidgeState) -> jax.Array:
    """f32[D] ridge estimate A^{-1} b."""
    return state.a_inv @ state.b


def check_ridge_params(params) -> None:
    _common.check_range(params, "reg", low=0.0, low_open=True)
    _common.check_range(params, "refactor_every", low=1, integer=True)


def gaussian_score_sampler(state: RidgeState, mu: jax.Array, scale, features: jax.Array):
    """``draw(key, S) -> f32[S, N]``: scores ``features @ theta`` for S draws of
    theta ~ N(mu, scale^2 A^-1), A = gram + reg I (via A's Cholesky factor L:
    cov(L^-T z) = (L L^T)^-1). The sampler of LinTS and NeuralLinear-TS."""
    d = mu.shape[0]
    chol = jnp.linalg.cholesky(state.gram + state.reg * jnp.eye(d, dtype=jnp.float32))
    scale = jnp.maximum(jnp.asarray(scale, jnp.float32), 0.0)

    def draw(draw_key, num):
        z = jax.random.normal(draw_key, (d, num))
        theta = mu[:, None] + scale * jax.scipy.linalg.solve_triangular(chol, z, lower=True, trans="T")
        from rec_jax.policies._factored import matmul

        return matmul(features, theta).T  # features f32[N, D] or _factored.ScaledRows

    return draw


def ridge_policy(spec, act, act_fixed=None):
    """A policy on ONE shared ridge regression over item features: ``act`` is the
    policy's own rule; init, the per-slot rank-one update with the shown items'
    features and rewards, and the merge (summed deltas, inverse recomputed) are shared.

    ``act_fixed(key, state, obs, params, var)``: the rule given the kept
    :class:`rec_jax.policies._ridge_fixed.ItemVarianceRidgeState` (``state.theta`` = A^-1 b,
    ``state.mean`` = X theta) and the items' variances ``var`` f32[N] = x_n^T A^-1 x_n (the
    acting ones, see :func:`rec_jax.policies._ridge_fixed.acting_variances`); with it the
    policy offers the ``fixed_features`` variant (variances, theta and means kept by
    rank-one updates).
    """
    from rec_jax.policies.base import Policy

    k = spec.slate_size

    def init(key, spec):
        del key
        return init_ridge(spec.feature_dim)

    def act_(key, state, obs, params):
        return act(key, acting_state(state, params.reg), obs, params)

    def update(key, state, obs, action, reward, params):
        del key
        items, rewards = _common.as_slots(action, reward, k)
        xs = obs.features.astype(jnp.float32)[items]
        return ridge_update(state, xs, rewards, params.reg, params.refactor_every)

    fixed = None
    if act_fixed is not None:
        def fixed():
            from rec_jax.policies._ridge_fixed import (acting_variances, init_item_variances,
                                                       ridge_update_item_variances)

            def init_f(key, spec):
                del key
                return init_item_variances(spec.feature_dim, spec.num_items)

            def act_f(key, state, obs, params):
                # state as kept: act_fixed reads theta (0 before any update) and the variances
                var = acting_variances(state, obs.features.astype(jnp.float32), params.reg)
                return act_fixed(key, state, obs, params, var)

            def update_f(key, state, obs, action, reward, params):
                del key
                items, rewards = _common.as_slots(action, reward, k)
                features = obs.features.astype(jnp.float32)
                return ridge_update_item_variances(state, items, rewards, params.reg, params.refactor_every, features)

            def merge_f(state, new_states):
                # Deliberately refused, not missing: completing the deferred Gram matrix needs the
                # item features, which merge is not given; shared mode uses the plain form.
                raise ValueError("merge: the fixed-features ridge form is per-stream only; shared mode "
                                 "expects the plain policy (the engine picks it)")

            return Policy(init=init_f, act=act_f, update=update_f, merge=merge_f)

    return Policy(init=init, act=act_, update=update, merge=ridge_merge, fixed_features=fixed)
