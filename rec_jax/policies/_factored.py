"""Item features that are one user vector times a shared item table, never formed.

A model-backed policy's features are ``x_n = h * e_n`` (:mod:`rec_jax.policies.model_backed`):
the user state f32[D] times item n's embedding. Formed per stream they are an
f32[S, N, D] array written and read every step (at 1,024 streams and ML-100K's 1,349
items, 350 MB a step: measured as most of an incremental engine step on a 2-core CPU).
:class:`ScaledRows` keeps the two factors; the helpers below compute what the linear
policies need from them, and do exactly what they did before on a dense f32[N, D]:

    matmul(x, w)            x @ w      = table @ (h * w)          w f32[D] or f32[D, M]
    scores_of(w, x)         w @ x^T    = (w * h) @ table^T        w f32[M, D]
    rows(x, items)          x[items]   = h * table[items]         f32[K, D]
    quadratic_forms(x, A)   x_n^T A x_n = e_n^T (h h^T * A) e_n   f32[N]

Under the engine's vmap the table is held once (unbatched) and ``h`` per stream, so
``matmul`` is one GEMM over the streams instead of S matrix-vector products over
S copies of the features.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class ScaledRows:
    """Features f32[N, D] with row n = ``scale * table[n]`` (see module docstring)."""

    scale: jax.Array  # f32[D] the user's vector
    table: jax.Array  # f32[N, D] the items' vectors (shared by all streams)

    @property
    def shape(self) -> tuple[int, int]:
        return self.table.shape


def matmul(features, w: jax.Array) -> jax.Array:
    """``features @ w``: f32[N] for w f32[D], f32[N, M] for w f32[D, M]."""
    if isinstance(features, ScaledRows):
        scale = features.scale if w.ndim == 1 else features.scale[:, None]
        return features.table @ (scale * w)
    return features.astype(jnp.float32) @ w


def scores_of(w: jax.Array, features) -> jax.Array:
    """f32[M, N] ``w @ features^T`` for M weight vectors w f32[M, D]."""
    if isinstance(features, ScaledRows):
        return (w * features.scale) @ features.table.T
    return w @ features.astype(jnp.float32).T


def rows(features, items: jax.Array) -> jax.Array:
    """f32[K, D] the features of ``items`` int32[K]."""
    if isinstance(features, ScaledRows):
        return features.scale * features.table[items]
    return features.astype(jnp.float32)[items]


def quadratic_forms(features, a: jax.Array) -> jax.Array:
    """f32[N] ``x_n^T A x_n`` for a symmetric A f32[D, D]."""
    from rec_jax.policies._ridge import quadratic_forms as dense_forms

    if isinstance(features, ScaledRows):
        s = features.scale
        return dense_forms(features.table, s[:, None] * a * s[None, :])
    return dense_forms(features.astype(jnp.float32), a)


def dense(features) -> jax.Array:
    """f32[N, D] the features themselves (formed)."""
    if isinstance(features, ScaledRows):
        return features.scale * features.table
    return features.astype(jnp.float32)
