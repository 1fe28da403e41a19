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
