"""One training run end to end: data -> fit -> best-checkpoint test metrics -> run record.

Writes ``out_dir/config.json``, ``metrics.json``, ``per_user.npz`` (per-user test
metrics, for paired bootstrap comparisons between runs), ``learning_curve.png``,
``checkpoints/`` and ``tb/`` (TensorBoard events). Only ``checkpoints/`` and ``tb/``
exist while training runs; the record files are written atomically at the end.
"""
from __future__ import annotations

import dataclasses
import resource
from pathlib import Path
from typing import Any

import jax
import numpy as np

from rec_jax import runs
from rec_jax.data.fetch import data_record
from rec_jax.eval.bootstrap import bootstrap_ci95
from rec_jax.models import make_model
from rec_jax.tensorboard import EventLog
from rec_jax.train.config import TrainConfig, model_config
from rec_jax.train.evaluate import Evaluator
from rec_jax.train.pipeline import PreparedData, prepare
from rec_jax.train.trainer import FitResult, fit

REPORTED = ("ndcg@10", "hr@10", "mrr@10", "ndcg@20", "hr@20", "mrr@20")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def summarize(config: TrainConfig, prepared: PreparedData, result: FitResult,
              test_per_user: dict[str, np.ndarray], eval_s: float | dict[str, float],
              seed: int = 0) -> dict[str, Any]:
    """The flat metrics.json dict of one run (docs/DESIGN.md key conventions).

    eval_s: the test pass's seconds, or ``Evaluator.timings``' dict (encode_s, score_s, rank_s, eval_s)."""
    timing = dict(eval_s) if isinstance(eval_s, dict) else {"eval_s": float(eval_s)}
    chosen = "masked" if config.mask_history else "unmasked"
    metrics: dict[str, Any] = {}
    for convention in ("masked", "unmasked"):
        for name in REPORTED:
            values = test_per_user[f"{convention}/{name}"]
            metrics[f"test_{convention}/{name}"] = float(np.mean(values))
            if convention == chosen:
                metrics[f"test/{name}"] = float(np.mean(values))
                if name in ("ndcg@10", "hr@10"):
                    metrics[f"test/{name}_ci95"] = bootstrap_ci95(values, seed=seed)
    history = result.history
    best = result.best_epoch
    epoch_s = history["epoch_s"][: result.epochs_run]
    metrics.update({
        "valid/ndcg@10": float(history["valid_ndcg@10"][best]),
        f"valid_{'unmasked' if config.mask_history else 'masked'}/ndcg@10":
            float(history["valid_other_ndcg@10"][best]),
        "best_epoch": int(best),
        "epochs_run": int(result.epochs_run),
        "train_epoch_s_median": float(np.median(epoch_s)),
        "train_s_to_best": float(np.sum(history["epoch_s"][: best + 1])),
        "compile_s": float(result.compile_s),
        **{k: float(v) for k, v in timing.items()},
        "peak_rss_mb": peak_rss_mb(),
        "num_windows": int(prepared.windows.seq.shape[0]),
        "windows_per_batch": int(result.windows_per_batch),
        **prepared.stats(),
    })
    return metrics


def plot_learning_curve(history: dict[str, np.ndarray], epochs_run: int, best_epoch: int,
                        title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = np.arange(epochs_run)
    fig, (ax_loss, ax_ndcg) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_loss.plot(epochs, history["train_loss"][:epochs_run], marker=".")
    ax_loss.set(xlabel="epoch", ylabel="training loss", title="training loss")
    ax_ndcg.plot(epochs, history["valid_ndcg@10"][:epochs_run], marker=".", label="valid NDCG@10")
    ax_ndcg.axvline(best_epoch, color="gray", ls="--", label=f"best epoch {best_epoch}")
    ax_ndcg.set(xlabel="epoch", ylabel="NDCG@10", title="validation (full ranking)")
    ax_ndcg.legend()
    fig.suptitle(title)
    runs.save_figure(fig, path)


def epoch_scalars(row: dict[str, float], mask_history: bool, num_windows: int) -> dict[str, float]:
    """TensorBoard tags of one epoch's history ``row`` (metrics.json key conventions)."""
    return {
        "train/loss": row["train_loss"],
        "valid/ndcg@10": row["valid_ndcg@10"],  # the early-stopping convention, as in metrics.json
        f"valid_{'unmasked' if mask_history else 'masked'}/ndcg@10": row["valid_other_ndcg@10"],
        "time/epoch_s": row["epoch_s"],
        "time/eval_s": row["eval_s"],
        "throughput/windows_per_s": num_windows / row["epoch_s"],
    }


def train_and_evaluate(config: TrainConfig, out_dir: str | Path, *, resume: bool = False,
                       progress: bool = True, prepared: PreparedData | None = None,
                       log=print, write: bool = True) -> dict[str, Any]:
    """Train ``config`` and write its run record into ``out_dir``; returns the metrics dict."""
    out_dir = Path(out_dir)
    prepared = prepared if prepared is not None else prepare(config)
    model = make_model(config.model, model_config(config, prepared.num_items))
    valid_eval = Evaluator(model, prepared.valid, config.eval_batch_size)
    num_windows = int(prepared.windows.seq.shape[0])
    # purge "first": a resumed run supersedes what the killed one logged from its first epoch on
    with EventLog(out_dir, purge_step="first") as events:

        def on_epoch(epoch, row):
            events.scalars(epoch, epoch_scalars(row, config.mask_history, num_windows))
            events.flush()  # one small write per epoch: a live TensorBoard follows the run

        result = fit(model, config, prepared.windows, valid_eval, ckpt_dir=out_dir / "checkpoints",
                     resume=resume, progress=progress, log=log, on_epoch=on_epoch if write else None)
        test_eval = Evaluator(model, prepared.test, config.eval_batch_size)
        test_per_user = test_eval.per_user(result.best_params)
        timing = test_eval.timings(result.best_params)  # encode_s, score_s, rank_s, eval_s
        metrics = summarize(config, prepared, result, test_per_user, timing, seed=config.seed)
        if write:  # the best-validation params' test metrics, one step after the last epoch
            events.scalars(result.epochs_run, {k: v for k, v in metrics.items() if k.startswith("test")})
    if write:
        runs.write_config(out_dir, config, resumed_from_epoch=result.resumed_from, data=data_record(config.data))
        np.savez(out_dir / "per_user.npz", **{k.replace("/", "__"): v for k, v in test_per_user.items()})
        plot_learning_curve(result.history, result.epochs_run, result.best_epoch,
                            f"{config.model} on {config.data}", out_dir / "learning_curve.png")
        runs.write_json(out_dir / "metrics.json", metrics)
    return metrics
