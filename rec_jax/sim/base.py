"""The simulator interface (gymnax-shaped; see docs/DESIGN.md, "Simulator").

A simulator is a :class:`Simulator` named tuple of pure functions written for ONE
user stream; the engine vmaps it over streams:

    reset(key, params)                 -> (obs, state)
    step(key, state, action, params)   -> (obs, state, StepOutput)

``params`` (``EnvParams``) and ``state`` (``EnvState``) are separate
``flax.struct`` pytrees. ``obs`` is a :class:`rec_jax.policies.base.Observation`.
``action`` is ``int32[]`` or ``int32[K]`` for a slate. There is no auto-reset.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
from flax import struct


@struct.dataclass
class StepOutput:
    """What one step produced, for rewards, regret and logging.

    reward:          f32[]  realised reward (sum over the slate for slates).
    click:           f32[]  1.0 if any click happened, else 0.0.
    expected_reward: f32[]  expected reward of the chosen action (or slate).
    best_expected_reward: f32[] expected reward of the best action (or best slate)
                     available at this step, so regret = best - expected is exact.
    slot_rewards:    f32[K] per-slot reward (K = 1 for single actions), for
                     position-wise off-policy estimators.
    """

    reward: jax.Array
    click: jax.Array
    expected_reward: jax.Array
    best_expected_reward: jax.Array
    slot_rewards: jax.Array


class Simulator(NamedTuple):
    """A user simulator: ``reset`` and ``step`` (see module docstring).

    ``num_items`` and ``feature_dim`` are the static shapes of the observations
    it emits, so a policy spec can be built from it.
    """

    reset: Callable[..., Any]
    step: Callable[..., Any]
    num_items: int
    feature_dim: int
