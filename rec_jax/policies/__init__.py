"""Bandit policies: one file per policy, each a ``make_<name>(spec) -> Policy`` factory
and a ``<Name>Params`` flax.struct dataclass of its tunable numbers (with defaults).

    policy, params = make_policy("linucb", PolicySpec(num_items=10, feature_dim=4))
    validate_params("linucb", params, spec)      # host side, before jit

See :mod:`rec_jax.policies.base` for the interface and
:mod:`rec_jax.policies._slates` for how slates and propensities are built.
"""
from __future__ import annotations

import importlib
from typing import Any

from rec_jax.policies.base import ActInfo, Observation, Policy, PolicySpec, merge_by_summed_deltas

# name -> (module, factory, params class)
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "random": ("random_policy", "make_random", "RandomParams"),
    "greedy": ("greedy", "make_greedy", "GreedyParams"),
    "epsilon_greedy": ("epsilon_greedy", "make_epsilon_greedy", "EpsilonGreedyParams"),
    "softmax": ("softmax", "make_softmax", "SoftmaxParams"),
    "ucb1": ("ucb1", "make_ucb1", "UCB1Params"),
    "thompson": ("thompson", "make_thompson", "ThompsonParams"),
    "gaussian_ts": ("gaussian_ts", "make_gaussian_ts", "GaussianTSParams"),
    "linucb": ("linucb", "make_linucb", "LinUCBParams"),
    "linucb_disjoint": ("linucb_disjoint", "make_linucb_disjoint", "LinUCBDisjointParams"),
    "lints": ("lints", "make_lints", "LinTSParams"),
    "squarecb": ("squarecb", "make_squarecb", "SquareCBParams"),
    "logistic_epsilon_greedy": (
        "logistic_epsilon_greedy",
        "make_logistic_epsilon_greedy",
        "LogisticEpsilonGreedyParams",
    ),
    # Policies over a model's view of the items (obs.scores / obs.features), e.g. a
    # Transformer's via rec_jax.policies.model_backed.
    "score_epsilon_greedy": ("score_epsilon_greedy", "make_score_epsilon_greedy", "ScoreEpsilonGreedyParams"),
    "score_softmax": ("score_softmax", "make_score_softmax", "ScoreSoftmaxParams"),
    "neural_linear_ts": ("neural_linear", "make_neural_linear_ts", "NeuralLinearParams"),
    "neural_linear_ucb": ("neural_linear", "make_neural_linear_ucb", "NeuralLinearParams"),
    "bootstrapped_heads": ("bootstrapped_heads", "make_bootstrapped_heads", "BootstrappedHeadsParams"),
}

POLICY_NAMES: tuple[str, ...] = tuple(_REGISTRY)

# Policies that read obs.features (need spec.feature_dim >= 1).
CONTEXTUAL_POLICY_NAMES: tuple[str, ...] = (
    "linucb",
    "linucb_disjoint",
    "lints",
    "squarecb",
    "logistic_epsilon_greedy",
    "neural_linear_ts",
    "neural_linear_ucb",
    "bootstrapped_heads",
)


def _module(name: str):
    if name not in _REGISTRY:
        raise ValueError(f"unknown policy {name!r}; valid names: {', '.join(POLICY_NAMES)}")
    return importlib.import_module(f"rec_jax.policies.{_REGISTRY[name][0]}")


def make_policy(name: str, spec: PolicySpec) -> tuple[Policy, Any]:
    """(Policy, default params) of the policy called ``name`` for ``spec``.

    Raises ValueError for an unknown name (listing the valid ones) or a spec the
    policy cannot serve (slate larger than the catalogue, no features for a
    contextual policy).
    """
    mod = _module(name)
    _, factory, params_cls = _REGISTRY[name]
    return getattr(mod, factory)(spec), getattr(mod, params_cls)()


def params_class(name: str) -> type:
    """The ``<Name>Params`` class of policy ``name`` (build variants with ``.replace``)."""
    return getattr(_module(name), _REGISTRY[name][2])


def validate_params(name: str, params: Any, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete ``params`` for policy ``name``; ValueError naming the field."""
    _module(name).validate_params(params, spec)


def make_validator(name: str, spec: PolicySpec):
    """``params -> None`` checker, e.g. for ``make_run(..., validate_policy_params=...)``."""
    mod = _module(name)
    return lambda params: mod.validate_params(params, spec)


__all__ = [
    "ActInfo",
    "CONTEXTUAL_POLICY_NAMES",
    "Observation",
    "POLICY_NAMES",
    "Policy",
    "PolicySpec",
    "make_policy",
    "make_validator",
    "merge_by_summed_deltas",
    "params_class",
    "validate_params",
]
