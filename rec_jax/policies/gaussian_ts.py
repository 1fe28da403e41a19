"""Gaussian Thompson sampling: conjugate Normal posterior per item, known noise.

Prior mean_n ~ N(prior_mean, prior_std^2), rewards ~ N(mean_n, noise_std^2), so
posterior precision = 1/prior_std^2 + n/noise_std^2 and posterior mean =
(prior_mean/prior_std^2 + sum_n/noise_std^2) / precision. ``act`` draws one mean
per item and recommends the argmax (slates: top-K) among the available items.

Propensities are Monte Carlo: ``num_mc_samples`` posterior draws, draw 0 being the
one that acts (see :func:`rec_jax.policies._slates.sampled_topk_slate`);
ActInfo.num_mc_samples = num_mc_samples. prior_mean / prior_std may be f32[N].
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common
from rec_jax.policies._slates import sampled_topk_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec

NAME = "gaussian_ts"


@struct.dataclass
class GaussianTSParams:
    prior_mean: float = 0.0  # prior mean of every item's reward (scalar or f32[N])
    prior_std: float = 1.0  # prior standard deviation (scalar or f32[N]), > 0
    noise_std: float = 1.0  # reward noise standard deviation, > 0
    num_mc_samples: int = struct.field(pytree_node=False, default=128)  # posterior draws per act

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: GaussianTSParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME)
        _common.check_per_item_shape(params, "prior_mean", spec.num_items)
        _common.check_per_item_shape(params, "prior_std", spec.num_items)
    _common.check_range(params, "prior_mean")
    _common.check_range(params, "prior_std", low=0.0, low_open=True)
    _common.check_range(params, "noise_std", low=0.0, low_open=True)
    _common.check_static_positive(params, "num_mc_samples")


def gaussian_posterior(state: _common.CountsState, params: GaussianTSParams):
    """(mean f32[N], std f32[N]) of the per-item posteriors."""
    prior_var = jnp.maximum(jnp.asarray(params.prior_std, jnp.float32), _common.TINY) ** 2
    noise_var = jnp.maximum(jnp.asarray(params.noise_std, jnp.float32), _common.TINY) ** 2
    precision = 1.0 / prior_var + state.counts / noise_var
    mean = (jnp.asarray(params.prior_mean, jnp.float32) / prior_var + state.sums / noise_var) / precision
    return mean, jax.lax.rsqrt(precision)


def make_gaussian_ts(spec: PolicySpec) -> Policy:
    """Gaussian Thompson sampling for one stream."""
    _common.check_spec(spec, NAME)
    k = spec.slate_size

    def act(key, state, obs, params):
        mean, std = gaussian_posterior(state, params)
        mean = jnp.broadcast_to(mean, obs.available.shape)
        std = jnp.broadcast_to(std, obs.available.shape)
        return sampled_topk_slate(
            key,
            lambda draw_key, num: mean + std * jax.random.normal(draw_key, (num,) + mean.shape),
            obs.available,
            k,
            params.num_mc_samples,
        )

    return _common.counts_policy(spec, act)


POLICY = PolicyInfo(
    make=make_gaussian_ts,
    params=GaussianTSParams,
    validate=validate_params,
    kind="context_free",
    propensities="monte_carlo",
    bad_params=(("prior_std", 0.0), ("noise_std", -1.0), ("prior_mean", (0.0,) * 5)),
)
