"""A thin Orbax wrapper used by training and simulation (docs/DESIGN.md, "Exact resume").

Everything that runs for minutes saves a pytree of arrays (params, optimizer
state, policy/simulator state, step, key data, data position) through these three
functions. Typed PRNG keys cannot be serialised: store ``jax.random.key_data(key)``
and rewrap with ``jax.random.wrap_key_data`` after :func:`restore`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax


class _LazyOrbax:
    """``orbax.checkpoint``, imported on first use: importing this module (the trainer and
    the engine do) stays possible where Orbax is not installed (the device image)."""

    def __getattr__(self, name):
        import orbax.checkpoint

        return getattr(orbax.checkpoint, name)


ocp = _LazyOrbax()


def _manager(directory: str | Path, max_to_keep: int | None = 2) -> "ocp.CheckpointManager":
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True)
    return ocp.CheckpointManager(Path(directory).absolute(), options=options)


def save(directory: str | Path, step: int, pytree: Any, *, max_to_keep: int | None = 2) -> None:
    """Save ``pytree`` as checkpoint ``step`` under ``directory`` and wait for it.

    Orbax writes into a temporary folder and renames it when complete, so a run
    killed mid-save leaves the previous checkpoint as the latest one.
    """
    with _manager(directory, max_to_keep) as manager:
        manager.save(step, args=ocp.args.StandardSave(pytree))
        manager.wait_until_finished()


def latest_step(directory: str | Path) -> int | None:
    """The newest complete checkpoint's step, or None when there is none."""
    if not Path(directory).exists():
        return None
    with _manager(directory) as manager:
        return manager.latest_step()


def restore(directory: str | Path, target: Any, step: int | None = None) -> Any:
    """Restore checkpoint ``step`` (default: the latest) into the structure of ``target``.

    ``target`` may be concrete arrays or ``jax.ShapeDtypeStruct`` leaves (e.g. from
    ``jax.eval_shape``); dtypes and shapes are taken from it.
    """
    with _manager(directory) as manager:
        if step is None:
            step = manager.latest_step()
        if step is None:
            raise FileNotFoundError(f"{directory}: no checkpoint to restore")
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
        return manager.restore(step, args=ocp.args.StandardRestore(abstract))
