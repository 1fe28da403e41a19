"""Helpers shared by the policy tests (no tests here): tiny observations and
random interaction histories, plus NumPy references of the policies' statistics."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.policies import CONTEXTUAL_POLICY_NAMES, POLICY_NAMES, Observation, PolicySpec, make_policy

N, D = 6, 4
UNAVAILABLE = 2  # the item masked out in the observation the tests act on
ITEM_MEANS = np.linspace(0.1, 0.9, N).astype(np.float32)
ALL_NAMES = POLICY_NAMES
RIDGE_NAMES = ("linucb", "lints", "squarecb")
COUNT_NAMES = tuple(n for n in POLICY_NAMES if n not in CONTEXTUAL_POLICY_NAMES)
MC_NAMES = ("thompson", "gaussian_ts", "lints")  # Monte Carlo propensities
SEQUENTIAL_NAMES = ("softmax", "squarecb")  # MC marginals for slots >= 1


def spec_for(slate_size: int, num_items: int = N, feature_dim: int = D) -> PolicySpec:
    return PolicySpec(num_items=num_items, feature_dim=feature_dim, slate_size=slate_size)


def make_obs(key, num_items=N, feature_dim=D, unavailable=UNAVAILABLE) -> Observation:
    features = jax.random.normal(key, (num_items, feature_dim))
    available = jnp.ones((num_items,), bool)
    if unavailable is not None:
        available = available.at[unavailable].set(False)
    return Observation(features=features, available=available, scores=jnp.zeros((num_items,)))


def random_history(policy, params, spec, key, num_steps):
    """Update ``policy`` on ``num_steps`` uniformly random slates with noisy Bernoulli rewards.

    Returns (final state, (features f32[T, N, D], actions, rewards)); rewards are
    f32[T] for K = 1 and f32[T, K] for slates (the per-slot rewards).
    """
    k = spec.slate_size
    init_key, key = jax.random.split(key)
    state = policy.init(init_key, spec)

    n, d = spec.num_items, spec.feature_dim
    item_means = jnp.asarray(ITEM_MEANS[:n])

    def step(state, step_key):
        # One uniform draw per step (few PRNG calls keep compile times down).
        u = jax.random.uniform(step_key, (n * d + n + 2 * k,))
        features = (u[: n * d].reshape(n, d) - 0.5) * 3.4  # roughly unit variance
        obs = Observation(features=features, available=jnp.ones((n,), bool), scores=jnp.zeros((n,)))
        action = jnp.argsort(u[n * d : n * d + n])[:k].astype(jnp.int32)  # a uniform random slate
        clicks = (u[n * d + n : n * d + n + k] < item_means[action]).astype(jnp.float32)
        reward = clicks + 0.5 * (u[n * d + n + k :] - 0.5)
        if k == 1:
            action, reward = action[0], reward[0]
        state = policy.update(step_key, state, obs, action, reward, params)
        return state, (obs.features, action, reward)

    return jax.lax.scan(step, state, jax.random.split(key, num_steps))


NUM_HISTORY = 30
NUM_KEYS = 4000


@functools.lru_cache(maxsize=None)
def behaviour(name: str) -> dict:
    """One jit per policy: random histories for K = 1 and K = 3, then ``act`` on a
    fixed observation over NUM_KEYS keys. Returned as NumPy."""
    out = {}
    fns = {}
    for k in (1, 3):
        spec = spec_for(k)
        policy, params = make_policy(name, spec)
        fns[k] = (policy, params, spec)

    @jax.jit
    def run(key):
        res = {}
        for k, (policy, params, spec) in fns.items():
            hist_key, obs_key, act_key = jax.random.split(jax.random.fold_in(key, k), 3)
            state, hist = random_history(policy, params, spec, hist_key, NUM_HISTORY)
            obs = make_obs(obs_key)
            keys = jax.random.split(act_key, NUM_KEYS)
            action, info = jax.vmap(policy.act, in_axes=(0, None, None, None))(keys, state, obs, params)
            res[k] = dict(state=state, hist=hist, obs=obs, keys=keys, action=action, info=info)
        return res

    res = run(jax.random.key(0))
    for k, r in res.items():
        policy, params, spec = fns[k]
        out[k] = dict(
            policy=policy,
            params=params,
            spec=spec,
            state=r["state"],
            obs=r["obs"],
            keys=r["keys"],
            features=np.asarray(r["hist"][0], np.float64),
            actions=np.asarray(r["hist"][1]),
            rewards=np.asarray(r["hist"][2], np.float64),
            action=np.asarray(r["action"]),
            propensity=np.asarray(r["info"].propensity, np.float64),
            marginal=np.asarray(r["info"].marginal, np.float64),
            num_mc_samples=np.asarray(r["info"].num_mc_samples),
        )
    return out


# ----------------------------------------------------------------------------- NumPy references


def np_counts(actions, rewards, n=N, clip=False):
    """(counts, sums) of a history; actions [T] or [T, K], rewards alike."""
    a = np.reshape(actions, (-1,))
    r = np.reshape(rewards, (-1,)).astype(np.float64)
    if clip:
        r = np.clip(r, 0.0, 1.0)
    counts = np.zeros(n)
    sums = np.zeros(n)
    np.add.at(counts, a, 1.0)
    np.add.at(sums, a, r)
    return counts, sums


def np_slot_contexts(features, actions, rewards):
    """Per-slot (x f64[T*K, D], r f64[T*K], item int[T*K]) of a history, in update order."""
    t = features.shape[0]
    a = np.reshape(actions, (t, -1))
    r = np.reshape(rewards, (t, -1))
    x = np.take_along_axis(features, a[:, :, None], axis=1)  # [T, K, D]
    return x.reshape(-1, features.shape[-1]), r.reshape(-1), a.reshape(-1)


def np_ridge(x, r, reg=1.0):
    gram = x.T @ x
    b = x.T @ r
    return gram, b, np.linalg.inv(gram + reg * np.eye(x.shape[1]))


def rel_frobenius(a, ref):
    return np.linalg.norm(np.asarray(a, np.float64) - ref) / np.linalg.norm(ref)


def tie_uniform_onehot(values, available):
    """Distribution uniform over the argmax ties of ``values`` among ``available``."""
    v = np.where(available, values, -np.inf)
    best = available & (v == v.max())
    return best / best.sum()
