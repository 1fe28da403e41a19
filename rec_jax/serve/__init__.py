"""Real-time serving: incremental user states, a bounded user-state cache, a batched
jit-compiled ``recommend`` step with exploration, and an online head updater.

See ``experiments/realtime.py`` for the stream replay that measures all of it.
"""
from rec_jax.serve.incremental import Incremental, make_incremental

__all__ = ["Incremental", "make_incremental"]
