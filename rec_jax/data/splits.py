"""Leave-one-out and k-fold user splits, and full-ranking evaluation arrays."""
from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from rec_jax.data.errors import DataError
from rec_jax.data.fast_ids import sorted_unique
from rec_jax.data.preprocess import SequenceData


@dataclass(frozen=True, eq=False)
class LOOSplit:
    """Leave-one-out split (SASRec/RecBole protocol): last item test, second-to-last valid.

    train: SequenceData      each user's sequence minus its last 2 items
    valid_target: i32[U]     each user's second-to-last item
    test_target: i32[U]      each user's last item
    full: SequenceData       the unsplit sequences (same users and item ids)
    """

    train: SequenceData
    valid_target: np.ndarray
    test_target: np.ndarray
    full: SequenceData


@dataclass(frozen=True, eq=False)
class EvalArrays:
    """Inputs for full-ranking evaluation of one stage.

    inputs: i32[U, L]          history, LEFT-padded with 0; the most recent item is in column L-1
    targets: i32[U]            the held-out item to rank
    seen_offsets: i64[U+1]     CSR row offsets into ``seen_items``
    seen_items: i32[nnz]       per user, every item anywhere in the input history (not only the
                               last L), unique and sorted, never 0. Mask these before ranking. If
                               the target itself occurs earlier in the history it is listed too.
    num_items: int             N (item ids are 1..N)

    No [U, N+1] array is held: :meth:`seen_mask` builds the dense mask of some rows, and
    :attr:`seen` that of every row (only for small catalogues: U x (N+1) bytes).
    """

    inputs: np.ndarray
    targets: np.ndarray
    seen_offsets: np.ndarray
    seen_items: np.ndarray
    num_items: int

    @property
    def num_users(self) -> int:
        return int(self.inputs.shape[0])

    def seen_counts(self, rows=None) -> np.ndarray:
        """i64[R]: how many distinct items each row (all rows if None) has seen."""
        counts = np.diff(self.seen_offsets)
        return counts if rows is None else counts[np.asarray(rows)]

    def seen_lists(self, rows=None, width: int | None = None) -> np.ndarray:
        """i32[R, width] each row's seen items, right-padded with 0 (width: the rows' max count
        if None; a smaller width raises)."""
        rows = np.arange(self.num_users) if rows is None else np.asarray(rows)
        starts = self.seen_offsets[rows]
        counts = self.seen_offsets[rows + 1] - starts
        need = int(counts.max()) if len(counts) else 0
        width = need if width is None else int(width)
        if width < need:
            raise ValueError(f"seen_lists: width={width} < the longest seen list ({need})")
        out = np.zeros((len(rows), width), np.int32)
        flat, row_of, col = _ranges(starts, counts)
        out[row_of, col] = self.seen_items[flat]
        return out

    def seen_mask(self, rows=None) -> np.ndarray:
        """bool[R, N+1] dense seen mask of ``rows`` (all rows if None); column 0 is False."""
        rows = np.arange(self.num_users) if rows is None else np.asarray(rows)
        starts = self.seen_offsets[rows]
        counts = self.seen_offsets[rows + 1] - starts
        out = np.zeros((len(rows), self.num_items + 1), bool)
        flat, row_of, _ = _ranges(starts, counts)
        out[row_of, self.seen_items[flat]] = True
        return out

    @property
    def seen(self) -> np.ndarray:
        """bool[U, N+1] dense seen mask of every user: ONLY for small catalogues (U x (N+1)
        bytes, 3.7 GB at ML-20M's shape); large consumers use ``seen_lists``/``seen_mask(rows)``."""
        return self.seen_mask()

    def take(self, rows) -> "EvalArrays":
        """The same arrays restricted to ``rows`` (indices or a slice), in that order."""
        rows = np.arange(self.num_users)[rows] if isinstance(rows, slice) else np.asarray(rows)
        starts = self.seen_offsets[rows]
        counts = self.seen_offsets[rows + 1] - starts
        flat, _, _ = _ranges(starts, counts)
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return EvalArrays(inputs=self.inputs[rows], targets=self.targets[rows], seen_offsets=offsets,
                          seen_items=self.seen_items[flat], num_items=self.num_items)


def _ranges(starts: np.ndarray, counts: np.ndarray):
    """Flattened ``[starts[r], starts[r] + counts[r])`` ranges: (positions, row of each, column in row)."""
    counts = np.asarray(counts, np.int64)
    total = int(counts.sum())
    row_of = np.repeat(np.arange(len(counts)), counts)
    begin = np.cumsum(counts) - counts  # where each row starts in the flat output
    col = np.arange(total, dtype=np.int64) - begin[row_of]
    return np.asarray(starts, np.int64)[row_of] + col, row_of, col


def seen_csr(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int):
    """CSR of the distinct nonzero (user, item) pairs: (offsets i64[U+1], items i32[nnz]), each
    row sorted. Built from one sort of the pairs, never a [U, N+1] array."""
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    keep = items > 0
    keys = sorted_unique(users[keep] * (num_items + 1) + items[keep])
    row = keys // (num_items + 1)
    offsets = np.zeros(num_users + 1, np.int64)
    np.cumsum(np.bincount(row, minlength=num_users), out=offsets[1:])
    return offsets, (keys % (num_items + 1)).astype(np.int32)


def leave_one_out(seqs: SequenceData) -> LOOSplit:
    """Split off each user's last two items. Users with < 3 items raise ``DataError``
    (they would have an empty training sequence); a 3-core or stronger filter avoids it."""
    lengths = seqs.lengths
    short = np.flatnonzero(lengths < 3)
    if len(short):
        raise DataError(f"leave_one_out: {len(short)} users have fewer than 3 interactions "
                        f"(e.g. raw user {seqs.raw_user_ids[short[0]]} has {lengths[short[0]]}); "
                        "filter with min_user >= 3")
    ends = seqs.offsets[1:]
    keep = np.ones(len(seqs.items), bool)
    keep[ends - 1] = False
    keep[ends - 2] = False
    train = SequenceData(
        offsets=seqs.offsets - 2 * np.arange(seqs.num_users + 1, dtype=np.int64),
        items=seqs.items[keep],
        timestamps=seqs.timestamps[keep],
        num_users=seqs.num_users,
        num_items=seqs.num_items,
        raw_user_ids=seqs.raw_user_ids,
        raw_item_ids=seqs.raw_item_ids,
    )
    return LOOSplit(train=train, valid_target=seqs.items[ends - 2].astype(np.int32),
                    test_target=seqs.items[ends - 1].astype(np.int32), full=seqs)


def eval_arrays(split: LOOSplit, stage: str, max_len: int) -> EvalArrays:
    """Evaluation inputs for ``stage`` "valid" (history = train prefix) or "test"
    (history = train prefix + the valid item), truncated to the last ``max_len`` items."""
    if stage not in ("valid", "test"):
        raise ValueError(f"eval_arrays: stage={stage!r}, expected 'valid' or 'test'")
    if max_len < 1:
        raise ValueError(f"eval_arrays: max_len={max_len}, expected >= 1")
    full = split.full
    held = 2 if stage == "valid" else 1
    starts = full.offsets[:-1]
    ends = full.offsets[1:] - held  # exclusive end of the history in full.items
    # Column j holds position ends - L + j; positions before the user's start are padding.
    pos = ends[:, None] - max_len + np.arange(max_len)[None, :]
    real = pos >= starts[:, None]
    inputs = np.where(real, full.items[np.where(real, pos, 0)], 0).astype(np.int32)
    hist = np.ones(len(full.items), bool)
    hist[full.offsets[1:, None] - np.arange(1, held + 1)[None, :]] = False
    offsets, items = seen_csr(full.user_of_position[hist], full.items[hist], full.num_users, full.num_items)
    targets = split.valid_target if stage == "valid" else split.test_target
    return EvalArrays(inputs=inputs, targets=targets.astype(np.int32), seen_offsets=offsets,
                      seen_items=items, num_items=int(full.num_items))


def kfold_users(num_users: int, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split users 0..num_users-1 into ``k`` disjoint test folds (sizes differ by <= 1).

    Returns ``[(train_users i64[], test_users i64[])] * k``, each sorted; the test folds
    partition all users and each train set is the complement of its test fold. The
    shuffle is ``jax.random.permutation(jax.random.key(seed), num_users)``, so it is
    the same on every machine for a given seed.
    """
    if k < 2 or k > num_users:
        raise ValueError(f"kfold_users: k={k}, expected 2 <= k <= num_users={num_users}")
    perm = np.asarray(jax.random.permutation(jax.random.key(seed), num_users)).astype(np.int64)
    folds = []
    for test in np.array_split(perm, k):
        test = np.sort(test)
        mask = np.ones(num_users, bool)
        mask[test] = False
        folds.append((np.flatnonzero(mask).astype(np.int64), test))
    return folds
