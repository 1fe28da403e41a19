"""Off-policy estimators of a policy's value from logged bandit feedback (pure JAX).

Each estimator reads one :class:`OPEData` (n logged rounds) and returns f32[]; the
``*_rounds`` variants return the f32[n] per-round terms whose mean is the estimate
(what SLOPE and the standard errors need). Notation, per round i with logged
action a_i, reward r_i and behaviour propensity p_i = pi_b(a_i | x_i):

  w_i     = pi_e(a_i | x_i) / p_i                      importance weight
  q_i     = q(x_i, a_i)                                reward model at the logged action
  qpi_i   = sum_a pi_e(a | x_i) q(x_i, a)              reward model under pi_e

* DM      mean(qpi)                                    (Dudik et al. 2011/2014)
* IPW     mean(w r)                                    (Horvitz-Thompson; Precup 2000)
* SNIPW   sum(w r) / sum(w)                            (Swaminathan and Joachims 2015)
* DR      mean(qpi + w (r - q))                        (Dudik et al. 2011/2014)
* SNDR    mean(qpi) + sum(w (r - q)) / sum(w)          (self-normalised correction term)
* Switch-DR mean(qpi + w (r - q) 1{w <= tau})          (Wang et al. 2017: DR where w <= tau,
          DM elsewhere; tau = inf is DR, tau = 0 is DM)
* DR-os   mean(qpi + w_os (r - q)), w_os = lam w / (w^2 + lam)
          (Su et al. 2020, optimistic shrinkage; lam = inf is DR, lam = 0 is DM)

For slate logs flattened to one row per (impression, position) -- the Open Bandit
Dataset's layout -- ``pi_e`` and ``pscore`` are the probabilities of (item,
position) and the estimates are per-position averages; :func:`iips` gives the
slate-level position-wise (independent) IPS (Li et al. 2018).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

ESTIMATORS = ("dm", "ipw", "snipw", "dr", "sndr", "switch_dr", "dr_os")


@struct.dataclass
class OPEData:
    """One logged data set, ready for the estimators (validate with :func:`rec_jax.ope.validate_log`).

    reward: f32[n]      observed reward of round i
    action: i32[n]      logged action a_i, 0..A-1
    pscore: f32[n]      behaviour probability of the logged action (of (item, position) for slates)
    pi_e:   f32[n, A]   evaluation policy's action probabilities at round i (at its position)
    q_hat:  f32[n, A]   reward model q(x_i, a) for every action (zeros when only IPW/SNIPW are used)
    """

    reward: jax.Array
    action: jax.Array
    pscore: jax.Array
    pi_e: jax.Array
    q_hat: jax.Array


def _take(x: jax.Array, action: jax.Array) -> jax.Array:
    return jnp.take_along_axis(x, action[:, None].astype(jnp.int32), axis=1)[:, 0]


def weights(d: OPEData) -> jax.Array:
    """f32[n] importance weights pi_e(a_i | x_i) / pi_b(a_i | x_i)."""
    return _take(d.pi_e, d.action) / d.pscore


def _parts(d: OPEData):
    w = weights(d)
    q = _take(d.q_hat, d.action)
    qpi = jnp.sum(d.pi_e * d.q_hat, axis=1)
    return w, q, qpi


def dm_rounds(d: OPEData) -> jax.Array:
    return _parts(d)[2]


def ipw_rounds(d: OPEData) -> jax.Array:
    return weights(d) * d.reward


def dr_rounds(d: OPEData) -> jax.Array:
    w, q, qpi = _parts(d)
    return qpi + w * (d.reward - q)


def switch_dr_rounds(d: OPEData, tau) -> jax.Array:
    """Per-round Switch-DR terms; ``tau`` f32[] (jnp.inf gives DR)."""
    w, q, qpi = _parts(d)
    return qpi + jnp.where(w <= tau, w * (d.reward - q), 0.0)


def dr_os_rounds(d: OPEData, lam) -> jax.Array:
    """Per-round DR-os terms; ``lam`` f32[] >= 0 (jnp.inf gives DR, 0 gives DM)."""
    w, q, qpi = _parts(d)
    # lam w / (w^2 + lam) written to stay finite at lam = inf
    w_os = jnp.where(jnp.isinf(lam), w, lam * w / (w * w + lam + 1e-30))
    return qpi + w_os * (d.reward - q)


def dm(d: OPEData) -> jax.Array:
    return jnp.mean(dm_rounds(d))


def ipw(d: OPEData) -> jax.Array:
    return jnp.mean(ipw_rounds(d))


def snipw(d: OPEData) -> jax.Array:
    w = weights(d)
    return jnp.sum(w * d.reward) / jnp.sum(w)


def dr(d: OPEData) -> jax.Array:
    return jnp.mean(dr_rounds(d))


def sndr(d: OPEData) -> jax.Array:
    w, q, qpi = _parts(d)
    return jnp.mean(qpi) + jnp.sum(w * (d.reward - q)) / jnp.sum(w)


def switch_dr(d: OPEData, tau) -> jax.Array:
    return jnp.mean(switch_dr_rounds(d, tau))


def dr_os(d: OPEData, lam) -> jax.Array:
    return jnp.mean(dr_os_rounds(d, lam))


def iips(reward: jax.Array, pscore: jax.Array, pi_e_marginal: jax.Array) -> jax.Array:
    """Position-wise (independent) IPS of a slate policy's value, summed over positions.

    reward, pscore, pi_e_marginal: f32[n, K] per slate i and position k: the click,
    the behaviour's and the evaluation policy's marginal probability that the logged
    item sits at position k. Returns mean_i sum_k w_ik r_ik (Li et al. 2018), unbiased
    when clicks at a position depend only on the item there.
    """
    return jnp.mean(jnp.sum(pi_e_marginal / pscore * reward, axis=1))
