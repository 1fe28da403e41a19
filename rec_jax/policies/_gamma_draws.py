"""Log-Gamma and Beta draws for many parameters at once, by Marsaglia-Tsang rejection over
whole arrays (Marsaglia & Tsang 2000, "A simple method for generating gamma variables").

Why not ``jax.random.loggamma``: it splits one key per element and runs each element's
rejection loop under vmap, so every round hashes a key per element. In the Bernoulli
Thompson engine (64 streams x 128 Monte Carlo draws x 200 Gamma parameters a step) that
took 1.3 s a step, 23 user-steps/s (``jax.profiler``). Here each round draws ONE normal and
ONE uniform array for all its elements from one key (a round accepts at least ~95% of
them; the rejected ones go on in a small buffer, :func:`log_gamma_draws`). Each element
keeps the first candidate it accepts, so its draw is exactly Gamma(a): the same
distribution as JAX's sampler, not the same numbers.

For a < 1: Gamma(a) = Gamma(a + 1) U^(1/a) (the same paper), kept in log space so that
tiny shapes do not underflow to 0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rec_jax import fused_threefry


# Rounds before giving up on an element. A round accepts a candidate with probability
# >= 0.95 for every shape (Marsaglia & Tsang's bound), so a valid element is left undone
# with probability < 0.05^64 ~ 1e-83; a NaN or infinite shape never accepts.
MAX_ROUNDS = 64


def _candidate_round(key, d, c, log_g, done):
    """One Marsaglia-Tsang candidate per element (shape of ``d``): the elements not ``done``
    that accept it take its log-Gamma value."""
    normal_key, uniform_key = jax.random.split(key)
    x = jax.random.normal(normal_key, d.shape, jnp.float32)
    u = jax.random.uniform(uniform_key, d.shape, jnp.float32, minval=jnp.finfo(jnp.float32).tiny)
    v = 1.0 + c * x
    v3 = v * v * v
    log_v3 = 3.0 * jnp.log(jnp.maximum(v, jnp.finfo(jnp.float32).tiny))
    accept = (v > 0.0) & (jnp.log(u) < 0.5 * x * x + d - d * v3 + d * log_v3)
    return jnp.where(accept & ~done, jnp.log(d) + log_v3, log_g), done | accept


def _rounds_until_done(key, d, c, log_g, done, first):
    """Rounds ``first``, ``first`` + 1, ... (round i draws from fold_in(key, i)) while some
    element is not done, at most up to ``MAX_ROUNDS``."""
    def body(carry):
        i, log_g, done = carry
        return (i + 1,) + _candidate_round(jax.random.fold_in(key, i), d, c, log_g, done)

    start = (jnp.int32(first), log_g, done)
    _, log_g, done = jax.lax.while_loop(lambda carry: ~jnp.all(carry[2]) & (carry[0] < MAX_ROUNDS), body, start)
    return log_g, done


def log_gamma_draws(key: jax.Array, alpha: jax.Array, shape: tuple[int, ...], buffer_divisor: int = 16) -> jax.Array:
    """f32[shape] log X, X ~ Gamma(alpha, 1) independently per element; ``alpha`` > 0
    broadcastable to ``shape``.

    One round over every element, then the few it rejected (about 5%) gathered into a
    buffer of 1 / ``buffer_divisor`` of the size (static; at least 64), which takes the further rounds; only if more than
    that were rejected do the rest go on over the whole array. (Without the buffer every
    round was a pass over all elements until the last was accepted: about 5 a draw.)
    Each element still keeps the first candidate it accepts, from numbers independent of
    its earlier ones, so the draws stay exact."""
    alpha = jnp.broadcast_to(jnp.asarray(alpha, jnp.float32), shape).reshape(-1)
    size = alpha.shape[0]
    boost = alpha < 1.0
    a = jnp.where(boost, alpha + 1.0, alpha)
    d = a - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    # Every round hashes two numbers per element: the fused hash (same bits) is several times
    # faster on CPU than JAX's rolled loop, whatever the engine's own choice for its keys.
    boost_key, full_key, buffer_key = jax.random.split(fused_threefry.as_fused(key), 3)
    log_g, done = _candidate_round(jax.random.fold_in(full_key, 0), d, c, jnp.zeros(size, jnp.float32),
                                   jnp.zeros(size, bool))
    capacity = max(64, size // buffer_divisor)
    if capacity < size:
        # the rejected elements' indices, in order, into the buffer (empty slots: ``size``)
        rejected = ~done
        pos = jnp.cumsum(rejected.astype(jnp.int32)) - 1
        slot = jnp.where(rejected & (pos < capacity), pos, capacity)
        idx = jnp.full((capacity,), size, jnp.int32).at[slot].set(jnp.arange(size, dtype=jnp.int32), mode="drop")
        gather = jnp.minimum(idx, size - 1)
        log_b, done_b = _rounds_until_done(buffer_key, d[gather], c[gather], jnp.zeros(capacity, jnp.float32),
                                           idx == size, 0)
        log_g = log_g.at[idx].set(log_b, mode="drop")
        done = done.at[idx].set(done_b, mode="drop")
    log_g, done = _rounds_until_done(full_key, d, c, log_g, done, 1)
    # Only a shape that is not a finite number gets here undone: NaN, and inf for +inf, as JAX's sampler.
    log_g = jnp.where(done, log_g, jnp.where(alpha == jnp.inf, jnp.inf, jnp.nan))
    log_u = jnp.log(jax.random.uniform(boost_key, (size,), jnp.float32, minval=jnp.finfo(jnp.float32).tiny))
    return jnp.where(boost, log_g + log_u / alpha, log_g).reshape(shape)


def beta_draws(key: jax.Array, a: jax.Array, b: jax.Array, num: int) -> jax.Array:
    """f32[num, N] Beta(a, b) draws for a, b f32[N] > 0: X / (X + Y) with X ~ Gamma(a),
    Y ~ Gamma(b), from one :func:`log_gamma_draws` call, in log space."""
    n = a.shape[0]
    log_g = log_gamma_draws(key, jnp.concatenate([a, b]), (num, 2 * n))
    log_x, log_y = log_g[:, :n], log_g[:, n:]
    return jnp.exp(log_x - jnp.logaddexp(log_x, log_y))
