"""Population-based training (Jaderberg et al. 2017) of online-run hyperparameters, in one jit.

A population of M members is ONE pytree with a leading [M] axis: M engine
``RunState``s, each with its own ``policy_params`` (learning rate, exploration,
prior scale ... any float field of the policy's params). The population runs as
one ``vmap`` of ``engine.run_chunk``; every ``interval`` steps (default 50)

* exploit: the members whose reward over the last interval ranks in the bottom
  ``fraction`` copy the policy state and the params of a member drawn uniformly
  from the top ``fraction`` (truncation selection);
* explore: each copied field is multiplied by a factor drawn from
  ``perturb_factors`` and clipped into its bounds.

The members are parallel worlds on the same users (one reset key), each with
its own run key (own clicks, own drift steps). With ``same_noise`` they share the
run key too (common random numbers): members differ only through their params,
but copies are then exact clones that act alike, and the population loses its
diversity (in experiments/adaptive.py that cost it most of its reward after an
abrupt drift), so it is off by default. A member's env state is never
copied, only what the policy learned and its params. The whole run (all
intervals) is one ``lax.scan``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.online.engine import Run


@dataclasses.dataclass(frozen=True)
class PBTConfig:
    """Static PBT settings (hashable)."""

    fields: tuple[str, ...] = ("epsilon",)  # float fields of the policy params that PBT tunes
    low: tuple[float, ...] = (0.0,)  # lower bound of each field
    high: tuple[float, ...] = (1.0,)  # upper bound of each field
    interval: int = 50  # steps between exploit/explore rounds
    fraction: float = 0.25  # bottom fraction copies from the top fraction
    perturb_factors: tuple[float, ...] = (0.8, 1.25)  # explore: multiply a copied field by one of these
    same_noise: bool = False  # True: members share the run key (common random numbers); False: own key each

    def validate(self) -> None:
        if not self.fields or not (len(self.fields) == len(self.low) == len(self.high)):
            raise ValueError(f"PBTConfig.fields/low/high: expected equal non-empty lengths, got "
                             f"{len(self.fields)}, {len(self.low)}, {len(self.high)}")
        if any(lo > hi for lo, hi in zip(self.low, self.high)):
            raise ValueError(f"PBTConfig.low: expected each <= high, got {self.low} and {self.high}")
        if self.interval < 1:
            raise ValueError(f"PBTConfig.interval: expected >= 1, got {self.interval}")
        if not 0.0 < self.fraction <= 0.5:
            raise ValueError(f"PBTConfig.fraction: expected in (0, 0.5], got {self.fraction}")
        if not self.perturb_factors or min(self.perturb_factors) <= 0:
            raise ValueError(f"PBTConfig.perturb_factors: expected positive factors, got {self.perturb_factors}")


def num_replaced(population: int, fraction: float) -> int:
    """How many members are replaced each round (at least 1 when M >= 2)."""
    return min(max(int(np.floor(fraction * population)), 1 if population >= 2 else 0), population // 2)


def exploit_explore(key: jax.Array, state: Any, params: Any, scores: jax.Array, config: PBTConfig):
    """One PBT round over a population with leading [M] axis.

    Args:
      key: PRNG key.
      state: pytree, leaves [M, ...] (what exploit copies, e.g. the policy states).
      params: params dataclass, leaves [M, ...]; ``config.fields`` are perturbed.
      scores: f32[M], higher is better (e.g. reward over the last interval).
    Returns:
      (state, params, parent int32[M]): member i now holds member parent[i]'s
      state exactly (parent[i] = i for the members kept).
    """
    m = scores.shape[0]
    q = num_replaced(m, config.fraction)
    parent_key, factor_key = jax.random.split(key)
    order = jnp.argsort(scores)  # ascending: order[:q] worst, order[-q:] best
    parent = jnp.arange(m, dtype=jnp.int32)
    if q > 0:
        donors = order[m - q:][jax.random.randint(parent_key, (q,), 0, q)]
        parent = parent.at[order[:q]].set(donors.astype(jnp.int32))
    copied = parent != jnp.arange(m)
    state = jax.tree.map(lambda x: x[parent], state)
    params = jax.tree.map(lambda x: x[parent], params)
    factors = jnp.asarray(config.perturb_factors, jnp.float32)
    changes = {}
    for j, (name, lo, hi) in enumerate(zip(config.fields, config.low, config.high)):
        value = getattr(params, name)
        pick = jax.random.randint(jax.random.fold_in(factor_key, j), value.shape, 0, factors.shape[0])
        shape = (m,) + (1,) * (value.ndim - 1)
        perturbed = jnp.clip(value * factors[pick], lo, hi).astype(value.dtype)
        changes[name] = jnp.where(copied.reshape(shape), perturbed, value)
    return state, params.replace(**changes), parent


def make_pbt_run(engine: Run, config: PBTConfig) -> Callable:
    """``pbt_run(key, population_params, env_params, num_rounds) -> (RunState[M], out)``.

    population_params: the policy params with a leading [M] axis (M >= 2).
    num_rounds (static): the run lasts num_rounds * config.interval steps.
    out: reward f32[T, M] and regret f32[T, M] (stream means per step per member),
    params f32[R, M] per tuned field (``params/<field>``, after each round's
    explore), parent int32[R, M].
    """
    config.validate()

    def pbt_run(key, population_params, env_params, num_rounds: int):
        m = jax.tree.leaves(population_params)[0].shape[0]
        pbt_key = jax.random.fold_in(key, 0x504254)
        # One reset key for all members (same users); own run keys unless same_noise.
        pop = jax.vmap(engine.init_run, in_axes=(None, 0, None))(key, population_params, env_params)
        if not config.same_noise:
            pop = pop.replace(key=jax.vmap(lambda i: jax.random.fold_in(pop.key[0], i))(jnp.arange(m)))
        # A zero-step chunk settles the obs layout run_chunk carries (per-stream leaves).
        pop, _ = jax.vmap(lambda rs: engine.run_chunk(rs, 0))(pop)

        def round_fn(pop, r):
            pop, metrics = jax.vmap(lambda rs: engine.run_chunk(rs, config.interval))(pop)
            reward = metrics["reward"].mean(axis=2)  # [M, interval]
            scores = reward.mean(axis=1)
            policy_state, params, parent = exploit_explore(
                jax.random.fold_in(pbt_key, r), pop.policy_state, pop.policy_params, scores, config)
            pop = pop.replace(policy_state=policy_state, policy_params=params)
            trace = {f"params/{f}": getattr(params, f) for f in config.fields}
            return pop, (reward.T, metrics["regret"].mean(axis=2).T, trace, parent)

        pop, (reward, regret, trace, parent) = jax.lax.scan(round_fn, pop, jnp.arange(num_rounds))
        t = num_rounds * config.interval
        out = {"reward": reward.reshape(t, m), "regret": regret.reshape(t, m), "parent": parent, **trace}
        return pop, out

    return pbt_run
