"""Training and evaluation throughput of a preset, as ONE JSON line.

    python experiments/bench_train.py --preset ml100k-sasrec --timed-epochs 5

Keys: sequences_per_s (training windows per second), positions_per_s (target
positions in the loss per second), epoch_s (median over the timed epochs, compile
excluded), eval_s = encode_s + rank_s (medians of warm passes over all test users:
encoding the histories, a scoring-only pass over the item chunks, the chunked ranking
pass; ``Evaluator.timings``), compile_s, peak_rss_mb (the whole process). No checkpoints are written.

Roofline keys (:mod:`rec_jax.roofline`), per optimizer step (``train_steps_per_s``):
``flops_per_step`` / ``bytes_per_step`` counted analytically
(:func:`rec_jax.train.step_cost.train_step_cost`: encoder matmuls and attention per
token, the output layer per loss position, backward = 2 x forward, Adam; bytes = the
parameter and optimizer traffic), ``xla_*_per_step`` from XLA's ``cost_analysis()`` of ONE
compiled step (dense loss path), the probed peaks, ``achieved_*``, ``roofline_fraction``,
``cpu_model``. ``--no-roofline`` skips the ~2 s of probes.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli
from rec_jax.train.config import PRESETS, TrainConfig, get_preset

NOT_OVERRIDDEN = ("epochs", "patience", "checkpoint_every")  # fixed by --timed-epochs: no early stop, no checkpoints


@dataclasses.dataclass(frozen=True)
class Config:
    """Time one preset, overridden by any TrainConfig field given (but epochs, patience, checkpoint_every)."""

    preset: str = dataclasses.field(default="ml100k-sasrec", metadata={"help": f"one of: {', '.join(sorted(PRESETS))}"})
    timed_epochs: int = 5  # epochs to time (after compilation)
    roofline: bool = True  # probe the machine's peak GFLOP/s and GB/s (~2 s) for roofline_fraction


def main(argv=None) -> dict:
    """Parse ``argv`` and run; returns the benchmark line (errors raise; ``cli`` makes them one line)."""
    return run(*rec_jax.cli.parse_with_overrides(Config, TrainConfig, argv, __doc__, skip=NOT_OVERRIDDEN))


def run(args: Config, changes: dict) -> dict:
    config = rec_jax.cli.apply_overrides(get_preset(args.preset), changes)
    # no early stop, no checkpoints: time exactly ``timed_epochs`` epochs
    config = dataclasses.replace(config, epochs=args.timed_epochs, patience=args.timed_epochs + 1,
                                 checkpoint_every=0)

    import numpy as np

    import jax

    from rec_jax import roofline
    from rec_jax.models import make_model
    from rec_jax.train.config import model_config
    from rec_jax.train.evaluate import Evaluator
    from rec_jax.train.pipeline import prepare
    from rec_jax.train.run import peak_rss_mb
    from rec_jax.train.step_cost import train_step_cost, xla_train_step
    from rec_jax.train.trainer import fit

    prepared = prepare(config)
    model = make_model(config.model, model_config(config, prepared.num_items))
    valid_eval = Evaluator(model, prepared.valid, config.eval_batch_size)
    result = fit(model, config, prepared.windows, valid_eval, progress=False, log=lambda *_: None)
    test_eval = Evaluator(model, prepared.test, config.eval_batch_size)
    timing = test_eval.timings(result.best_params, repeats=5)  # encode_s, score_s, rank_s, eval_s
    epoch_s = float(np.median(result.history["epoch_s"][: result.epochs_run]))
    # rows trained per epoch: every window (and its targets) window_repeats times
    num_windows = int(prepared.windows.seq.shape[0]) * config.window_repeats
    num_positions = int(np.asarray(prepared.windows.target_mask).sum()) * config.window_repeats
    wpb = result.windows_per_batch
    steps_per_epoch = -(-num_windows // wpb)
    if config.model == "bert4rec":  # loss on the Cloze-masked positions, about mask_prob of them
        targets_per_step = wpb * config.max_len * config.mask_prob
    else:
        targets_per_step = num_positions / steps_per_epoch
    num_params = sum(x.size for x in jax.tree.leaves(result.best_params))
    flops, nbytes, how = train_step_cost(config, prepared.num_items, wpb, targets_per_step, num_params)
    seq = np.asarray(prepared.windows.seq[:wpb])
    xla = xla_train_step(model, config, result.best_params, seq, np.asarray(prepared.windows.target_mask[:wpb]),
                         item_counts=_item_counts(config, prepared))
    peaks = roofline.measure_peaks() if args.roofline else {"peak_gflop_s": None, "peak_gb_s": None}
    out = {
        "preset": args.preset,
        "model": config.model,
        "sequences_per_s": num_windows / epoch_s,
        "positions_per_s": num_positions / epoch_s,
        "epoch_s": epoch_s,
        **timing,
        "compile_s": result.compile_s,
        "peak_rss_mb": peak_rss_mb(),
        "num_windows": num_windows,
        "num_positions": num_positions,
        "timed_epochs": result.epochs_run,
        "train_steps_per_s": steps_per_epoch / epoch_s,
        "windows_per_step": wpb,
        "num_params": num_params,
        **roofline.roofline_fields(steps_per_epoch / epoch_s, flops, nbytes, how, peaks["peak_gflop_s"],
                                   peaks["peak_gb_s"], xla["flops"], xla["bytes"]),
    }
    print(json.dumps(out))
    return out


def _item_counts(config, prepared):
    """Training item counts when the loss's proposal needs them (popularity-weighted sampled softmax)."""
    if config.loss != "sampled_softmax" or config.negative_alpha == 0:
        return None
    from rec_jax.train.trainer import item_counts

    return item_counts(prepared.windows, prepared.num_items)


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, run, argv, __doc__, overrides=TrainConfig, skip=NOT_OVERRIDDEN)


if __name__ == "__main__":
    sys.exit(cli())
