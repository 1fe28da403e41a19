"""``lax.top_k`` for code that runs inside a loop (the online engine's ``lax.scan``), and the
order-preserving int32 keys and sliced row reductions it is built from.

Why: XLA:CPU turns ``lax.top_k`` into its fast TopK library call only outside loops. Inside
a ``while`` body it stays a full comparator ``sort`` of every row: in the LinTS engine
(256 streams x 128 Monte Carlo draws x 100 items) that sort took 300 ms a step, against
6.6 ms for the same top_k outside a loop (measured with ``jax.profiler``). :func:`top_k`
returns the same values and indices as ``lax.top_k`` (descending in the IEEE total order
that lax.top_k uses: -NaN < -inf < ... < -0.0 < +0.0 < ... < +inf < +NaN; equal keys
in index order) from ``k`` rounds of two row reductions, for ``k <= MAX_ROUNDS``; larger
``k`` falls back to ``lax.top_k``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

# Up to this many picks, :func:`top_k` takes k rounds of reductions; above, lax.top_k.
MAX_ROUNDS = 16

_FLIP = 0x7FFFFFFF
_LOWEST_KEY = -(2**31)


def total_order_key(values: jax.Array) -> jax.Array:
    """int32 keys of f32 ``values`` whose integer order is the IEEE total order of the floats:
    bits i for i >= 0, i ^ 0x7FFFFFFF below (a monotone map, its own inverse). -0.0 keys
    below +0.0 and NaNs beyond the infinities, by sign, as ``lax.top_k`` and ``lax.sort``
    order them."""
    i = jax.lax.bitcast_convert_type(values.astype(jnp.float32), jnp.int32)
    return jnp.where(i < 0, i ^ jnp.int32(_FLIP), i)


def from_total_order_key(key: jax.Array) -> jax.Array:
    """The f32 values of int32 ``key`` (the inverse of :func:`total_order_key`)."""
    return jax.lax.bitcast_convert_type(jnp.where(key < 0, key ^ jnp.int32(_FLIP), key), jnp.float32)


def chunked(reduce, combine, x: jax.Array, width: int = 32) -> jax.Array:
    """``reduce(x, axis=-1)`` as one reduction per static slice of at most ``width`` items,
    combined elementwise (``combine``: the reduction's binary op).

    XLA:CPU rewrites a row reduction longer than 32 into a reduce-window that does not fuse
    its producer, so the reduced values are first written out in full; slices of at most
    32 are reduced in the fusion that computes them (LinUCB engine, N = 100, 4,096 streams:
    2.2M -> 2.55M user-steps/s; 16, 20 or 50 wide were slower, 25 the same)."""
    n = x.shape[-1]
    if n <= width:
        return reduce(x, axis=-1)
    parts = [reduce(x[..., i:i + width], axis=-1) for i in range(0, n, width)]
    out = parts[0]
    for p in parts[1:]:
        out = combine(out, p)
    return out


def top_k(values: jax.Array, k: int) -> tuple[jax.Array, jax.Array]:
    """(values f32[..., k], indices int32[..., k]) of the ``k`` largest entries of ``values``
    f32[..., N] along the last axis: what ``lax.top_k(values, k)`` returns, ties and NaNs
    included (module docstring). Each round takes the max of the keys not yet picked, then
    the first index holding it."""
    n = values.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"top_k: expected 1 <= k <= {n} (the last axis), got k={k}")
    if k > MAX_ROUNDS:
        return jax.lax.top_k(values, k)
    key = total_order_key(values)
    iota = jax.lax.broadcasted_iota(jnp.int32, key.shape, key.ndim - 1)
    taken = jnp.zeros(key.shape, bool)
    picks = []
    for _ in range(k):
        best = chunked(jnp.max, jnp.maximum, jnp.where(taken, jnp.int32(_LOWEST_KEY), key))
        # not yet picked and equal to the best: a picked item's key can equal it only when
        # every key left is the lowest one, so the mask, not the key, decides
        here = ~taken & (key == best[..., None])
        pick = chunked(jnp.min, jnp.minimum, jnp.where(here, iota, n))
        taken = taken | (iota == pick[..., None])
        picks.append(pick)
    indices = jnp.stack(picks, axis=-1)
    return jnp.take_along_axis(values, indices, axis=-1), indices
