"""A/B test statistics against NumPy references, textbook values, numerical integration and simulation."""
import math

import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.eval import abtest


def _p_two_sided(z):
    return math.erfc(abs(z) / math.sqrt(2.0))


def test_z_test_proportions_matches_numpy_reference():
    ca, na, cb, nb = 120, 4000, 150, 4100
    res = abtest.z_test_proportions(ca, na, cb, nb, alpha=0.05)
    pa, pb = ca / na, cb / nb
    pool = (ca + cb) / (na + nb)
    z = (pb - pa) / math.sqrt(pool * (1 - pool) * (1 / na + 1 / nb))
    half = 1.959964 * math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    np.testing.assert_allclose(float(res.z), z, rtol=1e-4)
    np.testing.assert_allclose(float(res.p_value), _p_two_sided(z), rtol=1e-3)
    np.testing.assert_allclose([float(res.ci_low), float(res.ci_high)], [pb - pa - half, pb - pa + half], atol=1e-6)


def test_z_test_means_matches_numpy_welch():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 1.0, 300), rng.normal(0.2, 2.0, 200)
    res = abtest.z_test_means(abtest.arm_stats(a), abtest.arm_stats(b))
    se = math.sqrt(a.var(ddof=1) / 300 + b.var(ddof=1) / 200)
    z = (b.mean() - a.mean()) / se
    np.testing.assert_allclose(float(res.z), z, rtol=1e-4)
    np.testing.assert_allclose(float(res.p_value), _p_two_sided(z), rtol=1e-3)
    np.testing.assert_allclose(float(res.ci_high - res.ci_low), 2 * 1.959964 * se, rtol=1e-4)


def test_sample_size_textbook_value_and_power_inverse():
    # Fleiss (no continuity correction): p1 = 0.10, p2 = 0.15, two-sided 5%, 80% power -> 686 per group.
    n = float(abtest.sample_size_proportions(0.10, 0.15, alpha=0.05, power=0.8))
    assert math.ceil(n) == 686
    np.testing.assert_allclose(float(abtest.power_proportions(0.10, 0.15, n)), 0.8, atol=1e-3)


def test_sample_size_gives_nominal_power_by_simulation():
    # Brute force: simulate 4000 two-arm experiments of the computed size; count rejections.
    pa, pb = 0.05, 0.07
    n = math.ceil(float(abtest.sample_size_proportions(pa, pb, power=0.8)))
    rng = np.random.default_rng(1)
    ca, cb = rng.binomial(n, pa, 4000), rng.binomial(n, pb, 4000)
    p = np.asarray(abtest.z_test_proportions(ca, n, cb, n).p_value)
    assert abs((p < 0.05).mean() - 0.8) < 0.03  # MC std 0.0063
    # Means version: normal units, delta 0.1, sd 1 and 1.5.
    n_m = math.ceil(float(abtest.sample_size_means(0.1, 1.0, 2.25, power=0.9)))
    xa, xb = rng.normal(0, 1, (2000, n_m)), rng.normal(0.1, 1.5, (2000, n_m))
    p_m = np.asarray(abtest.z_test_means(abtest.arm_stats(xa), abtest.arm_stats(xb)).p_value)
    assert abs((p_m < 0.05).mean() - 0.9) < 0.03


def test_msprt_lambda_matches_numerical_mixture_integral():
    d, var, tau2 = 0.013, 2e-5, 1e-4
    grid = np.linspace(-0.1, 0.1, 400001)
    prior = np.exp(-grid**2 / (2 * tau2)) / math.sqrt(2 * math.pi * tau2)
    ratio = np.exp((-(d - grid) ** 2 + d**2) / (2 * var))  # N(d; delta, V) / N(d; 0, V)
    integral = np.sum(ratio * prior) * (grid[1] - grid[0])
    np.testing.assert_allclose(float(abtest.msprt_log_lambda(d, var, tau2)), math.log(integral), rtol=1e-4)
    # The always-valid interval's edge is where Lambda = 1 / alpha.
    half = abtest.msprt_ci_halfwidth(var, tau2, alpha=0.05)
    np.testing.assert_allclose(float(abtest.msprt_log_lambda(half, var, tau2)), math.log(20.0), rtol=1e-4)


def test_sequential_looks_match_batch_by_batch_reference():
    rng = np.random.default_rng(2)
    a, b = rng.binomial(1, 0.3, (6, 40)).astype(np.float32), rng.binomial(1, 0.4, (6, 40)).astype(np.float32)
    looks = abtest.sequential_looks(abtest.arm_stats(a), abtest.arm_stats(b), tau2=0.01)
    p_av = 1.0
    for t in range(6):
        xa, xb = a[: t + 1].ravel(), b[: t + 1].ravel()
        var = xa.var(ddof=1) / xa.size + xb.var(ddof=1) / xb.size
        d = xb.mean() - xa.mean()
        lam = math.sqrt(var / (var + 0.01)) * math.exp(d**2 * 0.01 / (2 * var * (var + 0.01)))
        p_av = min(p_av, 1.0 / lam)
        np.testing.assert_allclose(float(looks.diff[t]), d, atol=1e-6)
        np.testing.assert_allclose(float(looks.p_fixed[t]), _p_two_sided(d / math.sqrt(var)), rtol=1e-3)
        np.testing.assert_allclose(float(looks.p_always_valid[t]), min(1.0, p_av), rtol=1e-3)
    np.testing.assert_array_equal(np.asarray(abtest.first_rejection(jnp.array([0.5, 0.04, 0.01]))), 2)
    np.testing.assert_array_equal(np.asarray(abtest.first_rejection(jnp.array([0.5, 0.6]))), 0)


def test_aa_simulation_sequential_holds_level_naive_peeking_does_not():
    # Bernoulli clicks (CTR 0.2) shared by both arms: H0 holds exactly under the random split.
    values = jax.random.bernoulli(jax.random.key(0), 0.2, (4000,)).astype(jnp.float32)
    keys = jax.random.split(jax.random.key(1), 1000)
    out = jax.jit(jax.vmap(lambda k: abtest.aa_permutation_test(k, values, num_batches=20, tau2=1e-3)))(keys)
    fpr = {k: float(np.mean(out[k])) for k in ("fixed_horizon", "naive_peeking", "sequential")}
    # MC std of a rate near 0.05 over 1000 replications is 0.007.
    assert abs(fpr["fixed_horizon"] - 0.05) < 0.025
    assert fpr["sequential"] <= 0.05 + 0.015
    assert fpr["naive_peeking"] > fpr["fixed_horizon"] + 0.05  # 20 looks inflate it (about 0.2)
    # Naive peeking rejects whenever the fixed-horizon test does (its last look is that test).
    assert np.all(np.asarray(out["naive_peeking"]) >= np.asarray(out["fixed_horizon"]))


def test_power_grows_with_n_and_is_alpha_at_no_effect():
    p = np.asarray(abtest.power_proportions(0.1, 0.12, jnp.array([100.0, 1000.0, 10000.0])))
    assert np.all(np.diff(p) > 0) and p[-1] > 0.99
    np.testing.assert_allclose(float(abtest.power_proportions(0.1, 0.1, 500.0)), 0.05, atol=1e-5)


def test_aa_bernoulli_counts_match_permutation_of_unit_values():
    # Binomial batch counts are the sufficient statistics of 0/1 units: both A/A paths agree in law.
    keys = jax.random.split(jax.random.key(3), 1000)
    out = jax.jit(jax.vmap(lambda k: abtest.aa_bernoulli_test(k, 0.2, num_batches=20, per_batch=100,
                                                              tau2=1e-3)))(keys)
    fpr = {k: float(np.mean(out[k])) for k in ("fixed_horizon", "naive_peeking", "sequential")}
    assert abs(fpr["fixed_horizon"] - 0.05) < 0.025 and fpr["sequential"] <= 0.065
    assert 0.12 < fpr["naive_peeking"] < 0.35  # 20 equally spaced looks: about 0.25 (Armitage et al. 1969)
