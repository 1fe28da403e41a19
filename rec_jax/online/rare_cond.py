"""A conditional for rare repairs that stays a real branch under ``vmap``.

    out = when_any(needed, repair, keep, operands)

is ``repair(operands)`` when ``needed`` (bool[]) else ``keep(operands)``, where ``repair``
must give ``keep``'s result wherever it was not needed (it repairs per element, e.g. a
per-stream select between the kept and the rebuilt state). The engine uses it for the
cached model view (:mod:`rec_jax.online.engine`): a full re-encode of every stream on a
cache miss or a changed encoder, which almost never happens.

Why not ``lax.cond``: under ``vmap`` (the studies vmap whole runs over seeds) a batched
predicate turns ``lax.cond`` into a select that runs BOTH branches, i.e. the re-encode at
every step. Here the batching rule reduces the predicate over the batch (any) and keeps
one real branch, running the repair batched. Because ``repair`` leaves untouched what
did not need it, the result of every batch element is what it would be alone.
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp


def when_any(needed: jax.Array, repair: Callable[[Any], Any], keep: Callable[[Any], Any], operands: Any) -> Any:
    """``repair(operands) if needed else keep(operands)``; see the module docstring.

    ``repair`` and ``keep`` must close over no traced values (pass them in ``operands``)
    and return pytrees of the same structure, shapes and dtypes."""
    leaves, treedef = jax.tree.flatten(operands)

    @jax.custom_batching.custom_vmap
    def branch(pred, *flat):
        ops = jax.tree.unflatten(treedef, flat)
        return jax.lax.cond(pred, repair, keep, ops)

    @branch.def_vmap
    def _batched(axis_size, in_batched, pred, *flat):
        pred_batched, flat_batched = in_batched[0], in_batched[1:]
        if pred_batched:
            pred = jnp.any(pred)
        axes = jax.tree.unflatten(treedef, [0 if b else None for b in flat_batched])
        ops = jax.tree.unflatten(treedef, flat)

        def batched(fn):
            return lambda o: jax.vmap(fn, in_axes=(axes,), out_axes=0, axis_size=axis_size)(o)

        out = jax.lax.cond(pred, batched(repair), batched(keep), ops)
        return out, jax.tree.map(lambda _: True, out)

    return branch(needed, *leaves)
