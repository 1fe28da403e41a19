"""NumPy LinUCB references for ``experiments/bench_engine.py`` (the baselines the engine is timed against).

Every function runs LinUCB on the ``linear`` env's problem (item features ``X`` f32[N, D], one
hidden ``theta_true`` f32[S, D] per stream, reward <x, theta> + N(0, noise_std^2)) for ``steps``
steps and returns (reward_sum, seconds): batched over streams (per-stream or one shared model),
with incremental per-item variances, or as a Python loop over streams as per-user libraries do.
"""
from __future__ import annotations

import time


def numpy_batched_per_stream(X, theta_true, alpha, reg, noise_std, steps, rng):
    """LinUCB, one model per stream, all streams batched; returns (reward_sum, seconds)."""
    import numpy as np

    S, D = theta_true.shape
    N = X.shape[0]
    X = X.astype(np.float32)
    XX = (X[:, :, None] * X[:, None, :]).reshape(N, D * D)  # x_n (x) x_n, f32[N, D*D]
    a_inv = np.tile(np.eye(D, dtype=np.float32) / reg, (S, 1, 1))
    theta = np.zeros((S, D), np.float32)
    rows = np.arange(S)
    total = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        mean = theta @ X.T  # [S, N]
        var = a_inv.reshape(S, D * D) @ XX.T  # [S, N] = diag(X A_s^-1 X^T)
        np.maximum(var, 0.0, out=var)
        scores = mean + alpha * np.sqrt(var)
        a = scores.argmax(axis=1)
        x = X[a]  # [S, D]
        r = np.einsum("sd,sd->s", x, theta_true) + noise_std * rng.standard_normal(S).astype(np.float32)
        total += float(r.sum(dtype=np.float64))
        u = np.einsum("sij,sj->si", a_inv, x)  # A^-1 x
        denom = 1.0 + np.einsum("sd,sd->s", x, u)
        # theta' = theta + u (r - x.theta) / (1 + x.u)   (Sherman-Morrison on A^-1 b)
        theta += u * ((r - np.einsum("sd,sd->s", x, theta)) / denom)[:, None]
        a_inv -= (u[:, :, None] * u[:, None, :]) / denom[:, None, None]
    del rows
    return total, time.perf_counter() - t0


def numpy_incremental_per_stream(X, theta_true, alpha, reg, noise_std, steps, rng):
    """As :func:`numpy_batched_per_stream`, also keeping var[s, n] = x_n^T A_s^-1 x_n by
    Sherman-Morrison (valid only for fixed item features): O(S N D) per step."""
    import numpy as np

    S, D = theta_true.shape
    X = X.astype(np.float32)
    a_inv = np.tile(np.eye(D, dtype=np.float32) / reg, (S, 1, 1))
    theta = np.zeros((S, D), np.float32)
    var = np.tile(np.sum(X * X, axis=1) / reg, (S, 1)).astype(np.float32)  # [S, N]
    total = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        scores = theta @ X.T + alpha * np.sqrt(np.maximum(var, 0.0))
        a = scores.argmax(axis=1)
        x = X[a]
        r = np.einsum("sd,sd->s", x, theta_true) + noise_std * rng.standard_normal(S).astype(np.float32)
        total += float(r.sum(dtype=np.float64))
        u = np.einsum("sij,sj->si", a_inv, x)
        denom = 1.0 + np.einsum("sd,sd->s", x, u)
        theta += u * ((r - np.einsum("sd,sd->s", x, theta)) / denom)[:, None]
        a_inv -= (u[:, :, None] * u[:, None, :]) / denom[:, None, None]
        var -= (u @ X.T) ** 2 / denom[:, None]
    return total, time.perf_counter() - t0


def numpy_batched_shared(X, theta_true, alpha, reg, noise_std, steps, rng):
    """Shared-parameter LinUCB: one (A, b) for all streams, each stream scoring its own
    copy of the context f32[S, N, D]; one GEMM for all variances per step."""
    import numpy as np

    S, D = theta_true.shape
    N = X.shape[0]
    ctx = np.ascontiguousarray(np.broadcast_to(X.astype(np.float32), (S, N, D))).reshape(S * N, D)
    gram = np.zeros((D, D), np.float32)
    b = np.zeros(D, np.float32)
    a_inv = np.eye(D, dtype=np.float32) / reg
    eye = np.eye(D, dtype=np.float32)
    rows = np.arange(S)
    total = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        theta = a_inv @ b
        mean = (ctx @ theta).reshape(S, N)
        var = np.einsum("md,md->m", ctx @ a_inv, ctx).reshape(S, N)
        scores = mean + alpha * np.sqrt(np.maximum(var, 0.0))
        a = scores.argmax(axis=1)
        x = ctx.reshape(S, N, D)[rows, a]  # [S, D]
        r = np.einsum("sd,sd->s", x, theta_true) + noise_std * rng.standard_normal(S).astype(np.float32)
        total += float(r.sum(dtype=np.float64))
        gram += x.T @ x
        b += x.T @ r
        chol = np.linalg.cholesky(gram + reg * eye)
        li = np.linalg.inv(chol)
        a_inv = li.T @ li
    return total, time.perf_counter() - t0


def numpy_loop(X, theta_true, alpha, reg, noise_std, steps, rng, shared):
    """Per-user Python loop (how per-user bandit libraries serve S users)."""
    import numpy as np

    S, D = theta_true.shape
    X = X.astype(np.float32)
    models = [(np.eye(D, dtype=np.float32) / reg, np.zeros(D, np.float32))] * (1 if shared else S)
    models = [(a.copy(), b.copy()) for a, b in models]
    total = 0.0
    t0 = time.perf_counter()
    for _ in range(steps):
        for s in range(S):
            a_inv, b = models[0 if shared else s]
            theta = a_inv @ b
            scores = X @ theta + alpha * np.sqrt(np.maximum(np.sum((X @ a_inv) * X, axis=1), 0.0))
            x = X[int(np.argmax(scores))]
            r = float(x @ theta_true[s] + noise_std * rng.standard_normal())
            total += r
            u = a_inv @ x
            a_inv -= np.outer(u, u) / (1.0 + x @ u)
            b += r * x
    return total, time.perf_counter() - t0
