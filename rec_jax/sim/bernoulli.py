"""K-armed Bernoulli bandit: arm a pays 1 with probability ``means[a]``.

Observation: ``features`` f32[K, 0] (context-free) or the one-hot arm identity
f32[K, K] (``one_hot_features=True``); ``available`` all True; ``scores`` zeros.
The problem is stationary; ``state.t`` only counts steps.

Slates (action int32[S] of S distinct arms, any S in [1, K]): every shown arm is
examined and pays independently, so the reward is the number of successes,
``expected_reward = sum(means[slate])`` and the best slate is the S best arms
(``best_expected_reward`` = sum of the S largest means).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rec_jax.sim import _checks
from rec_jax.sim.base import Simulator, SimulatorInfo, StepOutput, as_slate, best_slate_sum, fixed_observation


@struct.dataclass
class BernoulliParams:
    means: jax.Array  # f32[K] success probability of each arm, in [0, 1]


@struct.dataclass
class BernoulliState:
    t: jax.Array  # int32[] steps taken so far


def validate_params(params: BernoulliParams, spec=None) -> BernoulliParams:
    """Host-side check against ``spec`` (a SimSpec, optional); one-line ValueError naming the bad field."""
    if spec is not None:
        _checks.last_dim(params.means, "BernoulliParams.means", spec.num_items)
    _checks.in_range(params.means, "BernoulliParams.means", 0.0, 1.0)
    return params


def default_means(num_arms: int) -> jax.Array:
    """Evenly spaced means in [0.1, 0.9], interleaved so the best arm is not the last."""
    means = np.linspace(0.1, 0.9, num_arms) if num_arms > 1 else np.array([0.5])
    order = np.argsort((np.arange(num_arms) * 7919) % max(num_arms, 1), kind="stable")
    return jnp.asarray(means[order], jnp.float32)


def sample_params(key: jax.Array, num_arms: int) -> BernoulliParams:
    """Means drawn i.i.d. U(0, 1): one random problem per key (vmap over keys for many)."""
    return BernoulliParams(means=jax.random.uniform(key, (num_arms,), jnp.float32))


def arm_features(num_arms: int, one_hot: bool) -> jax.Array:
    """The arms' features: the identity f32[K, K] (``one_hot``) or f32[K, 0]."""
    return jnp.eye(num_arms, dtype=jnp.float32) if one_hot else jnp.zeros((num_arms, 0), jnp.float32)


def make_bernoulli(num_arms: int = 10, one_hot_features: bool = False) -> tuple[Simulator, BernoulliParams]:
    """Build a K-armed Bernoulli bandit.

    Args:
      num_arms: K, the number of arms (static).
      one_hot_features: obs.features is the identity f32[K, K] instead of f32[K, 0].
    Returns:
      (Simulator, default BernoulliParams).
    """
    if num_arms < 1:
        raise ValueError(f"make_bernoulli: num_arms must be >= 1, got {num_arms}")
    dim = num_arms if one_hot_features else 0

    def reset(key: jax.Array, params: BernoulliParams):
        del key, params
        return fixed_observation(arm_features(num_arms, one_hot_features)), BernoulliState(t=jnp.zeros((), jnp.int32))

    def step(key: jax.Array, state: BernoulliState, action: jax.Array, params: BernoulliParams):
        means = jnp.clip(params.means, 0.0, 1.0)
        slate = as_slate(action)
        p = means[slate]
        slot_rewards = jax.random.bernoulli(key, p).astype(jnp.float32)
        out = StepOutput(
            reward=jnp.sum(slot_rewards),
            click=jnp.max(slot_rewards),
            expected_reward=jnp.sum(p),
            best_expected_reward=best_slate_sum(means, slate.shape[0]),
            slot_rewards=slot_rewards,
        )
        return fixed_observation(arm_features(num_arms, one_hot_features)), BernoulliState(t=state.t + 1), out

    sim = Simulator(reset=reset, step=step, num_items=num_arms, feature_dim=dim)
    return sim, BernoulliParams(means=default_means(num_arms))


SIMULATOR = SimulatorInfo(
    make=make_bernoulli,
    params=BernoulliParams,
    validate=validate_params,
    kind="bandit",
    slates="any",
    # One-hot arm features, so the contextual policies reduce to per-arm estimates.
    study_kwargs=lambda num_items, dim, num_arms: {"num_arms": num_arms, "one_hot_features": True},
    test_kwargs={"num_arms": 4},
    bad_params=(("means", np.array([0.2, 1.5, 0.1, 0.3], np.float32)),),
)
