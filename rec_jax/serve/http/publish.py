"""Versioned output heads that a learner publishes and the service swaps in.

    version = publish_head(run_dir, head, note={...})     # "v0003"
    latest = latest_version(run_dir)                      # "v0003" or None
    head = load_head(run_dir, "v0003", template)          # Head(table, bias)

Layout under ``<run>/published/``: one folder per version (``v0001``, ...) holding
``head.npz`` (the :class:`rec_jax.serve.recommend.Head` arrays) and ``meta.json``,
and a ``LATEST`` file naming the version in force. A version folder is written
under a temporary name and renamed when complete, and ``LATEST`` is replaced
atomically after it, so a learner killed at any point leaves ``LATEST`` naming a
complete version: the service keeps serving the last good one.

The encoder is never published here (only the head): every cached user state stays
exact across a swap (:mod:`rec_jax.serve.online` explains the choice).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

LATEST = "LATEST"


def _root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "published"


def latest_version(run_dir: str | Path) -> str | None:
    path = _root(run_dir) / LATEST
    try:
        name = path.read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def next_version(run_dir: str | Path) -> str:
    root = _root(run_dir)
    numbers = [int(p.name[1:]) for p in root.glob("v[0-9]*") if p.is_dir() and p.name[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1:04d}"


def publish_head(run_dir: str | Path, head, note: dict | None = None) -> str:
    """Write ``head`` as the next version and make it the one in force; returns its name."""
    root = _root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    version = next_version(run_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    try:
        np.savez(tmp / "head.npz", table=np.asarray(head.table, np.float32), bias=np.asarray(head.bias, np.float32))
        (tmp / "meta.json").write_text(json.dumps({"version": version, **(note or {})}, indent=2, sort_keys=True))
        os.replace(tmp, root / version)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pointer = root / f".{LATEST}.tmp{os.getpid()}"
    pointer.write_text(version + "\n")
    os.replace(pointer, root / LATEST)
    return version


def load_head(run_dir: str | Path, version: str, template):
    """The published head ``version``, checked against ``template``'s shapes (a Head)."""
    from rec_jax.serve.recommend import Head

    path = _root(run_dir) / version / "head.npz"
    with np.load(path) as arrays:
        table, bias = arrays["table"], arrays["bias"]
    if table.shape != tuple(template.table.shape) or bias.shape != tuple(template.bias.shape):
        raise ValueError(f"{path}: head of shapes {table.shape}, {bias.shape}; the model needs "
                         f"{tuple(template.table.shape)}, {tuple(template.bias.shape)}")
    if not (np.all(np.isfinite(table)) and np.all(np.isfinite(bias))):
        raise ValueError(f"{path}: non-finite head parameters")
    return Head(table=table, bias=bias)
