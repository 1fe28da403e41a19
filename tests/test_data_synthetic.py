"""Synthetic logs: deterministic, well-formed, and carrying their latent structure."""
import numpy as np

from rec_jax.data import build_sequences, load, synthetic_interactions


def test_deterministic_by_seed():
    a, ta = synthetic_interactions(num_users=20, num_items=30, seq_len=(5, 10), seed=1)
    b, tb = synthetic_interactions(num_users=20, num_items=30, seq_len=(5, 10), seed=1)
    c, _ = synthetic_interactions(num_users=20, num_items=30, seq_len=(5, 10), seed=2)
    for f in ("user", "item", "timestamp"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    np.testing.assert_array_equal(ta.transition, tb.transition)
    assert not (len(a) == len(c) and np.array_equal(a.item, c.item))


def test_well_formed():
    inter, truth = synthetic_interactions(num_users=30, num_items=40, seq_len=(5, 12), num_clusters=4, seed=0)
    seqs = build_sequences(inter)
    assert seqs.num_users == 30
    assert np.all((seqs.lengths >= 5) & (seqs.lengths <= 12))
    assert inter.item.min() >= 1 and inter.item.max() <= 40
    for u in range(seqs.num_users):
        s = seqs.seq(u)
        assert len(set(s.tolist())) == len(s)  # no repeats: seen-masking never hides a target
        ts = seqs.timestamps[seqs.offsets[u]:seqs.offsets[u + 1]]
        assert np.all(np.diff(ts) > 0)
    np.testing.assert_allclose(truth.transition.sum(1), 1.0)
    np.testing.assert_allclose(truth.user_pref.sum(1), 1.0)
    for c in range(4):
        np.testing.assert_allclose(truth.item_weight[truth.item_cluster == c].sum(), 1.0)


def test_markov_structure_is_learnable():
    inter, truth = synthetic_interactions(seed=0)
    seqs = build_sequences(inter)
    prev, nxt = [], []
    for u in range(seqs.num_users):
        cl = truth.item_cluster[seqs.raw_item_ids[seqs.seq(u)]]
        prev.append(cl[:-1])
        nxt.append(cl[1:])
    prev, nxt = np.concatenate(prev), np.concatenate(nxt)
    markov_acc = np.mean(truth.successor[prev] == nxt)
    popular_acc = np.max(np.bincount(nxt)) / len(nxt)
    # The dominant successor carries >= 0.7 * markov_weight of the next-cluster mass.
    assert markov_acc > 0.45 and markov_acc > popular_acc + 0.2


def test_load_synthetic_default():
    seqs = load("synthetic")
    inter, _ = synthetic_interactions()
    assert seqs.num_users == len(np.unique(inter.user))
    assert seqs.num_interactions <= len(inter)
