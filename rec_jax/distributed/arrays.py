"""Global arrays over every process's devices: the mesh, per-process shards in, gathered results out.

A global ``jax.Array`` of shape ``[S, ...]`` sharded on its leading axis over a
mesh of all ``jax.devices()`` (every process's) is held as ``S / P`` rows per
process; each process only ever materialises its own rows. The engine and the
population trainer take such arrays unchanged (``jax.jit`` partitions them the
way it partitions a single-process sharded array).
"""
from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def global_mesh(axis: str) -> Mesh:
    """A 1-D mesh named ``axis`` over every process's devices, process-major
    (process p's devices are one contiguous block, so its rows are contiguous too)."""
    devices = sorted(jax.devices(), key=lambda d: (d.process_index, d.id))
    return Mesh(np.asarray(devices), (axis,))


def process_rows(num_rows: int, mesh: Mesh) -> slice:
    """The rows ``[start, stop)`` of a leading axis of ``num_rows`` split over ``mesh`` that live on this process."""
    sharding = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))
    index = sharding.addressable_devices_indices_map((num_rows,))
    starts = sorted(idx[0].start or 0 for idx in index.values())
    stops = sorted(num_rows if idx[0].stop is None else idx[0].stop for idx in index.values())
    if any(b != a for a, b in zip(stops[:-1], starts[1:])):
        raise ValueError(f"process_rows: this process's rows of {num_rows} are not contiguous on {mesh}")
    return slice(starts[0], stops[-1])


def from_process_local(local: Any, mesh: Mesh, num_rows: int) -> Any:
    """Global arrays ``[num_rows, ...]`` split on the leading axis from each process's
    own rows (a pytree of host arrays ``[rows of process_rows(num_rows)], ...]``).

    Each process passes only what it loaded; nothing is copied between processes.
    """
    sharding = NamedSharding(mesh, PartitionSpec(mesh.axis_names[0]))

    def one(x):
        x = np.asarray(x)
        return jax.make_array_from_process_local_data(sharding, x, (num_rows,) + x.shape[1:])

    return jax.tree.map(one, local)


def replicated(tree: Any, mesh: Mesh) -> Any:
    """Global arrays replicated over ``mesh`` from host values every process holds in full
    (shared data such as the training windows every population member sees)."""
    sharding = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, np.asarray(x)), tree)


def gather(tree: Any) -> Any:
    """Every leaf as one host NumPy array of its global shape, on every process
    (``multihost_utils.process_allgather``); replicated leaves are read locally.
    Typed PRNG keys are gathered as their key data."""

    def one(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        if not isinstance(x, jax.Array) or x.is_fully_addressable:
            return np.asarray(x)
        if x.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree.map(one, tree)
