"""Every registered simulator (``rec_jax.sim.ENV_NAMES``), checked the same way from
what its SimulatorInfo declares: defaults validate, shapes and dtypes, finite rewards,
regret >= 0, determinism, bad params named, slates served or refused.

No list of names here: a simulator added to the registry is covered as it is.
README.md's "Add a simulator" test runs this file on a copy of the package holding
the example (``-k <name>``), so keep the simulator's name in every test id.
"""
import dataclasses
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax import sim as sims
from rec_jax.online import EngineConfig, make_run
from rec_jax.policies import PolicySpec, make_policy

NAMES = sims.ENV_NAMES
STREAMS = 3


def _tiny_sequences(num_users=8, num_items=6, per_user=5):
    """A stand-in for a dataset a factory loads (``SimulatorInfo.data``): two taste groups."""
    rng = np.random.default_rng(0)
    half = num_items // 2
    items = [rng.choice(np.arange(1, half + 1) if u % 2 else np.arange(half + 1, num_items + 1), per_user)
             for u in range(num_users)]
    return types.SimpleNamespace(offsets=np.arange(num_users + 1, dtype=np.int64) * per_user,
                                 items=np.concatenate(items).astype(np.int32), num_users=num_users,
                                 num_items=num_items)


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    """One data folder for the module, so what a factory caches there (a fitted ground truth) is reused."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def build(monkeypatch, data_home):
    """``build(name, **overrides) -> (info, sim, params)`` at the info's tiny test size."""

    def build(name, **overrides):
        info = sims.simulator_info(name)
        if info.data is not None:
            import rec_jax.data as data

            monkeypatch.setenv("REC_JAX_DATA", str(data_home))
            monkeypatch.setattr(data, "load", lambda *a, **k: _tiny_sequences())
        sim, params = sims.make_env(name, **{**info.test_kwargs, **overrides})
        return info, sim, params

    return build


def _spec(sim, slate_size=1):
    return sims.SimSpec(sim.num_items, sim.feature_dim, slate_size)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_validate_and_one_step_is_well_formed_and_deterministic(name, build):
    info, sim, params = build(name)
    assert isinstance(info, sims.SimulatorInfo) and isinstance(params, info.params) and sim.name == name
    sims.validate_params(name, params, _spec(sim))
    n, d = sim.num_items, sim.feature_dim

    @jax.jit
    def one_step(key):
        reset_key, action_key, step_key = jax.random.split(key, 3)
        obs, state = jax.vmap(sim.reset, in_axes=(0, None))(jax.random.split(reset_key, STREAMS), params)
        actions = jax.random.randint(action_key, (STREAMS,), 0, n).astype(jnp.int32)
        obs2, _, out = jax.vmap(sim.step, in_axes=(0, 0, 0, None))(jax.random.split(step_key, STREAMS), state,
                                                                    actions, params)
        return obs, obs2, out

    first = jax.device_get(one_step(jax.random.key(0)))
    again = jax.device_get(one_step(jax.random.key(0)))
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again)):
        np.testing.assert_array_equal(a, b)  # same key, same output
    obs, obs2, out = first
    for o in (obs, obs2):
        assert o.features.shape == (STREAMS, n, d) and o.features.dtype == np.float32
        assert o.available.shape == (STREAMS, n) and o.available.dtype == np.bool_
        assert o.scores.shape == (STREAMS, n) and o.scores.dtype == np.float32
    for field in ("reward", "click", "expected_reward", "best_expected_reward"):
        value = getattr(out, field)
        assert value.shape == (STREAMS,) and value.dtype == np.float32 and np.all(np.isfinite(value)), field
    assert out.slot_rewards.shape == (STREAMS, 1) and np.all(np.isfinite(out.slot_rewards))
    np.testing.assert_allclose(out.reward, out.slot_rewards.sum(1), rtol=1e-6)
    assert np.all(out.best_expected_reward - out.expected_reward >= -1e-6)  # regret >= 0 on random actions


@pytest.mark.parametrize("name", NAMES)
def test_bad_params_give_one_line_naming_the_field(name, build):
    info, sim, params = build(name)
    assert info.bad_params, f"SimulatorInfo of {name} declares no bad_params example"
    policy, policy_params = make_policy("random", PolicySpec(sim.num_items, sim.feature_dim))
    run = make_run(EngineConfig(num_streams=2), policy, sim)
    run.validate(policy_params, params)  # the engine finds the validator through sim.name
    for field, value in info.bad_params:
        bad = params.replace(**{field: value})
        for check in (lambda: sims.validate_params(name, bad, _spec(sim)),
                      lambda: sims.validate_params(bad),  # found by the params class
                      lambda: run.validate(policy_params, bad)):
            with pytest.raises(ValueError) as err:
                check()
            assert field in str(err.value) and "\n" not in str(err.value), str(err.value)


@pytest.mark.parametrize("name", NAMES)
def test_slates_are_served_with_regret_against_the_best_slate_or_refused(name, build):
    k = 2
    info = sims.simulator_info(name)
    info, sim, params = build(name, **({"slate_size": k} if info.slates == "fixed" else {}))
    policy, policy_params = make_policy("random", PolicySpec(sim.num_items, sim.feature_dim, slate_size=k))
    run = make_run(EngineConfig(num_streams=2, slate_size=k), policy, sim)
    if info.slates == "single":
        with pytest.raises(ValueError, match=rf"{name}.*single") as err:
            run.validate(policy_params, params)
        assert "\n" not in str(err.value)
        return
    run.validate(policy_params, params)
    _, m = jax.device_get(jax.jit(run.run, static_argnums=3)(jax.random.key(1), policy_params, params, 3))
    assert m["reward"].shape == (3, 2) and np.all(np.isfinite(m["reward"]))
    assert np.all(m["regret"] >= -1e-6) and np.all(np.isfinite(m["regret"]))


def test_a_single_action_simulator_is_refused_slates_in_one_line(build, monkeypatch):
    """What ``slates="single"`` does, on a registered simulator declared single-action."""
    _, sim, params = build("bernoulli")
    single = dataclasses.replace(sims.simulator_info("bernoulli"), slates="single")
    monkeypatch.setattr(sims, "simulator_info", lambda name: single)
    policy, policy_params = make_policy("random", PolicySpec(sim.num_items, sim.feature_dim, slate_size=2))
    with pytest.raises(ValueError, match=r"'bernoulli' serves single actions only.*slate_size=2") as err:
        make_run(EngineConfig(num_streams=2, slate_size=2), policy, sim).validate(policy_params, params)
    assert "\n" not in str(err.value)
    policy1, policy_params1 = make_policy("random", PolicySpec(sim.num_items, sim.feature_dim))
    make_run(EngineConfig(num_streams=2), policy1, sim).validate(policy_params1, params)  # K = 1 is fine


def test_unknown_name_lists_the_valid_ones():
    for call in (lambda: sims.make_env("nope"), lambda: sims.simulator_info("nope"),
                 lambda: sims.validate_params("nope", None)):
        with pytest.raises(ValueError) as err:
            call()
        assert "'nope'" in str(err.value) and all(n in str(err.value) for n in NAMES)
