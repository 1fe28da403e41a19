"""Engine scaling: user-steps per second against parallel streams and against devices.

    python -m experiments.scaling                 # streams 64..16384, devices 1,2 (host devices on CPU)
    python -m experiments.scaling --quick         # fewer points, fewer steps (~1 min)

Each point is one run of ``experiments/bench_engine.py`` (LinUCB, per-stream state, the
``linear`` environment) in its own process: a fresh process per point is what lets
``--devices N`` set ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before JAX
starts, and keeps one point's compilation cache and memory out of the next. On the
same problem, each stream-count point also times the NumPy references (LinUCB for all
streams batched as GEMMs, and a per-stream Python loop), drawn on the same axes.

Forced host devices share the same CPU cores; each device steps its own streams
(``make_run(..., mesh=)``, no collective a step), so on a CPU the devices curve shows
what one XLA program per core gains over one program split op by op across the cores
(up to the number of cores), not more hardware; on a machine with several accelerators
the same command measures real scaling. The stream-count points run on ONE device
(``--devices 1``), so they stay comparable with the NumPy references and across dates.

Writes OUT/metrics.json (``user_steps_per_s/streams=S``, ``numpy_batched_steps_per_s/streams=S``,
``numpy_loop_steps_per_s/streams=S``, ``user_steps_per_s/devices=D``), OUT/points.json
(every point's full benchmark line) and OUT/scaling.png.
"""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Config:
    """Engine scaling study (subprocess per point)."""

    out: str = "runs/scaling"  # run folder (replaced atomically at the end)
    quick: bool = False  # fewer points and steps
    streams: str = "64,256,1024,4096,16384"  # stream counts of the streams curve (quick: 64,512,4096)
    devices: str = "1,2"  # device counts of the devices curve, at the largest stream count
    steps: int = 100  # T steps per stream (quick: 40)
    items: int = 100  # N items of the linear env
    dim: int = 16  # D feature width
    policy: str = "linucb"  # engine policy (the NumPy references are LinUCB)
    seed: int = 0  # root seed


def _ints(text: str, name: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ValueError(f"--{name}: expected comma-separated positive integers, got {text!r}")
    return values


def resolve(cfg: Config) -> dict:
    """Concrete settings with the --quick sizes filled in; ValueError for people."""
    quick_streams = cfg.quick and cfg.streams == Config.streams
    streams = _ints("64,512,4096" if quick_streams else cfg.streams, "streams")
    devices = _ints(cfg.devices, "devices")
    steps = 40 if cfg.quick and cfg.steps == Config.steps else cfg.steps
    if steps < 1:
        raise ValueError(f"--steps must be >= 1, got {steps}")
    bad = [d for d in devices if streams[-1] % d]
    if bad:
        raise ValueError(f"--devices {bad} must divide the largest stream count {streams[-1]}")
    return dict(dataclasses.asdict(cfg), streams=streams, devices=devices, steps=steps)


def bench_point(settings: dict, streams: int, devices: int, numpy: bool) -> dict:
    """One ``bench_engine`` run in a fresh process; its JSON line as a dict."""
    args = [sys.executable, "-m", "experiments.bench_engine", "--policy", settings["policy"],
            "--items", str(settings["items"]), "--dim", str(settings["dim"]), "--streams", str(streams),
            "--steps", str(settings["steps"]), "--devices", str(devices), "--seed", str(settings["seed"]),
            "--loop-steps", str(min(settings["steps"], 50))]
    if numpy:
        args.append("--numpy")
    env = dict(os.environ, JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", ""))
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ValueError(f"bench_engine --streams {streams} --devices {devices} failed: {tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(cfg: Config) -> dict:
    from tqdm.auto import tqdm

    from rec_jax import runs

    settings = resolve(cfg)
    points = [(s, 1, True) for s in settings["streams"]]
    points += [(settings["streams"][-1], d, False) for d in settings["devices"] if d > 1]
    results = []
    for streams, devices, numpy in tqdm(points, desc="scaling", unit="point"):
        results.append(bench_point(settings, streams, devices, numpy))

    metrics: dict = {}
    for r in results:
        s, d = r["streams"], r["devices"]
        if d == 1:
            metrics[f"user_steps_per_s/streams={s}"] = r["user_steps_per_s"]
            metrics[f"numpy_batched_steps_per_s/streams={s}"] = r["numpy_batched_steps_per_s"]
            metrics[f"numpy_loop_steps_per_s/streams={s}"] = r["numpy_loop_steps_per_s"]
        if s == settings["streams"][-1]:
            metrics[f"user_steps_per_s/devices={d}"] = r["user_steps_per_s"]
    metrics["device_kind"] = results[0].get("device_kind", "")

    with runs.staged_run_dir(cfg.out) as tmp:
        runs.write_config(tmp, cfg, settings=settings)
        runs.write_json(tmp / "metrics.json", metrics)
        runs.write_json(tmp / "points.json", results)
        plot(settings, metrics, tmp / "scaling.png")
    for key, value in metrics.items():
        if isinstance(value, float):
            print(f"{key}: {value:,.0f}")
    return metrics


def plot(settings: dict, metrics: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rec_jax.runs import save_figure

    streams, devices = settings["streams"], settings["devices"]
    fig, (ax, ax_dev) = plt.subplots(1, 2, figsize=(10, 3.8))
    for key, label in (("user_steps_per_s", f"rec_jax engine ({settings['policy']})"),
                       ("numpy_batched_steps_per_s", "NumPy LinUCB, streams batched"),
                       ("numpy_loop_steps_per_s", "NumPy LinUCB, per-stream loop")):
        ax.plot(streams, [metrics[f"{key}/streams={s}"] for s in streams], marker="o", label=label)
    ax.set(xscale="log", yscale="log", xlabel="parallel user streams", ylabel="user-steps / s",
           title=f"throughput vs streams (T = {settings['steps']})")
    ax.legend(fontsize=8)
    ax_dev.plot(devices, [metrics[f"user_steps_per_s/devices={d}"] for d in devices], marker="o")
    ax_dev.set(xlabel="devices (forced host devices on a CPU)", ylabel="user-steps / s", xticks=devices,
               title=f"throughput vs devices ({streams[-1]} streams)")
    save_figure(fig, path)


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
