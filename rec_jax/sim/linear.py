"""Contextual bandit with item features and a hidden parameter theta.

Each step shows N items with features x_{t,i} f32[D]: the fixed item features
(params), plus, with the STATIC factory option ``perturb_features=True``, per-step
Gaussian noise of std ``feature_noise`` with each row rescaled to unit L2 norm. Each stream draws its own theta in ``reset``:
``theta = theta_mean + theta_std * N(0, I_D)`` (``theta_std = 0`` gives a fixed theta).

* ``link="linear"``:   reward = <x_i, theta> + bias + noise_std * N(0, 1);
  expected reward <x_i, theta> + bias.
* ``link="logistic"``: reward ~ Bernoulli(sigmoid(<x_i, theta> + bias));
  expected reward sigmoid(<x_i, theta> + bias)  (Li et al. 2017, GLM bandits).

Observation: ``features`` = x_t f32[N, D] (the features the NEXT action is scored
on), ``available`` all True, ``scores`` zeros.

Slates (action int32[K] of K distinct items, any K in [1, N]): every shown item pays
independently (its own noise or Bernoulli draw), the reward is their sum,
``expected_reward`` the sum of the shown items' expected rewards and
``best_expected_reward`` the sum of the K largest.

Fixed features (``perturb_features=False``, the default) cost nothing per step:
they live only in params, the state holds no copy (``state.features`` is None) and
the observation's ``features``, ``available`` and ``scores`` depend on params only,
so under ``vmap`` with unbatched params they stay unbatched (the engine keeps them
as ONE f32[N, D] for all streams). ``feature_noise`` is then ignored (the default
params set it to 0). With ``perturb_features=True`` every step redraws the noise
for each stream and ``state.features`` f32[N, D] holds the features shown.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

import numpy as np

from rec_jax.sim import _checks
from rec_jax.sim.base import Simulator, SimulatorInfo, StepOutput, as_slate, best_slate_sum, fixed_observation

LINKS = ("linear", "logistic")


@struct.dataclass
class LinearParams:
    item_features: jax.Array  # f32[N, D] fixed item features (rows normalised after perturbation)
    feature_noise: jax.Array  # f32[] std of the per-step feature perturbation, >= 0 (perturb_features=True only)
    theta_mean: jax.Array  # f32[D] mean of the hidden parameter
    theta_std: jax.Array  # f32[] per-stream spread of theta around theta_mean, >= 0
    bias: jax.Array  # f32[] intercept added to <x, theta>
    noise_std: jax.Array  # f32[] reward noise std (linear link only), >= 0


@struct.dataclass
class LinearState:
    t: jax.Array  # int32[] steps taken so far
    theta: jax.Array  # f32[D] this stream's hidden parameter
    # f32[N, D] features of the current step (what obs showed) with perturb_features=True;
    # None with fixed features (they are params.item_features).
    features: jax.Array | None = None


def validate_params(params: LinearParams, spec=None) -> LinearParams:
    """Host-side check against ``spec`` (a SimSpec, optional); one-line ValueError naming the bad field."""
    feats = _checks.finite(params.item_features, "LinearParams.item_features")
    if feats.ndim < 2:
        raise ValueError(f"LinearParams.item_features: expected shape [N, D], got {feats.shape}")
    if spec is not None:
        _checks.last_dim(feats, "LinearParams.item_features", spec.num_items, ndim=2)
        _checks.last_dim(feats, "LinearParams.item_features", spec.feature_dim)
    _checks.last_dim(params.theta_mean, "LinearParams.theta_mean", feats.shape[-1])
    _checks.finite(params.theta_mean, "LinearParams.theta_mean")
    _checks.in_range(params.feature_noise, "LinearParams.feature_noise", 0.0)
    _checks.in_range(params.theta_std, "LinearParams.theta_std", 0.0)
    _checks.finite(params.bias, "LinearParams.bias")
    _checks.in_range(params.noise_std, "LinearParams.noise_std", 0.0)
    return params


def _normalise(x: jax.Array) -> jax.Array:
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-6)


def expected_rewards(features: jax.Array, theta: jax.Array, bias: jax.Array, link: str) -> jax.Array:
    """Expected reward of every item, f32[N], from features f32[N, D] and theta f32[D]."""
    logits = features @ theta + bias
    return jax.nn.sigmoid(logits) if link == "logistic" else logits


def make_linear(
    num_items: int = 20,
    dim: int = 8,
    link: str = "linear",
    seed: int = 0,
    theta_scale: float = 1.0,
    perturb_features: bool = False,
) -> tuple[Simulator, LinearParams]:
    """Build a linear or logistic contextual bandit.

    Args:
      num_items: N arms (static).
      dim: D feature width (static).
      link: "linear" (Gaussian noise) or "logistic" (Bernoulli with sigmoid link).
      seed: seed of the default item features (standard normal rows, normalised).
      theta_scale: default ``theta_std``; theta_mean defaults to zeros, so each
        stream has its own random theta with <x, theta> ~ N(0, theta_scale^2).
      perturb_features: static. False (default): the item features are the fixed
        ``params.item_features`` (no per-step cost, no per-stream copy;
        ``feature_noise`` is ignored). True: each step and stream shows
        ``normalise(item_features + feature_noise * N(0, I))``.
    Returns:
      (Simulator, default LinearParams) with feature_noise 0, bias 0, noise_std 0.1.
    """
    if link not in LINKS:
        raise ValueError(f"make_linear: link must be one of {LINKS}, got {link!r}")
    if num_items < 1 or dim < 1:
        raise ValueError(f"make_linear: num_items and dim must be >= 1, got {num_items}, {dim}")

    def features_at(key, params):
        noise = jnp.maximum(params.feature_noise, 0.0)
        eps = jax.random.normal(key, params.item_features.shape, jnp.float32)
        return _normalise(params.item_features + noise * eps)

    observe = fixed_observation  # available / scores are constants: unbatched under vmap.

    def reset(key: jax.Array, params: LinearParams):
        theta_key, feat_key = jax.random.split(key)
        z = jax.random.normal(theta_key, (dim,), jnp.float32)
        theta = params.theta_mean + jnp.maximum(params.theta_std, 0.0) * z
        t0 = jnp.zeros((), jnp.int32)
        if not perturb_features:
            features = params.item_features.astype(jnp.float32)
            return observe(features), LinearState(t=t0, theta=theta)
        features = features_at(feat_key, params)
        return observe(features), LinearState(t=t0, theta=theta, features=features)

    def step(key: jax.Array, state: LinearState, action: jax.Array, params: LinearParams):
        # Fixed features: the step's one key draws the rewards (a split would hash two words
        # per stream every step, its own XLA:CPU loop in the engine, for a key never used).
        reward_key, feat_key = jax.random.split(key) if perturb_features else (key, None)
        slate = as_slate(action)
        shown = params.item_features.astype(jnp.float32) if not perturb_features else state.features
        means = expected_rewards(shown, state.theta, params.bias, link)
        mean = means[slate]
        if link == "logistic":
            slot_rewards = jax.random.bernoulli(reward_key, mean).astype(jnp.float32)
        else:
            noise = jnp.maximum(params.noise_std, 0.0) * jax.random.normal(reward_key, slate.shape, jnp.float32)
            slot_rewards = mean + noise
        out = StepOutput(
            reward=jnp.sum(slot_rewards),
            click=jnp.any(slot_rewards > 0).astype(jnp.float32),
            expected_reward=jnp.sum(mean),
            best_expected_reward=best_slate_sum(means, slate.shape[0]),
            slot_rewards=slot_rewards,
        )
        if not perturb_features:
            return observe(shown), LinearState(t=state.t + 1, theta=state.theta), out
        features = features_at(feat_key, params)
        new_state = LinearState(t=state.t + 1, theta=state.theta, features=features)
        return observe(features), new_state, out

    feats = jax.random.normal(jax.random.key(seed), (num_items, dim), jnp.float32)
    params = LinearParams(
        item_features=_normalise(feats),
        feature_noise=jnp.float32(0.0),
        theta_mean=jnp.zeros((dim,), jnp.float32),
        theta_std=jnp.float32(theta_scale),
        bias=jnp.float32(0.0),
        noise_std=jnp.float32(0.1),
    )
    return Simulator(reset=reset, step=step, num_items=num_items, feature_dim=dim), params


SIMULATOR = SimulatorInfo(
    make=make_linear,
    params=LinearParams,
    validate=validate_params,
    kind="contextual",
    slates="any",
    study_kwargs=lambda num_items, dim, num_arms: {"num_items": num_items, "dim": dim},
    test_kwargs={"num_items": 5, "dim": 3},
    bad_params=(("noise_std", np.float32(-0.1)), ("theta_mean", np.zeros(2, np.float32)),
                ("feature_noise", np.float32(np.inf))),
)
