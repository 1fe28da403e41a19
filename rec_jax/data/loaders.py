"""Interaction loaders: GroupLens ``u.data`` / ``ratings.dat``, RecBole ``.inter``, CSV,
SASRec ``user item`` text, Parquet (:mod:`rec_jax.data.columnar`).

All loaders return an ``Interactions`` in file order. Parsing is vectorized (a C reader
on the file itself: Arrow's or NumPy's, see ``TEXT_READER``); when anything is
irregular, the lines are rescanned in Python to report the first offending line and field
as one ``DataError``,
e.g. ``ratings.csv line 17: field 'timestamp' is 'abc', expected an integer``.
Line numbers are 1-based and count the header and blank lines.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rec_jax.data.columnar import arrow_text, is_parquet, load_parquet
from rec_jax.data.errors import DataError

_INT_RE = re.compile(r"^\s*[+-]?\d+\s*$")

# The C reader for one-character delimiters (CSV, u.data, .inter, user-item .txt): "arrow"
# (pyarrow's multi-threaded CSV reader) or "numpy" (np.loadtxt). Chosen by timing an
# ML-20M-shaped ratings.csv (README, "Data formats"); both give identical arrays.
TEXT_READER = "arrow"


@dataclass(frozen=True, eq=False)
class Interactions:
    """A log of (user, item, timestamp[, rating]) events, raw ids, in file order.

    user: i64[M]       raw user ids
    item: i64[M]       raw item ids
    timestamp: i64[M]  event times (zeros if the file has none: file order then decides)
    rating: f32[M] | None
    source: str        where it came from (a path or a generator name)
    """

    user: np.ndarray
    item: np.ndarray
    timestamp: np.ndarray
    rating: np.ndarray | None
    source: str

    def __post_init__(self):
        m = len(self.user)
        for name in ("item", "timestamp") + (("rating",) if self.rating is not None else ()):
            if len(getattr(self, name)) != m:
                raise DataError(f"{self.source}: field '{name}' has {len(getattr(self, name))} rows, expected {m}")

    def __len__(self) -> int:
        return len(self.user)

    @property
    def num_interactions(self) -> int:
        return len(self.user)

    def select(self, keep: np.ndarray) -> "Interactions":
        """Rows where boolean ``keep: bool[M]`` is True (file order preserved)."""
        return Interactions(self.user[keep], self.item[keep], self.timestamp[keep],
                            None if self.rating is None else self.rating[keep], self.source)


@dataclass(frozen=True)
class _Column:
    field: str    # our name: user, item, timestamp, rating
    index: int    # 0-based column in the file
    kind: str     # "int", "float", or "intfloat" (a float column whose values must be integral)
    label: str = ""  # the column's name in the file, for messages (default: ``field``)

    @property
    def name(self) -> str:
        return self.label or self.field


def load_interactions(path: str | Path) -> Interactions:
    """Load an interaction file, dispatching on its name.

    ``*.inter`` RecBole atomic file; ``*.dat`` (``ratings.dat``) ``::``-separated
    user::item::rating::timestamp; ``*.csv`` with header ``user,item,timestamp[,rating]``;
    ``u.data`` / ``*.data`` / ``*.tsv`` tab-separated user item rating timestamp, no header;
    ``*.txt`` the SASRec / BERT4Rec repositories' ``user item`` pairs; ``*.parquet`` / ``*.pq``
    (or any file starting with Parquet's magic bytes) through :func:`load_parquet`.
    A name without an extension is read by its content (:func:`_load_by_content`).
    """
    path = Path(path)
    name = path.name
    _check_file(path)
    if name.endswith((".parquet", ".pq")) or is_parquet(path):
        return load_parquet(path)  # the magic bytes decide: a binary file is never text
    if "." not in name:
        return _load_by_content(path)
    if name.endswith(".inter"):
        return load_inter(path)
    if name.endswith(".dat"):
        return load_ratings_dat(path)
    if name.endswith(".csv"):
        return load_csv(path)
    if name.endswith(".data") or name.endswith(".tsv"):
        return load_udata(path)
    if name.endswith(".txt"):
        return load_user_item(path)
    raise DataError(f"{path}: unknown interaction file format; expected u.data, ratings.dat, "
                    "*.inter (RecBole), *.csv (user,item,timestamp[,rating]), *.txt (user item) "
                    "or *.parquet")


def _load_by_content(path: Path) -> Interactions:
    """A file named without an extension: the first line picks the reader.

    ``::`` -> ratings.dat; a tab and a ``:token``/``:float`` header -> RecBole .inter; a tab
    -> u.data; a comma -> CSV with a header; two space-separated fields -> ``user item``.
    """
    first = _first_line(path)
    if "::" in first:
        return load_ratings_dat(path)
    if "\t" in first:
        return load_inter(path) if re.search(r":(token|float)\b", first) else load_udata(path)
    if "," in first:
        return load_csv(path)
    if len(first.split(" ")) == 2:
        return load_user_item(path)
    raise DataError(f"{path} line 1: cannot tell the format from {first[:80]!r}; expected '::', tab, comma "
                    "or 'user item' separated fields (or name the file .dat/.data/.inter/.csv/.txt/.parquet)")


def load_udata(path: str | Path) -> Interactions:
    """GroupLens ML-100K ``u.data``: ``user\\titem\\trating\\ttimestamp``, no header."""
    cols = [_Column("user", 0, "int"), _Column("item", 1, "int"),
            _Column("rating", 2, "float"), _Column("timestamp", 3, "int")]
    return _load(path, 0, "\t", 4, cols)


def load_user_item(path: str | Path) -> Interactions:
    """The SASRec / BERT4Rec repositories' ``user item`` format: one space-separated pair a line,
    integer ids, no header, no timestamp; within a user, file order is time order. The timestamps
    are all 0, so :func:`rec_jax.data.build_sequences` (ties in file order) keeps that order."""
    cols = [_Column("user", 0, "int"), _Column("item", 1, "int")]
    return _load(path, 0, " ", 2, cols)


def load_ratings_dat(path: str | Path) -> Interactions:
    """GroupLens ML-1M/10M ``ratings.dat``: ``user::item::rating::timestamp``, no header."""
    cols = [_Column("user", 0, "int"), _Column("item", 1, "int"),
            _Column("rating", 2, "float"), _Column("timestamp", 3, "int")]
    return _load(path, 0, "::", 4, cols)


def load_inter(path: str | Path) -> Interactions:
    """RecBole atomic ``.inter``: tab-separated, header ``name:type`` per column.

    Columns are found by name: ``user_id``, ``item_id`` (required, integer values),
    ``rating`` and ``timestamp`` (optional; a ``:float`` timestamp must hold integral values).
    """
    first = _first_line(path)
    header = first.split("\t")
    names = {}
    for j, h in enumerate(header):
        base, _, typ = h.strip().partition(":")
        names[base] = (j, typ)
    cols = []
    for field, key in (("user", "user_id"), ("item", "item_id"), ("rating", "rating"), ("timestamp", "timestamp")):
        if key not in names:
            if field in ("user", "item"):
                raise DataError(f"{path} line 1: header has no '{key}' column (got {header!r})")
            continue
        j, typ = names[key]
        kind = "float" if field == "rating" else ("intfloat" if typ == "float" else "int")
        cols.append(_Column(field, j, kind, key))
    return _load(path, 1, "\t", len(header), cols)


def load_csv(path: str | Path) -> Interactions:
    """CSV with a header naming ``user``, ``item``, ``timestamp`` and optionally ``rating``.

    Columns may come in any order; ``user_id`` / ``item_id`` and MovieLens-20M's ``userId`` /
    ``movieId`` (its ``ratings.csv``) are accepted as aliases.
    Fields must not be quoted.
    """
    first = _first_line(path)
    header = [h.strip() for h in first.split(",")]
    aliases = {"user_id": "user", "item_id": "item", "userId": "user", "movieId": "item"}
    index = {aliases.get(h, h): j for j, h in enumerate(header)}
    cols = []
    for field, kind in (("user", "int"), ("item", "int"), ("timestamp", "int"), ("rating", "float")):
        if field in index:
            cols.append(_Column(field, index[field], kind, header[index[field]]))
        elif field != "rating":
            raise DataError(f"{path} line 1: header has no '{field}' column; "
                            f"expected user,item,timestamp[,rating], got {first!r}")
    return _load(path, 1, ",", len(header), cols)


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if not path.is_file():
        raise DataError(f"{path}: not a file")


def _first_line(path: str | Path) -> str:
    """The first line (the header), after the file checks; a file of blank lines is empty."""
    path = Path(path)
    _check_file(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
        if not first.strip() and not any(line.strip() for line in f):
            raise DataError(f"{path}: file is empty")
    return first.rstrip("\r\n")


def _load(path, skip: int, delim: str, num_fields: int, cols: list[_Column]) -> Interactions:
    """A C reader (``TEXT_READER``; NumPy's for multi-character delimiters, which Arrow lacks), or
    when it declines (any irregularity) the single-threaded line-by-line :func:`_parse`, which
    names the first bad line and field."""
    path = Path(path)
    _check_file(path)
    fast = None
    if TEXT_READER == "arrow" and len(delim) == 1:
        fast = arrow_text(path, skip, delim, num_fields, cols)
    elif TEXT_READER == "numpy" or len(delim) > 1:
        fast = _fast_parse(path, skip, delim, num_fields, cols)
    return fast if fast is not None else _parse(path, _read_lines(path), skip, delim, num_fields, cols)


def _fast_parse(path: Path, skip: int, delim: str, num_fields: int, cols: list[_Column]):
    """NumPy's C reader straight on the file (20 M rows: ~3 s, against ~19 s through Python lines),
    or None when anything is irregular: an unparsable field, a missing column, a row with more
    fields than the header (caught by counting every delimiter in the body), a non-integral
    ``intfloat``, no rows, a byte that is not UTF-8. None sends the file to the located-error path.
    """
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    body = data
    for _ in range(skip):
        body = body[body.find(b"\n") + 1:] if b"\n" in body else b""
    source = path
    npdelim = delim
    if len(delim) > 1:  # loadtxt wants one character: ``::`` -> \x1f in memory
        import io

        source = io.StringIO(body.decode("utf-8").replace(delim, "\x1f"))
        npdelim, skip = "\x1f", 0
    order = np.argsort([c.index for c in cols])
    cols_sorted = [cols[i] for i in order]
    dtype = [(c.field, np.int64 if c.kind == "int" else np.float64) for c in cols_sorted]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": the slow path says it in one line
            table = np.loadtxt(source, delimiter=npdelim, dtype=dtype, usecols=[c.index for c in cols_sorted],
                               comments=None, skiprows=skip, ndmin=1, encoding="utf-8")
    except Exception:  # noqa: BLE001 - any failure: the slow path finds and names it
        return None
    m = len(table)
    if m == 0 or body.count(delim.encode()) != m * (num_fields - 1):
        return None
    out = {}
    for c in cols:
        v = table[c.field]
        if c.kind == "intfloat":
            if not np.all(np.isfinite(v) & (v == np.floor(v))):
                return None
            v = v.astype(np.int64)
        out[c.field] = v
    return _interactions(out, m, path)


def _interactions(columns: dict, m: int, path) -> Interactions:
    """The parsed ``columns`` ({"user": ..., "item": ..., ["timestamp"], ["rating"]}) of m rows."""
    return Interactions(
        user=columns["user"].astype(np.int64),
        item=columns["item"].astype(np.int64),
        timestamp=columns["timestamp"].astype(np.int64) if "timestamp" in columns else np.zeros(m, np.int64),
        rating=columns["rating"].astype(np.float32) if "rating" in columns else None,
        source=str(path),
    )


def _read_lines(path: str | Path) -> list[str]:
    path = Path(path)
    _check_file(path)
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataError(f"{path}: file is empty")
    return lines


def _parse(path, lines: list[str], skip: int, delim: str, num_fields: int,
           cols: list[_Column]) -> Interactions:
    """Vectorized parse of ``lines[skip:]``; any failure becomes one located DataError."""
    body = lines[skip:]
    line_no = np.flatnonzero([bool(s.strip()) for s in body]) + skip + 1  # 1-based file line numbers
    rows = [lines[i - 1] for i in line_no]
    if not rows:
        raise DataError(f"{path}: no interactions after the header")
    counts = np.fromiter((r.count(delim) for r in rows), np.int64, count=len(rows))
    bad = np.flatnonzero(counts != num_fields - 1)
    if len(bad):
        k = bad[0]
        raise DataError(f"{path} line {line_no[k]}: expected {num_fields} fields separated by "
                        f"{delim!r}, got {counts[k] + 1}: {rows[k]!r}")
    npdelim = delim
    if len(delim) > 1:  # loadtxt wants one character; field counts were checked above
        rows = [r.replace(delim, "\x1f") for r in rows]
        npdelim = "\x1f"
    dtype = [(c.field, {"int": np.int64, "float": np.float64, "intfloat": np.float64}[c.kind]) for c in cols]
    order = np.argsort([c.index for c in cols])  # loadtxt returns usecols in file order
    dtype = [dtype[i] for i in order]
    cols_sorted = [cols[i] for i in order]
    try:
        table = np.loadtxt(rows, delimiter=npdelim, dtype=dtype, usecols=[c.index for c in cols_sorted],
                           comments=None, ndmin=1)
    except ValueError as e:
        _raise_first_bad_field(path, lines, line_no, delim, cols_sorted, e)
        raise  # unreachable
    out = {}
    for c in cols:
        v = table[c.field]
        if c.kind == "intfloat":
            bad = np.flatnonzero(~np.isfinite(v) | (v != np.floor(v)))
            if len(bad):
                k = bad[0]
                raise DataError(f"{path} line {line_no[k]}: field '{c.name}' is "
                                f"{lines[line_no[k] - 1].split(delim)[c.index].strip()!r}, expected an integer value")
            v = v.astype(np.int64)
        out[c.field] = v
    m = len(rows)
    return _interactions(out, m, path)


def _raise_first_bad_field(path, lines, line_no, delim, cols, err: Exception):
    for n in line_no:
        fields = lines[n - 1].split(delim)
        for c in cols:
            value = fields[c.index].strip()
            if c.kind == "int":
                ok = bool(_INT_RE.match(value))
                what = "an integer"
            else:
                what = "a number"
                try:
                    ok = "_" not in value and value != "" and (float(value) or True)
                except ValueError:
                    ok = False
            if not ok:
                raise DataError(f"{path} line {n}: field '{c.name}' is {value!r}, expected {what}") from None
    raise DataError(f"{path}: could not parse ({err})") from None
