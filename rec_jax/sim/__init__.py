"""User simulators (gymnax-shaped; see :mod:`rec_jax.sim.base`).

``make_env(name, **kw) -> (Simulator, default_params)`` builds one by name:

    bernoulli          K-armed Bernoulli bandit           (rec_jax.sim.bernoulli)
    gaussian           K-armed Gaussian bandit            (rec_jax.sim.gaussian)
    linear             linear / logistic contextual bandit (rec_jax.sim.linear)
    ml100k             semi-synthetic recommender fitted on MovieLens-100K (rec_jax.sim.recsys)
    synthetic_recsys   the same recommender on a small random ground truth

``validate_params(params)`` checks any simulator's concrete params on the host.
"""
from __future__ import annotations

import importlib

from rec_jax.sim.base import Simulator, StepOutput

# name -> (module, factory); modules are imported on demand to keep import cheap.
_REGISTRY = {
    "bernoulli": ("rec_jax.sim.bernoulli", "make_bernoulli"),
    "gaussian": ("rec_jax.sim.gaussian", "make_gaussian"),
    "linear": ("rec_jax.sim.linear", "make_linear"),
    "ml100k": ("rec_jax.sim.recsys", "make_ml100k_env"),
    "synthetic_recsys": ("rec_jax.sim.recsys", "make_synthetic_recsys_env"),
}

# params class name -> module whose validate_params checks it
_VALIDATORS = {
    "BernoulliParams": "rec_jax.sim.bernoulli",
    "GaussianParams": "rec_jax.sim.gaussian",
    "LinearParams": "rec_jax.sim.linear",
    "RecsysParams": "rec_jax.sim.recsys",
}

ENV_NAMES = tuple(_REGISTRY)


def make_env(name: str, **kwargs):
    """Build the simulator ``name`` with its factory's keyword arguments.

    Returns ``(Simulator, default_params)``; the default params are validated.
    Raises ValueError for an unknown name, listing the valid ones.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown simulator {name!r}; valid names: {', '.join(ENV_NAMES)}")
    module, factory = _REGISTRY[name]
    sim, params = getattr(importlib.import_module(module), factory)(**kwargs)
    validate_params(params)
    return sim, params


def validate_params(params):
    """Host-side check of any simulator's params; one-line ValueError naming the field."""
    cls = type(params).__name__
    if cls not in _VALIDATORS:
        raise ValueError(f"validate_params: unknown params type {cls}; expected one of {', '.join(_VALIDATORS)}")
    return importlib.import_module(_VALIDATORS[cls]).validate_params(params)


__all__ = ["Simulator", "StepOutput", "make_env", "validate_params", "ENV_NAMES"]
