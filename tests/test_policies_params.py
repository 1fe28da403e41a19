"""Registry and host-side parameter checks: one-line ValueErrors naming the field."""
from __future__ import annotations

import numpy as np
import pytest

from rec_jax.policies import (
    POLICY_NAMES,
    PolicyInfo,
    PolicySpec,
    make_policy,
    make_validator,
    params_class,
    policy_info,
    policy_names,
    validate_params,
)

SPEC = PolicySpec(num_items=6, feature_dim=4, slate_size=2)


def test_every_registered_policy_declares_itself():
    for name in POLICY_NAMES:
        info = policy_info(name)
        assert isinstance(info, PolicyInfo), name
        assert info.kind in ("context_free", "contextual", "model_backed")
        # A contextual policy learns from features; a context-free one never reads them.
        if info.kind == "contextual":
            assert info.needs_features, name
        if info.kind == "context_free":
            assert not info.needs_features, name
    # The filters partition the registry.
    kinds = [policy_names(kind=k) for k in ("context_free", "contextual", "model_backed")]
    assert sorted(sum(kinds, ())) == sorted(POLICY_NAMES)
    assert set(policy_names(propensities="monte_carlo")) | set(policy_names(propensities="exact")) == set(POLICY_NAMES)


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="unknown policy 'nope'.*epsilon_greedy.*linucb"):
        make_policy("nope", SPEC)
    with pytest.raises(ValueError, match="unknown policy 'nope'"):
        policy_info("nope")


@pytest.mark.parametrize("name", POLICY_NAMES)
def test_defaults_validate_and_bad_values_name_the_field(name):
    policy, params = make_policy(name, SPEC)
    assert isinstance(params, params_class(name))
    validate_params(name, params, SPEC)  # defaults are valid
    make_validator(name, SPEC)(params)
    for field, value in policy_info(name).bad_params:
        bad = params.replace(**{field: value})
        with pytest.raises(ValueError, match=rf"{type(params).__name__}\.{field}") as err:
            validate_params(name, bad, SPEC)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="expected"):  # another policy's params are refused
        validate_params(name, object(), SPEC)
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
    if policy_info(name).needs_features:
        with pytest.raises(ValueError, match="feature_dim"):
            make_policy(name, no_features)
    else:
        make_policy(name, no_features)  # context-free policies need no features


def test_listing_shows_every_registered_policy(capsys):
    from rec_jax.policies.__main__ import main

    main()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 + len(POLICY_NAMES)
    for line, name in zip(lines[1:], POLICY_NAMES):
        cells = line.split()
        assert cells[:2] == [name, policy_info(name).kind] and cells[-1] == params_class(name).__name__
