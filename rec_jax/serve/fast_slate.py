"""Epsilon-greedy slates for a batch of events, without K passes over the N items.

The serving step's general slate builder (:func:`rec_jax.serve.recommend.slate_by_single_picks`)
calls the policy's single-item ``act`` once per slot, K passes over all N items each
with their own random draws. For epsilon-greedy the same slate distribution comes from

* ``greedy`` = the K best available items in score order (the serving step already
  has them: its top-k): the best item left at slot k (after k < K picks) is always
  among them;
* ``shuffle`` = the first 2K items of a uniformly random order of the available
  items; at slot k an exploring pick takes the first not-yet-picked item of
  ``shuffle``. Given the picks so far, the unpicked items' relative order in a
  uniform random permutation is still uniform, so this is a uniform draw among the
  items left; 2K entries always suffice (each exploring slot consumes one entry plus
  at most the K - 1 entries that earlier picks already took).

The shuffle prefix comes from ``draws`` (default 8K) uniform item ids per event:
keeping the available ones at their first occurrence, in draw order, is sequential
sampling without replacement by rejection, so the kept items are a uniformly random
ordered prefix however many draws were rejected (which item is accepted never
depends on how many tries it took). Only when fewer than 2K are kept (rare: the
user has seen most items; the tests force it) does the batch fall back to ranking N
iid uniforms per event, which is exact too. Both paths give the exact distribution;
the fast one draws ``draws`` integers per event instead of N uniforms, which on a
CPU was most of the slate's cost.

Slot k explores with probability epsilon; the conditional propensity of its pick is
``(1 - eps) [pick = best left] + eps / (items left)``, exactly as the policy reports it.
Exact score ties are broken by item index here (the policy breaks them uniformly);
scores of a trained model tie with probability ~0. Needs at least 2K available items.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _shuffle_by_rejection(key, available, length: int, draws: int):
    """(prefix int32[length], ok bool[]): a uniform random ordered ``length``-prefix of the
    available items (valid when ``ok``) from ``draws`` uniform ids. available: bool[N]."""
    ids = jax.random.randint(key, (draws,), 0, available.shape[0])
    earlier = jnp.tril(jnp.ones((draws, draws), bool), -1)
    repeat = jnp.any((ids[:, None] == ids[None, :]) & earlier, axis=1)  # drawn before
    kept = ~repeat & available[ids]
    # the kept draws, in draw order, scattered to positions 0.. (a top_k here measured 2x slower)
    place = jnp.cumsum(kept) - 1
    prefix = jnp.zeros((length,), ids.dtype).at[jnp.where(kept, place, length)].set(ids, mode="drop")
    return prefix, place[-1] + 1 >= length


def _shuffle_by_uniforms(key, available, length: int):
    """int32[length]: the first ``length`` items of a uniform random order (N uniforms)."""
    noise = jnp.where(available, jax.random.uniform(key, available.shape), -1.0)
    return jax.lax.top_k(noise, length)[1]


def _slate_from(greedy, shuffle, explore, num_available, eps, slate_size: int):
    """One event's slate from its greedy order, shuffle prefix and K coins."""

    def slot(picked, j):
        best = greedy[jnp.argmax(~jnp.any(greedy[:, None] == picked[None, :], axis=1))]
        free = ~jnp.any(shuffle[:, None] == picked[None, :], axis=1)
        uniform_pick = shuffle[jnp.argmax(free)]
        pick = jnp.where(explore[j], uniform_pick, best)
        prop = (1.0 - eps) * (pick == best) + eps / (num_available - j)
        return picked.at[j].set(pick), (pick, prop)

    _, (slate, propensity) = jax.lax.scan(slot, jnp.full((slate_size,), -1, jnp.int32), jnp.arange(slate_size))
    return slate, propensity.astype(jnp.float32)


def epsilon_greedy_slates(keys, scores, available, epsilon, slate_size: int, *, greedy=None, draws: int | None = None):
    """A batch of epsilon-greedy slates.

    keys: key[B] (one per event); scores f32[B, N]; available bool[B, N]; ``greedy``
    int32[B, >= K] the available items in descending score order when the caller has
    them (else computed here); ``draws`` uniform ids per event for the shuffle (default 8K, at least 2K).
    Returns (slate int32[B, K], propensity f32[B, K]).
    """
    k = slate_size
    draws = max(draws or 8 * k, 2 * k)
    eps = jnp.clip(jnp.asarray(epsilon, jnp.float32), 0.0, 1.0)
    if greedy is None:
        greedy = jax.lax.top_k(jnp.where(available, scores, -jnp.inf), k)[1]
    greedy = greedy[:, :k].astype(jnp.int32)
    split = jax.vmap(lambda key: jax.random.split(key, 3))(keys)
    shuffle, ok = jax.vmap(_shuffle_by_rejection, in_axes=(0, 0, None, None))(split[:, 0], available, 2 * k, draws)

    def fallback(shuffle):  # the rare events whose rejection prefix came up short
        slow = jax.vmap(_shuffle_by_uniforms, in_axes=(0, 0, None))(split[:, 1], available, 2 * k)
        return jnp.where(ok[:, None], shuffle, slow)

    shuffle = jax.lax.cond(jnp.all(ok), lambda s: s, fallback, shuffle.astype(jnp.int32))
    explore = jax.vmap(lambda key: jax.random.uniform(key, (k,)) < eps)(split[:, 2])
    num_available = jnp.sum(available, axis=1).astype(jnp.float32)
    return jax.vmap(_slate_from, in_axes=(0, 0, 0, 0, None, None))(greedy, shuffle, explore, num_available, eps, k)


def epsilon_greedy_slate(key, scores, available, epsilon, slate_size: int, *, draws: int | None = None):
    """One event: scores f32[N], available bool[N] -> (slate int32[K], propensity f32[K])."""
    slate, propensity = epsilon_greedy_slates(key[None], scores[None], available[None], epsilon, slate_size,
                                              draws=draws)
    return slate[0], propensity[0]
