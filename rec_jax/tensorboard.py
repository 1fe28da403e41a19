"""TensorBoard event files beside a run's JSON record: a writer and a reader.

    with EventLog(run_dir) as log:                  # run_dir/tb/events.out.tfevents.*
        log.scalars(epoch, {"train/loss": 0.71, "valid/ndcg@10": 0.12})
        curve_to_events(log, "bernoulli/ucb1", {"ctr": ctr_t, "cum_regret": regret_t})
    read_scalars(run_dir / "tb")                    # {"train/loss": [(0, 0.71)], ...}

``tensorboard --logdir runs`` then shows every run. Tags are written verbatim (so they
match the metrics.json keys, ``@`` included: TensorBoard displays any tag string;
only TensorFlow op names are restricted). Values are stored as float32
(``Summary.Value.simple_value``), so a read value equals ``float(np.float32(x))``.

Restarts: ``EventLog(run_dir, purge_step=s)`` writes a NEW file that starts with a
``SessionLog.START`` at step ``s``, TensorBoard's marker for "discard what earlier
files logged at steps >= s" (a run killed after its last checkpoint logged epochs
that the resumed run logs again). :func:`read_scalars` applies the same rule, reading
the files in name order as TensorBoard does (names start with the creation second).
"""
from __future__ import annotations

import math
import numbers
import struct
import time
from pathlib import Path
from typing import Mapping

import numpy as np

SUBDIR = "tb"  # event files live in run_dir/tb, beside metrics.json
MAX_POINTS = 1000  # default cap on the points one curve_to_events call writes per tag


def _scalar(value, tag: str = "?") -> float | None:
    """``value`` as a finite float; None for what is skipped by design (None, strings,
    bools, NaN / inf, arrays that are not 0-d: NaN history slots, per-k vectors); a
    ``TypeError`` naming ``tag`` for anything else that is not a real number."""
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        return None
    if not isinstance(value, (numbers.Real, np.ndarray)):
        try:  # a 0-d jax.Array or another array-like scalar
            value = np.asarray(value)
        except Exception as e:  # noqa: BLE001: re-raised with the tag
            raise TypeError(f"EventLog.scalars: {tag!r}: cannot convert a {type(value).__name__} to a "
                            f"number ({type(e).__name__}: {e})") from e
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind in "bUS":
            return None
        if value.dtype.kind not in "iuf":
            raise TypeError(f"EventLog.scalars: {tag!r}: expected a real number, got a 0-d {value.dtype} array")
        value = value.item()
    value = float(value)
    return value if math.isfinite(value) else None


class EventLog:
    """A TensorBoard event file in ``run_dir/subdir`` (a context manager).

    The file is created at the first write, so a log never written leaves nothing.
    ``purge_step``: when given, readers (TensorBoard, :func:`read_scalars`) discard what
    earlier files in the folder logged at steps >= it; ``"first"`` means the step of
    this log's first write (a run that may continue a killed one: whatever the killed
    run logged from there on is superseded).
    """

    def __init__(self, run_dir: str | Path, subdir: str = SUBDIR, *, purge_step: int | str | None = None):
        if not (purge_step is None or purge_step == "first" or isinstance(purge_step, int)):
            raise ValueError(f"purge_step: expected None, an int or 'first', got {purge_step!r}")
        self.dir = Path(run_dir) / subdir
        self._purge_step = purge_step
        self._writer = None

    def _open(self, step: int):
        from tensorboardX import SummaryWriter

        self.dir.mkdir(parents=True, exist_ok=True)
        purge = step if self._purge_step == "first" else self._purge_step
        # The library names files by the creation SECOND and the host; a nanosecond
        # suffix keeps two logs opened within one second apart and in creation order.
        self._writer = SummaryWriter(str(self.dir), purge_step=purge, flush_secs=10, max_queue=1024,
                                     filename_suffix=f".{time.time_ns()}")
        return self._writer

    def scalars(self, step: int, values: Mapping[str, object]) -> int:
        """Log ``{tag: value}`` at ``step`` as one event; skips non-finite values, strings,
        bools, None and arrays that are not 0-d (NaN history slots); a value that is none of
        these and no real number (an object, a complex, a traced value) is a TypeError
        naming its tag. Returns how many were written."""
        from tensorboardX.proto.summary_pb2 import Summary

        kept = [(str(tag), v) for tag, v in ((t, _scalar(x, str(t))) for t, x in values.items()) if v is not None]
        if kept:
            writer = self._writer or self._open(int(step))
            summary = Summary(value=[Summary.Value(tag=tag, simple_value=v) for tag, v in kept])
            # Through the file writer, not add_scalar: add_scalar rewrites '@' and other
            # characters TensorFlow forbids in op names, and these tags are metrics.json keys.
            writer.file_writer.add_summary(summary, global_step=int(step))
        return len(kept)

    def flush(self) -> None:
        """Put what is queued on disk (so a live TensorBoard, or a killed run, sees it)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> "EventLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def curve_to_events(log: EventLog, tag_prefix: str, curves, *, steps=None, every: int | None = None,
                    max_points: int = MAX_POINTS, reduce: str = "last") -> int:
    """Write already-computed per-step curves, subsampled, step by step.

    curves: f[T] (tag ``tag_prefix``) or ``{name: f[T]}`` (tags ``tag_prefix/name``),
    all of one length T. steps: int[T], the step of each entry (default 1..T).
    every: keep every ``every``-th entry (default: the smallest that keeps at most
    ``max_points``); the last entry is always kept, so a cumulative curve's final
    value is exact. reduce: ``"last"`` writes the kept entry itself (right for
    cumulative and running-mean curves); ``"mean"`` writes the mean of the entries
    since the previous kept one (right for noisy per-step values).
    Returns the number of events (steps) written.
    """
    named = {tag_prefix: curves} if not isinstance(curves, Mapping) else {
        f"{tag_prefix}/{name}" if tag_prefix else name: y for name, y in curves.items()}
    arrays = {tag: np.asarray(y, np.float64) for tag, y in named.items()}
    lengths = {y.shape for y in arrays.values()}
    if not arrays or len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValueError(f"curves: expected 1-D arrays of one length T, got shapes {sorted(lengths)}")
    (T,) = lengths.pop()
    steps = np.arange(1, T + 1) if steps is None else np.asarray(steps)
    if steps.shape != (T,):
        raise ValueError(f"steps: expected shape ({T},) like the curves, got {steps.shape}")
    if reduce not in ("last", "mean"):
        raise ValueError(f"reduce: expected 'last' or 'mean', got {reduce!r}")
    if every is None:
        every = max(1, -(-T // max(1, max_points)))  # ceil(T / max_points) entries are kept
    if every < 1:
        raise ValueError(f"every: expected >= 1, got {every}")
    kept = np.unique(np.concatenate([np.arange(every - 1, T, every), [T - 1]])) if T else np.zeros(0, int)
    if reduce == "mean":
        starts = np.concatenate([[0], kept[:-1] + 1])
        values = {tag: np.add.reduceat(y, starts) / (kept - starts + 1) for tag, y in arrays.items()}
    else:
        values = {tag: y[kept] for tag, y in arrays.items()}
    for j, i in enumerate(kept):
        log.scalars(int(steps[i]), {tag: v[j] for tag, v in values.items()})
    return len(kept)


def _records(path: Path):
    """The payloads of one TFRecord file: u64 length, u32 masked crc of it, payload,
    u32 masked crc of the payload. A truncated tail (a killed writer) ends the file;
    a CRC mismatch elsewhere is a ValueError."""
    from tensorboardX.record_writer import masked_crc32c

    data = path.read_bytes()
    pos = 0
    while pos + 12 <= len(data):
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (header_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if masked_crc32c(header) != header_crc:
            raise ValueError(f"{path}: corrupt record header at byte {pos} (length CRC mismatch)")
        end = pos + 12 + length + 4
        if end > len(data):
            return  # truncated tail
        payload = data[pos + 12:pos + 12 + length]
        (payload_crc,) = struct.unpack("<I", data[end - 4:end])
        if masked_crc32c(payload) != payload_crc:
            raise ValueError(f"{path}: corrupt record at byte {pos} (payload CRC mismatch)")
        yield payload
        pos = end


def read_scalars(folder: str | Path) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` from the event files in ``folder`` (e.g. ``run_dir/tb``),
    in file-name then write order, honouring purge markers as TensorBoard does."""
    from tensorboardX.proto.event_pb2 import Event, SessionLog

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: no such folder of event files")
    files = sorted(p for p in folder.glob("events.out.tfevents.*") if p.is_file())
    out: dict[str, list[tuple[int, float]]] = {}
    for path in files:
        for payload in _records(path):
            event = Event.FromString(payload)
            if event.HasField("session_log") and event.session_log.status == SessionLog.START:
                out = {tag: [(s, v) for s, v in points if s < event.step] for tag, points in out.items()}
                out = {tag: points for tag, points in out.items() if points}
            if event.HasField("summary"):
                for value in event.summary.value:
                    if value.HasField("simple_value"):
                        out.setdefault(value.tag, []).append((int(event.step), float(value.simple_value)))
    return out
