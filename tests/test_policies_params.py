"""Registry and host-side parameter checks: one-line ValueErrors naming the field."""
from __future__ import annotations

import numpy as np
import pytest

from rec_jax.policies import (
    CONTEXTUAL_POLICY_NAMES,
    POLICY_NAMES,
    PolicySpec,
    make_policy,
    make_validator,
    params_class,
    validate_params,
)

SPEC = PolicySpec(num_items=6, feature_dim=4, slate_size=2)

EXPECTED_NAMES = {
    "random", "greedy", "epsilon_greedy", "softmax", "ucb1", "thompson", "gaussian_ts",
    "linucb", "linucb_disjoint", "lints", "squarecb", "logistic_epsilon_greedy",
    "score_epsilon_greedy", "score_softmax", "neural_linear_ts", "neural_linear_ucb", "bootstrapped_heads",
}  # fmt: skip

# name -> list of (field, bad value)
BAD = {
    "random": [],
    "greedy": [("initial_value", float("nan"))],
    "epsilon_greedy": [("epsilon", -0.1), ("epsilon", 1.5), ("decay", -1.0)],
    "softmax": [("temperature", 0.0), ("temperature", -1.0), ("num_mc_samples", 0)],
    "ucb1": [("alpha", -0.5)],
    "thompson": [("prior_alpha", 0.0), ("prior_beta", -1.0), ("prior_alpha", np.ones(7)), ("num_mc_samples", 0)],
    "gaussian_ts": [("prior_std", 0.0), ("noise_std", -1.0), ("prior_mean", np.zeros(5))],
    "linucb": [("alpha", -1.0), ("reg", 0.0), ("refactor_every", 0), ("refactor_every", 2.5)],
    "linucb_disjoint": [("alpha", -1.0), ("reg", -1.0), ("refactor_every", 0)],
    "lints": [("scale", -1.0), ("reg", 0.0), ("num_mc_samples", -3)],
    "squarecb": [("gamma", -1.0), ("reg", 0.0), ("refactor_every", -1)],
    "logistic_epsilon_greedy": [("epsilon", -0.1), ("learning_rate", -0.1), ("l2", -1.0), ("decay", -2.0)],
    "score_epsilon_greedy": [("epsilon", 1.5), ("decay", -1.0)],
    "score_softmax": [("temperature", 0.0), ("num_mc_samples", 0)],
    "neural_linear_ts": [("prior_mean", -1.0), ("scale", -1.0), ("reg", 0.0), ("num_mc_samples", 0)],
    "neural_linear_ucb": [("alpha", -1.0), ("refactor_every", 0)],
    "bootstrapped_heads": [("prior_scale", -1.0), ("reg", -1.0)],
}


def test_registry_has_exactly_the_documented_names():
    assert set(POLICY_NAMES) == EXPECTED_NAMES == set(BAD)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown policy 'nope'.*epsilon_greedy.*linucb"):
        make_policy("nope", SPEC)


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_defaults_validate_and_bad_values_name_the_field(name):
    policy, params = make_policy(name, SPEC)
    assert isinstance(params, params_class(name))
    validate_params(name, params, SPEC)  # defaults are valid
    params.validate(SPEC)
    make_validator(name, SPEC)(params)
    for field, value in BAD[name]:
        bad = params.replace(**{field: value})
        with pytest.raises(ValueError, match=rf"{type(params).__name__}\.{field}") as err:
            validate_params(name, bad, SPEC)
        assert "\n" not in str(err.value)
    # Per-item arrays of the right shape are fine where the priors allow them.
    if name == "thompson":
        validate_params(name, params.replace(prior_alpha=np.full(6, 2.0)), SPEC)


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_spec_checks(name):
    too_big = PolicySpec(num_items=3, feature_dim=4, slate_size=4)
    with pytest.raises(ValueError, match="slate_size"):
        make_policy(name, too_big)
    _, params = make_policy(name, SPEC)
    with pytest.raises(ValueError, match="slate_size"):
        validate_params(name, params, too_big)
    no_features = PolicySpec(num_items=6, feature_dim=0)
    if name in CONTEXTUAL_POLICY_NAMES:
        with pytest.raises(ValueError, match="feature_dim"):
            make_policy(name, no_features)
    else:
        make_policy(name, no_features)  # context-free policies need no features
