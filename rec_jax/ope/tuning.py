"""Data-driven choice of the Switch-DR threshold and the DR-os shrinkage: SLOPE.

SLOPE (Su, Srinath and Krishnamurthy 2020, "Adaptive estimator selection for
off-policy evaluation", a Lepski-type rule): order the candidates from least
biased / most variable to most biased / least variable (for both Switch-DR and
DR-os: from the largest hyperparameter, i.e. DR, down to the smallest, i.e. DM);
give candidate i the interval theta_i +- 2 * se_i, se_i = std(per-round terms) / sqrt(n);
pick the LAST candidate whose interval still intersects the intervals of all
candidates before it. Bias grows down the list while the width shrinks, so the
rule stops where the next candidate's bias would exceed what the intervals allow.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rec_jax.ope.estimators import OPEData, dr_os_rounds, switch_dr_rounds

# Candidate grids, largest (= DR) first: inf, 2^12, 2^11, ..., 2^0 for tau (weights
# below 1 are never switched off usefully) and down to 2^-4 for lambda.
DEFAULT_TAUS = (float("inf"),) + tuple(2.0 ** k for k in range(12, -1, -1))
DEFAULT_LAMBDAS = (float("inf"),) + tuple(2.0 ** k for k in range(12, -5, -1))


def slope_index(theta: jax.Array, se: jax.Array, width: float = 2.0) -> jax.Array:
    """int32[] index chosen by SLOPE among candidates ordered by decreasing variance.

    theta, se: f32[M] estimates and standard errors. Candidate i is admissible when
    the intervals [theta_j - width se_j, theta_j + width se_j] for j <= i share a point;
    the chosen index is the last admissible one before the first inadmissible.
    """
    lo = jax.lax.cummax(theta - width * se)
    hi = jax.lax.cummin(theta + width * se)
    ok = jnp.cumprod((lo <= hi).astype(jnp.int32))  # stays 0 after the first failure
    return jnp.sum(ok) - 1


def _slope(rounds_fn, d: OPEData, grid) -> tuple[jax.Array, jax.Array]:
    grid = jnp.asarray(grid, jnp.float32)
    terms = jax.vmap(lambda h: rounds_fn(d, h))(grid)  # [M, n]
    n = terms.shape[1]
    theta = terms.mean(axis=1)
    se = terms.std(axis=1) / jnp.sqrt(n)
    i = slope_index(theta, se)
    return theta[i], grid[i]


def switch_dr_slope(d: OPEData, taus=DEFAULT_TAUS) -> tuple[jax.Array, jax.Array]:
    """(Switch-DR estimate, chosen tau) with tau picked by SLOPE over ``taus`` (largest first)."""
    return _slope(switch_dr_rounds, d, taus)


def dr_os_slope(d: OPEData, lambdas=DEFAULT_LAMBDAS) -> tuple[jax.Array, jax.Array]:
    """(DR-os estimate, chosen lambda) with lambda picked by SLOPE over ``lambdas`` (largest first)."""
    return _slope(dr_os_rounds, d, lambdas)
