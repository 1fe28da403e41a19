"""All seven estimators at once, the hyperparameters of Switch-DR and DR-os by SLOPE."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rec_jax.ope import estimators as E
from rec_jax.ope.tuning import DEFAULT_LAMBDAS, DEFAULT_TAUS, dr_os_slope, switch_dr_slope


def estimate_all(d: E.OPEData, taus=DEFAULT_TAUS, lambdas=DEFAULT_LAMBDAS) -> dict[str, jax.Array]:
    """{name: f32[]} for every name in ``ESTIMATORS``, plus ``switch_dr_tau`` and ``dr_os_lambda`` chosen."""
    sw, tau = switch_dr_slope(d, taus)
    os_, lam = dr_os_slope(d, lambdas)
    return {"dm": E.dm(d), "ipw": E.ipw(d), "snipw": E.snipw(d), "dr": E.dr(d), "sndr": E.sndr(d),
            "switch_dr": sw, "dr_os": os_, "switch_dr_tau": tau, "dr_os_lambda": jnp.asarray(lam)}
