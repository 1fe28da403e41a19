"""An ensemble of M bootstrapped linear heads with randomized priors (Osband et al. 2016, 2018).

The second uncertainty method for the Transformer (beside NeuralLinear): the same
features ``obs.features`` f32[N, D] (``x_n = h * e_n``), M ridge heads, head m with
prior mean ``c 1 + sigma_p z_m`` (z_m ~ N(0, I) drawn once at init: the randomized
prior that makes the heads disagree before any data) and every observation entering
head m with a bootstrap weight w_m ~ Poisson(1) (weighted rank-one update with
sqrt(w) x and sqrt(w) r). Each head keeps the raw weighted sums G_m = sum w x x^T and
b_m = sum w r x; its posterior mean p_m + A_m^{-1} (b_m - G_m p_m) (p_m the prior
mean) is formed when acting, so ``prior_mean`` / ``prior_scale`` changed mid-run
give the exact posterior under the new prior. To act, pick a head uniformly at random and show its
top-K. The propensities are EXACT, not Monte Carlo: the probability of a slate
prefix is the fraction of the M heads whose top-K starts with it (all M heads are
scored; ties between items are broken by index, so each head's top-K is
deterministic).

Shared mode pools all streams' observations into the M heads (``merge`` sums the
Gram/b deltas per head and recomputes the inverses).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.fused_threefry import as_standard
from rec_jax.policies import _common, _factored, _ridge
from rec_jax.policies._slates import sampled_topk_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import EXACT, Policy, PolicySpec

NAME = "bootstrapped_heads"


@struct.dataclass
class BootstrappedHeadsParams:
    prior_mean: float = 0.05  # c: shared prior mean c * 1 of every head (ranks like the model), >= 0; any time
    prior_scale: float = 0.05  # sigma_p: spread of the randomized prior means around c * 1, >= 0
    reg: float = 1.0  # prior precision lambda > 0 (from the first act; a change takes effect at the next update)
    refactor_every: int = 100  # recompute each A_m^{-1} by Cholesky every this many rank-one updates

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


@struct.dataclass
class HeadsState:
    """ridge: a RidgeState with a leading [M] axis on every leaf; z f32[M, D] prior draws."""

    ridge: _ridge.RidgeState
    z: jax.Array


def validate_params(params: BootstrappedHeadsParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME, needs_features=True)
    _common.check_range(params, "prior_mean", low=0.0)
    _common.check_range(params, "prior_scale", low=0.0)
    _ridge.check_ridge_params(params)


def head_means(state: HeadsState, params) -> jax.Array:
    """f32[M, D] posterior mean p_m + A_m^{-1} (b_m - G_m p_m) of every head (raw sums G_m, b_m)."""
    prior = jnp.asarray(params.prior_mean, jnp.float32) + jnp.asarray(params.prior_scale, jnp.float32) * state.z
    ridge = _ridge.acting_state(state.ridge, params.reg)
    residual = ridge.b - jnp.einsum("mij,mj->mi", ridge.gram, prior)
    return prior + jnp.einsum("mij,mj->mi", ridge.a_inv, residual)


def make_bootstrapped_heads(spec: PolicySpec, num_heads: int = 8) -> Policy:
    """M = ``num_heads`` (static) bootstrapped heads for one stream (or shared)."""
    _common.check_spec(spec, NAME, needs_features=True)
    if not isinstance(num_heads, int) or num_heads < 1:
        raise ValueError(f"{NAME}: num_heads must be a positive int, got {num_heads!r}")
    k = spec.slate_size
    d = spec.feature_dim

    def init(key, spec):
        one = _ridge.init_ridge(d)
        ridge = jax.tree.map(lambda x: jnp.broadcast_to(x, (num_heads,) + x.shape), one)
        return HeadsState(ridge=ridge, z=jax.random.normal(key, (num_heads, d), jnp.float32))

    def act(key, state, obs, params):
        scores = _factored.scores_of(head_means(state, params), obs.features)  # [M, N]
        m = scores.shape[0]

        def heads_from_chosen(draw_key, num):
            del num
            # Roll the ensemble so the uniformly chosen head acts (draw 0); the
            # prefix counts over all M heads are the exact propensities.
            shift = jax.random.randint(draw_key, (), 0, m)
            return jnp.roll(scores, -shift, axis=0)

        picks, info = sampled_topk_slate(key, heads_from_chosen, obs.available, k, m)
        exact = jnp.asarray(EXACT, jnp.int32)  # a sum over all M heads, not a Monte Carlo estimate
        return picks, info.replace(num_mc_samples=jnp.zeros((), jnp.int32), propensity_kind=exact, marginal_kind=exact)

    def update(key, state, obs, action, reward, params):
        items, rewards = _common.as_slots(action, reward, k)
        xs = _factored.rows(obs.features, items)  # [K, D]
        m = state.z.shape[0]
        # poisson takes only JAX's own threefry keys (the engine's may be fused: same bits)
        weights = jax.random.poisson(as_standard(key), 1.0, (m, xs.shape[0])).astype(jnp.float32)  # [M, K]
        root = jnp.sqrt(weights)

        def one_head(ridge, w_root):
            return _ridge.ridge_update(ridge, w_root[:, None] * xs, w_root * rewards, params.reg, params.refactor_every)

        return state.replace(ridge=jax.vmap(one_head)(state.ridge, root))

    def merge(state, new_states):
        def fold(old, new):
            return (old + jnp.sum(new - old[None], axis=0)).astype(old.dtype)

        gram = fold(state.ridge.gram, new_states.ridge.gram)
        reg = new_states.ridge.reg[0]
        ridge = _ridge.RidgeState(
            gram=gram,
            b=fold(state.ridge.b, new_states.ridge.b),
            a_inv=jax.vmap(_ridge.ridge_inverse)(gram, reg),
            reg=reg,
            num_updates=fold(state.ridge.num_updates, new_states.ridge.num_updates),
        )
        return state.replace(ridge=ridge)

    return Policy(init=init, act=act, update=update, merge=merge)


POLICY = PolicyInfo(
    make=make_bootstrapped_heads,
    params=BootstrappedHeadsParams,
    validate=validate_params,
    kind="model_backed",
    needs_features=True,
    bad_params=(("prior_scale", -1.0), ("reg", -1.0)),
)
