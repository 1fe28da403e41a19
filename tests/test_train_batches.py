"""The epoch's batch layout: every window exactly ``repeats`` times, fixed shapes, padding flagged."""
import jax
import numpy as np
import pytest

from rec_jax.train.trainer import epoch_batches


@pytest.mark.parametrize("num_windows,batch_size,repeats", [(10, 4, 1), (10, 4, 3), (7, 7, 2)])
def test_every_window_appears_repeats_times(num_windows, batch_size, repeats):
    order, valid = epoch_batches(jax.random.key(0), num_windows, batch_size, repeats)
    order, valid = np.asarray(order), np.asarray(valid)
    rows = num_windows * repeats
    assert order.shape == valid.shape == (-(-rows // batch_size), batch_size)
    assert valid.sum() == rows and valid.ravel()[:rows].all()  # padding only at the end
    np.testing.assert_array_equal(np.bincount(order[valid], minlength=num_windows), np.full(num_windows, repeats))


def test_order_depends_on_the_key_only():
    a = np.asarray(epoch_batches(jax.random.key(1), 50, 8, 2)[0])
    b = np.asarray(epoch_batches(jax.random.key(1), 50, 8, 2)[0])
    c = np.asarray(epoch_batches(jax.random.key(2), 50, 8, 2)[0])
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_bad_repeats_is_rejected():
    with pytest.raises(ValueError, match="window_repeats=0"):
        epoch_batches(jax.random.key(0), 5, 2, 0)


@pytest.mark.slow  # two compiled training epochs plus the capacity probe (~30 s cold)
def test_compact_loss_epoch_matches_the_dense_epoch():
    """An epoch that scores only the loss positions follows the dense epoch (float reordering only)."""
    import dataclasses

    import jax.numpy as jnp

    from rec_jax.models import make_model
    from rec_jax.train.config import get_preset, model_config
    from rec_jax.train.pipeline import prepare
    from rec_jax.train.trainer import init_train_state, loss_capacity, make_train_epoch

    config = dataclasses.replace(get_preset("tiny-sasrec"), batch_size=64)  # 64 x 12 = 768 positions a step
    prepared = prepare(config)
    model = make_model(config.model, model_config(config, prepared.num_items))
    windows = prepared.windows
    num_windows = int(windows.seq.shape[0])
    capacity = loss_capacity(model, config, windows, 64, jax.random.key(0))
    # the capacity covers the 99th percentile of the loss positions of random batches (NumPy count)
    seq, tm = np.asarray(windows.seq), np.asarray(windows.target_mask)
    in_loss = tm & (seq[:, 1:] > 0) & (seq[:, :-1] > 0)
    rng = np.random.default_rng(0)
    counts = [in_loss[rng.integers(0, num_windows, 64)].sum() for _ in range(400)]
    assert capacity is not None and np.quantile(counts, 0.9) <= capacity < 64 * config.max_len
    results = []
    for cap in (None, capacity):
        state = init_train_state(model, config, jax.random.key(1))
        epoch = make_train_epoch(model, config, num_windows, 64, cap)
        results.append(epoch(state, jnp.asarray(seq), jnp.asarray(tm), jax.random.key(2), jax.random.key(3)))
    (dense_state, dense_loss), (compact_state, compact_loss) = results
    np.testing.assert_allclose(float(compact_loss), float(dense_loss), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(compact_state.params), jax.tree.leaves(dense_state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-5)
