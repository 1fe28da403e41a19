"""PBT (rec_jax.adapt.pbt): exploit/explore keeps the population size and copies state
exactly; the whole population runs in one jit."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.adapt.pbt import PBTConfig, exploit_explore, make_pbt_run, num_replaced
from rec_jax.policies.epsilon_greedy import EpsilonGreedyParams


def test_exploit_copies_state_exactly_and_explore_perturbs_only_copies():
    m = 12
    rng = np.random.default_rng(0)
    state = {"counts": jnp.asarray(rng.normal(size=(m, 5)), jnp.float32),
             "t": jnp.arange(m, dtype=jnp.int32)}
    params = EpsilonGreedyParams(epsilon=jnp.asarray(rng.uniform(0.05, 0.5, m), jnp.float32),
                                 decay=jnp.asarray(rng.uniform(size=m), jnp.float32),
                                 initial_value=jnp.zeros((m,), jnp.float32))
    scores = jnp.asarray(rng.permutation(m), jnp.float32)
    config = PBTConfig(fields=("epsilon",), low=(0.0,), high=(0.55,), fraction=0.25)
    new_state, new_params, parent = jax.jit(exploit_explore, static_argnums=4)(
        jax.random.key(3), state, params, scores, config)
    parent = np.asarray(parent)
    order = np.argsort(np.asarray(scores))  # NumPy ranking, independent of the jitted one
    q = num_replaced(m, 0.25)
    assert q == 3
    worst, best = set(order[:q].tolist()), set(order[-q:].tolist())
    for leaf_old, leaf_new in zip(jax.tree.leaves(state), jax.tree.leaves(new_state)):
        assert leaf_new.shape == leaf_old.shape  # population size kept
    for i in range(m):
        src = parent[i]
        if i in worst:
            assert src in best
        else:
            assert src == i
        np.testing.assert_array_equal(np.asarray(new_state["counts"][i]), np.asarray(state["counts"][src]))
        assert int(new_state["t"][i]) == int(state["t"][src])
        np.testing.assert_array_equal(np.asarray(new_params.decay[i]), np.asarray(params.decay[src]))  # not tuned
        eps_src, eps_new = float(params.epsilon[src]), float(new_params.epsilon[i])
        if i in worst:
            assert any(np.isclose(eps_new, min(eps_src * f, 0.55), rtol=1e-6) for f in (0.8, 1.25))
        else:
            assert eps_new == eps_src


def test_pbt_run_keeps_population_and_runs_in_one_jit():
    from rec_jax.online import EngineConfig, make_run
    from rec_jax.policies import make_policy
    from rec_jax.policies.base import PolicySpec
    from rec_jax.sim import make_env

    sim, env_params = make_env("bernoulli", num_arms=4)
    spec = PolicySpec(num_items=4)
    policy, _ = make_policy("epsilon_greedy", spec)
    engine = make_run(EngineConfig(num_streams=2), policy, sim, spec=spec)
    m, interval, rounds = 4, 5, 3
    pbt = make_pbt_run(engine, PBTConfig(interval=interval, same_noise=True))
    pop = EpsilonGreedyParams(epsilon=jnp.array([0.5, 0.5, 0.1, 1.0]), decay=jnp.zeros(m), initial_value=jnp.zeros(m))
    run = jax.jit(pbt, static_argnums=3)
    final, out = run(jax.random.key(0), pop, env_params, rounds)
    assert out["reward"].shape == (rounds * interval, m)
    assert out["params/epsilon"].shape == (rounds, m) and out["parent"].shape == (rounds, m)
    assert final.policy_state.counts.shape == (m, 2, 4)  # [M, S, N]
    assert int(final.step[0]) == rounds * interval
    # Every stream update adds one count, copies included: counts sum to the steps taken.
    np.testing.assert_allclose(np.asarray(final.policy_state.counts.sum(axis=-1)), rounds * interval)
    # Common random numbers: members 0 and 1 (same params) act and are rewarded identically
    # until the first exploit; member 3 (epsilon 1) picks other arms (other regrets).
    for what in ("reward", "regret"):
        x = np.asarray(out[what])
        np.testing.assert_array_equal(x[:interval, 0], x[:interval, 1])
    regret = np.asarray(out["regret"])
    assert not np.array_equal(regret[:interval, 0], regret[:interval, 3])
    final2, _ = run(jax.random.key(0), pop, env_params, rounds)
    assert run._cache_size() == 1  # second call: no retrace
    np.testing.assert_array_equal(np.asarray(final2.policy_state.counts), np.asarray(final.policy_state.counts))


def test_bad_config_is_a_one_line_error():
    with pytest.raises(ValueError, match="PBTConfig.fraction"):
        PBTConfig(fraction=0.9).validate()
    with pytest.raises(ValueError, match="PBTConfig.fields"):
        PBTConfig(fields=("epsilon", "decay"), low=(0.0,), high=(1.0,)).validate()
