"""The engine, model-backed engine, training-step and evaluation benchmarks on whatever
accelerator JAX sees, written to ONE JSON file.

    PYTHONPATH=. python3 experiments/bench_device.py --quick --out bench_device.json   # < 60 s
    PYTHONPATH=. python3 experiments/bench_device.py --out bench_device.json           # < 5 min on an H100/H200

Made for a bare device image (a newer Python and JAX, no pip): it imports nothing beyond
jax, flax, optax, numpy and rec_jax modules that import nothing else at import time
(no tyro, tensorboardX, Orbax), parses its arguments with ``rec_jax.cli`` (argparse from
the Config dataclass, standard library only, like every experiment), and reads no data
from disk (every data set is random, generated in-process).

Sections (``--sections``, comma-separated, default all), sizes by ``--quick`` and by the
platform (an accelerator gets the issue's sizes, a CPU small ones; ``--tiny`` is the
smallest, for tests):

* ``engine``: ``bench_engine.main`` (LinUCB, K = 100 items, d = 16, per-stream state),
  at several stream counts; user_steps_per_s and its roofline keys (minimal LinUCB
  count, XLA's one-step count).
* ``model_engine``: a random SASRec (L = 50, D = 64, 2 blocks) in front of the
  synthetic recommender env, ``exploit`` and ``neural_linear_ucb``
  (rec_jax.online.large_model.VARIANTS; ``--quick``: neural_linear_ucb only);
  user_steps_per_s, roofline keys per user-step (the minimal count encodes the L-item
  history into its last state: the env's window slides, so no key/value cache applies;
  + scoring all items; the policy head is not counted).
* ``train``: SASRec training epochs on random windows (full-softmax CE, Adam);
  train_steps_per_s and roofline keys (:mod:`rec_jax.train.step_cost`).
* ``eval``: ``Evaluator.timings`` of full ranking over every test user of random
  sequences; users_per_s and roofline keys per user (encoding + scoring every item).

The file holds ``device``, ``cpu_model``, ``jax_version``, the probed peaks and one
entry per section (a list of rows, or ``{"error": ...}`` when a section failed: the
others still run). It is rewritten after every section, so a run stopped by a time
limit keeps what it finished.
"""
from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli

SECTIONS = ("engine", "model_engine", "train", "eval")


@dataclasses.dataclass(frozen=True)
class Config:
    """Device benchmark: engine, model-backed engine, training step, evaluation; one JSON file."""

    out: Path = Path("bench_device.json")  # the JSON file written (rewritten after every section)
    quick: bool = False  # smaller sizes (within 60 s)
    tiny: bool = False  # the smallest sizes (tests)
    sections: str = ",".join(SECTIONS)  # comma-separated subset of engine,model_engine,train,eval
    seed: int = 0  # root seed

# (streams, steps) of the LinUCB engine; stream_chunk caps the streams held at once
ENGINE_SIZES = {
    "tiny": [(256, 10)],
    "cpu_quick": [(1024, 50)],
    "cpu_full": [(4096, 200), (16384, 50)],
    "acc_quick": [(4096, 100), (65536, 100)],
    "acc_full": [(4096, 200), (65536, 200), (262144, 100), (1048576, 50)],
}
MODEL_ENGINE_SIZES = {  # (streams, steps, num_items)
    "tiny": [(16, 3, 50)], "cpu_quick": [(128, 5, 500)], "cpu_full": [(512, 20, 1682)],
    "acc_quick": [(4096, 20, 1682)], "acc_full": [(4096, 50, 1682), (65536, 20, 1682)],
}
TRAIN_SIZES = {  # (users, items, windows per step, epochs timed)
    "tiny": (64, 50, 16, 1), "cpu_quick": (400, 500, 16, 2), "cpu_full": (2000, 2000, 64, 2),
    "acc_quick": (4000, 3700, 256, 2), "acc_full": (20000, 20000, 256, 3),
}
MAX_CHUNK = 262144  # engine streams per jitted call (bounded device memory)


def size_key(quick: bool, tiny: bool) -> str:
    import jax

    if tiny:
        return "tiny"
    acc = jax.devices()[0].platform != "cpu"
    return ("acc_" if acc else "cpu_") + ("quick" if quick else "full")


# ----------------------------------------------------------------------------- sections


def bench_engine_rows(key: str, seed: int) -> list[dict]:
    from experiments import bench_engine

    rows = []
    for streams, steps in ENGINE_SIZES[key]:
        cfg = bench_engine.Config(policy="linucb", items=100, dim=16, streams=streams, steps=steps, seed=seed,
                                  stream_chunk=min(streams, MAX_CHUNK))
        rows.append(bench_engine.main(cfg))
        _say(f"engine S={streams} T={steps}: {rows[-1]['user_steps_per_s']:.3g} user-steps/s, "
             f"roofline fraction {rows[-1]['roofline_fraction']}")
    return rows


def model_engine_cost(model_cfg, num_items: int, num_params: int, streams: int, slate: int):
    """(flops, bytes, how) per user-step of a model-backed policy: encoding the L-item
    history into its last state (:func:`rec_jax.train.step_cost.encoder_flops_last_state`),
    scores of every item 2 D (N + 1); bytes: the history ids read, the slate written, the
    model's parameters read once per step (shared by the S streams)."""
    from rec_jax.train.step_cost import dataclass_like, encoder_flops_last_state

    c = dataclass_like(model_cfg, model="sasrec")
    flops = encoder_flops_last_state(c) + 2.0 * model_cfg.dim * (num_items + 1)
    nbytes = 4.0 * (model_cfg.max_len + slate + 1) + 4.0 * num_params / streams
    how = "analytic: SASRec last state of the L-item history + 2D(N+1) item scores; policy head not counted"
    return flops, nbytes, how


def bench_model_engine_rows(key: str, seed: int) -> list[dict]:
    import jax
    import numpy as np

    from rec_jax import roofline
    from rec_jax.models import make_model
    from rec_jax.models.sasrec import SASRecConfig
    from rec_jax.online import EngineConfig, make_run
    from rec_jax.online.large_model import model_policy
    from rec_jax.sim.ground_truth import synthetic_ground_truth
    from rec_jax.sim.recsys import make_recsys_env

    slate, length = 5, 50
    rows = []
    for streams, steps, num_items in MODEL_ENGINE_SIZES[key]:
        cfg = SASRecConfig(num_items=num_items, max_len=length, dim=64, num_layers=2, num_heads=2, ff_dim=256)
        model = make_model("sasrec", cfg)
        params = jax.jit(model.init)(jax.random.key(seed))
        num_params = sum(x.size for x in jax.tree.leaves(params))
        gt = synthetic_ground_truth(jax.random.key(seed + 1), 1000, num_items, 16)
        sim, env_params = make_recsys_env(gt, slate_size=slate, history_len=length, observe_history=True)
        for variant in ("neural_linear_ucb",) if key.endswith("quick") else ("exploit", "neural_linear_ucb"):
            policy, pparams, spec, mode = model_policy(variant, model, params, num_items, slate,
                                                       jax.random.key(seed + 2))
            engine = make_run(EngineConfig(num_streams=streams, slate_size=slate, mode=mode), policy, sim, spec=spec)
            state = jax.jit(engine.init_run)(jax.random.key(seed + 3), pparams, env_params)

            def chunk(rs):
                rs, metrics = engine.run_chunk(rs, steps)
                return rs, metrics["reward"].sum(axis=0)

            t0 = time.perf_counter()
            run = jax.jit(chunk, donate_argnums=0).lower(state).compile()
            compile_s = time.perf_counter() - t0
            xla = roofline.xla_cost(lambda rs: engine.run_chunk(rs, 1)[0], state)
            t0 = time.perf_counter()
            state, rewards = jax.block_until_ready(run(state))
            run_s = time.perf_counter() - t0
            rate = streams * steps / run_s
            flops, nbytes, how = model_engine_cost(cfg, num_items, num_params, streams, slate)
            peaks = roofline.measure_peaks()
            rows.append({
                "policy": variant, "mode": mode, "streams": streams, "steps": steps, "items": num_items,
                "slate_size": slate, "max_len": length, "user_steps_per_s": rate, "compile_s": compile_s,
                "run_s": run_s, "reward_sum": float(np.asarray(rewards, np.float64).sum()),
                **roofline.roofline_fields(rate, flops, nbytes, how, peaks["peak_gflop_s"], peaks["peak_gb_s"],
                                           _per(xla["flops"], streams), _per(xla["bytes"], streams)),
            })
            _say(f"model_engine {variant} S={streams} T={steps}: {rate:.3g} user-steps/s")
            del state
    return rows


def random_sequences(num_users: int, num_items: int, length: int, seed: int):
    """SequenceData of random users: lengths uniform in [length / 2, 2 length], items
    uniform in 1..N (the benchmarks time shapes, not learning)."""
    import numpy as np

    from rec_jax.data.preprocess import SequenceData

    rng = np.random.default_rng(seed)
    lengths = rng.integers(max(3, length // 2), 2 * length + 1, num_users)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = rng.integers(1, num_items + 1, int(offsets[-1])).astype(np.int32)
    return SequenceData(offsets=offsets, items=items, timestamps=np.arange(len(items), dtype=np.int64),
                        num_users=num_users, num_items=num_items, raw_user_ids=np.arange(num_users, dtype=np.int64),
                        raw_item_ids=np.arange(-1, num_items, dtype=np.int64))


def _prepared(key: str, seed: int):
    from rec_jax.train.config import TrainConfig
    from rec_jax.train.pipeline import prepare

    users, items, wpb, epochs = TRAIN_SIZES[key]
    config = TrainConfig(data="synthetic", model="sasrec", max_len=50, window_stride=25, dim=64, num_layers=2,
                         num_heads=2, ff_dim=256, batch_unit="window", batch_size=wpb, epochs=epochs,
                         checkpoint_every=0, eval_batch_size=256, seed=seed)
    return config, prepare(config, seqs=random_sequences(users, items, config.max_len, seed)), epochs


def bench_train_rows(key: str, seed: int, cache: dict) -> list[dict]:
    import jax
    import numpy as np

    from rec_jax import roofline
    from rec_jax.models import make_model
    from rec_jax.train.config import model_config, windows_per_batch
    from rec_jax.train.step_cost import train_step_cost, xla_train_step
    from rec_jax.train.trainer import init_train_state, make_train_epoch

    config, prepared, epochs = _prepared(key, seed)
    model = make_model(config.model, model_config(config, prepared.num_items))
    cache.update(config=config, prepared=prepared, model=model)
    seq = np.asarray(prepared.windows.seq, np.int32)
    mask = np.asarray(prepared.windows.target_mask, bool)
    num_windows = seq.shape[0]
    wpb = windows_per_batch(config, num_windows, int(mask.sum()))
    steps_per_epoch = -(-num_windows // wpb)
    train_epoch = make_train_epoch(model, config, num_windows, wpb)
    state = init_train_state(model, config, jax.random.key(seed))
    num_params = sum(x.size for x in jax.tree.leaves(state.params))
    windows, target_mask = jax.device_put(seq), jax.device_put(mask)
    keys = [jax.random.key(seed + 10 + e) for e in range(epochs + 1)]
    t0 = time.perf_counter()
    train_epoch = train_epoch.lower(state, windows, target_mask, keys[0], keys[0]).compile()
    compile_s = time.perf_counter() - t0
    xla = xla_train_step(model, config, state.params, seq[:wpb], mask[:wpb])
    state, _ = jax.block_until_ready(train_epoch(state, windows, target_mask, keys[0], keys[0]))  # warm
    times = []
    for e in range(epochs):
        t0 = time.perf_counter()
        state, loss = jax.block_until_ready(train_epoch(state, windows, target_mask, keys[e + 1], keys[0]))
        times.append(time.perf_counter() - t0)
    cache["params"] = state.params
    epoch_s = float(np.median(times))
    rate = steps_per_epoch / epoch_s
    flops, nbytes, how = train_step_cost(config, prepared.num_items, wpb, mask.sum() / steps_per_epoch, num_params)
    peaks = roofline.measure_peaks()
    row = {
        "model": config.model, "loss": config.loss, "users": prepared.stats()["num_users"],
        "items": prepared.num_items, "num_windows": num_windows, "windows_per_step": wpb,
        "steps_per_epoch": steps_per_epoch, "num_params": num_params, "epoch_s": epoch_s,
        "train_steps_per_s": rate, "sequences_per_s": num_windows / epoch_s, "compile_s": compile_s,
        "final_loss": float(loss),
        **roofline.roofline_fields(rate, flops, nbytes, how, peaks["peak_gflop_s"], peaks["peak_gb_s"],
                                   xla["flops"], xla["bytes"]),
    }
    _say(f"train: {rate:.3g} steps/s ({wpb} windows a step), roofline fraction {row['roofline_fraction']}")
    return [row]


def bench_eval_rows(key: str, seed: int, cache: dict) -> list[dict]:
    import jax

    from rec_jax import roofline
    from rec_jax.models import make_model
    from rec_jax.train.config import model_config
    from rec_jax.train.evaluate import Evaluator
    from rec_jax.train.step_cost import encoder_flops_last_state

    if "prepared" not in cache:
        config, prepared, _ = _prepared(key, seed)
        model = make_model(config.model, model_config(config, prepared.num_items))
        cache.update(config=config, prepared=prepared, model=model, params=jax.jit(model.init)(jax.random.key(seed)))
    config, prepared, model, params = cache["config"], cache["prepared"], cache["model"], cache["params"]
    evaluator = Evaluator(model, prepared.test, config.eval_batch_size)
    timing = evaluator.timings(params, repeats=3)
    users, n, d = prepared.stats()["num_users"], prepared.num_items, config.dim
    rate = users / timing["eval_s"]
    flops = encoder_flops_last_state(config) + 2.0 * d * (n + 1)
    num_params = sum(x.size for x in jax.tree.leaves(params))
    nbytes = 4.0 * (config.max_len + 1) + 4.0 * num_params / config.eval_batch_size + (n + 1) / 8
    how = ("analytic: SASRec last state of the L-item history + 2D(N+1) item scores per user; bytes: ids, "
           "params once per ranking batch, the seen mask as bits")
    peaks = roofline.measure_peaks()
    row = {"users": users, "items": n, "eval_batch_size": config.eval_batch_size, **timing, "users_per_s": rate,
           **roofline.roofline_fields(rate, flops, nbytes, how, peaks["peak_gflop_s"], peaks["peak_gb_s"])}
    _say(f"eval: {rate:.3g} users/s over {n} items")
    return [row]


# ----------------------------------------------------------------------------- driver


def _per(x, n):
    return None if x is None else x / n


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def section_list(cfg: Config) -> list[str]:
    names = [x.strip() for x in cfg.sections.split(",") if x.strip()]
    bad = [x for x in names if x not in SECTIONS]
    if bad or not names:
        raise ValueError(f"--sections: unknown {', '.join(bad) or '(none given)'}; expected a subset of "
                         f"{', '.join(SECTIONS)}")
    return names


def main(args: Config) -> dict:
    sections = section_list(args)
    start = time.perf_counter()
    import jax

    from rec_jax import roofline

    key = size_key(args.quick, args.tiny)
    out = {
        "device": roofline.device_kind(), "num_devices": len(jax.devices()), "cpu_model": roofline.cpu_model(),
        "jax_version": jax.__version__, "python": platform.python_version(), "sizes": key,
        **roofline.measure_peaks(), "sections": {},
    }
    _say(f"{out['device']} ({out['cpu_model']}), peaks {out['peak_gflop_s']:.4g} GFLOP/s, "
         f"{out['peak_gb_s']:.4g} GB/s; sizes {key}")
    cache: dict = {}
    runners = {
        "engine": lambda: bench_engine_rows(key, args.seed),
        "model_engine": lambda: bench_model_engine_rows(key, args.seed),
        "train": lambda: bench_train_rows(key, args.seed, cache),
        "eval": lambda: bench_eval_rows(key, args.seed, cache),
    }
    for name in sections:
        t0 = time.perf_counter()
        try:
            out["sections"][name] = runners[name]()
        except Exception as e:  # one failing section must not lose the others' figures
            out["sections"][name] = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            _say(f"{name}: FAILED {type(e).__name__}: {e}")
        out.setdefault("section_s", {})[name] = time.perf_counter() - t0
        out["total_s"] = time.perf_counter() - start
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1) + "\n")
    _say(f"wrote {args.out} in {out['total_s']:.1f} s")
    return out


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
