"""Slate construction: exact epsilon-ranked marginals against brute-force enumeration,
availability top-up, UCB1's untried-first rule, params vmapped like data."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.policies import Observation, PolicySpec, make_policy
from rec_jax.policies._slates import effective_available, epsilon_ranked_marginals


def _np_enumerated_marginals(values, mask, eps, k_slots):
    """Marginals of the per-slot epsilon-greedy slate by enumerating every sequence."""
    n = len(values)
    marg = np.zeros((k_slots, n))

    def rec(remaining, k, prob):
        if k == k_slots:
            return
        v = np.where(remaining, values, -np.inf)
        best = remaining & (v == v.max())
        p = eps * remaining / remaining.sum() + (1 - eps) * best / best.sum()
        for i in np.flatnonzero(p > 0):
            marg[k, i] += prob * p[i]
            rest = remaining.copy()
            rest[i] = False
            rec(rest, k + 1, prob * p[i])

    rec(np.asarray(mask, bool), 0, 1.0)
    return marg


VALUES = np.array([0.5, 0.2, 0.5, 0.9, np.inf, 0.2, 0.2, 0.1], np.float32)  # ties, and +inf (UCB untried)
MASK = np.array([1, 1, 1, 1, 1, 0, 1, 1], bool)


@pytest.mark.parametrize("k_slots", [1, 2, 4])
def test_epsilon_ranked_marginals_match_enumeration(k_slots):
    fn = jax.jit(epsilon_ranked_marginals, static_argnums=3)
    for eps in (0.0, 0.3, 1.0):
        for values in (VALUES, np.where(np.isinf(VALUES), 0.9, VALUES)):
            got = np.asarray(fn(jnp.asarray(values), jnp.asarray(MASK), jnp.float32(eps), k_slots))
            want = _np_enumerated_marginals(values, MASK, eps, k_slots)
            np.testing.assert_allclose(got, want, atol=2e-6, err_msg=f"eps={eps}")


def test_effective_available_tops_up_lowest_unavailable():
    avail = jnp.array([0, 1, 0, 0, 1, 0], bool)
    for k, want in [(1, [0, 1, 0, 0, 1, 0]), (3, [1, 1, 0, 0, 1, 0]), (4, [1, 1, 1, 0, 1, 0])]:
        np.testing.assert_array_equal(np.asarray(effective_available(avail, k)), np.array(want, bool))


def _obs(n, available):
    return Observation(features=jnp.zeros((n, 0)), available=jnp.asarray(available), scores=jnp.zeros((n,)))


@pytest.mark.parametrize("k_slots", [1, 2])
def test_ucb1_plays_every_untried_available_arm_first(k_slots):
    n = 6
    spec = PolicySpec(num_items=n, slate_size=k_slots)
    policy, params = make_policy("ucb1", spec)
    available = np.array([1, 1, 1, 0, 1, 1], bool)
    obs = _obs(n, available)
    steps = 5 // k_slots + 3

    @jax.jit
    def run(key):
        def step(state, step_key):
            action, info = policy.act(step_key, state, obs, params)
            reward = jnp.ones(jnp.shape(action)) * 0.9  # a high reward: a greedy rule would repeat
            return policy.update(step_key, state, obs, action, reward, params), (action, info.propensity)

        return jax.lax.scan(step, policy.init(key, spec), jax.random.split(key, steps))[1]

    actions, props = run(jax.random.key(3, impl="rbg"))
    actions = np.asarray(actions).reshape(steps, k_slots)
    num_first = 5 // k_slots  # slates made only of untried arms
    first = actions[:num_first].ravel()
    assert len(set(first.tolist())) == len(first)  # no repeats among the first picks
    assert 3 not in actions  # the unavailable arm is never played
    if k_slots == 1:
        assert sorted(first.tolist()) == [0, 1, 2, 4, 5]
        # Ties among untried arms: uniform, so the propensity is 1 / #untried.
        np.testing.assert_allclose(np.asarray(props)[:5], 1.0 / np.arange(5, 0, -1), rtol=1e-6)


def test_params_vmap_like_data():
    """epsilon vmapped over [0, 0.5, 1]: marginals eps / M + (1 - eps) * greedy one-hot."""
    n = 5
    spec = PolicySpec(num_items=n, slate_size=1)
    policy, params = make_policy("epsilon_greedy", spec)
    state = policy.init(None, spec).replace(counts=jnp.ones((n,)), sums=jnp.array([0.1, 0.7, 0.3, 0.9, 0.2]))
    available = np.array([1, 1, 1, 0, 1], bool)  # the best item (3) is unavailable
    eps = jnp.array([0.0, 0.5, 1.0])
    batched = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (3,)), params)
    batched = batched.replace(epsilon=eps)
    act = jax.jit(jax.vmap(policy.act, in_axes=(None, None, None, 0)))
    _, info = act(jax.random.key(0, impl="rbg"), state, _obs(n, available), batched)
    greedy = np.eye(n)[1]
    want = np.asarray(eps)[:, None] * available / available.sum() + (1 - np.asarray(eps))[:, None] * greedy
    np.testing.assert_allclose(np.asarray(info.marginal)[:, 0], want, atol=1e-6)


def test_enumeration_reference_is_a_distribution():
    # Guard the reference itself: per-slot rows sum to 1 and items appear at most once.
    for eps, k in itertools.product((0.0, 0.4), (2, 3)):
        m = _np_enumerated_marginals(VALUES, MASK, eps, k)
        np.testing.assert_allclose(m.sum(1), 1.0)
        assert np.all(m.sum(0) <= 1 + 1e-12)
