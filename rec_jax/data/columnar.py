"""Columnar readers through pyarrow: Parquet files, and delimited text by Arrow's CSV reader.

Why pyarrow rather than polars: pyarrow is the reference implementation of both Parquet and the
Arrow in-memory format that pandas, polars, DuckDB and Hugging Face ``datasets`` exchange, so a
Parquet file any of them writes reads back here column for column, with the same types; polars
would add a second engine (and a second Parquet implementation) for the same two formats.

Errors stay one line naming the file, the line (text) or row (Parquet) and the field. Arrow's
multi-threaded CSV reader reports no reliable line number, so :func:`arrow_text` only says
"irregular" (returns None) and the caller re-scans the file single-threaded with the located-error
line parser (:func:`rec_jax.data.loaders._parse`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rec_jax.data.errors import DataError

# Column names a Parquet file may use for each field (the CSV loader accepts the same aliases).
PARQUET_NAMES = {
    "user": ("user", "user_id", "userId", "UserID"),
    "item": ("item", "item_id", "movieId", "MovieID", "itemId"),
    "timestamp": ("timestamp", "Timestamp", "time", "ts"),
    "rating": ("rating", "Rating"),
}
PARQUET_MAGIC = b"PAR1"


def is_parquet(path: str | Path) -> bool:
    """True when the file starts with Parquet's magic bytes (whatever its name)."""
    with open(path, "rb") as f:
        return f.read(4) == PARQUET_MAGIC


def arrow_text(path: Path, skip: int, delim: str, num_fields: int, cols):
    """Arrow's (multi-threaded) CSV reader on a one-character-delimited file, or None.

    ``cols``: the loader's ``_Column`` list (field, 0-based index, kind). Returns an
    ``Interactions`` when every row has exactly ``num_fields`` fields and every selected field
    parses (``int`` as int64, ``float`` as float64, ``intfloat`` as an integral float64); None on
    anything else (a short or long row, an empty or non-numeric field, no rows), which sends the
    file to the line parser that names the line. Quotes are not special (as in the line parser),
    empty lines are skipped, nothing is read as null.
    """
    import pyarrow as pa
    from pyarrow import csv

    names = [f"f{j}" for j in range(num_fields)]
    types = {f"f{c.index}": (pa.int64() if c.kind == "int" else pa.float64()) for c in cols}
    try:
        table = csv.read_csv(
            path,
            read_options=csv.ReadOptions(skip_rows=skip, column_names=names, use_threads=True,
                                         block_size=1 << 24),
            parse_options=csv.ParseOptions(delimiter=delim, quote_char=False, double_quote=False,
                                           ignore_empty_lines=True),
            convert_options=csv.ConvertOptions(column_types=types, include_columns=list(types),
                                               null_values=[], strings_can_be_null=False,
                                               quoted_strings_can_be_null=False),
        )
    except (pa.ArrowException, OSError, ValueError):
        return None
    m = table.num_rows
    if m == 0 or any(table.column(n).null_count for n in types):
        return None
    from rec_jax.data.loaders import _interactions

    out = {}
    for c in cols:
        v = table.column(f"f{c.index}").to_numpy()
        if c.kind == "intfloat":
            if not np.all(np.isfinite(v) & (v == np.floor(v))):
                return None
            v = v.astype(np.int64)
        out[c.field] = v
    return _interactions(out, m, path)


def load_parquet(path: str | Path):
    """A Parquet interaction log: columns found by name, rows in file order.

    Needed: a user and an item column (``user``/``user_id``/``userId``, ``item``/``item_id``/
    ``movieId``), integer-valued (any integer type, an integral float, or strings of integers).
    Optional: ``timestamp`` (integer, integral float, or an Arrow timestamp, kept in its own
    unit: only the order matters) and ``rating`` (a number). Without a timestamp, file order is
    time order. Errors: one ``DataError`` line naming the file and, for a bad value, the 1-based
    data row and field, e.g. ``x.parquet row 3: field 'user' is 'u7', expected an integer``.
    """
    import pyarrow as pa
    from pyarrow import parquet as pq

    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: not a readable Parquet file ({_one_line(e)})") from None
    found = list(schema.names)
    chosen = {}
    for field, aliases in PARQUET_NAMES.items():
        hit = [a for a in aliases if a in found]
        if hit:
            chosen[field] = hit[0]
    if "user" not in chosen or "item" not in chosen:
        raise DataError(f"{path}: Parquet columns {found} lack {'user' if 'user' not in chosen else 'item'}; "
                        "expected user (or user_id/userId), item (or item_id/movieId), "
                        "optional timestamp and rating")
    try:
        table = pq.read_table(path, columns=list(chosen.values()), use_threads=True)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: could not read Parquet columns {list(chosen.values())} ({_one_line(e)})") from None
    m = table.num_rows
    if m == 0:
        raise DataError(f"{path}: no interactions (0 rows)")
    out = {}
    for field, name in chosen.items():
        col = table.column(name).combine_chunks()
        out[field] = _as_number(path, name, col, integral=field != "rating")
    from rec_jax.data.loaders import _interactions

    return _interactions(out, m, path)


def _as_number(path: Path, name: str, col, integral: bool) -> np.ndarray:
    """One Parquet column as int64 (``integral``) or float64; a bad value names its row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    what = "an integer" if integral else "a number"
    if col.null_count:
        row = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0]) + 1
        raise DataError(f"{path} row {row}: field '{name}' is null, expected {what}")
    t = col.type
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_duration(t):
        if not integral:
            raise DataError(f"{path}: field '{name}' has type {t}, expected {what}")
        return col.cast(pa.int64()).to_numpy()
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        if pa.types.is_uint64(t) and pc.max(col).as_py() > np.iinfo(np.int64).max:
            row = int(np.argmax(col.to_numpy() > np.iinfo(np.int64).max)) + 1
            raise DataError(f"{path} row {row}: field '{name}' is {col[row - 1].as_py()}, expected an int64 value")
        v = col.cast(pa.int64()).to_numpy()
        return v if integral else v.astype(np.float64)
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        v = col.cast(pa.float64()).to_numpy()
        if integral:
            bad = np.flatnonzero(~np.isfinite(v) | (v != np.floor(v)))
            if len(bad):
                raise DataError(f"{path} row {bad[0] + 1}: field '{name}' is {v[bad[0]]!r}, expected an integer value")
            return v.astype(np.int64)
        return v
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:  # Arrow's vectorised cast; on failure, a single pass finds the row to name
            return col.cast(pa.int64() if integral else pa.float64()).to_numpy()
        except pa.ArrowException:
            conv = int if integral else float
            out = np.empty(len(col), np.int64 if integral else np.float64)
            for row, s in enumerate(col.to_pylist()):
                try:  # Python's int() also takes what Arrow refuses (" 7"), as the text parser does
                    out[row] = conv(s)
                except (ValueError, OverflowError):
                    raise DataError(f"{path} row {row + 1}: field '{name}' is {s!r}, expected {what}") from None
            return out
    raise DataError(f"{path}: field '{name}' has type {t}, expected {what}")


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())
