"""The fused threefry keys draw exactly JAX's threefry bits (rec_jax.fused_threefry)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.fused_threefry import as_fused, key_dtype_like


def _data(k):
    return np.asarray(jax.random.key_data(k))


def test_every_primitive_matches_jax_threefry_under_jit_and_vmap():
    key = jax.random.key(20261206)
    fused = as_fused(key)
    assert fused.dtype != key.dtype and key_dtype_like(key.dtype) == fused.dtype
    np.testing.assert_array_equal(_data(fused), _data(key))

    def draws(k):
        a, b = jax.random.split(k)
        c = jax.random.fold_in(b, 77)
        return {
            "split": jax.random.key_data(jax.random.split(a, (3, 4))),
            "fold_in": jax.random.key_data(c),
            "bits8": jax.random.bits(c, (5,), jnp.uint8),
            "bits16": jax.random.bits(c, (2, 3), jnp.uint16),
            "bits32": jax.random.bits(c, (7,), jnp.uint32),
            "uniform": jax.random.uniform(a, (1001,)),  # odd count: JAX pads its counters
            "normal": jax.random.normal(b, (4, 3)),
            "scalar": jax.random.uniform(c),
        }

    # one program per key type: one key unbatched, and a [2, 3] batch under two vmaps
    both = jax.jit(lambda k, ks: (draws(k), jax.vmap(jax.vmap(draws))(ks)))
    batch = jax.random.split(key, (2, 3))
    want, got = both(key, batch), both(as_fused(key), as_fused(batch))
    jax.tree.map(np.testing.assert_array_equal, got, want)


def test_draws_past_the_32_bit_counters_fall_back_to_jax_bits(monkeypatch):
    from rec_jax import fused_threefry

    monkeypatch.setattr(fused_threefry, "_MAX_DRAWS", 5)  # so that 6 draws take the 64-bit path
    key = jax.random.key(7)
    for draw in (lambda k: jax.random.uniform(k, (6,)), lambda k: jax.random.key_data(jax.random.split(k, 6))):
        np.testing.assert_array_equal(np.asarray(draw(as_fused(key))), np.asarray(draw(key)))


def test_other_implementations_pass_through_and_bad_input_is_named():
    rbg = jax.random.key(0, impl="rbg")
    assert as_fused(rbg).dtype == rbg.dtype
    with pytest.raises(TypeError, match="typed PRNG key"):
        as_fused(jnp.zeros((2,), jnp.uint32))


def test_engine_draws_the_same_with_and_without_the_fused_keys(monkeypatch):
    from rec_jax.online import EngineConfig, engine, make_run
    from rec_jax.policies import make_policy
    from rec_jax.policies.base import PolicySpec
    from rec_jax.sim import make_env

    sim, env_params = make_env("linear", num_items=8, dim=4, seed=0)
    spec = PolicySpec(num_items=8, feature_dim=4)
    policy, params = make_policy("epsilon_greedy", spec)
    streams = engine.FUSED_PRNG_MIN_STREAMS

    def run(threshold):
        monkeypatch.setattr(engine, "FUSED_PRNG_MIN_STREAMS", threshold)
        run_ = make_run(EngineConfig(num_streams=streams), policy, sim, spec=spec)
        state, metrics = jax.jit(run_.run, static_argnums=3)(jax.random.key(5), params, env_params, 3)
        return jax.tree.map(lambda x: np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(
            x.dtype, jax.dtypes.prng_key) else x), (state, metrics["reward"]))

    fused, plain = run(streams), run(streams + 1)
    jax.tree.map(np.testing.assert_array_equal, fused, plain)


@pytest.mark.slow
def test_every_registered_policy_draws_the_same_with_fused_keys(monkeypatch):
    """A policy whose sampler refuses the fused keys (jax.random.poisson did) fails only from
    FUSED_PRNG_MIN_STREAMS streams on, which the fast tests do not reach."""
    from rec_jax.online import EngineConfig, engine, make_run
    from rec_jax.policies import make_policy, policy_names
    from rec_jax.policies.base import PolicySpec
    from rec_jax.sim import make_env

    sim, env_params = make_env("linear", num_items=12, dim=4, seed=0)
    spec = PolicySpec(num_items=12, feature_dim=4)
    streams = engine.FUSED_PRNG_MIN_STREAMS
    for name in policy_names():
        policy, params = make_policy(name, spec)
        rewards = []
        for threshold in (streams, streams + 1):  # fused, then JAX's own threefry
            monkeypatch.setattr(engine, "FUSED_PRNG_MIN_STREAMS", threshold)
            run = make_run(EngineConfig(num_streams=streams), policy, sim, spec=spec)
            _, metrics = jax.jit(run.run, static_argnums=3)(jax.random.key(1), params, env_params, 2)
            rewards.append(np.asarray(metrics["reward"]))
        np.testing.assert_array_equal(rewards[0], rewards[1], err_msg=name)
