"""Exact resume: a run stopped after two chunks and resumed in a fresh call ends
bit-identical (state and every metric) to an uninterrupted run. (That chunking
itself changes nothing is tested in test_engine.py.)"""
import jax
import numpy as np

from rec_jax import checkpoint
from rec_jax.online import EngineConfig, jit_run_chunk, make_run, run_with_checkpoints
from rec_jax.online.checkpointing import to_saveable
from rec_jax.policies import make_policy
from rec_jax.policies.base import PolicySpec
from rec_jax.sim import make_env

T, CHUNK = 12, 4  # three chunks of one length: one compile


def _leaves(state):
    return [np.asarray(x) for x in jax.tree.leaves(to_saveable(state))]


def test_killed_run_resumes_bit_identical(tmp_path):
    sim, env_params = make_env("linear", num_items=6, dim=3)
    spec = PolicySpec(num_items=6, feature_dim=3)
    policy, params = make_policy("linucb", spec)
    run = make_run(EngineConfig(num_streams=3, log_tuples=True, log_context="none"), policy, sim)
    key = jax.random.key(11)
    chunk_jit = jit_run_chunk(run)

    full_state, full = run_with_checkpoints(
        run, key, params, env_params, T, ckpt_dir=tmp_path / "a", chunk_size=CHUNK, run_chunk_jit=chunk_jit
    )

    # "Crash" after two chunks ...
    part_state, part = run_with_checkpoints(
        run, key, params, env_params, T, ckpt_dir=tmp_path / "b", chunk_size=CHUNK, max_chunks=2,
        run_chunk_jit=chunk_jit,
    )
    assert int(part_state.step) == 2 * CHUNK == checkpoint.latest_step(tmp_path / "b" / "state")
    assert part["reward"].shape == (2 * CHUNK, 3)
    # ... and resume in a fresh call (new jit, nothing in memory but the folder).
    resumed_state, resumed = run_with_checkpoints(
        run, key, params, env_params, T, ckpt_dir=tmp_path / "b", chunk_size=CHUNK
    )
    assert int(resumed_state.step) == T
    for a, b in zip(_leaves(full_state), _leaves(resumed_state), strict=True):
        np.testing.assert_array_equal(a, b)
    for k in ("reward", "regret", "click", "propensity"):
        np.testing.assert_array_equal(full[k], resumed[k])
    np.testing.assert_array_equal(full["log"]["action"], resumed["log"]["action"])
    np.testing.assert_array_equal(part["reward"], resumed["reward"][: 2 * CHUNK])

