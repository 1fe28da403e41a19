"""_argmax_pick._first_true (the min-over-iota argmax of a bool mask) equals jnp.argmax, rows
with no True included, batched and not; _nth_true_scan finds the (j+1)-th True."""
import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.policies._argmax_pick import _first_true, _nth_true_scan


def test_first_true_equals_argmax():
    rng = np.random.default_rng(0)
    mask = rng.random((64, 37)) < rng.random((64, 1)) * 0.3
    mask[:3] = False  # no True at all: argmax says 0
    np.testing.assert_array_equal(_first_true(jnp.asarray(mask)), jnp.argmax(mask, axis=-1))
    np.testing.assert_array_equal(jax.vmap(_first_true)(jnp.asarray(mask)), np.argmax(mask, axis=-1))
    j = np.minimum(rng.integers(0, 3, 64), np.maximum(mask.sum(1) - 1, 0)).astype(np.int32)
    want = [np.flatnonzero(m)[k] if m.any() else 0 for m, k in zip(mask, j)]
    np.testing.assert_array_equal(jax.vmap(_nth_true_scan)(jnp.asarray(mask), jnp.asarray(j)), want)
