"""Starting JAX's multi-controller runtime: a thin layer over ``jax.distributed.initialize``.

Every process of a run calls :func:`initialize` once, before it touches a device.
Where the launcher (``experiments/multihost.py``) set ``REC_JAX_COORDINATOR``,
``REC_JAX_NUM_PROCESSES`` and ``REC_JAX_PROCESS_ID``, those are used; with
``REC_JAX_DISTRIBUTED=auto`` (a cluster job), ``jax.distributed.initialize()`` is
called without them and detects the cluster itself (SLURM, Open MPI, Kubernetes /
cloud TPU pods); with neither it is a no-op and the program runs in one process.
No communication is written here: collectives are JAX's own (gloo on CPU, NCCL on
GPU, ICI on TPU).
"""
from __future__ import annotations

import os
import socket

import jax

# JAX's default heartbeat timeout is 100 s; a dead peer should stop the run sooner.
HEARTBEAT_TIMEOUT_S = 10
INIT_TIMEOUT_S = 60
SHUTDOWN_TIMEOUT_S = 10

ENV_COORDINATOR = "REC_JAX_COORDINATOR"
ENV_NUM_PROCESSES = "REC_JAX_NUM_PROCESSES"
ENV_PROCESS_ID = "REC_JAX_PROCESS_ID"
ENV_AUTO = "REC_JAX_DISTRIBUTED"  # "auto": let jax.distributed detect the cluster


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (so runs side by side get their own coordinator)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def initialize(coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None,
               *, heartbeat_timeout_s: int = HEARTBEAT_TIMEOUT_S, init_timeout_s: int = INIT_TIMEOUT_S) -> None:
    """Join the run: ``jax.distributed.initialize`` with short timeouts.

    Arguments default to the ``REC_JAX_*`` variables (the module docstring); with no
    coordinator and no ``REC_JAX_DISTRIBUTED=auto`` this is a no-op, so the same
    program runs unchanged in one process.
    """
    if heartbeat_timeout_s > 30:
        raise ValueError(f"heartbeat_timeout_s={heartbeat_timeout_s}: expected at most 30 s")
    coordinator = coordinator or os.environ.get(ENV_COORDINATOR)
    if num_processes is None and ENV_NUM_PROCESSES in os.environ:
        num_processes = int(os.environ[ENV_NUM_PROCESSES])
    if process_id is None and ENV_PROCESS_ID in os.environ:
        process_id = int(os.environ[ENV_PROCESS_ID])
    auto = os.environ.get(ENV_AUTO) == "auto"
    if coordinator is None and not auto:
        return  # one process, nothing to join
    # CPU collectives across processes (gloo; jax 0.10's default, set explicitly). Only the CPU
    # client reads it, so it is harmless on GPU / TPU hosts.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id,
        initialization_timeout=init_timeout_s, heartbeat_timeout_seconds=heartbeat_timeout_s,
        shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)


def is_main() -> bool:
    """True on the process that writes files and prints (process 0)."""
    return jax.process_index() == 0
