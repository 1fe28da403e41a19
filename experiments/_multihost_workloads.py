"""What one process of ``experiments/multihost.py`` runs; the same code in one process or in N.

Each workload returns host NumPy results (gathered to every process, written by
process 0) that the launcher compares between the N-process run and the
one-process run on as many forced host devices:

* ``linucb_run(mode)``: the LinUCB engine on the ``linear`` env, streams split
  over the global ``"streams"`` mesh; per-stream reward sums f64[S], the logged
  actions int32[T, S] and the final policy / env state leaves.
* ``model_backed_run``: a small SASRec behind neural-linear UCB (shared mode) on
  the recommender env with observed histories.
* ``population_run``: a 4-member PBT population (epsilon-greedy, one member per
  device over a ``"members"`` mesh), each process building the hyperparameters
  of its own members only (``from_process_local``).
* ``population_train_run``: one epoch of a 4-member training population of a
  tiny SASRec, members split over the ``"members"`` mesh.
"""
from __future__ import annotations

import time

import jax
import numpy as np

from rec_jax.distributed.arrays import from_process_local, gather, global_mesh, process_rows
from rec_jax.distributed.engine import init_sharded, streams_mesh
from rec_jax.online import EngineConfig, make_run
from rec_jax.policies import make_policy
from rec_jax.policies.base import PolicySpec
from rec_jax.sim import make_env


def _state_leaves(prefix: str, tree) -> dict[str, np.ndarray]:
    """{prefix/path: host array} of a gathered pytree."""
    return {f"{prefix}{jax.tree_util.keystr(p)}": np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(tree)}


def linucb_engine(mode: str, streams: int, items: int, dim: int, seed: int, log: bool = True):
    sim, env_params = make_env("linear", num_items=items, dim=dim, seed=seed)
    policy, params = make_policy("linucb", PolicySpec(num_items=items, feature_dim=dim))
    config = EngineConfig(num_streams=streams, mode=mode, log_tuples=log, log_context="none", log_marginal=False)
    # Each device steps its own streams (shard_map): no cross-process collective per step.
    return make_run(config, policy, sim, mesh=streams_mesh()), params, env_params


def linucb_run(mode: str, streams: int, steps: int, items: int, dim: int, seed: int) -> dict[str, np.ndarray]:
    """LinUCB engine, ``streams`` split over every process's devices, ``steps`` steps."""
    run, params, env_params = linucb_engine(mode, streams, items, dim, seed)
    state = init_sharded(run, jax.random.key(seed), params, env_params, streams_mesh())
    state, metrics = jax.jit(run.run_chunk, static_argnums=1)(state, steps)
    state, metrics = gather((state, metrics))
    return {"reward_sum": metrics["reward"].astype(np.float64).sum(axis=0), "action": metrics["log"]["action"],
            **_state_leaves("policy_state", state.policy_state), **_state_leaves("env_state", state.env_state)}


def linucb_throughput(streams: int, steps: int, items: int, dim: int, seed: int, repeats: int = 3) -> float:
    """Per-stream LinUCB user-steps/s over all processes: the best of ``repeats`` timed calls after compiling."""
    run, params, env_params = linucb_engine("per_stream", streams, items, dim, seed, log=False)
    mesh = streams_mesh()

    def chunk(rs):  # only the per-stream reward totals leave the jit, as bench_engine.py does
        rs, m = run.run_chunk(rs, steps)
        return rs, m["reward"].sum(axis=0)

    fn = jax.jit(chunk, donate_argnums=0)
    jax.block_until_ready(fn(init_sharded(run, jax.random.key(seed), params, env_params, mesh)))
    best = float("inf")
    for r in range(repeats):  # best of a few: the cores are shared with other jobs
        state = init_sharded(run, jax.random.key(seed + 1 + r), params, env_params, mesh)
        jax.block_until_ready(state)
        t0 = time.perf_counter()
        jax.block_until_ready(fn(state))
        best = min(best, time.perf_counter() - t0)
    return streams * steps / best


def model_backed_run(streams: int, steps: int, seed: int) -> dict[str, np.ndarray]:
    """Neural-linear UCB on a small (untrained) SASRec's user states, shared mode."""
    from rec_jax.models import make_model
    from rec_jax.models.sasrec import SASRecConfig
    from rec_jax.online.large_model import model_policy
    from rec_jax.sim.ground_truth import synthetic_ground_truth
    from rec_jax.sim.recsys import make_recsys_env

    n, users, length, k = 12, 6, 5, 2
    gt = synthetic_ground_truth(jax.random.key(0), users, n, 3)  # a ground truth the env can calibrate
    hist = np.asarray(jax.random.randint(jax.random.key(seed + 1), (users, length), 1, n + 1), np.int32)
    sim, env_params = make_recsys_env(gt, slate_size=k, history_len=length, initial_history=hist,
                                      observe_history=True)
    model = make_model("sasrec", SASRecConfig(num_items=n, max_len=length, dim=8, num_layers=1, num_heads=1,
                                              ff_dim=16))
    encoder = model.init(jax.random.key(seed + 2))
    policy, params, spec, mode = model_policy("neural_linear_ucb", model, encoder, n, k, jax.random.key(seed + 3))
    config = EngineConfig(num_streams=streams, slate_size=k, mode=mode, log_tuples=True, log_context="none",
                          log_marginal=False)
    run = make_run(config, policy, sim, spec=spec)
    state = init_sharded(run, jax.random.key(seed + 4), params, env_params, streams_mesh())
    state, metrics = jax.jit(run.run_chunk, static_argnums=1)(state, steps)
    state, metrics = gather((state, metrics))
    return {"reward_sum": metrics["reward"].astype(np.float64).sum(axis=0), "action": metrics["log"]["action"],
            **_state_leaves("policy_state", state.policy_state)}


def population_run(members: int, streams: int, interval: int, rounds: int, seed: int) -> dict[str, np.ndarray]:
    """PBT of epsilon over ``members`` members split over a global ``"members"`` mesh."""
    from rec_jax.adapt.pbt import PBTConfig, make_pbt_run
    from rec_jax.policies.epsilon_greedy import EpsilonGreedyParams
    from rec_jax.sim.recsys import make_synthetic_recsys_env

    sim, env_params = make_synthetic_recsys_env(num_items=20, slate_size=1, seed=seed)
    spec = PolicySpec(num_items=sim.num_items, feature_dim=sim.feature_dim, slate_size=1)
    policy, _ = make_policy("epsilon_greedy", spec)
    engine = make_run(EngineConfig(num_streams=streams), policy, sim, spec=spec)
    mesh = global_mesh("members")
    # Each process builds the hyperparameters of its own members only (its rows of [M]).
    rows = process_rows(members, mesh)
    eps = np.geomspace(0.01, 0.5, members).astype(np.float32)[rows]
    local = EpsilonGreedyParams(epsilon=eps, decay=np.zeros_like(eps), initial_value=np.zeros_like(eps))
    population = from_process_local(local, mesh, members)
    pbt = make_pbt_run(engine, PBTConfig(interval=interval))
    pop, out = jax.jit(pbt, static_argnums=3)(jax.random.key(seed), population, env_params, rounds)
    pop, out = gather((pop, out))
    return {**{k: np.asarray(v) for k, v in out.items()}, **_state_leaves("policy_state", pop.policy_state)}


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def scale_run(mode: str, streams: int, chunk: int, steps: int, items: int, dim: int, seed: int) -> dict:
    """``streams`` LinUCB streams, ``chunk`` at a time over every process's devices.

    Chunk c is the engine run with key ``fold_in(key, c)`` (as ``bench_engine.py
    --stream-chunk``); a process only ever holds its devices' part of one chunk.
    Returns the reward total (f64), user-steps/s and every process's peak RSS (MB).
    """
    from jax.experimental import multihost_utils

    if streams % chunk:
        raise ValueError(f"--stream-chunk {chunk} must divide --streams {streams}")
    run, params, env_params = linucb_engine(mode, chunk, items, dim, seed, log=False)
    mesh = streams_mesh()

    def chunk_fn(rs):  # only the per-stream reward totals leave the jit
        rs, m = run.run_chunk(rs, steps)
        return rs, m["reward"].sum(axis=0)

    fn = jax.jit(chunk_fn, donate_argnums=0)
    root = jax.random.key(seed)
    total, run_s, compile_s = 0.0, 0.0, 0.0
    for c in range(streams // chunk):
        state = init_sharded(run, jax.random.fold_in(root, c), params, env_params, mesh)
        jax.block_until_ready(state)
        t0 = time.perf_counter()
        state, rewards = fn(state)
        jax.block_until_ready(rewards)
        if c == 0:
            compile_s = time.perf_counter() - t0
        else:
            run_s += time.perf_counter() - t0
        total += float(gather(rewards).astype(np.float64).sum())
        del state, rewards
    rss = multihost_utils.process_allgather(np.asarray([_peak_rss_mb()]))
    timed = streams - chunk  # the first chunk also compiled
    return {"streams": streams, "stream_chunk": chunk, "steps": steps, "items": items, "dim": dim, "mode": mode,
            "final_reward_sum": total, "first_chunk_s": compile_s, "run_s": run_s,
            "user_steps_per_s": timed * steps / run_s if run_s > 0 else None,
            "peak_rss_mb_per_process": [float(x) for x in np.ravel(rss)],
            "peak_rss_mb_total": float(np.sum(rss))}


def resume_run(mode: str, streams: int, steps: int, items: int, dim: int, seed: int, ckpt_dir, chunk_steps: int,
               die_process: int | None, die_after_step: int | None) -> dict[str, np.ndarray]:
    """A checkpointed LinUCB run (:func:`rec_jax.distributed.checkpoint.run_with_checkpoints`)."""
    import os
    import signal

    from rec_jax.distributed.checkpoint import run_with_checkpoints

    run, params, env_params = linucb_engine(mode, streams, items, dim, seed)

    def after_chunk(step):
        if jax.process_index() == die_process and step == die_after_step:
            os.kill(os.getpid(), signal.SIGKILL)  # as a preempted host: no cleanup, no goodbye

    state, metrics = run_with_checkpoints(run, jax.random.key(seed), params, env_params, steps, ckpt_dir=ckpt_dir,
                                          chunk_size=chunk_steps, mesh=streams_mesh(), after_chunk=after_chunk)
    state = gather(state)
    return {"reward": metrics["reward"], "action": metrics["log"]["action"],
            **_state_leaves("policy_state", state.policy_state), **_state_leaves("env_state", state.env_state)}


def population_train_run(seed: int) -> dict[str, np.ndarray]:
    """One epoch (3 AdamW steps) of a 4-member population of a tiny SASRec
    (``rec_jax.train.population``), the member axis split over a global ``"members"`` mesh.

    Each process holds its members' params and optimizer state (its rows of [P]) and
    the full synthetic windows every member trains on (replicated). Returns the
    per-member loss f32[P] and the trained params leaves [P, ...].
    """
    import dataclasses

    from rec_jax.distributed.arrays import replicated
    from rec_jax.models import make_model
    from rec_jax.train.config import get_preset, model_config
    from rec_jax.train.population import init_population, make_population_epoch, population_hparams
    from rec_jax.train.trainer import TrainState

    base = dataclasses.replace(get_preset("tiny-sasrec"), batch_size=16, seed=seed)
    configs = [dataclasses.replace(base, learning_rate=lr, weight_decay=wd, dropout=dr, attn_dropout=ad)
               for lr, wd, dr, ad in ((1e-3, 0.0, 0.0, 0.0), (3e-3, 0.1, 0.1, 0.0), (1e-2, 0.0, 0.3, 0.1),
                                      (5e-3, 0.05, 0.2, 0.2))]
    base, hparams = population_hparams(configs)
    num_items, num_windows, length = 30, 48, base.max_len
    model = make_model(base.model, model_config(base, num_items))
    # The data every member sees (generated identically on each process, as if read from shared storage).
    rng = np.random.default_rng(seed)
    windows = rng.integers(1, num_items + 1, (num_windows, length + 1)).astype(np.int32)
    mask = np.ones((num_windows, length), bool)

    mesh = global_mesh("members")
    members = hparams.size
    rows = process_rows(members, mesh)
    init_key, data_key, step_key = jax.random.split(jax.random.key(seed), 3)
    full = jax.device_get(init_population(model, hparams, init_key))  # tiny: every process may build it
    state = TrainState(params=from_process_local(jax.tree.map(lambda x: x[rows], full.params), mesh, members),
                       opt_state=from_process_local(jax.tree.map(lambda x: x[rows], full.opt_state), mesh, members),
                       step=replicated(full.step, mesh))
    hp = from_process_local(jax.tree.map(lambda x: np.asarray(x)[rows], hparams), mesh, members)
    epoch = make_population_epoch(model, base, num_windows, 16)
    state, loss = epoch(state, hp, replicated(windows, mesh), replicated(mask, mesh), data_key, step_key)
    state, loss = gather((state, loss))
    return {"loss": np.asarray(loss), **_state_leaves("params", state.params)}
