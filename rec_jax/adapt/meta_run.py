"""A meta-bandit driving the exploration setting of an online run, period by period.

    meta = make_meta_run(engine, grid, period_steps=25, method="ts")
    out = jax.jit(meta, static_argnums=3)(key, env_params, MetaBanditParams(), num_periods)

``grid`` is the base policy's params pytree with a leading [G] axis (G settings,
e.g. G epsilons). Each period the meta-bandit (:mod:`rec_jax.adapt.meta_bandit`)
picks one setting for ALL S streams, the engine runs ``period_steps`` steps with
``RunState.policy_params`` set to it (hyperparameters are data, so nothing
retraces), and the period's realised reward, averaged over the S streams, is the
meta-bandit's feedback. Pooling the streams is why the decision is per run, not
per stream: one user's reward over a period is far too noisy to rank settings.

The engine is used unchanged: ``engine.init_run(key, ...)`` is called with the
caller's key, so a fixed-setting run ``engine.run(key, grid[g], ...)`` sees the
same users, the same abrupt drifts and the same env randomness (common random
numbers; differences between the two are paired).
"""
from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from rec_jax.adapt import meta_bandit
from rec_jax.online.engine import Run


def grid_params(params_list: list[Any]) -> Any:
    """Stack G params pytrees (same structure and static fields) into one with a leading [G] axis."""
    if not params_list:
        raise ValueError("grid_params: expected at least one params setting")
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *params_list)


def take(grid: Any, index: jax.Array) -> Any:
    """Setting ``index`` of a stacked grid (leaves lose their [G] axis)."""
    return jax.tree.map(lambda x: x[index], grid)


def make_meta_run(engine: Run, grid: Any, period_steps: int, method: str) -> Callable:
    """``meta_run(key, env_params, meta_params, num_periods) -> (RunState, out)`` (num_periods static).

    out: reward f32[T] and regret f32[T] (stream means per step, T = num_periods *
    period_steps), arm int32[P] (the setting of each period), arm_prob f32[P],
    probs f32[P, G] (EXP3: arm probabilities; TS: posterior means of the arms).
    """
    if method not in meta_bandit.METHODS:
        raise ValueError(f"make_meta_run: method must be one of {meta_bandit.METHODS}, got {method!r}")
    if period_steps < 1:
        raise ValueError(f"make_meta_run: period_steps must be >= 1, got {period_steps}")
    num_arms = jax.tree.leaves(grid)[0].shape[0]

    def meta_run(key, env_params, meta_params, num_periods: int):
        # The meta-bandit's own randomness comes from a separate branch of the key,
        # so the engine sees exactly the key a fixed-setting run gets.
        meta_key = jax.random.fold_in(key, 0x6D657461)
        rs = engine.init_run(key, take(grid, 0), env_params)
        # A zero-step chunk settles the obs layout run_chunk carries (per-stream leaves).
        rs, _ = engine.run_chunk(rs, 0)

        def period(carry, i):
            rs, ms = carry
            arm, prob = meta_bandit.select(jax.random.fold_in(meta_key, i), ms, meta_params, method)
            rs = rs.replace(policy_params=take(grid, arm))
            rs, m = engine.run_chunk(rs, period_steps)
            reward = m["reward"].mean(axis=1)  # [period_steps]
            ms = meta_bandit.update(ms, arm, prob, jnp.mean(reward), meta_params, method)
            shown = (meta_bandit.exp3_probs(ms, meta_params) if method == "exp3"
                     else meta_bandit.ts_posterior(ms, meta_params)[0])
            return (rs, ms), (reward, m["regret"].mean(axis=1), arm, prob, shown)

        (rs, _), (reward, regret, arm, prob, shown) = jax.lax.scan(
            period, (rs, meta_bandit.init_meta(num_arms)), jnp.arange(num_periods))
        return rs, {"reward": reward.reshape(-1), "regret": regret.reshape(-1), "arm": arm, "arm_prob": prob,
                    "probs": shown}

    return meta_run
