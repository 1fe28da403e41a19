"""A/B test statistics: fixed-horizon z-tests, power and sample size, and an
always-valid sequential test (mSPRT) that may be peeked at after every batch.

    res = z_test_proportions(clicks_a, n_a, clicks_b, n_b)          # diff, CI, p-value
    n = sample_size_proportions(0.03, 0.033, alpha=0.05, power=0.8)  # per arm
    looks = sequential_looks(stats_a, stats_b, tau2=1e-4)            # p-values after each batch

Every function is written in ``jax.numpy`` for ONE test and is jit/vmap friendly
(vmap over replications for an A/A simulation). The difference is always
treatment minus control (B - A). Tests are two-sided.

Units. The tests on means (:func:`z_test_means`, :func:`sequential_looks`) take
per-unit values (e.g. each user stream's CTR over its session); with one
impression per unit they are the two-proportion test on clicks.

The sequential test is the mixture sequential probability ratio test with a
normal mixing distribution N(0, tau2) over the effect (Robbins 1970; Johari,
Pekelis & Walsh 2017, "Always valid inference"): with the effect estimate
``d`` and its variance ``V`` after n looks, the mixture likelihood ratio is

    Lambda_n = sqrt(V / (V + tau2)) * exp(d^2 tau2 / (2 V (V + tau2))),

a nonnegative martingale under H0 (d Gaussian with known V), so by Ville's
inequality P(exists n: Lambda_n >= 1/alpha) <= alpha. The always-valid p-value
is ``p_n = min(1, min_{m <= n} 1 / Lambda_m)``. ``V`` is plugged in from the
sample variances (as Johari et al. do), so the guarantee is asymptotic.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.stats import norm


class TestResult(NamedTuple):
    """A fixed-horizon two-sided test of B - A (all f32[])."""

    diff: jax.Array  # estimate of mean_B - mean_A
    ci_low: jax.Array  # lower end of the (1 - alpha) confidence interval
    ci_high: jax.Array  # upper end
    z: jax.Array  # the test statistic
    p_value: jax.Array  # two-sided p-value


class ArmStats(NamedTuple):
    """Sufficient statistics of one arm, per batch (leading axis B) or cumulated."""

    n: jax.Array  # f32[...] number of units
    total: jax.Array  # f32[...] sum of the unit values
    total_sq: jax.Array  # f32[...] sum of squared unit values


def arm_stats(values: jax.Array, axis: int = -1) -> ArmStats:
    """Sufficient statistics of ``values`` summed over ``axis`` (e.g. f32[B, S] -> f32[B])."""
    values = jnp.asarray(values, jnp.float32)
    return ArmStats(n=jnp.sum(jnp.ones_like(values), axis=axis), total=jnp.sum(values, axis=axis),
                    total_sq=jnp.sum(values**2, axis=axis))


def _two_sided_p(z: jax.Array) -> jax.Array:
    return 2.0 * norm.sf(jnp.abs(z))


def _mean_var(stats: ArmStats) -> tuple[jax.Array, jax.Array]:
    """(mean, unbiased sample variance) of an arm; variance 0 for n < 2."""
    n = jnp.maximum(stats.n, 1.0)
    mean = stats.total / n
    ss = jnp.maximum(stats.total_sq - n * mean**2, 0.0)
    return mean, jnp.where(stats.n > 1, ss / jnp.maximum(stats.n - 1.0, 1.0), 0.0)


def z_test_means(a: ArmStats, b: ArmStats, alpha: float = 0.05) -> TestResult:
    """Large-sample (Welch) z-test of mean_B - mean_A from per-unit sufficient statistics.

    se = sqrt(var_A / n_A + var_B / n_B) with unbiased sample variances; when se is 0
    (no variation yet) z is 0 and the p-value 1.
    """
    mean_a, var_a = _mean_var(a)
    mean_b, var_b = _mean_var(b)
    diff = mean_b - mean_a
    se = jnp.sqrt(var_a / jnp.maximum(a.n, 1.0) + var_b / jnp.maximum(b.n, 1.0))
    z = jnp.where(se > 0, diff / jnp.where(se > 0, se, 1.0), 0.0)
    half = norm.ppf(1.0 - alpha / 2.0) * se
    return TestResult(diff=diff, ci_low=diff - half, ci_high=diff + half, z=z, p_value=_two_sided_p(z))


def z_test_proportions(clicks_a, n_a, clicks_b, n_b, alpha: float = 0.05) -> TestResult:
    """Two-proportion z-test of CTR_B - CTR_A.

    The test uses the pooled standard error (the null has one common rate); the
    confidence interval uses the unpooled (Wald) one, as textbooks do.
    """
    clicks_a, n_a, clicks_b, n_b = (jnp.asarray(x, jnp.float32) for x in (clicks_a, n_a, clicks_b, n_b))
    p_a, p_b = clicks_a / n_a, clicks_b / n_b
    pooled = (clicks_a + clicks_b) / (n_a + n_b)
    se0 = jnp.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    se1 = jnp.sqrt(p_a * (1.0 - p_a) / n_a + p_b * (1.0 - p_b) / n_b)
    diff = p_b - p_a
    z = jnp.where(se0 > 0, diff / jnp.where(se0 > 0, se0, 1.0), 0.0)
    half = norm.ppf(1.0 - alpha / 2.0) * se1
    return TestResult(diff=diff, ci_low=diff - half, ci_high=diff + half, z=z, p_value=_two_sided_p(z))


# ----------------------------------------------------------------------------- power


def sample_size_means(delta, var_a, var_b, alpha: float = 0.05, power: float = 0.8):
    """Units per arm so a two-sided level-alpha z-test detects ``delta`` with ``power``:
    n = (z_{1-alpha/2} + z_{power})^2 (var_A + var_B) / delta^2 (unrounded)."""
    z = norm.ppf(1.0 - alpha / 2.0) + norm.ppf(power)
    return z**2 * (var_a + var_b) / jnp.asarray(delta, jnp.float32) ** 2


def sample_size_proportions(p_a, p_b, alpha: float = 0.05, power: float = 0.8):
    """Impressions per arm for the pooled two-proportion z-test (Fleiss, no continuity correction):

    n = (z_{1-alpha/2} sqrt(2 pbar qbar) + z_{power} sqrt(p_A q_A + p_B q_B))^2 / (p_B - p_A)^2.
    """
    p_a, p_b = jnp.asarray(p_a, jnp.float32), jnp.asarray(p_b, jnp.float32)
    pbar = 0.5 * (p_a + p_b)
    num = (norm.ppf(1.0 - alpha / 2.0) * jnp.sqrt(2.0 * pbar * (1.0 - pbar))
           + norm.ppf(power) * jnp.sqrt(p_a * (1.0 - p_a) + p_b * (1.0 - p_b)))
    return num**2 / (p_b - p_a) ** 2


def power_proportions(p_a, p_b, n, alpha: float = 0.05):
    """Power of the pooled two-proportion z-test with ``n`` impressions per arm (both tails)."""
    p_a, p_b, n = (jnp.asarray(x, jnp.float32) for x in (p_a, p_b, n))
    pbar = 0.5 * (p_a + p_b)
    se0 = jnp.sqrt(2.0 * pbar * (1.0 - pbar) / n)
    se1 = jnp.sqrt((p_a * (1.0 - p_a) + p_b * (1.0 - p_b)) / n)
    crit = norm.ppf(1.0 - alpha / 2.0) * se0
    delta = p_b - p_a
    return norm.sf((crit - delta) / se1) + norm.cdf((-crit - delta) / se1)


# ----------------------------------------------------------------------------- sequential


def msprt_log_lambda(diff, var, tau2):
    """log of the normal-mixture likelihood ratio for an estimate ``diff`` with variance ``var``.

    0 where ``var`` is 0 (nothing observed that varies: no evidence either way).
    """
    safe = jnp.where(var > 0, var, 1.0)
    value = 0.5 * jnp.log(safe / (safe + tau2)) + diff**2 * tau2 / (2.0 * safe * (safe + tau2))
    return jnp.where(var > 0, value, 0.0)


def msprt_ci_halfwidth(var, tau2, alpha: float = 0.05):
    """Half-width of the always-valid (1 - alpha) interval {d0: Lambda_n(d0) < 1/alpha} around the estimate."""
    safe = jnp.maximum(var, 1e-30)
    return jnp.sqrt(safe * (safe + tau2) / tau2 * (2.0 * jnp.log(1.0 / alpha) + jnp.log((safe + tau2) / safe)))


class Looks(NamedTuple):
    """The tests after each of B batches (all f32[B])."""

    diff: jax.Array  # cumulative estimate of mean_B - mean_A
    p_fixed: jax.Array  # fixed-horizon z-test p-value on the data so far (invalid if peeked at)
    p_always_valid: jax.Array  # mSPRT always-valid p-value (valid under any stopping)
    ci_halfwidth_always_valid: jax.Array  # half-width of the always-valid (1 - alpha) interval


def sequential_looks(a: ArmStats, b: ArmStats, tau2, alpha: float = 0.05) -> Looks:
    """Peek after every batch: cumulate per-batch stats f32[B] of each arm and test.

    tau2: variance of the normal mixture over the effect; put it near the square of
    the effects worth detecting (Johari et al. 2017, Sec. 4).
    """
    cum_a = ArmStats(*(jnp.cumsum(x, axis=-1) for x in a))
    cum_b = ArmStats(*(jnp.cumsum(x, axis=-1) for x in b))
    mean_a, var_a = _mean_var(cum_a)
    mean_b, var_b = _mean_var(cum_b)
    diff = mean_b - mean_a
    var = var_a / jnp.maximum(cum_a.n, 1.0) + var_b / jnp.maximum(cum_b.n, 1.0)
    fixed = z_test_means(cum_a, cum_b, alpha)
    log_lam = msprt_log_lambda(diff, var, tau2)
    p_av = jax.lax.cummin(jnp.minimum(1.0, jnp.exp(-log_lam)), axis=log_lam.ndim - 1)
    return Looks(diff=diff, p_fixed=fixed.p_value, p_always_valid=p_av,
                 ci_halfwidth_always_valid=msprt_ci_halfwidth(var, tau2, alpha))


def rejections(looks: Looks, alpha: float = 0.05) -> dict[str, jax.Array]:
    """Does each procedure reject H0 (bool[])?

    fixed_horizon: the z-test once, after the last batch;
    naive_peeking: the z-test after every batch, stopping at the first p < alpha;
    sequential:    the mSPRT after every batch (its always-valid p-value < alpha).
    """
    return {
        "fixed_horizon": looks.p_fixed[..., -1] < alpha,
        "naive_peeking": jnp.any(looks.p_fixed < alpha, axis=-1),
        "sequential": jnp.any(looks.p_always_valid < alpha, axis=-1),
    }


def first_rejection(p_values: jax.Array, alpha: float = 0.05) -> jax.Array:
    """1-based index of the first batch with p < alpha, or 0 if none: int32[]."""
    hit = p_values < alpha
    return jnp.where(jnp.any(hit, axis=-1), jnp.argmax(hit, axis=-1) + 1, 0).astype(jnp.int32)


def aa_permutation_test(key: jax.Array, values: jax.Array, num_batches: int, alpha: float = 0.05,
                        tau2: float = 1e-4) -> dict[str, jax.Array]:
    """One A/A replication: randomly split ``values`` f32[U] (one outcome per unit, all
    from the same policy) into two arms of ``num_batches`` batches and peek after each.

    U must be a multiple of 2 * num_batches. Returns the rejections of
    :func:`rejections` (bool[] each) plus ``"first_look/<proc>"`` int32[] (0 = never).
    vmap it over keys for many replications.
    """
    units = values.shape[0]
    per = units // (2 * num_batches)
    shuffled = jax.random.permutation(key, values)[: 2 * num_batches * per].reshape(2, num_batches, per)
    looks = sequential_looks(arm_stats(shuffled[0]), arm_stats(shuffled[1]), tau2, alpha)
    out = rejections(looks, alpha)
    out["first_look/naive_peeking"] = first_rejection(looks.p_fixed, alpha)
    out["first_look/sequential"] = first_rejection(looks.p_always_valid, alpha)
    return out


def aa_bernoulli_test(key: jax.Array, ctr, num_batches: int, per_batch: int, alpha: float = 0.05,
                      tau2: float = 1e-4) -> dict[str, jax.Array]:
    """One A/A replication on i.i.d. Bernoulli(ctr) impressions, ``per_batch`` per arm per batch.

    Draws each batch's click count (Binomial), the sufficient statistic of 0/1 values
    (sum = sum of squares), so it costs O(num_batches). Same outputs as
    :func:`aa_permutation_test`; vmap it over keys.
    """
    clicks = jax.random.binomial(key, per_batch, ctr, (2, num_batches)).astype(jnp.float32)
    n = jnp.full((num_batches,), per_batch, jnp.float32)
    looks = sequential_looks(ArmStats(n, clicks[0], clicks[0]), ArmStats(n, clicks[1], clicks[1]), tau2, alpha)
    out = rejections(looks, alpha)
    out["first_look/naive_peeking"] = first_rejection(looks.p_fixed, alpha)
    out["first_look/sequential"] = first_rejection(looks.p_always_valid, alpha)
    return out
