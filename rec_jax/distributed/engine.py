"""The online engine on a global mesh: each process builds and steps only its own streams.

:func:`init_sharded` is ``run.init_run`` jitted with the engine's own stream
shardings (:func:`rec_jax.online.stream_shardings`) as its output shardings, so
a process computes the simulator resets and policy states of the streams on its
devices only (the per-stream keys are ``split(key, S)``, and threefry keys are
partitionable: the same numbers as the unsharded run, with no process holding all
``S`` streams). ``run.run_chunk`` then runs on that state unchanged.
"""
from __future__ import annotations

from typing import Any

import jax
from jax.sharding import Mesh

from rec_jax.online.engine import Run, RunState
from rec_jax.online.sharding import STREAMS_AXIS, stream_shardings


def streams_mesh() -> Mesh:
    """A 1-D ``"streams"`` mesh over every process's devices (process-major)."""
    from rec_jax.distributed.arrays import global_mesh

    return global_mesh(STREAMS_AXIS)


def state_shardings(run: Run, key: jax.Array, policy_params: Any, env_params: Any, mesh: Mesh) -> Any:
    """The RunState-shaped pytree of ``NamedSharding`` a run on ``mesh`` uses."""
    abstract = jax.eval_shape(run.init_run, key, policy_params, env_params)
    return stream_shardings(abstract, mesh, run.config.mode)


def init_sharded(run: Run, key: jax.Array, policy_params: Any, env_params: Any, mesh: Mesh) -> RunState:
    """``run.init_run`` with its per-stream leaves born split over ``mesh`` (S a multiple of its size)."""
    size = mesh.shape[STREAMS_AXIS]
    if run.config.num_streams % size:
        raise ValueError(f"init_sharded: num_streams={run.config.num_streams} is not a multiple of the {size} "
                         f"devices of the mesh")
    shardings = state_shardings(run, key, policy_params, env_params, mesh)
    return jax.jit(run.init_run, out_shardings=shardings)(key, policy_params, env_params)
