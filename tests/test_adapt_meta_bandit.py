"""Meta-bandits over a grid (rec_jax.adapt.meta_bandit): formulas against NumPy, and
concentration on the best arm of a stationary toy problem."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.adapt import meta_bandit as mb


def test_exp3_and_ts_updates_match_numpy():
    params = mb.MetaBanditParams(gamma=0.2, eta=0.5, reward_low=0.0, reward_high=2.0, noise_std=0.3,
                                 prior_mean=0.1, prior_std=0.7, discount=0.9)
    arms, probs, rewards = [0, 2, 2, 1], [0.4, 0.25, 0.5, 0.3], [1.0, 3.0, 0.5, -1.0]
    s_exp3, s_ts = mb.init_meta(3), mb.init_meta(3)
    ref_est, ref_n, ref_s = np.zeros(3), np.zeros(3), np.zeros(3)
    for a, p, r in zip(arms, probs, rewards):
        s_exp3 = mb.update(s_exp3, jnp.int32(a), jnp.float32(p), jnp.float32(r), params, "exp3")
        s_ts = mb.update(s_ts, jnp.int32(a), jnp.float32(p), jnp.float32(r), params, "ts")
        ref_est[a] += np.clip(r / 2.0, 0, 1) / p
        ref_n, ref_s = 0.9 * ref_n, 0.9 * ref_s
        ref_n[a] += 1
        ref_s[a] += r
    w = np.exp(0.5 * (ref_est - ref_est.max()))
    np.testing.assert_allclose(mb.exp3_probs(s_exp3, params), 0.8 * w / w.sum() + 0.2 / 3, rtol=1e-5)
    prec = 1 / 0.7**2 + ref_n / 0.3**2
    mean, std = mb.ts_posterior(s_ts, params)
    np.testing.assert_allclose(mean, (0.1 / 0.7**2 + ref_s / 0.3**2) / prec, rtol=1e-5)
    np.testing.assert_allclose(std, 1 / np.sqrt(prec), rtol=1e-5)


@pytest.mark.parametrize("method", ["ts", "exp3"])
def test_meta_bandit_concentrates_on_the_best_arm(method):
    means = np.array([0.30, 0.45, 0.60, 0.40], np.float32)  # best arm: 2
    # noise_std 0.5: the std of a Bernoulli reward near 1/2 (an overconfident TS can lock in).
    params = mb.MetaBanditParams(gamma=0.05, eta=0.05, noise_std=0.5, prior_mean=0.5, prior_std=1.0)
    num = 1000

    @jax.jit
    def run(key):
        def body(state, k):
            sel_key, rew_key = jax.random.split(k)
            arm, prob = mb.select(sel_key, state, params, method)
            reward = jax.random.bernoulli(rew_key, jnp.asarray(means)[arm]).astype(jnp.float32)
            return mb.update(state, arm, prob, reward, params, method), arm
        return jax.lax.scan(body, mb.init_meta(4), jax.random.split(key, num))[1]

    picks = np.asarray(jax.vmap(run)(jax.random.split(jax.random.key(0), 8)))  # [8 runs, num]
    late = picks[:, -200:]
    assert np.bincount(late.ravel(), minlength=4).argmax() == int(np.argmax(means))
    assert (late == np.argmax(means)).mean() > 0.7  # uniform play would give 0.25


def test_select_probability_is_the_pick_frequency():
    params = mb.MetaBanditParams(gamma=0.3, eta=1.0)
    state = mb.init_meta(3).replace(est_sums=jnp.array([0.0, 1.0, -0.5]))
    arms, probs = jax.vmap(lambda k: mb.select(k, state, params, "exp3"))(jax.random.split(jax.random.key(1), 20000))
    freq = np.bincount(np.asarray(arms), minlength=3) / 20000
    np.testing.assert_allclose(freq, mb.exp3_probs(state, params), atol=0.015)
    np.testing.assert_allclose(np.asarray(probs), np.asarray(mb.exp3_probs(state, params))[np.asarray(arms)],
                               rtol=1e-6)


def test_bad_params_and_method_are_one_line_errors():
    with pytest.raises(ValueError, match="MetaBanditParams.gamma"):
        mb.MetaBanditParams(gamma=0.0).validate()
    with pytest.raises(ValueError, match="reward_high"):
        mb.MetaBanditParams(reward_low=1.0, reward_high=1.0).validate()
    with pytest.raises(ValueError, match="method"):
        mb.select(jax.random.key(0), mb.init_meta(2), mb.MetaBanditParams(), "ucb")


def test_meta_run_equals_the_fixed_run_when_the_grid_has_one_setting():
    """Common random numbers: with every arm the same setting, the meta-driven run is
    step for step the plain engine run with the same key."""
    from rec_jax.adapt.meta_run import grid_params, make_meta_run
    from rec_jax.online import EngineConfig, make_run
    from rec_jax.policies import make_policy
    from rec_jax.policies.base import PolicySpec
    from rec_jax.policies.epsilon_greedy import EpsilonGreedyParams
    from rec_jax.sim import make_env

    sim, env_params = make_env("bernoulli", num_arms=5)
    spec = PolicySpec(num_items=5)
    policy, _ = make_policy("epsilon_greedy", spec)
    engine = make_run(EngineConfig(num_streams=3), policy, sim, spec=spec)
    setting = EpsilonGreedyParams(epsilon=0.2)
    meta = make_meta_run(engine, grid_params([setting, setting, setting]), period_steps=4, method="ts")
    key = jax.random.key(7)
    _, out = jax.jit(meta, static_argnums=3)(key, env_params, mb.MetaBanditParams(), 5)
    _, ref = jax.jit(lambda k: engine.run(k, setting, env_params, 20))(key)
    np.testing.assert_array_equal(np.asarray(out["reward"]), np.asarray(ref["reward"]).mean(axis=1))
    assert out["arm"].shape == (5,) and np.all((np.asarray(out["arm"]) >= 0) & (np.asarray(out["arm"]) < 3))
