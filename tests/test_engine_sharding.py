"""Sharding the streams axis over 8 (forced host) devices changes no number.

Runs in a subprocess so the main pytest process keeps its single CPU device.
"""
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np
    from rec_jax.online import EngineConfig, make_run, shard_streams, streams_mesh
    from rec_jax.policies import make_policy
    from rec_jax.policies.base import PolicySpec
    from rec_jax.sim import make_env

    assert len(jax.devices()) == 8, jax.devices()
    sim, env_params = make_env("linear", num_items=6, dim=3)
    policy, params = make_policy("linucb", PolicySpec(num_items=6, feature_dim=3))
    mesh = streams_mesh()
    plain_runs = {}
    for mode in ("per_stream", "shared"):
        run = make_run(EngineConfig(num_streams=16, mode=mode, log_tuples=True, log_context="none"), policy, sim)
        chunk = jax.jit(run.run_chunk, static_argnums=1)
        state0 = jax.jit(run.init_run)(jax.random.key(5), params, env_params)
        plain_state, plain = chunk(state0, 6)
        plain_runs[mode] = (state0, plain_state, plain)
        sharded0 = shard_streams(state0, mesh, mode)
        assert len(sharded0.env_state.theta.sharding.device_set) == 8
        assert sharded0.env_state.theta.addressable_shards[0].data.shape == (2, 3)  # 16 streams / 8 devices
        sharded_state, sharded = chunk(sharded0, 6)
        # Results stay sharded over the streams axis (GSPMD propagates the input sharding).
        assert sharded["reward"].sharding.shard_shape(sharded["reward"].shape) == (6, 2), sharded["reward"].sharding
        np.testing.assert_array_equal(plain["log"]["action"], sharded["log"]["action"])
        if mode == "per_stream":
            # Streams never interact, but XLA's CPU backend picks its kernels by shape (2 streams a
            # device vs 16), so floats may differ in the last bits (seen on AMD EPYC): a few f32 ulps.
            for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(sharded)):
                np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
            np.testing.assert_allclose(plain_state.policy_state.a_inv, sharded_state.policy_state.a_inv,
                                       rtol=1e-6, atol=1e-6)
        else:  # the merge sums over devices: equal up to float summation order
            for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(sharded)):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(plain_state.policy_state.gram, sharded_state.policy_state.gram, rtol=1e-5)
            assert sharded_state.policy_state.gram.shape == (3, 3)

    # make_run(..., mesh=): each device steps its own streams inside shard_map, with no
    # collective in the step (left to GSPMD, the per-stream program above all-reduces the
    # rare branches' batch-wide ``any``s: three a step, seen in its HLO).
    config = EngineConfig(num_streams=16, log_tuples=True, log_context="none")
    mapped = make_run(config, policy, sim, mesh=mesh)
    state0, plain_state, plain = plain_runs["per_stream"]
    compiled = jax.jit(mapped.run_chunk, static_argnums=1).lower(shard_streams(state0, mesh), 6).compile()
    mapped_hlo = compiled.as_text()
    assert not any(op in mapped_hlo for op in ("all-reduce(", "all-gather(", "all-to-all(", "collective-permute(")), \
        [line for line in mapped_hlo.splitlines() if "all-" in line][:3]
    mapped_state, out = compiled(shard_streams(state0, mesh))
    assert out["reward"].sharding.shard_shape(out["reward"].shape) == (6, 2), out["reward"].sharding
    np.testing.assert_array_equal(plain["log"]["action"], out["log"]["action"])
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(out)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    for a, b in zip(jax.tree.leaves(plain_state), jax.tree.leaves(mapped_state)):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    try:
        make_run(EngineConfig(num_streams=12), policy, sim, mesh=mesh)
        raise AssertionError("12 streams on 8 devices accepted")
    except ValueError as e:
        assert "num_streams=12" in str(e) and "8" in str(e), e
    print("SHARDING_OK")
    """
)


def test_sharded_streams_equal_unsharded():
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=8")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "SHARDING_OK" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_split_slice_equals_the_slice_of_the_full_split():
    import jax
    import jax.numpy as jnp
    import numpy as np

    from rec_jax import fused_threefry
    from rec_jax.online.sharding import split_slice

    keys = (jax.random.key(3), fused_threefry.as_fused(jax.random.key(3)), jax.random.key(3, impl="rbg"))
    sliced = jax.jit(split_slice, static_argnums=(1, 3))
    for key in keys:
        full = jax.random.key_data(jax.random.split(key, 40))
        for start in (0, 8, 30):
            got = jax.random.key_data(sliced(key, 40, jnp.int32(start), 10))
            np.testing.assert_array_equal(got, full[start:start + 10], err_msg=str(key.dtype))
