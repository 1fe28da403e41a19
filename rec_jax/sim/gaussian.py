"""K-armed Gaussian bandit: arm a pays ``means[a] + std[a] * N(0, 1)``.

Observation as in :mod:`rec_jax.sim.bernoulli` (f32[K, 0] or one-hot f32[K, K]).
``click`` is 1.0 where the reward is positive (there is no click in this model).

Slates (action int32[S] of S distinct arms, any S in [1, K]): every shown arm pays
its own independent draw, the reward is their sum, ``expected_reward =
sum(means[slate])`` and ``best_expected_reward`` the sum of the S largest means;
``click`` is 1.0 where any shown arm paid a positive reward.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rec_jax.sim import _checks
from rec_jax.sim.base import Simulator, SimulatorInfo, StepOutput, as_slate, best_slate_sum, fixed_observation
from rec_jax.sim.bernoulli import arm_features, default_means


@struct.dataclass
class GaussianParams:
    means: jax.Array  # f32[K] expected reward of each arm
    std: jax.Array  # f32[] or f32[K] noise standard deviation, >= 0


@struct.dataclass
class GaussianState:
    t: jax.Array  # int32[] steps taken so far


def validate_params(params: GaussianParams, spec=None) -> GaussianParams:
    """Host-side check against ``spec`` (a SimSpec, optional); one-line ValueError naming the bad field."""
    if spec is not None:
        _checks.last_dim(params.means, "GaussianParams.means", spec.num_items)
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

    def reset(key: jax.Array, params: GaussianParams):
        del key, params
        return fixed_observation(arm_features(num_arms, one_hot_features)), GaussianState(t=jnp.zeros((), jnp.int32))

    def step(key: jax.Array, state: GaussianState, action: jax.Array, params: GaussianParams):
        slate = as_slate(action)
        mean = params.means[slate]
        std = jnp.maximum(jnp.broadcast_to(params.std, params.means.shape)[slate], 0.0)
        slot_rewards = mean + std * jax.random.normal(key, slate.shape, jnp.float32)
        out = StepOutput(
            reward=jnp.sum(slot_rewards),
            click=jnp.any(slot_rewards > 0).astype(jnp.float32),
            expected_reward=jnp.sum(mean),
            best_expected_reward=best_slate_sum(params.means, slate.shape[0]),
            slot_rewards=slot_rewards,
        )
        return fixed_observation(arm_features(num_arms, one_hot_features)), GaussianState(t=state.t + 1), out

    sim = Simulator(reset=reset, step=step, num_items=num_arms, feature_dim=dim)
    return sim, GaussianParams(means=default_means(num_arms), std=jnp.float32(1.0))


SIMULATOR = SimulatorInfo(
    make=make_gaussian,
    params=GaussianParams,
    validate=validate_params,
    kind="bandit",
    slates="any",
    study_kwargs=lambda num_items, dim, num_arms: {"num_arms": num_arms},
    test_kwargs={"num_arms": 4},
    bad_params=(("std", np.float32(-1.0)), ("means", np.array([0.0, np.nan, 1.0, 0.5], np.float32))),
)
