"""How a simulated user of :mod:`rec_jax.sim.recsys` responds to a slate: attraction,
click models, the value of a click, and the exact expectations.

For the user's current vector u at step t:

    match_i      = <u, v_i> + b_i                        (the fitted logit)
    affinity_i   = scale * match_i                       (temperature ``scale``)
    attraction_i = sigmoid(affinity_i + offset)          (click prob. if examined)
                   * exp(-fatigue * recent_exposures_i)  (fatigue)
                   * [release_t_i <= t]                  (cold start: unreleased = 0)

Slates (action int32[K], K distinct items; a scalar is accepted for K = 1) are read
by a click model (static ``click_model``):

* "pbm"     position-based model: slot k is examined with prob. ``examination[k]``
            and clicked with prob. examination[k] * attraction (Richardson et al. 2007);
* "cascade" the user scans down and clicks the first attractive item, then stops
            (Craswell et al. 2008): P(click at k) = a_k prod_{j<k}(1 - a_j).

A click on item i yields ``w_click + w_dwell * dwell + w_purchase * purchase`` where
dwell ~ LogNormal(dwell_loc + dwell_slope * tanh(affinity_i), dwell_sigma) and
purchase ~ Bernoulli(sigmoid(purchase_logit + purchase_slope * tanh(affinity_i))).
So the value of a click on i is g_i = w_click + w_dwell E[dwell_i] + w_purchase q_i,
and every expectation is exact:

* PBM:      E[R(slate)] = sum_k examination[k] a_k g_k; the best slate pairs the
            largest a*g with the largest examination (rearrangement inequality).
* cascade:  E[R(slate)] = sum_k a_k g_k prod_{j<k}(1 - a_j). An adjacent swap
            changes it by P(reach) a_i a_j (g_j - g_i), so some best slate is sorted
            by g; choosing its K items is a DP over items in g order, done as K
            reverse cumulative maxima. With click reward only (g constant) this is
            the K most attractive items.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rec_jax.sim.base import StepOutput
from rec_jax.sim.recsys_dynamics import available_items
from rec_jax.sim.recsys_params import RecsysParams, RecsysState
from rec_jax.topk import top_k


def match_scores(user: jax.Array, params: RecsysParams) -> jax.Array:
    """<u, v_i> + b_i for every item: f32[N]."""
    return params.item_factors @ user + params.item_bias


def attraction(state: RecsysState, params: RecsysParams) -> jax.Array:
    """Click probability of each item if examined, f32[N] (fatigue and availability included)."""
    affinity = jnp.maximum(params.scale, 0.0) * match_scores(state.user, params)
    fatigue = jnp.exp(-jnp.maximum(params.fatigue, 0.0) * state.recent_exposures)
    p = jax.nn.sigmoid(affinity + params.offset) * fatigue
    return jnp.where(available_items(state.t, params), p, 0.0)


def outcome_params(state: RecsysState, params: RecsysParams):
    """(log-dwell mean f32[N], dwell sigma f32[], purchase prob. f32[N]) given a click."""
    tz = jnp.tanh(jnp.maximum(params.scale, 0.0) * match_scores(state.user, params))
    mu = params.dwell_loc + params.dwell_slope * tz
    sigma = jnp.maximum(params.dwell_sigma, 0.0)
    q = jax.nn.sigmoid(params.purchase_logit + params.purchase_slope * tz)
    return mu, sigma, q


def _weights(params: RecsysParams):
    return tuple(jnp.maximum(w, 0.0) for w in (params.w_click, params.w_dwell, params.w_purchase))


def click_value(state: RecsysState, params: RecsysParams) -> jax.Array:
    """g_i = E[reward | click on i] = w_click + w_dwell E[dwell_i] + w_purchase q_i: f32[N]."""
    mu, sigma, q = outcome_params(state, params)
    w_c, w_d, w_p = _weights(params)
    return w_c + w_d * jnp.exp(mu + 0.5 * sigma**2) + w_p * q


def slot_click_probs(attr: jax.Array, examination: jax.Array, click_model: str) -> jax.Array:
    """P(click in slot k) for a slate whose attractions are attr f32[K]: f32[K]."""
    if click_model == "pbm":
        return jnp.clip(examination, 0.0, 1.0) * attr
    reach = jnp.cumprod(jnp.concatenate([jnp.ones((1,), attr.dtype), 1.0 - attr[:-1]]))
    return attr * reach


def best_expected_reward(attr: jax.Array, value: jax.Array, examination: jax.Array, click_model: str,
                         slate_size: int) -> jax.Array:
    """Exact expected reward of the best slate of ``slate_size`` distinct items: f32[].

    attr, value: f32[N] attraction and click value g (>= 0) of every item.
    """
    num_items = attr.shape[0]
    if click_model == "pbm":
        k = min(slate_size, num_items)
        top = top_k(attr * value, k)[0]
        exam = -jnp.sort(-jnp.clip(examination, 0.0, 1.0))[:k]
        return jnp.sum(top * exam)
    # cascade: DP over items sorted by g descending; V_m[i] = best reward with m slots
    # left using items i.. ; V_m[i] = max_{j >= i} a_j g_j + (1 - a_j) V_{m-1}[j + 1].
    order = jnp.argsort(-value)
    a, g = attr[order], value[order]
    v_prev = jnp.zeros((num_items + 1,), attr.dtype)
    for _ in range(min(slate_size, num_items)):
        h = a * g + (1.0 - a) * v_prev[1:]
        v_prev = jnp.concatenate([jax.lax.cummax(h, reverse=True), jnp.zeros((1,), attr.dtype)])
    return v_prev[0]


def best_slate(attr: jax.Array, value: jax.Array, examination: jax.Array, click_model: str,
               slate_size: int) -> jax.Array:
    """A best slate, int32[K], for PBM and for cascade with constant click value.

    PBM: the K largest a*g placed on the slots by decreasing examination. Cascade:
    the K most attractive items sorted by attraction (best when g is constant, i.e.
    click reward; for item-dependent g use :func:`best_expected_reward` for the value).
    """
    if click_model == "pbm":
        top = top_k(attr * value, slate_size)[1]
        slots = jnp.argsort(-jnp.clip(examination, 0.0, 1.0))
        return jnp.zeros((slate_size,), jnp.int32).at[slots].set(top.astype(jnp.int32))
    return top_k(attr, slate_size)[1].astype(jnp.int32)


def respond(keys: tuple[jax.Array, jax.Array, jax.Array], state: RecsysState, params: RecsysParams,
            slate: jax.Array, click_model: str) -> tuple[jax.Array, StepOutput]:
    """The user's response to ``slate`` int32[K]: (clicks f32[K], StepOutput) with exact expectations.

    keys: the (click, dwell, purchase) keys.
    """
    click_key, dwell_key, purchase_key = keys
    k = slate.shape[0]
    attr_all = attraction(state, params)
    value_all = click_value(state, params)
    attr = attr_all[slate]
    exam = params.examination
    p_click = slot_click_probs(attr, exam, click_model)
    draws = jax.random.uniform(click_key, (k,))
    if click_model == "pbm":
        clicks = draws < p_click
    else:
        attractive = draws < attr
        seen_before = jnp.cumsum(attractive) - attractive
        clicks = attractive & (seen_before == 0)
    clicks = clicks.astype(jnp.float32)
    mu, sigma, q = outcome_params(state, params)
    dwell = jnp.exp(mu[slate] + sigma * jax.random.normal(dwell_key, (k,)))
    purchase = (jax.random.uniform(purchase_key, (k,)) < q[slate]).astype(jnp.float32)
    w_c, w_d, w_p = _weights(params)
    slot_rewards = clicks * (w_c + w_d * dwell + w_p * purchase)
    out = StepOutput(
        reward=jnp.sum(slot_rewards),
        click=jnp.max(clicks),
        expected_reward=jnp.sum(p_click * value_all[slate]),
        best_expected_reward=best_expected_reward(attr_all, value_all, exam, click_model, k),
        slot_rewards=slot_rewards,
    )
    return clicks, out
