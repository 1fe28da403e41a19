"""Off-policy estimates of a candidate policy's value on the decision service's log.

    python -m rec_jax.ope.from_log runs/ml100k/decisions.db --policy greedy
    python -m rec_jax.ope.from_log log.parquet --policy greedy --bootstrap 1000

Reads the SQLite log or its Parquet export (``rec_jax.serve.http.export``) and
estimates the value of ``--policy`` (the expected slate CTR: clicks per shown slot)
on the rewarded decisions, one round per decision:

* the logging propensity of a slate is the product of its slots' conditional
  propensities (exact for the served slot-by-slot policies);
* ``greedy``: the log records, beside every slate shown, the model's greedy slate
  (its top-k of the items left), so pi_e(slate | x) = 1 when the two are equal and
  0 otherwise; ``logging``: the logging policy itself (weights 1: the on-policy
  mean, a check of the pipeline);
* IPW, SNIPW, and DR with a cross-fitted logistic reward model per slot (features:
  the slot's position, the item's rank in the greedy slate, an intercept; fitted on
  the other folds' decisions); the DR term of the greedy slate is the model's
  prediction for the greedy items at their positions;
* percentile bootstrap CIs over decisions (the reward model is not refitted per
  resample: a stated shortcut that narrows the DR interval slightly).

Log validation names the bad field in one line (``rec_jax.ope.validate_log`` for
the per-slot columns); propensities the log marks as Monte Carlo estimates with a
floor are refused unless ``--allow-mc-floor``.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

import rec_jax.cli

POLICIES = ("greedy", "logging")


@dataclasses.dataclass(frozen=True)
class Config:
    """Estimate a candidate policy's value from the decision service's log."""

    log: Path  # the decision log (SQLite .db) or its Parquet export
    policy: str = "greedy"  # greedy | logging
    num_folds: int = 2  # cross-fitting folds of the reward model
    bootstrap: int = 500  # bootstrap resamples of the CIs
    level: float = 0.95  # CI level
    seed: int = 0
    allow_mc_floor: bool = False  # accept floored Monte Carlo propensities (biased weights)


def slate_rounds(served: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-slot columns (``read_served_log``) -> per-decision arrays.

    Returns reward f[n] (clicks per slot), pscore f[n] (slate propensity), match
    bool[n] (slate == greedy slate), and per slot: decision i[m], position i[m],
    greedy_rank i[m] (the item's position in the greedy slate, -1 if absent), click f[m],
    and the greedy slate's width per decision.
    """
    ids = served["decision_id"]
    order = np.lexsort((served["position"], ids))
    cols = {k: v[order] for k, v in served.items()}
    _, decision, width = np.unique(cols["decision_id"], return_inverse=True, return_counts=True)
    n = len(width)
    reward = np.bincount(decision, cols["reward"].astype(np.float64), n) / width
    log_p = np.bincount(decision, np.log(cols["pscore"].astype(np.float64)), n)
    greedy = cols["greedy_action"]
    slot_match = cols["action"] == greedy
    match = np.bincount(decision, slot_match, n) == width
    # the item's rank in the greedy slate of its decision
    starts = np.concatenate([[0], np.cumsum(width)[:-1]])
    rank = np.full(len(decision), -1)
    for i in range(n):  # slates are short (K <= 10s): a per-decision lookup
        s, w = starts[i], width[i]
        where = {int(item): k for k, item in enumerate(greedy[s:s + w])}
        rank[s:s + w] = [where.get(int(a), -1) for a in cols["action"][s:s + w]]
    return {"reward": reward, "pscore": np.exp(log_p), "match": match, "width": width, "decision": decision,
            "position": cols["position"].astype(np.int64), "greedy_rank": rank,
            "click": cols["reward"].astype(np.float64), "has_greedy": np.bincount(decision, greedy >= 0, n) == width,
            "kind": cols["propensity_kind"]}


def _features(position, greedy_rank, k_max: int) -> np.ndarray:
    """f32[m, 2K+2]: one-hot position, one-hot greedy rank (K = absent), intercept."""
    m = len(position)
    x = np.zeros((m, 2 * k_max + 2), np.float32)
    x[np.arange(m), np.minimum(position, k_max - 1)] = 1.0
    x[np.arange(m), k_max + np.where(greedy_rank < 0, k_max, np.minimum(greedy_rank, k_max - 1))] = 1.0
    x[:, -1] = 1.0
    return x


def estimate(served: dict[str, np.ndarray], policy: str, *, num_folds: int = 2, bootstrap: int = 500,
             level: float = 0.95, seed: int = 0, allow_mc_floor: bool = False) -> dict:
    """The estimates (see module docstring) from per-slot columns."""
    import jax
    import jax.numpy as jnp

    from rec_jax import ope

    if policy not in POLICIES:
        raise ValueError(f"--policy {policy!r}: expected one of {', '.join(POLICIES)}")
    if len(served["action"]) == 0:
        raise ValueError("the log holds no rewarded decision to estimate from")
    # the per-slot columns through the shared checks (one line naming a bad field, MC floors refused)
    m = len(served["action"])  # (the slate's items are checked by the service; one "action" per row here)
    ope.validate_log({"reward": served["reward"], "action": np.zeros(m, np.int64), "pscore": served["pscore"],
                      "propensity_kind": served["propensity_kind"]}, pi_e=np.ones((m, 1)),
                     allow_mc_floor=allow_mc_floor)
    rounds = slate_rounds(served)
    if policy == "greedy" and not rounds["has_greedy"].all():
        raise ValueError(f"greedy_action: {int((~rounds['has_greedy']).sum())} decisions logged no greedy slate; "
                         "expected the service's greedy column for --policy greedy")
    n = len(rounds["reward"])
    w = rounds["match"] / rounds["pscore"] if policy == "greedy" else np.ones(n)
    k_max = int(rounds["width"].max())
    x = _features(rounds["position"], rounds["greedy_rank"], k_max)
    fold = (np.random.default_rng(seed).permutation(n) % num_folds)[rounds["decision"]]
    coef = ope.cross_fit_logistic(jnp.asarray(x), jnp.asarray(rounds["click"], jnp.float32), jnp.asarray(fold),
                                  num_folds)
    q_slot = np.asarray(jax.nn.sigmoid(jnp.sum(jnp.asarray(x) * coef[fold], axis=1)), np.float64)
    q_logged = np.bincount(rounds["decision"], q_slot, n) / rounds["width"]
    if policy == "greedy":  # the greedy slate: its items sit at their own ranks
        x_greedy = _features(rounds["position"], rounds["position"], k_max)
        q_g = np.asarray(jax.nn.sigmoid(jnp.sum(jnp.asarray(x_greedy) * coef[fold], axis=1)), np.float64)
        q_target = np.bincount(rounds["decision"], q_g, n) / rounds["width"]
    else:
        q_target = q_logged
    r = rounds["reward"]

    def values(idx):
        ww, rr = w[idx], r[idx]
        return {"ipw": float(np.mean(ww * rr)), "snipw": float(np.sum(ww * rr) / max(np.sum(ww), 1e-12)),
                "dr": float(np.mean(q_target[idx] + ww * (rr - q_logged[idx])))}

    point = values(np.arange(n))
    rng = np.random.default_rng(seed + 1)
    samples = [values(rng.integers(0, n, n)) for _ in range(bootstrap)]
    tail = (1 - level) / 2 * 100
    out = {"policy": policy, "rounds": n, "matches": int(rounds["match"].sum()),
           "logging_ctr": float(np.mean(r)), "max_weight": float(w.max())}
    for name, value in point.items():
        column = np.array([s[name] for s in samples])
        out[name] = value
        out[f"{name}_ci{round(level * 100)}"] = [float(np.percentile(column, tail)),
                                                 float(np.percentile(column, 100 - tail))]
    return out


def main(cfg: Config) -> dict:
    from rec_jax.serve.http.export import read_served_log

    served = read_served_log(cfg.log)
    result = estimate(served, cfg.policy, num_folds=cfg.num_folds, bootstrap=cfg.bootstrap, level=cfg.level,
                      seed=cfg.seed, allow_mc_floor=cfg.allow_mc_floor)
    print(json.dumps(result, sort_keys=True))
    return result


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
