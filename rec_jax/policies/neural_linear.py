"""NeuralLinear (Riquelme et al. 2018): Bayesian linear regression on a network's features.

The features ``obs.features`` f32[N, D] are the Transformer's view of each item for
this user (``x_n = h * e_n``, user state times item embedding; see
:mod:`rec_jax.policies.model_backed`), and the reward model is ``r ~ x_n . theta``
with the Gaussian prior ``theta ~ N(c 1, reg^-1 I)``: ``c 1 . x_n = c h . e_n`` is
``c`` times the model's own score, so before any feedback the head ranks exactly like
the offline model and exploration happens *around* it. With noise variance 1:

    A = reg I + sum x x^T,   mu = A^{-1} (reg c 1 + sum r x) = c 1 + A^{-1} (b - G c 1)

with the ridge state of :mod:`rec_jax.policies._ridge` holding the raw sums
G = sum x x^T and b = sum r x: the prior mean enters only when the posterior is
formed, so a ``prior_mean`` changed mid-run (PBT, a meta-bandit) gives the exact
posterior under the new prior. Two acting rules:

* ``neural_linear_ts``: theta ~ N(mu, scale^2 A^-1); recommend the top-K of x . theta
  (Monte Carlo propensities from ``num_mc_samples`` draws, as LinTS);
* ``neural_linear_ucb``: top-K of x . mu + alpha sqrt(x^T A^-1 x); exact ties broken
  uniformly, exact propensities.

Per-stream mode gives each user their own posterior; shared mode pools all streams
into one (``merge`` sums the Gram/b deltas and recomputes the inverse).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common, _factored, _ridge
from rec_jax.policies._slates import epsilon_ranked_slate, sampled_topk_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec


@struct.dataclass
class NeuralLinearParams:
    prior_mean: float = 0.05  # c: prior mean of theta is c * 1 (ranks like the model's score), >= 0; any time
    scale: float = 0.5  # TS: posterior scale v, theta ~ N(mu, v^2 A^-1), >= 0
    alpha: float = 0.5  # UCB: width of the confidence bonus, >= 0
    reg: float = 1.0  # prior precision lambda > 0 (from the first act; a change takes effect at the next update)
    refactor_every: int = 100  # recompute A^{-1} by Cholesky every this many rank-one updates
    num_mc_samples: int = struct.field(pytree_node=False, default=64)  # TS: posterior draws per act

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: NeuralLinearParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, "neural_linear", needs_features=True)
    for field in ("prior_mean", "scale", "alpha"):
        _common.check_range(params, field, low=0.0)
    _ridge.check_ridge_params(params)
    _common.check_static_positive(params, "num_mc_samples")


def posterior_mean(state: _ridge.RidgeState, prior_mean) -> jax.Array:
    """f32[D] mu = c 1 + A^{-1} (b - G c 1) = A^{-1} (reg c 1 + b), from the raw sums G, b."""
    prior = jnp.broadcast_to(jnp.asarray(prior_mean, jnp.float32), state.b.shape)
    return prior + state.a_inv @ (state.b - state.gram @ prior)


def _make(spec: PolicySpec, rule: str) -> Policy:
    _common.check_spec(spec, f"neural_linear_{rule}", needs_features=True)
    k = spec.slate_size

    def init(key, spec):
        del key
        return _ridge.init_ridge(spec.feature_dim)

    def act(key, state, obs, params):
        x = obs.features  # f32[N, D] or _factored.ScaledRows (the engine's model view)
        state = _ridge.acting_state(state, params.reg)
        mu = posterior_mean(state, params.prior_mean)
        if rule == "ucb":
            width = jnp.sqrt(jnp.maximum(_factored.quadratic_forms(x, state.a_inv), 0.0))
            scores = _factored.matmul(x, mu) + jnp.maximum(jnp.asarray(params.alpha, jnp.float32), 0.0) * width
            return epsilon_ranked_slate(key, scores, obs.available, 0.0, k)
        draw = _ridge.gaussian_score_sampler(state, mu, params.scale, x)
        return sampled_topk_slate(key, draw, obs.available, k, params.num_mc_samples)

    def update(key, state, obs, action, reward, params):
        del key
        items, rewards = _common.as_slots(action, reward, k)
        xs = _factored.rows(obs.features, items)
        return _ridge.ridge_update(state, xs, rewards, params.reg, params.refactor_every)

    return Policy(init=init, act=act, update=update, merge=_ridge.ridge_merge)


def make_neural_linear_ts(spec: PolicySpec) -> Policy:
    """NeuralLinear with Thompson sampling, for one stream (or shared)."""
    return _make(spec, "ts")


def make_neural_linear_ucb(spec: PolicySpec) -> Policy:
    """NeuralLinear with an upper confidence bound, for one stream (or shared)."""
    return _make(spec, "ucb")


NEURAL_LINEAR_TS = PolicyInfo(
    make=make_neural_linear_ts,
    params=NeuralLinearParams,
    validate=validate_params,
    kind="model_backed",
    needs_features=True,
    propensities="monte_carlo",
    bad_params=(("prior_mean", -1.0), ("scale", -1.0), ("reg", 0.0), ("num_mc_samples", 0)),
)
NEURAL_LINEAR_UCB = PolicyInfo(
    make=make_neural_linear_ucb,
    params=NeuralLinearParams,
    validate=validate_params,
    kind="model_backed",
    needs_features=True,
    bad_params=(("alpha", -1.0), ("refactor_every", 0)),
)
