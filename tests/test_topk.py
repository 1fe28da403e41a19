"""rec_jax.topk.top_k equals lax.top_k (values and indices; ties, signed zeros, infinities
and NaNs of both signs), also jitted inside a scan, where lax.top_k becomes a sort."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax import topk


def _awkward_rows(rng, rows, n):
    x = rng.integers(-3, 4, (rows, n)).astype(np.float32)  # few distinct values: many ties
    x[: rows // 2] += rng.standard_normal((rows // 2, n)).astype(np.float32)
    specials = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0], np.float32)
    where = rng.random((rows, n)) < 0.15
    x[where] = rng.choice(specials, where.sum())
    x[0] = -np.inf  # a row of equal keys
    x[1] = -0.0
    x[1, ::3] = 0.0
    x[2] = np.nan
    x[2, ::2] = -np.nan
    return x


def _numpy_reference(x, k):
    """The total order as NumPy sees it: sort by descending int32 key, then by index."""
    i = x.view(np.int32)
    key = np.where(i < 0, i ^ np.int32(0x7FFFFFFF), i).astype(np.int64)
    order = np.lexsort((np.broadcast_to(np.arange(x.shape[-1]), x.shape), -key), axis=-1)[..., :k]
    return order


@pytest.mark.parametrize("n", [5, 33, 100])
def test_top_k_equals_lax_top_k_and_numpy(n):
    rng = np.random.default_rng(n)
    x = _awkward_rows(rng, 24, n)
    for k in (1, 2, 5):
        v, i = jax.jit(topk.top_k, static_argnums=1)(jnp.asarray(x), k)
        lv, li = jax.lax.top_k(jnp.asarray(x), k)
        np.testing.assert_array_equal(np.asarray(i), np.asarray(li))
        np.testing.assert_array_equal(np.asarray(v).view(np.int32), np.asarray(lv).view(np.int32))  # NaN bits too
        np.testing.assert_array_equal(np.asarray(i), _numpy_reference(x, k))


def test_top_k_inside_a_scan_under_vmap():
    rng = np.random.default_rng(1)
    x = jnp.asarray(_awkward_rows(rng, 12, 40).reshape(3, 4, 40))

    def run(fn):
        def body(carry, t):
            return carry, jax.vmap(lambda row: fn(row + 0.0 * t, 3))(x)
        return jax.jit(lambda: jax.lax.scan(body, 0, jnp.arange(2))[1])()

    (got_v, got_i), (want_v, want_i) = run(topk.top_k), run(jax.lax.top_k)
    np.testing.assert_array_equal(np.asarray(got_i), np.asarray(want_i))
    np.testing.assert_array_equal(np.asarray(got_v).view(np.int32), np.asarray(want_v).view(np.int32))


def test_large_k_falls_back_and_bad_k_is_refused():
    x = jnp.arange(40.0)[::-1]
    v, i = topk.top_k(x, topk.MAX_ROUNDS + 1)
    np.testing.assert_array_equal(np.asarray(i), np.arange(topk.MAX_ROUNDS + 1))
    with pytest.raises(ValueError, match="1 <= k <= 40"):
        topk.top_k(x, 41)
