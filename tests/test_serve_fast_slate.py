"""The fast epsilon-greedy slates against the exact slate distribution (brute force),
through both shuffle paths (rejection-sampled ids, and the N-uniforms fallback), and
against the general slot-by-slot builder's propensities."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.policies import PolicySpec, make_policy
import pytest

from rec_jax.serve.fast_slate import epsilon_greedy_slate, epsilon_greedy_slates
from rec_jax.serve.recommend import slate_by_single_picks

SCORES = np.array([0.3, 1.2, -0.5, 0.9, 2.0, 0.1, -1.0], np.float32)
AVAILABLE = np.array([True, True, True, False, True, True, True])
EPS, K, DRAWS = 0.3, 3, 40_000


def _exact(slate):
    """P(slate) of per-slot epsilon-greedy: explore uniformly among the items left, else the best left."""
    left = AVAILABLE.copy()
    p = 1.0
    for item in slate:
        best = int(np.argmax(np.where(left, SCORES, -np.inf)))
        p *= (1 - EPS) * (item == best) + EPS / left.sum()
        left[item] = False
    return p


# draws=60: the rejection prefix always suffices (3 distinct available items among 60 ids fail
# only if all 60 fall in 2 available items + the unavailable one: P < 15 (3/7)^60 < 1e-20); draws=2 (raised to
# 2K = 6): almost never (P = 6!/7^6 = 0.006), the fallback serves nearly every event;
# draws=10: a mix, events of both paths in one batch.
@pytest.mark.parametrize("draws", [60, 2, 10])
def test_fast_slate_distribution_and_propensities_are_exact(draws):
    keys = jax.random.split(jax.random.key(draws), DRAWS)
    slates, props = jax.jit(lambda k: epsilon_greedy_slates(
        k, jnp.broadcast_to(jnp.asarray(SCORES), (DRAWS, len(SCORES))),
        jnp.broadcast_to(jnp.asarray(AVAILABLE), (DRAWS, len(SCORES))), EPS, K, draws=draws))(keys)
    slates, props = np.asarray(slates), np.asarray(props, np.float64)
    assert not np.any(slates == 3) and all(len(set(s)) == K for s in slates.tolist())
    counts = {}
    for s in map(tuple, slates.tolist()):
        counts[s] = counts.get(s, 0) + 1
    items = np.flatnonzero(AVAILABLE)
    total = 0.0
    for s in itertools.permutations(items, K):
        p = _exact(s)
        total += p
        freq = counts.get(s, 0) / DRAWS
        assert abs(freq - p) <= 5 * np.sqrt(p * (1 - p) / DRAWS) + 1e-3, (s, freq, p)
    np.testing.assert_allclose(total, 1.0, rtol=1e-9)
    # reported propensities multiply to the exact slate probability
    for s, pr in zip(slates[:200].tolist(), props[:200]):
        np.testing.assert_allclose(np.prod(pr), _exact(s), rtol=1e-5)


@pytest.mark.slow  # ~17 s: every slate policy through both builders (CI's second step runs it)
def test_fast_slate_propensities_equal_the_general_builder():
    """Every slot of 20 fast slates: the reported propensity equals the closed form and
    the general builder's single-pick distribution (policy.act on the items left) at
    that item; where the builder, with the same key, picks the same item its reported
    propensity is the same number (counted: the comparison cannot be empty)."""
    from rec_jax.policies.base import Observation
    from rec_jax.serve.recommend import scores_as_counts

    policy, params = make_policy("epsilon_greedy", PolicySpec(num_items=len(SCORES), slate_size=1))
    params = params.replace(epsilon=EPS)
    state = scores_as_counts(jnp.asarray(SCORES))
    act = jax.jit(lambda key, left: policy.act(key, state, Observation(
        features=jnp.zeros((len(SCORES), 0)), available=left, scores=jnp.asarray(SCORES)), params)[1].marginal[0])
    builder = jax.jit(lambda key, left: slate_by_single_picks(policy, params, key, jnp.asarray(SCORES), left, 1))
    compared = same_pick = 0
    for seed in range(20):
        slate, prop = epsilon_greedy_slate(jax.random.key(seed), jnp.asarray(SCORES), jnp.asarray(AVAILABLE), EPS, K)
        left = AVAILABLE.copy()
        for item, p in zip(np.asarray(slate), np.asarray(prop)):
            best = int(np.argmax(np.where(left, SCORES, -np.inf)))
            expected = (1 - EPS) * (item == best) + EPS / left.sum()
            np.testing.assert_allclose(p, expected, rtol=1e-6)
            # the general builder's distribution over this slot, at the fast path's pick
            np.testing.assert_allclose(float(act(jax.random.key(seed), jnp.asarray(left))[item]), p, rtol=1e-6)
            compared += 1
            ref_slate, ref_prop = builder(jax.random.key(seed), jnp.asarray(left))
            if int(ref_slate[0]) == item:  # same pick: the builder reports the same propensity
                np.testing.assert_allclose(float(ref_prop[0]), p, rtol=1e-6)
                same_pick += 1
            left[item] = False
    assert compared == 20 * K
    assert same_pick >= 10, same_pick  # 38 of the 60 slots with these seeds


def test_fast_slates_from_fused_keys_are_those_of_standard_keys():
    """The serving steps draw from keys re-typed by fused_threefry.as_fused: the slates,
    through both shuffle paths (draws=10 mixes them), are those of JAX's own keys."""
    from rec_jax.fused_threefry import as_fused

    key = jax.random.key(5)
    assert str(jax.random.key_impl(as_fused(key))) != str(jax.random.key_impl(key))  # not a no-op here (CPU)
    scores = jnp.tile(SCORES, (64, 1))
    available = jnp.tile(AVAILABLE, (64, 1))

    def slates(base):
        keys = jax.vmap(lambda i: jax.random.fold_in(base, i))(jnp.arange(64))
        return epsilon_greedy_slates(keys, scores, available, EPS, K, draws=10)

    standard, fused = slates(key), slates(as_fused(key))
    assert fused[0].dtype == standard[0].dtype
    np.testing.assert_array_equal(fused[0], standard[0])
    np.testing.assert_array_equal(fused[1], standard[1])
    assert len({tuple(s) for s in np.asarray(standard[0]).tolist()}) > 10  # the events differ
