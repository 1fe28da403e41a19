"""Fair-exposure greedy: item CTR estimates plus an exposure-deficit controller.

A context-free slate policy meant for ``mode="shared"`` in the engine (one state
for all streams, so exposure is counted over all users, which is what item-side
fairness is about). Each item's CTR estimate shrinks toward a prior,

    ctr_i = (clicks_i + a * p0) / (shows_i + a),

and the slate is the top K of ``logit(ctr_i) + lam * deficit_i`` with the
deficit of :func:`rec_jax.eval.fair_ranker.exposure_deficit` over the
position-weighted exposure of every slate served so far (FairCo's proportional
controller; ``lam = 0`` is plain greedy on the estimates). Deterministic up to
uniform tie-breaking, so the propensities are exact (num_mc_samples = 0).

Not in the policy registry: build it with ``make_fair_exposure(spec)`` and
``FairExposureParams()``.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.eval.fair_ranker import exposure_deficit
from rec_jax.eval.fairness import position_weights
from rec_jax.policies import _common
from rec_jax.policies._slates import epsilon_ranked_slate
from rec_jax.policies.base import Policy, PolicySpec, merge_by_summed_deltas

NAME = "fair_exposure"


@struct.dataclass
class FairExposureParams:
    lam: float = 0.0  # strength of the exposure-deficit controller (0 = greedy on CTR estimates)
    prior_ctr: float = 0.03  # p0, the CTR assumed for an item never shown
    prior_strength: float = 20.0  # a, pseudo-impressions of the prior behind each estimate

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: FairExposureParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME)
    _common.check_range(params, "lam", low=0.0)
    _common.check_range(params, "prior_ctr", low=0.0, high=1.0, low_open=True)
    _common.check_range(params, "prior_strength", low=0.0, low_open=True)


@struct.dataclass
class FairExposureState:
    clicks: jax.Array  # f32[N] clicks (slot rewards) of each item, all streams
    shows: jax.Array  # f32[N] times each item was shown
    exposure: jax.Array  # f32[N] position-weighted exposure of each item
    num_served: jax.Array  # f32[] slates served


def make_fair_exposure(spec: PolicySpec) -> Policy:
    """The fair-exposure policy for one stream (run it in the engine's shared mode)."""
    _common.check_spec(spec, NAME)
    k, n = spec.slate_size, spec.num_items
    weights = position_weights(k)

    def init(key, spec):
        del key
        zeros = jnp.zeros((n,), jnp.float32)
        return FairExposureState(clicks=zeros, shows=zeros, exposure=zeros, num_served=jnp.zeros((), jnp.float32))

    def act(key, state, obs, params):
        a = jnp.maximum(params.prior_strength, _common.TINY)
        p0 = jnp.clip(params.prior_ctr, _common.TINY, 1.0 - _common.TINY)
        ctr = jnp.clip((state.clicks + a * p0) / (state.shows + a), _common.TINY, 1.0 - _common.TINY)
        values = jnp.log(ctr) - jnp.log1p(-ctr) + jnp.maximum(params.lam, 0.0) * exposure_deficit(
            state.exposure, state.num_served)
        return epsilon_ranked_slate(key, values, obs.available, 0.0, k)

    def update(key, state, obs, action, reward, params):
        del key, obs, params
        items, rewards = _common.as_slots(action, reward, k)
        return FairExposureState(
            clicks=state.clicks.at[items].add(rewards),
            shows=state.shows.at[items].add(1.0),
            exposure=state.exposure.at[items].add(weights),
            num_served=state.num_served + 1.0,
        )

    return Policy(init=init, act=act, update=update, merge=merge_by_summed_deltas)
