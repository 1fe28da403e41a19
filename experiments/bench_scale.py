"""Load, preprocess, train and rank at the scale of the public data sets, as ONE JSON line.

    python experiments/bench_scale.py --shape ml20m
    python experiments/bench_scale.py --shape catalog1m --loss gbce
    python experiments/bench_scale.py --shape ml1m --scale 0.05 --eval-users 500   # a quick look

Writes a synthetic log in the data set's own layout (:mod:`rec_jax.data.scale_logs`: ml20m a
``ratings.csv`` with ML-20M's 138,493 users, 26,744 items and 20,000,263 rows; ml1m a
``ratings.dat``; catalog1m 100,000 users x 1,000,000 items x 10 M rows), then times, in one process:

* ``load_s``: :func:`rec_jax.data.load_interactions` on that file (what ``--data PATH`` runs);
* ``preprocess_s``: the 5-core filter, per-user sequences, the leave-one-out split, the training
  windows (stride = max_len: every target once) and the test arrays (CSR seen lists);
* ``epoch_s``: a SASRec (max length 200, width 64) trained on a random ``--epoch-fraction`` of the
  epoch's windows (compiled ahead, so ``compile_s`` is apart), EXTRAPOLATED to the whole epoch
  (``epoch_s_extrapolated`` says so); the loss is the exact chunked full softmax for the MovieLens
  shapes, gBCE (k=256, t=0.75) for catalog1m unless ``--loss`` says otherwise;
* one full-ranking pass over the test users (``--eval-users`` caps them): ``encode_s``, ``score_s``
  (a scoring-only pass, the matmul floor), ``rank_s`` (:class:`~rec_jax.train.evaluate.Evaluator`,
  compiled for every batch shape first, then one timed pass each), ``eval_s`` = encode_s + rank_s;
* ``peak_rss_mb`` of the whole process, the sizes after filtering, ``cpu_model``;
* roofline keys (:mod:`rec_jax.roofline`) of a training step (``train_*``:
  :func:`rec_jax.train.step_cost.train_step_cost`) and of ranking one user (``rank_*``:
  :func:`rec_jax.train.step_cost.ranking_cost`, XLA's count of one compiled batch beside it).

The log is written to ``--workdir`` (default: a temporary directory, removed at the end);
``write_s`` is reported but is not part of any target.
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli
from rec_jax.data.scale_logs import SHAPES


@dataclasses.dataclass(frozen=True)
class Config:
    """Time loading, preprocessing, a fraction of an epoch and a full-ranking pass at scale."""

    shape: str = dataclasses.field(default="ml20m", metadata={"help": f"one of: {', '.join(SHAPES)}"})
    scale: float = 1.0  # users and rows x scale, items x sqrt(scale) (tests and quick looks)
    epoch_fraction: float = 0.01  # share of the epoch's windows actually trained (then extrapolated)
    loss: str = ""  # a TrainConfig loss; "" = ce_chunked for ml20m/ml1m, gbce for catalog1m
    num_negatives: int = 256  # k for sampled_softmax / gbce
    max_len: int = 200  # L
    dim: int = 64  # D
    batch_size: int = 128  # windows per training step
    eval_users: int = 0  # test users ranked (0: all)
    eval_batch_size: int = 256  # users per ranking batch
    encode_batch_size: int = 128  # users per encoder call
    chunk_size: int = 8192  # items per ranking chunk (and per ce_chunked chunk)
    workdir: str = ""  # where the log is written (kept); "" = a temporary directory, removed
    reuse_log: bool = False  # with --workdir: read the log already there (same shape and seed) instead of writing it
    roofline: bool = True  # probe the machine's peaks (~2 s): train_* and rank_* roofline keys
    seed: int = 0


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def run(args: Config) -> dict:
    import jax
    import numpy as np

    from rec_jax.data import build_sequences, eval_arrays, kcore_filter, leave_one_out, load_interactions, make_windows
    from experiments.bench_ranking import ranking_roofline
    from rec_jax import roofline
    from rec_jax.data.scale_logs import get_shape, write_log
    from rec_jax.models import make_model
    from rec_jax.roofline import cpu_model
    from rec_jax.train.config import TrainConfig, model_config
    from rec_jax.train.evaluate import Evaluator
    from rec_jax.train.run import peak_rss_mb
    from rec_jax.train.step_cost import train_step_cost
    from rec_jax.train.trainer import init_train_state, item_counts, make_train_epoch

    if not 0 < args.epoch_fraction <= 1:
        raise ValueError(f"epoch_fraction={args.epoch_fraction}: expected 0 < epoch_fraction <= 1")
    shape = get_shape(args.shape, args.scale)
    loss = args.loss or ("gbce" if args.shape == "catalog1m" else "ce_chunked")
    if loss == "ce" and shape.num_items > 100_000:
        raise ValueError(f"loss 'ce' scores [batch, {args.max_len}, {shape.num_items}] at once; "
                         "use ce_chunked, sampled_softmax or gbce")
    workdir = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix=f"bench_scale_{shape.name}_"))
    try:
        path = workdir / shape.file_name
        if args.reuse_log and args.workdir and path.is_file():
            write_s = 0.0
        else:
            path, write_s = _timed(write_log, shape, workdir, args.seed)
        inter, load_s = _timed(load_interactions, path)
        num_rows = len(inter)

        def preprocess():
            seqs = build_sequences(kcore_filter(inter))
            split = leave_one_out(seqs)
            windows = make_windows(split.train, args.max_len, args.max_len)
            return seqs, windows, eval_arrays(split, "test", args.max_len)

        (seqs, windows, test), preprocess_s = _timed(preprocess)
        del inter
        config = TrainConfig(model="sasrec", dim=args.dim, max_len=args.max_len, window_stride=args.max_len,
                             loss=loss, num_negatives=args.num_negatives, loss_chunk_size=args.chunk_size,
                             batch_size=args.batch_size, batch_unit="window", seed=args.seed)
        model = make_model("sasrec", model_config(config, seqs.num_items))
        key = jax.random.key(args.seed)
        state = init_train_state(model, config, key)

        # a random fraction of the epoch's windows, whole batches
        num_windows = len(windows)
        take = min(num_windows, max(args.batch_size, math.ceil(args.epoch_fraction * num_windows / args.batch_size)
                                    * args.batch_size))
        rows = np.sort(np.random.default_rng(args.seed).permutation(num_windows)[:take])
        seq, mask = jax.device_put((windows.seq[rows], windows.target_mask[rows]))
        counts = item_counts(windows, seqs.num_items) if loss == "sampled_softmax" else None
        epoch_fn = make_train_epoch(model, config, take, args.batch_size, item_counts=counts)
        epoch_key, step_key = jax.random.split(jax.random.fold_in(key, 1))
        compiled, compile_s = _timed(lambda: epoch_fn.lower(state, seq, mask, epoch_key, step_key).compile())
        (state, train_loss), part_s = _timed(lambda: jax.block_until_ready(compiled(state, seq, mask, epoch_key, step_key)))
        steps = -(-take // args.batch_size)
        targets_per_step = float(np.asarray(mask).sum()) / steps

        if args.eval_users:
            test = test.take(slice(0, min(args.eval_users, test.num_users)))
        evaluator = Evaluator(model, test, args.eval_batch_size, chunk_size=args.chunk_size,
                              encode_batch_size=args.encode_batch_size)
        params = state.params
        # compile once per distinct batch shape (the seen lists' widths are bucketed to powers of two),
        # then time ONE pass of each part
        jax.block_until_ready(evaluator.encode_fn(params, evaluator.encode_batches[0]))
        first = evaluator.encode(params)[0]
        split = evaluator.split_fn(params)
        widths = {}
        for targets, seen in evaluator.batches:
            widths.setdefault(seen.shape, (targets, seen))
        jax.block_until_ready([evaluator.rank_fn(params, first, t, s, split) for t, s in widths.values()])
        jax.block_until_ready(evaluator.score_pass(params, [first]))
        hs, encode_s = _timed(lambda: jax.block_until_ready(evaluator.encode(params)))
        _, score_s = _timed(lambda: jax.block_until_ready(evaluator.score_pass(params, hs)))
        ranked, rank_s = _timed(lambda: jax.block_until_ready(evaluator.rank_pass(params, hs)))
        peaks = roofline.measure_peaks() if args.roofline else {"peak_gflop_s": None, "peak_gb_s": None}
        num_params = sum(x.size for x in jax.tree.leaves(params))
        flops, nbytes, how = train_step_cost(config, seqs.num_items, args.batch_size, targets_per_step, num_params)
        train_roof = roofline.roofline_fields(steps / part_s, flops, nbytes, how, peaks["peak_gflop_s"], peaks["peak_gb_s"])
        rank_roof = ranking_roofline(evaluator, params, hs, rank_s, probe=args.roofline)
        ndcg = float(np.mean(np.concatenate([np.asarray(m["unmasked/ndcg@10"]) for m, _ in ranked])[: evaluator.num_users]))
        out = {
            "shape": shape.name, "scale": args.scale, "file": shape.file_name, "raw_rows": num_rows,
            "write_s": write_s, "load_s": load_s, "preprocess_s": preprocess_s,
            "load_plus_preprocess_s": load_s + preprocess_s,
            "num_users": int(seqs.num_users), "num_items": int(seqs.num_items),
            "num_interactions": int(seqs.num_interactions), "num_windows": num_windows,
            "loss": loss, "max_len": args.max_len, "dim": args.dim, "batch_size": args.batch_size,
            "compile_s": compile_s, "trained_windows": take, "trained_steps": steps, "trained_s": part_s,
            "steps_per_s": steps / part_s, "epoch_fraction": take / num_windows,
            "epoch_s": part_s * num_windows / take, "epoch_s_extrapolated": take < num_windows,
            "train_loss": float(train_loss),
            "eval_users": evaluator.num_users, "encode_s": encode_s, "score_s": score_s, "rank_s": rank_s,
            "eval_s": encode_s + rank_s, "test_ndcg@10_after_fraction": ndcg,
            "peak_rss_mb": peak_rss_mb(), "cpu_model": cpu_model(), "device": jax.devices()[0].platform,
            "log_reused": write_s == 0.0,
            **{f"train_{k}": v for k, v in train_roof.items() if k not in ("cpu_model", "device")},
            **{f"rank_{k}": v for k, v in rank_roof.items() if k not in ("cpu_model", "device")},
        }
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(out))
    return out


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, run, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
