"""Full-ranking metrics: HR@K, NDCG@K and MRR@K from the target's rank.

The rank of the target is the number of items scored strictly higher PLUS the
number of other items scored exactly the same (ties count against the target),
so a model that scores everything alike gets rank N-1, not 0. This is the
pessimistic convention; it never flatters a baseline with many ties (popularity).
NaN scores follow the same rule: a NaN competitor counts as scored above the target,
and a target whose own score is NaN ranks last (N columns - 1), so a model that
produces NaNs can never score a hit.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

DEFAULT_KS = (10, 20)


def target_rank(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """0-based pessimistic rank of each target.

    logits:  f32[B, N+1] scores (excluded items already at -inf).
    targets: int32[B] target item ids.
    returns: int32[B]; rank 0 means the target is strictly the top item.
    """
    target_score = jnp.take_along_axis(logits, targets[:, None], axis=1)  # [B, 1]
    # A NaN competitor compares False both ways: count it above the target explicitly.
    higher = jnp.sum((logits > target_score) | jnp.isnan(logits), axis=1)
    ties = jnp.sum(logits == target_score, axis=1) - 1  # the target ties with itself
    last = logits.shape[1] - 1
    return jnp.where(jnp.isnan(target_score[:, 0]), last, higher + ties).astype(jnp.int32)


def metrics_from_rank(rank: jax.Array, ks=DEFAULT_KS) -> dict[str, jax.Array]:
    """Per-example HR@K, NDCG@K, MRR@K for each K (leave-one-out: one relevant item).

    rank: int32[B] 0-based ranks.  returns {"hr@10": f32[B], ...}.
    """
    rank_f = rank.astype(jnp.float32)
    out = {}
    for k in ks:
        hit = rank < k
        out[f"hr@{k}"] = hit.astype(jnp.float32)
        out[f"ndcg@{k}"] = jnp.where(hit, 1.0 / jnp.log2(rank_f + 2.0), 0.0)
        out[f"mrr@{k}"] = jnp.where(hit, 1.0 / (rank_f + 1.0), 0.0)
    return out
