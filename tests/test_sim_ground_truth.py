"""Ground-truth matrix factorisation and the cached ML-100K factory (on tiny generated data)."""
import types

import jax
import numpy as np
import pytest

from rec_jax.sim import ground_truth as gtm
from rec_jax.sim import make_env


def tiny_seqs(num_users=8, num_items=10, per_user=6, seed=0):
    """Two taste groups: users < U/2 like items < N/2, the others the rest (learnable structure)."""
    rng = np.random.default_rng(seed)
    items = []
    for u in range(num_users):
        pool = np.arange(1, num_items // 2 + 1) if u < num_users // 2 else np.arange(num_items // 2 + 1, num_items + 1)
        items.append(rng.choice(pool, per_user))
    offsets = np.arange(num_users + 1, dtype=np.int64) * per_user
    return types.SimpleNamespace(offsets=offsets, items=np.concatenate(items).astype(np.int32),
                                 num_users=num_users, num_items=num_items)


FIT = dict(dim=4, epochs=30, num_negatives=3, batch_size=16, learning_rate=0.05)


def test_fit_lowers_loss_is_deterministic_and_learns_groups():
    seqs = tiny_seqs()
    key = jax.random.key(3)
    init = gtm.fit_ground_truth(seqs, **{**FIT, "epochs": 0}, key=key)
    fit1 = gtm.fit_ground_truth(seqs, **FIT, key=key)
    fit2 = gtm.fit_ground_truth(seqs, **FIT, key=key)
    fit3 = gtm.fit_ground_truth(seqs, **FIT, key=jax.random.key(4))
    assert fit1.user_factors.shape == (8, 4) and fit1.item_factors.shape == (10, 4) and fit1.item_bias.shape == (10,)
    eval_key = jax.random.key(99)
    loss0 = gtm.ground_truth_loss(init, seqs, eval_key)
    loss1 = gtm.ground_truth_loss(fit1, seqs, eval_key)
    assert loss1 < 0.7 * loss0, (loss0, loss1)
    for a, b in zip(jax.tree.leaves(fit1), jax.tree.leaves(fit2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(fit1.user_factors), np.asarray(fit3.user_factors))
    # the fitted scores rank a user's own group above the other group
    scores = np.asarray(fit1.user_factors @ fit1.item_factors.T + fit1.item_bias)
    own = np.where(np.arange(8)[:, None] < 4, np.arange(10)[None] < 5, np.arange(10)[None] >= 5)
    assert (scores[own].reshape(8, 5).mean(1) > scores[~own].reshape(8, 5).mean(1)).all()


def test_fit_rejects_bad_ids_and_save_load_roundtrip(tmp_path):
    seqs = tiny_seqs()
    bad = types.SimpleNamespace(**{**vars(seqs), "items": np.where(seqs.items == 1, 0, seqs.items)})
    with pytest.raises(ValueError, match="items must be ids"):
        gtm.fit_ground_truth(bad, **FIT)
    gt = gtm.synthetic_ground_truth(jax.random.key(0), 5, 7, 3)
    gtm.save_ground_truth(gt, tmp_path / "gt.npz")
    back = gtm.load_ground_truth(tmp_path / "gt.npz")
    for a, b in zip(jax.tree.leaves(gt), jax.tree.leaves(back)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_ml100k_factory_fits_once_then_reads_cache(tmp_path, monkeypatch):
    import rec_jax.data as data

    seqs = tiny_seqs(num_users=12, num_items=10)
    calls = []
    monkeypatch.setenv("REC_JAX_DATA", str(tmp_path))
    monkeypatch.setattr(data, "load", lambda name: calls.append(name) or seqs)
    fits = []
    real_fit = gtm.fit_ground_truth
    monkeypatch.setattr(gtm, "fit_ground_truth", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    sim1, p1 = make_env("ml100k", dim=4, epochs=5, slate_size=2, target_ctr=0.1)
    cached = list((tmp_path / "sim").glob("ml-100k_gt_d4_e5_s0_*.npz"))
    assert len(cached) == 1 and calls == ["ml-100k"] and len(fits) == 1
    sim2, p2 = make_env("ml100k", dim=4, epochs=5, slate_size=2, target_ctr=0.1)
    assert len(fits) == 1  # second build read the cache
    assert (sim1.num_items, sim1.feature_dim) == (sim2.num_items, sim2.feature_dim) == (10, 4)
    for a, b in zip(jax.tree.leaves(p1), jax.tree.leaves(p2)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
