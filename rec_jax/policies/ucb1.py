"""UCB1 (Auer, Cesa-Bianchi & Fischer 2002): mean + alpha * sqrt(2 log t / n).

t = total number of item updates so far (every shown slate item counts), n the
item's count. Items never shown score +inf, so every untried available item is
played before any tried one. Ties (e.g. among untried items) are broken uniformly
at random: exact propensity 1 / #ties (num_mc_samples = 0). Slates take the top-K
scores, slot by slot, with the same tie rule; marginals exact.
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common
from rec_jax.policies._slates import epsilon_ranked_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec

NAME = "ucb1"


@struct.dataclass
class UCB1Params:
    alpha: float = 1.0  # scale of the exploration bonus (1 = UCB1), >= 0

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: UCB1Params, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME)
    _common.check_range(params, "alpha", low=0.0)


def ucb1_scores(state: _common.CountsState, alpha) -> jnp.ndarray:
    """f32[N] UCB1 index; +inf for items never shown."""
    total = jnp.maximum(jnp.sum(state.counts), 1.0)
    n = jnp.maximum(state.counts, 1.0)
    bonus = jnp.maximum(jnp.asarray(alpha, jnp.float32), 0.0) * jnp.sqrt(2.0 * jnp.log(total) / n)
    return jnp.where(state.counts > 0, state.sums / n + bonus, jnp.inf)


def make_ucb1(spec: PolicySpec) -> Policy:
    """UCB1 for one stream."""
    _common.check_spec(spec, NAME)
    k = spec.slate_size

    def act(key, state, obs, params):
        return epsilon_ranked_slate(key, ucb1_scores(state, params.alpha), obs.available, 0.0, k)

    return _common.counts_policy(spec, act)


POLICY = PolicyInfo(
    make=make_ucb1,
    params=UCB1Params,
    validate=validate_params,
    kind="context_free",
    bad_params=(("alpha", -0.5),),
)
