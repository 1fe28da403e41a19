"""From a config to device-ready training windows and evaluation arrays."""
from __future__ import annotations

import dataclasses
from typing import Any

from rec_jax.data.batching import make_windows
from rec_jax.data.splits import eval_arrays, leave_one_out
from rec_jax.train.config import TrainConfig


@dataclasses.dataclass
class PreparedData:
    """Everything a training run reads, built once on the host.

    seqs:  the filtered, remapped per-user sequences (all items).
    split: the leave-one-out split (train prefix, valid item, test item per user).
    windows: training windows over ``split.train`` (``seq int32[W, L+1]``, ``target_mask bool[W, L]``).
    valid, test: EvalArrays (``inputs int32[U, L]``, ``targets int32[U]``, ``seen bool[U, N+1]``).
    """

    seqs: Any
    split: Any
    windows: Any
    valid: Any
    test: Any
    dropped_short_users: int = 0  # users with < 3 interactions left out (``filter="sasrec"`` only)

    @property
    def num_items(self) -> int:
        return int(self.seqs.num_items)

    def stats(self) -> dict[str, int]:
        out = {
            "num_users": int(self.seqs.num_users),
            "num_items": int(self.seqs.num_items),
            "num_interactions": int(self.seqs.items.shape[0]),
        }
        if self.dropped_short_users:
            out["num_users_dropped_short"] = int(self.dropped_short_users)
        return out


def prepare(config: TrainConfig, seqs=None) -> PreparedData:
    """Load (unless ``seqs`` is given), split leave-one-out, and cut training windows.

    The one-pass ``filter="sasrec"`` can leave users with fewer than 3 interactions (no
    valid/test item): they are left out, as SASRec's own evaluation skips them, and counted
    in ``dropped_short_users`` (``num_users_dropped_short`` in the run's metrics). Their 1-2
    rows would give SASRec at most one training target each."""
    if config.window_stride < 1 or config.window_stride > config.max_len:
        raise ValueError(
            f"window_stride={config.window_stride}: expected 1 <= window_stride <= max_len={config.max_len}")
    if seqs is None:
        from rec_jax.data import load

        seqs = load(
            config.data,
            min_user=config.min_user_interactions,
            min_item=config.min_item_interactions,
            filter=config.filter,
        )
    dropped = 0
    if config.filter == "sasrec":
        import numpy as np

        short = seqs.lengths < 3
        dropped = int(short.sum())
        if dropped:
            seqs = subset_users(seqs, np.flatnonzero(~short))
    split = leave_one_out(seqs)
    windows = make_windows(split.train, config.max_len, config.window_stride)
    valid = eval_arrays(split, "valid", config.max_len)
    test = eval_arrays(split, "test", config.max_len)
    return PreparedData(seqs=seqs, split=split, windows=windows, valid=valid, test=test, dropped_short_users=dropped)


def subset_users(seqs, users):
    """The sequences of ``users`` (int[U']) only, same item ids; users renumbered 0..U'-1."""
    import numpy as np

    from rec_jax.data.preprocess import SequenceData

    users = np.asarray(users, np.int64)
    lengths = seqs.lengths[users]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    take = np.concatenate([np.arange(seqs.offsets[u], seqs.offsets[u + 1]) for u in users])
    return SequenceData(offsets=offsets, items=seqs.items[take], timestamps=seqs.timestamps[take],
                        num_users=len(users), num_items=seqs.num_items,
                        raw_user_ids=seqs.raw_user_ids[users], raw_item_ids=seqs.raw_item_ids)


def prepare_fold(config: TrainConfig, seqs, train_users, test_users) -> PreparedData:
    """k-fold over users: train (with LOO validation) on ``train_users``; test held-out users.

    Each held-out user is predicted on its last item from its whole prefix.
    """
    prepared = prepare(config, seqs=subset_users(seqs, train_users))
    held_out = leave_one_out(subset_users(seqs, test_users))
    prepared.test = eval_arrays(held_out, "test", config.max_len)
    prepared.seqs = seqs
    return prepared
