"""N local processes as one ``jax.distributed`` run, checked against the same run in one process.

    python experiments/multihost.py --processes 2 --devices-per-process 2
    python experiments/multihost.py --workload scale --streams 10000000 --steps 5 --stream-chunk 250000
    python experiments/multihost.py --workload resume --ckpt-dir /tmp/ck --die-process 1 --die-after-step 6

``--workload check`` (default) launches ``--processes`` P processes on CPU, each
with ``--devices-per-process`` D forced host devices (a coordinator on 127.0.0.1
at a free port, gloo collectives), runs the LinUCB engine per-stream and shared,
a model-backed policy (small SASRec, neural-linear UCB, shared), a 4-member
PBT population (``rec_jax.adapt.pbt``) and one epoch of a 4-member training
population of a tiny SASRec (``rec_jax.train.population``), then the SAME
program in one process on P * D forced devices, and prints ONE JSON line: ``equal_to_single_process`` {mode: bool},
``max_diffs``, ``processes``, ``global_devices``, ``user_steps_per_s`` (LinUCB
per-stream, ``--bench-streams`` x ``--bench-steps``, best of 3, both runs), ``wall_s``,
``cpu_model``.

Equality. Per-stream LinUCB: reward sums to 1e-9 relative, states to 1e-6 (each
device holds the same S / (P * D) streams in both runs). Shared modes (LinUCB,
model-backed): actions identical, states to 1e-5: the merge sums the streams'
statistics with a cross-device reduction whose order differs between gloo (N
processes) and the in-process CPU all-reduce; we keep the engine's merge (no
deterministic all-gather-then-sum) and compare to 1e-5. PBT: parents and
tuned params identical, rewards and states to 1e-6. Training population: losses
and trained params to 1e-6.

``--workload scale``: per-stream LinUCB on ``--streams`` streams, ``--stream-chunk``
at a time over the global mesh (each process holds only its devices' part of a
chunk), prints ``peak_rss_mb_per_process`` and their total.

``--workload resume``: a chunked LinUCB run checkpointed (Orbax, every process its
shards) after every ``--chunk-steps`` steps into ``--ckpt-dir``, resuming from it;
``--die-process i --die-after-step t`` SIGKILLs process i after the checkpoint at
step t. Writes ``CKPT/result.npz`` (rewards, final state) when it completes.

A process that dies makes the launcher print ONE line naming it on stderr (the
runtime's own logs stay in ``--out``/logs), stop the rest within the heartbeat
timeout plus 20 s, and exit 1.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli

REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Config:
    """Multi-process run on this machine (one JSON line on stdout)."""

    processes: int = 2  # P local processes
    devices_per_process: int = 2  # D forced host devices per process
    workload: Literal["check", "scale", "resume"] = "check"  # what the processes run
    streams: int = 16  # S LinUCB streams (check, resume; scale: the total)
    steps: int = 6  # T steps
    items: int = 10  # N items of the linear env
    dim: int = 4  # D feature width
    bench_streams: int = 16384  # check: streams of the timed per-stream LinUCB run (d=16, 100 items)
    bench_steps: int = 10  # check: steps of the timed run
    stream_chunk: int | None = None  # scale: streams per chunk over all processes (default: all)
    ckpt_dir: Path | None = None  # resume: checkpoint folder (default: under --out)
    chunk_steps: int = 3  # resume: steps between checkpoints
    mode: Literal["per_stream", "shared"] = "per_stream"  # resume / scale: engine mode
    die_process: int | None = None  # resume: SIGKILL this process ...
    die_after_step: int | None = None  # ... after its checkpoint at this step
    out: Path | None = None  # folder for logs and results (default: a temporary one)
    timeout_s: float = 600.0  # kill every process after this long
    seed: int = 0  # root seed
    worker: bool = False  # run as ONE process of the run (what the launcher starts; a cluster job's entry: README)


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        return next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration, subprocess.SubprocessError):
        return "unknown"


# ----------------------------------------------------------------------------- one process of the run


def worker(cfg: Config) -> None:
    from rec_jax.distributed import initialize

    initialize()
    import jax

    from experiments import _multihost_workloads as w

    out = Path(cfg.out)
    if cfg.workload == "check":
        jobs = {
            "per_stream": lambda: w.linucb_run("per_stream", cfg.streams, cfg.steps, cfg.items, cfg.dim, cfg.seed),
            "shared": lambda: w.linucb_run("shared", cfg.streams, cfg.steps, cfg.items, cfg.dim, cfg.seed),
            "model_backed": lambda: w.model_backed_run(8, 4, cfg.seed),
            "population": lambda: w.population_run(4, 4, 5, 2, cfg.seed),
            "population_train": lambda: w.population_train_run(cfg.seed),
        }
        results, seconds = {}, {}
        for name, job in jobs.items():
            t0 = time.perf_counter()
            results[name] = job()
            seconds[name] = time.perf_counter() - t0  # compilation included
        t0 = time.perf_counter()
        speed = w.linucb_throughput(cfg.bench_streams, cfg.bench_steps, 100, 16, cfg.seed)
        seconds["throughput"] = time.perf_counter() - t0
        info = {"user_steps_per_s": speed, "seconds": seconds}
    elif cfg.workload == "scale":
        info = w.scale_run(cfg.mode, cfg.streams, cfg.stream_chunk or cfg.streams, cfg.steps, 100, 16, cfg.seed)
        results = {}
    else:
        results = {"resume": w.resume_run(cfg.mode, cfg.streams, cfg.steps, cfg.items, cfg.dim, cfg.seed,
                                          Path(cfg.ckpt_dir), cfg.chunk_steps, cfg.die_process, cfg.die_after_step)}
        info = {}
    info.update(processes=jax.process_count(), global_devices=jax.device_count())
    if jax.process_index() == 0:
        out.mkdir(parents=True, exist_ok=True)
        import numpy as np

        np.savez(out / "results.npz", **{f"{m}|{k}": v for m, r in results.items() for k, v in r.items()})
        (out / "info.json").write_text(json.dumps(info))
    jax.distributed.shutdown() if jax.process_count() > 1 else None


# ----------------------------------------------------------------------------- the launcher


def _launch(cfg: Config, processes: int, devices: int, out: Path) -> dict:
    from rec_jax.distributed.launch import launch

    argv = [str(Path(__file__).resolve()), "--worker", "--out", str(out)]
    for f in dataclasses.fields(Config):
        value = getattr(cfg, f.name)
        if f.name in ("worker", "out", "processes", "devices_per_process") or value is None:
            continue
        argv += [f"--{f.name.replace('_', '-')}", str(value)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    res = launch(argv, processes, devices, out / "logs", timeout_s=cfg.timeout_s, env=env)
    if res.failure is not None:
        tail = res.logs[0].read_text().strip().splitlines()[-1:] if res.logs[0].exists() else []
        # A refusal of the program itself (rec_jax.cli's one "error: ..." line, exit 2) is that line;
        # anything else (a killed or crashed process) is the launcher's line naming the process.
        refused = all(rc == 2 for rc in res.returncodes) and tail and tail[0].startswith("error:")
        print(tail[0] if refused else res.failure, file=sys.stderr, flush=True)
        raise SystemExit(1)
    return {"wall_s": res.wall_s, **json.loads((out / "info.json").read_text())}


def _load(path: Path) -> dict[str, dict]:
    import numpy as np

    results: dict[str, dict] = {}
    with np.load(path) as z:
        for name in z.files:
            mode, key = name.split("|", 1)
            results.setdefault(mode, {})[key] = z[name]
    return results


def compare(multi: dict[str, dict], single: dict[str, dict]) -> tuple[dict[str, bool], dict[str, float]]:
    """(equal_to_single_process, max relative / absolute diffs) per mode; see the module docstring."""
    import numpy as np

    equal, diffs = {}, {}
    for mode in single:
        a, b = multi[mode], single[mode]
        ok = set(a) == set(b) and all(a[k].shape == b[k].shape for k in b)
        worst = 0.0
        for k in b if ok else ():
            x, y = np.asarray(a[k], np.float64), np.asarray(b[k], np.float64)
            if k in ("action", "parent") or k.startswith("params/") or k.endswith(("num_updates", ".t", "counts")):
                same = np.array_equal(x, y)
            elif k == "reward_sum" and mode != "shared" and mode != "model_backed":
                same = np.allclose(x, y, rtol=1e-9, atol=0)
            else:
                tol = 1e-5 if mode in ("shared", "model_backed") else 1e-6
                same = np.allclose(x, y, rtol=tol, atol=tol)
            worst = max(worst, float(np.max(np.abs(x - y) / np.maximum(np.abs(y), 1.0))) if x.size else 0.0)
            ok = ok and bool(same)
        equal[mode], diffs[mode] = ok, worst
    return equal, diffs


def main(cfg: Config) -> dict:
    if cfg.worker:
        worker(cfg)
        return {}
    out = Path(cfg.out) if cfg.out else Path(tempfile.mkdtemp(prefix="multihost_"))
    if cfg.workload == "resume" and cfg.ckpt_dir is None:
        cfg = dataclasses.replace(cfg, ckpt_dir=out / "ckpt")
    p, d = cfg.processes, cfg.devices_per_process
    result = {"workload": cfg.workload, "cpu_model": cpu_model()}
    multi = _launch(cfg, p, d, out / "multi")
    result.update(processes=multi["processes"], global_devices=multi["global_devices"], wall_s=multi["wall_s"])
    if cfg.workload == "check":
        single = _launch(cfg, 1, p * d, out / "single")
        equal, diffs = compare(_load(out / "multi" / "results.npz"), _load(out / "single" / "results.npz"))
        result.update(equal_to_single_process=equal, max_diffs=diffs,
                      merge="engine merge (cross-device sum), compared to 1e-5; not a deterministic merge",
                      user_steps_per_s={"multi_process": multi["user_steps_per_s"],
                                        "single_process": single["user_steps_per_s"]},
                      single_process_wall_s=single["wall_s"],
                      seconds={"multi_process": multi["seconds"], "single_process": single["seconds"]})
    else:
        result.update({k: v for k, v in multi.items() if k not in result})
    result["out"] = str(out)
    print(json.dumps(result), flush=True)
    return result


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
