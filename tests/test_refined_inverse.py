"""The re-factorisation's inverse refined by one Newton-Schulz step from the kept one
(rec_jax.policies._refined_inverse), against float64 inverses and the Cholesky path."""
import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.policies._refined_inverse import REFINE_TOL, newton_step, refined_inverse, refined_inverses, small_matmul
from rec_jax.policies._ridge import ridge_inverse

D, N = 8, 30


def _drifted(seed, steps, reg):
    """(gram f32[D, D], A^-1 kept by ``steps`` float32 Sherman-Morrison updates) of one stream."""
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((N, D)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    a_inv = np.eye(D, dtype=np.float32) / np.float32(reg)
    gram = np.zeros((D, D), np.float32)
    for _ in range(steps):
        x = feats[rng.integers(0, 5) if rng.random() < 0.7 else rng.integers(0, N)]
        u = a_inv @ x
        a_inv = a_inv - np.outer(u, u * (np.float32(1) / (np.float32(1) + x @ u)))
        gram = gram + np.outer(x, x)
    return gram, a_inv


def test_small_matmul_is_the_matmul():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(small_matmul(jnp.asarray(a), jnp.asarray(b)), a @ b, rtol=1e-5, atol=1e-5)


def test_one_step_from_the_kept_inverse_equals_the_float64_inverse():
    reg = 1.0
    grams, kept = zip(*(_drifted(s, 1000, reg) for s in range(6)))
    grams, kept = np.stack(grams), np.stack(kept)
    exact = np.linalg.inv(grams.astype(np.float64) + reg * np.eye(D))
    _, far = jax.vmap(newton_step, in_axes=(0, None, 0))(jnp.asarray(grams), jnp.float32(reg), jnp.asarray(kept))
    assert not np.any(far)  # the fast path is the one tested here
    got = np.asarray(refined_inverses(jnp.asarray(grams), jnp.full((6,), reg, jnp.float32), jnp.asarray(kept)))
    scale = np.abs(exact).max(axis=(1, 2), keepdims=True)
    kept_err = np.abs(kept - exact) / scale
    got_err = np.abs(got - exact) / scale
    # the step removes the drift: ~1e-5 relative in the kept inverse, ~4e-7 (rounding) after it
    assert got_err.max() < 1e-6 and got_err.max() < 0.1 * kept_err.max(), (got_err.max(), kept_err.max())
    np.testing.assert_array_equal(got, np.swapaxes(got, 1, 2))
    chol = np.asarray(jax.vmap(ridge_inverse, in_axes=(0, None))(jnp.asarray(grams), jnp.float32(reg)))
    np.testing.assert_allclose(got, chol, rtol=0, atol=5e-6 * scale.max())


def test_streams_too_far_take_the_cholesky_inverse_and_the_others_the_refined_one():
    grams, kept = zip(*(_drifted(s, 200, 1.0) for s in range(4)))
    grams, kept = np.stack(grams), np.stack(kept)
    regs = np.array([1.0, 3.0, 1.0, 1.0], np.float32)  # stream 1: reg changed, kept inverse far
    kept[3, 0, 0] = np.nan  # stream 3: a NaN in the kept inverse
    g, r, k = jnp.asarray(grams), jnp.asarray(regs), jnp.asarray(kept)
    refined, far = jax.vmap(newton_step)(g, r, k)
    np.testing.assert_array_equal(np.asarray(far), [False, True, False, True])
    got = np.asarray(refined_inverses(g, r, k))
    chol = np.asarray(jax.vmap(ridge_inverse)(g, r))
    np.testing.assert_array_equal(got[[1, 3]], chol[[1, 3]])
    np.testing.assert_array_equal(got[[0, 2]], np.asarray(refined)[[0, 2]])
    exact = np.linalg.inv(grams.astype(np.float64) + regs[:, None, None] * np.eye(D))
    np.testing.assert_allclose(got, exact, rtol=0, atol=1e-5)
    # one stream, as the engine's unbatched path calls it: the same branches
    np.testing.assert_array_equal(np.asarray(refined_inverse(g[1], r[1], k[1])), chol[1])
    np.testing.assert_array_equal(np.asarray(refined_inverse(g[0], r[0], k[0])), np.asarray(refined)[0])
    assert REFINE_TOL < 0.01
