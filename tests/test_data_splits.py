"""Leave-one-out, eval arrays and k-fold against Python references."""
import numpy as np
import pytest

from rec_jax.data import (DataError, build_sequences, eval_arrays, kcore_filter, kfold_users, leave_one_out,
                          synthetic_interactions)
from rec_jax.data.loaders import Interactions


@pytest.fixture(scope="module")
def seqs():
    inter, _ = synthetic_interactions(num_users=30, num_items=40, seq_len=(3, 25), seed=3)
    return build_sequences(kcore_filter(inter, 3, 1))


def test_loo_disjoint_and_complete(seqs):
    split = leave_one_out(seqs)
    for u in range(seqs.num_users):
        full = seqs.seq(u).tolist()
        train = split.train.seq(u).tolist()
        # train + valid + test is the full sequence, in order, each entry once
        assert train + [split.valid_target[u], split.test_target[u]] == full
        np.testing.assert_array_equal(split.train.timestamps[split.train.offsets[u]:split.train.offsets[u + 1]],
                                      seqs.timestamps[seqs.offsets[u]:seqs.offsets[u + 1] - 2])
    assert split.train.num_interactions + 2 * seqs.num_users == seqs.num_interactions
    assert split.valid_target.dtype == np.int32 and split.test_target.dtype == np.int32


def test_loo_short_users_raise():
    inter = Interactions(np.array([1, 1, 1, 2, 2]), np.array([1, 2, 3, 1, 2]), np.arange(5), None, "x")
    with pytest.raises(DataError, match="fewer than 3"):
        leave_one_out(build_sequences(inter))


@pytest.mark.parametrize("stage", ["valid", "test"])
@pytest.mark.parametrize("max_len", [1, 4, 30])
def test_eval_arrays_against_python(seqs, stage, max_len):
    split = leave_one_out(seqs)
    ev = eval_arrays(split, stage, max_len)
    U, N = seqs.num_users, seqs.num_items
    assert ev.inputs.shape == (U, max_len) and ev.inputs.dtype == np.int32
    assert ev.seen.shape == (U, N + 1) and ev.seen.dtype == bool
    for u in range(U):
        full = seqs.seq(u).tolist()
        hist = full[:-2] if stage == "valid" else full[:-1]
        tail = hist[-max_len:]
        assert ev.inputs[u].tolist() == [0] * (max_len - len(tail)) + tail
        assert ev.targets[u] == (full[-2] if stage == "valid" else full[-1])
        assert set(np.flatnonzero(ev.seen[u]).tolist()) == set(hist)


@pytest.mark.parametrize("stage", ["valid", "test"])
def test_seen_csr_equals_dense_reference(seqs, stage):
    """The CSR seen lists against the old dense construction (a NumPy loop); rows, take and the lists."""
    split = leave_one_out(seqs)
    ev = eval_arrays(split, stage, 4)
    held = 2 if stage == "valid" else 1
    ref = np.zeros((seqs.num_users, seqs.num_items + 1), bool)
    for u in range(seqs.num_users):
        for item in seqs.seq(u)[:-held]:
            ref[u, item] = True
    ref[:, 0] = False
    assert ev.seen_offsets.dtype == np.int64 and ev.seen_items.dtype == np.int32
    assert ev.seen_offsets.shape == (seqs.num_users + 1,) and ev.num_items == seqs.num_items
    for u in range(seqs.num_users):
        row = ev.seen_items[ev.seen_offsets[u]:ev.seen_offsets[u + 1]]
        np.testing.assert_array_equal(row, np.flatnonzero(ref[u]))  # unique, sorted, no 0
    np.testing.assert_array_equal(ev.seen, ref)
    rows = np.array([5, 0, 7, 7])
    np.testing.assert_array_equal(ev.seen_mask(rows), ref[rows])
    sub = ev.take(rows)
    np.testing.assert_array_equal(sub.seen, ref[rows])
    np.testing.assert_array_equal(sub.inputs, ev.inputs[rows])
    np.testing.assert_array_equal(sub.targets, ev.targets[rows])
    np.testing.assert_array_equal(ev.take(slice(0, 3)).seen, ref[:3])
    lists = ev.seen_lists(rows)
    for r, u in enumerate(rows):
        assert set(lists[r][lists[r] > 0].tolist()) == set(np.flatnonzero(ref[u]).tolist())


def test_eval_arrays_bad_stage(seqs):
    with pytest.raises(ValueError, match="stage"):
        eval_arrays(leave_one_out(seqs), "train", 5)


@pytest.mark.parametrize("num_users,k", [(10, 5), (23, 4), (7, 7), (100, 2)])
def test_kfold_disjoint_complete_deterministic(num_users, k):
    folds = kfold_users(num_users, k, seed=1)
    assert len(folds) == k
    tests = np.concatenate([te for _, te in folds])
    assert sorted(tests.tolist()) == list(range(num_users))  # each user in exactly one test fold
    sizes = [len(te) for _, te in folds]
    assert max(sizes) - min(sizes) <= 1
    for tr, te in folds:
        assert set(tr.tolist()) | set(te.tolist()) == set(range(num_users))
        assert not set(tr.tolist()) & set(te.tolist())
        assert tr.dtype == np.int64 and te.dtype == np.int64
    again = kfold_users(num_users, k, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    if num_users >= 20:
        other = kfold_users(num_users, k, seed=2)
        assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other))


def test_kfold_bad_k():
    with pytest.raises(ValueError):
        kfold_users(3, 5)
