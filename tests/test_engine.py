"""The online engine: determinism, no retrace, per-stream vs shared semantics, vmap, checks.

Tiny problems (5 arms, 4 streams, tens of steps); every assertion compares the
engine with something computed another way (NumPy replays of the logged tuples,
separate runs, chunked runs).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.online import EngineConfig, make_run, run_with_checkpoints
from rec_jax.policies.epsilon_greedy import EpsilonGreedyParams, make_epsilon_greedy
from rec_jax.policies.base import PolicySpec
from rec_jax.sim import make_env

N, S, T = 5, 4, 24


def _setup(mode="per_stream", log_tuples=False, num_streams=S):
    sim, env_params = make_env("bernoulli", num_arms=N)
    spec = PolicySpec(num_items=N)
    policy = make_epsilon_greedy(spec)
    run = make_run(EngineConfig(num_streams=num_streams, mode=mode, log_tuples=log_tuples), policy, sim)
    return run, sim, env_params


def test_deterministic_no_retrace_and_chunking_invariant():
    run, sim, env_params = _setup()
    traces = []

    def counting_step(*args):
        traces.append(1)
        return sim.step(*args)

    run = make_run(run.config, make_epsilon_greedy(run.spec), sim._replace(step=counting_step))
    f = jax.jit(run.run, static_argnums=3)
    key = jax.random.key(0)
    s1, m1 = f(key, EpsilonGreedyParams(epsilon=0.2), env_params, T)
    s2, m2 = f(key, EpsilonGreedyParams(epsilon=0.2), env_params, T)
    _, m3 = f(jax.random.key(1), EpsilonGreedyParams(epsilon=0.5), env_params, T)
    assert len(traces) == 1 and f._cache_size() == 1  # same shapes: no retrace
    assert m1["reward"].shape == (T, S) and m1["regret"].dtype == jnp.float32
    for k in m1:
        np.testing.assert_array_equal(m1[k], m2[k])
    assert not np.array_equal(m1["click"], m3["click"])

    # Three chunks of T/3 from init_run draw exactly the numbers one scan of T draws.
    chunk = jax.jit(run.run_chunk, static_argnums=1)
    state = run.init_run(key, EpsilonGreedyParams(epsilon=0.2), env_params)
    parts = []
    for _ in range(3):
        state, m = chunk(state, T // 3)
        parts.append(m)
    for k in m1:
        np.testing.assert_array_equal(np.concatenate([p[k] for p in parts]), m1[k])
    np.testing.assert_array_equal(state.policy_state.counts, s1.policy_state.counts)
    assert int(state.step) == T


def test_per_stream_state_and_logs_match_numpy_replay():
    run, _, env_params = _setup(log_tuples=True)
    state, m = jax.jit(run.run, static_argnums=3)(jax.random.key(3), EpsilonGreedyParams(epsilon=0.3), env_params, T)
    log = jax.tree.map(np.asarray, m["log"])
    a, r = log["action"], log["reward"]  # [T, S]
    means = np.asarray(env_params.means)
    # Each stream's counts/sums are its own logged actions and rewards only.
    counts = np.stack([np.bincount(a[:, s], minlength=N) for s in range(S)])
    sums = np.stack([np.bincount(a[:, s], weights=r[:, s], minlength=N) for s in range(S)])
    np.testing.assert_array_equal(state.policy_state.counts, counts)
    np.testing.assert_allclose(state.policy_state.sums, sums, rtol=0, atol=1e-6)
    # Propensity is the logged distribution at the chosen action; regret from the true means.
    np.testing.assert_allclose(log["propensity"], np.take_along_axis(log["marginal"][:, :, 0], a[..., None], -1)[..., 0], rtol=1e-6)
    picked = np.array([[log["marginal"][t, s, 0, a[t, s]] for s in range(S)] for t in range(T)])  # loop reference
    np.testing.assert_array_equal(log["marginal_propensity"], picked[..., None])  # [T, S, K = 1]
    np.testing.assert_allclose(m["regret"], means.max() - means[a], atol=1e-7)
    np.testing.assert_array_equal(m["reward"], r)
    assert log["features"].shape == (T, S, N, 0) and log["available"].all()
    # Exact propensities, and the log says so (rec_jax.ope.validate_log reads it).
    assert log["propensity_kind"].shape == (T, S)
    assert not log["propensity_kind"].any() and not log["marginal_kind"].any()
    # Streams act from different states: their action distributions differ somewhere.
    assert not np.allclose(log["marginal"][-1, 0], log["marginal"][-1, 1])


def test_shared_mode_matches_numpy_reference_of_summed_updates():
    eps = 0.3
    run, _, env_params = _setup(mode="shared", log_tuples=True)
    state, m = jax.jit(run.run, static_argnums=3)(jax.random.key(4), EpsilonGreedyParams(epsilon=eps), env_params, T)
    log = jax.tree.map(np.asarray, m["log"])
    a, r = log["action"], log["reward"]
    counts = np.zeros(N, np.float32)
    sums = np.zeros(N, np.float32)
    for t in range(T):
        # All S streams act from the one state built from the summed updates of steps < t.
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.float32(0))
        best = means == means.max()
        probs = eps / N + (1 - eps) * best / best.sum()
        np.testing.assert_allclose(log["marginal"][t, :, 0], np.broadcast_to(probs, (S, N)), rtol=1e-6)
        np.add.at(counts, a[t], 1.0)
        np.add.at(sums, a[t], r[t])
    np.testing.assert_array_equal(state.policy_state.counts, counts)
    np.testing.assert_allclose(state.policy_state.sums, sums, atol=1e-6)
    assert int(state.policy_state.t) == T * S  # merge sums each stream's step counter too
    assert state.policy_state.counts.shape == (N,)  # ONE state, no streams axis


def test_vmap_over_seeds_and_epsilons_equals_separate_runs():
    run, _, env_params = _setup()
    keys = jax.random.split(jax.random.key(7), 3)
    epsilons = jnp.array([0.05, 0.5], jnp.float32)

    def one(key, eps):
        _, m = run.run(key, EpsilonGreedyParams(epsilon=eps), env_params, T)
        return m["reward"], m["regret"]

    grid = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0)), in_axes=(0, None)))(keys, epsilons)
    single = jax.jit(one)
    for i in range(3):
        for j in range(2):
            reward, regret = single(keys[i], epsilons[j])
            np.testing.assert_array_equal(grid[0][i, j], reward)
            np.testing.assert_allclose(grid[1][i, j], regret, rtol=1e-6, atol=1e-7)
    assert grid[1][:, 0].sum() != grid[1][:, 1].sum()  # epsilons really differ


@pytest.mark.parametrize(
    "policy_params, env_change, match",
    [
        (EpsilonGreedyParams(epsilon=1.5), None, "epsilon"),
        (EpsilonGreedyParams(epsilon=0.1), {"means": jnp.array([0.1, 0.2, 1.3, 0.4, 0.5])}, "means"),
        (EpsilonGreedyParams(epsilon=0.1, initial_value=float("nan")), None, "initial_value"),
    ],
)
def test_bad_params_raise_at_entry_point(tmp_path, policy_params, env_change, match):
    run, _, env_params = _setup()
    if env_change:
        env_params = env_params.replace(**env_change)
    with pytest.raises(ValueError, match=match):
        run_with_checkpoints(run, jax.random.key(0), policy_params, env_params, 4, ckpt_dir=tmp_path, chunk_size=2)
    assert not list((tmp_path).glob("**/*.npz"))  # nothing ran


def test_bad_config_raises():
    sim, _ = make_env("bernoulli", num_arms=N)
    policy = make_epsilon_greedy(PolicySpec(num_items=N))
    for cfg, field in [
        (EngineConfig(mode="both"), "mode"),
        (EngineConfig(num_streams=0), "num_streams"),
        (EngineConfig(slate_size=N + 1), "slate_size"),
    ]:
        with pytest.raises(ValueError, match=field):
            make_run(cfg, policy, sim)


def test_shared_linucb_matches_numpy_ridge_over_all_streams():
    from rec_jax.policies import make_policy

    n, d, s, t_steps = 6, 3, 5, 8
    sim, env_params = make_env("linear", num_items=n, dim=d)
    policy, params = make_policy("linucb", PolicySpec(num_items=n, feature_dim=d))
    run = make_run(EngineConfig(num_streams=s, mode="shared", log_tuples=True), policy, sim)
    state, m = jax.jit(run.run, static_argnums=3)(jax.random.key(2), params, env_params, t_steps)
    log = jax.tree.map(lambda x: np.asarray(x, np.float64), m["log"])
    gram, b = np.zeros((d, d)), np.zeros(d)
    for t in range(t_steps):
        a_inv = np.linalg.inv(gram + params.reg * np.eye(d))  # ridge from the summed updates of steps < t
        for i in range(s):
            x = log["features"][t, i]  # [N, D] context stream i was scored on
            scores = x @ (a_inv @ b) + params.alpha * np.sqrt(np.einsum("nd,de,ne->n", x, a_inv, x))
            chosen = int(log["action"][t, i])
            assert scores[chosen] >= scores.max() - 1e-4, (t, i, scores, chosen)
        xs = log["features"][t, np.arange(s), log["action"][t].astype(int)]  # [S, D]
        gram += xs.T @ xs
        b += xs.T @ log["reward"][t]
    np.testing.assert_allclose(state.policy_state.gram, gram, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.policy_state.b, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(state.policy_state.a_inv, np.linalg.inv(gram + params.reg * np.eye(d)), rtol=1e-4, atol=1e-5)


def test_obs_batching_is_read_from_the_program_and_batching_errors_propagate():
    """Which obs leaves are per-stream is read from the traced program (no vmap probe
    caught by try/except): a leaf computed from the env params alone -- also through
    jit, scan, while and cond -- is held once, one that touches the key or the state
    is per-stream, as JAX's own vmap batches them. A genuine error while batching a
    simulator's step (a custom_vmap rule raising ValueError) is not taken for
    "batched": the obs leaves stay unbatched and the error propagates from the run."""
    from rec_jax.online.obs_batching import obs_axes as _obs_axes, traced_once as _traced_once

    def fn(key, state, params):
        p = params.sum()
        obs = (
            jax.jit(lambda q: q * 2.0)(params),  # params only: held once
            jax.lax.scan(lambda c, _: (c + p, c), jnp.zeros(()), None, length=3)[0],  # held once
            jax.lax.scan(lambda c, _: (c + state, c), p, None, length=3)[0],  # carry meets the state
            jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * p), (0, p))[1],  # held once
            jax.lax.cond(p > 0, lambda: p, lambda: state),  # a branch returns the state
            jax.random.uniform(key),  # the key
        )
        return obs, state

    key1, params = jax.random.key(0), jnp.ones(3)
    replay, shapes = _traced_once(fn, key1, jnp.zeros(()), params)
    keys, states = jax.random.split(key1, 4), jnp.arange(4.0)
    axes = _obs_axes(replay, (0, 0, None), (keys, states, params), shapes[0])
    assert axes == (None, None, 0, None, 0, 0)
    jax.vmap(fn, in_axes=(0, 0, None), out_axes=(axes, 0))(keys, states, params)  # JAX's vmap agrees

    @jax.custom_batching.custom_vmap
    def passthrough(x):
        return x

    @passthrough.def_vmap
    def _broken_rule(axis_size, in_batched, x):
        raise ValueError("broken batching rule of the simulator")

    run, sim, env_params = _setup()
    bad_sim = sim._replace(step=lambda k, st, a, p: sim.step(k, jax.tree.map(passthrough, st), a, p))
    one = lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype)  # noqa: E731
    _, env_state = jax.vmap(sim.reset, in_axes=(0, None))(jax.random.split(key1, S), env_params)
    replay, shapes = _traced_once(bad_sim.step, jax.ShapeDtypeStruct((), key1.dtype), jax.tree.map(one, env_state),
                                  jax.ShapeDtypeStruct((), jnp.int32), env_params)
    args = (jax.random.split(key1, S), env_state, jnp.zeros((S,), jnp.int32), env_params)
    axes = _obs_axes(replay, (0, 0, 0, None), args, shapes[0])
    leaves = jax.tree.leaves(axes, is_leaf=lambda x: x is None)
    assert leaves and all(a is None for a in leaves)  # bernoulli's obs: from the params only
    bad_run = make_run(run.config, make_epsilon_greedy(run.spec), bad_sim)
    with pytest.raises(ValueError, match="broken batching rule"):
        bad_run.run(jax.random.key(1), EpsilonGreedyParams(epsilon=0.2), env_params, 3)
