"""Next-item losses over per-position logits.

Column 0 of the logits is the padding id and never a valid prediction.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def full_softmax_ce(logits: jax.Array, targets: jax.Array, loss_mask: jax.Array) -> jax.Array:
    """Mean cross-entropy of the full softmax over all N items at the masked positions.

    logits: f32[B, L, N+1]; targets: int32[B, L]; loss_mask: bool[B, L].  returns f32[].
    """
    logits = logits.at[..., 0].set(-jnp.inf)
    per_position = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    weight = loss_mask.astype(jnp.float32)
    return jnp.sum(per_position * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def sampled_bce(
    key: jax.Array,
    hidden: jax.Array,
    item_embeddings: jax.Array,
    targets: jax.Array,
    loss_mask: jax.Array,
) -> jax.Array:
    """Binary cross-entropy with one uniformly sampled negative per position (Kang & McAuley 2018).

    hidden: f32[B, L, D]; item_embeddings: f32[N+1, D]; targets: int32[B, L];
    loss_mask: bool[B, L].  Negatives are drawn from 1..N (they may hit the
    target with probability 1/N, as in the original implementation).  returns f32[].
    """
    num_items = item_embeddings.shape[0] - 1
    negatives = jax.random.randint(key, targets.shape, 1, num_items + 1)
    pos = jnp.einsum("bld,bld->bl", hidden, item_embeddings[targets])
    neg = jnp.einsum("bld,bld->bl", hidden, item_embeddings[negatives])
    per_position = -jax.nn.log_sigmoid(pos) - jax.nn.log_sigmoid(-neg)
    weight = loss_mask.astype(jnp.float32)
    return jnp.sum(per_position * weight) / jnp.maximum(jnp.sum(weight), 1.0)
