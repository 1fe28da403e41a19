"""Softmax (Boltzmann) exploration over per-item empirical means.

P(n) proportional to exp(mean_n / temperature) over the available items. Context-free.
K = 1: exact propensities and action distribution (num_mc_samples = 0).
Slates: sequential sampling without replacement (Plackett-Luce): slot k draws from
the softmax over the items left. Conditional propensities are exact; the slot-0
marginal is exact, slots >= 1 are Monte Carlo over ``num_mc_samples`` simulated
slates (reported in ActInfo.num_mc_samples).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common
from rec_jax.policies._slates import sequential_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec

NAME = "softmax"


@struct.dataclass
class SoftmaxParams:
    temperature: float = 0.1  # > 0; small = greedy, large = uniform
    initial_value: float = 0.0  # mean assumed for items never shown
    num_mc_samples: int = struct.field(pytree_node=False, default=128)  # slates: MC marginals of slots >= 1

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: SoftmaxParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME)
    _common.check_range(params, "temperature", low=0.0, low_open=True)
    _common.check_range(params, "initial_value")
    _common.check_static_positive(params, "num_mc_samples")


def softmax_probs(values, remaining, temperature):
    """f32[N] softmax of values / temperature restricted to ``remaining``."""
    tau = jnp.maximum(jnp.asarray(temperature, jnp.float32), _common.TINY)
    return jax.nn.softmax(jnp.where(remaining, values / tau, -jnp.inf))


def make_softmax(spec: PolicySpec) -> Policy:
    """Softmax exploration for one stream."""
    _common.check_spec(spec, NAME)
    k = spec.slate_size

    def act(key, state, obs, params):
        means = _common.empirical_means(state, params.initial_value)
        return sequential_slate(
            key,
            lambda remaining: softmax_probs(means, remaining, params.temperature),
            obs.available,
            k,
            params.num_mc_samples,
        )

    return _common.counts_policy(spec, act)


POLICY = PolicyInfo(
    make=make_softmax,
    params=SoftmaxParams,
    validate=validate_params,
    kind="context_free",
    marginals="monte_carlo",  # slots >= 1 of a slate
    bad_params=(("temperature", 0.0), ("temperature", -1.0), ("num_mc_samples", 0)),
)
