"""Test accuracy of one preset trained with several losses over several seeds, as ONE JSON line.

    python experiments/compare_losses.py --preset ml100k-sasrec --losses ce gbce --seeds 0 1 2

Each (loss, seed) is a full run of :func:`rec_jax.train.run.train_and_evaluate` (early stopping on
validation NDCG@10, the best epoch's test metrics) written under ``OUT/<loss>/seed<k>/``; the line
holds, per loss, the per-seed and mean test ``ndcg@10`` / ``hr@10`` (the preset's ranking
convention), ``train_s_to_best``, ``epoch_s`` (the median of the runs' median epochs), and
``gap_vs_<first loss>`` = 1 - mean NDCG@10 / the first loss's mean NDCG@10 (positive: worse). gBCE uses the
preset's ``num_negatives`` and ``gbce_t`` (256 and 0.75 by default: gSASRec's setting).
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli
from rec_jax.train.config import PRESETS


@dataclasses.dataclass(frozen=True)
class Config:
    """Train ``preset`` with each loss and seed; compare their test accuracy."""

    preset: str = dataclasses.field(default="ml100k-sasrec", metadata={"help": f"one of: {', '.join(sorted(PRESETS))}"})
    losses: tuple[str, ...] = ("ce", "gbce")  # the first is the reference of ``gap_vs_*``
    seeds: tuple[int, ...] = (0, 1, 2)
    out: Path = Path("runs/compare_losses")
    epochs: int = 0  # > 0: at most this many epochs (a quick look; the comparison uses the preset's)


def run(args: Config) -> dict:
    import numpy as np

    from rec_jax.train.config import get_preset
    from rec_jax.train.run import train_and_evaluate
    from rec_jax.train.trainer import LOSSES

    unknown = [loss for loss in args.losses if loss not in LOSSES]
    if unknown or not args.losses or not args.seeds:
        raise ValueError(f"losses {list(args.losses)} / seeds {list(args.seeds)}: expected one or more of "
                         f"{', '.join(LOSSES)} and one or more seeds")
    base = get_preset(args.preset)
    out: dict = {"preset": args.preset, "seeds": list(args.seeds), "ranking": "masked" if base.mask_history else "unmasked"}
    for loss in args.losses:
        rows = []
        for seed in args.seeds:
            config = dataclasses.replace(base, loss=loss, seed=seed, checkpoint_every=0,
                                         epochs=args.epochs or base.epochs)
            m = train_and_evaluate(config, args.out / loss / f"seed{seed}", progress=False, log=lambda *_: None)
            rows.append(m)
            print(f"{loss} seed {seed}: test ndcg@10 {m['test/ndcg@10']:.4f} hr@10 {m['test/hr@10']:.4f} "
                  f"best epoch {m['best_epoch']} train_s_to_best {m['train_s_to_best']:.1f}", file=sys.stderr)
        out[loss] = {
            "ndcg@10": [m["test/ndcg@10"] for m in rows], "hr@10": [m["test/hr@10"] for m in rows],
            "mean_ndcg@10": float(np.mean([m["test/ndcg@10"] for m in rows])),
            "mean_hr@10": float(np.mean([m["test/hr@10"] for m in rows])),
            "train_s_to_best": [m["train_s_to_best"] for m in rows],
            "best_epoch": [m["best_epoch"] for m in rows],
            "epoch_s": float(np.median([m["train_epoch_s_median"] for m in rows])),
        }
    ref = out[args.losses[0]]["mean_ndcg@10"]
    for loss in args.losses[1:]:
        out[loss][f"gap_vs_{args.losses[0]}"] = 1.0 - out[loss]["mean_ndcg@10"] / ref
    print(json.dumps(out))
    return out


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, run, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
