"""Full-ranking evaluation over all items, on device, in fixed-shape batches.

Every user's target is ranked against ALL items (no sampled negatives). Both
conventions are computed in the same pass: ``masked`` excludes the items already
in the user's input history (the target itself is never excluded), ``unmasked``
only excludes the padding id (RecBole's convention).
"""
from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.eval.ranking import DEFAULT_KS, metrics_from_rank, target_rank


def rank_metrics(logits: jax.Array, targets: jax.Array, seen: jax.Array) -> dict[str, jax.Array]:
    """Per-example metrics of both conventions from full logits.

    logits: f32[B, N+1]; targets: int32[B]; seen: bool[B, N+1] (the input history).
    returns {"masked/ndcg@10": f32[B], "unmasked/ndcg@10": f32[B], ...}.
    """
    logits = logits.at[:, 0].set(-jnp.inf)
    not_target = jnp.arange(logits.shape[1])[None, :] != targets[:, None]
    masked_logits = jnp.where(seen & not_target, -jnp.inf, logits)
    out = {}
    for name, lg in (("masked", masked_logits), ("unmasked", logits)):
        for key, value in metrics_from_rank(target_rank(lg, targets), DEFAULT_KS).items():
            out[f"{name}/{key}"] = value
    return out


def make_eval_fn(model) -> Callable:
    """Returns jitted ``eval_batch(params, inputs, targets, seen)`` -> per-example metrics.

    inputs: int32[B, L] left-padded histories; targets: int32[B]; seen: bool[B, N+1].
    returns {"masked/ndcg@10": f32[B], "unmasked/ndcg@10": f32[B], ...}.
    """

    @jax.jit
    def eval_batch(params, inputs, targets, seen):
        return rank_metrics(model.score(params, model.encode(params, inputs)), targets, seen)

    return eval_batch


def _padded_batches(arrays, batch_size):
    """Split host arrays into equal batches of ``batch_size`` rows (last one padded)."""
    inputs, targets, seen = arrays
    num = inputs.shape[0]
    num_batches = -(-num // batch_size)
    pad = num_batches * batch_size - num
    if pad:
        inputs = np.concatenate([inputs, np.zeros((pad,) + inputs.shape[1:], inputs.dtype)])
        # a padded row targets item 1 with an empty history; its metrics are dropped below
        targets = np.concatenate([targets, np.ones((pad,), targets.dtype)])
        seen = np.concatenate([seen, np.zeros((pad,) + seen.shape[1:], seen.dtype)])
    return [
        (inputs[i : i + batch_size], targets[i : i + batch_size], seen[i : i + batch_size])
        for i in range(0, num_batches * batch_size, batch_size)
    ], num


class Evaluator:
    """Evaluates one set of users (e.g. all test users) with a fixed batch size.

    The arrays are moved to the device once; each call is one jitted pass per batch.
    """

    def __init__(self, model, eval_arrays, batch_size: int = 1024):
        batch_size = min(batch_size, int(eval_arrays.inputs.shape[0]))
        batches, self.num_users = _padded_batches(
            (
                np.asarray(eval_arrays.inputs, np.int32),
                np.asarray(eval_arrays.targets, np.int32),
                np.asarray(eval_arrays.seen, bool),
            ),
            batch_size,
        )
        self.batches = [jax.device_put(b) for b in batches]
        self.eval_batch = make_eval_fn(model)

    def per_user(self, params) -> dict[str, np.ndarray]:
        """Per-user metrics, {"masked/ndcg@10": f32[U], ...}."""
        parts = [self.eval_batch(params, *batch) for batch in self.batches]
        out = {k: np.concatenate([np.asarray(p[k]) for p in parts])[: self.num_users] for k in parts[0]}
        return out

    def __call__(self, params) -> dict[str, float]:
        """Mean metrics over users, {"masked/ndcg@10": float, ...}."""
        return {k: float(np.mean(v)) for k, v in self.per_user(params).items()}

    def time_pass(self, params, repeats: int = 5) -> float:
        """Median wall time in seconds of a warm full-ranking pass over all users."""
        jax.block_until_ready(self.eval_batch(params, *self.batches[0]))  # compile / warm up
        times = []
        for _ in range(max(3, repeats)):
            start = time.perf_counter()
            jax.block_until_ready([self.eval_batch(params, *b) for b in self.batches])
            times.append(time.perf_counter() - start)
        return float(np.median(times))
