"""Regret and CTR curves of every bandit policy on the bandit and recommender envs.

    python experiments/bandits.py --quick                      # minutes on 2 cores
    python experiments/bandits.py --data synthetic --quick     # no MovieLens needed
    python experiments/bandits.py --data my_log.csv --envs ml100k --quick   # the recommender env fitted to your log
    python -m experiments.bandits --envs bernoulli,linear --policies linucb,ucb1 --seeds 10

For each (env, policy) the seeds are vmapped in ONE jit of the online engine
(``rec_jax.online``), each seed running ``--streams`` independent user streams for
``--steps`` steps (per-stream policy state). Context-free policies on the
recommender envs treat the items as arms; the Bernoulli env shows one-hot arm
features so the contextual policies reduce to per-arm estimates there.

Writes into ``--out`` (default ``runs/bandits``), all at the end, via a temp folder:

* ``config.json``   resolved config + provenance; with a fitted recommender env, ``data`` (the
  file and its SHA-256, :func:`rec_jax.data.data_record`) and ``sim_fit``:
  its calibrated CTRs and how its item popularity matches the data it was fitted on
  (:func:`rec_jax.sim.recsys_fit.fit_check`)
* ``metrics.json``  ``final_regret/<env>/<policy>`` (regret summed over T, averaged
  over streams, then over seeds), ``final_ctr/<env>/<policy>`` (mean click rate),
  ``final_reward/<env>/<policy>``, each with ``<key>_ci95`` (95% t half-width over seeds)
* ``curves.npz``    ``<env>/<policy>/cum_regret`` and ``.../ctr`` f32[seeds, T]
  (per seed, averaged over streams; ctr = running click rate up to t)
* ``regret_<env>.png``, ``ctr_<env>.png``: mean with 95% CI bands vs t.
* ``tb/``           TensorBoard events: ``<env>/<policy>/cum_regret`` and ``.../ctr``, means over
  seeds against t (at most ~1000 points a tag)
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from rec_jax.eval.confidence import t_ci95
from rec_jax.runs import staged_run_dir
from rec_jax.tensorboard import EventLog, curve_to_events
import rec_jax.cli

from rec_jax.policies import POLICY_NAMES, policy_names

# The study's default: every registered policy that learns from rewards or a fixed
# simulator's features (the model-backed ones need a model: large_model_ee.py).
ALL_POLICIES = policy_names(kind=("context_free", "contextual"))
ALL_ENVS = ("bernoulli", "linear", "ml100k")
RECSYS_ENV = {"ml-100k": "ml100k", "synthetic": "synthetic_recsys"}


@dataclasses.dataclass(frozen=True)
class Config:
    """Bandit study: regret and CTR of every policy on every env."""

    out: Path = Path("runs/bandits")  # run folder (replaced atomically at the end)
    seeds: int = 5  # seeds averaged (95% CI over them); vmapped in one jit
    quick: bool = False  # small size: fewer steps and streams
    data: str = "ml-100k"  # recommender env: "synthetic" (synthetic_recsys), or "ml-100k" / "ml-1m" / "ml-20m" / a log file (the ml100k env fitted to it)
    envs: str = ",".join(ALL_ENVS)  # comma-separated env names (ml100k follows --data)
    policies: str = ",".join(ALL_POLICIES)  # comma-separated policy names
    steps: int | None = None  # T steps per stream (default 1000, quick 200)
    streams: int | None = None  # S streams per seed (default 64, quick 16)
    num_arms: int = 10  # arms of the Bernoulli env
    num_items: int = 20  # items of the linear env
    dim: int = 8  # feature width of the linear env
    seed: int = 0  # root seed; seed i uses fold_in(key(seed), i)
    mc_samples: int = 1  # Monte Carlo draws behind Thompson-type propensities (this study reads regret and CTR, not propensities)


def resolve(cfg: Config) -> dict:
    """The concrete settings (defaults filled in); ValueError for people on bad input."""
    envs = [e.strip() for e in cfg.envs.split(",") if e.strip()]
    policies = [p.strip() for p in cfg.policies.split(",") if p.strip()]
    envs = [RECSYS_ENV.get(cfg.data, "ml100k") if e in ("ml100k", "synthetic_recsys") else e for e in envs]
    if cfg.data not in RECSYS_ENV and "ml100k" in envs:
        from rec_jax.data.fetch import DATASETS

        if cfg.data not in DATASETS and not Path(cfg.data).is_file():
            raise ValueError(f"--data {cfg.data}: no such file; expected synthetic, a dataset name "
                             f"({', '.join(sorted(DATASETS))}) or an interaction log")
    from rec_jax.sim import ENV_NAMES

    for e in envs:
        if e not in ENV_NAMES:
            raise ValueError(f"--envs: unknown env {e!r}; expected some of {', '.join(ENV_NAMES)}")
    for p in policies:
        if p not in POLICY_NAMES:
            raise ValueError(f"--policies: unknown policy {p!r}; expected some of {', '.join(POLICY_NAMES)}")
    if not envs or not policies:
        raise ValueError("--envs and --policies: expected at least one name each")
    steps = cfg.steps if cfg.steps is not None else (200 if cfg.quick else 1000)
    streams = cfg.streams if cfg.streams is not None else (16 if cfg.quick else 64)
    if cfg.seeds < 2:
        raise ValueError(f"--seeds: expected >= 2 (a CI needs two), got {cfg.seeds}")
    # Only the acting posterior draw is needed for regret and CTR; more draws only
    # sharpen the logged propensity, and Beta draws (rejection-sampled Gammas) over
    # the ML-100K catalogue dominate the run time on a CPU.
    mc_samples = cfg.mc_samples
    if mc_samples < 1:
        raise ValueError(f"--mc-samples: expected >= 1, got {mc_samples}")
    if steps < 1 or streams < 1:
        raise ValueError(f"--steps/--streams: expected >= 1, got {steps}, {streams}")
    # --quick leaves out disjoint LinUCB on ML-100K: one 16x16 inverse per item per
    # stream (1,349 items, 2.8 MB a stream) makes it the one pair that takes minutes.
    skipped = [["ml100k", "linucb_disjoint"]] if cfg.quick else []
    return dict(dataclasses.asdict(cfg), out=str(cfg.out), envs=envs, policies=policies, steps=steps, streams=streams,
                mc_samples=mc_samples, skipped=skipped)


def policies_for(settings: dict, env: str) -> list[str]:
    """The policies run on ``env`` (all requested ones, less the --quick exclusions)."""
    return [p for p in settings["policies"] if [env, p] not in settings["skipped"]]


def make_env(name: str, cfg: Config):
    """The env ``name``, sized as its SimulatorInfo declares (``study_kwargs``) from
    ``--num-items --dim --num-arms`` (the recommender envs: single items, so every
    policy and the CTR are comparable across envs)."""
    from rec_jax import sim

    kwargs = sim.simulator_info(name).study_kwargs(cfg.num_items, cfg.dim, cfg.num_arms)
    if name == "ml100k":
        kwargs["data"] = cfg.data
    return sim.make_env(name, **kwargs)


def sim_fit(cfg: Config, env_params) -> dict:
    """The fitted recommender env against its data (:func:`rec_jax.sim.recsys_fit.fit_check`)."""
    from rec_jax.sim.recsys import ml100k_ground_truth
    from rec_jax.sim.recsys_fit import fit_check

    gt, seqs = ml100k_ground_truth(data=cfg.data)  # the cached fit make_env just used
    return fit_check(gt, seqs, float(env_params.offset), float(env_params.scale))




def run_one(env_name: str, policy_name: str, settings: dict, cfg: Config, sims: dict) -> dict[str, np.ndarray]:
    """Per-seed curves of one (env, policy): f32[seeds, T] arrays, streams averaged."""
    import jax

    from rec_jax.online import EngineConfig, make_run
    from rec_jax.policies import make_policy
    from rec_jax.policies.base import PolicySpec

    sim, env_params = sims[env_name]
    spec = PolicySpec(num_items=sim.num_items, feature_dim=sim.feature_dim, slate_size=1)
    policy, policy_params = make_policy(policy_name, spec)
    if settings["mc_samples"] is not None and hasattr(policy_params, "num_mc_samples"):
        # Only the propensities use these draws; this study reports regret and CTR.
        policy_params = policy_params.replace(num_mc_samples=settings["mc_samples"])
    engine = make_run(EngineConfig(num_streams=settings["streams"]), policy, sim, spec=spec)
    engine.validate(policy_params, env_params)
    steps = settings["steps"]

    def run_seed(key):
        _, m = engine.run(key, policy_params, env_params, steps)
        # Average over streams inside the jit: only [T] per seed comes back.
        return m["regret"].mean(axis=1), m["click"].mean(axis=1), m["reward"].mean(axis=1)

    root = jax.random.key(cfg.seed)
    keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(np.arange(settings["seeds"]))
    regret, click, reward = jax.device_get(jax.jit(jax.vmap(run_seed))(keys))  # [seeds, T]
    t = np.arange(1, steps + 1)
    return {
        "regret": regret,
        "click": click,
        "reward": reward,
        "cum_regret": np.cumsum(regret, axis=1, dtype=np.float64).astype(np.float32),
        "ctr": (np.cumsum(click, axis=1, dtype=np.float64) / t).astype(np.float32),
    }


def plot(curves: dict, settings: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rec_jax.runs import save_figure

    t = np.arange(1, settings["steps"] + 1)
    for env in settings["envs"]:
        for what, ylabel in (("cum_regret", "cumulative regret"), ("ctr", "CTR (running click rate)")):
            fig, ax = plt.subplots(figsize=(6, 4))
            for policy in policies_for(settings, env):
                y = curves[f"{env}/{policy}/{what}"]
                mean, ci = y.mean(axis=0), t_ci95(y)
                ax.plot(t, mean, label=policy)
                ax.fill_between(t, mean - ci, mean + ci, alpha=0.2)
            ax.set_xlabel("t (steps per stream)")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{env}: {settings['streams']} streams, {settings['seeds']} seeds, 95% CI")
            ax.legend(fontsize=7, ncol=2)
            save_figure(fig, out / f"{'regret' if what == 'cum_regret' else 'ctr'}_{env}.png")


def main(cfg: Config) -> dict:
    """Run the study and write the run folder; returns the metrics dict."""
    settings = resolve(cfg)
    out = Path(cfg.out)
    from rec_jax.runs import provenance, write_json

    sims = {env: make_env(env, cfg) for env in settings["envs"]}
    fit = sim_fit(cfg, sims["ml100k"][1]) if "ml100k" in sims else None
    if fit is not None:
        print("sim fit: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in fit.items()))
    curves, metrics = {}, {}
    for env in settings["envs"]:
        for policy in policies_for(settings, env):
            t0 = time.perf_counter()
            c = run_one(env, policy, settings, cfg, sims)
            total_regret = c["regret"].astype(np.float64).sum(axis=1)  # [seeds]
            ctr = c["click"].astype(np.float64).mean(axis=1)
            reward = c["reward"].astype(np.float64).sum(axis=1)
            for name, per_seed in (("final_regret", total_regret), ("final_ctr", ctr), ("final_reward", reward)):
                metrics[f"{name}/{env}/{policy}"] = float(per_seed.mean())
                metrics[f"{name}/{env}/{policy}_ci95"] = float(t_ci95(per_seed))
            curves[f"{env}/{policy}/cum_regret"] = c["cum_regret"]
            curves[f"{env}/{policy}/ctr"] = c["ctr"]
            print(f"{env:>16s} {policy:>24s} regret {total_regret.mean():9.2f} ± {t_ci95(total_regret):7.2f}"
                  f"  ctr {ctr.mean():.3f}  ({time.perf_counter() - t0:.1f}s)", flush=True)

    # Everything goes into a temp folder beside OUT, renamed at the end: never half-written.
    with staged_run_dir(out) as tmp:
        from rec_jax.data.fetch import data_record

        extra = {} if fit is None else {"sim_fit": fit, "data": data_record(cfg.data)}
        write_json(tmp / "config.json", {"config": settings, "provenance": provenance(), **extra})
        write_json(tmp / "metrics.json", metrics)
        np.savez(tmp / "curves.npz", t=np.arange(1, settings["steps"] + 1), **curves)
        plot(curves, settings, tmp)
        with EventLog(tmp) as events:
            curve_to_events(events, "", {k: v.mean(axis=0) for k, v in curves.items()})
    return metrics


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
