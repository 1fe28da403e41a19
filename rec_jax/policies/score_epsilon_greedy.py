"""Epsilon-greedy over prior scores ``obs.scores`` (e.g. a sequential model's logits).

Exploit = rank by ``obs.scores``; with probability epsilon_t per slot a uniform
item among those left instead (epsilon_t = min(1, epsilon / (1 + decay * t)), t =
updates so far). ``epsilon = 0`` is pure exploitation of the scores. The policy
learns nothing itself: what it exploits is whatever fills ``obs.scores`` (see
:mod:`rec_jax.policies.model_backed`, which fills them from a Transformer).
Propensities and marginals are exact (:func:`rec_jax.policies._slates.epsilon_ranked_slate`).
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common
from rec_jax.policies._slates import epsilon_ranked_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec, merge_by_summed_deltas

NAME = "score_epsilon_greedy"


@struct.dataclass
class ScoreEpsilonGreedyParams:
    epsilon: float = 0.1  # eps0: exploration probability per slot at t = 0, in [0, 1]; 0 = exploit the scores
    decay: float = 0.0  # epsilon_t = min(1, eps0 / (1 + decay * t)); 0 = constant

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: ScoreEpsilonGreedyParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME)
    _common.check_range(params, "epsilon", low=0.0, high=1.0)
    _common.check_range(params, "decay", low=0.0)


def make_score_epsilon_greedy(spec: PolicySpec) -> Policy:
    """Epsilon-greedy on ``obs.scores`` for one stream; state is the update count t."""
    _common.check_spec(spec, NAME)
    k = spec.slate_size

    def init(key, spec):
        del key
        return jnp.zeros((), jnp.int32)

    def act(key, t, obs, params):
        eps = _common.decayed_epsilon(params.epsilon, params.decay, t)
        return epsilon_ranked_slate(key, obs.scores, obs.available, eps, k)

    def update(key, t, obs, action, reward, params):
        del key, obs, action, reward, params
        return t + 1

    return Policy(init=init, act=act, update=update, merge=merge_by_summed_deltas)


POLICY = PolicyInfo(
    make=make_score_epsilon_greedy,
    params=ScoreEpsilonGreedyParams,
    validate=validate_params,
    kind="model_backed",
    bad_params=(("epsilon", 1.5), ("decay", -1.0)),
)
