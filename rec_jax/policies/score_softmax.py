"""Softmax (Boltzmann) exploration over prior scores ``obs.scores``.

P(n) proportional to exp(scores_n / temperature) over the available items; slates
are Plackett-Luce draws without replacement. Like
:mod:`rec_jax.policies.score_epsilon_greedy` it learns nothing itself and explores
around whatever fills ``obs.scores`` (a Transformer's logits via
:mod:`rec_jax.policies.model_backed`). Conditional propensities are exact; slot-0
marginals exact, later slots Monte Carlo (see :mod:`rec_jax.policies.softmax`).
"""
from __future__ import annotations

import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common
from rec_jax.policies._slates import sequential_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec, merge_by_summed_deltas
from rec_jax.policies.softmax import softmax_probs

NAME = "score_softmax"


@struct.dataclass
class ScoreSoftmaxParams:
    temperature: float = 1.0  # > 0, in units of the scores; small = exploit, large = uniform
    num_mc_samples: int = struct.field(pytree_node=False, default=16)  # slates: MC marginals of slots >= 1

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


def validate_params(params: ScoreSoftmaxParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME)
    _common.check_range(params, "temperature", low=0.0, low_open=True)
    _common.check_static_positive(params, "num_mc_samples")


def make_score_softmax(spec: PolicySpec) -> Policy:
    """Softmax on ``obs.scores`` for one stream; state is the update count t."""
    _common.check_spec(spec, NAME)
    k = spec.slate_size

    def init(key, spec):
        del key
        return jnp.zeros((), jnp.int32)

    def act(key, t, obs, params):
        scores = obs.scores.astype(jnp.float32)
        return sequential_slate(
            key, lambda remaining: softmax_probs(scores, remaining, params.temperature),
            obs.available, k, params.num_mc_samples,
        )

    def update(key, t, obs, action, reward, params):
        del key, obs, action, reward, params
        return t + 1

    return Policy(init=init, act=act, update=update, merge=merge_by_summed_deltas)


POLICY = PolicyInfo(
    make=make_score_softmax,
    params=ScoreSoftmaxParams,
    validate=validate_params,
    kind="model_backed",
    marginals="monte_carlo",  # slots >= 1 of a slate
    bad_params=(("temperature", 0.0), ("num_mc_samples", 0)),
)
