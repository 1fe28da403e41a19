"""Offline hyperparameter search for the Transformer: learning rate x dropout x weight decay as ONE vmapped population.

    python experiments/hparam_search.py --quick                  # ML-100K SASRec, 2x2x2 grid, a few minutes on 2 cores
    python experiments/hparam_search.py --epochs 30 --sequential-epochs 3
    python experiments/hparam_search.py --preset tiny-sasrec --data synthetic --quick
    python -m experiments.hparam_search --lrs 5e-4,1e-3,3e-3 --dropouts 0.1,0.3,0.5 --weight-decays 0,0.1

Every grid point is a member of a population (``rec_jax.train.population``): params and
optimizer states stacked on a leading [P] axis, learning rate and weight decay in the
optimizer state (``optax.inject_hyperparams``), dropout rates traced, the same batches
and initial parameters for all members, one jitted ``lax.scan`` per epoch vmapped over
members, and validation NDCG@10 (all items ranked) of all members in one vmapped pass.
Each member keeps its best-validation epoch (early stopping as ``fit``); the member with
the highest validation NDCG@10 is selected, and every member's best params are ranked
on the test users too. A grid dropout value sets both the hidden and the attention
dropout rate.

The cost is measured in the same run: the same configs are trained one after another
through the same code path at P=1 (one compile serves all of them, since the
hyperparameters are data), half before and half after the population, so both see the
same shared-machine load; ``--sequential-epochs`` may be fewer than ``--epochs``. Per-epoch
times (training + validation ranking) are medians; compile times are reported apart.

Writes into ``--out`` (default ``runs/hparam_search``), all at the end, via a temp folder:

* ``config.json``   the resolved base config, the grid and provenance
* ``metrics.json``  ``valid_ndcg@10/<config>`` and ``test_ndcg@10/<config>`` per grid point,
  ``selected/*`` (the chosen learning_rate, dropout, weight_decay, its valid and test
  NDCG@10, best epoch), ``seconds_per_config/population`` and ``seconds_per_config/sequential``
  (median seconds per epoch, per configuration, times the population's epochs),
  ``seconds_per_config/ratio``, ``compile_s/*``, ``compiles/sequential`` (1: one compile serves all P=1 runs),
  ``seconds_per_epoch/*`` and
  ``check/max_abs_diff_valid_ndcg@10`` (population vs sequential at the same epochs: float reordering
  only, amplified over the steps of an epoch; 1e-5 after a few steps, see tests/test_population.py)
* ``curves.npz``    per-epoch ``valid_ndcg@10`` and ``train_loss`` f64[E, P] of the population
* ``valid_ndcg.png`` best validation NDCG@10 per config (selected one marked) and the curves
"""
from __future__ import annotations

import dataclasses
import itertools
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli
from rec_jax.train.config import PRESETS, TrainConfig, get_preset
from rec_jax.runs import staged_run_dir

SWEPT = ("learning_rate", "weight_decay", "dropout", "attn_dropout")
QUICK = {"epochs": 2, "sequential_epochs": 1}  # --quick: 2x2x2 on ML-100K in a few minutes on 2 cores
DEFAULT_EPOCHS, DEFAULT_SEQUENTIAL_EPOCHS = 20, 3


NOT_OVERRIDDEN = SWEPT + ("checkpoint_every",)  # the grid sets these; no checkpoints


@dataclasses.dataclass(frozen=True)
class Config:
    """Grid search of one preset as a vmapped population, overridden by any TrainConfig field given."""

    preset: str = dataclasses.field(default="ml100k-sasrec",
                                    metadata={"help": f"base config, one of: {', '.join(sorted(PRESETS))}"})
    out: Path = Path("runs/hparam_search")  # run folder (replaced atomically at the end)
    quick: bool = dataclasses.field(default=False, metadata={
        "help": f"{QUICK['epochs']} population epochs, {QUICK['sequential_epochs']} sequential"})
    lrs: str = "1e-3,3e-3"  # comma-separated learning rates
    dropouts: str = "0.2,0.5"  # comma-separated dropout rates (hidden and attention)
    weight_decays: str = "0,0.1"  # comma-separated AdamW weight decays (0 = Adam)
    sequential_epochs: int | None = dataclasses.field(default=None, metadata={
        "help": f"epochs of each one-after-another baseline run (default {DEFAULT_SEQUENTIAL_EPOCHS}, "
                f"quick {QUICK['sequential_epochs']}; 0 = no baseline)"})
    progress: bool = True  # progress bars


def _floats(text: str, flag: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{flag}={text!r}: expected comma-separated numbers") from None
    if not values:
        raise ValueError(f"{flag}: expected at least one number")
    return values


def grid_configs(base: TrainConfig, lrs, dropouts, weight_decays) -> list[TrainConfig]:
    """lr-major grid: one TrainConfig per (lr, dropout, weight decay)."""
    return [dataclasses.replace(base, learning_rate=lr, dropout=d, attn_dropout=d, weight_decay=wd)
            for lr, d, wd in itertools.product(lrs, dropouts, weight_decays)]


def config_name(c: TrainConfig) -> str:
    """A metrics.json key segment, e.g. ``lr_0.001_dropout_0.2_wd_0``."""
    return f"lr_{c.learning_rate:g}_dropout_{c.dropout:g}_wd_{c.weight_decay:g}"


def _epoch_wall(result) -> np.ndarray:
    """Training + validation seconds of each epoch run, f64[epochs_run]."""
    n = result.epochs_run
    return result.history["epoch_s"][:n] + result.history["eval_s"][:n]


def plot(names, best, selected, history, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rec_jax.runs import save_figure

    fig, (ax_bar, ax_curve) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [3, 2]})
    colors = ["tab:orange" if i == selected else "tab:blue" for i in range(len(names))]
    ax_bar.bar(np.arange(len(names)), best, color=colors)
    ax_bar.set_xticks(np.arange(len(names)), names, rotation=35, ha="right", fontsize=7)
    ax_bar.set_ylabel("best valid NDCG@10")
    lo, hi = float(np.min(best)), float(np.max(best))
    ax_bar.set_ylim(max(0.0, lo - 0.1 * (hi - lo + 1e-6)), hi + 0.1 * (hi - lo + 1e-6))
    ax_bar.set_title(f"per config (selected: {names[selected]})", fontsize=9)
    epochs = np.arange(history.shape[0])
    for i, name in enumerate(names):
        ax_curve.plot(epochs, history[:, i], marker=".", lw=2 if i == selected else 1, label=name)
    ax_curve.set(xlabel="epoch", ylabel="valid NDCG@10", title="validation curves (full ranking)")
    ax_curve.legend(fontsize=6)
    save_figure(fig, path)


def main(argv=None) -> dict:
    """Parse ``argv``, run the search and write the run folder; returns the metrics dict (errors raise)."""
    return run(*rec_jax.cli.parse_with_overrides(Config, TrainConfig, argv, __doc__, skip=NOT_OVERRIDDEN))


def run(args: Config, changes: dict) -> dict:
    """The search of ``args`` on the preset with the TrainConfig ``changes``; returns the metrics dict."""
    base = rec_jax.cli.apply_overrides(get_preset(args.preset), changes)
    epochs = changes["epochs"] if "epochs" in changes else (QUICK["epochs"] if args.quick else DEFAULT_EPOCHS)
    seq_epochs = args.sequential_epochs
    if seq_epochs is None:
        seq_epochs = QUICK["sequential_epochs"] if args.quick else DEFAULT_SEQUENTIAL_EPOCHS
    if epochs < 1:
        raise ValueError(f"--epochs={epochs}: expected >= 1")
    if not 0 <= seq_epochs <= epochs:
        raise ValueError(f"--sequential-epochs={seq_epochs}: expected 0 <= sequential epochs <= --epochs={epochs}")
    base = dataclasses.replace(base, epochs=epochs, checkpoint_every=0)
    configs = grid_configs(base, _floats(args.lrs, "--lrs"), _floats(args.dropouts, "--dropouts"),
                           _floats(args.weight_decays, "--weight-decays"))
    names = [config_name(c) for c in configs]
    if len(set(names)) != len(names):
        raise ValueError("--lrs/--dropouts/--weight-decays: expected distinct values (two grid points coincide)")

    from rec_jax.models import make_model
    from rec_jax.runs import provenance, write_json
    from rec_jax.train.config import model_config
    from rec_jax.train.pipeline import prepare
    from rec_jax.train.population import PopulationEvaluator, fit_population, population_hparams

    base, hparams = population_hparams(configs)  # validates the grid (one-line ValueError)
    out = Path(args.out)
    prepared = prepare(base)
    model = make_model(base.model, model_config(base, prepared.num_items))
    # About eval_batch_size (member, user) rows a pass either way: P members rank eval_batch_size / P users
    # at a time, so the population's logits f32[P, B, N+1] stay as cache-sized as one config's.
    valid_eval = PopulationEvaluator(model, prepared.valid, max(1, base.eval_batch_size // len(configs)))
    seq_eval = PopulationEvaluator(model, prepared.valid, base.eval_batch_size)
    progress = args.progress
    num = len(configs)

    # Sequential baseline, split around the population run so that both meet the same machine load.
    seq_config = dataclasses.replace(base, epochs=seq_epochs)
    seq_cache: dict = {}
    sequential: dict[int, object] = {}

    def run_sequential(members):
        for i in members:
            _, hp = population_hparams([configs[i]])
            sequential[i] = fit_population(model, seq_config, hp, prepared.windows, seq_eval,
                                           cache=seq_cache, progress=False)
            print(f"sequential {i + 1}/{num} {names[i]}: {np.median(_epoch_wall(sequential[i])):.2f} s/epoch",
                  flush=True)

    if seq_epochs:
        run_sequential(range(num // 2))
    start = time.perf_counter()
    pop = fit_population(model, base, hparams, prepared.windows, valid_eval, progress=progress)
    pop_wall = time.perf_counter() - start
    print(f"population of {num}: {np.median(_epoch_wall(pop)):.2f} s/epoch, compile {pop.compile_s:.1f} s", flush=True)
    if seq_epochs:
        run_sequential(range(num // 2, num))

    best = pop.best_metric.astype(np.float64)
    selected = pop.best_member
    test_key = "masked/ndcg@10" if base.mask_history else "unmasked/ndcg@10"
    test = PopulationEvaluator(model, prepared.test, base.eval_batch_size, like=valid_eval)(pop.best_params)[test_key]

    metrics: dict = {}
    for i, name in enumerate(names):
        metrics[f"valid_ndcg@10/{name}"] = float(best[i])
        metrics[f"test_ndcg@10/{name}"] = float(test[i])
    chosen = configs[selected]
    metrics.update({
        "selected/index": selected,
        "selected/learning_rate": chosen.learning_rate,
        "selected/dropout": chosen.dropout,
        "selected/weight_decay": chosen.weight_decay,
        "selected/valid_ndcg@10": float(best[selected]),
        "selected/test_ndcg@10": float(test[selected]),
        "selected/best_epoch": int(pop.best_epoch[selected]),
        "num_configs": num,
        "epochs/population": int(pop.epochs_run),
        "epochs/sequential": int(seq_epochs),
        "compile_s/population": float(pop.compile_s),
        "seconds_per_epoch/population_train": float(np.median(pop.history["epoch_s"][: pop.epochs_run])),
        "seconds_per_epoch/population_eval": float(np.median(pop.history["eval_s"][: pop.epochs_run])),
        "population_wall_s": float(pop_wall),
        "num_windows": int(prepared.windows.seq.shape[0]),
        "steps_per_epoch": int(pop.steps_per_epoch),
        **prepared.stats(),
    })
    pop_epoch = float(np.median(_epoch_wall(pop)))
    metrics["seconds_per_config/population"] = pop_epoch / num * pop.epochs_run
    if seq_epochs:
        runs = [sequential[i] for i in range(num)]
        seq_epoch = float(np.median(np.concatenate([_epoch_wall(r) for r in runs])))
        metrics["seconds_per_config/sequential"] = seq_epoch * pop.epochs_run
        metrics["seconds_per_config/ratio"] = metrics["seconds_per_config/population"] / metrics[
            "seconds_per_config/sequential"]
        # One compile serves every sequential run: the hyperparameters are data.
        metrics["compile_s/sequential"] = float(sum(r.compile_s for r in runs))
        metrics["compiles/sequential"] = int(sum(r.compile_s > 0 for r in runs))
        metrics["seconds_per_epoch/sequential_train"] = float(
            np.median(np.concatenate([r.history["epoch_s"][: r.epochs_run] for r in runs])))
        metrics["seconds_per_epoch/sequential_eval"] = float(
            np.median(np.concatenate([r.history["eval_s"][: r.epochs_run] for r in runs])))
        # The same trajectories: each sequential run repeats its member's first epochs, up to float
        # reordering (batched vs single matmuls) that hundreds of Adam steps amplify.
        diffs = [np.abs(r.history["valid_ndcg@10"][: r.epochs_run, 0] - pop.history["valid_ndcg@10"][: r.epochs_run, i])
                 for i, r in enumerate(runs)]
        metrics["check/max_abs_diff_valid_ndcg@10"] = float(np.max(np.concatenate(diffs)))

    settings = {
        "base": base, "preset": args.preset, "quick": args.quick, "epochs": epochs, "sequential_epochs": seq_epochs,
        "grid": {"learning_rate": _floats(args.lrs, "--lrs"), "dropout": _floats(args.dropouts, "--dropouts"),
                 "weight_decay": _floats(args.weight_decays, "--weight-decays")},
        "configs": [dict(name=n, **{f: getattr(c, f) for f in SWEPT}) for n, c in zip(names, configs)],
        "dropout_note": "a grid dropout value sets both dropout and attn_dropout",
    }
    # Everything goes into a temp folder beside OUT, renamed at the end: never half-written.
    with staged_run_dir(out) as tmp:
        write_json(tmp / "config.json", {"config": settings, "provenance": provenance()})
        write_json(tmp / "metrics.json", metrics)
        n = pop.epochs_run
        np.savez(tmp / "curves.npz", valid_ndcg10=pop.history["valid_ndcg@10"][:n],
                 train_loss=pop.history["train_loss"][:n], names=np.asarray(names))
        plot(names, best, selected, pop.history["valid_ndcg@10"][:n], tmp / "valid_ndcg.png")
    print(f"selected {names[selected]}: valid NDCG@10 {best[selected]:.4f}, test {test[selected]:.4f}")
    if seq_epochs:
        print(f"seconds per config: population {metrics['seconds_per_config/population']:.2f}, sequential "
              f"{metrics['seconds_per_config/sequential']:.2f} (ratio {metrics['seconds_per_config/ratio']:.3f}); "
              f"compile: population {pop.compile_s:.1f} s, sequential {metrics['compile_s/sequential']:.1f} s")
    print(f"wrote {out}/metrics.json and {out}/valid_ndcg.png")
    return metrics


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, run, argv, __doc__, overrides=TrainConfig, skip=NOT_OVERRIDDEN)


if __name__ == "__main__":
    sys.exit(cli())
