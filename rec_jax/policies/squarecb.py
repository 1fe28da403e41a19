"""SquareCB (Foster & Rakhlin 2020): inverse-gap weighting over an online ridge regressor.

With predictions yhat_n = x_n^T theta (ridge, as in LinUCB's state) over the M
available items and b = argmax yhat (lowest index among ties):
p_n = 1 / (M + gamma * (yhat_b - yhat_n)) for n != b, p_b = 1 - sum of the others
(Foster & Rakhlin 2020, Algorithm 1, with rewards instead of losses). Propensities
are exact for K = 1. Slates: sequential inverse-gap weighting over the items left
(M = #left); conditional propensities exact, slot-0 marginal exact, slots >= 1
Monte Carlo over ``num_mc_samples`` simulated slates.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common, _ridge
from rec_jax.policies._slates import sequential_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec

NAME = "squarecb"


@struct.dataclass
class SquareCBParams:
    gamma: float = 100.0  # learning rate of inverse-gap weighting, >= 0 (0 = uniform)
    reg: float = 1.0  # ridge regulariser lambda > 0 (from the first act; a change takes effect at the next update)
    refactor_every: int = 100  # recompute A^{-1} by Cholesky every this many rank-one updates
    num_mc_samples: int = struct.field(pytree_node=False, default=128)  # slates: MC marginals of slots >= 1

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: SquareCBParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME, needs_features=True)
    _common.check_range(params, "gamma", low=0.0)
    _ridge.check_ridge_params(params)
    _common.check_static_positive(params, "num_mc_samples")


def igw_probs(yhat, remaining, gamma):
    """f32[N] inverse-gap weighting distribution over ``remaining``."""
    gamma = jnp.maximum(jnp.asarray(gamma, jnp.float32), 0.0)
    m = jnp.sum(remaining).astype(jnp.float32)
    best = jnp.argmax(jnp.where(remaining, yhat, -jnp.inf))
    gap = jnp.maximum(yhat[best] - yhat, 0.0)
    p = jnp.where(remaining, 1.0 / (m + gamma * gap), 0.0)
    p = p.at[best].set(0.0)
    return p.at[best].set(1.0 - jnp.sum(p))


def make_squarecb(spec: PolicySpec) -> Policy:
    """SquareCB for one stream; ``spec`` fixes N, D and K."""
    _common.check_spec(spec, NAME, needs_features=True)
    k = spec.slate_size

    def act(key, state, obs, params):
        yhat = obs.features.astype(jnp.float32) @ _ridge.ridge_theta(state)
        return sequential_slate(
            key, lambda remaining: igw_probs(yhat, remaining, params.gamma), obs.available, k, params.num_mc_samples
        )

    return _ridge.ridge_policy(spec, act)


POLICY = PolicyInfo(
    make=make_squarecb,
    params=SquareCBParams,
    validate=validate_params,
    kind="contextual",
    needs_features=True,
    marginals="monte_carlo",  # slots >= 1 of a slate
    bad_params=(("gamma", -1.0), ("reg", 0.0), ("refactor_every", -1)),
)
