"""Epsilon-greedy over an online logistic model of the item features, trained by SGD.

P(click | x) = sigmoid(x^T w + bias); ``act`` ranks items by the logit (slates:
epsilon-greedy slates exactly as in :mod:`rec_jax.policies.epsilon_greedy`, exact
propensities and marginals, num_mc_samples = 0; exact ties broken uniformly at
random). ``update`` takes one SGD step on the log-loss per shown item (slates:
one per slot, in slot order, with that slot's reward clipped to [0, 1]):
    g = sigmoid(x^T w + bias) - r;  w -= lr * (g x + l2 w);  bias -= lr * g.
epsilon_t = min(1, epsilon / (1 + decay * t)), t = number of updates.
Shared-mode ``merge`` adds the summed parameter deltas of the streams (a
synchronous data-parallel SGD step).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.policies import _common
from rec_jax.policies._slates import epsilon_ranked_slate
from rec_jax.policies.registry import PolicyInfo
from rec_jax.policies.base import Policy, PolicySpec, merge_by_summed_deltas

NAME = "logistic_epsilon_greedy"


@struct.dataclass
class LogisticEpsilonGreedyParams:
    epsilon: float = 0.1  # eps0: exploration probability at t = 0, in [0, 1]
    decay: float = 0.0  # epsilon_t = min(1, eps0 / (1 + decay * t)); 0 = constant
    learning_rate: float = 0.1  # SGD step size, >= 0
    l2: float = 0.0  # L2 penalty on w (not on the bias), >= 0

    def validate(self, spec: PolicySpec | None = None) -> None:
        validate_params(self, spec)


@struct.dataclass
class LogisticState:
    """w f32[D], bias f32[], t i32[] (number of updates)."""

    w: jax.Array
    bias: jax.Array
    t: jax.Array


def validate_params(params: LogisticEpsilonGreedyParams, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete params (and spec); one-line ValueError naming the field."""
    if spec is not None:
        _common.check_spec(spec, NAME, needs_features=True)
    _common.check_range(params, "epsilon", low=0.0, high=1.0)
    _common.check_range(params, "decay", low=0.0)
    _common.check_range(params, "learning_rate", low=0.0)
    _common.check_range(params, "l2", low=0.0)


def sgd_step(w, bias, x, r, lr, l2):
    """One log-loss SGD step on (x f32[D], r f32[])."""
    g = jax.nn.sigmoid(x @ w + bias) - r
    return w - lr * (g * x + l2 * w), bias - lr * g


def make_logistic_epsilon_greedy(spec: PolicySpec) -> Policy:
    """Logistic epsilon-greedy for one stream; ``spec`` fixes N, D and K."""
    _common.check_spec(spec, NAME, needs_features=True)
    k = spec.slate_size

    def init(key, spec):
        del key
        return LogisticState(
            w=jnp.zeros((spec.feature_dim,), jnp.float32),
            bias=jnp.zeros((), jnp.float32),
            t=jnp.zeros((), jnp.int32),
        )

    def act(key, state, obs, params):
        logits = obs.features.astype(jnp.float32) @ state.w + state.bias
        eps = _common.decayed_epsilon(params.epsilon, params.decay, state.t)
        return epsilon_ranked_slate(key, logits, obs.available, eps, k)

    def update(key, state, obs, action, reward, params):
        del key
        items, rewards = _common.as_slots(action, reward, k)
        xs = obs.features.astype(jnp.float32)[items]
        lr = jnp.maximum(jnp.asarray(params.learning_rate, jnp.float32), 0.0)
        l2 = jnp.maximum(jnp.asarray(params.l2, jnp.float32), 0.0)

        def one(carry, slot):
            x, r = slot
            return sgd_step(*carry, x, r, lr, l2), None

        (w, bias), _ = jax.lax.scan(one, (state.w, state.bias), (xs, jnp.clip(rewards, 0.0, 1.0)))
        return LogisticState(w=w, bias=bias, t=state.t + 1)

    return Policy(init=init, act=act, update=update, merge=merge_by_summed_deltas)


POLICY = PolicyInfo(
    make=make_logistic_epsilon_greedy,
    params=LogisticEpsilonGreedyParams,
    validate=validate_params,
    kind="contextual",
    needs_features=True,
    bad_params=(("epsilon", -0.1), ("learning_rate", -0.1), ("l2", -1.0), ("decay", -2.0)),
)
