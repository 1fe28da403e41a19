"""Host-side calibration of the recommender environment (:mod:`rec_jax.sim.recsys`):
the logit ``offset`` and temperature ``scale`` that make the CTRs look like a real
feed (a random item clicked ~3% of the time, the user's best item ~30%), and the
default PBM examination."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.sim.ground_truth import GroundTruth


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

