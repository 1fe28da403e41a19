"""The scenarios and variants of experiments/adaptive.py, run on the engine.

``build`` makes the epsilon-greedy engines and the three scenarios' env params
(stacked: they are data, so every scenario runs in one jit); ``run_all`` runs every
variant (the fixed grid, the meta-bandits, PBT, the drift reset) over scenarios x seeds,
one jit per method, and returns the per-step stream-mean rewards and the traces.
"""
from __future__ import annotations

import time

import numpy as np

SCENARIOS = ("stationary", "gradual_drift", "abrupt_drift")
META_METHODS = ("ts", "exp3")


def build(settings: dict):
    """(engine, drift engine, env params stacked over the 3 scenarios, eps-greedy params class)."""
    import jax
    import jax.numpy as jnp

    from rec_jax.adapt.drift_reset import make_drift_reset
    from rec_jax.online import EngineConfig, make_run
    from rec_jax.policies import make_policy
    from rec_jax.policies.base import PolicySpec
    from rec_jax.sim.recsys import make_ml100k_env, make_synthetic_recsys_env

    if settings.get("data", "synthetic") == "synthetic":
        sim, params = make_synthetic_recsys_env(num_users=settings["num_users"], num_items=settings["num_items"],
                                                dim=settings["dim"], seed=settings["seed"], slate_size=1,
                                                shift_mode="negate")
    else:  # the recommender env fitted to a dataset or the user's log (rec_jax.sim.recsys_fit)
        sim, params = make_ml100k_env(data=settings["data"], slate_size=1, shift_mode="negate")
    spec = PolicySpec(num_items=sim.num_items, feature_dim=sim.feature_dim, slate_size=1)
    policy, _ = make_policy("epsilon_greedy", spec)
    config = EngineConfig(num_streams=settings["streams"])
    engine = make_run(config, policy, sim, spec=spec)
    drift_engine = make_run(config, make_drift_reset(policy, spec, "epsilon"), sim, spec=spec)
    no_shift = jnp.array([-1], jnp.int32)
    scen = [params.replace(drift_std=jnp.float32(0.0), shift_steps=no_shift),
            params.replace(drift_std=jnp.float32(settings["drift_std"]), shift_steps=no_shift),
            params.replace(drift_std=jnp.float32(0.0), shift_steps=jnp.array([settings["shift_step"]], jnp.int32))]
    for p in scen:
        engine.validate(_eps(settings["grid"][0]), p)
    env_params = jax.tree.map(lambda *xs: jnp.stack(xs), *scen)
    return engine, drift_engine, env_params


def _eps(e):
    from rec_jax.policies.epsilon_greedy import EpsilonGreedyParams

    return EpsilonGreedyParams(epsilon=e)


def run_all(settings: dict) -> dict[str, np.ndarray]:
    """Per-step stream-mean rewards f32[3, seeds, T] of every variant, plus traces."""
    import jax
    import jax.numpy as jnp

    from rec_jax.adapt import page_hinkley
    from rec_jax.adapt.drift_reset import DriftResetParams
    from rec_jax.adapt.meta_bandit import MetaBanditParams
    from rec_jax.adapt.meta_run import grid_params, make_meta_run
    from rec_jax.adapt.pbt import PBTConfig, make_pbt_run

    engine, drift_engine, env_params = build(settings)
    steps, grid = settings["steps"], settings["grid"]
    root = jax.random.key(settings["seed"])
    keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(jnp.arange(settings["seeds"]))
    grid_p = grid_params([_eps(e) for e in grid])
    over_scen_seeds = lambda f: jax.jit(jax.vmap(jax.vmap(f, in_axes=(None, 0)), in_axes=(0, None)))  # noqa: E731
    out, timings = {}, {}

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        res = jax.device_get(fn(*args))
        timings[name] = time.perf_counter() - t0
        print(f"  {name:>24s} {timings[name]:6.1f}s", flush=True)
        return res

    # Fixed settings: scenarios x grid x seeds in one jit (params and env params are data).
    def fixed(env_p, key):
        def one(p):
            _, m = engine.run(key, p, env_p, steps)
            return m["reward"].mean(axis=1)
        return jax.vmap(one)(grid_p)  # [G, T]

    rewards = timed("fixed", over_scen_seeds(fixed), env_params, keys)  # [3, seeds, G, T]
    for g, name in enumerate(settings["variants"][:len(grid)]):
        out[name] = rewards[:, :, g]

    for method in META_METHODS:
        meta = make_meta_run(engine, grid_p, settings["period"], method)
        mp = MetaBanditParams(gamma=settings["exp3_gamma"], eta=settings["exp3_eta"],
                              noise_std=settings["meta_noise_std"], prior_std=settings["meta_prior_std"],
                              discount=settings["meta_discount"])
        mp.validate()

        def meta_fn(env_p, key, meta=meta, mp=mp):
            _, o = meta(key, env_p, mp, steps // settings["period"])
            return o["reward"], o["arm"]

        r, arm = timed(f"adaptive_meta_{method}", over_scen_seeds(meta_fn), env_params, keys)
        out[f"adaptive_meta_{method}"] = r
        out[f"trace/meta_{method}/epsilon"] = np.asarray(grid, np.float32)[arm]  # [3, seeds, P]

    m = settings["pbt_members"]
    # PBT searches the grid's range, the meta-bandits' search space.
    pbt = make_pbt_run(engine, PBTConfig(fields=("epsilon",), low=(min(grid),), high=(max(grid),),
                                         interval=settings["pbt_interval"]))
    pop = _eps(jnp.asarray([grid[i % len(grid)] for i in range(m)], jnp.float32))
    pop = pop.replace(decay=jnp.zeros((m,), jnp.float32), initial_value=jnp.zeros((m,), jnp.float32))

    def pbt_fn(env_p, key):
        _, o = pbt(key, pop, env_p, steps // settings["pbt_interval"])
        return o["reward"].mean(axis=1), o["params/epsilon"]

    r, eps_trace = timed("adaptive_pbt", over_scen_seeds(pbt_fn), env_params, keys)
    out["adaptive_pbt"] = r
    out["trace/pbt/epsilon"] = eps_trace  # [3, seeds, R, M]

    from rec_jax.adapt.page_hinkley import PageHinkleyParams

    threshold = page_hinkley.threshold_for_rate(settings["false_alarm"], steps, settings["ph_delta"], sides=1)
    dp = DriftResetParams(base=_eps(settings["drift_epsilon"]),
                          detector=PageHinkleyParams(delta=settings["ph_delta"], threshold=threshold,
                                                     direction="down"),
                          boost=settings["boost"], boost_steps=settings["boost_steps"])
    drift_engine.validate(dp, jax.tree.map(lambda x: x[0], env_params))

    def drift_fn(env_p, key):
        rs, o = drift_engine.run(key, dp, env_p, steps)
        return o["reward"].mean(axis=1), rs.policy_state.alarms  # [T], [S]

    r, alarms = timed("adaptive_drift_reset", over_scen_seeds(drift_fn), env_params, keys)
    out["adaptive_drift_reset"] = r
    out["trace/drift_reset/alarms"] = alarms  # [3, seeds, S]
    out["_timings"] = timings
    out["_threshold"] = threshold
    return out
