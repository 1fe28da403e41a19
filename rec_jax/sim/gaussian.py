"""K-armed Gaussian bandit: arm a pays ``means[a] + std[a] * N(0, 1)``.

Observation as in :mod:`rec_jax.sim.bernoulli` (f32[K, 0] or one-hot f32[K, K]).
``click`` is 1.0 where the reward is positive (there is no click in this model).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.policies.base import Observation
from rec_jax.sim import _checks
from rec_jax.sim.base import Simulator, StepOutput
from rec_jax.sim.bernoulli import default_means


@struct.dataclass
class GaussianParams:
    means: jax.Array  # f32[K] expected reward of each arm
    std: jax.Array  # f32[] or f32[K] noise standard deviation, >= 0


@struct.dataclass
class GaussianState:
    t: jax.Array  # int32[] steps taken so far


def validate_params(params: GaussianParams, num_arms: int | None = None) -> GaussianParams:
    """Host-side check; raises a one-line ValueError naming the bad field."""
    if num_arms is not None:
        _checks.last_dim(params.means, "GaussianParams.means", num_arms)
    _checks.finite(params.means, "GaussianParams.means")
    _checks.in_range(params.std, "GaussianParams.std", 0.0, None)
    return params


def sample_params(key: jax.Array, num_arms: int, std: float = 1.0) -> GaussianParams:
    """Means drawn i.i.d. N(0, 1), the usual testbed (Sutton & Barto, ch. 2)."""
    return GaussianParams(means=jax.random.normal(key, (num_arms,), jnp.float32), std=jnp.float32(std))


def make_gaussian(num_arms: int = 10, one_hot_features: bool = False) -> tuple[Simulator, GaussianParams]:
    """Build a K-armed Gaussian bandit; returns (Simulator, default GaussianParams)."""
    if num_arms < 1:
        raise ValueError(f"make_gaussian: num_arms must be >= 1, got {num_arms}")
    dim = num_arms if one_hot_features else 0

    def observe() -> Observation:
        feats = jnp.eye(num_arms, dtype=jnp.float32) if one_hot_features else jnp.zeros((num_arms, 0), jnp.float32)
        return Observation(
            features=feats,
            available=jnp.ones((num_arms,), bool),
            scores=jnp.zeros((num_arms,), jnp.float32),
        )

    def reset(key: jax.Array, params: GaussianParams):
        del key, params
        return observe(), GaussianState(t=jnp.zeros((), jnp.int32))

    def step(key: jax.Array, state: GaussianState, action: jax.Array, params: GaussianParams):
        action = jnp.reshape(action, ()).astype(jnp.int32)
        mean = params.means[action]
        std = jnp.maximum(jnp.broadcast_to(params.std, params.means.shape)[action], 0.0)
        reward = mean + std * jax.random.normal(key, (), jnp.float32)
        out = StepOutput(
            reward=reward,
            click=(reward > 0).astype(jnp.float32),
            expected_reward=mean,
            best_expected_reward=jnp.max(params.means),
            slot_rewards=reward[None],
        )
        return observe(), GaussianState(t=state.t + 1), out

    sim = Simulator(reset=reset, step=step, num_items=num_arms, feature_dim=dim)
    return sim, GaussianParams(means=default_means(num_arms), std=jnp.float32(1.0))
