"""The 16-bit dropout masks: rate, independence of the two halves of a word, unbiasedness."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.models.dropout import Dropout, dropout, keep_mask, keep_probability


def _reference_mask(key, rate, shape):
    """NumPy: split each 32-bit word into its low then high 16 bits, drop below round(rate * 2**16)."""
    size = int(np.prod(shape))
    words = np.asarray(jax.random.bits(key, ((size + 1) // 2,), jnp.uint32))
    draws = np.concatenate([words & 0xFFFF, words >> 16])[:size].reshape(shape)
    return draws >= round(rate * 65536)


@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 9)])  # an odd size too
def test_layer_matches_numpy_reference(shape):
    key = jax.random.key(3)
    x = jax.random.normal(jax.random.key(4), shape)
    out = np.asarray(Dropout(0.3).apply({}, x, deterministic=False, rng=key))
    keep = _reference_mask(key, 0.3, shape)
    expected = np.where(keep, np.asarray(x) / (1 - round(0.3 * 65536) / 65536), 0.0)
    np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_rate_and_independent_halves_match_binomial():
    n = 1 << 21
    rate = 0.2
    keep = np.asarray(keep_mask(jax.random.key(0), rate, (n,)))
    p = round(rate * 65536) / 65536
    sd = np.sqrt(p * (1 - p) / n)
    assert abs((1 - keep.mean()) - p) < 5 * sd
    # units n/2 apart come from the two halves of the same word: dropped together at rate p**2
    both = (~keep[: n // 2]) & (~keep[n // 2:])
    sd2 = np.sqrt(p * p * (1 - p * p) / (n // 2))
    assert abs(both.mean() - p * p) < 5 * sd2


def test_unbiased_and_eval_mode_identity():
    x = jnp.ones((1 << 20,))
    out = dropout(jax.random.key(1), 0.2, x)
    # E[out] = 1 exactly; the sample mean's sd is sqrt(p / (1 - p) / n)
    p = 1 - float(keep_probability(0.2))
    assert abs(float(out.mean()) - 1.0) < 5 * np.sqrt(p / (1 - p) / x.size)
    np.testing.assert_array_equal(Dropout(0.2).apply({}, x, deterministic=True), x)
    np.testing.assert_array_equal(Dropout(0.0).apply({}, x, deterministic=False, rng=jax.random.key(0)), x)


def test_traced_rate_equals_static_rate():
    key = jax.random.key(5)
    x = jax.random.normal(jax.random.key(6), (33,))
    static = Dropout(0.25).apply({}, x, deterministic=False, rng=key)
    traced = jax.jit(dropout)(key, jnp.float32(0.25), x)
    np.testing.assert_array_equal(static, traced)
