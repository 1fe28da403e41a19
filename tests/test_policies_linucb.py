"""LinUCB's maintained inverse (float32 Sherman-Morrison + Cholesky refactor) and
shared-mode merges of every policy against NumPy references."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.policies import Observation, PolicySpec, make_policy
from rec_jax.policies import _ridge
from test_policies_utils import (
    N,
    behaviour,
    names_of_family,
    state_family,
    fixed_obs,
    numpy_history,
    rel_frobenius,
    replay,
    update_key,
)

# One xdist worker runs every test that reads the shared per-policy jit (behaviour()).
pytestmark = pytest.mark.xdist_group("policy_behaviour")


def _inverse_errors(num_steps, refactor_every, d=4, seed=0):
    """Relative Frobenius error of LinUCB's A^-1 vs a float64 direct inverse at every step."""
    x = np.random.default_rng(seed).standard_normal((num_steps, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)  # unit-norm contexts
    spec = PolicySpec(num_items=1, feature_dim=d)
    policy, params = make_policy("linucb", spec)
    params = params.replace(refactor_every=refactor_every)

    @jax.jit
    def run(xs):
        def step(state, x_t):
            obs = Observation(features=x_t[None], available=jnp.ones((1,), bool), scores=jnp.zeros((1,)))
            state = policy.update(None, state, obs, jnp.int32(0), jnp.float32(0.0), params)
            return state, state.a_inv

        return jax.lax.scan(step, policy.init(None, spec), xs)[1]

    a_inv = np.asarray(run(x), np.float64)
    x64 = x.astype(np.float64)
    gram = np.cumsum(x64[:, :, None] * x64[:, None, :], axis=0) + params.reg * np.eye(d)
    ref = np.linalg.inv(gram)
    return np.linalg.norm(a_inv - ref, axis=(1, 2)) / np.linalg.norm(ref, axis=(1, 2))


def test_inverse_stays_accurate_over_100k_rank_one_updates():
    err = _inverse_errors(100_000, refactor_every=100)
    assert err.shape == (100_000,)
    assert err.max() < 1e-4, (err.max(), int(err.argmax()))


def test_refactor_repairs_a_corrupted_inverse():
    d = 4
    x = np.random.default_rng(1).standard_normal((12, d)).astype(np.float32)
    state = _ridge.init_ridge(d)
    state = state.replace(a_inv=state.a_inv + 0.01)  # a corrupted inverse
    ref = np.linalg.inv(x.astype(np.float64).T @ x + np.eye(d))
    update = jax.jit(_ridge.ridge_update)  # refactor_every is traced: one compile
    for every, repaired in ((4, True), (10**6, False)):
        st = state
        for t in range(12):
            st = update(st, jnp.asarray(x[t : t + 1]), jnp.zeros(1), 1.0, every)
        assert (rel_frobenius(st.a_inv, ref) < 1e-5) == repaired, every


def test_new_reg_takes_effect_at_next_update():
    d = 4
    x = np.random.default_rng(2).standard_normal((1, d)).astype(np.float32)
    st = _ridge.ridge_update(_ridge.init_ridge(d), jnp.asarray(x), jnp.ones(1), 2.5, 10**6)
    ref = np.linalg.inv(x.astype(np.float64).T @ x + 2.5 * np.eye(d))
    assert rel_frobenius(st.a_inv, ref) < 1e-5
    assert float(st.reg) == 2.5


@pytest.mark.parametrize("name", ["neural_linear_ucb", "bootstrapped_heads"])
def test_prior_mean_changed_mid_history_gives_the_new_posterior(name):
    """PBT / a meta-bandit may change prior_mean between updates: after 10 updates
    under c = 0.05 and 10 under c = 0.4, the posterior mean must be the one NumPy
    computes from scratch for the whole history under c = 0.4 (reg = 2 throughout):
    mu = A^-1 (reg p + sum w r x), A = reg I + sum w x x^T, p the prior mean
    (c 1 + sigma z_m for head m, w its Poisson bootstrap weights; w = 1 otherwise)."""
    spec = PolicySpec(num_items=N, feature_dim=4)
    policy, params = make_policy(name, spec)
    params = params.replace(reg=2.0)
    features, actions, rewards = numpy_history(11, 20, 1)
    state = policy.init(jax.random.key(1), spec)
    for half, c in ((slice(0, 10), 0.05), (slice(10, 20), 0.4)):
        state = replay(policy, params.replace(prior_mean=c), spec, state, features[half], actions[half], rewards[half])
    params = params.replace(prior_mean=0.4)
    x = np.asarray(features, np.float64)[np.arange(20), actions]  # [T, D]
    r = np.asarray(rewards, np.float64)
    if name == "neural_linear_ucb":
        from rec_jax.policies.neural_linear import posterior_mean

        got, priors, w = np.asarray(posterior_mean(state, 0.4))[None], np.full((1, 4), 0.4), np.ones((1, 20))
    else:
        from rec_jax.policies.bootstrapped_heads import head_means

        got = np.asarray(head_means(state, params))
        priors = 0.4 + params.prior_scale * np.asarray(state.z, np.float64)
        # replay's update keys restart at t = 0 for the second half
        w = np.concatenate([np.asarray(jax.random.poisson(update_key(t % 10), 1.0, (len(priors), 1)), np.float64)
                            for t in range(20)], axis=1)  # [M, T]
    for m, prior in enumerate(priors):
        a = (x * w[m][:, None]).T @ x + 2.0 * np.eye(4)
        mu = np.linalg.solve(a, 2.0 * prior + (x * w[m][:, None]).T @ r)
        np.testing.assert_allclose(got[m], mu, rtol=1e-4, atol=1e-5)


def test_first_act_honours_params_reg():
    """Before any update NeuralLinear-UCB scores c 1 . x + alpha sqrt(x^T x / reg) (the
    prior N(c 1, I / reg)); init cannot see params, so act must use params.reg. The
    features make the ranking depend on reg: item 0 wins for reg = 1, item 1 for 100."""
    spec = PolicySpec(num_items=3, feature_dim=2)
    policy, params = make_policy("neural_linear_ucb", spec)
    feats = np.array([[3.0, -3.0], [2.0, 2.0], [0.1, 0.1]])
    obs = Observation(features=jnp.asarray(feats, jnp.float32), available=jnp.ones(3, bool), scores=jnp.zeros(3))

    def numpy_scores(reg):
        return params.prior_mean * feats.sum(1) + params.alpha * np.sqrt((feats**2).sum(1) / reg)

    assert np.argmax(numpy_scores(1.0)) == 0 and np.argmax(numpy_scores(100.0)) == 1
    for reg in (1.0, 100.0):
        _, info = policy.act(jax.random.key(0), policy.init(None, spec), obs, params.replace(reg=reg))
        np.testing.assert_array_equal(np.asarray(info.marginal[0]), np.eye(3)[np.argmax(numpy_scores(reg))])
    acting = _ridge.acting_state(_ridge.init_ridge(2), 4.0)
    np.testing.assert_allclose(acting.a_inv, np.eye(2) / 4.0)
    assert float(acting.reg) == 4.0


# ----------------------------------------------------------------------------- merge


@pytest.mark.parametrize("name", names_of_family("counts", "ridge", "ridge_prior", "disjoint", "logistic", "step_count", "heads"))
def test_shared_merge_equals_s_times_the_stats(name):
    """S streams update the shared state on identical inputs; the merge must equal
    one update carrying S times the statistics (NumPy reference of the state's family)."""
    num_streams = 3
    b = behaviour(name)[3]
    policy, params, state = b["policy"], b["params"], b["state"]
    obs = fixed_obs(seed=7, unavailable=None)
    action = jnp.array([4, 0, 2], jnp.int32)
    reward = jnp.array([1.0, 0.0, 0.5], jnp.float32)
    new = policy.update(jax.random.key(5), state, obs, action, reward, params)
    new_states = jax.tree.map(lambda leaf: jnp.stack([leaf] * num_streams), new)
    merged = policy.merge(state, new_states)
    a, r = np.asarray(action), np.asarray(reward, np.float64)
    x = np.asarray(obs.features, np.float64)[a]  # [K, D]
    s = num_streams
    family = state_family(name)
    if family == "counts":
        counts, sums = np.array(state.counts, np.float64), np.array(state.sums, np.float64)
        counts[a] += s
        sums[a] += s * r  # rewards already in [0, 1]: Thompson's clipping is a no-op
        np.testing.assert_allclose(merged.counts, counts)
        np.testing.assert_allclose(merged.sums, sums, rtol=1e-6, atol=1e-6)
        assert int(merged.t) == int(state.t) + s
    elif family == "ridge":
        gram = np.asarray(state.gram, np.float64) + s * x.T @ x
        bvec = np.asarray(state.b, np.float64) + s * x.T @ r
        np.testing.assert_allclose(merged.gram, gram, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(merged.b, bvec, rtol=1e-5, atol=1e-4)
        assert rel_frobenius(merged.a_inv, np.linalg.inv(gram + np.eye(x.shape[1]))) < 1e-5
        assert int(merged.num_updates) == int(state.num_updates) + s * 3
    elif family == "disjoint":
        for k, item in enumerate(a):
            gram = np.asarray(state.gram[item], np.float64) + s * np.outer(x[k], x[k])
            np.testing.assert_allclose(merged.gram[item], gram, rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(merged.b[item], np.asarray(state.b[item]) + s * r[k] * x[k], atol=1e-4)
            assert rel_frobenius(merged.a_inv[item], np.linalg.inv(gram + np.eye(x.shape[1]))) < 1e-5
        untouched = np.setdiff1d(np.arange(N), a)
        np.testing.assert_allclose(merged.gram[untouched], state.gram[untouched])
        np.testing.assert_array_equal(np.asarray(merged.counts) - np.asarray(state.counts), np.isin(np.arange(N), a) * s)
    elif family == "step_count":
        assert int(merged) == int(state) + s
    elif family == "ridge_prior":  # raw sums: the prior mean enters when acting
        gram = np.asarray(state.gram, np.float64) + s * x.T @ x
        bvec = np.asarray(state.b, np.float64) + s * x.T @ r
        np.testing.assert_allclose(merged.gram, gram, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(merged.b, bvec, rtol=1e-5, atol=1e-4)
        assert rel_frobenius(merged.a_inv, np.linalg.inv(gram + np.eye(x.shape[1]))) < 1e-5
    elif family == "heads":
        w = np.asarray(jax.random.poisson(jax.random.key(5), 1.0, (state.z.shape[0], 3)), np.float64)
        for m in range(state.z.shape[0]):
            gram = np.asarray(state.ridge.gram[m], np.float64) + s * (x * w[m][:, None]).T @ x
            bvec = np.asarray(state.ridge.b[m], np.float64) + s * (x * w[m][:, None]).T @ r  # raw weighted sums
            np.testing.assert_allclose(merged.ridge.gram[m], gram, rtol=1e-5, atol=1e-4)
            np.testing.assert_allclose(merged.ridge.b[m], bvec, rtol=1e-5, atol=1e-4)
            assert rel_frobenius(merged.ridge.a_inv[m], np.linalg.inv(gram + np.eye(x.shape[1]))) < 1e-5
    else:
        assert family == "logistic", family
        w, bias = np.asarray(state.w, np.float64), float(state.bias)
        w1, b1 = w.copy(), bias
        for xk, rk in zip(x, r):  # one SGD step per slot, from the shared state
            g = 1 / (1 + np.exp(-(xk @ w1 + b1))) - rk
            w1, b1 = w1 - params.learning_rate * (g * xk + params.l2 * w1), b1 - params.learning_rate * g
        np.testing.assert_allclose(merged.w, w + s * (w1 - w), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(merged.bias, bias + s * (b1 - bias), rtol=1e-5, atol=1e-5)
