"""Bootstrap confidence intervals over users (vectorised NumPy on the host)."""
from __future__ import annotations

import numpy as np


def bootstrap_ci95(values: np.ndarray, num_resamples: int = 1000, seed: int = 0) -> float:
    """Half-width of the 95% percentile-bootstrap interval of the mean of ``values`` f[U]."""
    values = np.asarray(values, np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[0], size=(num_resamples, values.shape[0]))
    means = values[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float((hi - lo) / 2.0)


def paired_bootstrap_ci95(a: np.ndarray, b: np.ndarray, num_resamples: int = 1000, seed: int = 0):
    """Mean difference mean(a - b) over the same users and its 95% bootstrap interval (lo, hi)."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, diff.shape[0], size=(num_resamples, diff.shape[0]))
    means = diff[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(diff.mean()), float(lo), float(hi)
