"""Meta-bandits over a grid of G exploration settings ("bandit over bandits").

One decision per period: ``select`` picks a grid arm, the base policy runs the
period with that setting, and ``update`` learns from the period's realised mean
reward. Two rules share one state:

* "exp3": EXP3 (Auer, Cesa-Bianchi, Freund & Schapire 2002). p = (1 - gamma)
  softmax(eta * S) + gamma / G over importance-weighted reward sums S; the reward
  is mapped to [0, 1] by (r - reward_low) / (reward_high - reward_low) and clipped.
  (eta = gamma / G is the paper's rate; a larger eta concentrates faster.)
* "ts": discounted Gaussian Thompson sampling: prior N(prior_mean, prior_std^2)
  on each arm's mean period reward, period rewards N(mean, noise_std^2), so the
  posterior precision is 1 / prior_std^2 + n_g / noise_std^2 and its mean
  (prior_mean / prior_std^2 + s_g / noise_std^2) / precision, with n, s the counts
  and reward sums discounted by ``discount`` per decision (Raj & Kalyani 2017),
  so the meta-bandit keeps tracking when the best setting changes (1 = stationary).

Everything is pure and jit/vmap friendly; params are data (adaptable in jit).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

METHODS = ("exp3", "ts")


@struct.dataclass
class MetaBanditParams:
    gamma: float = 0.1  # EXP3: uniform mixing weight, in (0, 1]
    eta: float = 0.1  # EXP3: rate on the importance-weighted reward sums, > 0
    reward_low: float = 0.0  # EXP3: reward mapped to 0
    reward_high: float = 1.0  # EXP3: reward mapped to 1, > reward_low
    noise_std: float = 0.05  # TS: std of one period's mean reward, > 0
    prior_mean: float = 0.0  # TS: prior mean of an arm's period reward
    prior_std: float = 1.0  # TS: prior std of an arm's period reward, > 0
    discount: float = 1.0  # TS: per-decision discount of n and s, in (0, 1]

    def validate(self) -> None:
        checks = (("gamma", 0.0, 1.0, True), ("eta", 0.0, None, True), ("noise_std", 0.0, None, True),
                  ("prior_std", 0.0, None, True), ("discount", 0.0, 1.0, True))
        for name, lo, hi, open_lo in checks:
            v = float(getattr(self, name))
            if not (v > lo if open_lo else v >= lo) or (hi is not None and v > hi):
                raise ValueError(f"MetaBanditParams.{name}: expected a value in ({lo}, {hi or 'inf'}], got {v}")
        if not float(self.reward_high) > float(self.reward_low):
            raise ValueError(f"MetaBanditParams.reward_high: expected > reward_low={self.reward_low}, "
                             f"got {self.reward_high}")


@struct.dataclass
class MetaBanditState:
    """est_sums: f32[G] EXP3 importance-weighted reward sums; counts, sums: f32[G] (discounted)
    TS statistics; num_decisions: int32[]."""

    est_sums: jax.Array
    counts: jax.Array
    sums: jax.Array
    num_decisions: jax.Array


def init_meta(num_arms: int) -> MetaBanditState:
    """State of a meta-bandit over ``num_arms`` (static) grid settings."""
    if num_arms < 1:
        raise ValueError(f"init_meta: num_arms must be >= 1, got {num_arms}")
    z = jnp.zeros((num_arms,), jnp.float32)
    return MetaBanditState(est_sums=z, counts=z, sums=z, num_decisions=jnp.zeros((), jnp.int32))


def exp3_probs(state: MetaBanditState, params: MetaBanditParams) -> jax.Array:
    """f32[G] EXP3 arm probabilities."""
    g = state.est_sums.shape[0]
    gamma = jnp.clip(jnp.asarray(params.gamma, jnp.float32), 1e-6, 1.0)
    return (1.0 - gamma) * jax.nn.softmax(jnp.maximum(params.eta, 0.0) * state.est_sums) + gamma / g


def ts_posterior(state: MetaBanditState, params: MetaBanditParams) -> tuple[jax.Array, jax.Array]:
    """(mean f32[G], std f32[G]) of the TS posterior of each arm's period reward."""
    prior_prec = 1.0 / jnp.maximum(params.prior_std, 1e-9) ** 2
    noise_prec = 1.0 / jnp.maximum(params.noise_std, 1e-9) ** 2
    prec = prior_prec + state.counts * noise_prec
    mean = (params.prior_mean * prior_prec + state.sums * noise_prec) / prec
    return mean, 1.0 / jnp.sqrt(prec)


def select(key: jax.Array, state: MetaBanditState, params: MetaBanditParams, method: str) -> tuple[jax.Array, jax.Array]:
    """(arm int32[], probability of that arm f32[]) for the next period.

    TS's probability is the Monte Carlo frequency over 64 posterior draws (the
    first draw is the one that acts); EXP3's is exact.
    """
    if method == "exp3":
        p = exp3_probs(state, params)
        arm = jax.random.choice(key, p.shape[0], p=p)
        return arm.astype(jnp.int32), p[arm]
    if method == "ts":
        mean, std = ts_posterior(state, params)
        draws = mean + std * jax.random.normal(key, (64,) + mean.shape)
        picks = jnp.argmax(draws, axis=-1)
        arm = picks[0].astype(jnp.int32)
        return arm, jnp.mean(picks == arm)
    raise ValueError(f"meta-bandit method: expected one of {METHODS}, got {method!r}")


def update(state: MetaBanditState, arm: jax.Array, prob: jax.Array, reward: jax.Array,
           params: MetaBanditParams, method: str) -> MetaBanditState:
    """Learn from one period: ``reward`` f32[] realised by ``arm`` chosen with ``prob``."""
    onehot = jax.nn.one_hot(arm, state.counts.shape[0], dtype=jnp.float32)
    if method == "exp3":
        span = jnp.maximum(params.reward_high - params.reward_low, 1e-9)
        x = jnp.clip((reward - params.reward_low) / span, 0.0, 1.0)
        est = state.est_sums + onehot * x / jnp.maximum(prob, 1e-9)
        # Shift by the max: softmax is unchanged and the sums stay bounded.
        return state.replace(est_sums=est - jnp.max(est), num_decisions=state.num_decisions + 1)
    if method == "ts":
        rho = jnp.clip(params.discount, 0.0, 1.0)
        return state.replace(counts=rho * state.counts + onehot, sums=rho * state.sums + onehot * reward,
                             num_decisions=state.num_decisions + 1)
    raise ValueError(f"meta-bandit method: expected one of {METHODS}, got {method!r}")
