"""Leave-one-out and k-fold user splits, and full-ranking evaluation arrays."""
from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from rec_jax.data.errors import DataError
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

    inputs: i32[U, L]    history, LEFT-padded with 0; the most recent item is in column L-1
    targets: i32[U]      the held-out item to rank
    seen: bool[U, N+1]   True for every item anywhere in the user's input history (not only
                         the last L); column 0 is False. Mask these before ranking. If the
                         target itself occurs earlier in the history it is marked seen too.
    """

    inputs: np.ndarray
    targets: np.ndarray
    seen: np.ndarray


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
    seen = np.zeros((full.num_users, full.num_items + 1), bool)
    hist = np.ones(len(full.items), bool)
    hist[full.offsets[1:, None] - np.arange(1, held + 1)[None, :]] = False
    seen[full.user_of_position[hist], full.items[hist]] = True
    seen[:, 0] = False
    targets = split.valid_target if stage == "valid" else split.test_target
    return EvalArrays(inputs=inputs, targets=targets.astype(np.int32), seen=seen)


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
