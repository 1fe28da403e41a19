"""Discounted and sliding-window UCB (rec_jax.adapt): statistics against brute-force
NumPy sums over the history, and the index they act on."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.adapt.discounted_ucb import DiscountedUCBParams, discounted_ucb_scores, make_discounted_ucb
from rec_jax.adapt.sliding_window_ucb import (SlidingWindowUCBParams, make_sliding_window_ucb,
                                              sliding_window_ucb_scores)
from rec_jax.policies.base import Observation, PolicySpec

N, T = 6, 40


def _history(k):
    rng = np.random.default_rng(k)
    actions = np.stack([rng.choice(N, size=k, replace=False) for _ in range(T)]).astype(np.int32)  # [T, K]
    rewards = rng.uniform(size=(T, k)).astype(np.float32)
    return actions, rewards


def _updates(policy, spec, params, actions, rewards):
    obs = Observation(features=jnp.zeros((N, 0)), available=jnp.ones(N, bool), scores=jnp.zeros(N))
    k = spec.slate_size

    def body(state, ar):
        a, r = ar
        a, r = (a[0], r[0]) if k == 1 else (a, r)
        return policy.update(jax.random.key(0), state, obs, a, r, params), None

    state = policy.init(jax.random.key(0), spec)
    return jax.jit(lambda s: jax.lax.scan(body, s, (jnp.asarray(actions), jnp.asarray(rewards)))[0])(state), obs


@pytest.mark.parametrize("k", [1, 2])
def test_sliding_window_statistics_are_exact_window_sums(k):
    window = 7
    spec = PolicySpec(num_items=N, slate_size=k)
    actions, rewards = _history(k)
    state, obs = _updates(make_sliding_window_ucb(spec, window), spec, SlidingWindowUCBParams(), actions, rewards)
    counts, sums = np.zeros(N), np.zeros(N)
    for a, r in zip(actions[-window:], rewards[-window:]):  # brute force over the last W steps
        np.add.at(counts, a, 1.0)
        np.add.at(sums, a, r)
    np.testing.assert_allclose(state.counts, counts, atol=1e-5)
    np.testing.assert_allclose(state.sums, sums, atol=1e-5)
    ref = np.where(counts > 0, sums / np.maximum(counts, 1) + 0.5 * np.sqrt(2 * np.log(counts.sum())
                                                                               / np.maximum(counts, 1)), np.inf)
    np.testing.assert_allclose(sliding_window_ucb_scores(state, 0.5), ref, rtol=1e-5)


def test_discounted_statistics_match_brute_force():
    gamma = 0.9
    spec = PolicySpec(num_items=N)
    actions, rewards = _history(1)
    params = DiscountedUCBParams(alpha=0.7, discount=gamma)
    state, obs = _updates(make_discounted_ucb(spec), spec, params, actions, rewards)
    w = gamma ** np.arange(T - 1, -1, -1)  # weight of step s at the end: gamma^(T-1-s)
    counts = np.array([(w * (actions[:, 0] == i)).sum() for i in range(N)])
    sums = np.array([(w * rewards[:, 0] * (actions[:, 0] == i)).sum() for i in range(N)])
    np.testing.assert_allclose(state.counts, counts, rtol=1e-5)
    np.testing.assert_allclose(state.sums, sums, rtol=1e-5)
    ref = sums / counts + 0.7 * np.sqrt(2 * np.log(counts.sum()) / counts)
    np.testing.assert_allclose(discounted_ucb_scores(state, 0.7), ref, rtol=1e-5)
    action, info = make_discounted_ucb(spec).act(jax.random.key(1), state, obs, params)
    assert int(action) == int(np.argmax(ref)) and float(info.propensity) == 1.0


def test_bad_params_are_one_line_errors():
    with pytest.raises(ValueError, match="discount"):
        DiscountedUCBParams(discount=0.0).validate()
    with pytest.raises(ValueError, match="window"):
        make_sliding_window_ucb(PolicySpec(num_items=3), window=0)
