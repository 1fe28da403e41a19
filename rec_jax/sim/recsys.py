"""Semi-synthetic recommender environment: one simulated user per stream.

Ground truth (:mod:`rec_jax.sim.ground_truth`): user vectors u, item vectors v_i,
item biases b_i. The environment is built from four rooms, each one idea:

* :mod:`rec_jax.sim.recsys_params`       params, state and their host-side check;
* :mod:`rec_jax.sim.recsys_clicks`       the user's response: attraction
  sigmoid(scale * (<u, v_i> + b_i) + offset) with fatigue and cold start, the
  position-based ("pbm") and cascade click models, dwell and purchase rewards, and
  the exact expected reward of the shown and of the best slate;
* :mod:`rec_jax.sim.recsys_dynamics`     new items, exposures and fatigue, the
  consumed-items history, gradual and abrupt preference drift;
* :mod:`rec_jax.sim.recsys_calibration`  ``offset``/``scale`` from :func:`calibrate`:
  a random item is clicked ~3% of the time and the user's best item ~30%
  ("CTRs look like a real feed").

This module holds the factory, :func:`make_recsys_env`, its two registered uses
(``synthetic_recsys`` on a random ground truth, ``ml100k`` on one fitted to
MovieLens-100K) and re-exports the public names of the rooms, so
``rec_jax.sim.recsys.<name>`` keeps working.

Slates are action int32[K] of K distinct items (a scalar is accepted for K = 1),
with K fixed when the environment is built (``slate_size``).
Observation: ``features`` = item_factors f32[N, d] (so a shared LinUCB on them learns
u), ``available`` = release_t <= t bool[N], ``scores`` zeros f32[N].
Env item index i is data item id i + 1.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.policies.base import Observation
from rec_jax.sim.base import Simulator, SimulatorInfo
from rec_jax.sim.ground_truth import GroundTruth
from rec_jax.sim.recsys_calibration import calibrate, ctr_stats, pbm_examination
from rec_jax.sim.recsys_clicks import (
    attraction,
    best_expected_reward,
    best_slate,
    click_value,
    match_scores,
    outcome_params,
    respond,
    slot_click_probs,
)
from rec_jax.sim.recsys_dynamics import advance, available_items, history_in_order, staggered_release
from rec_jax.sim.recsys_params import CLICK_MODELS, SHIFT_MODES, RecsysParams, RecsysState, validate_params


def make_recsys_env(
    ground_truth: GroundTruth,
    slate_size: int = 5,
    click_model: str = "pbm",
    history_len: int = 20,
    shift_mode: str = "resample",
    num_shifts: int = 1,
    target_ctr: float = 0.03,
    target_best_ctr: float = 0.30,
    initial_history: np.ndarray | None = None,
    observe_history: bool = False,
) -> tuple[Simulator, RecsysParams]:
    """Build the recommender environment on a ground truth.

    Args (all static):
      ground_truth: the user/item factors (fitted or synthetic).
      slate_size: K items per action.
      click_model: "pbm" or "cascade".
      history_len: L, size of the consumed-items ring buffer.
      shift_mode: what an abrupt drift does: "resample" (u <- a random user's vector) or "negate" (u <- -u).
      num_shifts: M, length of ``params.shift_steps`` (all -1 = no abrupt drift by default).
      target_ctr, target_best_ctr: targets of :func:`calibrate` for the default offset/scale.
      initial_history: optional int32[U, L] item ids (1..N, 0 = padding, left-padded, oldest ->
        newest): the history each user starts with (e.g. the last L items of their real log),
        so a sequential model has something to encode from step 0. Default: empty.
      observe_history: put the in-order history int32[L] into ``Observation.history``.
    Returns:
      (Simulator, default RecsysParams): calibrated, PBM examination 1/log2(k+2), no
      drift, all items released at 0, no fatigue (decay 0.9), click reward only
      (w_click=1), dwell LogNormal(0 + 0.5 tanh(affinity), 0.5), purchase logit -2 + tanh(affinity).
    """
    if click_model not in CLICK_MODELS:
        raise ValueError(f"make_recsys_env: click_model must be one of {CLICK_MODELS}, got {click_model!r}")
    if shift_mode not in SHIFT_MODES:
        raise ValueError(f"make_recsys_env: shift_mode must be one of {SHIFT_MODES}, got {shift_mode!r}")
    num_users, dim = ground_truth.user_factors.shape
    num_items = ground_truth.item_factors.shape[0]
    if not 1 <= slate_size <= num_items:
        raise ValueError(f"make_recsys_env: slate_size must be in [1, {num_items}], got {slate_size}")
    if history_len < 1 or num_shifts < 1:
        raise ValueError(f"make_recsys_env: history_len and num_shifts must be >= 1, got {history_len}, {num_shifts}")
    K, L = slate_size, history_len
    if initial_history is not None:
        initial_history = np.asarray(initial_history)
        if initial_history.shape != (num_users, L) or not np.issubdtype(initial_history.dtype, np.integer):
            raise ValueError(f"make_recsys_env: initial_history must be int [U={num_users}, L={L}], "
                             f"got {initial_history.dtype} {initial_history.shape}")
        if initial_history.min() < 0 or initial_history.max() > num_items:
            raise ValueError(f"make_recsys_env: initial_history ids must be in 0..N={num_items} (0 = padding)")
        initial_history = jnp.asarray(initial_history, jnp.int32)

    def observe(state, params):
        return Observation(
            features=params.item_factors,
            available=available_items(state.t, params),
            scores=jnp.zeros((num_items,), jnp.float32),
            history=history_in_order(state) if observe_history else None,
            history_count=state.num_consumed if observe_history else None,
        )

    def reset(key: jax.Array, params: RecsysParams):
        drawn = jax.random.randint(key, (), 0, num_users)
        user_index = jnp.where(params.user_id >= 0, jnp.minimum(params.user_id, num_users - 1), drawn).astype(jnp.int32)
        if initial_history is None:
            history, num_consumed = jnp.zeros((L,), jnp.int32), jnp.zeros((), jnp.int32)
        else:
            # A left-padded row read as a FULL ring buffer (num_consumed = L, write slot 0
            # next) unrolls to itself in order; its pads behave as the oldest items.
            history = initial_history[user_index]
            num_consumed = jnp.where(jnp.any(history > 0), L, 0).astype(jnp.int32)
        state = RecsysState(
            t=jnp.zeros((), jnp.int32),
            user_index=user_index,
            user=params.user_factors[user_index],
            history=history,
            num_consumed=num_consumed,
            exposure_counts=jnp.zeros((num_items,), jnp.int32),
            recent_exposures=jnp.zeros((num_items,), jnp.float32),
        )
        return observe(state, params), state

    def step(key: jax.Array, state: RecsysState, action: jax.Array, params: RecsysParams):
        click_key, dwell_key, purchase_key, drift_key, shift_key = jax.random.split(key, 5)
        slate = jnp.reshape(action, (K,)).astype(jnp.int32)
        clicks, out = respond((click_key, dwell_key, purchase_key), state, params, slate, click_model)
        new_state = advance((drift_key, shift_key), state, params, slate, clicks, shift_mode)
        return observe(new_state, params), new_state, out

    offset, scale = calibrate(ground_truth, target_ctr, target_best_ctr)
    f32 = jnp.float32
    params = RecsysParams(
        user_factors=jnp.asarray(ground_truth.user_factors, f32),
        item_factors=jnp.asarray(ground_truth.item_factors, f32),
        item_bias=jnp.asarray(ground_truth.item_bias, f32),
        offset=f32(offset),
        scale=f32(scale),
        user_id=jnp.int32(-1),
        examination=pbm_examination(K),
        drift_std=f32(0.0),
        shift_steps=jnp.full((num_shifts,), -1, jnp.int32),
        release_t=jnp.zeros((num_items,), jnp.int32),
        fatigue=f32(0.0),
        exposure_decay=f32(0.9),
        w_click=f32(1.0),
        w_dwell=f32(0.0),
        w_purchase=f32(0.0),
        dwell_loc=f32(0.0),
        dwell_slope=f32(0.5),
        dwell_sigma=f32(0.5),
        purchase_logit=f32(-2.0),
        purchase_slope=f32(1.0),
    )
    return Simulator(reset=reset, step=step, num_items=num_items, feature_dim=dim), params


def make_synthetic_recsys_env(num_users: int = 64, num_items: int = 20, dim: int = 4, seed: int = 0,
                              **env_kwargs) -> tuple[Simulator, RecsysParams]:
    """The recommender environment on a random ground truth (tests, ``--data synthetic``).

    ``env_kwargs`` go to :func:`make_recsys_env` (slate_size, click_model, ...).
    """
    from rec_jax.sim.ground_truth import synthetic_ground_truth

    gt = synthetic_ground_truth(jax.random.key(seed), num_users, num_items, dim)
    return make_recsys_env(gt, **env_kwargs)


def ml100k_ground_truth(dim: int = 16, epochs: int = 20, seed: int = 0, cache: bool = True,
                        data: str = "ml-100k", filter: str = "kcore"):
    """(GroundTruth, SequenceData): the factorisation fitted to ``data`` (default MovieLens-100K)
    and its sequences; :func:`rec_jax.sim.recsys_fit.fitted_ground_truth` (cached under
    ``<data_home>/sim/``). User u / item row i are data user u / item id i + 1."""
    from rec_jax.sim.recsys_fit import fitted_ground_truth

    return fitted_ground_truth(data, dim=dim, epochs=epochs, seed=seed, cache=cache, filter=filter)


def make_ml100k_env(dim: int = 16, epochs: int = 20, seed: int = 0, cache: bool = True,
                    data: str = "ml-100k", filter: str = "kcore",
                    **env_kwargs) -> tuple[Simulator, RecsysParams]:
    """The recommender environment on a ground truth fitted to ``data``: MovieLens-100K by
    default, or any dataset name / log file ``rec_jax.data`` reads (:func:`ml100k_ground_truth`).
    ``env_kwargs`` go to :func:`make_recsys_env`; :func:`rec_jax.sim.recsys_fit.fit_check`
    compares the result with the data."""
    gt, _ = ml100k_ground_truth(dim, epochs, seed, cache, data=data, filter=filter)
    return make_recsys_env(gt, **env_kwargs)


_BAD_RECSYS_PARAMS = (
    ("fatigue", np.float32(-1.0)),
    ("exposure_decay", np.float32(1.5)),
    ("shift_steps", np.array([0], np.int32)),
    ("user_id", np.int32(10_000)),
    ("w_purchase", np.float32(-0.1)),
    ("drift_std", np.float32(np.nan)),
)


def _single_item_study(num_items: int, dim: int, num_arms: int) -> dict:
    # Single-item recommendations, so every policy (and the CTR) is comparable across envs.
    return {"slate_size": 1}


SYNTHETIC_RECSYS = SimulatorInfo(
    make=make_synthetic_recsys_env,
    params=RecsysParams,
    validate=validate_params,
    kind="recsys",
    slates="fixed",
    study_kwargs=_single_item_study,
    test_kwargs={"num_users": 8, "num_items": 6, "dim": 3, "slate_size": 1, "target_ctr": 0.1, "history_len": 4},
    bad_params=_BAD_RECSYS_PARAMS,
)

ML100K = SimulatorInfo(
    make=make_ml100k_env,
    params=RecsysParams,
    validate=validate_params,
    kind="recsys",
    slates="fixed",
    study_kwargs=_single_item_study,
    test_kwargs={"dim": 3, "epochs": 1, "slate_size": 1, "target_ctr": 0.1, "history_len": 4},
    bad_params=_BAD_RECSYS_PARAMS,
    data="ml-100k",
)

__all__ = [
    "CLICK_MODELS", "SHIFT_MODES", "RecsysParams", "RecsysState", "validate_params",
    "match_scores", "available_items", "attraction", "outcome_params", "click_value", "slot_click_probs",
    "best_expected_reward", "best_slate", "respond", "history_in_order", "advance", "staggered_release",
    "ctr_stats", "calibrate", "pbm_examination",
    "make_recsys_env", "make_synthetic_recsys_env", "ml100k_ground_truth", "make_ml100k_env",
    "SYNTHETIC_RECSYS", "ML100K",
]
