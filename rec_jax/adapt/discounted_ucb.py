"""Discounted UCB (Garivier & Moulines 2011) for non-stationary bandits.

Every update first multiplies all counts and reward sums by ``discount`` (gamma),
then adds the shown items, so an observation k steps old weighs gamma^k:

    n_i = sum_s gamma^(t-s) [a_s = i],   m_i = sum_s gamma^(t-s) r_s [a_s = i] / n_i
    index_i = m_i + alpha * sqrt(2 log(max(sum_j n_j, 1)) / n_i)

Items with n_i below 1e-6 (never shown, or forgotten) score +inf. The effective
memory is about 1 / (1 - gamma) steps; gamma = 1 is UCB1. Context-free; slates
take the top-K indices (ties broken uniformly, exact propensities).
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common
from rec_jax.policies._slates import epsilon_ranked_slate
from rec_jax.policies.base import Policy, PolicySpec

NAME = "discounted_ucb"


@struct.dataclass
class DiscountedUCBParams:
    alpha: float = 1.0  # scale of the exploration bonus, >= 0
    discount: float = 0.99  # gamma: per-update weight decay of old observations, in (0, 1]

    def validate(self, spec: PolicySpec | None = None) -> None:
        if spec is not None:
            _common.check_spec(spec, NAME)
        _common.check_range(self, "alpha", low=0.0)
        _common.check_range(self, "discount", low=0.0, high=1.0, low_open=True)


def discounted_ucb_scores(state: _common.CountsState, alpha) -> jnp.ndarray:
    """f32[N] D-UCB index from discounted counts/sums; +inf where the count is ~0."""
    seen = state.counts > 1e-6
    n = jnp.where(seen, state.counts, 1.0)
    total = jnp.maximum(jnp.sum(state.counts), 1.0)
    bonus = jnp.maximum(jnp.asarray(alpha, jnp.float32), 0.0) * jnp.sqrt(2.0 * jnp.log(total) / n)
    return jnp.where(seen, state.sums / n + bonus, jnp.inf)


def make_discounted_ucb(spec: PolicySpec) -> Policy:
    """Discounted UCB for one stream."""
    _common.check_spec(spec, NAME)
    k = spec.slate_size

    def init(key, spec):
        del key
        return _common.init_counts(spec)

    def act(key, state, obs, params):
        return epsilon_ranked_slate(key, discounted_ucb_scores(state, params.alpha), obs.available, 0.0, k)

    def update(key, state, obs, action, reward, params):
        del key, obs
        gamma = jnp.clip(jnp.asarray(params.discount, jnp.float32), 0.0, 1.0)
        decayed = state.replace(counts=gamma * state.counts, sums=gamma * state.sums)
        return _common.update_counts(decayed, action, reward, k)

    def merge(state, new_states):
        raise ValueError(f"{NAME}: per-stream mode only (a discount does not merge by summed deltas)")

    return Policy(init=init, act=act, update=update, merge=merge)
