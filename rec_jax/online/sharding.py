"""Sharding the engine's streams axis over devices with ``jax.sharding``.

:func:`shard_streams` places the leading (streams) axis of every per-stream leaf of a
:class:`rec_jax.online.engine.RunState` on a 1-D ``Mesh`` axis named ``"streams"``;
the algorithm code is unchanged. A run built with ``make_run(..., mesh=mesh)`` steps
each device's streams inside ``jax.shard_map`` (per-stream mode), drawing each stream's
keys from :func:`split_slice`; without it XLA partitions the program (GSPMD) and inserts
the (shared-mode) reductions.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rec_jax.policies.base import Observation

STREAMS_AXIS = "streams"


def split_slice(key: jax.Array, total: int, start: jax.Array, n: int) -> jax.Array:
    """``jax.random.split(key, total)[start:start + n]`` (``start`` may be traced), the
    per-stream keys of one device's streams.

    For threefry keys in partitionable mode (JAX's default; also
    :mod:`rec_jax.fused_threefry`'s) the i-th split key is ``fold_in(key, i)``, the
    hash of counter i: only the n keys are hashed. Other implementations split all
    ``total`` and slice."""
    from rec_jax import fused_threefry

    threefry = str(jax.random.key_impl(key)) == "threefry2x32" or fused_threefry.is_fused(key)
    if jax.config.jax_threefry_partitionable and threefry and total < 2**32:
        index = jnp.asarray(start, jnp.uint32) + jnp.arange(n, dtype=jnp.uint32)
        return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(key, index)
    return jax.lax.dynamic_slice_in_dim(jax.random.split(key, total), start, n)


def streams_mesh(devices=None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: all) with the axis named ``"streams"``."""
    devices = jax.devices() if devices is None else devices
    return Mesh(list(devices), (STREAMS_AXIS,))


def stream_shardings(run_state, mesh: Mesh, mode: str = "per_stream") -> Any:
    """A RunState-shaped pytree of ``NamedSharding``: per-stream leaves split on the
    leading axis over ``mesh``'s ``"streams"`` axis, everything else replicated."""
    split = NamedSharding(mesh, PartitionSpec(STREAMS_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())

    def place(tree, sharding):
        return jax.tree.map(lambda _: sharding, tree)

    # Obs leaves held once for all streams (see RunState.obs) have the per-stream rank.
    obs = run_state.obs
    obs_sharding = Observation(
        features=split if jnp.ndim(obs.features) > 2 else replicated,
        available=split if jnp.ndim(obs.available) > 1 else replicated,
        scores=split if jnp.ndim(obs.scores) > 1 else replicated,
        history=None if obs.history is None else split,
        history_count=None if obs.history_count is None else split,
    ) if isinstance(obs, Observation) else place(obs, split)

    return run_state.replace(
        policy_state=place(run_state.policy_state, replicated if mode == "shared" else split),
        env_state=place(run_state.env_state, split),
        obs=obs_sharding,
        key=replicated,
        step=replicated,
        policy_params=place(run_state.policy_params, replicated),
        env_params=place(run_state.env_params, replicated),
        # The per-stream view cache (rec_jax.online.engine.ViewCache) is split like the
        # env state; the params it was built from are one copy.
        view_state=None if run_state.view_state is None else run_state.view_state.replace(
            states=place(run_state.view_state.states, split),
            built_with=place(run_state.view_state.built_with, replicated)),
    )


def shard_streams(run_state, mesh: Mesh, mode: str = "per_stream") -> Any:
    """Place the streams axis of ``run_state`` on ``mesh`` (see :func:`stream_shardings`).

    The number of streams must be a multiple of the mesh size. A jitted
    ``run_chunk`` then runs sharded with no change to the algorithm code.
    """
    num_devices = mesh.shape[STREAMS_AXIS]
    num_streams = jax.tree.leaves(run_state.env_state)[0].shape[0] if jax.tree.leaves(run_state.env_state) else None
    if num_streams is not None and num_streams % num_devices:
        raise ValueError(f"shard_streams: num_streams={num_streams} is not a multiple of the {num_devices} devices")
    return jax.device_put(run_state, stream_shardings(run_state, mesh, mode))
