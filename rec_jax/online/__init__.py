"""The online engine: scan over time, vmap over streams (see ``engine.py``)."""
from rec_jax.online.checkpointing import jit_run_chunk, run_with_checkpoints
from rec_jax.online.engine import EngineConfig, Run, RunState, make_run
from rec_jax.online.sharding import shard_streams, stream_shardings, streams_mesh

__all__ = [
    "EngineConfig",
    "Run",
    "RunState",
    "make_run",
    "shard_streams",
    "stream_shardings",
    "streams_mesh",
    "jit_run_chunk",
    "run_with_checkpoints",
]
