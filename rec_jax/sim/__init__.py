"""User simulators (gymnax-shaped; see :mod:`rec_jax.sim.base`).

Each simulator module declares itself next to its factory with a module-level
:class:`SimulatorInfo` (factory, params class, validator, kind, the slates it
serves, how a study sizes it); this file holds the registry, ONE line per simulator,
``"name": "module:ATTRIBUTE"`` (imported on first use):

    bernoulli          K-armed Bernoulli bandit           (rec_jax.sim.bernoulli)
    gaussian           K-armed Gaussian bandit            (rec_jax.sim.gaussian)
    linear             linear / logistic contextual bandit (rec_jax.sim.linear)
    ml100k             semi-synthetic recommender fitted on MovieLens-100K (rec_jax.sim.recsys)
    synthetic_recsys   the same recommender on a small random ground truth

    sim, params = make_env("linear", num_items=10, dim=4)   # params validated
    validate_params("linear", params, SimSpec(10, 4))        # host side, before jit
    simulator_info("linear").slates                         # "any": what it declares

Validators have the policies' signature shape, ``validate(params, spec=None)``, where
``spec`` is a :class:`SimSpec` (``num_items``, ``feature_dim``, ``slate_size``; a
``PolicySpec`` fits too): the static shapes the params must fit; ``slate_size=None``
skips the slate check. :func:`validate_params` also refuses a slate size the
simulator does not serve (``SimulatorInfo.slates``); the engine's ``Run.validate``
calls it through ``Simulator.name`` (set by :func:`make_env`).

To add a simulator: one module with its ``SIMULATOR = SimulatorInfo(...)``, one line
below, one test (README.md, "Add a simulator"); ``tests/test_sim_registry.py`` then
covers it and ``experiments/bandits.py --envs NAME`` selects it.
"""
from __future__ import annotations

import functools
from typing import Any

from rec_jax.sim.base import SimSpec, Simulator, SimulatorInfo, StepOutput

# name -> "module:SimulatorInfo attribute" (imported on first use).
_REGISTRY: dict[str, str] = {
    "bernoulli": "rec_jax.sim.bernoulli:SIMULATOR",
    "gaussian": "rec_jax.sim.gaussian:SIMULATOR",
    "linear": "rec_jax.sim.linear:SIMULATOR",
    "ml100k": "rec_jax.sim.recsys:ML100K",
    "synthetic_recsys": "rec_jax.sim.recsys:SYNTHETIC_RECSYS",
}

ENV_NAMES: tuple[str, ...] = tuple(_REGISTRY)


@functools.cache
def simulator_info(name: str) -> SimulatorInfo:
    """The :class:`SimulatorInfo` simulator ``name`` declares; ValueError listing the valid names."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown simulator {name!r}; valid names: {', '.join(ENV_NAMES)}")
    from rec_jax.sim import base

    return base.load(_REGISTRY[name])


def make_env(name: str, **kwargs) -> tuple[Simulator, Any]:
    """Build the simulator ``name`` with its factory's keyword arguments.

    Returns ``(Simulator, default_params)``; the Simulator carries ``name`` and the
    default params are validated. Raises ValueError for an unknown name, listing the
    valid ones.
    """
    info = simulator_info(name)
    sim, params = info.make(**kwargs)
    sim = sim._replace(name=name)
    validate_params(name, params, SimSpec(sim.num_items, sim.feature_dim, slate_size=None))
    return sim, params


def name_for_params(params: Any) -> str | None:
    """The first registered simulator whose params class is ``type(params)``, else None."""
    for name in ENV_NAMES:
        if simulator_info(name).params is type(params):
            return name
    return None


def validate_params(name: Any, params: Any = None, spec: Any = None) -> Any:
    """Host-side check of concrete ``params`` of simulator ``name`` against ``spec``.

    ``spec``: a :class:`SimSpec` (or None: no shape checks). Raises a one-line
    ValueError naming the field, or naming the simulator when ``spec.slate_size``
    is more than it serves. ``validate_params(params)`` (no name) finds the
    simulator by the params class. Returns ``params``.
    """
    if not isinstance(name, str):  # validate_params(params[, spec])
        name, params, spec = name_for_params(name), name, params
        if name is None:
            raise ValueError(f"validate_params: unknown params type {type(params).__name__}; expected the params "
                             f"of one of {', '.join(ENV_NAMES)}")
    info = simulator_info(name)
    slate_size = getattr(spec, "slate_size", None)
    if slate_size is not None and slate_size > 1 and info.slates == "single":
        raise ValueError(f"simulator {name!r} serves single actions only (slates='single'), "
                         f"got slate_size={slate_size}; use slate_size=1")
    info.validate(params, spec)
    return params


__all__ = [
    "ENV_NAMES",
    "SimSpec",
    "Simulator",
    "SimulatorInfo",
    "StepOutput",
    "make_env",
    "name_for_params",
    "simulator_info",
    "validate_params",
]
