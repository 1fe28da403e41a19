"""What a policy module declares about itself, and the lookup that reads it.

Each policy module ends with one (or, for a module holding several policies, a few)
module-level :class:`PolicyInfo` objects next to its factory::

    POLICY = PolicyInfo(make=make_ucb1, params=UCB1Params, validate=validate_params,
                        kind="context_free", bad_params=(("alpha", -0.5),))

and ``rec_jax/policies/__init__.py`` holds one line per policy, ``"ucb1":
"rec_jax.policies.ucb1:POLICY"``. Everything that lists or classifies policies (the
registry-wide tests, the experiments' ``--policies``, README's listing) reads these
declarations through :func:`policy_info` and :func:`policy_names`; no other file keeps
a list of names. See docs/DESIGN.md, "How to add a policy".
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Literal

from rec_jax.declarations import load_declaration
from rec_jax.policies import _common
from rec_jax.policies.base import Policy, PolicySpec

Kind = Literal["context_free", "contextual", "model_backed"]
Exactness = Literal["exact", "monte_carlo"]


@dataclasses.dataclass(frozen=True)
class PolicyInfo:
    """A policy's declaration: how to build it and what it is.

    make:        ``make(spec) -> Policy``, the factory.
    params:      the params class; ``params()`` gives the defaults.
    validate:    ``validate(params, spec=None)``: host-side check of concrete params,
                 a one-line ValueError naming the field; None when the params hold
                 nothing that can be out of range. The registry checks the spec
                 (slate size, features) itself before calling it.
    kind:        what the policy learns from: ``context_free`` (per-item rewards only),
                 ``contextual`` (``obs.features`` of a fixed simulator), or
                 ``model_backed`` (a model's view: ``obs.scores`` or the model's item
                 features, :mod:`rec_jax.policies.model_backed`).
    needs_features: reads ``obs.features`` (PolicySpec.feature_dim >= 1 required).
    propensities: ``exact`` or ``monte_carlo``: how ActInfo.propensity and, for K = 1,
                 the action distribution are computed.
    marginals:   the same for the per-slot marginals of slates (K > 1); defaults to
                 ``propensities``. Sequential samplers (softmax, SquareCB) have exact
                 picks but Monte Carlo marginals for slots >= 1.
    reads_history: acts on ``obs.history`` (a sequential model's input).
    bad_params:  ``(field, value)`` pairs the validator must reject; the registry-wide
                 tests check each (and that the defaults pass).
    """

    make: Callable[[PolicySpec], Policy]
    params: type
    validate: Callable[..., None] | None = None
    kind: Kind = "context_free"
    needs_features: bool = False
    propensities: Exactness = "exact"
    marginals: Exactness | None = None
    reads_history: bool = False
    bad_params: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self):
        if self.kind not in ("context_free", "contextual", "model_backed"):
            raise ValueError(f"PolicyInfo.kind must be context_free, contextual or model_backed, got {self.kind!r}")
        for field in ("propensities", "marginals"):
            value = getattr(self, field)
            if value not in ("exact", "monte_carlo") and not (field == "marginals" and value is None):
                raise ValueError(f"PolicyInfo.{field} must be 'exact' or 'monte_carlo', got {value!r}")
        if self.marginals is None:
            object.__setattr__(self, "marginals", self.propensities)


def load(target: str) -> PolicyInfo:
    """Import ``"package.module:ATTRIBUTE"`` and return the PolicyInfo it names."""
    return load_declaration(target, PolicyInfo, "POLICY")


def check_spec(info: PolicyInfo, name: str, spec: PolicySpec) -> None:
    """The spec checks every policy needs (one-line ValueError)."""
    _common.check_spec(spec, name, needs_features=info.needs_features)


def validate(info: PolicyInfo, name: str, params: Any, spec: PolicySpec | None = None) -> None:
    """Spec check (when given), the policy's own validator, then a type check."""
    if spec is not None:
        check_spec(info, name, spec)
    if not isinstance(params, info.params):
        raise ValueError(f"{name}: expected {info.params.__name__} params, got {type(params).__name__}")
    if info.validate is not None:
        info.validate(params, spec)
