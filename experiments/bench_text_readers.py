"""Time the two C readers of delimited text on one file, as ONE JSON line.

    python experiments/bench_text_readers.py                       # writes an ML-20M-shaped ratings.csv
    python experiments/bench_text_readers.py --path ratings.csv --repeats 3

``arrow_s``: :func:`rec_jax.data.load_interactions` with ``loaders.TEXT_READER = "arrow"``
(pyarrow's multi-threaded CSV reader); ``numpy_s``: the same with ``"numpy"`` (``np.loadtxt`` on
the file plus a delimiter count). Best of ``--repeats`` wall-clock runs each, in this process;
both results are checked equal array for array. Without ``--path`` the log is
:mod:`rec_jax.data.scale_logs`'s ML-20M shape (20,000,263 rows), written to a temporary folder.
"""
from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli


@dataclasses.dataclass(frozen=True)
class Config:
    """Arrow's CSV reader against NumPy's on one file."""

    path: Path | None = None  # a delimited interaction file (default: a synthetic ML-20M ratings.csv)
    scale: float = 1.0  # scale of the synthetic log when --path is not given
    repeats: int = 2  # timed runs per reader (the best counts)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def main(args: Config) -> dict:
    import numpy as np

    from rec_jax.data import loaders
    from rec_jax.data.scale_logs import get_shape, write_log

    tmp = None
    path = args.path
    if path is None:
        tmp = Path(tempfile.mkdtemp(prefix="bench_readers."))
        path = write_log(get_shape("ml20m", args.scale), tmp, 0)
    try:
        out = {"path": str(path), "bytes": os.path.getsize(path), "cpu_model": _cpu_model(),
               "cpu_count": os.cpu_count()}
        results = {}
        saved = loaders.TEXT_READER
        try:
            for reader in ("arrow", "numpy"):
                loaders.TEXT_READER = reader
                best = float("inf")
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    results[reader] = loaders.load_interactions(path)
                    best = min(best, time.perf_counter() - t0)
                out[f"{reader}_s"] = round(best, 3)
        finally:
            loaders.TEXT_READER = saved
        a, b = results["arrow"], results["numpy"]
        out["rows"] = len(a)
        out["equal"] = all(np.array_equal(getattr(a, f), getattr(b, f)) for f in ("user", "item", "timestamp")) and (
            (a.rating is None and b.rating is None) or np.array_equal(a.rating, b.rating))
        out["faster"] = "arrow" if out["arrow_s"] < out["numpy_s"] else "numpy"
        print(json.dumps(out))
        return out
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
