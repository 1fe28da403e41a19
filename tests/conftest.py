"""Shared test setup: JAX on the CPU, and a persistent compilation cache.

The cache (under pytest's cache folder) lets subprocesses and repeated runs of
the suite reuse XLA compilations, which dominate the run time of tiny tests.
"""
import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax_compilation_cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
