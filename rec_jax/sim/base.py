"""The simulator interface (gymnax-shaped; see docs/DESIGN.md, "Simulator").

A simulator is a :class:`Simulator` named tuple of pure functions written for ONE
user stream; the engine vmaps it over streams:

    reset(key, params)                 -> (obs, state)
    step(key, state, action, params)   -> (obs, state, StepOutput)

``params`` (``EnvParams``) and ``state`` (``EnvState``) are separate
``flax.struct`` pytrees. ``obs`` is a :class:`rec_jax.policies.base.Observation`.
``action`` is ``int32[]`` or ``int32[K]`` for a slate of K distinct items. There is
no auto-reset.

Each simulator module also declares itself next to its factory with a module-level
:class:`SimulatorInfo` (``SIMULATOR = SimulatorInfo(make=..., params=...,
validate=..., ...)``; a module holding two simulators declares two), and
``rec_jax/sim/__init__.py`` lists it in one registry line ``"name": "module:ATTRIBUTE"``.
Validators have the policies' shape, ``validate(params, spec=None)``, where ``spec``
is a :class:`SimSpec` (or anything with ``num_items``, ``feature_dim`` and
``slate_size``, such as a ``PolicySpec``): the static shapes the params must fit.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.policies.base import Observation
from rec_jax.topk import top_k


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
    it emits, so a policy spec can be built from it. ``name`` is the registry name
    (set by :func:`rec_jax.sim.make_env`; None for a factory called directly), through
    which the engine finds the simulator's validator and what slates it supports.
    """

    reset: Callable[..., Any]
    step: Callable[..., Any]
    num_items: int
    feature_dim: int
    name: str | None = None


@dataclasses.dataclass(frozen=True)
class SimSpec:
    """Static shapes a simulator's params must fit (what its validator checks against).

    num_items:   N items (arms) in each observation.
    feature_dim: D, the width of ``obs.features`` (0 for context-free bandits).
    slate_size:  K items shown per step; None = not checked (e.g. at ``make_env``).
    """

    num_items: int
    feature_dim: int = 0
    slate_size: int | None = 1


Kind = Literal["bandit", "contextual", "recsys"]
Slates = Literal["any", "fixed", "single"]


def _no_study_kwargs(num_items: int, dim: int, num_arms: int) -> dict:
    return {}


@dataclasses.dataclass(frozen=True)
class SimulatorInfo:
    """A simulator's declaration: how to build it and what it supports.

    make:        ``make(**kwargs) -> (Simulator, default params)``, the factory.
    params:      the params class (``make`` returns an instance).
    validate:    ``validate(params, spec=None) -> params``: host-side check of concrete
                 params, a one-line ValueError naming the field; ``spec`` a :class:`SimSpec`.
    kind:        ``bandit`` (context-free arms), ``contextual`` (items with features),
                 ``recsys`` (simulated users with histories and dynamics).
    slates:      what slates it serves: ``any`` (any K in [1, N], read from the action's
                 static shape), ``fixed`` (the K given to the factory's ``slate_size``
                 keyword, and only that one), ``single`` (K = 1 only; the engine's
                 ``Run.validate`` refuses ``EngineConfig.slate_size > 1``).
    study_kwargs: ``(num_items, dim, num_arms) -> factory kwargs``: how
                 ``experiments/bandits.py`` sizes it from ``--num-items --dim --num-arms``.
    test_kwargs: tiny factory kwargs for the registry-wide tests (``tests/test_sim_registry.py``).
    bad_params:  ``(field, value)`` pairs the validator must reject with a message naming
                 the field; the registry-wide tests check each (and that the defaults pass).
    data:        the dataset the factory loads through ``rec_jax.data.load`` (None: none);
                 the registry-wide tests give it a tiny stand-in.
    """

    make: Callable[..., tuple[Simulator, Any]]
    params: type
    validate: Callable[..., Any]
    kind: Kind = "bandit"
    slates: Slates = "any"
    study_kwargs: Callable[[int, int, int], dict] = _no_study_kwargs
    test_kwargs: dict = dataclasses.field(default_factory=dict)
    bad_params: tuple[tuple[str, Any], ...] = ()
    data: str | None = None

    def __post_init__(self):
        if self.kind not in ("bandit", "contextual", "recsys"):
            raise ValueError(f"SimulatorInfo.kind must be bandit, contextual or recsys, got {self.kind!r}")
        if self.slates not in ("any", "fixed", "single"):
            raise ValueError(f"SimulatorInfo.slates must be any, fixed or single, got {self.slates!r}")


def load(target: str) -> SimulatorInfo:
    """Import ``"package.module:ATTRIBUTE"`` and return the SimulatorInfo it names."""
    from rec_jax.declarations import load_declaration

    return load_declaration(target, SimulatorInfo, "SIMULATOR")


# ----------------------------------------------------------------------------- pieces the bandits share


def fixed_observation(features: jax.Array) -> Observation:
    """Observation of N items that are always available, with zero scores: features f32[N, D]."""
    num_items = features.shape[0]
    return Observation(
        features=features,
        available=jnp.ones((num_items,), bool),
        scores=jnp.zeros((num_items,), jnp.float32),
    )


def as_slate(action: jax.Array) -> jax.Array:
    """The shown items int32[K] of an action int32[] (K = 1) or int32[K] (K static)."""
    return jnp.reshape(action, (-1,)).astype(jnp.int32)


def best_slate_sum(values: jax.Array, slate_size: int) -> jax.Array:
    """Sum of the ``slate_size`` largest of ``values`` f32[N]: the best slate's expected
    reward when every shown item pays independently (f32[])."""
    return jnp.sum(top_k(values, slate_size)[0])  # rec_jax.topk: lax.top_k is a slow sort inside a scan
