"""Epsilon-greedy over per-item empirical means, constant or decaying epsilon.

epsilon_t = min(1, epsilon / (1 + decay * t)), t = number of updates so far
(decay = 0 is the constant schedule). Context-free: ignores ``obs.features`` and
``obs.scores``; never picks an unavailable item.

Slates (K > 1), per slot: with probability epsilon_t a uniform item among the
available items left, else the best item left (exact ties broken uniformly at
random). Propensities and per-slot marginals are exact (num_mc_samples = 0); see
:func:`rec_jax.policies._slates.epsilon_ranked_slate`.
"""
from __future__ import annotations

from flax import struct

from rec_jax.policies import _common
from rec_jax.policies._slates import epsilon_ranked_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec

NAME = "epsilon_greedy"


@struct.dataclass
class EpsilonGreedyParams:
    epsilon: float = 0.1  # eps0: exploration probability at t = 0, in [0, 1]
    decay: float = 0.0  # epsilon_t = min(1, eps0 / (1 + decay * t)); 0 = constant
    initial_value: float = 0.0  # mean assumed for items never shown

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: EpsilonGreedyParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME)
    _common.check_range(params, "epsilon", low=0.0, high=1.0)
    _common.check_range(params, "decay", low=0.0)
    _common.check_range(params, "initial_value")


def make_epsilon_greedy(spec: PolicySpec) -> Policy:
    """Epsilon-greedy for one stream; ``spec`` fixes N and K."""
    _common.check_spec(spec, NAME)
    k = spec.slate_size

    def act(key, state, obs, params):
        means = _common.empirical_means(state, params.initial_value)
        eps = _common.decayed_epsilon(params.epsilon, params.decay, state.t)
        return epsilon_ranked_slate(key, means, obs.available, eps, k)

    return _common.counts_policy(spec, act)


POLICY = PolicyInfo(
    make=make_epsilon_greedy,
    params=EpsilonGreedyParams,
    validate=validate_params,
    kind="context_free",
    bad_params=(("epsilon", -0.1), ("epsilon", 1.5), ("decay", -1.0)),
)
