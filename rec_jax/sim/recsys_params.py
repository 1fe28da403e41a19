"""Params and state of the recommender environment (:mod:`rec_jax.sim.recsys`), and
the host-side check of its params."""
from __future__ import annotations

import jax
import numpy as np
from flax import struct

from rec_jax.sim import _checks

CLICK_MODELS = ("pbm", "cascade")
SHIFT_MODES = ("resample", "negate")


@struct.dataclass
class RecsysParams:
    user_factors: jax.Array  # f32[U, d] ground-truth user vectors
    item_factors: jax.Array  # f32[N, d] ground-truth item vectors (also the observed features)
    item_bias: jax.Array  # f32[N] ground-truth item biases
    offset: jax.Array  # f32[] logit offset (from calibrate)
    scale: jax.Array  # f32[] temperature on the fitted logit, >= 0 (from calibrate)
    user_id: jax.Array  # int32[] user of this stream, -1 = drawn uniformly at reset
    examination: jax.Array  # f32[K] PBM examination prob. of each slot, in [0, 1] (unused by cascade)
    drift_std: jax.Array  # f32[] std of the per-step random walk of u (gradual drift), >= 0
    shift_steps: jax.Array  # int32[M] steps at which u is replaced (abrupt drift); -1 = unused, else >= 1
    release_t: jax.Array  # int32[N] step from which each item is available, >= 0
    fatigue: jax.Array  # f32[] attraction *= exp(-fatigue * recent_exposures), >= 0
    exposure_decay: jax.Array  # f32[] recent_exposures <- decay * recent + shown, in [0, 1]
    w_click: jax.Array  # f32[] reward weight of a click, >= 0
    w_dwell: jax.Array  # f32[] reward weight of dwell time, >= 0
    w_purchase: jax.Array  # f32[] reward weight of a purchase, >= 0
    dwell_loc: jax.Array  # f32[] log-dwell location at neutral affinity
    dwell_slope: jax.Array  # f32[] log-dwell increase per unit tanh(affinity)
    dwell_sigma: jax.Array  # f32[] log-dwell std, >= 0
    purchase_logit: jax.Array  # f32[] purchase logit (given click) at neutral affinity
    purchase_slope: jax.Array  # f32[] purchase logit increase per unit tanh(affinity)


@struct.dataclass
class RecsysState:
    t: jax.Array  # int32[] steps taken so far
    user_index: jax.Array  # int32[] row of user_factors the current taste came from
    user: jax.Array  # f32[d] current (drifted) user vector
    history: jax.Array  # int32[L] ring buffer of consumed item ids (1..N), 0 = empty
    num_consumed: jax.Array  # int32[] items ever written; next slot is num_consumed % L
    exposure_counts: jax.Array  # int32[N] times each item was shown to this user
    recent_exposures: jax.Array  # f32[N] exponentially decayed exposure counts (fatigue)


def validate_params(params: RecsysParams, spec=None) -> RecsysParams:
    """Host-side check against ``spec`` (a SimSpec, optional: N items of width d, and
    the slate size K the examination must cover); one-line ValueError naming the bad field."""
    uf = _checks.finite(params.user_factors, "RecsysParams.user_factors")
    vf = _checks.finite(params.item_factors, "RecsysParams.item_factors")
    if uf.ndim < 2 or vf.ndim < 2 or uf.shape[-1] != vf.shape[-1]:
        raise ValueError(f"RecsysParams.user_factors: expected [U, d] matching item_factors [N, d], got {uf.shape} and {vf.shape}")
    num_users, num_items = uf.shape[-2], vf.shape[-2]
    if spec is not None:
        _checks.last_dim(vf, "RecsysParams.item_factors", spec.num_items, ndim=2)
        _checks.last_dim(vf, "RecsysParams.item_factors", spec.feature_dim)
    _checks.last_dim(params.item_bias, "RecsysParams.item_bias", num_items)
    _checks.finite(params.item_bias, "RecsysParams.item_bias")
    _checks.finite(params.offset, "RecsysParams.offset")
    _checks.in_range(params.scale, "RecsysParams.scale", 0.0)
    _checks.in_range(params.user_id, "RecsysParams.user_id", -1, num_users - 1)
    exam = _checks.in_range(params.examination, "RecsysParams.examination", 0.0, 1.0)
    if spec is not None and spec.slate_size is not None:
        _checks.last_dim(exam, "RecsysParams.examination", spec.slate_size)
    if exam.ndim < 1 or exam.shape[-1] > num_items:
        raise ValueError(f"RecsysParams.examination: expected [K] with 1 <= K <= N={num_items}, got shape {exam.shape}")
    _checks.in_range(params.drift_std, "RecsysParams.drift_std", 0.0)
    shifts = _checks.finite(params.shift_steps, "RecsysParams.shift_steps")
    if np.any((shifts != -1) & (shifts < 1)):
        raise ValueError(f"RecsysParams.shift_steps: expected -1 (unused) or steps >= 1, got {shifts.ravel()[:8]}")
    _checks.last_dim(params.release_t, "RecsysParams.release_t", num_items)
    _checks.in_range(params.release_t, "RecsysParams.release_t", 0)
    _checks.in_range(params.fatigue, "RecsysParams.fatigue", 0.0)
    _checks.in_range(params.exposure_decay, "RecsysParams.exposure_decay", 0.0, 1.0)
    for name in ("w_click", "w_dwell", "w_purchase", "dwell_sigma"):
        _checks.in_range(getattr(params, name), f"RecsysParams.{name}", 0.0)
    for name in ("dwell_loc", "dwell_slope", "purchase_logit", "purchase_slope"):
        _checks.finite(getattr(params, name), f"RecsysParams.{name}")
    return params
