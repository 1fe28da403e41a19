"""Sliding training windows over user sequences, and deterministic shuffled batches."""
from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from rec_jax.data.preprocess import SequenceData


@dataclass(frozen=True, eq=False)
class Windows:
    """Fixed-shape next-item training examples.

    seq: i32[W, L+1]          L+1 consecutive items, left-padded with 0. Model inputs are
                              ``seq[:, :-1]``, next-item targets ``seq[:, 1:]``.
    target_mask: bool[W, L]   which targets count in the loss; every target of every user
                              (its 2nd item onwards) is True in exactly one window
    user: i32[W]              the user each window comes from
    """

    seq: np.ndarray
    target_mask: np.ndarray
    user: np.ndarray

    def __len__(self) -> int:
        return len(self.seq)


def make_windows(seqs: SequenceData, max_len: int, stride: int) -> Windows:
    """Cut each user's sequence into windows of ``max_len + 1`` items.

    For a user with items s[0..n-1], windows end at positions e = n-1, n-1-stride,
    n-1-2*stride, ... down to the first e <= max_len (that window starts at s[0],
    left-padded). Each target is counted in the earliest window that contains it,
    where it has the most context: a window's mask covers its last ``stride`` targets
    (those not in the previous window), and a user's first window covers all its
    targets. With stride = L windows do not overlap; with stride < L every counted
    target has at least L - stride + 1 items of context (or its full history).
    Users with fewer than 2 items have no target and give no window; users with
    n <= L+1 items give one left-padded window. Windows are ordered by user, then time.
    """
    if max_len < 1 or not 1 <= stride <= max_len:
        raise ValueError(f"make_windows: max_len={max_len}, stride={stride}; expected 1 <= stride <= max_len")
    L = max_len
    n = seqs.lengths
    # Number of windows: smallest k with n-1 - k*stride <= L, plus one; 0 for users without targets.
    num_win = np.where(n >= 2, 1 + np.maximum(0, -(-(n - 1 - L) // stride)), 0)
    user = np.repeat(np.arange(seqs.num_users), num_win)
    first = np.cumsum(num_win) - num_win  # index of each user's first window
    k_back = np.arange(len(user)) - first[user]  # 0 = a user's latest window
    k_back = num_win[user] - 1 - k_back  # order windows chronologically within a user
    end = n[user] - 1 - k_back * stride  # position of each window's last item
    rel = end[:, None] - L + np.arange(L + 1)[None, :]  # position in the user's sequence
    real = rel >= 0
    idx = seqs.offsets[user][:, None] + np.where(real, rel, 0)
    seq = np.where(real, seqs.items[idx], 0).astype(np.int32)
    t = rel[:, 1:]  # position of each target
    earliest = (k_back == num_win[user] - 1)[:, None]
    mask = (t >= 1) & (earliest | (t > (end - stride)[:, None]))
    return Windows(seq=seq, target_mask=mask, user=user.astype(np.int32))


def batch_indices(key: jax.Array, epoch: int, num_examples: int, batch_size: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled example indices for one epoch, in fixed-shape batches.

    The order is ``jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)``,
    so it depends only on (key, epoch). Returns ``idx: i32[num_batches, B]`` and
    ``valid: bool[num_batches, B]``; the last batch is padded with index 0 and
    ``valid`` False, so every batch has the same shape (no retracing).
    """
    if num_examples < 1 or batch_size < 1:
        raise ValueError(f"batch_indices: num_examples={num_examples}, batch_size={batch_size}; expected >= 1")
    perm = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), num_examples))
    num_batches = -(-num_examples // batch_size)
    idx = np.zeros(num_batches * batch_size, np.int32)
    idx[:num_examples] = perm
    valid = np.arange(num_batches * batch_size) < num_examples
    return idx.reshape(num_batches, batch_size), valid.reshape(num_batches, batch_size)
