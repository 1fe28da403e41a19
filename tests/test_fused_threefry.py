"""The fused threefry keys draw exactly JAX's threefry bits (rec_jax.fused_threefry)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.fused_threefry import as_fused, key_dtype_like


def _data(k):
    return np.asarray(jax.random.key_data(k))


def test_every_primitive_matches_jax_threefry_under_jit_and_vmap():
    key = jax.random.key(20261206)
    fused = as_fused(key)
    assert fused.dtype != key.dtype and key_dtype_like(key.dtype) == fused.dtype
    np.testing.assert_array_equal(_data(fused), _data(key))

    def draws(k):
        a, b = jax.random.split(k)
        c = jax.random.fold_in(b, 77)
        return {
            "split": jax.random.key_data(jax.random.split(a, (3, 4))),
            "fold_in": jax.random.key_data(c),
            "bits8": jax.random.bits(c, (5,), jnp.uint8),
            "bits16": jax.random.bits(c, (2, 3), jnp.uint16),
            "bits32": jax.random.bits(c, (7,), jnp.uint32),
            "uniform": jax.random.uniform(a, (1001,)),  # odd count: JAX pads its counters
            "normal": jax.random.normal(b, (4, 3)),
            "scalar": jax.random.uniform(c),
        }

    cases = ((jax.jit(draws), key), (jax.jit(jax.vmap(jax.vmap(draws))), jax.random.split(key, (2, 3))))
    for fn, k in cases:
        want, got = fn(k), fn(as_fused(k))
        for name in want:
            np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]), err_msg=name)


def test_other_implementations_pass_through_and_bad_input_is_named():
    rbg = jax.random.key(0, impl="rbg")
    assert as_fused(rbg).dtype == rbg.dtype
    with pytest.raises(TypeError, match="typed PRNG key"):
        as_fused(jnp.zeros((2,), jnp.uint32))
