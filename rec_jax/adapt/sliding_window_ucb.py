"""Sliding-window UCB (Garivier & Moulines 2011) for non-stationary bandits.

Counts and reward sums cover only the last ``window`` (static) updates: a ring
buffer of the shown items and their rewards lets each update subtract the entry
that leaves the window, so the statistics are exact window sums:

    index_i = m_i + alpha * sqrt(2 log(min(t, window) * K) / n_i)

with n_i, m_i the count and mean of item i inside the window (K = slate size);
items not shown inside the window score +inf. Context-free; slates take the
top-K indices (ties broken uniformly, exact propensities).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common
from rec_jax.policies._slates import epsilon_ranked_slate
from rec_jax.policies.base import Policy, PolicySpec

NAME = "sliding_window_ucb"


@struct.dataclass
class SlidingWindowUCBParams:
    alpha: float = 1.0  # scale of the exploration bonus, >= 0

    def validate(self, spec: PolicySpec | None = None) -> None:
        if spec is not None:
            _common.check_spec(spec, NAME)
        _common.check_range(self, "alpha", low=0.0)


@struct.dataclass
class SlidingWindowState:
    """counts, sums: f32[N] window statistics; items int32[W, K] (-1 = empty) and rewards f32[W, K]: the
    ring buffer; t: int32[] updates so far (next slot t % W)."""

    counts: jax.Array
    sums: jax.Array
    items: jax.Array
    rewards: jax.Array
    t: jax.Array


def sliding_window_ucb_scores(state: SlidingWindowState, alpha) -> jnp.ndarray:
    """f32[N] SW-UCB index; +inf for items not shown inside the window."""
    seen = state.counts > 0.5
    n = jnp.maximum(state.counts, 1.0)
    total = jnp.maximum(jnp.sum(state.counts), 1.0)
    bonus = jnp.maximum(jnp.asarray(alpha, jnp.float32), 0.0) * jnp.sqrt(2.0 * jnp.log(total) / n)
    return jnp.where(seen, state.sums / n + bonus, jnp.inf)


def make_sliding_window_ucb(spec: PolicySpec, window: int = 200) -> Policy:
    """SW-UCB for one stream over the last ``window`` updates (static)."""
    _common.check_spec(spec, NAME)
    if window < 1:
        raise ValueError(f"{NAME}: window must be >= 1, got {window}")
    k, n_items = spec.slate_size, spec.num_items

    def init(key, spec):
        del key
        return SlidingWindowState(
            counts=jnp.zeros((n_items,), jnp.float32), sums=jnp.zeros((n_items,), jnp.float32),
            items=jnp.full((window, k), -1, jnp.int32), rewards=jnp.zeros((window, k), jnp.float32),
            t=jnp.zeros((), jnp.int32))

    def act(key, state, obs, params):
        return epsilon_ranked_slate(key, sliding_window_ucb_scores(state, params.alpha), obs.available, 0.0, k)

    def update(key, state, obs, action, reward, params):
        del key, obs, params
        items, rewards = _common.as_slots(action, reward, k)
        slot = state.t % window
        old_items, old_rewards = state.items[slot], state.rewards[slot]
        live = old_items >= 0
        # Subtract the leaving entry (mode="drop" ignores the -1 padding), then add the new one.
        idx = jnp.where(live, old_items, n_items)
        counts = state.counts.at[idx].add(-1.0, mode="drop").at[items].add(1.0)
        sums = state.sums.at[idx].add(-old_rewards, mode="drop").at[items].add(rewards)
        return SlidingWindowState(counts=counts, sums=sums, items=state.items.at[slot].set(items),
                                  rewards=state.rewards.at[slot].set(rewards), t=state.t + 1)

    def merge(state, new_states):
        raise ValueError(f"{NAME}: per-stream mode only (the window buffer does not merge)")

    return Policy(init=init, act=act, update=update, merge=merge)
