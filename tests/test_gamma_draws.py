"""The array-wide Marsaglia-Tsang Gamma and Beta draws have the right distributions: means
and variances against the closed forms, and Kolmogorov-Smirnov against SciPy's CDFs, for
shapes below 1 (the boost), at 1 and above; under vmap and jit as in the engine."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from rec_jax.policies._gamma_draws import beta_draws, log_gamma_draws


@pytest.mark.parametrize("buffer_divisor", [16, 2_000])  # the rejected fit the buffer / overflow it
def test_gamma_draws_match_the_gamma_distribution(buffer_divisor):
    alphas = np.array([0.05, 0.3, 1.0, 2.5, 40.0], np.float32)
    num = 40_000
    draw = jax.jit(log_gamma_draws, static_argnums=(2, 3))
    draws = np.exp(np.asarray(draw(jax.random.key(0), alphas, (num, alphas.size), buffer_divisor)), dtype=np.float64)
    for j, a in enumerate(alphas):
        x = draws[:, j]
        assert abs(x.mean() - a) < 5 * np.sqrt(a / num), (a, x.mean())  # Var Gamma(a) = a
        assert stats.kstest(x, stats.gamma(a).cdf).pvalue > 1e-3, a


def test_beta_draws_under_vmap_match_the_beta_distribution():
    a = jnp.asarray([[0.5, 1.0, 7.0], [3.0, 1.0, 0.2]], jnp.float32)  # two "streams"
    b = jnp.asarray([[0.5, 4.0, 2.0], [30.0, 1.0, 0.9]], jnp.float32)
    num = 20_000
    keys = jax.random.split(jax.random.key(1), 2)
    draws = np.asarray(jax.jit(jax.vmap(lambda k, a, b: beta_draws(k, a, b, num)))(keys, a, b), np.float64)
    assert draws.shape == (2, num, 3)
    for s in range(2):
        for n in range(3):
            x, ab = draws[s, :, n], (float(a[s, n]), float(b[s, n]))
            dist = stats.beta(*ab)
            assert abs(x.mean() - dist.mean()) < 5 * dist.std() / np.sqrt(num), (ab, x.mean())
            assert stats.kstest(x, dist.cdf).pvalue > 1e-3, ab
    # independent streams: different keys give different draws
    assert not np.allclose(draws[0, :, 1], draws[1, :, 1])


def test_shapes_that_are_not_finite_end_the_loop_as_jax_does():
    alpha = jnp.asarray([1.0, np.nan, np.inf, 0.0, 3.0], jnp.float32)
    got = np.asarray(jax.jit(log_gamma_draws, static_argnums=2)(jax.random.key(2), alpha, (3, 5)))
    want = np.asarray(jax.random.loggamma(jax.random.key(2), alpha, (3, 5)))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(got[:, 2:4], want[:, 2:4])  # +inf and -inf (shape 0)
    assert np.all(np.isfinite(got[:, [0, 4]]))
