"""Uniform random recommendation among the available items (the exploration floor).

Slates: uniform sampling without replacement among the available items; the
conditional propensity of slot k is 1 / (M - k) and every per-slot marginal is
1 / M for the M available items (exact, num_mc_samples = 0). The state keeps
per-item counts and reward sums (for logging / warm starts); ``act`` ignores them.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common
from rec_jax.policies._slates import epsilon_ranked_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec

NAME = "random"


@struct.dataclass
class RandomParams:
    """No tunable numbers."""

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: RandomParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of the spec (there are no params to check)."""
    if not isinstance(params, RandomParams):
        raise ValueError(f"{NAME}: expected RandomParams, got {type(params).__name__}")
    if spec is not None:
        _common.check_spec(spec, NAME)


def make_random(spec: PolicySpec) -> Policy:
    """Uniform random policy for one stream."""
    _common.check_spec(spec, NAME)
    k = spec.slate_size

    def act(key, state, obs, params):
        del state, params
        # epsilon = 1: every slot uniform among the items left.
        return epsilon_ranked_slate(key, jnp.zeros(obs.available.shape, jnp.float32), obs.available, 1.0, k)

    return _common.counts_policy(spec, act)


POLICY = PolicyInfo(
    make=make_random,
    params=RandomParams,
    validate=validate_params,
    kind="context_free",
)
