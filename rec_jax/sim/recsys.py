"""Semi-synthetic recommender environment: one simulated user per stream.

Ground truth (:mod:`rec_jax.sim.ground_truth`): user vectors u, item vectors v_i,
item biases b_i. For the user's current vector u at step t:

    match_i      = <u, v_i> + b_i                        (the fitted logit)
    affinity_i   = scale * match_i                       (temperature ``scale``)
    attraction_i = sigmoid(affinity_i + offset)          (click prob. if examined)
                   * exp(-fatigue * recent_exposures_i)  (fatigue)
                   * [release_t_i <= t]                  (cold start: unreleased = 0)

``offset``/``scale`` come from :func:`calibrate`: a random item is clicked ~3% of
the time and the user's best item ~30% ("CTRs look like a real feed").

Slates (action int32[K], K distinct items; a scalar is accepted for K = 1) are
read by a click model (static ``click_model``):

* "pbm"     position-based model: slot k is examined with prob. ``examination[k]``
            and clicked with prob. examination[k] * attraction (Richardson et al. 2007);
* "cascade" the user scans down and clicks the first attractive item, then stops
            (Craswell et al. 2008): P(click at k) = a_k prod_{j<k}(1 - a_j).

A click on item i yields ``w_click + w_dwell * dwell + w_purchase * purchase`` where
dwell ~ LogNormal(dwell_loc + dwell_slope * tanh(affinity_i), dwell_sigma) and
purchase ~ Bernoulli(sigmoid(purchase_logit + purchase_slope * tanh(affinity_i))).
So the value of a click on i is g_i = w_click + w_dwell E[dwell_i] + w_purchase q_i,
and every expectation is exact:

* PBM:      E[R(slate)] = sum_k examination[k] a_k g_k; the best slate pairs the
            largest a*g with the largest examination (rearrangement inequality).
* cascade:  E[R(slate)] = sum_k a_k g_k prod_{j<k}(1 - a_j). An adjacent swap
            changes it by P(reach) a_i a_j (g_j - g_i), so some best slate is sorted
            by g; choosing its K items is a DP over items in g order, done as K
            reverse cumulative maxima. With click reward only (g constant) this is
            the K most attractive items.

Dynamics after each step: exposure counts and decayed recent exposures of the shown
items grow; clicked items enter the user's history ring buffer (ids 1..N, 0 = empty);
the user vector takes a Gaussian random-walk step (``drift_std``); at each step in
``shift_steps`` it is replaced (``shift_mode="resample"``: a freshly drawn user's
vector; "negate": -u), so from that step on the user acts on the new taste.

Observation: ``features`` = item_factors f32[N, d] (so a shared LinUCB on them learns
u), ``available`` = release_t <= t bool[N], ``scores`` zeros f32[N].
Env item index i is data item id i + 1.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from rec_jax.policies.base import Observation
from rec_jax.sim import _checks
from rec_jax.sim.base import Simulator, StepOutput
from rec_jax.sim.ground_truth import GroundTruth

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


# ----------------------------------------------------------------------------- formulas


def match_scores(user: jax.Array, params: RecsysParams) -> jax.Array:
    """<u, v_i> + b_i for every item: f32[N]."""
    return params.item_factors @ user + params.item_bias


def available_items(t: jax.Array, params: RecsysParams) -> jax.Array:
    """bool[N]: items released by step t."""
    return params.release_t <= t


def attraction(state: RecsysState, params: RecsysParams) -> jax.Array:
    """Click probability of each item if examined, f32[N] (fatigue and availability included)."""
    affinity = jnp.maximum(params.scale, 0.0) * match_scores(state.user, params)
    fatigue = jnp.exp(-jnp.maximum(params.fatigue, 0.0) * state.recent_exposures)
    p = jax.nn.sigmoid(affinity + params.offset) * fatigue
    return jnp.where(available_items(state.t, params), p, 0.0)


def _outcome_params(state: RecsysState, params: RecsysParams):
    """(log-dwell mean f32[N], dwell sigma f32[], purchase prob. f32[N]) given a click."""
    tz = jnp.tanh(jnp.maximum(params.scale, 0.0) * match_scores(state.user, params))
    mu = params.dwell_loc + params.dwell_slope * tz
    sigma = jnp.maximum(params.dwell_sigma, 0.0)
    q = jax.nn.sigmoid(params.purchase_logit + params.purchase_slope * tz)
    return mu, sigma, q


def click_value(state: RecsysState, params: RecsysParams) -> jax.Array:
    """g_i = E[reward | click on i] = w_click + w_dwell E[dwell_i] + w_purchase q_i: f32[N]."""
    mu, sigma, q = _outcome_params(state, params)
    w_c, w_d, w_p = (jnp.maximum(w, 0.0) for w in (params.w_click, params.w_dwell, params.w_purchase))
    return w_c + w_d * jnp.exp(mu + 0.5 * sigma**2) + w_p * q


def slot_click_probs(attr: jax.Array, examination: jax.Array, click_model: str) -> jax.Array:
    """P(click in slot k) for a slate whose attractions are attr f32[K]: f32[K]."""
    if click_model == "pbm":
        return jnp.clip(examination, 0.0, 1.0) * attr
    reach = jnp.cumprod(jnp.concatenate([jnp.ones((1,), attr.dtype), 1.0 - attr[:-1]]))
    return attr * reach


def best_expected_reward(attr: jax.Array, value: jax.Array, examination: jax.Array, click_model: str,
                         slate_size: int) -> jax.Array:
    """Exact expected reward of the best slate of ``slate_size`` distinct items: f32[].

    attr, value: f32[N] attraction and click value g (>= 0) of every item.
    """
    num_items = attr.shape[0]
    if click_model == "pbm":
        k = min(slate_size, num_items)
        top = jax.lax.top_k(attr * value, k)[0]
        exam = -jnp.sort(-jnp.clip(examination, 0.0, 1.0))[:k]
        return jnp.sum(top * exam)
    # cascade: DP over items sorted by g descending; V_m[i] = best reward with m slots
    # left using items i.. ; V_m[i] = max_{j >= i} a_j g_j + (1 - a_j) V_{m-1}[j + 1].
    order = jnp.argsort(-value)
    a, g = attr[order], value[order]
    v_prev = jnp.zeros((num_items + 1,), attr.dtype)
    for _ in range(min(slate_size, num_items)):
        h = a * g + (1.0 - a) * v_prev[1:]
        v_prev = jnp.concatenate([jax.lax.cummax(h, reverse=True), jnp.zeros((1,), attr.dtype)])
    return v_prev[0]


def best_slate(attr: jax.Array, value: jax.Array, examination: jax.Array, click_model: str,
               slate_size: int) -> jax.Array:
    """A best slate, int32[K], for PBM and for cascade with constant click value.

    PBM: the K largest a*g placed on the slots by decreasing examination. Cascade:
    the K most attractive items sorted by attraction (best when g is constant, i.e.
    click reward; for item-dependent g use :func:`best_expected_reward` for the value).
    """
    if click_model == "pbm":
        top = jax.lax.top_k(attr * value, slate_size)[1]
        slots = jnp.argsort(-jnp.clip(examination, 0.0, 1.0))
        return jnp.zeros((slate_size,), jnp.int32).at[slots].set(top.astype(jnp.int32))
    return jax.lax.top_k(attr, slate_size)[1].astype(jnp.int32)


def history_in_order(state: RecsysState) -> jax.Array:
    """The ring buffer unrolled oldest -> newest, right-aligned and left-padded with 0: int32[L]."""
    size = state.history.shape[0]
    n = jnp.minimum(state.num_consumed, size)
    j = jnp.arange(size)
    src = (state.num_consumed - size + j) % size
    return jnp.where(j >= size - n, state.history[src], 0)


# ----------------------------------------------------------------------------- host-side helpers


def _np_sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free


def ctr_stats(gt: GroundTruth, offset: float, scale: float, max_users: int = 200) -> tuple[float, float]:
    """(mean CTR of a random item, mean CTR of each user's best item) over up to max_users users."""
    u, v, b = (np.asarray(x, np.float64) for x in (gt.user_factors, gt.item_factors, gt.item_bias))
    rows = np.unique(np.linspace(0, len(u) - 1, min(len(u), max_users)).round().astype(int))
    match = u[rows] @ v.T + b
    p = _np_sigmoid(scale * match + offset)
    return float(p.mean()), float(p.max(1).mean())


def calibrate(gt: GroundTruth, target_ctr: float = 0.03, target_best_ctr: float = 0.30,
              max_users: int = 200) -> tuple[float, float]:
    """Solve for (offset, scale) so the mean CTR is ``target_ctr`` and the best item's is ``target_best_ctr``.

    Nested bisection: for a scale, the offset hitting the mean CTR is unique (the mean
    increases with the offset); the best-item CTR at that offset grows with the scale
    (from target_ctr at scale 0). Raises ValueError if the targets cannot be met.
    """
    if not 0.0 < target_ctr < target_best_ctr < 1.0:
        raise ValueError(f"calibrate: need 0 < target_ctr < target_best_ctr < 1, got {target_ctr}, {target_best_ctr}")
    u, v, b = (np.asarray(x, np.float64) for x in (gt.user_factors, gt.item_factors, gt.item_bias))
    rows = np.unique(np.linspace(0, len(u) - 1, min(len(u), max_users)).round().astype(int))
    match = u[rows] @ v.T + b
    if np.ptp(match) == 0:
        raise ValueError("calibrate: all ground-truth scores are equal; no scale separates the items")

    def solve_offset(scale):
        # safeguarded Newton on mean(sigmoid(z + off)) = target_ctr (increasing in off)
        z = scale * match
        lo, hi = -np.abs(z).max() - 40.0, np.abs(z).max() + 40.0
        off = float(np.log(target_ctr / (1 - target_ctr)) - np.median(z))
        for _ in range(100):
            p = _np_sigmoid(z + off)
            f = p.mean() - target_ctr
            if abs(f) < 1e-10:
                break
            lo, hi = (off, hi) if f < 0 else (lo, off)
            d = (p * (1 - p)).mean()
            nxt = off - f / d if d > 0 else lo - 1.0
            off = nxt if lo < nxt < hi else 0.5 * (lo + hi)
        return off, float(_np_sigmoid(z + off).max(1).mean())

    lo, hi = -10.0, 10.0  # log scale
    reachable = solve_offset(math.exp(hi))[1]
    if reachable < target_best_ctr:
        raise ValueError(f"calibrate: target_best_ctr={target_best_ctr} unreachable with these factors at "
                         f"target_ctr={target_ctr} (at most {reachable:.3f}); lower it or raise target_ctr")
    for _ in range(32):
        mid = 0.5 * (lo + hi)
        if solve_offset(math.exp(mid))[1] < target_best_ctr:
            lo = mid
        else:
            hi = mid
    scale = math.exp(0.5 * (lo + hi))
    return solve_offset(scale)[0], scale


def pbm_examination(slate_size: int) -> jax.Array:
    """Examination 1 / log2(k + 2) for slots k = 0..K-1 (the DCG discount)."""
    return jnp.asarray(1.0 / np.log2(np.arange(slate_size) + 2.0), jnp.float32)


def staggered_release(key: jax.Array, num_items: int, new_fraction: float, horizon: int) -> jax.Array:
    """Release steps int32[N]: a ``new_fraction`` of items arrive at uniform steps in [1, horizon], others at 0."""
    is_new_key, when_key = jax.random.split(key)
    is_new = jax.random.uniform(is_new_key, (num_items,)) < new_fraction
    when = jax.random.randint(when_key, (num_items,), 1, max(horizon, 1) + 1)
    return jnp.where(is_new, when, 0).astype(jnp.int32)


def validate_params(params: RecsysParams, slate_size: int | None = None) -> RecsysParams:
    """Host-side check; raises a one-line ValueError naming the bad field."""
    uf = _checks.finite(params.user_factors, "RecsysParams.user_factors")
    vf = _checks.finite(params.item_factors, "RecsysParams.item_factors")
    if uf.ndim < 2 or vf.ndim < 2 or uf.shape[-1] != vf.shape[-1]:
        raise ValueError(f"RecsysParams.user_factors: expected [U, d] matching item_factors [N, d], got {uf.shape} and {vf.shape}")
    num_users, num_items = uf.shape[-2], vf.shape[-2]
    _checks.last_dim(params.item_bias, "RecsysParams.item_bias", num_items)
    _checks.finite(params.item_bias, "RecsysParams.item_bias")
    _checks.finite(params.offset, "RecsysParams.offset")
    _checks.in_range(params.scale, "RecsysParams.scale", 0.0)
    _checks.in_range(params.user_id, "RecsysParams.user_id", -1, num_users - 1)
    exam = _checks.in_range(params.examination, "RecsysParams.examination", 0.0, 1.0)
    if slate_size is not None:
        _checks.last_dim(exam, "RecsysParams.examination", slate_size)
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


# ----------------------------------------------------------------------------- the environment


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

        # -- the user's response
        attr_all = attraction(state, params)
        value_all = click_value(state, params)
        attr = attr_all[slate]
        exam = params.examination
        p_click = slot_click_probs(attr, exam, click_model)
        draws = jax.random.uniform(click_key, (K,))
        if click_model == "pbm":
            clicks = draws < p_click
        else:
            attractive = draws < attr
            seen_before = jnp.cumsum(attractive) - attractive
            clicks = attractive & (seen_before == 0)
        clicks = clicks.astype(jnp.float32)
        mu, sigma, q = _outcome_params(state, params)
        dwell = jnp.exp(mu[slate] + sigma * jax.random.normal(dwell_key, (K,)))
        purchase = (jax.random.uniform(purchase_key, (K,)) < q[slate]).astype(jnp.float32)
        w_c, w_d, w_p = (jnp.maximum(w, 0.0) for w in (params.w_click, params.w_dwell, params.w_purchase))
        slot_rewards = clicks * (w_c + w_d * dwell + w_p * purchase)
        out = StepOutput(
            reward=jnp.sum(slot_rewards),
            click=jnp.max(clicks),
            expected_reward=jnp.sum(p_click * value_all[slate]),
            best_expected_reward=best_expected_reward(attr_all, value_all, exam, click_model, K),
            slot_rewards=slot_rewards,
        )

        # -- exposures, history
        shown = jnp.zeros((num_items,), jnp.int32).at[slate].add(1)
        decay = jnp.clip(params.exposure_decay, 0.0, 1.0)

        def write(carry, slot):
            history, count = carry
            item, clicked = slot
            history = jnp.where(clicked > 0, history.at[count % L].set(item + 1), history)
            return (history, count + (clicked > 0).astype(jnp.int32)), None

        (history, num_consumed), _ = jax.lax.scan(write, (state.history, state.num_consumed), (slate, clicks))

        # -- preference drift for the next step
        t_next = state.t + 1
        user = state.user + jnp.maximum(params.drift_std, 0.0) * jax.random.normal(drift_key, (dim,))
        shift_now = jnp.any(params.shift_steps == t_next)
        if shift_mode == "resample":
            new_index = jax.random.randint(shift_key, (), 0, num_users).astype(jnp.int32)
            user_index = jnp.where(shift_now, new_index, state.user_index)
            user = jnp.where(shift_now, params.user_factors[new_index], user)
        else:
            user_index = state.user_index
            user = jnp.where(shift_now, -user, user)

        new_state = RecsysState(
            t=t_next,
            user_index=user_index,
            user=user,
            history=history,
            num_consumed=num_consumed,
            exposure_counts=state.exposure_counts + shown,
            recent_exposures=decay * state.recent_exposures + shown.astype(jnp.float32),
        )
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


def ml100k_ground_truth(dim: int = 16, epochs: int = 20, seed: int = 0, cache: bool = True):
    """(GroundTruth, SequenceData): the factorisation fitted to MovieLens-100K and its data.

    Loads ``rec_jax.data.load("ml-100k")`` and fits :func:`fit_ground_truth` with
    ``jax.random.key(seed)``; the factors are cached to
    ``<data_home>/sim/ml-100k_gt_d{dim}_e{epochs}_s{seed}_u{U}_i{N}_m{M}.npz``
    so later runs reuse them. User u / item row i are data user u / item id i + 1.
    """
    from rec_jax import data
    from rec_jax.sim.ground_truth import fit_ground_truth, load_ground_truth, save_ground_truth

    seqs = data.load("ml-100k")
    tag = f"d{dim}_e{epochs}_s{seed}_u{seqs.num_users}_i{seqs.num_items}_m{len(seqs.items)}"
    path = data.data_home() / "sim" / f"ml-100k_gt_{tag}.npz"
    if cache and path.exists():
        gt = load_ground_truth(path)
    else:
        gt = fit_ground_truth(seqs, dim=dim, epochs=epochs, key=jax.random.key(seed))
        if cache:
            save_ground_truth(gt, path)
    return gt, seqs


def make_ml100k_env(dim: int = 16, epochs: int = 20, seed: int = 0, cache: bool = True,
                    **env_kwargs) -> tuple[Simulator, RecsysParams]:
    """The recommender environment on a ground truth fitted to MovieLens-100K
    (:func:`ml100k_ground_truth`). ``env_kwargs`` go to :func:`make_recsys_env`."""
    gt, _ = ml100k_ground_truth(dim, epochs, seed, cache)
    return make_recsys_env(gt, **env_kwargs)
