"""PBT overhead: a population with exploit/explore every ``--interval`` steps against the
same members run as one plain vmapped batch (no exploit/explore), both one jit call.

    python -m experiments.bench_pbt                 # M = 64 members, prints the ratio
    python -m experiments.bench_pbt --members 128 --steps 1000

Both sides run M members x S streams of epsilon-greedy on the synthetic recommender
for T steps from the same population state (the M engine states PBT starts from,
one per member, keys included, so both draw the same random numbers) and return
the same per-step rewards; the plain side is one ``vmap`` of ``run_chunk`` over T
steps. Timings are the best of ``--repeats`` calls after a compiling call. Prints seconds per step of each and
the ratio PBT / plain (the issue's target: at most 1.2).
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli


@dataclasses.dataclass(frozen=True)
class Config:
    """PBT overhead benchmark."""

    members: int = 64  # M population size
    streams: int = 16  # S users per member
    steps: int = 1000  # T steps (a multiple of interval)
    interval: int = 50  # exploit/explore every this many steps
    num_items: int = 20  # items of the synthetic recommender
    repeats: int = 3  # timed calls after the compiling one (best is reported)
    seed: int = 0  # PRNG seed


def main(cfg: Config) -> dict:
    import jax
    import jax.numpy as jnp

    from rec_jax.adapt.pbt import PBTConfig, make_pbt_run
    from rec_jax.online import EngineConfig, make_run
    from rec_jax.policies import make_policy
    from rec_jax.policies.base import PolicySpec
    from rec_jax.policies.epsilon_greedy import EpsilonGreedyParams
    from rec_jax.sim.recsys import make_synthetic_recsys_env

    if cfg.members < 2 or cfg.steps % cfg.interval:
        raise ValueError(f"--members >= 2 and --steps a multiple of --interval expected, got {cfg.members}, "
                         f"{cfg.steps}, {cfg.interval}")
    sim, env_params = make_synthetic_recsys_env(num_items=cfg.num_items, slate_size=1)
    spec = PolicySpec(num_items=sim.num_items, feature_dim=sim.feature_dim, slate_size=1)
    policy, _ = make_policy("epsilon_greedy", spec)
    engine = make_run(EngineConfig(num_streams=cfg.streams), policy, sim, spec=spec)
    m = cfg.members
    pop = EpsilonGreedyParams(epsilon=jnp.geomspace(0.01, 0.5, m).astype(jnp.float32),
                              decay=jnp.zeros((m,), jnp.float32), initial_value=jnp.zeros((m,), jnp.float32))
    key = jax.random.key(cfg.seed)
    pbt = make_pbt_run(engine, PBTConfig(interval=cfg.interval))

    @jax.jit
    def with_pbt(key):
        return pbt(key, pop, env_params, cfg.steps // cfg.interval)[1]["reward"]  # [T, M]

    @jax.jit
    def plain(key):
        # The population PBT starts from: same users, a run key per member.
        members = jax.vmap(engine.init_run, in_axes=(None, 0, None))(key, pop, env_params)
        members = members.replace(key=jax.vmap(lambda i: jax.random.fold_in(members.key[0], i))(jnp.arange(m)))
        _, metrics = jax.vmap(lambda rs: engine.run_chunk(rs, cfg.steps))(members)
        return metrics["reward"].mean(axis=2).T  # [T, M]

    times = {}
    for name, fn in (("plain", plain), ("pbt", with_pbt)):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(key))
        compile_s = time.perf_counter() - t0
        best = float("inf")
        for r in range(cfg.repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(jax.random.fold_in(key, r + 1)))
            best = min(best, time.perf_counter() - t0)
        times[name] = best
        print(f"{name:>6s}: {best / cfg.steps * 1e3:8.3f} ms/step  ({best:.2f} s for {cfg.steps} steps, "
              f"{m} members x {cfg.streams} streams; first call {compile_s:.1f} s)", flush=True)
    ratio = times["pbt"] / times["plain"]
    device = jax.devices()[0]
    print(f"PBT / plain cost per step: {ratio:.3f}  (target <= 1.2; exploit/explore every {cfg.interval} steps; "
          f"{device.platform} {device.device_kind})")
    return {"plain_s": times["plain"], "pbt_s": times["pbt"], "ratio": ratio}


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
