"""k-core and sequence building against slow pure-Python references."""
from collections import Counter

import numpy as np
import pytest

from rec_jax.data import DataError, Interactions, build_sequences, kcore_filter


def _random_log(seed, m=400, users=40, items=30):
    rng = np.random.default_rng(seed)
    return Interactions(
        user=rng.integers(0, users, m) * 7 + 3,  # sparse raw ids
        item=(rng.zipf(1.5, m) % items) * 11 + 5,
        timestamp=rng.integers(0, 20, m),  # many ties
        rating=rng.random(m).astype(np.float32),
        source="random",
    )


def _kcore_bruteforce(rows, mu, mi):
    """Peel one offending row at a time until none is left (the k-core is unique)."""
    rows = list(rows)
    while True:
        uc = Counter(r[1] for r in rows)
        ic = Counter(r[2] for r in rows)
        bad = [r for r in rows if uc[r[1]] < mu or ic[r[2]] < mi]
        if not bad:
            return rows
        rows.remove(bad[0])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mu,mi", [(5, 5), (3, 8), (1, 1), (10, 2)])
def test_kcore_matches_bruteforce(seed, mu, mi):
    inter = _random_log(seed)
    rows = list(zip(range(len(inter)), inter.user.tolist(), inter.item.tolist()))
    expected = _kcore_bruteforce(rows, mu, mi)
    if not expected:
        with pytest.raises(DataError, match="no interactions left"):
            kcore_filter(inter, mu, mi)
        return
    out = kcore_filter(inter, mu, mi)
    kept = [r[0] for r in expected]
    np.testing.assert_array_equal(out.user, inter.user[kept])
    np.testing.assert_array_equal(out.item, inter.item[kept])
    np.testing.assert_array_equal(out.rating, inter.rating[kept])
    assert min(Counter(out.user.tolist()).values()) >= mu
    assert min(Counter(out.item.tolist()).values()) >= mi


def test_kcore_nothing_left_raises():
    inter = Interactions(np.array([1, 2]), np.array([1, 1]), np.array([0, 0]), None, "tiny.csv")
    with pytest.raises(DataError, match="tiny.csv"):
        kcore_filter(inter, 5, 5)


@pytest.mark.parametrize("seed", range(4))
def test_build_sequences_matches_python(seed):
    inter = _random_log(seed)
    seqs = build_sequences(inter)
    raw_users = sorted(set(inter.user.tolist()))
    raw_items = sorted(set(inter.item.tolist()))
    item_id = {r: k + 1 for k, r in enumerate(raw_items)}
    assert seqs.num_users == len(raw_users) and seqs.num_items == len(raw_items)
    np.testing.assert_array_equal(seqs.raw_user_ids, raw_users)
    np.testing.assert_array_equal(seqs.raw_item_ids[1:], raw_items)
    assert seqs.items.dtype == np.int32 and seqs.offsets.dtype == np.int64
    assert seqs.items.min() >= 1 and seqs.items.max() == seqs.num_items
    for u, raw_u in enumerate(raw_users):
        # Python's sort is stable: ties in timestamp keep file order.
        events = sorted((t, k, i) for k, (uu, i, t) in
                        enumerate(zip(inter.user.tolist(), inter.item.tolist(), inter.timestamp.tolist()))
                        if uu == raw_u)
        assert seqs.seq(u).tolist() == [item_id[i] for _, _, i in events]
        np.testing.assert_array_equal(seqs.timestamps[seqs.offsets[u]:seqs.offsets[u + 1]], [t for t, _, _ in events])
        # raw ids round-trip
        assert [seqs.raw_item_ids[i] for i in seqs.seq(u)] == [i for _, _, i in events]


def test_build_sequences_remap_ignores_file_order():
    inter = _random_log(0)
    perm = np.random.default_rng(1).permutation(len(inter))
    shuffled = Interactions(inter.user[perm], inter.item[perm], inter.timestamp[perm], None, "s")
    a, b = build_sequences(inter), build_sequences(shuffled)
    np.testing.assert_array_equal(a.raw_item_ids, b.raw_item_ids)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    # Without ties the sequences are equal too.
    inter2 = Interactions(inter.user, inter.item, np.arange(len(inter)), None, "t")
    shuffled2 = Interactions(inter.user[perm], inter.item[perm], np.arange(len(inter))[perm], None, "t")
    np.testing.assert_array_equal(build_sequences(inter2).items, build_sequences(shuffled2).items)
