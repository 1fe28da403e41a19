"""Online updates of the output head from the clicks of the stream.

Every M events the serving loop calls ``update(state, feedback)``: a few Adam steps
of full-softmax cross-entropy on the buffered pairs (user vector that scored an
event, the item that actually came), over the head's item table and bias
(:class:`rec_jax.serve.recommend.Head`). The encoder is NOT updated online: that is
the design choice that keeps every cached K/V ring exact after an update (updating
the encoder would make every cached state stale, to be rebuilt from history or
tolerated). What is learned online is what drifts fastest in a replay: which items
are being consumed now, and items the static model never saw.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rec_jax.models.base import tied_scores


class HeadUpdater(NamedTuple):
    init: Any  # (head) -> (head, opt_state)
    update: Any  # jitted ((head, opt_state), feedback) -> ((head, opt_state), loss f32[])


def head_loss(head, h, item, valid, num_items: int):
    """Mean full-softmax CE of ``item int32[M]`` under ``h f32[M, D]`` at ``valid bool[M]``."""
    logits = tied_scores(h, head.table, num_items) + head.bias
    nll = jax.nn.logsumexp(logits, axis=-1) - jnp.take_along_axis(logits, item[:, None], axis=-1)[:, 0]
    return jnp.sum(jnp.where(valid, nll, 0.0)) / jnp.maximum(jnp.sum(valid), 1)


def make_head_updater(num_items: int, learning_rate: float, steps: int = 1) -> HeadUpdater:
    if learning_rate <= 0 or steps < 1:
        raise ValueError(f"make_head_updater: learning_rate must be > 0 and steps >= 1, got {learning_rate}, {steps}")
    tx = optax.adam(learning_rate)

    def init(head):
        return head, tx.init(head)

    def update(state, feedback):
        def one(carry, _):
            head, opt_state = carry
            loss, grads = jax.value_and_grad(head_loss)(head, feedback.h, feedback.item, feedback.valid, num_items)
            updates, opt_state = tx.update(grads, opt_state, head)
            return (optax.apply_updates(head, updates), opt_state), loss

        state, losses = jax.lax.scan(one, state, None, length=steps)
        return state, losses[0]

    return HeadUpdater(init=init, update=jax.jit(update))
