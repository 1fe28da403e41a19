"""LinUCB's per-item variances and means kept by rank-one updates, with the Gram matrix
formed from per-item update counts only at re-factorisations (fixed item features): equal to a float64
recomputation over 10,000 random updates with the periodic refresh; the engine uses them
exactly when the features are fixed and falls back otherwise."""
import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.online import EngineConfig, make_run
from rec_jax.policies import _ridge, _ridge_fixed, make_policy
from rec_jax.policies.base import PolicySpec
from rec_jax.sim import make_env


def _float64_variances(features, gram, reg):
    return np.einsum("nd,de,ne->n", features, np.linalg.inv(gram + reg * np.eye(features.shape[1])), features)


def test_incremental_variances_match_float64_over_10000_updates():
    n, d, t, streams = 100, 16, 10_000, 2
    rng = np.random.default_rng(0)
    features = (rng.standard_normal((n, d)) / np.sqrt(d)).astype(np.float32)
    items = rng.integers(0, n, (t, streams))
    rewards = rng.standard_normal((t, streams)).astype(np.float32)
    f = jnp.asarray(features)

    def one_stream(state, i, r):  # features unbatched under vmap: the one-GEMM refresh rule
        return _ridge_fixed.ridge_update_item_variances(state, i[None], r[None], 1.0, 100, f)

    def body(states, xr):
        states = jax.vmap(one_stream)(states, *xr)
        return states, (states.var, states.mean)

    init = jax.vmap(lambda _: _ridge_fixed.init_item_variances(d, n))(jnp.arange(streams))
    final, (kept, kept_mean) = jax.jit(
        lambda s: jax.lax.scan(body, s, (jnp.asarray(items), jnp.asarray(rewards))))(init)
    kept, kept_mean = np.asarray(kept), np.asarray(kept_mean)
    f64 = features.astype(np.float64)
    grams, bs = np.zeros((streams, d, d)), np.zeros((streams, d))
    worst = worst_mean = 0.0
    for step in range(t):
        x = f64[items[step]]
        grams += x[:, :, None] * x[:, None, :]
        bs += rewards[step][:, None] * x
        if step < 100 or step % 97 == 0 or step == t - 1:  # early steps, then a spread of the rest
            for s in range(streams):
                exact = _float64_variances(f64, grams[s], 1.0)
                worst = max(worst, float(np.max(np.abs(kept[step, s] - exact) / exact)))
                mean = f64 @ np.linalg.solve(grams[s] + np.eye(d), bs[s])
                worst_mean = max(worst_mean, float(np.max(np.abs(kept_mean[step, s] - mean)) / np.max(np.abs(mean))))
    assert worst < 1e-4, worst
    assert worst_mean < 1e-4, worst_mean
    # the Gram matrix of the counts is the sum of every x x^T
    for s in range(streams):
        full = _ridge_fixed.full_gram(jax.tree.map(lambda a: a[s], final), f)
        np.testing.assert_allclose(full, grams[s], rtol=1e-5, atol=1e-5 * np.max(np.abs(grams[s])))
    np.testing.assert_array_equal(np.asarray(final.counts), np.stack([np.bincount(items[:, s], minlength=n)
                                                                      for s in range(streams)]))


def _engine(policy_name="linucb", mode="per_stream", **env_kwargs):
    sim, env_params = make_env("linear", num_items=12, dim=4, seed=0, **env_kwargs)
    spec = PolicySpec(num_items=12, feature_dim=4)
    policy, params = make_policy(policy_name, spec)
    params = params.replace(refactor_every=7)
    engine = make_run(EngineConfig(num_streams=3, mode=mode), policy, sim, spec=spec)
    return engine, params, env_params


def test_engine_keeps_variances_only_with_fixed_features_per_stream():
    engine, params, env_params = _engine()
    run = jax.jit(engine.run_chunk, static_argnums=1)
    state, _ = run(engine.init_run(jax.random.key(0), params, env_params), 20)
    ps = state.policy_state
    assert isinstance(ps, _ridge_fixed.ItemVarianceRidgeState)
    x = np.asarray(env_params.item_features, np.float64)
    assert float(np.sum(np.asarray(ps.counts))) == 3 * 20  # one update per stream and step
    for s in range(3):
        gram = np.asarray(_ridge_fixed.full_gram(jax.tree.map(lambda a: a[s], ps), env_params.item_features), np.float64)
        np.testing.assert_allclose(ps.var[s], _float64_variances(x, gram, 1.0), rtol=1e-4)
        theta = np.linalg.solve(gram + np.eye(4), np.asarray(ps.b[s], np.float64))  # kept theta = A^-1 b
        np.testing.assert_allclose(ps.theta[s], theta, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(ps.mean[s], x @ theta, rtol=1e-3, atol=1e-5)
    # a new regulariser between chunks: the next update re-factorises and refreshes the variances
    state, _ = run(state.replace(policy_params=params.replace(reg=jnp.float32(3.0))), 20)
    ps = state.policy_state
    gram = np.asarray(_ridge_fixed.full_gram(jax.tree.map(lambda a: a[0], ps), env_params.item_features), np.float64)
    np.testing.assert_allclose(ps.var[0], _float64_variances(x, gram, 3.0), rtol=1e-4)
    assert float(np.sum(np.asarray(ps.counts[0]))) == 40
    for kwargs in ({"mode": "shared"}, {"perturb_features": True}):  # fall back to recomputing
        engine, params, env_params = _engine(**kwargs)
        state = jax.eval_shape(engine.init_run, jax.random.key(0), params, env_params)
        assert type(state.policy_state) is _ridge.RidgeState, kwargs
