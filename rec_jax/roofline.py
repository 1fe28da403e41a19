"""Roofline accounting for the benchmarks: machine peaks, XLA's cost of a step, the fraction.

    peaks = measure_peaks()                                  # {"peak_gflop_s": ..., "peak_gb_s": ...}
    xla = xla_cost(step_fn, *args)                           # {"flops": ..., "bytes": ...} of ONE step
    fields = roofline_fields(steps_per_s, flops_per_step, bytes_per_step, "analytic: ...",
                             peaks["peak_gflop_s"], peaks["peak_gb_s"],
                             xla_flops_per_step=xla["flops"], xla_bytes_per_step=xla["bytes"])

``roofline_fraction`` = achieved steps/s / min(peak FLOP/s / flops_per_step, peak B/s /
bytes_per_step): the share of the best rate the machine allows for that much work and
traffic. The counts a benchmark passes are those of the *minimal* algorithm (written down
in the benchmark), so redundant work the implementation does never raises the fraction;
the XLA counts of one compiled step are reported beside them as a cross-check.

The peaks are measured in the same process, on the device JAX uses by default, by short
probes (each well under 2 s on a 2-core CPU): a jitted float32 matmul at the default
matmul precision (what the benchmarks get; TF32 on recent NVIDIA GPUs) and an elementwise
pass over a donated, already-touched buffer (first-touch page faults on a fresh buffer
are more than 10x slower than the steady state on small CPU machines, so they are kept
out). Both report the median of a few timed calls.
"""
from __future__ import annotations

import platform
import statistics
import time
from typing import Any, Callable

__all__ = ["cpu_model", "device_kind", "peak_gflop_s", "peak_gb_s", "measure_peaks", "xla_cost",
           "roofline_fields", "matmul_flops"]

_PEAKS: dict[str, float] = {}  # probe results, once per process


def cpu_model() -> str:
    """The CPU's model name from the OS (/proc/cpuinfo, ``lscpu``), else ``platform``'s guess."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip().lower() in ("model name", "hardware", "processor") and value.strip() \
                        and not value.strip().isdigit():
                    return value.strip()
    except OSError:
        pass
    try:
        import subprocess

        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_kind() -> str:
    """``platform device_kind`` of JAX's default device (e.g. ``cpu cpu``, ``gpu NVIDIA H200``);
    the ``device`` key of :func:`roofline_fields`."""
    import jax

    d = jax.devices()[0]
    return f"{d.platform} {d.device_kind}"


def matmul_flops(m: int, k: int, n: int) -> int:
    """Hand count of f32[m, k] @ f32[k, n]: m*n dot products of length k, 2k FLOPs each."""
    return 2 * m * n * k


def _median_seconds(call: Callable[[], Any], repeats: int) -> float:
    import jax

    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(call())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_gflop_s(max_n: int = 8192, target_s: float = 0.02, repeats: int = 5) -> float:
    """Float32 matmul GFLOP/s: n x n @ n x n, n doubled from 1024 until one call takes
    ``target_s`` (or n = ``max_n``), then the median of ``repeats`` calls (about 0.3 s
    on a 2-core CPU, where n stays 1024)."""
    import jax
    import jax.numpy as jnp

    mm = jax.jit(lambda a, b: a @ b)
    n = 1024
    while True:
        # values do not change a matmul's speed; arguments (not constants) so nothing folds
        a = jnp.full((n, n), 0.5, jnp.float32)
        b = jnp.full((n, n), 0.25, jnp.float32)
        jax.block_until_ready(mm(a, b))  # compile and warm
        sec = _median_seconds(lambda: mm(a, b), 1)
        if sec >= target_s or n >= max_n:
            break
        n *= 2
    sec = _median_seconds(lambda: mm(a, b), repeats)
    return matmul_flops(n, n, n) / sec / 1e9


def peak_gb_s(megabytes: int | None = None, repeats: int = 5) -> float:
    """Streaming GB/s: ``x * s`` (s a traced 1.0, so XLA cannot drop it) over a donated
    float32 buffer of ``megabytes`` (default 256 on CPU, 2048 on accelerators), run in
    place; counts one read and one write of the buffer. The buffer is touched by warm-up
    calls first, so page faults are not timed."""
    import jax
    import jax.numpy as jnp

    if megabytes is None:
        megabytes = 256 if jax.devices()[0].platform == "cpu" else 2048
    n = megabytes * 2**20 // 4
    scale = jax.jit(lambda x, s: x * s, donate_argnums=0)
    one = jnp.float32(1.0)
    x = jnp.ones((n,), jnp.float32)
    for _ in range(2):  # compile; then a pass over the (now aliased) buffer
        x = scale(x, one)
    jax.block_until_ready(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        x = jax.block_until_ready(scale(x, one))
        times.append(time.perf_counter() - t0)
    del x
    return 2 * n * 4 / statistics.median(times) / 1e9


def measure_peaks(cache: bool = True) -> dict[str, float]:
    """``{"peak_gflop_s", "peak_gb_s"}`` of the default device, probed once per process."""
    if not (cache and _PEAKS):
        _PEAKS.update(peak_gflop_s=peak_gflop_s(), peak_gb_s=peak_gb_s())
    return dict(_PEAKS)


def _cost_dict(cost: Any) -> dict:
    # JAX returned a list of per-module dicts up to ~0.4.30 and a dict since; None when unsupported.
    if cost is None:
        return {}
    if isinstance(cost, (list, tuple)):
        merged: dict = {}
        for part in cost:
            for k, v in (part or {}).items():
                merged[k] = merged.get(k, 0.0) + float(v)
        return merged
    return dict(cost)


def xla_cost(fn: Callable, *args: Any, **jit_kwargs: Any) -> dict[str, float | None]:
    """``{"flops", "bytes"}`` XLA's ``cost_analysis()`` gives for ``jax.jit(fn)(*args)``
    (args may be arrays or ``jax.ShapeDtypeStruct``); None where the backend says nothing.
    XLA counts a loop body once, so pass ONE step, not a scan over many."""
    import jax

    compiled = jax.jit(fn, **jit_kwargs).lower(*args).compile()
    cost = _cost_dict(compiled.cost_analysis())
    flops = cost.get("flops")
    nbytes = cost.get("bytes accessed")
    return {"flops": None if flops is None else float(flops), "bytes": None if nbytes is None else float(nbytes)}


def roofline_fields(steps_per_s: float, flops_per_step: float, bytes_per_step: float, flops_source: str,
                    peak_gflop_s: float | None, peak_gb_s: float | None,
                    xla_flops_per_step: float | None = None, xla_bytes_per_step: float | None = None) -> dict:
    """The roofline keys of a benchmark's JSON line (stable names; see the module docstring).

    A "step" is whatever unit ``steps_per_s`` counts (a user-step, a training batch);
    ``flops_per_step`` / ``bytes_per_step`` are the minimal algorithm's, per that unit.
    ``roofline_fraction`` is None when a peak is missing (``--no-roofline``).
    """
    if flops_per_step <= 0 or bytes_per_step <= 0 or steps_per_s < 0:
        raise ValueError(f"roofline_fields: expected flops_per_step > 0, bytes_per_step > 0, steps_per_s >= 0, "
                         f"got {flops_per_step}, {bytes_per_step}, {steps_per_s}")
    fraction = bound = None
    if peak_gflop_s and peak_gb_s:
        bound = min(peak_gflop_s * 1e9 / flops_per_step, peak_gb_s * 1e9 / bytes_per_step)
        fraction = steps_per_s / bound
    return {
        "flops_per_step": float(flops_per_step),
        "bytes_per_step": float(bytes_per_step),
        "flops_source": flops_source,
        "xla_flops_per_step": xla_flops_per_step,
        "xla_bytes_per_step": xla_bytes_per_step,
        "achieved_gflop_s": steps_per_s * flops_per_step / 1e9,
        "achieved_gb_s": steps_per_s * bytes_per_step / 1e9,
        "peak_gflop_s": peak_gflop_s,
        "peak_gb_s": peak_gb_s,
        "roofline_steps_per_s": bound,
        "roofline_fraction": fraction,
        "roofline_bound": None if bound is None else (
            "compute" if peak_gflop_s * 1e9 / flops_per_step <= peak_gb_s * 1e9 / bytes_per_step else "memory"),
        "cpu_model": cpu_model(),
        "device": device_kind(),
    }


if __name__ == "__main__":  # python -m rec_jax.roofline: print this machine's peaks
    import json

    print(json.dumps({**measure_peaks(), "cpu_model": cpu_model(), "device_kind": device_kind()}))
