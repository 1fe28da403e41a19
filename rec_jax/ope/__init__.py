"""Off-policy evaluation: estimators, cross-fitted reward model, SLOPE tuning, bootstrap.

    from rec_jax import ope
    d = ope.validate_log({"reward": r, "action": a, "pscore": p}, pi_e=pi_e, q_hat=q_hat)
    ope.dr(d), ope.switch_dr_slope(d)
"""
from rec_jax.ope.bootstrap import bootstrap, percentile_ci, resample_indices
from rec_jax.ope.bts import bts_action_dist
from rec_jax.ope.estimators import (
    ESTIMATORS, OPEData, dm, dm_rounds, dr, dr_os, dr_os_rounds, dr_rounds, iips, ipw, ipw_rounds, sndr, snipw,
    switch_dr, switch_dr_rounds, weights,
)
from rec_jax.ope.reward_model import (
    cross_fit_logistic, fit_logistic, predict_cross_fit, predict_cross_fit_additive, with_intercept,
)
from rec_jax.ope.suite import estimate_all
from rec_jax.ope.tuning import DEFAULT_LAMBDAS, DEFAULT_TAUS, dr_os_slope, slope_index, switch_dr_slope
from rec_jax.ope.validate import validate_log

__all__ = [
    "ESTIMATORS", "OPEData", "bootstrap", "bts_action_dist", "cross_fit_logistic", "dm", "dm_rounds", "dr",
    "dr_os", "dr_os_rounds", "dr_os_slope", "dr_rounds", "estimate_all", "fit_logistic", "iips", "ipw",
    "ipw_rounds", "percentile_ci", "predict_cross_fit", "predict_cross_fit_additive", "resample_indices", "sndr",
    "snipw", "slope_index", "switch_dr", "switch_dr_rounds", "switch_dr_slope", "validate_log", "weights",
    "with_intercept", "DEFAULT_LAMBDAS", "DEFAULT_TAUS",
]
