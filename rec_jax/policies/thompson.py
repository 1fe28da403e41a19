"""Bernoulli Thompson sampling with Beta posteriors (Thompson 1933; Chapelle & Li 2011).

Item n's mean has posterior Beta(prior_alpha + s_n, prior_beta + f_n), with
s_n = summed rewards and f_n = count - s_n; rewards are clipped to [0, 1] (a
fractional reward is a fractional success). ``act`` draws one mean per item and
recommends the argmax (slates: top-K) among the available items.

Propensities are Monte Carlo: ``num_mc_samples`` posterior draws, draw 0 being the
one that acts (see :func:`rec_jax.policies._slates.sampled_topk_slate`);
ActInfo.num_mc_samples = num_mc_samples. The priors may be scalars or f32[N]. The Beta
draws come from :mod:`rec_jax.policies._gamma_draws` (rejection over whole arrays).
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common
from rec_jax.policies._gamma_draws import beta_draws
from rec_jax.policies._slates import sampled_topk_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec

NAME = "thompson"


@struct.dataclass
class ThompsonParams:
    prior_alpha: float = 1.0  # Beta prior successes (scalar or f32[N]), > 0
    prior_beta: float = 1.0  # Beta prior failures (scalar or f32[N]), > 0
    num_mc_samples: int = struct.field(pytree_node=False, default=128)  # posterior draws per act

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: ThompsonParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME)
        _common.check_per_item_shape(params, "prior_alpha", spec.num_items)
        _common.check_per_item_shape(params, "prior_beta", spec.num_items)
    _common.check_range(params, "prior_alpha", low=0.0, low_open=True)
    _common.check_range(params, "prior_beta", low=0.0, low_open=True)
    _common.check_static_positive(params, "num_mc_samples")


def beta_posterior(state: _common.CountsState, params: ThompsonParams):
    """(alpha f32[N], beta f32[N]) of the Beta posteriors."""
    a0 = jnp.maximum(jnp.asarray(params.prior_alpha, jnp.float32), _common.TINY)
    b0 = jnp.maximum(jnp.asarray(params.prior_beta, jnp.float32), _common.TINY)
    return a0 + state.sums, b0 + state.counts - state.sums


def make_thompson(spec: PolicySpec) -> Policy:
    """Bernoulli Thompson sampling for one stream."""
    _common.check_spec(spec, NAME)
    k = spec.slate_size

    def act(key, state, obs, params):
        a, b = beta_posterior(state, params)
        a = jnp.broadcast_to(a, obs.available.shape)
        b = jnp.broadcast_to(b, obs.available.shape)
        return sampled_topk_slate(
            key,
            lambda draw_key, num: beta_draws(draw_key, a, b, num),
            obs.available,
            k,
            params.num_mc_samples,
        )

    return _common.counts_policy(spec, act, clip_rewards=True)


POLICY = PolicyInfo(
    make=make_thompson,
    params=ThompsonParams,
    validate=validate_params,
    kind="context_free",
    propensities="monte_carlo",
    bad_params=(("prior_alpha", 0.0), ("prior_beta", -1.0), ("prior_alpha", (1.0,) * 7), ("num_mc_samples", 0)),
)
