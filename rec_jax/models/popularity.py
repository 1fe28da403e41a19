"""Most-popular baseline: every user gets the same scores, the item's training count."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rec_jax.models.base import mask_pad_column


def fit_most_popular(items, num_items: int) -> jax.Array:
    """Item counts. items: int array of any shape (sequences or a flat list), 0 = pad.

    Returns counts: f32[N+1] with counts[0] = 0 (padding is not counted).
    """
    items = jnp.asarray(items).reshape(-1)
    counts = jnp.bincount(items, length=num_items + 1).astype(jnp.float32)
    return counts.at[0].set(0.0)


def most_popular_scores(counts: jax.Array, num_rows: int) -> jax.Array:
    """The popularity scores for ``num_rows`` users: f32[num_rows, N+1], column 0 masked."""
    counts = jnp.asarray(counts, jnp.float32)
    return mask_pad_column(jnp.broadcast_to(counts, (num_rows, counts.shape[0])))
