"""Host-side parameter checks shared by the simulators (one-line ValueErrors).

Each check takes a concrete value (NumPy-convertible) and the field's name, so the
message names ``EnvParams.<field>`` and what was expected. Leading batch axes (a
params pytree vmapped over configurations) are allowed: checks look at all values.
"""
from __future__ import annotations

import numpy as np


def as_array(value, name: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as err:  # a tracer or something odd
        raise ValueError(f"{name}: expected a concrete array, got {type(value).__name__} ({err})") from None
    return arr


def finite(value, name: str) -> np.ndarray:
    arr = as_array(value, name)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name}: expected finite values, got {arr.ravel()[:8]}")
    return arr


def in_range(value, name: str, lo=None, hi=None, lo_open=False, hi_open=False) -> np.ndarray:
    arr = finite(value, name)
    bad = np.zeros(arr.shape, bool)
    if lo is not None:
        bad |= (arr <= lo) if lo_open else (arr < lo)
    if hi is not None:
        bad |= (arr >= hi) if hi_open else (arr > hi)
    if np.any(bad):
        lb = "(" if lo_open else "["
        rb = ")" if hi_open else "]"
        rng = f"{lb}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{rb}"
        raise ValueError(f"{name}: expected values in {rng}, got {arr[bad].ravel()[:8]}")
    return arr


def last_dim(value, name: str, size: int, ndim: int = 1) -> np.ndarray:
    arr = as_array(value, name)
    if arr.ndim < ndim or arr.shape[arr.ndim - ndim] != size:
        raise ValueError(f"{name}: expected trailing shape with {size} along axis -{ndim}, got shape {arr.shape}")
    return arr
