"""LinUCB with one shared linear model per stream (Li et al. 2010, eq. 4, "shared" form).

score_n = x_n^T theta + alpha * sqrt(x_n^T A^{-1} x_n), A = reg I + sum x x^T,
theta = A^{-1} b, over the item features ``obs.features`` f32[N, D]. ``A^{-1}`` is
kept by Sherman-Morrison and re-factorised by Cholesky every ``refactor_every``
rank-one updates (see :mod:`rec_jax.policies._ridge`). Slates are the top-K
scores; exact ties are broken uniformly at random, so propensities are exact
(1 / #ties left per slot, 1 without ties; num_mc_samples = 0). With fixed item
features (the engine finds them; ``Policy.fixed_features``) the variances
x_n^T A^{-1} x_n and means x_n^T theta are kept per item by rank-one corrections after
each update (O(N D) instead of O(N D^2)) and recomputed at each re-factorisation
(:mod:`rec_jax.policies._ridge_fixed`). Slate updates
add one rank-one term per shown item with its slot reward. Shared-mode ``merge``
sums the deltas of A and b over streams and recomputes the inverse.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common, _ridge
from rec_jax.policies._slates import epsilon_ranked_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec

NAME = "linucb"


@struct.dataclass
class LinUCBParams:
    alpha: float = 1.0  # width of the confidence bonus, >= 0
    reg: float = 1.0  # ridge regulariser lambda > 0 (from the first act; a change takes effect at the next update)
    refactor_every: int = 100  # recompute A^{-1} by Cholesky every this many rank-one updates

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: LinUCBParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME, needs_features=True)
    _common.check_range(params, "alpha", low=0.0)
    _ridge.check_ridge_params(params)


def ucb_scores(a_inv, b, features, alpha, var=None):
    """f32[N] x^T A^-1 b + alpha sqrt(x^T A^-1 x) for features f32[N, D]; ``var`` f32[N]:
    the quadratic forms when already known (kept incrementally), else computed."""
    mean = features @ (a_inv @ b)
    if var is None:
        var = _ridge.quadratic_forms(features, a_inv)
    var = jnp.maximum(var, 0.0)
    return mean + jnp.maximum(jnp.asarray(alpha, jnp.float32), 0.0) * jnp.sqrt(var)


def make_linucb(spec: PolicySpec) -> Policy:
    """Shared-parameter LinUCB for one stream; ``spec`` fixes N, D and K."""
    _common.check_spec(spec, NAME, needs_features=True)
    k = spec.slate_size

    def act(key, state, obs, params):
        scores = ucb_scores(state.a_inv, state.b, obs.features.astype(jnp.float32), params.alpha)
        return epsilon_ranked_slate(key, scores, obs.available, 0.0, k)

    def act_fixed(key, state, obs, params, var):
        # the means x_n.theta are kept by the updates too (no [N, D] product per act)
        scores = state.mean + jnp.maximum(jnp.asarray(params.alpha, jnp.float32), 0.0) * jnp.sqrt(jnp.maximum(var, 0.0))
        return epsilon_ranked_slate(key, scores, obs.available, 0.0, k)

    return _ridge.ridge_policy(spec, act, act_fixed)


POLICY = PolicyInfo(
    make=make_linucb,
    params=LinUCBParams,
    validate=validate_params,
    kind="contextual",
    needs_features=True,
    bad_params=(("alpha", -1.0), ("reg", 0.0), ("refactor_every", 0), ("refactor_every", 2.5)),
)
