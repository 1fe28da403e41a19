"""Sliding windows against a Python brute force; deterministic fixed-shape batches."""
import jax
import numpy as np
import pytest

from rec_jax.data import Interactions, batch_indices, build_sequences, make_windows


def _seqs(lengths, seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(len(lengths)), lengths)
    return build_sequences(Interactions(users, rng.integers(1, 50, len(users)), np.arange(len(users)), None, "t"))


@pytest.mark.parametrize("max_len,stride", [(4, 4), (4, 1), (4, 3), (5, 2), (1, 1), (8, 8)])
def test_windows_each_target_once_with_correct_context(max_len, stride):
    lengths = [1, 2, 3, 4, 5, 6, 7, 9, 12, 17, 30]
    users = np.repeat(np.arange(len(lengths)), lengths)
    # every event has its own item, so an item id tells its (user, position)
    seqs = build_sequences(Interactions(users, np.arange(len(users)), np.arange(len(users)), None, "t"))
    where = {int(i): (u, t) for u in range(seqs.num_users) for t, i in enumerate(seqs.seq(u))}
    w = make_windows(seqs, max_len, stride)
    L = max_len
    assert w.seq.shape == (len(w), L + 1) and w.target_mask.shape == (len(w), L)
    assert w.seq.dtype == np.int32 and w.user.dtype == np.int32 and w.target_mask.dtype == bool
    counted = {}
    for k in range(len(w)):
        row = w.seq[k].tolist()
        real = [x for x in row if x != 0]
        assert row == [0] * (L + 1 - len(real)) + real  # left padding only
        u, t0 = where[real[0]]
        assert u == w.user[k]
        assert real == seqs.seq(u)[t0:t0 + len(real)].tolist()  # consecutive items of one user
        assert len(real) == L + 1 or t0 == 0  # padding only when the window starts the sequence
        for j in np.flatnonzero(w.target_mask[k]):
            assert row[j] != 0 and row[j + 1] != 0
            _, t = where[row[j + 1]]
            counted[(u, t)] = counted.get((u, t), 0) + 1
            context = [x for x in row[:j + 1] if x != 0]
            assert len(context) >= min(t, L - stride + 1)  # earliest window: most context
    expected = {(u, t) for u, n in enumerate(lengths) for t in range(1, n)}
    assert set(counted) == expected
    assert all(c == 1 for c in counted.values())
    # each user's last window ends at its last item
    for u, n in enumerate(lengths):
        if n >= 2:
            last = w.seq[np.flatnonzero(w.user == u)[-1], -1]
            assert where[int(last)] == (u, n - 1)


def test_windows_bruteforce_exact():
    """Compare with a direct Python construction of the documented rule."""
    lengths = [2, 5, 11, 16]
    seqs = _seqs(lengths, seed=1)
    L, stride = 4, 3
    w = make_windows(seqs, L, stride)
    rows, masks, users = [], [], []
    for u in range(seqs.num_users):
        s = seqs.seq(u).tolist()
        n = len(s)
        ends = [n - 1]
        while ends[-1] > L:
            ends.append(ends[-1] - stride)
        ends = ends[::-1]
        for k, e in enumerate(ends):
            window = [s[p] if p >= 0 else 0 for p in range(e - L, e + 1)]
            lo = 1 if k == 0 else ends[k - 1] + 1
            masks.append([lo <= p <= e for p in range(e - L + 1, e + 1)])
            rows.append(window)
            users.append(u)
    np.testing.assert_array_equal(w.seq, rows)
    np.testing.assert_array_equal(w.target_mask, masks)
    np.testing.assert_array_equal(w.user, users)


def test_windows_stride_equal_len_do_not_overlap():
    seqs = _seqs([23, 9])
    w = make_windows(seqs, 5, 5)
    # every real target is counted and windows cover disjoint positions
    assert w.target_mask.sum() == (23 - 1) + (9 - 1)
    for k in range(len(w)):
        real_targets = w.seq[k, 1:] != 0
        real_inputs = w.seq[k, :-1] != 0
        np.testing.assert_array_equal(w.target_mask[k], real_targets & real_inputs)


def test_windows_bad_args():
    with pytest.raises(ValueError):
        make_windows(_seqs([5]), 4, 5)


def test_batch_indices_shuffle_is_uniform():
    """Over E = 500 epochs every example sits at every position with probability 1/n:
    each count of the n x n table is Bin(E, 1/n) (mean 50, sd 6.7 for n = 10); allowed
    5 sd (P < 6e-7 per cell, < 6e-5 over the 100 cells). Consecutive epochs' orders
    are independent: the number of examples kept at their position is the fixed-point
    count of a uniform permutation (mean 1, variance 1), so its mean over the E - 1
    pairs has sd 1 / sqrt(E - 1); a shuffle that repeated or merely rotated would fail
    one of the two."""
    n, epochs = 10, 500
    key = jax.random.key(1)
    orders = np.stack([batch_indices(key, e, n, 3)[0].reshape(-1)[:n] for e in range(epochs)])  # [E, n]
    counts = np.zeros((n, n))
    np.add.at(counts, (np.broadcast_to(np.arange(n), orders.shape), orders), 1)
    p = 1.0 / n
    assert np.all(np.abs(counts - epochs * p) <= 5 * np.sqrt(epochs * p * (1 - p))), counts
    kept = (orders[1:] == orders[:-1]).sum(1).mean()
    assert abs(kept - 1.0) <= 5 / np.sqrt(epochs - 1), kept


@pytest.mark.parametrize("n,b", [(10, 3), (12, 4), (1, 8), (7, 7)])
def test_batch_indices(n, b):
    key = jax.random.key(0)
    idx, valid = batch_indices(key, 3, n, b)
    nb = -(-n // b)
    assert idx.shape == valid.shape == (nb, b)
    assert idx.dtype == np.int32 and valid.dtype == bool
    assert sorted(idx[valid].tolist()) == list(range(n))  # a permutation of all examples
    assert valid.sum() == n and not valid.reshape(-1)[n:].any()
    assert valid.reshape(-1)[:n].all() and not idx.reshape(-1)[n:].any()  # padding: index 0, at the end
    idx2, _ = batch_indices(key, 3, n, b)
    np.testing.assert_array_equal(idx, idx2)
    if n >= 10:
        idx3, _ = batch_indices(key, 4, n, b)
        assert not np.array_equal(idx, idx3)
