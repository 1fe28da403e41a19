"""Fixed exploration settings against adaptive regulation, without drift, with gradual and with abrupt drift.

    python -m experiments.adaptive --quick          # 5 seeds, T = 2000, 32 streams: minutes on 2 cores
    python -m experiments.adaptive                  # 10 seeds, T = 4000, 64 streams
    python -m experiments.adaptive --seeds 20 --steps 6000

Environment: the semi-synthetic recommender (``synthetic_recsys``: a random
ground truth of ``--num-users`` users, ``--num-items`` items, width ``--dim``; or with
``--data NAME|PATH`` the one fitted to that dataset or log, :mod:`rec_jax.sim.recsys_fit`;
single-item recommendations, click reward), ``--streams`` users per seed, each
with its own per-stream epsilon-greedy policy. Three scenarios (the env params
are data, so all three run in one jit):

* ``stationary``:    tastes fixed;
* ``gradual_drift``: each user's vector takes a Gaussian random-walk step of std
  ``--drift-std`` per step (per coordinate; the vectors' coordinates have std
  ~0.7, so a user's taste is replaced within ~(0.7 / drift_std)^2 steps; the
  walk also lengthens the vector, so the best items' CTRs, and all rewards, rise);
* ``abrupt_drift``:  at step T/2 every user's taste is negated (u <- -u): the
  best items become among the worst, and a policy's statistics are stale.

Variants (the fixed settings are exactly the meta-bandits' grid):

* ``fixed_eps_<e>``            epsilon-greedy with epsilon e, for every e in ``--grid``;
* ``adaptive_meta_ts``         a discounted-Thompson meta-bandit picks epsilon from the grid
                               every ``--period`` steps for all streams (rec_jax.adapt.meta_run);
* ``adaptive_meta_exp3``       the same with EXP3;
* ``adaptive_pbt``             PBT over epsilon in [min(grid), max(grid)]: ``--pbt-members``
                               members (parallel worlds on the same users, own noise),
                               exploit/explore every ``--pbt-interval`` steps; its reward is
                               the mean over members (rec_jax.adapt.pbt);
* ``adaptive_drift_reset``     epsilon ``--drift-epsilon`` with a Page-Hinkley detector on each
                               stream's reward (falls only, false-alarm probability
                               ``--false-alarm`` over the horizon); on alarm it forgets its
                               statistics and explores with epsilon >= ``--boost`` for
                               ``--boost-steps`` steps (rec_jax.adapt.drift_reset).

Every variant of a seed sees the same users, the same drifts and the same env
noise stream (common random numbers), so differences are paired by seed.

Writes into ``--out`` (default ``runs/adaptive``), via a temp folder:

* ``metrics.json``  ``cumulative_reward/<scenario>/<variant>`` (reward summed over T, averaged
  over streams, then over seeds) and ``..._ci95`` beside each (95% t half-width over seeds);
  ``false_alarm_rate/stationary/adaptive_drift_reset`` (fraction of streams with an alarm);
* ``targets.json``  the issue's targets, measured (with the paired CIs of differences);
* ``curves.npz``, ``config.json``;
* ``cumulative_reward.png`` (gap to the best fixed setting over time), ``chosen_setting.png``
  (the meta-bandits' epsilon per period), ``pbt_trajectories.png`` (the population's epsilons);
* ``tb/``           TensorBoard events, means over seeds: ``<scenario>/<variant>/cum_reward`` and
  ``.../reward`` against t; ``<scenario>/adaptive_meta_<ts|exp3>/epsilon`` (the epsilon chosen
  for the period that starts at step t) and ``<scenario>/adaptive_pbt/epsilon`` (the
  population mean after the round that ends at step t).
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli  # noqa: E402
from experiments._adaptive_variants import META_METHODS, SCENARIOS, run_all  # noqa: E402
from rec_jax.eval.confidence import t_ci95  # noqa: E402
from rec_jax.runs import staged_run_dir  # noqa: E402
from rec_jax.tensorboard import EventLog, curve_to_events  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Config:
    """Adaptive regulation study: fixed epsilons vs meta-bandits, PBT and drift detection."""

    out: Path = Path("runs/adaptive")  # run folder (replaced atomically at the end)
    seeds: int | None = None  # seeds averaged (95% CI over them; default 10, quick 5); vmapped in one jit per method
    quick: bool = False  # small size: fewer steps and streams, smaller PBT population
    steps: int | None = None  # T steps per stream (default 4000, quick 2000); a multiple of period and pbt_interval
    streams: int | None = None  # S users per seed (default 64, quick 32)
    data: str = "synthetic"  # "synthetic": a random ground truth (--num-users --num-items --dim); a dataset name or log file: the recommender env fitted to it
    num_users: int = 64  # users of the synthetic ground truth
    num_items: int = 20  # items (arms) of the synthetic ground truth
    dim: int = 4  # width of the ground-truth factors
    grid: str = "0.01,0.03,0.1,0.3"  # epsilons: the fixed settings and the meta-bandits' arms
    period: int = 25  # steps per meta-bandit decision
    meta_noise_std: float = 0.02  # TS meta-bandit: std of one period's mean reward
    meta_prior_std: float = 0.5  # TS meta-bandit: prior std of an arm's period reward (prior mean 0)
    meta_discount: float = 0.95  # TS meta-bandit: per-decision discount (memory ~ 1 / (1 - discount) periods)
    exp3_gamma: float = 0.1  # EXP3: uniform mixing
    exp3_eta: float = 2.0  # EXP3: rate on importance-weighted period rewards (in [0, 1])
    pbt_members: int | None = None  # PBT population size M (default 16, quick 8); members start on the grid
    pbt_interval: int = 50  # steps between PBT exploit/explore rounds
    drift_std: float = 0.03  # gradual_drift: per-step std of each user coordinate's random walk
    drift_epsilon: float = 0.03  # adaptive_drift_reset: epsilon while no change is detected
    false_alarm: float = 0.05  # adaptive_drift_reset: P(any false alarm over T) the threshold is set for
    ph_delta: float = 0.1  # adaptive_drift_reset: Page-Hinkley tolerated change per step
    boost: float = 0.3  # adaptive_drift_reset: epsilon at least this for boost_steps after an alarm
    boost_steps: int = 100  # adaptive_drift_reset: steps the boost lasts
    seed: int = 0  # root seed; seed i uses fold_in(key(seed), i)


def resolve(cfg: Config) -> dict:
    """The concrete settings (defaults filled in); ValueError for people on bad input."""
    try:
        grid = [float(x) for x in cfg.grid.split(",") if x.strip()]
    except ValueError as e:
        raise ValueError(f"--grid: expected comma-separated numbers, got {cfg.grid!r}") from e
    if len(grid) < 2 or any(not 0.0 <= e <= 1.0 for e in grid) or len(set(grid)) != len(grid):
        raise ValueError(f"--grid: expected >= 2 distinct epsilons in [0, 1], got {cfg.grid!r}")
    steps = cfg.steps if cfg.steps is not None else (2000 if cfg.quick else 4000)
    streams = cfg.streams if cfg.streams is not None else (32 if cfg.quick else 64)
    members = cfg.pbt_members if cfg.pbt_members is not None else (8 if cfg.quick else 16)
    seeds = cfg.seeds if cfg.seeds is not None else (5 if cfg.quick else 10)
    if seeds < 2:
        raise ValueError(f"--seeds: expected >= 2 (a CI needs two), got {seeds}")
    if streams < 1 or members < 2 or cfg.period < 1 or cfg.pbt_interval < 1:
        raise ValueError(f"--streams/--pbt-members/--period/--pbt-interval: expected >= 1, >= 2, >= 1, >= 1; got "
                         f"{streams}, {members}, {cfg.period}, {cfg.pbt_interval}")
    if steps < 2 or steps % cfg.period or steps % cfg.pbt_interval:
        raise ValueError(f"--steps: expected a multiple of --period={cfg.period} and --pbt-interval="
                         f"{cfg.pbt_interval}, got {steps}")
    if cfg.data != "synthetic":
        from rec_jax.data.fetch import DATASETS

        if cfg.data not in DATASETS and not Path(cfg.data).is_file():
            raise ValueError(f"--data {cfg.data}: no such file; expected synthetic, a dataset name "
                             f"({', '.join(sorted(DATASETS))}) or an interaction log")
    if not 0.0 < cfg.false_alarm < 1.0:
        raise ValueError(f"--false-alarm: expected in (0, 1), got {cfg.false_alarm}")
    names = [f"fixed_eps_{e:g}" for e in grid] + [f"adaptive_meta_{m}" for m in META_METHODS] + [
        "adaptive_pbt", "adaptive_drift_reset"]
    return dict(dataclasses.asdict(cfg), out=str(cfg.out), grid=grid, seeds=seeds, steps=steps, streams=streams,
                pbt_members=members, shift_step=steps // 2, variants=names)


def summarise(curves: dict, settings: dict) -> tuple[dict, dict]:
    """(metrics, targets) from the per-step rewards."""
    metrics, targets = {}, {}
    variants = settings["variants"]
    fixed = [v for v in variants if v.startswith("fixed_")]
    adaptive = [v for v in variants if v.startswith("adaptive_")]
    shift = settings["shift_step"]
    for s, scen in enumerate(SCENARIOS):
        totals = {v: curves[v][s].astype(np.float64).sum(axis=1) for v in variants}  # [seeds]
        for v in variants:
            metrics[f"cumulative_reward/{scen}/{v}"] = float(totals[v].mean())
            metrics[f"cumulative_reward/{scen}/{v}_ci95"] = float(t_ci95(totals[v]))
        best = max(fixed, key=lambda v: totals[v].mean())
        targets[f"{scen}/best_fixed"] = best
        for v in adaptive:
            diff = totals[v] - totals[best]
            targets[f"{scen}/{v}/minus_best_fixed"] = float(diff.mean())
            targets[f"{scen}/{v}/minus_best_fixed_ci95"] = float(t_ci95(diff))
            if scen == "stationary":
                # Issue: each adaptive method >= best fixed minus the best fixed's 95% CI.
                targets[f"stationary/{v}/met"] = bool(totals[v].mean() >= totals[best].mean() - t_ci95(totals[best]))
            if scen == "abrupt_drift":
                # Issue: beats EVERY fixed setting by more than the CI of the (paired) difference.
                margins = [(totals[v] - totals[f]) for f in fixed]
                targets[f"abrupt_drift/{v}/beats_every_fixed"] = bool(
                    all(d.mean() > t_ci95(d) for d in margins))
                post = {w: curves[w][s][:, shift:].astype(np.float64).sum(axis=1) for w in (v, best)}
                targets[f"abrupt_drift/{v}/post_shift_minus_best_fixed"] = float((post[v] - post[best]).mean())
    targets["stationary/all_adaptive_met"] = all(targets[f"stationary/{v}/met"] for v in adaptive)
    targets["abrupt_drift/some_adaptive_beats_every_fixed"] = any(
        targets[f"abrupt_drift/{v}/beats_every_fixed"] for v in adaptive)
    alarms = curves["trace/drift_reset/alarms"][0]  # stationary: [seeds, S]
    rate = (alarms > 0).mean(axis=1)
    metrics["false_alarm_rate/stationary/adaptive_drift_reset"] = float(rate.mean())
    metrics["false_alarm_rate/stationary/adaptive_drift_reset_ci95"] = float(t_ci95(rate))
    targets["false_alarm/configured"] = settings["false_alarm"]
    targets["false_alarm/threshold"] = curves["_threshold"]
    for s, scen in enumerate(SCENARIOS):
        targets[f"alarms_per_stream/{scen}"] = float(curves["trace/drift_reset/alarms"][s].mean())
    return metrics, targets


def plot(curves: dict, settings: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rec_jax.runs import save_figure

    variants = settings["variants"]
    fixed = [v for v in variants if v.startswith("fixed_")]
    t = np.arange(1, settings["steps"] + 1)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=False)
    for s, (scen, ax) in enumerate(zip(SCENARIOS, axes)):
        cum = {v: np.cumsum(curves[v][s].astype(np.float64), axis=1) for v in variants}
        best = max(fixed, key=lambda v: cum[v][:, -1].mean())
        for v in variants:
            gap = cum[v] - cum[best]
            mean, ci = gap.mean(axis=0), t_ci95(gap)
            ax.plot(t, mean, label=v, ls="--" if v.startswith("fixed_") else "-")
            ax.fill_between(t, mean - ci, mean + ci, alpha=0.15)
        if scen == "abrupt_drift":
            ax.axvline(settings["shift_step"], color="k", lw=0.5)
        ax.set_title(f"{scen}: gap to {best}")
        ax.set_xlabel("t")
    axes[0].set_ylabel("cumulative reward - best fixed (95% CI)")
    axes[0].legend(fontsize=7)
    save_figure(fig, out / "cumulative_reward.png")

    period = settings["period"]
    fig, axes = plt.subplots(len(META_METHODS), 3, figsize=(15, 3.5 * len(META_METHODS)), squeeze=False)
    for i, method in enumerate(META_METHODS):
        eps = curves[f"trace/meta_{method}/epsilon"]  # [3, seeds, P]
        tp = (np.arange(eps.shape[-1]) + 0.5) * period
        for s, scen in enumerate(SCENARIOS):
            ax = axes[i, s]
            for k in range(eps.shape[1]):
                ax.plot(tp, eps[s, k], lw=0.6, alpha=0.4, drawstyle="steps-mid")
            ax.plot(tp, np.exp(np.log(eps[s]).mean(axis=0)), color="k", lw=1.5, label="geometric mean over seeds")
            ax.set_yscale("log")
            ax.set_title(f"meta_{method}, {scen}")
            if scen == "abrupt_drift":
                ax.axvline(settings["shift_step"], color="k", lw=0.5)
        axes[i, 0].set_ylabel("chosen epsilon")
    axes[0, 0].legend(fontsize=7)
    save_figure(fig, out / "chosen_setting.png")

    eps = curves["trace/pbt/epsilon"]  # [3, seeds, R, M]
    tr = (np.arange(eps.shape[2]) + 1) * settings["pbt_interval"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for s, (scen, ax) in enumerate(zip(SCENARIOS, axes)):
        for mbr in range(eps.shape[3]):
            ax.plot(tr, eps[s, 0, :, mbr], lw=0.7, alpha=0.6)
        ax.plot(tr, np.exp(np.log(eps[s]).mean(axis=(0, 2))), color="k", lw=1.5,
                label="geometric mean (all seeds, members)")
        ax.set_yscale("log")
        ax.set_title(f"PBT epsilons (seed 0 members), {scen}")
        ax.set_xlabel("t")
        if scen == "abrupt_drift":
            ax.axvline(settings["shift_step"], color="k", lw=0.5)
    axes[0].set_ylabel("epsilon")
    axes[0].legend(fontsize=7)
    save_figure(fig, out / "pbt_trajectories.png")


def write_events(events: EventLog, curves: dict, settings: dict) -> None:
    """TensorBoard scalars (means over seeds): rewards against t, and the epsilons chosen over time."""
    for s, scen in enumerate(SCENARIOS):
        reward = {v: curves[v][s].astype(np.float64) for v in settings["variants"]}  # [seeds, T]
        curve_to_events(events, scen, {f"{v}/cum_reward": np.cumsum(r, axis=1).mean(axis=0)
                                       for v, r in reward.items()})
        curve_to_events(events, scen, {f"{v}/reward": r.mean(axis=0) for v, r in reward.items()}, reduce="mean")
        for method in META_METHODS:
            eps = curves[f"trace/meta_{method}/epsilon"][s].mean(axis=0)  # [P]
            curve_to_events(events, f"{scen}/adaptive_meta_{method}/epsilon", eps,
                            steps=np.arange(len(eps)) * settings["period"] + 1)
        eps = curves["trace/pbt/epsilon"][s].mean(axis=(0, 2))  # [R]
        curve_to_events(events, f"{scen}/adaptive_pbt/epsilon", eps,
                        steps=(np.arange(len(eps)) + 1) * settings["pbt_interval"])


def main(cfg: Config) -> dict:
    """Run the study and write the run folder; returns the metrics dict."""
    settings = resolve(cfg)
    out = Path(cfg.out)
    from rec_jax.runs import provenance, write_json

    curves = run_all(settings)
    metrics, targets = summarise(curves, settings)
    for scen in SCENARIOS:
        print(f"{scen}:")
        for v in settings["variants"]:
            k = f"cumulative_reward/{scen}/{v}"
            print(f"  {v:>24s} {metrics[k]:9.1f} ± {metrics[k + '_ci95']:6.1f}", flush=True)
    for k, v in targets.items():
        print(f"  target {k}: {v}")

    with staged_run_dir(out) as tmp:
        write_json(tmp / "config.json", {"config": settings, "provenance": provenance(),
                                         "timings_s": curves["_timings"]})
        write_json(tmp / "metrics.json", metrics)
        write_json(tmp / "targets.json", targets)
        arrays = {k.replace("/", "__"): np.asarray(v) for k, v in curves.items() if not k.startswith("_")}
        np.savez(tmp / "curves.npz", t=np.arange(1, settings["steps"] + 1), **arrays)
        plot(curves, settings, tmp)
        with EventLog(tmp) as events:
            write_events(events, curves, settings)
    return metrics


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
