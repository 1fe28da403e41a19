"""What changes between the steps of a simulated user of :mod:`rec_jax.sim.recsys`:
new items, exposures and fatigue, the consumed-items history, and preference drift.

After each step: exposure counts and decayed recent exposures of the shown items grow
(fatigue lowers the attraction of recently shown items); clicked items enter the
user's history ring buffer (ids 1..N, 0 = empty); the user vector takes a Gaussian
random-walk step (``drift_std``); at each step in ``shift_steps`` it is replaced
(``shift_mode="resample"``: a freshly drawn user's vector; "negate": -u), so from that
step on the user acts on the new taste. Items become available at ``release_t``
(cold start; :func:`staggered_release` draws such release steps).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rec_jax.sim.recsys_params import RecsysParams, RecsysState


def available_items(t: jax.Array, params: RecsysParams) -> jax.Array:
    """bool[N]: items released by step t."""
    return params.release_t <= t


def staggered_release(key: jax.Array, num_items: int, new_fraction: float, horizon: int) -> jax.Array:
    """Release steps int32[N]: a ``new_fraction`` of items arrive at uniform steps in [1, horizon], others at 0."""
    is_new_key, when_key = jax.random.split(key)
    is_new = jax.random.uniform(is_new_key, (num_items,)) < new_fraction
    when = jax.random.randint(when_key, (num_items,), 1, max(horizon, 1) + 1)
    return jnp.where(is_new, when, 0).astype(jnp.int32)


def history_in_order(state: RecsysState) -> jax.Array:
    """The ring buffer unrolled oldest -> newest, right-aligned and left-padded with 0: int32[L]."""
    size = state.history.shape[0]
    n = jnp.minimum(state.num_consumed, size)
    j = jnp.arange(size)
    src = (state.num_consumed - size + j) % size
    return jnp.where(j >= size - n, state.history[src], 0)


def advance(keys: tuple[jax.Array, jax.Array], state: RecsysState, params: RecsysParams, slate: jax.Array,
            clicks: jax.Array, shift_mode: str) -> RecsysState:
    """The state of the next step after ``slate`` int32[K] was shown and ``clicks`` f32[K] happened.

    keys: the (drift, shift) keys; ``shift_mode`` is static.
    """
    drift_key, shift_key = keys
    num_items, history_len = params.release_t.shape[0], state.history.shape[0]
    num_users, dim = params.user_factors.shape

    # -- exposures, history
    shown = jnp.zeros((num_items,), jnp.int32).at[slate].add(1)
    decay = jnp.clip(params.exposure_decay, 0.0, 1.0)

    def write(carry, slot):
        history, count = carry
        item, clicked = slot
        history = jnp.where(clicked > 0, history.at[count % history_len].set(item + 1), history)
        return (history, count + (clicked > 0).astype(jnp.int32)), None

    (history, num_consumed), _ = jax.lax.scan(write, (state.history, state.num_consumed), (slate, clicks))

    # -- preference drift for the next step
    t_next = state.t + 1
    user = state.user + jnp.maximum(params.drift_std, 0.0) * jax.random.normal(drift_key, (dim,))
    shift_now = jnp.any(params.shift_steps == t_next)
    if shift_mode == "resample":
        new_index = jax.random.randint(shift_key, (), 0, num_users).astype(jnp.int32)
        user_index = jnp.where(shift_now, new_index, state.user_index)
        user = jnp.where(shift_now, params.user_factors[new_index], user)
    else:
        user_index = state.user_index
        user = jnp.where(shift_now, -user, user)

    return RecsysState(
        t=t_next,
        user_index=user_index,
        user=user,
        history=history,
        num_consumed=num_consumed,
        exposure_counts=state.exposure_counts + shown,
        recent_exposures=decay * state.recent_exposures + shown.astype(jnp.float32),
    )
