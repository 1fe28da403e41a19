"""The one loader the registries share: policies, simulators and models each keep a
``name -> "package.module:ATTRIBUTE"`` registry of the declarations their modules make
(:class:`rec_jax.policies.PolicyInfo`, :class:`rec_jax.sim.SimulatorInfo`,
:class:`rec_jax.models.ModelInfo`), imported on first use so ``import rec_jax.policies``
stays cheap and a module may import the registry's package."""
from __future__ import annotations

import importlib
from typing import TypeVar

T = TypeVar("T")


def load_declaration(target: str, expected: type[T], default_attribute: str) -> T:
    """Import ``"package.module:ATTRIBUTE"`` (``default_attribute`` when no ``:``) and
    return the object it names; TypeError if it is not an ``expected``."""
    module, _, attribute = target.partition(":")
    info = getattr(importlib.import_module(module), attribute or default_attribute)
    if not isinstance(info, expected):
        raise TypeError(f"{target} is a {type(info).__name__}, expected a {expected.__name__}")
    return info
