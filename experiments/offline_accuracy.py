"""Offline accuracy table: SASRec, BERT4Rec, GRU4Rec and the popularity / MF baselines over seeds.

    python experiments/offline_accuracy.py --seeds 3
    python experiments/offline_accuracy.py --seeds 3 --cv-folds 5      # + 5-fold CV over users
    python experiments/offline_accuracy.py --quick --data synthetic

Leave-one-out, full ranking over all items. Writes OUT/metrics.json with
``<model>/test/ndcg@10`` (mean over seeds) and ``..._ci95`` (95% t-interval
half-width over seeds), ``cv/<model>/ndcg@10`` and ``..._std`` (over folds), and
OUT/table.md. Each (model, seed[, fold]) run keeps its own folder under OUT/runs/,
so a killed study resumes where it stopped (finished runs are not redone).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

import rec_jax.cli
from rec_jax.models.base import MODEL_NAMES

SEQUENTIAL = MODEL_NAMES  # every registered sequential model (each has ml100k-<name> and tiny-<name> presets)
BASELINES = ("popularity", "mf")
REPORTED = ("ndcg@10", "hr@10", "mrr@10", "ndcg@20", "hr@20")
QUICK_EPOCHS = 8


@dataclasses.dataclass(frozen=True)
class Config:
    """Offline accuracy of every model over seeds, and k-fold CV over users."""

    out: str = "runs/offline_accuracy"  # the study's run folder
    seeds: int = 3  # seeds per model (0..N-1)
    seed: int = 0  # first seed
    models: str = ",".join(SEQUENTIAL + BASELINES)  # comma-separated
    data: str = "ml-100k"  # ml-100k | synthetic | PATH
    cv_folds: int = 0  # k-fold CV over users (0 = off; 5 = the usual)
    epochs: int = 0  # override the presets' epoch bound (0: the presets')
    mask_history: bool = True  # rank with the seen items masked (--no-mask-history: RecBole's convention)
    quick: bool = dataclasses.field(default=False, metadata={"help": f"1 seed, at most {QUICK_EPOCHS} epochs"})
    progress: bool = True  # progress bars


def t_ci95(values) -> float:
    """95% half-width of the mean over seeds (Student t); 0 for a single value."""
    from rec_jax.eval.confidence import t_ci95 as half_width

    values = np.asarray(values, np.float64)
    return float(half_width(values)) if values.size > 1 else 0.0


def sequential_config(model: str, args, seed: int):
    from rec_jax.train.config import get_preset

    config = get_preset(f"ml100k-{model}" if args.data == "ml-100k" else f"tiny-{model}")
    config = dataclasses.replace(config, data=args.data, seed=seed, mask_history=args.mask_history)
    if args.epochs:
        config = dataclasses.replace(config, epochs=args.epochs)
    if args.quick:
        config = dataclasses.replace(config, epochs=min(config.epochs, QUICK_EPOCHS))
    return config


def baseline_metrics(name: str, prepared, seed: int, quick: bool) -> dict[str, float]:
    """Test metrics of most-popular or MF on the same split (MF needs the users' ids)."""
    import jax
    import jax.numpy as jnp

    from rec_jax.models import fit_mf, fit_most_popular, mf_scores, most_popular_scores
    from rec_jax.train.evaluate import rank_metrics

    test = prepared.test
    num_items = prepared.num_items
    train = prepared.split.train
    if name == "popularity":
        counts = fit_most_popular(train.items, num_items)
        logits = most_popular_scores(counts, test.targets.shape[0])
    else:
        params = fit_mf(jax.random.key(seed), (train.offsets, train.items), train.num_users, num_items,
                        epochs=5 if quick else 20)
        logits = mf_scores(params, jnp.arange(test.targets.shape[0]))
    per_user = rank_metrics(jnp.asarray(logits), jnp.asarray(test.targets), jnp.asarray(test.seen))
    return {k: float(np.mean(v)) for k, v in per_user.items()}


def run_one(model: str, args, seed: int, out: Path, prepared) -> dict:
    """One (model, seed) run, reusing a finished one found on disk."""
    done = out / "metrics.json"
    if done.exists():
        return json.loads(done.read_text())
    from rec_jax import runs

    if model in SEQUENTIAL:
        from rec_jax.train.run import train_and_evaluate

        config = sequential_config(model, args, seed)
        return train_and_evaluate(config, out, resume=True, prepared=prepared, progress=args.progress)
    per_user_means = baseline_metrics(model, prepared, seed, args.quick)
    chosen = "masked" if args.mask_history else "unmasked"
    metrics = {f"test/{k}": per_user_means[f"{chosen}/{k}"] for k in REPORTED}
    metrics.update({f"test_{c}/{k}": per_user_means[f"{c}/{k}"] for c in ("masked", "unmasked") for k in REPORTED})
    runs.write_json(done, metrics)
    return metrics


def main(argv=None) -> dict:
    """Parse ``argv`` and run the study; returns the metrics (errors raise; ``cli`` makes them one line)."""
    return run(rec_jax.cli.parse(Config, argv, __doc__))


def run(args: Config) -> dict:
    """The study of ``args``: every (model, seed[, fold]) run, OUT/metrics.json and OUT/table.md."""
    models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(models) - set(SEQUENTIAL + BASELINES))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; expected some of {list(SEQUENTIAL + BASELINES)}")
    if args.quick:
        args = dataclasses.replace(args, seeds=1)
    seeds = [args.seed + i for i in range(args.seeds)]

    from rec_jax import runs
    from rec_jax.data import kfold_users, load
    from rec_jax.train.pipeline import prepare, prepare_fold

    base = sequential_config("sasrec", args, seeds[0])
    seqs = load(args.data, min_user=base.min_user_interactions, min_item=base.min_item_interactions,
                filter=base.filter)
    out = Path(args.out)
    metrics: dict[str, float] = {}
    per_model = {}
    for model in models:
        prepared = prepare(sequential_config(model, args, seeds[0]) if model in SEQUENTIAL else base, seqs=seqs)
        results = [run_one(model, args, s, out / "runs" / f"{model}_seed{s}", prepared) for s in seeds]
        per_model[model] = results
        for key in REPORTED + tuple(f"_{c}/{k}" for c in ("masked", "unmasked") for k in REPORTED):
            full = f"test/{key}" if not key.startswith("_") else f"test{key}"
            values = [r[full] for r in results]
            metrics[f"{model}/{full}"] = float(np.mean(values))
            metrics[f"{model}/{full}_ci95"] = t_ci95(values)
        if model in SEQUENTIAL:
            metrics[f"{model}/best_epoch"] = float(np.mean([r["best_epoch"] for r in results]))
            metrics[f"{model}/train_s_to_best"] = float(np.mean([r["train_s_to_best"] for r in results]))
    if args.cv_folds:
        folds = kfold_users(seqs.num_users, args.cv_folds, seed=seeds[0])
        for model in models:
            if model == "mf":
                continue  # MF has no factors for held-out users: it is not defined under user-level CV
            fold_values = []
            for f, (train_users, test_users) in enumerate(folds):
                config = sequential_config(model, args, seeds[0]) if model in SEQUENTIAL else base
                prepared = prepare_fold(config, seqs, train_users, test_users)
                result = run_one(model, args, seeds[0], out / "runs" / f"{model}_cv{f}", prepared)
                fold_values.append(result["test/ndcg@10"])
            metrics[f"cv/{model}/ndcg@10"] = float(np.mean(fold_values))
            metrics[f"cv/{model}/ndcg@10_std"] = float(np.std(fold_values, ddof=1))
    runs.write_config(out, dataclasses.asdict(args), seeds=seeds)
    runs.write_json(out / "metrics.json", metrics)
    lines = ["| model | NDCG@10 | HR@10 | MRR@10 | NDCG@20 | HR@20 |", "|---|---|---|---|---|---|"]
    for model in models:
        cells = [f"{metrics[f'{model}/test/{k}']:.4f} ± {metrics[f'{model}/test/{k}_ci95']:.4f}" for k in REPORTED]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    convention = "seen items masked" if args.mask_history else "unmasked (RecBole)"
    header = (f"# Offline accuracy on {args.data}\n\nLeave-one-out, full ranking, {convention}; mean ± 95% CI "
              f"over seeds {seeds}.\n\n")
    (out / "table.md").write_text(header + "\n".join(lines) + "\n")
    print(header + "\n".join(lines))
    return metrics


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, run, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
