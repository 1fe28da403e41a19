"""Orbax checkpoints of global arrays written by every process, and a chunked engine run over them.

Every process calls :func:`save` / :func:`restore` together (Orbax synchronises
them through the ``jax.distributed`` service); each writes and reads only the
shards on its own devices, into one directory every process can see (a local
folder here, a shared file system or bucket on a cluster). ``DIR/topology.json``
beside the step folders records how many processes wrote it; a resume with a different count is refused
with one line (the shards would belong to other processes).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from rec_jax import checkpoint
from rec_jax.distributed.arrays import gather
from rec_jax.distributed.engine import init_sharded
from rec_jax.online.checkpointing import _flatten, _unflatten, _write_npz_atomic, from_saveable, to_saveable
from rec_jax.online.engine import Run, RunState

TOPOLOGY = "topology.json"


def check_topology(ckpt_dir: str | Path) -> None:
    """Raise a one-line ``ValueError`` when Orbax folder ``ckpt_dir`` was written by another number of processes."""
    path = Path(ckpt_dir) / TOPOLOGY
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    if saved["processes"] != jax.process_count():
        raise ValueError(f"{ckpt_dir}: checkpoint written by {saved['processes']} processes, this run has "
                         f"{jax.process_count()}; resume with --processes {saved['processes']}")


def _write_topology(ckpt_dir: Path) -> None:
    if not (ckpt_dir / TOPOLOGY).exists():
        tmp = ckpt_dir / (TOPOLOGY + ".tmp")
        tmp.write_text(json.dumps({"processes": jax.process_count(), "global_devices": jax.device_count()}))
        tmp.replace(ckpt_dir / TOPOLOGY)


def save(directory: str | Path, step: int, pytree: Any) -> None:
    """``rec_jax.checkpoint.save`` of global arrays, called by every process (each writes its
    shards), recording the process count in ``directory/topology.json`` the first time."""
    directory = Path(directory)
    check_topology(directory)
    if jax.process_index() == 0:
        directory.mkdir(parents=True, exist_ok=True)
        _write_topology(directory)
    checkpoint.save(directory, step, pytree)


def restore(directory: str | Path, target: Any, step: int | None = None) -> Any:
    """``rec_jax.checkpoint.restore`` into the shardings of ``target`` (global arrays or
    ``ShapeDtypeStruct`` with shardings); refuses a checkpoint of another process count."""
    check_topology(directory)
    return checkpoint.restore(directory, target=target, step=step)


def run_with_checkpoints(run: Run, key: jax.Array, policy_params: Any, env_params: Any, num_steps: int, *,
                         ckpt_dir: str | Path, chunk_size: int, mesh: jax.sharding.Mesh,
                         after_chunk=None) -> tuple[RunState, dict[str, np.ndarray]]:
    """``rec_jax.online.run_with_checkpoints`` on a global mesh (always resuming when it can).

    The state is born sharded (:func:`rec_jax.distributed.engine.init_sharded`),
    saved by every process (its own shards) after each chunk, and restored into the
    same shardings; each chunk's metrics ``[chunk, S]`` are gathered to every
    process and process 0 writes them. ``after_chunk(step)`` is called after each
    checkpoint (tests use it to kill a process there). Returns the final global
    RunState and the metrics of all steps as host arrays ``[T, S, ...]``.
    """
    run.validate(policy_params, env_params)
    ckpt_dir = Path(ckpt_dir)
    state_dir, metrics_dir = ckpt_dir / "state", ckpt_dir / "metrics"
    check_topology(state_dir)  # before anything is built: a wrong process count stops at once
    if jax.process_index() == 0:
        metrics_dir.mkdir(parents=True, exist_ok=True)
    run_chunk = jax.jit(run.run_chunk, static_argnums=1, donate_argnums=0)

    run_state = init_sharded(run, key, policy_params, env_params, mesh)
    start = checkpoint.latest_step(state_dir)
    if start is not None:
        # Orbax reads each process's shards into the shardings of the fresh state.
        restored = restore(state_dir, target=to_saveable(run_state), step=start)
        run_state = from_saveable(restored, run_state)
    step = int(run_state.step)  # replicated: readable on every process

    chunks = []
    for path in sorted(metrics_dir.glob("chunk_*.npz")):
        if int(path.stem.split("_")[1]) < step:
            with np.load(path) as z:
                chunks.append(dict(z))
    if sum(len(c["reward"]) for c in chunks) != step:
        raise ValueError(f"{metrics_dir}: metrics do not cover the {step} steps of the state")

    while step < num_steps:
        length = min(chunk_size, num_steps - step)
        run_state, metrics = run_chunk(run_state, length)
        flat = _flatten(gather(metrics))
        if jax.process_index() == 0:
            _write_npz_atomic(metrics_dir / f"chunk_{step:010d}.npz", flat)
        # The metrics file exists before the state that points past it (as in the one-process run).
        multihost_utils.sync_global_devices(f"metrics {step}")
        step += length
        save(state_dir, step, to_saveable(run_state))
        chunks.append(flat)
        if after_chunk is not None:
            after_chunk(step)
    metrics = _unflatten({k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}) if chunks else {}
    return run_state, metrics
