"""Confidence intervals of a mean over a few independent runs (seeds, folds)."""
from __future__ import annotations

import numpy as np


def t_quantile_975(dof) -> np.ndarray:
    """The 97.5% quantile of Student's t with ``dof`` degrees of freedom (any dof >= 1),
    from scipy (a dependency of jax itself)."""
    from scipy.stats import t

    return t.ppf(0.975, dof)


def t_ci95(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """95% half-width of the mean over ``axis`` with Student's t (n - 1 dof); NaN for n < 2."""
    x = np.asarray(x, np.float64)
    n = x.shape[axis]
    if n < 2:
        return np.full(np.delete(x.shape, axis), np.nan)
    return t_quantile_975(n - 1) * np.std(x, axis=axis, ddof=1) / np.sqrt(n)
