"""LinUCB with disjoint models (Li et al. 2010, Algorithm 1): one A_n, b_n per item.

score_n = x_n^T theta_n + alpha * sqrt(x_n^T A_n^{-1} x_n), A_n = reg I + sum of
x x^T over the times item n was shown, theta_n = A_n^{-1} b_n. Each A_n^{-1} is
kept by Sherman-Morrison and re-factorised by Cholesky every ``refactor_every``
updates of that item (and for all items when ``reg`` changes; init builds reg = 1,
so before the first update act uses (reg I)^{-1} of the params' ``reg``).
Slates take the top-K scores; exact ties broken uniformly at random (exact
propensities, num_mc_samples = 0). Shared-mode ``merge`` sums the deltas of every
A_n, b_n and count and recomputes the inverses.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common, _ridge
from rec_jax.policies._slates import epsilon_ranked_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec

NAME = "linucb_disjoint"


@struct.dataclass
class LinUCBDisjointParams:
    alpha: float = 1.0  # width of the confidence bonus, >= 0
    reg: float = 1.0  # ridge regulariser lambda > 0 (from the first act; a change takes effect at the next update)
    refactor_every: int = 100  # recompute A_n^{-1} by Cholesky every this many updates of item n

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


@struct.dataclass
class DisjointState:
    """gram f32[N, D, D], b f32[N, D], a_inv f32[N, D, D] = (gram_n + reg I)^-1,
    reg f32[] (the regulariser a_inv was built with), counts i32[N] (updates per item)."""

    gram: jax.Array
    b: jax.Array
    a_inv: jax.Array
    reg: jax.Array
    counts: jax.Array


def validate_params(params: LinUCBDisjointParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME, needs_features=True)
    _common.check_range(params, "alpha", low=0.0)
    _ridge.check_ridge_params(params)


def make_linucb_disjoint(spec: PolicySpec) -> Policy:
    """Disjoint LinUCB for one stream; ``spec`` fixes N, D and K."""
    _common.check_spec(spec, NAME, needs_features=True)
    k = spec.slate_size

    def init(key, spec):
        del key
        n, d = spec.num_items, spec.feature_dim
        return DisjointState(
            gram=jnp.zeros((n, d, d), jnp.float32),
            b=jnp.zeros((n, d), jnp.float32),
            a_inv=jnp.broadcast_to(jnp.eye(d, dtype=jnp.float32), (n, d, d)),
            reg=jnp.ones((), jnp.float32),
            counts=jnp.zeros((n,), jnp.int32),
        )

    def act(key, state, obs, params):
        x = obs.features.astype(jnp.float32)
        # Before any update (init cannot see params) the inverses are (reg I)^-1 of params.reg.
        fresh = jnp.sum(state.counts) == 0
        a_inv = jnp.where(fresh, jnp.eye(x.shape[-1], dtype=jnp.float32) / _ridge.clip_reg(params.reg), state.a_inv)
        theta = jnp.einsum("nij,nj->ni", a_inv, state.b)
        mean = jnp.sum(x * theta, axis=-1)
        var = jnp.maximum(jnp.einsum("ni,nij,nj->n", x, a_inv, x), 0.0)
        scores = mean + jnp.maximum(jnp.asarray(params.alpha, jnp.float32), 0.0) * jnp.sqrt(var)
        return epsilon_ranked_slate(key, scores, obs.available, 0.0, k)

    def update(key, state, obs, action, reward, params):
        del key
        items, rewards = _common.as_slots(action, reward, k)
        xs = obs.features.astype(jnp.float32)[items]
        reg = _ridge.clip_reg(params.reg)
        every = jnp.maximum(jnp.asarray(params.refactor_every, jnp.int32), 1)

        def one(st, slot):
            item, x, r = slot
            gram = st.gram[item] + jnp.outer(x, x)
            count = st.counts[item] + 1
            a_inv = jax.lax.cond(
                count % every == 0,
                lambda: _ridge.ridge_inverse(gram, reg),
                lambda: _ridge.sherman_morrison(st.a_inv[item], x),
            )
            return st.replace(
                gram=st.gram.at[item].set(gram),
                b=st.b.at[item].add(r * x),
                a_inv=st.a_inv.at[item].set(a_inv),
                counts=st.counts.at[item].set(count),
            ), None

        state, _ = jax.lax.scan(one, state, (items, xs, rewards))
        a_inv = jax.lax.cond(
            reg != state.reg,
            lambda: jax.vmap(_ridge.ridge_inverse, in_axes=(0, None))(state.gram, reg),
            lambda: state.a_inv,
        )
        return state.replace(a_inv=a_inv, reg=reg)

    def merge(state, new_states):
        def fold(old, new):
            return (old + jnp.sum(new - old[None], axis=0)).astype(old.dtype)

        gram = fold(state.gram, new_states.gram)
        reg = new_states.reg[0]
        return DisjointState(
            gram=gram,
            b=fold(state.b, new_states.b),
            a_inv=jax.vmap(_ridge.ridge_inverse, in_axes=(0, None))(gram, reg),
            reg=reg,
            counts=fold(state.counts, new_states.counts),
        )

    return Policy(init=init, act=act, update=update, merge=merge)


POLICY = PolicyInfo(
    make=make_linucb_disjoint,
    params=LinUCBDisjointParams,
    validate=validate_params,
    kind="contextual",
    needs_features=True,
    bad_params=(("alpha", -1.0), ("reg", -1.0), ("refactor_every", 0)),
)
