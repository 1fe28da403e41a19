"""Bernoulli and Gaussian bandit simulators."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.sim import SimSpec, bernoulli, gaussian, validate_params


@pytest.mark.parametrize("one_hot", [False, True])
def test_bernoulli_shapes_under_vmap(one_hot):
    sim, params = bernoulli.make_bernoulli(num_arms=5, one_hot_features=one_hot)
    keys = jax.random.split(jax.random.key(0), 3)
    obs, state = jax.vmap(sim.reset, in_axes=(0, None))(keys, params)
    d = 5 if one_hot else 0
    assert obs.features.shape == (3, 5, d) and obs.features.dtype == jnp.float32
    assert obs.available.shape == (3, 5) and obs.available.dtype == jnp.bool_
    assert obs.scores.shape == (3, 5)
    assert sim.feature_dim == d and sim.num_items == 5
    actions = jnp.array([0, 1, 4], jnp.int32)
    obs2, state2, out = jax.vmap(sim.step, in_axes=(0, 0, 0, None))(keys, state, actions, params)
    assert out.reward.shape == (3,) and out.slot_rewards.shape == (3, 1)
    np.testing.assert_array_equal(np.asarray(state2.t), np.asarray(state.t) + 1)
    if one_hot:
        np.testing.assert_array_equal(np.asarray(obs2.features[0]), np.eye(5))


def test_bernoulli_empirical_means_and_exact_expectations():
    sim, params = bernoulli.make_bernoulli(num_arms=5)
    means = np.asarray(params.means)
    n = 4000
    keys = jax.random.split(jax.random.key(1), 5 * n)
    actions = jnp.repeat(jnp.arange(5, dtype=jnp.int32), n)
    _, state = sim.reset(keys[0], params)
    step = jax.vmap(sim.step, in_axes=(0, None, 0, None))
    _, _, out = jax.jit(step)(keys, state, actions, params)
    rewards = np.asarray(out.reward).reshape(5, n)
    emp = rewards.mean(1)
    tol = 4.5 * np.sqrt(means * (1 - means) / n)  # binomial, ~1e-5 two-sided per arm
    assert np.all(np.abs(emp - means) <= tol), (emp, means)
    assert set(np.unique(rewards)) <= {0.0, 1.0}
    np.testing.assert_array_equal(np.asarray(out.click), np.asarray(out.reward))
    np.testing.assert_allclose(np.asarray(out.expected_reward).reshape(5, n)[:, 0], means)
    np.testing.assert_allclose(np.asarray(out.best_expected_reward), means.max())
    assert means.argmax() != 4  # the default interleaves means: the best arm is not the last


def test_gaussian_moments_and_exact_expectations():
    sim, params = gaussian.make_gaussian(num_arms=4)
    params = params.replace(means=jnp.array([0.5, -1.0, 2.0, 0.0]), std=jnp.array([1.0, 0.5, 2.0, 0.0]))
    n = 3000
    keys = jax.random.split(jax.random.key(2), 4 * n)
    actions = jnp.repeat(jnp.arange(4, dtype=jnp.int32), n)
    _, state = sim.reset(keys[0], params)
    _, _, out = jax.jit(jax.vmap(sim.step, in_axes=(0, None, 0, None)))(keys, state, actions, params)
    r = np.asarray(out.reward).reshape(4, n)
    std = np.array([1.0, 0.5, 2.0, 0.0])
    assert np.all(np.abs(r.mean(1) - [0.5, -1.0, 2.0, 0.0]) <= 4.5 * std / np.sqrt(n) + 1e-6)
    np.testing.assert_allclose(r.std(1), std, rtol=0.08, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.expected_reward).reshape(4, n)[:, 0], [0.5, -1.0, 2.0, 0.0])
    np.testing.assert_allclose(np.asarray(out.best_expected_reward), 2.0)
    np.testing.assert_array_equal(np.asarray(out.click), (r.ravel() > 0).astype(np.float32))


def test_bandit_validate_params_names_field():
    _, params = bernoulli.make_bernoulli(num_arms=3)
    with pytest.raises(ValueError, match="BernoulliParams.means"):
        validate_params(params.replace(means=jnp.array([0.2, 1.5, 0.1])))
    with pytest.raises(ValueError, match="BernoulliParams.means"):
        bernoulli.validate_params(params, SimSpec(num_items=4))
    _, gparams = gaussian.make_gaussian(num_arms=3)
    with pytest.raises(ValueError, match="GaussianParams.std"):
        validate_params(gparams.replace(std=jnp.float32(-1.0)))
    with pytest.raises(ValueError, match="GaussianParams.means"):
        validate_params(gparams.replace(means=jnp.array([0.0, np.nan, 1.0])))

