"""Next-item losses over per-position logits.

Column 0 of the logits is the padding id and never a valid prediction.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def full_softmax_ce(logits: jax.Array, targets: jax.Array, loss_mask: jax.Array) -> jax.Array:
    """Mean cross-entropy of the full softmax over all N items at the masked positions.

    logits: f32[B, L, N+1]; targets: int32[B, L]; loss_mask: bool[B, L].  returns f32[].
    """
    num_classes = logits.shape[-1]
    # Dense form log-softmax(z)[t] = <one_hot(t), z> - logsumexp(z): its gradient is
    # softmax - one_hot, all elementwise. The gather form (optax's integer-label CE)
    # differentiates into a scatter over f32[B, L, N+1], which is serial on XLA:CPU
    # and cost about half of a SASRec training step there.
    not_pad = jnp.arange(num_classes) > 0
    logits = jnp.where(not_pad, logits, -jnp.inf)
    target_logit = jnp.sum(jnp.where(jax.nn.one_hot(targets, num_classes, dtype=bool), logits, 0.0), axis=-1)
    per_position = jax.nn.logsumexp(logits, axis=-1) - target_logit
    # A padding target has target_logit = -inf: select (not multiply) so inf * 0 never
    # makes a NaN (XLA happened to fold it away under jit, but not eagerly or under vmap).
    per_position = jnp.where(loss_mask, per_position, 0.0)
    weight = loss_mask.astype(jnp.float32)
    return jnp.sum(per_position * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def compact_softmax_ce(score, hidden, targets, loss_mask, capacity: int) -> jax.Array:
    """:func:`full_softmax_ce` with the item scores computed at the loss positions only.

    score: ``h f32[K, D] -> logits f32[K, N+1]``; hidden: f32[B, L, D]; targets: int32[B, L];
    loss_mask: bool[B, L]; capacity: the number of positions scored (static).  returns f32[].

    Scoring all N items is most of a training step, and only the positions in the loss
    need it (about half of a SASRec window, a fifth of a BERT4Rec one). The first
    ``capacity`` loss positions are gathered and scored; a batch with more of them takes
    the dense path instead (``lax.cond`` runs one branch), so the value is exact either way.
    """
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_targets, flat_mask = targets.reshape(-1), loss_mask.reshape(-1)
    count = jnp.sum(flat_mask)

    def gathered(_):
        (index,) = jnp.nonzero(flat_mask, size=capacity, fill_value=0)
        used = jnp.arange(capacity) < count
        return full_softmax_ce(score(flat_hidden[index]), flat_targets[index], used)

    def dense(_):
        return full_softmax_ce(score(hidden), targets, loss_mask)

    return jax.lax.cond(count <= capacity, gathered, dense, None)


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
