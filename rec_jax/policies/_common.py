"""Pieces the policies share: per-item count state, slot handling, param checks.

Nothing here is a policy; each policy file composes these.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rec_jax.policies.base import Policy, PolicySpec, merge_by_summed_deltas

# Floor for strictly positive hyperparameters (temperature, prior scales, ...),
# used inside jit where values are clipped instead of rejected.
TINY = 1e-6


@struct.dataclass
class CountsState:
    """Per-item statistics of a context-free policy (one stream).

    counts: f32[N] times each item was shown (float so merges and fractional
            rewards stay exact).
    sums:   f32[N] summed rewards of each item.
    t:      i32[]  number of ``update`` calls (drives decaying schedules).
    """

    counts: jax.Array
    sums: jax.Array
    t: jax.Array


def init_counts(spec: PolicySpec) -> CountsState:
    n = spec.num_items
    return CountsState(
        counts=jnp.zeros((n,), jnp.float32),
        sums=jnp.zeros((n,), jnp.float32),
        t=jnp.zeros((), jnp.int32),
    )


def as_slots(action: jax.Array, reward: jax.Array, slate_size: int) -> tuple[jax.Array, jax.Array]:
    """Normalise (action, reward) to (int32[K], f32[K]).

    Single actions (K = 1) take ``action`` int32[] and ``reward`` f32[] (the
    engine's ``StepOutput.reward``); slates take int32[K] and the per-slot
    rewards f32[K] (``StepOutput.slot_rewards``). Shapes are checked at trace time.
    """
    k = slate_size
    action = jnp.reshape(jnp.asarray(action, jnp.int32), (-1,))
    reward = jnp.asarray(reward, jnp.float32)
    if action.shape != (k,):
        raise ValueError(f"action must have {k} entries for slate_size={k}, got shape {action.shape}")
    if reward.size != k:
        raise ValueError(
            f"reward must be f32[] (slate_size=1) or the per-slot rewards f32[{k}], got shape {reward.shape}"
        )
    return action, jnp.reshape(reward, (k,))


def update_counts(state: CountsState, action: jax.Array, reward: jax.Array, slate_size: int) -> CountsState:
    """Add each shown item's slot reward to its count and sum (slate items are distinct)."""
    items, rewards = as_slots(action, reward, slate_size)
    return CountsState(
        counts=state.counts.at[items].add(1.0),
        sums=state.sums.at[items].add(rewards),
        t=state.t + 1,
    )


def counts_policy(spec: PolicySpec, act, *, clip_rewards: bool = False) -> Policy:
    """A context-free policy over per-item counts: ``act`` is the policy's own rule;
    init, update (each shown item's slot reward added to its count and sum; clipped
    into [0, 1] for Bernoulli posteriors) and the summed-delta merge are shared."""
    k = spec.slate_size

    def init(key, spec):
        del key
        return init_counts(spec)

    def update(key, state, obs, action, reward, params):
        del key, obs, params
        items, rewards = as_slots(action, reward, k)
        if clip_rewards:
            rewards = jnp.clip(rewards, 0.0, 1.0)
        return update_counts(state, items, rewards, k)

    return Policy(init=init, act=act, update=update, merge=merge_by_summed_deltas)


def empirical_means(state: CountsState, initial_value: Any) -> jax.Array:
    """f32[N] mean reward per item; ``initial_value`` for items never shown."""
    safe = jnp.maximum(state.counts, 1.0)
    return jnp.where(state.counts > 0, state.sums / safe, jnp.asarray(initial_value, jnp.float32))


def decayed_epsilon(epsilon: Any, decay: Any, t: jax.Array) -> jax.Array:
    """epsilon_t = min(1, eps0 / (1 + decay * t)), clipped into [0, 1]."""
    eps0 = jnp.clip(jnp.asarray(epsilon, jnp.float32), 0.0, 1.0)
    decay = jnp.maximum(jnp.asarray(decay, jnp.float32), 0.0)
    return jnp.clip(eps0 / (1.0 + decay * t.astype(jnp.float32)), 0.0, 1.0)


# ----------------------------------------------------------------------------- host-side checks


def check_spec(spec: PolicySpec, name: str, *, needs_features: bool = False) -> None:
    """Raise a one-line ValueError when ``spec`` cannot serve policy ``name``."""
    if spec.num_items < 1:
        raise ValueError(f"{name}: PolicySpec.num_items must be >= 1, got {spec.num_items}")
    if not 1 <= spec.slate_size <= spec.num_items:
        raise ValueError(
            f"{name}: PolicySpec.slate_size must be in [1, num_items={spec.num_items}], got {spec.slate_size}"
        )
    if needs_features and spec.feature_dim < 1:
        raise ValueError(f"{name}: PolicySpec.feature_dim must be >= 1 (item features), got {spec.feature_dim}")


def _values(params: Any, field: str) -> np.ndarray:
    try:
        return np.asarray(getattr(params, field), dtype=np.float64)
    except jax.errors.TracerArrayConversionError as e:
        raise ValueError(f"{type(params).__name__}.{field}: validate concrete params on the host, not in jit") from e


def check_range(params: Any, field: str, *, low=None, high=None, low_open=False, integer=False) -> None:
    """All entries of ``params.field`` finite and inside [low, high] ((low, high] if low_open)."""
    v = _values(params, field)
    cls = type(params).__name__
    lo = "(" if low_open else "["
    want = f"in {lo}{'-inf' if low is None else low}, {'inf' if high is None else high}]"
    bad = ~np.isfinite(v)
    if low is not None:
        bad |= (v <= low) if low_open else (v < low)
    if high is not None:
        bad |= v > high
    if integer:
        bad |= v != np.round(v)
        want = "an integer " + want
    if np.any(bad):
        raise ValueError(f"{cls}.{field} must be {want}, got {v.tolist() if v.ndim else float(v)}")


def check_per_item_shape(params: Any, field: str, num_items: int) -> None:
    """``params.field`` must be a scalar or end in an axis of size 1 or N (per-item values)."""
    shape = np.shape(getattr(params, field))
    if shape and shape[-1] not in (1, num_items):
        raise ValueError(
            f"{type(params).__name__}.{field} must be a scalar or f32[{num_items}] (one per item), got shape {shape}"
        )


def check_static_positive(params: Any, field: str) -> None:
    v = getattr(params, field)
    if not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"{type(params).__name__}.{field} must be a positive int (static), got {v!r}")
