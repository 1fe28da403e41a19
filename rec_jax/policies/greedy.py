"""Greedy: recommend the item(s) with the highest empirical mean reward.

Context-free (ignores ``obs.features`` / ``obs.scores``). Tie-breaking: uniformly
at random among exact ties, so the propensity is exactly 1 / #ties (1 without
ties; num_mc_samples = 0). Slates rank the available items; slot k's conditional
propensity is 1 / #tied-best items left and the marginals are exact (one-hot
without ties). Equal to epsilon-greedy with epsilon = 0.
"""
from __future__ import annotations

from flax import struct

from rec_jax.policies import _common
from rec_jax.policies._slates import epsilon_ranked_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec

NAME = "greedy"


@struct.dataclass
class GreedyParams:
    initial_value: float = 0.0  # mean assumed for items never shown (optimism if large)

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: GreedyParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME)
    _common.check_range(params, "initial_value")


def make_greedy(spec: PolicySpec) -> Policy:
    """Greedy policy for one stream."""
    _common.check_spec(spec, NAME)
    k = spec.slate_size

    def act(key, state, obs, params):
        means = _common.empirical_means(state, params.initial_value)
        return epsilon_ranked_slate(key, means, obs.available, 0.0, k)

    return _common.counts_policy(spec, act)


POLICY = PolicyInfo(
    make=make_greedy,
    params=GreedyParams,
    validate=validate_params,
    kind="context_free",
    bad_params=(("initial_value", float("nan")),),
)
