"""Chunked online runs with Orbax checkpoints between chunks (docs/DESIGN.md, "Exact resume").

:func:`run_with_checkpoints` advances a run ``chunk_size`` steps at a time with a
jitted, buffer-donating ``run_chunk``; after each chunk it writes that chunk's
metrics (``CKPT/metrics/chunk_<start>.npz``, atomically) and then the RunState
(``CKPT/state/<step>`` via :mod:`rec_jax.checkpoint`). A run killed at any point
resumes from the newest complete state and, on the same machine, ends with
bit-identical state and metrics to an uninterrupted run: step keys are
``fold_in(key, step)``, so nothing depends on where the chunks were cut.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rec_jax import checkpoint
from rec_jax.online.engine import Run, RunState
from rec_jax.online.sharding import shard_streams


def _is_typed_key(x) -> bool:
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def to_saveable(tree: Any) -> Any:
    """Typed PRNG keys -> their ``key_data`` (uint32), so Orbax can store them."""
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_typed_key(x) else x, tree)


def from_saveable(tree: Any, like: Any) -> Any:
    """Inverse of :func:`to_saveable`: rewrap key data where ``like`` holds typed keys."""

    def rewrap(x, ref):
        if _is_typed_key(ref):
            return jax.random.wrap_key_data(x, impl=jax.random.key_impl(ref))
        return x

    return jax.tree.map(rewrap, tree, like)


def jit_run_chunk(run: Run, donate: bool = True):
    """``run.run_chunk`` jitted once, ``num_steps`` static, the input state donated."""
    return jax.jit(run.run_chunk, static_argnums=1, donate_argnums=(0,) if donate else ())


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}/"))
        else:
            flat[f"{prefix}{k}"] = np.asarray(v)
    return flat


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for k, v in flat.items():
        node = tree
        *parents, leaf = k.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = v
    return tree


def _write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def run_with_checkpoints(
    run: Run,
    key: jax.Array,
    policy_params: Any,
    env_params: Any,
    num_steps: int,
    *,
    ckpt_dir: str | Path,
    chunk_size: int,
    resume: bool = True,
    mesh: jax.sharding.Mesh | None = None,
    max_chunks: int | None = None,
    run_chunk_jit=None,
) -> tuple[RunState, dict[str, Any]]:
    """Run ``num_steps`` steps in chunks of ``chunk_size``, checkpointing after each.

    Args:
      run: from :func:`rec_jax.online.make_run`.
      key, policy_params, env_params: as for ``run.init_run``; params are
        validated here, on the host, once.
      ckpt_dir: folder for ``state/`` (Orbax) and ``metrics/`` (one npz per chunk).
      resume: continue from the newest checkpoint in ``ckpt_dir`` when there is
        one (else start fresh, ignoring it).
      mesh: optional 1-D ``"streams"`` mesh to shard the streams over.
      max_chunks: stop after this many chunks in this call (a job's time slice);
        a later call with ``resume=True`` continues.
      run_chunk_jit: a jitted ``run_chunk`` to reuse across calls (default: made here).

    Returns ``(run_state, metrics)`` with metrics of ALL steps so far as NumPy
    arrays ``[T_done, S, ...]`` (those of earlier calls read back from disk).
    """
    if chunk_size < 1 or num_steps < 0:
        raise ValueError(f"run_with_checkpoints: expected chunk_size >= 1 and num_steps >= 0, got {chunk_size}, {num_steps}")
    run.validate(policy_params, env_params)
    ckpt_dir = Path(ckpt_dir)
    state_dir, metrics_dir = ckpt_dir / "state", ckpt_dir / "metrics"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    mode = run.config.mode
    run_chunk = run_chunk_jit or jit_run_chunk(run)

    run_state = jax.jit(run.init_run)(key, policy_params, env_params)
    if mesh is not None:
        run_state = shard_streams(run_state, mesh, mode)
    start = checkpoint.latest_step(state_dir) if resume else None
    if start is not None:
        # The target in the layout run_chunk carries (and saved): an obs leaf the reset holds
        # once for all streams may have an [S] axis after a step (the recsys env's `available`).
        carried = jax.eval_shape(lambda rs: run.run_chunk(rs, 0)[0], run_state)
        run_state = jax.tree.map(lambda x, c: x if x.shape == c.shape else jax.numpy.broadcast_to(x, c.shape),
                                 run_state, carried)
        restored = checkpoint.restore(state_dir, target=to_saveable(run_state), step=start)
        # Fresh host->device copies: Orbax's arrays can differ from jit outputs in
        # ways the jit cache keys on, which would recompile run_chunk.
        restored = jax.tree.map(lambda x: jax.device_put(np.asarray(x)), restored)
        run_state = from_saveable(restored, run_state)
        if mesh is not None:
            run_state = shard_streams(run_state, mesh, mode)
    step = int(run_state.step)
    if step > num_steps:
        raise ValueError(f"{state_dir}: checkpoint at step {step} is past num_steps={num_steps}")

    # Metrics of the chunks before the restored step, in order.
    chunks = []
    for path in sorted(metrics_dir.glob("chunk_*.npz")):
        chunk_start = int(path.stem.split("_")[1])
        if chunk_start < step:
            with np.load(path) as z:
                chunks.append(dict(z))
    done = sum(len(c["reward"]) for c in chunks)
    if done != step:
        raise ValueError(f"{metrics_dir}: metrics cover {done} steps but the state is at step {step}")

    num_chunks = 0
    while step < num_steps and (max_chunks is None or num_chunks < max_chunks):
        length = min(chunk_size, num_steps - step)
        run_state, metrics = run_chunk(run_state, length)
        flat = _flatten(jax.device_get(metrics))
        _write_npz_atomic(metrics_dir / f"chunk_{step:010d}.npz", flat)
        step += length
        checkpoint.save(state_dir, step, to_saveable(run_state))
        chunks.append(flat)
        num_chunks += 1

    if chunks:
        all_metrics = _unflatten({k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]})
    else:
        all_metrics = {}
    return run_state, all_metrics
