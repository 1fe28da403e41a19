"""Linear and logistic contextual bandit simulator."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.sim import linear, validate_params


@pytest.mark.parametrize("link", ["linear", "logistic"])
def test_expected_rewards_match_numpy_and_best_arm(link):
    sim, params = linear.make_linear(num_items=6, dim=4, link=link, seed=3, perturb_features=True)
    params = params.replace(feature_noise=jnp.float32(0.3), bias=jnp.float32(0.2),
                            theta_mean=jnp.array([1.0, -0.5, 0.0, 0.5]))
    keys = jax.random.split(jax.random.key(0), 4)
    obs, state = jax.vmap(sim.reset, in_axes=(0, None))(keys, params)
    assert obs.features.shape == (4, 6, 4) and obs.features.dtype == jnp.float32
    assert obs.available.shape == (4, 6) and bool(obs.available.all())
    # features: noisy rows of unit norm, different across streams, equal to the state's
    np.testing.assert_allclose(np.linalg.norm(np.asarray(obs.features), axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(obs.features), np.asarray(state.features))
    assert not np.allclose(obs.features[0], obs.features[1])
    x = np.asarray(obs.features, np.float64)
    theta = np.asarray(state.theta, np.float64)
    logits = np.einsum("snd,sd->sn", x, theta) + 0.2
    ref = 1 / (1 + np.exp(-logits)) if link == "logistic" else logits
    actions = jnp.array([0, 2, 5, 1], jnp.int32)
    step_keys = jax.random.split(jax.random.key(1), 4)
    obs2, state2, out = jax.vmap(sim.step, in_axes=(0, 0, 0, None))(step_keys, state, actions, params)
    np.testing.assert_allclose(np.asarray(out.expected_reward), ref[np.arange(4), [0, 2, 5, 1]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.best_expected_reward), ref.max(1), rtol=1e-5, atol=1e-6)
    # the best arm's expected reward is what the step reports when that arm is played
    _, _, out_best = jax.vmap(sim.step, in_axes=(0, 0, 0, None))(step_keys, state, jnp.asarray(ref.argmax(1), jnp.int32), params)
    np.testing.assert_allclose(np.asarray(out_best.expected_reward), np.asarray(out_best.best_expected_reward))
    # theta is kept, features are redrawn
    np.testing.assert_array_equal(np.asarray(state2.theta), np.asarray(state.theta))
    assert not np.allclose(obs2.features, obs.features)
    if link == "logistic":
        assert set(np.unique(np.asarray(out.reward))) <= {0.0, 1.0}


def test_logistic_reward_frequency_matches_sigmoid():
    sim, params = linear.make_linear(num_items=5, dim=4, link="logistic", seed=1, theta_scale=2.0)
    _, state = sim.reset(jax.random.key(5), params)
    n = 4000
    keys = jax.random.split(jax.random.key(6), n)
    _, _, out = jax.jit(jax.vmap(sim.step, in_axes=(0, None, None, None)))(keys, state, jnp.int32(3), params)
    p = 1 / (1 + np.exp(-(np.asarray(params.item_features, np.float64) @ np.asarray(state.theta, np.float64))))[3]
    assert abs(np.asarray(out.reward).mean() - p) <= 4.5 * np.sqrt(p * (1 - p) / n)


def test_linear_fixed_theta_when_std_zero_and_noise_std():
    sim, params = linear.make_linear(num_items=5, dim=4, link="linear")
    params = params.replace(theta_std=jnp.float32(0.0), theta_mean=jnp.array([0.1, 0.2, 0.3, 0.4]),
                            noise_std=jnp.float32(0.5))
    obs1, s1 = sim.reset(jax.random.key(1), params)
    _, s2 = sim.reset(jax.random.key(2), params)
    np.testing.assert_allclose(np.asarray(s1.theta), [0.1, 0.2, 0.3, 0.4], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(s1.theta), np.asarray(s2.theta))
    # no feature noise: the features are the fixed params rows
    np.testing.assert_allclose(np.asarray(obs1.features), np.asarray(params.item_features), rtol=1e-6)
    assert s1.features is None  # fixed features are not copied into the state
    keys = jax.random.split(jax.random.key(3), 3000)
    _, _, out = jax.vmap(sim.step, in_axes=(0, None, None, None))(keys, s1, jnp.int32(0), params)
    resid = np.asarray(out.reward) - np.asarray(out.expected_reward)
    assert abs(resid.std() - 0.5) < 0.04 and abs(resid.mean()) < 4.5 * 0.5 / np.sqrt(3000)


def test_fixed_features_stay_unbatched_under_vmap():
    """perturb_features=False: obs depends on params only, so vmap can leave it unbatched."""
    sim, params = linear.make_linear(num_items=5, dim=3, seed=2)
    keys = jax.random.split(jax.random.key(0), 4)
    obs_axes = jax.tree.map(lambda _: None, sim.reset(keys[0], params)[0])
    obs, state = jax.vmap(sim.reset, in_axes=(0, None), out_axes=(obs_axes, 0))(keys, params)
    assert obs.features.shape == (5, 3) and state.features is None and state.theta.shape == (4, 3)
    step = jax.vmap(sim.step, in_axes=(0, 0, 0, None), out_axes=(obs_axes, 0, 0))
    obs2, state2, out = step(keys, state, jnp.array([0, 1, 2, 3], jnp.int32), params)
    np.testing.assert_array_equal(np.asarray(obs2.features), np.asarray(params.item_features))
    ref = np.asarray(state.theta) @ np.asarray(params.item_features).T
    np.testing.assert_allclose(np.asarray(out.expected_reward), ref[np.arange(4), [0, 1, 2, 3]], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(out.best_expected_reward), ref.max(1), rtol=1e-5, atol=1e-6)


def test_linear_validate_params_names_field():
    _, params = linear.make_linear(num_items=5, dim=4)
    validate_params(params)
    with pytest.raises(ValueError, match="LinearParams.noise_std"):
        validate_params(params.replace(noise_std=jnp.float32(-0.1)))
    with pytest.raises(ValueError, match="LinearParams.theta_mean"):
        validate_params(params.replace(theta_mean=jnp.zeros(3)))
    with pytest.raises(ValueError, match="LinearParams.feature_noise"):
        validate_params(params.replace(feature_noise=jnp.float32(np.inf)))
    with pytest.raises(ValueError, match="link"):
        linear.make_linear(link="probit")
