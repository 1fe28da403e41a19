"""Regret shape on Bernoulli bandits: logarithmic for UCB1 and Thompson sampling,
linear for constant epsilon-greedy (a tiny inline Bernoulli loop, seeds vmapped)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.policies import Observation, PolicySpec, make_policy

T = 4000
NUM_SEEDS = 64  # regret increments of a log-regret policy are small: average enough runs
PROBLEMS = {
    "2-arm": np.array([0.3, 0.7], np.float32),
    "10-arm": np.array([0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.8], np.float32),
}


def _mean_regret(name, means):
    n = means.shape[0]
    spec = PolicySpec(num_items=n)
    policy, params = make_policy(name, spec)
    if name == "thompson":
        params = params.replace(num_mc_samples=1)  # the acting draw only: no propensity needed
    if name == "epsilon_greedy":
        # Optimistic start: the greedy part settles fast, leaving the linear exploration cost.
        params = params.replace(epsilon=0.1, decay=0.0, initial_value=1.0)
    obs = Observation(features=jnp.zeros((n, 0)), available=jnp.ones((n,), bool), scores=jnp.zeros((n,)))
    mu = jnp.asarray(means)

    def run(key):
        def step(state, step_key):
            act_key, reward_key = jax.random.split(step_key)
            action, _ = policy.act(act_key, state, obs, params)
            reward = jax.random.bernoulli(reward_key, mu[action]).astype(jnp.float32)
            state = policy.update(None, state, obs, action, reward, params)
            return state, jnp.max(mu) - mu[action]

        _, inst = jax.lax.scan(step, policy.init(key, spec), jax.random.split(key, T))
        return jnp.cumsum(inst)

    keys = jax.random.split(jax.random.key(0, impl="rbg"), NUM_SEEDS)
    return np.asarray(jax.jit(jax.vmap(run))(keys)).mean(0)


def _fit_residual(x, y):
    design = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(np.sum((design @ coef - y) ** 2))


# 4,000 sequential steps x 64 seeds x 3 policies a problem: runs with -m slow.
@pytest.mark.slow
@pytest.mark.parametrize("problem", ["2-arm", "10-arm"])
def test_regret_log_for_ucb1_and_thompson_linear_for_epsilon_greedy(problem):
    checkpoints = np.arange(T // 8, T + 1, T // 8)  # 500, 1000, ..., 4000
    shape = {}
    for name in ("ucb1", "thompson", "epsilon_greedy"):
        regret = _mean_regret(name, PROBLEMS[problem])[checkpoints - 1]
        t = checkpoints.astype(np.float64)
        log_fit, lin_fit = _fit_residual(np.log(t), regret), _fit_residual(t, regret)
        # Regret added over [T/4, T] vs over [T/8, T/4]: ln 4 / ln 2 = 2 for log T
        # growth, (T - T/4) / (T/4 - T/8) = 6 for linear growth.
        doubling = (regret[-1] - regret[1]) / (regret[1] - regret[0])
        shape[name] = (log_fit < lin_fit, doubling)
    for name in ("ucb1", "thompson"):
        assert shape[name][0] and shape[name][1] < 3.5, (name, shape)
    assert not shape["epsilon_greedy"][0] and shape["epsilon_greedy"][1] > 4.5, shape
