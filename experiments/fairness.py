"""Fairness of exposure: NDCG@10 against the Gini of exposure offline, CTR against Gini online.

    python experiments/fairness.py --quick                     # about 2 CPU-minutes (3 training epochs)
    python experiments/fairness.py --data synthetic --quick    # no MovieLens needed
    python -m experiments.fairness --model-dir runs/train_sequential/ml100k-sasrec --seeds 10

Offline. A sequential model (SASRec, the ``--preset``, trained here for
``--epochs`` epochs, or the finished ``train_sequential.py`` run in ``--model-dir``)
scores every item for every test user (leave-one-out, items already seen are
excluded). The FairCo-style re-ranker (``rec_jax.eval.fair_ranker``) serves the
users one after another, adding ``lambda`` times each item's exposure deficit to
the standardised scores, for each ``lambda`` in ``--lambdas``. Each seed serves a
bootstrap resample of the test users in a random order, so the 95% CIs
(Student t over ``--seeds``) cover both the user sample and the serving order.
Per lambda: NDCG@10 of the re-ranked top 10, the Gini of position-weighted item
exposure, item coverage, the long-tail share of recommended slots, the exposure
ratio of popular (top ``--head-fraction`` by training interactions) to long-tail
items, and NDCG@10 per user group (ML-100K gender and age bands) with the gap
between groups.

Online. The ``fair_exposure`` policy (``rec_jax.policies.fair_exposure``: shared
item CTR estimates + the same exposure controller) runs in the ML-100K recommender
env for each ``lambda`` in ``--sim-lambdas`` (engine shared mode, all seeds and
lambdas vmapped in one jit); we read the CTR and the Gini of the exposure it gave.

Writes into ``--out`` (default ``runs/fairness``) via a temp folder:

* ``metrics.json`` ``gini@10/lambda=<v>``, ``ndcg@10/lambda=<v>``, ``coverage@10/lambda=<v>``,
  ``long_tail_share@10/lambda=<v>``, ``exposure_ratio_popular_to_tail@10/lambda=<v>``,
  ``ndcg@10/gender=<g>/lambda=<v>``, ``ndcg@10/age=<band>/lambda=<v>``,
  ``utility_gap/{gender,age}/lambda=<v>``, ``sim/ctr/lambda=<v>``, ``sim/gini/lambda=<v>``,
  each with ``<key>_ci95``; ``<v>`` is ``repr(float(lambda))``. Also ``gini_monotone_in_lambda``
  and ``sim/gini_monotone_in_lambda`` (1.0 when the mean Gini never rises with lambda),
  and the model's plain ``model/ndcg@10``.
* ``tradeoff_offline.png`` (NDCG@10 vs Gini), ``tradeoff_sim.png`` (CTR vs Gini), with CIs.
* ``curves.npz`` per-seed values; ``config.json`` resolved config + provenance.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Literal

import numpy as np

from rec_jax.eval.confidence import t_ci95
from rec_jax.runs import staged_run_dir
import rec_jax.cli


@dataclasses.dataclass(frozen=True)
class Config:
    """Fairness-of-exposure study: the lambda knob's trade-off offline and in the simulator."""

    out: Path = Path("runs/fairness")  # run folder (replaced atomically at the end)
    quick: bool = False  # small size: few training epochs, short simulation
    data: Literal["synthetic", "ml-100k"] = "ml-100k"  # ML-100K (with user groups) or generated data
    model_dir: str | None = None  # a finished train_sequential.py run folder to load instead of training
    preset: str | None = None  # training preset (default ml100k-sasrec; tiny-sasrec for synthetic data)
    epochs: int | None = None  # training epochs (default 30 with early stopping, quick 3)
    lambdas: str = "0.0,1.0,3.0,10.0,30.0,100.0,300.0,1000.0"  # controller strengths of the offline re-ranker
    seeds: int = 5  # bootstrap resamples of the test users (random serving order each); CIs over them
    slate_size: int = 10  # K of the offline top-K lists
    head_fraction: float = 0.2  # share of items (most interactions) counted as popular; the rest is the long tail
    sim_lambdas: str = "0.0,1.0,3.0,10.0,30.0,100.0"  # controller strengths of the fair_exposure policy online
    sim_streams: int | None = None  # simulated users per seed (default 128, quick 32)
    sim_steps: int | None = None  # steps per simulated user (default 300, quick 100)
    sim_slate_size: int = 5  # K of the simulator's slates (PBM clicks)
    seed: int = 0  # root seed (training, resamples, simulation)


def parse_floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{flag}: expected comma-separated numbers, got {text!r}") from None
    if len(values) < 1 or any(v < 0 or not np.isfinite(v) for v in values):
        raise ValueError(f"{flag}: expected one or more finite numbers >= 0, got {text!r}")
    return sorted(set(values))


def resolve(cfg: Config) -> dict:
    """The concrete settings (defaults filled in); ValueError for people on bad input."""
    lambdas = parse_floats(cfg.lambdas, "--lambdas")
    sim_lambdas = parse_floats(cfg.sim_lambdas, "--sim-lambdas")
    preset = cfg.preset or ("ml100k-sasrec" if cfg.data == "ml-100k" else "tiny-sasrec")
    epochs = cfg.epochs if cfg.epochs is not None else (3 if cfg.quick else 30)
    streams = cfg.sim_streams if cfg.sim_streams is not None else (32 if cfg.quick else 128)
    steps = cfg.sim_steps if cfg.sim_steps is not None else (100 if cfg.quick else 300)
    if cfg.seeds < 2:
        raise ValueError(f"--seeds: expected >= 2 (a CI needs two), got {cfg.seeds}")
    for name, v in (("epochs", epochs), ("slate-size", cfg.slate_size), ("sim-streams", streams),
                    ("sim-steps", steps), ("sim-slate-size", cfg.sim_slate_size)):
        if v < 1:
            raise ValueError(f"--{name}: expected >= 1, got {v}")
    if not 0.0 < cfg.head_fraction < 1.0:
        raise ValueError(f"--head-fraction: expected in (0, 1), got {cfg.head_fraction}")
    if cfg.model_dir is not None and not (Path(cfg.model_dir) / "config.json").is_file():
        raise ValueError(f"--model-dir: expected a train_sequential.py run folder with config.json, got {cfg.model_dir}")
    return dict(dataclasses.asdict(cfg), out=str(cfg.out), lambdas=lambdas, sim_lambdas=sim_lambdas, preset=preset,
                epochs=epochs, sim_streams=streams, sim_steps=steps)


# ----------------------------------------------------------------------------- offline


def trained_scores(settings: dict, log=print):
    """Train (or load) the model; return (prepared data, scores f32[U, N], train config, model test NDCG@10)."""
    import jax

    from rec_jax.models import make_model
    from rec_jax.train.config import TrainConfig, get_preset, model_config
    from rec_jax.train.evaluate import Evaluator
    from rec_jax.train.pipeline import prepare
    from rec_jax.train.trainer import fit

    if settings["model_dir"] is not None:
        raw = json.loads((Path(settings["model_dir"]) / "config.json").read_text())["config"]
        names = {f.name for f in dataclasses.fields(TrainConfig)}
        config = TrainConfig(**{k: v for k, v in raw.items() if k in names})
        ckpt_dir, resume = Path(settings["model_dir"]) / "checkpoints", True
    else:
        config = dataclasses.replace(get_preset(settings["preset"]), epochs=settings["epochs"], seed=settings["seed"],
                                     data=settings["data"], checkpoint_every=0)
        ckpt_dir, resume = None, False
    prepared = prepare(config)
    model = make_model(config.model, model_config(config, prepared.num_items))
    valid_eval = Evaluator(model, prepared.valid, config.eval_batch_size)
    # A finished run's checkpoint resumes with nothing left to train: fit returns its best params.
    result = fit(model, config, prepared.windows, valid_eval, ckpt_dir=ckpt_dir, resume=resume, progress=False,
                 log=log)
    params = result.best_params
    score = jax.jit(lambda x: model.score(params, model.encode(params, x)))
    inputs = np.asarray(prepared.test.inputs, np.int32)
    batch = config.eval_batch_size
    scores = np.concatenate([np.asarray(score(inputs[i:i + batch])) for i in range(0, len(inputs), batch)])
    model_ndcg = Evaluator(model, prepared.test, config.eval_batch_size)(params)["masked/ndcg@10"]
    return prepared, scores, config, model_ndcg


def user_groups(settings: dict, prepared) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """{"gender": (i32[U], names), "age": (i32[U], names)} for ML-100K; {} for other data."""
    if settings["data"] != "ml-100k":
        return {}
    from rec_jax.data.users import AGE_BAND_NAMES, GENDERS, load_ml100k_users

    users = load_ml100k_users(prepared.seqs)
    return {"gender": (users.gender, GENDERS), "age": (users.age_band, AGE_BAND_NAMES)}


def offline_study(settings: dict, prepared, scores: np.ndarray, groups: dict) -> dict[str, np.ndarray]:
    """Per-(seed, lambda) metrics, each f32[seeds, L] (group NDCGs f32[seeds, L, G])."""
    import jax
    import jax.numpy as jnp

    from rec_jax.eval import fair_ranker, fairness

    num_users, num_items = scores.shape[0], scores.shape[1] - 1
    # Item ids are 1..N; drop the padding column so item index = id - 1.
    s = jnp.asarray(scores[:, 1:], jnp.float32)
    excluded = jnp.asarray(np.asarray(prepared.test.seen, bool)[:, 1:])
    targets = jnp.asarray(np.asarray(prepared.test.targets, np.int32) - 1)
    counts = np.bincount(np.asarray(prepared.split.train.items), minlength=num_items + 1)[1:]
    popular = fairness.popular_items(jnp.asarray(counts), settings["head_fraction"])
    k = settings["slate_size"]
    group_arrays = {name: jnp.asarray(g, jnp.int32) for name, (g, _) in groups.items()}
    group_sizes = {name: len(names) for name, (_, names) in groups.items()}

    def one(key, lam, s, excluded, targets, popular, group_arrays):
        resample_key, order_key = jax.random.split(key)
        users = jax.random.randint(resample_key, (num_users,), 0, num_users)  # bootstrap
        order = jax.random.permutation(order_key, users)
        slates, exposure = fair_ranker.fair_rerank(s, excluded, order, lam, k)
        ndcg = fair_ranker.slate_ndcg(slates, targets[order])
        out = {
            "ndcg": jnp.mean(ndcg),
            "gini": fairness.gini(exposure),
            "coverage": fairness.coverage(slates, num_items),
            "long_tail_share": fairness.long_tail_share(slates, ~popular),
            "exposure_ratio": fairness.exposure_disparity(exposure, popular)["ratio"],
        }
        for name, g in group_arrays.items():
            util = fairness.group_utility(ndcg, g[order], group_sizes[name])
            out[f"group/{name}"] = util["mean"]
            out[f"gap/{name}"] = util["gap"]
        return out

    keys = jax.random.split(jax.random.fold_in(jax.random.key(settings["seed"]), 1), settings["seeds"])
    lams = jnp.asarray(settings["lambdas"], jnp.float32)
    # Both axes vmapped in one jit: the seed's resample is shared by every lambda (paired comparison).
    # The arrays are jit arguments, not closed-over constants, which XLA would try to constant-fold.
    run = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0) + (None,) * 5), in_axes=(0, None) + (None,) * 5))
    out = run(keys, lams, s, excluded, targets, popular, group_arrays)
    return {k_: np.asarray(v, np.float64) for k_, v in jax.device_get(out).items()}


# ----------------------------------------------------------------------------- simulator


def sim_study(settings: dict) -> dict[str, np.ndarray]:
    """CTR and Gini of exposure of the fair_exposure policy per (seed, lambda): f64[seeds, L]."""
    import jax
    import jax.numpy as jnp

    from rec_jax import sim as sims
    from rec_jax.eval import fairness
    from rec_jax.online import EngineConfig, make_run
    from rec_jax.policies.base import PolicySpec
    from rec_jax.policies.fair_exposure import FairExposureParams, make_fair_exposure

    env_name = "ml100k" if settings["data"] == "ml-100k" else "synthetic_recsys"
    k = settings["sim_slate_size"]
    sim, env_params = sims.make_env(env_name, slate_size=k)
    spec = PolicySpec(num_items=sim.num_items, feature_dim=sim.feature_dim, slate_size=k)
    policy = make_fair_exposure(spec)
    params = FairExposureParams()
    engine = make_run(EngineConfig(num_streams=settings["sim_streams"], slate_size=k, mode="shared"), policy, sim,
                      spec=spec)
    engine.validate(params, env_params)
    steps = settings["sim_steps"]

    def one(key, lam, env_params):
        state, m = engine.run(key, params.replace(lam=lam), env_params, steps)
        # Exposure as the users saw it: the env's per-stream show counts are unweighted, so
        # weight by slot through the policy's shared position-weighted tally.
        return {"ctr": jnp.mean(m["click"]), "gini": fairness.gini(state.policy_state.exposure),
                "coverage": jnp.mean((state.env_state.exposure_counts.sum(axis=0) > 0).astype(jnp.float32))}

    keys = jax.random.split(jax.random.fold_in(jax.random.key(settings["seed"]), 2), settings["seeds"])
    lams = jnp.asarray(settings["sim_lambdas"], jnp.float32)
    run = jax.jit(jax.vmap(jax.vmap(one, in_axes=(None, 0, None)), in_axes=(0, None, None)))
    return {k_: np.asarray(v, np.float64) for k_, v in jax.device_get(run(keys, lams, env_params)).items()}


# ----------------------------------------------------------------------------- record


def lam_key(lam: float) -> str:
    return f"lambda={float(lam)!r}"


def monotone_nonincreasing(x: np.ndarray) -> bool:
    return bool(np.all(np.diff(x) <= 1e-9))


def summarize(settings: dict, off: dict, online: dict, groups: dict, model_ndcg: float) -> dict:
    metrics = {"model/ndcg@10": float(model_ndcg)}

    def put(key, per_seed):
        metrics[key] = float(np.mean(per_seed))
        metrics[f"{key}_ci95"] = float(t_ci95(per_seed))

    for j, lam in enumerate(settings["lambdas"]):
        lk = lam_key(lam)
        put(f"ndcg@10/{lk}", off["ndcg"][:, j])
        put(f"gini@10/{lk}", off["gini"][:, j])
        put(f"coverage@10/{lk}", off["coverage"][:, j])
        put(f"long_tail_share@10/{lk}", off["long_tail_share"][:, j])
        put(f"exposure_ratio_popular_to_tail@10/{lk}", off["exposure_ratio"][:, j])
        for name, (_, names) in groups.items():
            for gi, gname in enumerate(names):
                per_seed = off[f"group/{name}"][:, j, gi]
                if np.all(np.isfinite(per_seed)):
                    put(f"ndcg@10/{name}={gname}/{lk}", per_seed)
            put(f"utility_gap/{name}/{lk}", off[f"gap/{name}"][:, j])
    for j, lam in enumerate(settings["sim_lambdas"]):
        lk = lam_key(lam)
        put(f"sim/ctr/{lk}", online["ctr"][:, j])
        put(f"sim/gini/{lk}", online["gini"][:, j])
        put(f"sim/coverage/{lk}", online["coverage"][:, j])
    metrics["gini_monotone_in_lambda"] = float(monotone_nonincreasing(off["gini"].mean(axis=0)))
    metrics["sim/gini_monotone_in_lambda"] = float(monotone_nonincreasing(online["gini"].mean(axis=0)))
    return metrics


def plot(settings: dict, off: dict, online: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rec_jax.runs import save_figure

    for (x, y, lams, xl, yl, name, title) in (
        (off["gini"], off["ndcg"], settings["lambdas"], "Gini of exposure@10", "NDCG@10", "tradeoff_offline.png",
         f"re-ranked model scores, {settings['seeds']} bootstrap seeds, 95% CI"),
        (online["gini"], online["ctr"], settings["sim_lambdas"], "Gini of exposure", "CTR", "tradeoff_sim.png",
         f"fair_exposure policy in the simulator, {settings['seeds']} seeds, 95% CI"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.errorbar(x.mean(0), y.mean(0), xerr=t_ci95(x), yerr=t_ci95(y), marker="o", capsize=3)
        for j, lam in enumerate(lams):
            ax.annotate(f"λ={lam:g}", (x.mean(0)[j], y.mean(0)[j]), fontsize=7, xytext=(4, 4),
                        textcoords="offset points")
        ax.set(xlabel=xl, ylabel=yl, title=title)
        save_figure(fig, out / name)


def main(cfg: Config) -> dict:
    """Run the study and write the run folder; returns the metrics dict."""
    settings = resolve(cfg)
    from rec_jax.runs import provenance, write_json

    out = Path(cfg.out)
    t0 = time.perf_counter()
    prepared, scores, train_config, model_ndcg = trained_scores(settings)
    print(f"model {train_config.model}: test NDCG@10 {model_ndcg:.4f} ({time.perf_counter() - t0:.1f}s)", flush=True)
    groups = user_groups(settings, prepared)
    t0 = time.perf_counter()
    off = offline_study(settings, prepared, scores, groups)
    print(f"offline re-ranking, {len(settings['lambdas'])} lambdas x {settings['seeds']} seeds "
          f"({time.perf_counter() - t0:.1f}s)", flush=True)
    for j, lam in enumerate(settings["lambdas"]):
        print(f"  lambda {lam:>6g}: NDCG@10 {off['ndcg'][:, j].mean():.4f} ± {t_ci95(off['ndcg'][:, j]):.4f}  "
              f"Gini {off['gini'][:, j].mean():.4f} ± {t_ci95(off['gini'][:, j]):.4f}  "
              f"coverage {off['coverage'][:, j].mean():.4f}  tail share {off['long_tail_share'][:, j].mean():.4f}",
              flush=True)
    t0 = time.perf_counter()
    online = sim_study(settings)
    print(f"simulator, {len(settings['sim_lambdas'])} lambdas x {settings['seeds']} seeds "
          f"({time.perf_counter() - t0:.1f}s)", flush=True)
    for j, lam in enumerate(settings["sim_lambdas"]):
        print(f"  lambda {lam:>6g}: CTR {online['ctr'][:, j].mean():.4f} ± {t_ci95(online['ctr'][:, j]):.4f}  "
              f"Gini {online['gini'][:, j].mean():.4f} ± {t_ci95(online['gini'][:, j]):.4f}", flush=True)
    metrics = summarize(settings, off, online, groups, model_ndcg)

    with staged_run_dir(out) as tmp:
        write_json(tmp / "config.json", {"config": settings, "train_config": dataclasses.asdict(train_config),
                                         "provenance": provenance()})
        write_json(tmp / "metrics.json", metrics)
        np.savez(tmp / "curves.npz", lambdas=np.asarray(settings["lambdas"]),
                 sim_lambdas=np.asarray(settings["sim_lambdas"]),
                 **{f"offline/{k}": v for k, v in off.items()}, **{f"sim/{k}": v for k, v in online.items()})
        plot(settings, off, online, tmp)
    return metrics


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
