"""Epsilon-greedy slates in O(N) per event (instead of K passes over the N items).

The serving step's general slate builder (:func:`rec_jax.serve.recommend.slate_by_single_picks`)
calls the policy's single-item ``act`` once per slot, K passes over all N items each
with their own random draws. For epsilon-greedy the same slate distribution comes from
two top-k's per event:

* ``greedy`` = the K best available items in score order: the best item left at slot
  k (after k < K picks) is always among them;
* ``shuffle`` = the first 2K items of a uniformly random order of the available items
  (top-2K of iid uniforms); at slot k an exploring pick takes the first not-yet-picked
  item of ``shuffle``. Given the picks so far, the unpicked items' relative order in a
  uniform random permutation is still uniform, so this is a uniform draw among the
  items left; 2K entries always suffice (each exploring slot consumes one entry plus
  at most the K - 1 entries that earlier picks already took).

Slot k explores with probability epsilon; the conditional propensity of its pick is
``(1 - eps) [pick = best left] + eps / (items left)``, exactly as the policy reports it.
Exact score ties are broken by item index here (the policy breaks them uniformly);
scores of a trained model tie with probability ~0. Needs at least 2K available items.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def epsilon_greedy_slate(key, scores, available, epsilon, slate_size: int):
    """scores f32[N], available bool[N] -> (slate int32[K], propensity f32[K])."""
    k = slate_size
    eps = jnp.clip(jnp.asarray(epsilon, jnp.float32), 0.0, 1.0)
    shuffle_key, coin_key = jax.random.split(key)
    _, greedy = jax.lax.top_k(jnp.where(available, scores, -jnp.inf), k)
    draws = jnp.where(available, jax.random.uniform(shuffle_key, scores.shape), -1.0)
    _, shuffle = jax.lax.top_k(draws, 2 * k)
    explore = jax.random.uniform(coin_key, (k,)) < eps
    num_available = jnp.sum(available).astype(jnp.float32)

    def slot(picked, j):
        best = greedy[jnp.argmax(~jnp.any(greedy[:, None] == picked[None, :], axis=1))]
        free = ~jnp.any(shuffle[:, None] == picked[None, :], axis=1)
        uniform_pick = shuffle[jnp.argmax(free)]
        pick = jnp.where(explore[j], uniform_pick, best)
        prop = (1.0 - eps) * (pick == best) + eps / (num_available - j)
        return picked.at[j].set(pick), (pick, prop)

    _, (slate, propensity) = jax.lax.scan(slot, jnp.full((k,), -1, greedy.dtype), jnp.arange(k))
    return slate.astype(jnp.int32), propensity.astype(jnp.float32)
