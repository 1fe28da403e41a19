"""Synthetic logs at the shapes of the public data sets, written in their own file layouts.

Used by ``experiments/bench_scale.py`` to time loading, preprocessing, training and ranking at
scale without the real files (which no wheel ships). Each shape gives the published counts
(users, items, rows) and the layout of its file:

* ``ml20m``: ``ratings.csv`` like MovieLens-20M: header ``userId,movieId,rating,timestamp``,
  138,493 users, 26,744 items, 20,000,263 rows, half-star ratings, rows sorted by user then item
  (as in the GroupLens file, so the loader's time sort is exercised), sparse movie ids.
* ``ml1m``: ``ratings.dat`` like MovieLens-1M: ``user::item::rating::timestamp``, 6,040 users,
  3,706 items, 1,000,209 rows.
* ``catalog1m``: ``ratings.csv`` with 100,000 users, 1,000,000 items, 10,000,000 rows; every item
  drawn at least 5 times (a floor), so the 5-core filter keeps a catalogue of about a million.

Popularity: a Zipf-like law ``p(rank) ∝ rank^-skew`` mixed with 10% uniform; user lengths
log-normal (sigma 1), at least ``min_len`` (20 for MovieLens, 5 for catalog1m),
capped at half of the catalogue; one row per (user, item) pair, like a ratings file. The counts are exact.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


@dataclasses.dataclass(frozen=True)
class LogShape:
    """The published size and file layout of one data set."""

    name: str
    num_users: int
    num_items: int
    num_rows: int
    file_name: str      # ratings.csv or ratings.dat
    min_len: int        # fewest rows per user
    item_floor: int     # every item appears at least this often (0: popularity alone)
    skew: float = 1.0   # Zipf exponent of item popularity
    max_item_id: int = 0  # raw item ids are a sorted sample of 1..max_item_id (0: 1..num_items)


SHAPES = {
    "ml20m": LogShape("ml20m", 138_493, 26_744, 20_000_263, "ratings.csv", 20, 0, max_item_id=131_262),
    "ml1m": LogShape("ml1m", 6_040, 3_706, 1_000_209, "ratings.dat", 20, 0, max_item_id=3_952),
    "catalog1m": LogShape("catalog1m", 100_000, 1_000_000, 10_000_000, "ratings.csv", 5, 5, skew=0.8),
}


def get_shape(name: str, scale: float = 1.0) -> LogShape:
    """The shape ``name`` scaled down for tests: users and rows x ``scale``, items x sqrt(scale) (so
    the per-user lengths still fit the smaller catalogue; x scale for a shape with an item floor)."""
    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r}; expected one of: {', '.join(SHAPES)}")
    if not 0 < scale <= 1:
        raise ValueError(f"scale={scale}: expected 0 < scale <= 1")
    s = SHAPES[name]
    if scale == 1:
        return s
    # with an item floor, items scale like rows (the floor stays the same share of the rows)
    items = s.num_items * (scale if s.item_floor else scale ** 0.5)
    users, items = max(2, round(s.num_users * scale)), max(4, round(items))
    rows = max(users * s.min_len + items * s.item_floor, round(s.num_rows * scale))
    return dataclasses.replace(s, num_users=users, num_items=items, num_rows=rows,
                               max_item_id=max(items, round(s.max_item_id * scale ** 0.5)) if s.max_item_id else 0)


def _lengths(rng, shape: LogShape) -> np.ndarray:
    """i64[U] rows per user: log-normal, >= min_len, <= half the items, summing to num_rows."""
    cap = max(shape.min_len, shape.num_items // 2)
    if shape.num_users * cap < shape.num_rows:
        raise ValueError(f"{shape.name}: {shape.num_rows} rows do not fit {shape.num_users} users x {cap} items each")
    raw = rng.lognormal(0.0, 1.0, shape.num_users)
    extra = shape.num_rows - shape.min_len * shape.num_users
    lengths = np.minimum(cap, shape.min_len + np.floor(raw / raw.sum() * extra)).astype(np.int64)
    while (short := shape.num_rows - lengths.sum()) > 0:  # the floors and the cap: hand out the rest
        room = np.flatnonzero(lengths < cap)
        add = rng.choice(room, size=min(short, len(room)), replace=False)
        lengths[add] += 1
    return lengths


def _pairs(rng, shape: LogShape, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(users i64[M], items i64[M]) distinct pairs, user u holding lengths[u] of them, sorted.

    Rounds of popularity draws, each for the users still short of their length only, deduplicated
    against those users' pairs (so a round costs what it draws, not the whole log), oversampling
    more each round (heavy users exhaust the popular items); the surplus is trimmed at random.
    """
    n = shape.num_items
    popularity = np.arange(1, n + 1, dtype=np.float64) ** -shape.skew
    popularity = 0.9 * popularity / popularity.sum() + 0.1 / n
    items_by_rank = rng.permutation(n)  # the popular items are scattered over the id range
    parts = []
    have = np.zeros(shape.num_users, np.int64)
    if shape.item_floor:  # every item item_floor times, for random users drawn by their lengths
        floor_items = np.repeat(np.arange(n), shape.item_floor)
        owners = rng.choice(shape.num_users, size=floor_items.size, p=lengths / lengths.sum())
        keys = np.unique(owners * n + floor_items)
        keys = _trim(rng, keys, np.bincount(keys // n, minlength=shape.num_users) - lengths, n)
        parts.append(keys)
        have += np.bincount(keys // n, minlength=shape.num_users)
    for factor in (1.1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128) + (256,) * 40:
        need = lengths - have
        if not need.any():
            keys = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
            return keys // n, keys % n
        short = need > 0
        users = np.repeat(np.arange(shape.num_users), np.ceil(need * factor + 2).astype(np.int64) * short)
        fresh = np.unique(users * n + items_by_rank[rng.choice(n, size=users.size, p=popularity)])
        if parts:  # against the pairs the short users already hold
            held = np.concatenate([p[short[p // n]] for p in parts])
            fresh = fresh[~np.isin(fresh, held, assume_unique=True)]
        fresh = _trim(rng, fresh, np.bincount(fresh // n, minlength=shape.num_users) - need, n)
        parts.append(fresh)
        have += np.bincount(fresh // n, minlength=shape.num_users)
    raise RuntimeError(f"{shape.name}: could not draw distinct pairs for every user")


def _trim(rng, keys: np.ndarray, surplus: np.ndarray, n: int) -> np.ndarray:
    """Drop ``surplus[u]`` random keys of each user u with a positive surplus (keys sorted by user)."""
    if not (surplus > 0).any():
        return keys
    user = keys // n
    rank = np.empty(keys.size, np.int64)  # a random rank of each key within its user
    order = np.lexsort((rng.random(keys.size), user))
    starts = np.searchsorted(user[order], user[order], side="left")
    rank[order] = np.arange(keys.size) - starts
    count = np.bincount(user, minlength=surplus.size)
    return keys[rank < count[user] - np.maximum(surplus, 0)[user]]


def synthesize(shape: LogShape, seed: int = 0) -> dict[str, np.ndarray]:
    """The log's columns, in the file's row order: user, item (raw ids), rating x 10 (int), timestamp."""
    rng = np.random.default_rng(seed)
    lengths = _lengths(rng, shape)
    users, items = _pairs(rng, shape, lengths)
    ids = (np.arange(1, shape.num_items + 1) if not shape.max_item_id else
           np.sort(rng.choice(np.arange(1, shape.max_item_id + 1), shape.num_items, replace=False)))
    start = rng.integers(946_684_800, 1_420_070_400, shape.num_users)  # 2000-01-01 .. 2015-01-01
    timestamp = start[users] + rng.integers(0, 86_400 * 365, users.size)
    rating = rng.integers(1, 11, users.size) * 5  # 0.5 .. 5.0 stars, times ten
    return {"user": users + 1, "item": ids[items], "rating10": rating, "timestamp": timestamp}


def _digits(values: np.ndarray, decimal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(u8[M, W] right-aligned ASCII digits, i64[M] widths) of non-negative ints; ``decimal``: the
    value is ten times a number with one decimal, written with a point (35 -> "3.5")."""
    values = np.asarray(values, np.int64)
    width = int(np.floor(np.log10(max(1, int(values.max(initial=1)))))) + 1
    width = max(width, 2) if decimal else width
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = (values[:, None] // powers[None, :]) % 10 + ord("0")
    lens = np.maximum(1, np.floor(np.log10(np.maximum(values, 1))).astype(np.int64) + 1)
    if decimal:  # "d.d": the point goes before the last digit
        lens = np.maximum(lens, 2)
        digits = np.concatenate([digits[:, :-1], np.full((len(values), 1), ord(".")), digits[:, -1:]], axis=1)
        lens = lens + 1
    return digits.astype(np.uint8), lens


def format_rows(columns: list[tuple[np.ndarray, bool]], sep: bytes) -> bytes:
    """The text of rows joined by ``sep`` and ending in newlines, formatted by NumPy, not per row.

    columns: [(non-negative ints i64[M], decimal)], see :func:`_digits`.
    """
    parts, keep = [], []
    for j, (values, decimal) in enumerate(columns):
        digits, lens = _digits(values, decimal)
        parts.append(digits)
        keep.append(np.arange(digits.shape[1])[None, :] >= digits.shape[1] - lens[:, None])
        end = np.frombuffer(sep if j + 1 < len(columns) else b"\n", np.uint8)
        parts.append(np.broadcast_to(end, (len(values), end.size)))
        keep.append(np.ones((len(values), end.size), bool))
    table = np.concatenate(parts, axis=1)
    return table[np.concatenate(keep, axis=1)].tobytes()


def write_log(shape: LogShape, directory: str | Path, seed: int = 0, rows_per_block: int = 2_000_000) -> Path:
    """Write ``shape``'s synthetic log into ``directory`` (its file name), atomically; returns the path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / shape.file_name
    cols = synthesize(shape, seed)
    dat = shape.file_name.endswith(".dat")
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        if not dat:
            f.write(b"userId,movieId,rating,timestamp\n")
        for lo in range(0, len(cols["user"]), rows_per_block):
            block = slice(lo, lo + rows_per_block)
            if dat:  # ML-1M's ratings are whole stars
                rating = (np.maximum(10, cols["rating10"][block]) // 10, False)
            else:
                rating = (cols["rating10"][block], True)
            f.write(format_rows([(cols["user"][block], False), (cols["item"][block], False), rating,
                                 (cols["timestamp"][block], False)], b"::" if dat else b","))
    tmp.replace(path)
    return path
