"""Confidence intervals of a mean over a few independent runs (seeds, folds)."""
from __future__ import annotations

import numpy as np

# two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom; 1.96 beyond
_T_975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
          2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
          2.052, 2.048, 2.045, 2.042]


def t_ci95(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """95% half-width of the mean over ``axis`` with Student's t (n - 1 dof); NaN for n < 2."""
    x = np.asarray(x, np.float64)
    n = x.shape[axis]
    if n < 2:
        return np.full(np.delete(x.shape, axis), np.nan)
    t = _T_975[n - 2] if n - 1 <= len(_T_975) else 1.96
    return t * np.std(x, axis=axis, ddof=1) / np.sqrt(n)
