"""Exploration on top of the trained SASRec in the ML-100K simulator vs exploiting it.

    python experiments/large_model_ee.py --quick                 # a few minutes on 2 cores
    python experiments/large_model_ee.py --model-dir runs/train  # a train_sequential.py run

Every simulated user starts from the last ``max_len`` items of their real ML-100K
history (the same item ids the model was trained on); the user's taste is the
ground-truth factorisation fitted to the same data (``rec_jax.sim.recsys``). Each
step the policy sees the history, the Transformer encodes it, and the policy
shows a slate of K items (PBM clicks); clicked items enter the history. Policies
(``rec_jax.online.large_model.VARIANTS``): ``exploit`` (the model's own top-K),
epsilon-greedy and softmax over its scores, NeuralLinear TS/UCB (shared and per
user posteriors) and bootstrapped heads on its features. The horizon (``--steps``)
is the same for every policy. Without ``--model-dir`` a SASRec is trained first
(``ml100k-sasrec`` preset, ``--train-epochs``) into ``<out>/../sasrec_ml100k_e<epochs>`` (shared with online_learning.py).

Writes into ``--out`` (default ``runs/large_model_ee``), atomically at the end:
``metrics.json`` with ``cumulative_reward/<policy>``, ``cumulative_regret/<policy>``,
``ctr/<policy>`` (each with ``_ci95``, 95% t over seeds; per seed: summed over
steps, averaged over streams), ``config.json``, ``curves.npz`` and
``reward_curves.png`` / ``regret_curves.png``, and TensorBoard events in ``tb/``:
``<policy>/cum_reward``, ``<policy>/cum_regret``, ``<policy>/ctr`` (running click
rate), means over seeds against t.
"""
from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

from rec_jax.eval.confidence import t_ci95
from rec_jax.online.large_model import VARIANTS
from rec_jax.runs import staged_run_dir
from rec_jax.tensorboard import EventLog, curve_to_events
import rec_jax.cli


@dataclasses.dataclass(frozen=True)
class Config:
    """Transformer-backed exploration vs exploitation in the ML-100K simulator."""

    out: Path = Path("runs/large_model_ee")  # run folder (replaced atomically at the end)
    model_dir: Path | None = None  # a train_sequential.py run folder; default: train one first
    data: str = "ml-100k"  # the log the simulator is fitted to and the model trained on: a dataset name or a file
    train_epochs: int | None = None  # epochs for the model trained without --model-dir (default 30, quick 4)
    seeds: int = 5  # seeds (95% CI over them), vmapped in one jit per policy
    quick: bool = False  # small size: fewer steps and streams
    steps: int | None = None  # horizon T per stream, the same for every policy (default 500, quick 150)
    streams: int | None = None  # S simulated users per seed (default 64, quick 32)
    slate_size: int = 5  # K items per slate (PBM examination)
    policies: str = ",".join(VARIANTS)  # comma-separated variants
    seed: int = 0  # root seed; seed i uses fold_in(key(seed), i)


def resolve(cfg: Config) -> dict:
    policies = [p.strip() for p in cfg.policies.split(",") if p.strip()]
    for p in policies:
        if p not in VARIANTS:
            raise ValueError(f"--policies: unknown policy {p!r}; expected some of {', '.join(VARIANTS)}")
    if "exploit" not in policies:
        policies.insert(0, "exploit")  # the baseline every claim is about
    if cfg.seeds < 2:
        raise ValueError(f"--seeds: expected >= 2 (a CI needs two), got {cfg.seeds}")
    steps = cfg.steps if cfg.steps is not None else (150 if cfg.quick else 500)
    streams = cfg.streams if cfg.streams is not None else (32 if cfg.quick else 64)
    epochs = cfg.train_epochs if cfg.train_epochs is not None else (4 if cfg.quick else 30)
    if min(steps, streams, epochs, cfg.slate_size) < 1:
        raise ValueError("--steps/--streams/--train-epochs/--slate-size: expected >= 1")
    return dict(dataclasses.asdict(cfg), out=str(cfg.out), model_dir=cfg.model_dir and str(cfg.model_dir),
                policies=policies, steps=steps, streams=streams, train_epochs=epochs)


def run_variant(variant, model, encoder_params, sim, env_params, settings) -> dict[str, np.ndarray]:
    """Per-seed curves f32[seeds, T] (streams averaged) of one model-backed policy."""
    import jax

    from rec_jax.online import EngineConfig, make_run
    from rec_jax.online.large_model import model_policy

    k = settings["slate_size"]
    policy, params, spec, mode = model_policy(variant, model, encoder_params, sim.num_items, k, jax.random.key(1))
    engine = make_run(EngineConfig(num_streams=settings["streams"], slate_size=k, mode=mode), policy, sim, spec=spec)
    engine.validate(params, env_params)
    steps = settings["steps"]

    def run_seed(key):
        _, m = engine.run(key, params, env_params, steps)
        return m["reward"].mean(axis=1), m["regret"].mean(axis=1), m["click"].mean(axis=1)

    root = jax.random.key(settings["seed"])
    keys = jax.vmap(lambda i: jax.random.fold_in(root, i))(np.arange(settings["seeds"]))
    reward, regret, click = jax.device_get(jax.jit(jax.vmap(run_seed))(keys))
    return {"reward": reward, "regret": regret, "click": click}


def plot(curves: dict, settings: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rec_jax.runs import plot_mean_ci, save_figure

    t = np.arange(1, settings["steps"] + 1)
    for what, label in (("reward", "cumulative reward"), ("regret", "cumulative regret")):
        fig, ax = plt.subplots(figsize=(6, 4))
        for p in settings["policies"]:
            y = np.cumsum(curves[f"{p}/{what}"].astype(np.float64), axis=1)
            plot_mean_ci(ax, t, y, label=p, lw=2 if p == "exploit" else 1)
        ax.set_xlabel("t (slates per user)")
        ax.set_ylabel(f"{label} per user")
        ax.set_title(f"SASRec-backed policies, {settings['data']} sim ({settings['seeds']} seeds, 95% CI)", fontsize=9)
        ax.legend(fontsize=7)
        save_figure(fig, out / f"{what}_curves.png")


def main(cfg: Config) -> dict:
    settings = resolve(cfg)
    out = Path(cfg.out)
    from rec_jax.online.large_model import ml100k_setup
    from rec_jax.runs import provenance, write_json

    model, encoder_params, train_config, sim, env_params = ml100k_setup(
        cfg.model_dir, out.parent, settings["train_epochs"], settings["slate_size"], data=cfg.data)
    curves, metrics = {}, {}
    for p in settings["policies"]:
        t0 = time.perf_counter()
        c = run_variant(p, model, encoder_params, sim, env_params, settings)
        for name, per_seed in (("cumulative_reward", c["reward"].astype(np.float64).sum(1)),
                               ("cumulative_regret", c["regret"].astype(np.float64).sum(1)),
                               ("ctr", c["click"].astype(np.float64).mean(1))):
            metrics[f"{name}/{p}"] = float(per_seed.mean())
            metrics[f"{name}/{p}_ci95"] = float(t_ci95(per_seed))
        for what in ("reward", "regret", "click"):
            curves[f"{p}/{what}"] = c[what]
        print(f"{p:>28s} reward {metrics[f'cumulative_reward/{p}']:8.2f} ± {metrics[f'cumulative_reward/{p}_ci95']:5.2f}"
              f"  regret {metrics[f'cumulative_regret/{p}']:8.2f}  ({time.perf_counter() - t0:.1f}s)", flush=True)
    exploit = np.cumsum(curves["exploit/reward"].astype(np.float64), axis=1)[:, -1]
    for p in settings["policies"]:
        if p != "exploit":  # paired over seeds (same keys): the difference and its CI
            diff = np.cumsum(curves[f"{p}/reward"].astype(np.float64), axis=1)[:, -1] - exploit
            metrics[f"reward_vs_exploit/{p}"] = float(diff.mean())
            metrics[f"reward_vs_exploit/{p}_ci95"] = float(t_ci95(diff))

    with staged_run_dir(out) as tmp:
        write_json(tmp / "config.json", {"config": settings, "model": train_config, "provenance": provenance()})
        write_json(tmp / "metrics.json", metrics)
        np.savez(tmp / "curves.npz", **curves)
        plot(curves, settings, tmp)
        t = np.arange(1, settings["steps"] + 1)
        cum = {k: np.cumsum(v.astype(np.float64), axis=1).mean(axis=0) for k, v in curves.items()}
        with EventLog(tmp) as events:
            for p in settings["policies"]:
                curve_to_events(events, p, {"cum_reward": cum[f"{p}/reward"], "cum_regret": cum[f"{p}/regret"],
                                            "ctr": cum[f"{p}/click"] / t})
    return metrics


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
