"""Shared test setup: JAX on the CPU, 64-bit off, deterministic."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
