"""Host-side checks of a logged bandit data set before estimation.

Bad logs get one ``ValueError`` line naming the field and what was expected, never
NaN estimates: a propensity of 0 (an unlogged action), one above 1, a missing or
non-finite column, or columns of different lengths. Logs of the online engine carry
``propensity_kind`` (rec_jax.policies.base.PROPENSITY_KINDS); Monte Carlo propensities
floored at 1/num_mc_samples (Thompson-type policies) cap every IPW weight at
num_mc_samples * pi_e, so they are refused unless ``allow_mc_floor=True``.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from rec_jax.ope.estimators import OPEData

REQUIRED = ("reward", "action", "pscore")


def _get(log: Any, name: str):
    if isinstance(log, Mapping):
        return log.get(name)
    return getattr(log, name, None)


def validate_log(log: Any, pi_e: Any = None, q_hat: Any = None, num_actions: int | None = None, *,
                 allow_mc_floor: bool = False) -> OPEData:
    """Check a log (a mapping or an object with ``reward``, ``action``, ``pscore``) and build OPEData.

    pi_e: f[n, A] evaluation-policy probabilities per round; q_hat: f[n, A] or None
    (zeros: only IPW/SNIPW are then meaningful). ``num_actions`` defaults to pi_e's width.
    An optional ``pscore_kind`` (or the engine's ``propensity_kind``) field, int[n] codes
    of rec_jax.policies.base.PROPENSITY_KINDS, says what each pscore is; floored Monte
    Carlo ones are a ValueError unless ``allow_mc_floor=True``.
    """
    cols = {}
    for name in REQUIRED:
        v = _get(log, name)
        if v is None:
            raise ValueError(f"log field '{name}' is missing; expected an array of length n")
        v = np.asarray(v)
        if v.ndim != 1:
            raise ValueError(f"log field '{name}': expected a 1-D array, got shape {v.shape}")
        cols[name] = v
    n = len(cols["reward"])
    for name, v in cols.items():
        if len(v) != n:
            raise ValueError(f"log field '{name}' has length {len(v)}, expected {n} (the length of 'reward')")
    if n == 0:
        raise ValueError("log field 'reward' is empty; expected at least one round")
    reward = cols["reward"].astype(np.float64)
    if not np.all(np.isfinite(reward)):
        raise ValueError(f"log field 'reward': {int(np.sum(~np.isfinite(reward)))} non-finite values")
    pscore = cols["pscore"].astype(np.float64)
    bad = ~np.isfinite(pscore) | (pscore <= 0) | (pscore > 1)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"log field 'pscore' row {i} is {float(pscore[i])}; expected a propensity in (0, 1]")
    _check_kind(log, n, allow_mc_floor)
    if pi_e is None:
        raise ValueError("evaluation policy 'pi_e' is missing; expected f[n, A] action probabilities")
    pi_e = np.asarray(pi_e, np.float64)
    if pi_e.ndim != 2 or pi_e.shape[0] != n:
        raise ValueError(f"'pi_e' has shape {pi_e.shape}, expected ({n}, num_actions)")
    num_actions = pi_e.shape[1] if num_actions is None else num_actions
    if pi_e.shape[1] != num_actions:
        raise ValueError(f"'pi_e' has {pi_e.shape[1]} columns, expected num_actions={num_actions}")
    if not np.all(np.isfinite(pi_e)) or np.any(pi_e < 0) or np.any(pi_e > 1 + 1e-6):
        raise ValueError("'pi_e': expected probabilities in [0, 1]")
    if np.any(np.abs(pi_e.sum(axis=1) - 1.0) > 1e-3):
        raise ValueError("'pi_e': expected each row to sum to 1 (a distribution over actions at that round)")
    action = cols["action"]
    if not np.issubdtype(action.dtype, np.integer):
        if not np.all(action == np.round(action)):
            raise ValueError("log field 'action': expected integer action ids")
    action = action.astype(np.int64)
    if action.min() < 0 or action.max() >= num_actions:
        raise ValueError(f"log field 'action': expected ids in 0..{num_actions - 1}, "
                         f"got {action.min()}..{action.max()}")
    if q_hat is None:
        q_hat = np.zeros_like(pi_e)
    q_hat = np.asarray(q_hat, np.float64)
    if q_hat.shape != pi_e.shape:
        raise ValueError(f"'q_hat' has shape {q_hat.shape}, expected {pi_e.shape} (same as 'pi_e')")
    if not np.all(np.isfinite(q_hat)):
        raise ValueError("'q_hat': expected finite reward-model predictions")
    return OPEData(reward=np.asarray(reward, np.float32), action=action.astype(np.int32),
                   pscore=pscore.astype(np.float32), pi_e=pi_e.astype(np.float32), q_hat=q_hat.astype(np.float32))


def _check_kind(log: Any, n: int, allow_mc_floor: bool) -> None:
    from rec_jax.policies.base import MONTE_CARLO_FLOORED, PROPENSITY_KINDS

    name = "pscore_kind" if _get(log, "pscore_kind") is not None else "propensity_kind"
    kind = _get(log, name)
    if kind is None:
        return
    kind = np.asarray(kind).reshape(-1)
    if len(kind) != n:
        raise ValueError(f"log field '{name}' has length {len(kind)}, expected {n} (the length of 'reward')")
    if np.any((kind < 0) | (kind >= len(PROPENSITY_KINDS))):
        raise ValueError(f"log field '{name}': expected codes 0..{len(PROPENSITY_KINDS) - 1} of {PROPENSITY_KINDS}")
    floored = int(np.sum(kind == MONTE_CARLO_FLOORED))
    if floored and not allow_mc_floor:
        raise ValueError(f"log field '{name}': {floored} of {n} pscores are Monte Carlo estimates floored at "
                         f"1/num_mc_samples (IPW weights capped at num_mc_samples * pi_e); pass allow_mc_floor=True "
                         f"to estimate with them anyway")
