"""Bootstrap over logged rounds, vmapped over resamples (pure JAX)."""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def resample_indices(key: jax.Array, n: int, num_resamples: int) -> jax.Array:
    """i32[B, n] row indices drawn with replacement (one bootstrap log per row)."""
    return jax.random.randint(key, (num_resamples, n), 0, n)


def bootstrap(fn: Callable[[Any], Any], data: Any, idx: jax.Array) -> Any:
    """``fn`` on every resample: vmap over ``idx`` i32[B, n] of ``fn(tree_map(x[idx_b]))``.

    ``data`` is a pytree whose leaves all have the rounds axis first.
    """
    return jax.vmap(lambda i: fn(jax.tree.map(lambda x: jnp.asarray(x)[i], data)))(idx)


def percentile_ci(samples: jax.Array, level: float = 0.95, axis: int = 0) -> tuple[jax.Array, jax.Array]:
    """(lo, hi) percentile interval of bootstrap ``samples`` along ``axis``."""
    tail = (1.0 - level) / 2.0 * 100.0
    return (jnp.percentile(samples, tail, axis=axis), jnp.percentile(samples, 100.0 - tail, axis=axis))
