"""Linear Thompson sampling (Agrawal & Goyal 2013), one shared linear model per stream.

theta ~ N(A^{-1} b, scale^2 A^{-1}), A = reg I + sum x x^T, over the item features
``obs.features`` f32[N, D]; recommend argmax_n x_n^T theta (slates: top-K of the
same draw). A^{-1} is kept as in LinUCB (Sherman-Morrison + periodic Cholesky
refactor, :mod:`rec_jax.policies._ridge`); draws use the Cholesky factor of A.

Propensities are Monte Carlo: ``num_mc_samples`` draws of theta, draw 0 being the
one that acts (see :func:`rec_jax.policies._slates.sampled_topk_slate`);
ActInfo.num_mc_samples = num_mc_samples. ``merge`` sums A and b deltas and
recomputes the inverse.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common, _ridge
from rec_jax.policies._slates import sampled_topk_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec

NAME = "lints"


@struct.dataclass
class LinTSParams:
    scale: float = 0.5  # posterior scale v: theta ~ N(mu, v^2 A^-1), >= 0
    reg: float = 1.0  # ridge regulariser lambda > 0 (from the first act; a change takes effect at the next update)
    refactor_every: int = 100  # recompute A^{-1} by Cholesky every this many rank-one updates
    num_mc_samples: int = struct.field(pytree_node=False, default=128)  # posterior draws per act

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: LinTSParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME, needs_features=True)
    _common.check_range(params, "scale", low=0.0)
    _ridge.check_ridge_params(params)
    _common.check_static_positive(params, "num_mc_samples")


def make_lints(spec: PolicySpec) -> Policy:
    """Linear Thompson sampling for one stream; ``spec`` fixes N, D and K."""
    _common.check_spec(spec, NAME, needs_features=True)
    k = spec.slate_size

    def act(key, state, obs, params):
        x = obs.features.astype(jnp.float32)
        draw = _ridge.gaussian_score_sampler(state, _ridge.ridge_theta(state), params.scale, x)
        return sampled_topk_slate(key, draw, obs.available, k, params.num_mc_samples)

    return _ridge.ridge_policy(spec, act)


POLICY = PolicyInfo(
    make=make_lints,
    params=LinTSParams,
    validate=validate_params,
    kind="contextual",
    needs_features=True,
    propensities="monte_carlo",
    bad_params=(("scale", -1.0), ("reg", 0.0), ("num_mc_samples", -3)),
)
