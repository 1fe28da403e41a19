"""Launch N local processes of one program as a ``jax.distributed`` run, and watch them.

Each process gets ``JAX_PLATFORMS=cpu``, ``XLA_FLAGS=--xla_force_host_platform_device_count=D``
and the ``REC_JAX_*`` variables :func:`rec_jax.distributed.runtime.initialize` reads
(a coordinator on 127.0.0.1 at a free port). Their stdout / stderr go to
``log_dir/process_<i>.log``, so the runtime's multi-line fatal log of a dying peer
stays there; when a process dies, :func:`launch` names the first one in ONE line,
gives the others ``grace_s`` to stop (the heartbeat timeout stops them) and kills
what is left, so a launch never hangs.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rec_jax.distributed.runtime import (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID, HEARTBEAT_TIMEOUT_S,
                                         free_port)


@dataclass
class LaunchResult:
    returncodes: list[int]  # per process; negative: killed by that signal
    failure: str | None  # the one line naming the first process that died, or None
    stop_s: float | None  # seconds from that death until every process had stopped
    wall_s: float
    logs: list[Path]


def _describe(rc: int) -> str:
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name}"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exited with code {rc}"


def launch(argv: list[str], num_processes: int, devices_per_process: int, log_dir: str | Path, *,
           timeout_s: float = 600.0, grace_s: float = HEARTBEAT_TIMEOUT_S + 20.0, env: dict | None = None,
           on_start=None) -> LaunchResult:
    """Run ``[sys.executable, *argv]`` as processes 0..N-1 of one run; wait for all.

    ``on_start(popens)`` is called once they are started (tests kill one there).
    A process that dies (non-zero exit) makes the launch wait at most ``grace_s``
    for the others, then kill them; past ``timeout_s`` all are killed.
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    coordinator = f"127.0.0.1:{free_port()}"
    base = dict(os.environ if env is None else env)
    base["JAX_PLATFORMS"] = "cpu"
    flags = " ".join(f for f in base.get("XLA_FLAGS", "").split() if "device_count" not in f)
    base["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices_per_process}".strip()
    base["PYTHONUNBUFFERED"] = "1"
    procs, logs, files = [], [], []
    t0 = time.monotonic()
    for i in range(num_processes):
        penv = dict(base, **{ENV_COORDINATOR: coordinator, ENV_NUM_PROCESSES: str(num_processes),
                             ENV_PROCESS_ID: str(i)})
        logs.append(log_dir / f"process_{i}.log")
        files.append(open(logs[-1], "w"))
        procs.append(subprocess.Popen([sys.executable, *argv], env=penv, stdout=files[-1], stderr=subprocess.STDOUT))
    if on_start is not None:
        on_start(procs)
    failure, deadline, died_at = None, t0 + timeout_s, None
    try:
        while any([p.poll() is None for p in procs]):  # a list: poll every process, not just the first
            now = time.monotonic()
            if failure is None:
                dead = [i for i, p in enumerate(procs) if p.returncode not in (None, 0)]
                if dead:
                    i = dead[0]
                    failure = (f"multihost: process {i} of {num_processes} (pid {procs[i].pid}) "
                               f"{_describe(procs[i].returncode)} (log: {logs[i]})")
                    died_at, deadline = now, min(deadline, now + grace_s)
            if now > deadline:
                for p in procs:
                    if p.poll() is None:
                        p.kill()
                if failure is None:
                    failure = f"multihost: timed out after {timeout_s:.0f} s; killed every process"
            time.sleep(0.05)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for f in files:
            f.close()
    rcs = [p.returncode for p in procs]
    stop_s = None if died_at is None else time.monotonic() - died_at
    if stop_s is not None and num_processes > 1:
        failure += f"; the other processes stopped {stop_s:.1f} s later"
    if failure is None and any(rcs):  # several died between two polls: name the first non-zero
        i = next(i for i, rc in enumerate(rcs) if rc)
        failure = f"multihost: process {i} of {num_processes} (pid {procs[i].pid}) {_describe(rcs[i])} (log: {logs[i]})"
    return LaunchResult(rcs, failure, stop_s, time.monotonic() - t0, logs)
