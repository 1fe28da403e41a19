"""Slate builders shared by the policies, with their propensities.

Three schemes cover every policy in this package; each returns
``(action, ActInfo)`` with ``action`` int32[] for K = 1 and int32[K] for slates,
``propensity`` f32[] / f32[K] (the conditional probability of each pick given the
picks before it) and ``marginal`` f32[K, N] (probability that item n is shown in
slot k; for K = 1 the full action distribution).

* :func:`epsilon_ranked_slate` -- a ranker by ``values`` with epsilon exploration,
  per slot: with probability eps a uniform item among those left, else the best
  item left (ties broken uniformly at random). eps = 0 is a deterministic ranker
  (greedy, UCB, LinUCB), eps = 1 uniform sampling without replacement. Conditional
  propensities AND marginals are exact (an O(K^2 + K N) dynamic programme); K = 1
  takes the O(N) pick of :mod:`rec_jax.policies._argmax_pick`.
* :func:`sequential_slate` -- each slot drawn from a distribution over the items
  left (softmax = Plackett-Luce, SquareCB's inverse-gap weighting). Conditional
  propensities are exact; slot 0's marginal is exact, slots >= 1 are Monte Carlo
  over ``num_mc_samples`` simulated slates (``num_mc_samples`` is reported then).
* :func:`sampled_topk_slate` -- Thompson-type: the top-K of one posterior draw.
  Marginals and propensities are Monte Carlo over ``num_mc_samples`` draws, the
  first of which is the draw that chose the action, so no estimate is 0 and every
  one is at least 1/num_mc_samples (ActInfo kind ``MONTE_CARLO_FLOORED``; the
  biases, slot by slot, are stated in its docstring).

``ActInfo.propensity_kind`` / ``marginal_kind`` say which of these each number is
(:data:`rec_jax.policies.base.PROPENSITY_KINDS`).

Availability: items with ``available = False`` are never chosen and get zero
probability. If fewer than K items are available, the lowest-index unavailable
items are treated as available for that step, so a slate is always K distinct items.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from rec_jax.policies.base import EXACT, MONTE_CARLO, MONTE_CARLO_FLOORED, ActInfo
from rec_jax.policies._argmax_pick import _LOWEST, _finite, epsilon_argmax, greedy_argmax
from rec_jax.topk import top_k

def effective_available(available: jax.Array, slate_size: int) -> jax.Array:
    """bool[N]: ``available``, topped up with the lowest-index unavailable items up to K."""
    available = jnp.asarray(available, bool)
    if slate_size == 1:  # O(N), no cumsum: item 0 when nothing is available
        return available | (~jnp.any(available) & (jnp.arange(available.shape[-1]) == 0))
    need = jnp.maximum(slate_size - jnp.sum(available), 0)
    unavailable_rank = jnp.cumsum(~available)  # 1-based rank among unavailable items
    return available | (~available & (unavailable_rank <= need))


def _finish(picks, props, marginal, num_mc_samples, slate_size, propensity_kind=EXACT, marginal_kind=EXACT):
    if slate_size == 1:
        picks, props = picks[0], props[0]
    info = ActInfo(
        propensity=props.astype(jnp.float32),
        marginal=marginal.astype(jnp.float32),
        num_mc_samples=jnp.asarray(num_mc_samples, jnp.int32),
        propensity_kind=jnp.asarray(propensity_kind, jnp.int32),
        marginal_kind=jnp.asarray(marginal_kind, jnp.int32),
    )
    return picks.astype(jnp.int32), info


def _pick_uniform(u, mask):
    """Uniform pick among ``mask`` from iid uniforms ``u`` f32[N] (argmax of iid draws)."""
    return jnp.argmax(jnp.where(mask, u, -1.0))


def _tie_groups(sort_key):
    """(start i32[N], end i32[N]): item n's tie group occupies sorted positions [start, end)."""
    n = sort_key.shape[0]
    order = jnp.argsort(sort_key, stable=True)
    s = sort_key[order]
    pos = jnp.arange(n)
    first = jnp.concatenate([jnp.ones((1,), bool), s[1:] != s[:-1]])
    last = jnp.concatenate([s[:-1] != s[1:], jnp.ones((1,), bool)])
    start_sorted = jax.lax.cummax(jnp.where(first, pos, 0))
    end_sorted = jax.lax.cummin(jnp.where(last, pos + 1, n), reverse=True)
    start = jnp.zeros((n,), jnp.int32).at[order].set(start_sorted)
    end = jnp.zeros((n,), jnp.int32).at[order].set(end_sorted)
    return start, end


# ----------------------------------------------------------------------------- epsilon-ranked


def epsilon_ranked_slate(key, values, available, epsilon, slate_size):
    """Rank by ``values`` f32[N] with per-slot epsilon exploration; exact propensities.

    Slot k: with probability eps pick uniformly among the items left, otherwise the
    best item left, uniformly among exact ties. The conditional propensity of a pick
    is ``(1 - eps) * [pick is a best item left] / #best left + eps / #left``.
    """
    k_slots = slate_size
    n = values.shape[0]
    mask = effective_available(available, k_slots)
    eps = jnp.clip(jnp.asarray(epsilon, jnp.float32), 0.0, 1.0)
    if k_slots == 1:
        if isinstance(epsilon, (int, float)) and epsilon == 0:
            pick, prop, probs = greedy_argmax(key, values, mask)
        else:
            pick, prop, probs = epsilon_argmax(key, values, mask, eps)
        return _finish(pick[None], prop[None], probs[None], 0, 1)
    v = _finite(values)
    # One draw per act (few PRNG calls keep compile times down): per slot a coin,
    # uniforms for the exploring pick and uniforms for tie-breaking.
    u = jax.random.uniform(key, (k_slots, 2 * n + 1))

    def slot(remaining, u_k):
        v_left = jnp.where(remaining, v, -jnp.inf)
        best = remaining & (v_left == jnp.max(v_left))
        num_best = jnp.sum(best).astype(jnp.float32)
        num_left = jnp.sum(remaining).astype(jnp.float32)
        explore = u_k[2 * n] < eps
        pick = jnp.where(explore, _pick_uniform(u_k[:n], remaining), _pick_uniform(u_k[n : 2 * n], best))
        prop = (1.0 - eps) * best[pick] / num_best + eps / num_left
        return remaining.at[pick].set(False), (pick, prop)

    _, (picks, props) = jax.lax.scan(slot, mask, u)
    marginal = epsilon_ranked_marginals(v, mask, eps, k_slots)
    return _finish(picks, props, marginal, 0, k_slots)


def epsilon_ranked_marginals(values, mask, epsilon, slate_size):
    """f32[K, N] exact per-slot marginals of :func:`epsilon_ranked_slate`.

    Fix a ranking of the M available items (ties: a uniform random order, which the
    per-slot uniform tie-breaking is equivalent to). Before slot k let g be the
    number of top-ranked items all already taken; the k - g other taken items are a
    uniformly random subset of ranks g+1..M-1 (by symmetry of uniform exploration),
    so (k, g) is a Markov chain. The pick is rank g w.p. 1 - eps + eps/(M-k), and
    any rank r > g w.p. eps/(M-k) * P(r not taken) = eps/(M-k) * (M-k-1)/(M-g-1).
    Taking rank g moves g to g + 1 + L, L the run of taken ranks after g, with
    P(L >= l) = prod_{i<l} (k-g-i)/(M-g-1-i). Item marginals average the rank
    marginals over the item's tie group.
    """
    n = values.shape[0]
    k_slots = slate_size
    start, end = _tie_groups(jnp.where(mask, -values, jnp.inf))
    m = jnp.sum(mask).astype(jnp.float32)
    eps = epsilon
    ranks = jnp.arange(n)
    g_int = jnp.arange(k_slots + 1)
    g = g_int.astype(jnp.float32)
    # jump[g, g'] = l + 1 where g' = g + 1 + l
    run_len = g_int[None, :] - g_int[:, None] - 1
    dist = jnp.zeros((k_slots + 1,), jnp.float32).at[0].set(1.0)  # P(g) before slot k
    rows = []
    for k in range(k_slots):
        left = m - k
        p_ext = 1.0 - eps + eps / left
        beyond = m - g - 1.0
        c = jnp.where(beyond > 0, eps / left * (left - 1.0) / jnp.where(beyond > 0, beyond, 1.0), 0.0)
        cum = jnp.concatenate([jnp.zeros((1,)), jnp.cumsum(dist * c)])  # cum[j] = sum_{g<j} dist*c
        head = jnp.where(ranks <= k_slots, dist[jnp.minimum(ranks, k_slots)], 0.0) * p_ext
        p_rank = jnp.where(ranks < m, head + cum[jnp.minimum(ranks, k_slots + 1)], 0.0)
        cs = jnp.concatenate([jnp.zeros((1,)), jnp.cumsum(p_rank)])
        rows.append(jnp.where(mask, (cs[end] - cs[start]) / jnp.maximum(end - start, 1), 0.0))
        if k + 1 < k_slots:
            s = (k - g)[:, None]  # taken beyond the prefix
            i = jnp.arange(k_slots, dtype=jnp.float32)[None, :]
            ok = i < s
            ratio = jnp.where(ok, (s - i) / jnp.where(ok, beyond[:, None] - i, 1.0), 0.0)
            surv = jnp.concatenate([jnp.ones((k_slots + 1, 1)), jnp.cumprod(ratio, axis=1)], axis=1)
            p_run = surv - jnp.concatenate([surv[:, 1:], jnp.zeros((k_slots + 1, 1))], axis=1)
            jump = jnp.where(
                (run_len >= 0), jnp.take_along_axis(p_run, jnp.clip(run_len, 0, k_slots), axis=1), 0.0
            )  # [g, g'] = P(L = g' - g - 1)
            dist = dist * (1.0 - p_ext) + (dist * p_ext) @ jump
    return jnp.stack(rows)


# ----------------------------------------------------------------------------- sequential sampling


def sequential_slate(key, probs_fn: Callable, available, slate_size, num_mc_samples):
    """Draw slot after slot from ``probs_fn(remaining bool[N]) -> f32[N]``.

    ``probs_fn`` must return a distribution supported on ``remaining``. Conditional
    propensities are exact; marginals: slot 0 exact, slots >= 1 Monte Carlo over
    ``num_mc_samples`` (static) simulated slates (so for K > 1 a slot's MC marginal
    row and slot 0's exact row need not sum to at most 1 per item).
    """
    k_slots = slate_size
    mask = effective_available(available, k_slots)
    first = probs_fn(mask)
    n = first.shape[-1]
    num_draws = 1 if k_slots == 1 else 1 + num_mc_samples
    # Gumbel-max per slot from one uniform draw; draw 0 acts, the others are MC slates.
    u = jax.random.uniform(key, (num_draws, k_slots, n), minval=jnp.finfo(jnp.float32).tiny, maxval=1.0)
    gumbel = -jnp.log(-jnp.log(u))

    def sample(g_draw):
        def slot(remaining, g_k):
            p = probs_fn(remaining)
            pick = jnp.argmax(jnp.where(remaining & (p > 0), jnp.log(p) + g_k, -jnp.inf))
            return remaining.at[pick].set(False), (pick, p[pick])

        _, out = jax.lax.scan(slot, mask, g_draw)
        return out

    picks, props = sample(gumbel[0])
    if k_slots == 1:
        return _finish(picks, props, first[None], 0, k_slots)
    mc_picks, _ = jax.vmap(sample)(gumbel[1:])
    marginal = jnp.mean(jax.nn.one_hot(mc_picks, n, dtype=jnp.float32), axis=0)
    marginal = marginal.at[0].set(first)
    # Simulated slates independent of the acting one: unbiased, unfloored marginals.
    return _finish(picks, props, marginal, num_mc_samples, k_slots, EXACT, MONTE_CARLO)


# ----------------------------------------------------------------------------- Thompson-type


def sampled_topk_slate(key, sample_fn: Callable, available, slate_size, num_mc_samples):
    """Top-K of one draw of ``sample_fn(key, S) -> f32[S, N]``; Monte Carlo propensities.

    ``num_mc_samples`` = S (static) draws are made; draw 0 picks the slate. The
    marginal of (slot k, item n) is the fraction of draws whose top-K puts n in
    slot k; the conditional propensity of slot k is (#draws whose top-(k+1) prefix
    equals the slate's) / (#draws whose top-k prefix does), so the product of the
    first k+1 conditionals is the fraction of draws with the slate's top-(k+1)
    prefix. Draw 0 is counted everywhere (kind ``MONTE_CARLO_FLOORED``): no
    estimate is 0, every chosen one is at least 1/S, and IPW weights on them are
    capped at S * pi_e.

    Biases, for every slot (draws 1..S-1 are independent of draw 0; the identities
    below are exact). Write P_k for the probability of the slate's top-(k+1)
    prefix (P_{-1} = 1) and c_k = P_k / P_{k-1} for slot k's true conditional.

    * Prefix probabilities (slot 0's propensity and slot-k marginals of the chosen
      items included): the estimate is (1 + X) / S with X ~ Bin(S - 1, P), so its
      bias is (1 - P) / S in [0, 1/S]; an item not chosen in slot k gets
      X / S, bias -P / S. The inverse, what IPW divides by, has
      E[S / (1 + X)] = (1 - (1 - P)^S) / P: IPW over a prefix is biased low by the
      factor (1 - P)^S <= exp(-S P).
    * Slot k's conditional propensity (1 + B) / (1 + Y), Y ~ Bin(S - 1, P_{k-1})
      the other draws with the slate's top-k prefix and B | Y ~ Bin(Y, c_k):
      bias (1 - c_k) E[1 / (1 + Y)] = (1 - c_k) (1 - (1 - P_{k-1})^S) / (S P_{k-1})
      <= (1 - c_k) / (S P_{k-1}); its inverse has
      E = (1 - (1 - c_k)(1 - P_k)^(S-1)) / c_k.
    """
    k_slots = slate_size
    mask = effective_available(available, k_slots)
    scores = sample_fn(key, num_mc_samples)  # [S, N], one batched draw
    n = scores.shape[-1]
    scores = jnp.where(mask[None], scores, -jnp.inf)
    _, top = top_k(scores, k_slots)  # [S, K]; rec_jax.topk: lax.top_k is a slow sort inside the engine's scan
    picks = top[0]
    marginal = jnp.mean(jax.nn.one_hot(top, n, dtype=jnp.float32), axis=0)
    prefix_match = jnp.cumprod(top == picks[None], axis=1)  # [S, K]
    matches = jnp.sum(prefix_match, axis=0).astype(jnp.float32)
    before = jnp.concatenate([jnp.full((1,), float(num_mc_samples)), matches[:-1]])
    return _finish(picks, matches / before, marginal, num_mc_samples, k_slots, MONTE_CARLO_FLOORED,
                   MONTE_CARLO_FLOORED)
