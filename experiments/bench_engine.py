"""Throughput of the online engine, with NumPy LinUCB references on the same problem.

    python experiments/bench_engine.py --policy linucb --items 100 --dim 16 --streams 4096 --steps 200 --numpy
    python experiments/bench_engine.py --policy linucb --items 100 --dim 16 --streams 4096 --steps 200 --mode shared --numpy
    python experiments/bench_engine.py --policy linucb --dim 16 --streams 1000000 --steps 20 --stream-chunk 65536
    python experiments/bench_engine.py --policy linucb --streams 4096 --steps 200 --devices 2

Prints ONE JSON line: ``user_steps_per_s`` (S * T / run_s), ``compile_s``,
``run_s``, ``peak_rss_mb``, ``final_reward_sum``, ``state_checksum`` (sum of all
final RunState leaves in float64, key data included), ``state_bytes_per_stream``
(bytes of the per-stream leaves of the RunState, observation included, per stream)
beside ``raw_policy_bytes_per_stream`` (the policy's own arrays) and
``raw_sufficient_bytes_per_stream`` (what LinUCB minimally needs: A and b, float32).

The problem is the ``linear`` env: N items with fixed features f32[N, D] (shared
by all streams) and one hidden theta per stream, reward <x, theta> + N(0, 0.1^2).

``--numpy`` runs, in the same process on the same item features and thetas:

* ``numpy_batched``: LinUCB for all S streams at once, written to be fast.
  Per-stream mode: ``mean = Theta X^T`` and ``var = A^{-1}_flat (X (x) X)^T`` are
  two GEMMs over all streams (f32[S, D*D] x f32[D*D, N]), Sherman-Morrison
  updates of A^{-1} and theta batched over streams. Shared mode (one A, b for all
  streams, every stream scoring its own copy of the context): ``var`` is one GEMM
  f32[S*N, D] x f32[D, D], the S rank-one updates are one GEMM X_a^T X_a, then a
  Cholesky inverse of A per step (what the engine's shared mode computes).
* ``numpy_incremental`` (per-stream mode only, informative): the same, keeping
  the variances x_n^T A^{-1} x_n of every item up to date by Sherman-Morrison,
  which is only valid because the item features never change.
* ``numpy_loop``: a Python loop over streams as per-user bandit libraries do
  (one small NumPy call sequence per user and step), timed on ``--loop-streams``
  streams for ``--loop-steps`` steps and scaled to steps/s.

Roofline keys (:mod:`rec_jax.roofline`; ``--no-roofline`` skips the ~2 s of probes and
leaves the peaks and the fraction None): ``flops_per_step`` and ``bytes_per_step`` per
user-step (one stream, one step) of the MINIMAL LinUCB (``linucb_step_cost`` in
``experiments/_engine_step_costs.py``, the count is written there; epsilon-greedy:
``epsilon_greedy_step_cost``), ``xla_flops_per_step`` / ``xla_bytes_per_step`` from XLA's
``cost_analysis()`` of ONE compiled engine step divided by the streams (what the engine
actually does: the variance GEMM, the Gram update, the whole RunState read and written),
the probed ``peak_gflop_s`` / ``peak_gb_s``, ``achieved_*``, ``roofline_fraction`` and
``cpu_model``. With ``--numpy``, ``numpy_incremental_roofline_fraction`` is the same
fraction for the NumPy incremental reference (the same minimal algorithm). Policies
other than LinUCB and per-stream epsilon-greedy have no analytic count: their flops/bytes are XLA's
(``flops_source`` says so).

``--env ml100k`` (model-backed policies, :data:`rec_jax.online.large_model.VARIANTS`
names such as ``neural_linear_ts``) runs the policy on an ``ml100k-sasrec``-shaped
SASRec over the ML-100K simulator (users start from their real last L items; random
weights unless ``--model-dir``, as throughput does not depend on them; the variant's
engine mode unless ``--mode``). The engine keeps each stream's K/V ring and appends
the new item (:mod:`rec_jax.policies.model_view_cache`); ``--compare-reencode`` also
times, in the same process on the same start state, the path that re-encodes every
window in ``act`` and ``update`` (``user_steps_per_s_reencode``, ``speedup_vs_reencode``,
``reencode_*`` roofline keys). Their ``flops_per_step`` / ``bytes_per_step`` are both
the minimal incremental step's (:func:`model_step_cost`), so the two fractions compare.
XLA's count of the incremental step (``xla_flops_per_step``) includes the rebuild branches
of its two conditionals (a changed encoder, a cache miss: a full re-encode of every
stream), which a run on the recsys env never takes; it is an upper bound, not the work done.
The speedup has three parts: the appended item instead of the re-encoded window, one
view a step, and the features kept as (h, shared item table) instead of f32[S, N, D].

``--devices N`` sets ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` before
JAX is imported (it only affects the host platform, so it is harmless where an
accelerator is present) and shards the streams over the first N devices, each
stepping its own streams (``make_run(..., mesh=)``: ``jax.shard_map``, no collective
per step). The default, 0, forces one host device per CPU core this process may use
and, when JAX's backend is the CPU and the mode per-stream, runs on all of them (the
largest count that divides the streams per chunk); else on one device. On the CPU
that is the fast layout: XLA:CPU splits each op of ONE program over the cores and
waits for them op by op (LinUCB, S = 4,096, 2 cores: 2.9M user-steps/s on one device,
4.0-4.3M on two); ``devices`` in the JSON line says which ran.
``--stream-chunk C`` runs the S streams C at a time (independent streams, keys
``fold_in(key, chunk)``), so a million streams fit in memory.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Literal

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli
from experiments._engine_step_costs import epsilon_greedy_step_cost, linucb_step_cost, model_step_cost
from experiments._numpy_linucb import (numpy_batched_per_stream, numpy_batched_shared,
                                     numpy_incremental_per_stream, numpy_loop)


@dataclasses.dataclass(frozen=True)
class Config:
    """Engine throughput benchmark (one JSON line on stdout)."""

    policy: str = "linucb"  # policy name from rec_jax.policies
    items: int = 100  # N items of the linear env
    dim: int = 16  # D feature width
    streams: int = 4096  # S user streams
    steps: int = 200  # T steps per stream
    mode: str | None = None  # "per_stream" | "shared"; default per_stream (linear), the variant's (ml100k)
    env: Literal["linear", "ml100k"] = "linear"  # linear: fixed features; ml100k: a model-backed policy on SASRec
    compare_reencode: bool = False  # ml100k: also time the path that re-encodes every window (same run)
    model_dir: str | None = None  # ml100k: trained SASRec weights (train_sequential.py run); default random init
    devices: int = 0  # shard the streams over this many devices; 0: one per CPU core on the CPU (per-stream mode), else 1
    numpy: bool = False  # also time the NumPy LinUCB references on the same problem
    stream_chunk: int | None = None  # run the streams this many at a time (default: all at once)
    loop_streams: int = 64  # streams of the timed per-stream Python loop reference
    loop_steps: int = 50  # steps of the timed per-stream Python loop reference
    seed: int = 0  # root seed
    alpha: float = 1.0  # LinUCB alpha (when the policy has one)
    roofline: bool = True  # probe the machine's peak GFLOP/s and GB/s (~2 s) for roofline_fraction
    repeats: int = 3  # time every chunk (and each NumPy reference) this many times; the median counts


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _ml100k_problem(cfg: "Config", key):
    """(policy, policy params, spec, engine mode, sim, env params, model config) of the
    model-backed variant ``cfg.policy`` on the ML-100K simulator."""
    import dataclasses as dc

    from rec_jax.models import make_model
    from rec_jax.online.large_model import VARIANTS, model_env, model_policy
    from rec_jax.sim.recsys import ml100k_ground_truth
    from rec_jax.train.config import get_preset, model_config

    if cfg.policy not in VARIANTS:
        raise ValueError(f"--env ml100k: --policy must be a model-backed variant, one of {', '.join(VARIANTS)}")
    gt, seqs = ml100k_ground_truth()
    if cfg.model_dir is not None:
        from rec_jax.train.load import load_trained

        model, encoder_params, train_config = load_trained(cfg.model_dir, seqs.num_items)
    else:
        train_config = get_preset("ml100k-sasrec")
        model = make_model(train_config.model, model_config(train_config, seqs.num_items))
        encoder_params = model.init(jax_random_key(cfg.seed + 1))
    sim, env_params = model_env(seqs, gt, train_config.max_len, slate_size=1)
    policy, params, spec, mode = model_policy(cfg.policy, model, encoder_params, seqs.num_items, 1, key)
    return policy, params, spec, cfg.mode or mode, sim, env_params, dc.asdict(train_config)


def jax_random_key(seed: int):
    import jax

    return jax.random.key(seed)


# ----------------------------------------------------------------------------- engine


def _cpu_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def main(cfg: Config) -> dict:
    if cfg.devices < 0:
        raise ValueError(f"--devices: expected an int >= 0 (0: one per CPU core), got {cfg.devices}")
    host_devices = cfg.devices or _cpu_cores()
    if host_devices > 1:
        flags = os.environ.get("XLA_FLAGS", "")
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={host_devices}".strip()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from rec_jax import roofline
    from rec_jax.online import EngineConfig, make_run, shard_streams, streams_mesh
    from rec_jax.policies import make_policy
    from rec_jax.policies.base import PolicySpec
    from rec_jax.sim import make_env

    chunk = cfg.stream_chunk or cfg.streams
    if cfg.repeats < 1:
        raise ValueError(f"--repeats: expected an int >= 1, got {cfg.repeats}")
    if cfg.streams % chunk:
        raise ValueError(f"--stream-chunk {chunk} must divide --streams {cfg.streams}")
    if cfg.devices and chunk % cfg.devices:
        raise ValueError(f"--devices {cfg.devices} must divide the streams per chunk ({chunk})")
    if cfg.devices > len(jax.devices()):
        raise ValueError(f"--devices {cfg.devices}: only {len(jax.devices())} devices present")
    num_chunks = cfg.streams // chunk

    if cfg.mode not in (None, "per_stream", "shared"):
        raise ValueError(f"--mode: expected per_stream or shared, got {cfg.mode!r}")
    if cfg.env == "ml100k":
        if cfg.numpy:
            raise ValueError("--numpy: the NumPy references implement LinUCB on --env linear")
        policy, policy_params, spec, mode, sim, env_params, model_cfg = _ml100k_problem(cfg, jax.random.key(cfg.seed))
        cfg = dataclasses.replace(cfg, mode=mode, items=spec.num_items, dim=spec.feature_dim)
    else:
        if cfg.compare_reencode:
            raise ValueError("--compare-reencode: only for the model-backed policies of --env ml100k")
        cfg = dataclasses.replace(cfg, mode=cfg.mode or "per_stream")
        sim, env_params = make_env("linear", num_items=cfg.items, dim=cfg.dim, seed=cfg.seed)
        spec = PolicySpec(num_items=cfg.items, feature_dim=cfg.dim)
        policy, policy_params = make_policy(cfg.policy, spec)
        if hasattr(policy_params, "alpha"):
            policy_params = policy_params.replace(alpha=cfg.alpha)
    if not cfg.devices:  # auto: every host device on the CPU in per-stream mode, else one
        auto = math.gcd(chunk, len(jax.devices())) if jax.default_backend() == "cpu" and cfg.mode == "per_stream" else 1
        cfg = dataclasses.replace(cfg, devices=auto)
    mesh = streams_mesh(jax.devices()[: cfg.devices]) if cfg.devices > 1 else None
    engine = make_run(EngineConfig(num_streams=chunk, mode=cfg.mode), policy, sim, spec=spec, mesh=mesh)
    engine.validate(policy_params, env_params)

    def measure(engine):
        """Compile and time ``engine`` on every stream chunk: its numbers as a dict."""
        init = jax.jit(engine.init_run)

        def chunk_fn(run_state):
            # Only the reward total per stream leaves the jit; XLA drops the other metrics.
            run_state, metrics = engine.run_chunk(run_state, cfg.steps)
            return run_state, metrics["reward"].sum(axis=0)

        run_jit = jax.jit(chunk_fn, donate_argnums=0)
        root = jax.random.key(cfg.seed)

        def make_state(c):
            state = init(jax.random.fold_in(root, c), policy_params, env_params)
            return shard_streams(state, mesh, cfg.mode) if mesh is not None else state

        state0 = make_state(0)
        jax.block_until_ready(state0)
        # XLA's count of ONE engine step (a scan body is counted once, so not of the T-step scan).
        xla_step = roofline.xla_cost(lambda rs: engine.run_chunk(rs, 1)[0], state0)
        t0 = time.perf_counter()
        compiled = run_jit.lower(state0).compile()
        compile_s = time.perf_counter() - t0

        # Per-stream bytes of the RunState (the obs included), and what the policy itself holds.
        def nbytes(tree):
            return sum(x.nbytes for x in jax.tree.leaves(tree) if hasattr(x, "nbytes") and x.ndim > 0)

        per_stream_tree = (state0.env_state, state0.obs) + (() if cfg.mode == "shared" else (state0.policy_state,))
        state_bytes_per_stream = nbytes(per_stream_tree) / chunk
        raw_policy_bytes = nbytes(state0.policy_state) / (1 if cfg.mode == "shared" else chunk)

        reward_sum, checksum, run_s = 0.0, 0.0, 0.0
        thetas = []
        for c in range(num_chunks):
            # The median of ``repeats`` runs from the same state (the same result each time: the
            # first run also pays first-touch page faults, not the engine's steady state).
            times = []
            for rep in range(cfg.repeats):
                state = state0 if c == 0 and rep == 0 else make_state(c)
                jax.block_until_ready(state)
                if cfg.numpy and c == 0 and rep == 0:
                    thetas.append(np.asarray(state.env_state.theta))
                t0 = time.perf_counter()
                state, rewards = compiled(state)
                jax.block_until_ready((state, rewards))
                times.append(time.perf_counter() - t0)
                if rep + 1 < cfg.repeats:
                    del state, rewards
            run_s += float(np.median(times))
            reward_sum += float(np.asarray(rewards, np.float64).sum())
            leaves = jax.tree.leaves(state)
            checksum += sum(
                float(np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x,
                                 np.float64).sum())
                for x in leaves
            )
            del state
        return dict(run_s=run_s, compile_s=compile_s, reward_sum=reward_sum, checksum=checksum, xla_step=xla_step,
                    state_bytes_per_stream=state_bytes_per_stream, raw_policy_bytes=raw_policy_bytes, thetas=thetas)

    measured = measure(engine)
    run_s, compile_s, reward_sum, checksum = (measured[k] for k in ("run_s", "compile_s", "reward_sum", "checksum"))
    xla_step, thetas = measured["xla_step"], measured["thetas"]
    state_bytes_per_stream, raw_policy_bytes = measured["state_bytes_per_stream"], measured["raw_policy_bytes"]
    # The re-encoding path: the same policy without its view (act and update re-encode every window).
    reencode = measure(make_run(EngineConfig(num_streams=chunk, mode=cfg.mode), policy._replace(view=None), sim,
                                spec=spec)) if cfg.compare_reencode else None
    user_steps = cfg.streams * cfg.steps
    result = {
        "policy": cfg.policy,
        "mode": cfg.mode,
        "items": cfg.items,
        "dim": cfg.dim,
        "streams": cfg.streams,
        "steps": cfg.steps,
        "stream_chunk": chunk,
        "devices": cfg.devices,
        "device_kind": jax.devices()[0].device_kind,
        "user_steps_per_s": user_steps / run_s,
        "compile_s": compile_s,
        "run_s": run_s,
        "final_reward_sum": reward_sum,
        "state_checksum": checksum,
        "state_bytes_per_stream": state_bytes_per_stream,
        "raw_policy_bytes_per_stream": raw_policy_bytes,
        "raw_sufficient_bytes_per_stream": 4 * (cfg.dim * cfg.dim + cfg.dim),
    }
    xla_flops = None if xla_step["flops"] is None else xla_step["flops"] / chunk
    xla_bytes = None if xla_step["bytes"] is None else xla_step["bytes"] / chunk
    if cfg.env == "linear" and cfg.policy == "linucb":
        flops, nbytes, how = linucb_step_cost(cfg.items, cfg.dim, cfg.mode, chunk)
    elif cfg.env == "linear" and cfg.policy == "epsilon_greedy" and cfg.mode == "per_stream":
        flops, nbytes, how = epsilon_greedy_step_cost(cfg.items, cfg.dim)
    elif cfg.env == "ml100k" and cfg.policy.startswith("neural_linear_ts"):
        flops, nbytes, how = model_step_cost(cfg.items, cfg.dim, model_cfg["max_len"], model_cfg["num_layers"],
                                             model_cfg["ff_dim"], int(policy_params.view["adapter"]["down"].shape[1]),
                                             cfg.mode, chunk)
    else:  # no analytic count: XLA's count of what the implementation does
        flops, nbytes, how = xla_flops or 1.0, xla_bytes or 1.0, "xla cost_analysis of one engine step / streams"
    peaks = roofline.measure_peaks() if cfg.roofline else {"peak_gflop_s": None, "peak_gb_s": None}
    result.update(roofline.roofline_fields(result["user_steps_per_s"], flops, nbytes, how, peaks["peak_gflop_s"],
                                           peaks["peak_gb_s"], xla_flops, xla_bytes))
    if cfg.env == "ml100k":
        result.update(env="ml100k", max_len=model_cfg["max_len"], num_layers=model_cfg["num_layers"],
                      model_dir=cfg.model_dir)
    if reencode is not None:
        re_rate = user_steps / reencode["run_s"]
        re_flops = {k: None if reencode["xla_step"][k] is None else reencode["xla_step"][k] / chunk
                    for k in ("flops", "bytes")}
        re_fields = roofline.roofline_fields(re_rate, flops, nbytes, how, peaks["peak_gflop_s"], peaks["peak_gb_s"],
                                             re_flops["flops"], re_flops["bytes"])
        result.update({
            "user_steps_per_s_reencode": re_rate,
            "speedup_vs_reencode": result["user_steps_per_s"] / re_rate,
            "compile_s_reencode": reencode["compile_s"],
            "run_s_reencode": reencode["run_s"],
            "final_reward_sum_reencode": reencode["reward_sum"],
            **{f"reencode_{k}": re_fields[k] for k in ("xla_flops_per_step", "xla_bytes_per_step", "achieved_gflop_s",
                                                        "achieved_gb_s", "roofline_fraction")},
        })

    if cfg.numpy:
        if not cfg.policy.startswith("linucb"):
            raise ValueError("--numpy: the NumPy references implement LinUCB; use --policy linucb")
        X = np.asarray(env_params.item_features, np.float32)
        theta_true = thetas[0]  # the first chunk's streams (same problem as the engine's)
        reg = float(getattr(policy_params, "reg", 1.0))
        noise = float(env_params.noise_std)
        def timed(fn, *args, **kwargs):
            """(reward sum, median seconds) of ``repeats`` runs, each from the same seed."""
            runs = [fn(*args, np.random.default_rng(cfg.seed), **kwargs) for _ in range(cfg.repeats)]
            return runs[0][0], float(np.median([t for _, t in runs]))

        if cfg.mode == "shared":
            np_sum, np_s = timed(numpy_batched_shared, X, theta_true, cfg.alpha, reg, noise, cfg.steps)
        else:
            np_sum, np_s = timed(numpy_batched_per_stream, X, theta_true, cfg.alpha, reg, noise, cfg.steps)
            inc_sum, inc_s = timed(numpy_incremental_per_stream, X, theta_true, cfg.alpha, reg, noise, cfg.steps)
            result["numpy_incremental_steps_per_s"] = chunk * cfg.steps / inc_s
            result["numpy_incremental_reward_sum"] = inc_sum
        sub = min(cfg.loop_streams, chunk)
        loop_sum, loop_s = timed(numpy_loop, X, theta_true[:sub], cfg.alpha, reg, noise, cfg.loop_steps,
                                 shared=cfg.mode == "shared")
        result["numpy_batched_steps_per_s"] = chunk * cfg.steps / np_s
        result["numpy_batched_reward_sum"] = np_sum  # first chunk only; compare with final_reward_sum / chunks
        result["numpy_loop_steps_per_s"] = sub * cfg.loop_steps / loop_s
        result["speedup_vs_numpy_batched"] = result["user_steps_per_s"] / result["numpy_batched_steps_per_s"]
        result["speedup_vs_numpy_loop"] = result["user_steps_per_s"] / result["numpy_loop_steps_per_s"]
        if result["roofline_fraction"] is not None and "numpy_incremental_steps_per_s" in result:
            result["numpy_incremental_roofline_fraction"] = (
                result["numpy_incremental_steps_per_s"] / result["roofline_steps_per_s"])
    result["peak_rss_mb"] = _peak_rss_mb()
    return result


def print_json(cfg: Config) -> None:
    """Run the benchmark and print its ONE JSON line."""
    print(json.dumps(main(cfg)))


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, print_json, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
