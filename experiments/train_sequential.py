"""Train a sequential recommender (SASRec, BERT4Rec, GRU4Rec) and rank all items.

    python experiments/train_sequential.py --preset ml100k-sasrec
    python experiments/train_sequential.py --preset ml100k-sasrec --no-mask-history --seed 1
    python experiments/train_sequential.py --preset tiny-sasrec --data synthetic --out /tmp/run

Writes OUT/config.json, OUT/metrics.json (test/ndcg@10, ..., train_s_to_best, eval_s),
OUT/per_user.npz, OUT/learning_curve.png and OUT/checkpoints/. ``--resume`` continues
a killed run from its last checkpoint (and starts fresh, saying so, when there is none).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli
from rec_jax.train.config import PRESETS, TrainConfig, get_preset

QUICK_EPOCHS = 15  # --quick: an upper bound on epochs that keeps ML-100K SASRec within ~90 s on 2 cores


@dataclasses.dataclass(frozen=True)
class Config:
    """Train one preset, overridden by any TrainConfig field given."""

    preset: str = dataclasses.field(default="ml100k-sasrec", metadata={"help": f"one of: {', '.join(sorted(PRESETS))}"})
    out: Path | None = None  # run folder (default runs/train_sequential/<preset>)
    quick: bool = dataclasses.field(default=False, metadata={"help": f"at most {QUICK_EPOCHS} epochs"})
    resume: bool = False  # continue from OUT/checkpoints if present
    progress: bool = True  # a progress bar


def run(args: Config, changes: dict) -> dict:
    """Train and evaluate ``args.preset`` with the TrainConfig ``changes``; returns the metrics."""
    config = rec_jax.cli.apply_overrides(get_preset(args.preset), changes)
    if args.quick:
        config = dataclasses.replace(config, epochs=min(config.epochs, QUICK_EPOCHS))
    out = Path(args.out) if args.out else Path("runs") / "train_sequential" / args.preset

    from rec_jax.train.run import train_and_evaluate

    metrics = train_and_evaluate(config, out, resume=args.resume, progress=args.progress)
    shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()
             if k.startswith("test/") or k in ("best_epoch", "epochs_run", "train_s_to_best", "eval_s")}
    print(json.dumps(shown, indent=1))
    print(f"wrote {out}/metrics.json and {out}/learning_curve.png")
    return metrics


def main(argv=None) -> dict:
    """Parse ``argv`` and run; returns the metrics (errors raise; ``cli`` makes them one line)."""
    return run(*rec_jax.cli.parse_with_overrides(Config, TrainConfig, argv, __doc__))


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, run, argv, __doc__, overrides=TrainConfig)


if __name__ == "__main__":
    sys.exit(cli())
