"""Multi-process JAX (``jax.distributed``) for the engine, the PBT population and checkpoints.

    from rec_jax import distributed
    distributed.initialize()                      # no-op in one process
    mesh = distributed.streams_mesh()             # every process's devices
    state = distributed.init_sharded(run, key, policy_params, env_params, mesh)
    state, metrics = jax.jit(run.run_chunk, static_argnums=1)(state, T)
    metrics = distributed.gather(metrics)         # host arrays, on every process

Nothing in algorithm code changes: the engine and PBT are the one-process code,
given global arrays. See the README section "Several processes and hosts".
"""
from rec_jax.distributed.arrays import (from_process_local, gather, global_mesh, process_rows,
                                        replicated)
from rec_jax.distributed.engine import init_sharded, state_shardings, streams_mesh
from rec_jax.distributed.runtime import free_port, initialize, is_main

__all__ = ["initialize", "is_main", "free_port", "global_mesh", "process_rows", "from_process_local", "replicated",
           "gather", "streams_mesh", "init_sharded", "state_shardings"]
