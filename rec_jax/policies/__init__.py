"""Bandit policies: one file per policy, each a ``make_<name>(spec) -> Policy`` factory,
a ``<Name>Params`` flax.struct dataclass of its tunable numbers (with defaults), and a
module-level :class:`PolicyInfo` declaring what the policy is (``registry.py``).

    policy, params = make_policy("linucb", PolicySpec(num_items=10, feature_dim=4))
    validate_params("linucb", params, spec)      # host side, before jit
    policy_names(kind="contextual")             # the names, read from the declarations

This file holds the registry: ONE line per policy, ``"name": "module:ATTRIBUTE"``. To
add a policy, put its module in this folder and add its line (docs/DESIGN.md, "How to
add a policy"). See :mod:`rec_jax.policies.base` for the interface and
:mod:`rec_jax.policies._slates` for how slates and propensities are built.
"""
from __future__ import annotations

import functools
from typing import Any

from rec_jax.policies.base import ActInfo, Observation, Policy, PolicySpec, merge_by_summed_deltas
from rec_jax.policies.registry import PolicyInfo

# name -> "module:PolicyInfo attribute" (imported on first use).
_REGISTRY: dict[str, str] = {
    "random": "rec_jax.policies.random_policy:POLICY",
    "greedy": "rec_jax.policies.greedy:POLICY",
    "epsilon_greedy": "rec_jax.policies.epsilon_greedy:POLICY",
    "softmax": "rec_jax.policies.softmax:POLICY",
    "ucb1": "rec_jax.policies.ucb1:POLICY",
    "thompson": "rec_jax.policies.thompson:POLICY",
    "gaussian_ts": "rec_jax.policies.gaussian_ts:POLICY",
    "linucb": "rec_jax.policies.linucb:POLICY",
    "linucb_disjoint": "rec_jax.policies.linucb_disjoint:POLICY",
    "lints": "rec_jax.policies.lints:POLICY",
    "squarecb": "rec_jax.policies.squarecb:POLICY",
    "logistic_epsilon_greedy": "rec_jax.policies.logistic_epsilon_greedy:POLICY",
    "score_epsilon_greedy": "rec_jax.policies.score_epsilon_greedy:POLICY",
    "score_softmax": "rec_jax.policies.score_softmax:POLICY",
    "neural_linear_ts": "rec_jax.policies.neural_linear:NEURAL_LINEAR_TS",
    "neural_linear_ucb": "rec_jax.policies.neural_linear:NEURAL_LINEAR_UCB",
    "bootstrapped_heads": "rec_jax.policies.bootstrapped_heads:POLICY",
}

POLICY_NAMES: tuple[str, ...] = tuple(_REGISTRY)


@functools.cache
def policy_info(name: str) -> PolicyInfo:
    """The :class:`PolicyInfo` policy ``name`` declares; ValueError listing the valid names."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown policy {name!r}; valid names: {', '.join(POLICY_NAMES)}")
    from rec_jax.policies import registry

    return registry.load(_REGISTRY[name])


def policy_names(*, kind: str | tuple[str, ...] | None = None, needs_features: bool | None = None,
                 propensities: str | None = None, marginals: str | None = None) -> tuple[str, ...]:
    """Registered names (registry order) whose declarations match every filter given.

    ``kind`` may be one kind or a tuple of kinds (``("context_free", "contextual")``).
    """
    kinds = (kind,) if isinstance(kind, str) else kind
    out = []
    for name in POLICY_NAMES:
        info = policy_info(name)
        if kinds is not None and info.kind not in kinds:
            continue
        if needs_features is not None and info.needs_features != needs_features:
            continue
        if propensities is not None and info.propensities != propensities:
            continue
        if marginals is not None and info.marginals != marginals:
            continue
        out.append(name)
    return tuple(out)


def make_policy(name: str, spec: PolicySpec) -> tuple[Policy, Any]:
    """(Policy, default params) of the policy called ``name`` for ``spec``.

    Raises ValueError for an unknown name (listing the valid ones) or a spec the
    policy cannot serve (slate larger than the catalogue, no features for a
    contextual policy).
    """
    from rec_jax.policies import registry

    info = policy_info(name)
    registry.check_spec(info, name, spec)
    return info.make(spec), info.params()


def params_class(name: str) -> type:
    """The ``<Name>Params`` class of policy ``name`` (build variants with ``.replace``)."""
    return policy_info(name).params


def validate_params(name: str, params: Any, spec: PolicySpec | None = None) -> None:
    """Host-side check of concrete ``params`` for policy ``name``; ValueError naming the field."""
    from rec_jax.policies import registry

    registry.validate(policy_info(name), name, params, spec)


def make_validator(name: str, spec: PolicySpec):
    """``params -> None`` checker, e.g. for ``make_run(..., validate_policy_params=...)``."""
    return lambda params: validate_params(name, params, spec)


__all__ = [
    "ActInfo",
    "Observation",
    "POLICY_NAMES",
    "Policy",
    "PolicyInfo",
    "PolicySpec",
    "make_policy",
    "make_validator",
    "merge_by_summed_deltas",
    "params_class",
    "policy_info",
    "policy_names",
    "validate_params",
]
