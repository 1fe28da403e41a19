"""The run record every experiment writes (docs/DESIGN.md, "Run record").

``runs/<name>/config.json`` (resolved config + provenance), ``metrics.json`` (flat
``/``-separated keys), curves and figures. Files are written atomically (temp file
+ rename) so a killed run never leaves a half-written record.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

_PACKAGES = ("rec_jax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")


def provenance() -> dict[str, Any]:
    """Package versions, git commit, device kind and count, date, host."""
    import jax

    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    devices = jax.devices()
    return {
        "versions": versions,
        "git_commit": commit,
        "device_kind": devices[0].device_kind,
        "device_platform": devices[0].platform,
        "device_count": len(devices),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
    }


def _jsonable(obj):
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON atomically (a temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False) as f:
        json.dump(payload, f, indent=2, sort_keys=True, default=_jsonable)
        f.write("\n")
        tmp = f.name
    os.replace(tmp, path)


def write_config(out_dir: str | Path, config: Any, **extra: Any) -> None:
    """``out_dir/config.json``: the resolved config, provenance and any extra fields."""
    payload = {"config": config, "provenance": provenance(), **extra}
    write_json(Path(out_dir) / "config.json", payload)


def plot_mean_ci(ax, t, y, **plot_kwargs) -> None:
    """Mean over seeds of ``y`` f[seeds, T] against ``t`` with a 95% Student-t band."""
    import numpy as np

    from rec_jax.eval.confidence import t_ci95

    y = np.asarray(y, np.float64)
    mean, ci = y.mean(0), t_ci95(y)
    ax.plot(t, mean, **plot_kwargs)
    ax.fill_between(t, mean - ci, mean + ci, alpha=0.2)


def save_figure(fig, path: str | Path) -> None:
    """Save a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)


@contextlib.contextmanager
def staged_run_dir(out: str | Path):
    """Yield a temp folder beside ``out`` to write a run into; when the block ends
    normally it replaces ``out`` in one rename, otherwise it is removed, so ``out`` is
    never half-written (a reader sees the old run or the new one)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
