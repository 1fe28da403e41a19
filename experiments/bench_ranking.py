"""Chunked full ranking vs a jitted score matmul of the same shape, as ONE JSON line.

    python experiments/bench_ranking.py --users 30000 --items 25000

Random histories (Zipf-like item popularity, lengths uniform in [min_len, max_len]) and a
randomly initialised SASRec (width ``dim``) are ranked by :class:`rec_jax.train.evaluate.Evaluator`
(``Evaluator.timings``: encode_s, score_s, rank_s, eval_s; medians of ``repeats`` warm passes).
matmul_s: the median of a jitted ``[B, D] x [D, N+1]`` score matmul over the same user batches
(reduced to a scalar per batch so XLA cannot skip it), timed in the same process.
ratio = rank_s / matmul_s; matmul_1024_s / ratio_vs_1024: the same matmul in batches of 1024 users.
peak_rss_mb is the whole process's. Roofline keys (:mod:`rec_jax.roofline`) per user ranked
(``users / rank_s``): :func:`rec_jax.train.step_cost.ranking_cost` (2D(N+1) FLOPs; the table read
once per batch), XLA's ``cost_analysis()`` of one compiled batch times its chunks (the scan's body is counted once)
divided by its users, the probed
peaks, ``roofline_fraction``.
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli


@dataclasses.dataclass(frozen=True)
class Config:
    """Benchmark the chunked full ranking on random data."""

    users: int = 30000  # users ranked
    items: int = 25000  # catalogue size N
    dim: int = 64  # SASRec width D
    max_len: int = 50  # longest history L
    min_len: int = 5  # shortest history
    batch_size: int = 256  # users per ranking batch (256 measured fastest on 2 EPYC cores)
    chunk_size: int = 8192  # items per chunk
    encode_batch_size: int = 128  # users per encoder call
    repeats: int = 3  # warm passes timed (medians; at least 3)
    seed: int = 0  # data and parameter seed
    roofline: bool = True  # probe the machine's peak GFLOP/s and GB/s (~2 s) for roofline_fraction


def random_eval_arrays(users: int, items: int, max_len: int, min_len: int, seed: int):
    """An :class:`~rec_jax.data.splits.EvalArrays` of random left-padded histories and targets."""
    import numpy as np

    from rec_jax.data.splits import EvalArrays

    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    popularity /= popularity.sum()
    lengths = rng.integers(min_len, max_len + 1, size=users)
    history = rng.choice(np.arange(1, items + 1), size=(users, max_len), p=popularity).astype(np.int32)
    inputs = np.where(np.arange(max_len)[None, :] >= max_len - lengths[:, None], history, 0).astype(np.int32)
    targets = rng.choice(np.arange(1, items + 1), size=users, p=popularity).astype(np.int32)
    seen = [np.unique(row[row > 0]) for row in inputs]
    offsets = np.zeros(users + 1, np.int64)
    np.cumsum([len(s) for s in seen], out=offsets[1:])
    return EvalArrays(inputs=inputs, targets=targets, seen_offsets=offsets,
                      seen_items=np.concatenate(seen).astype(np.int32), num_items=items)


def matmul_seconds(table, hs, repeats: int) -> float:
    """Median seconds of a jitted score matmul ``h @ table.T`` over the batches ``hs`` (max-reduced)."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    fn = jax.jit(lambda h, t: jnp.sum(jnp.max(h @ t.T, axis=1)))
    jax.block_until_ready([fn(h, table) for h in hs])
    times = []
    for _ in range(max(3, repeats)):
        start = time.perf_counter()
        jax.block_until_ready([fn(h, table) for h in hs])
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def ranking_roofline(evaluator, params, hs, rank_s: float, probe: bool = True) -> dict:
    """The roofline keys of a ranking pass of ``evaluator`` (users encoded in ``hs``) that took ``rank_s``."""
    from rec_jax import roofline
    from rec_jax.train.step_cost import ranking_cost

    dim = int(hs[0].shape[1])
    flops, nbytes, how = ranking_cost(evaluator.num_items, dim, evaluator.batch_size)
    targets, seen = evaluator.batches[0]
    xla = roofline.xla_cost(evaluator.rank_fn, params, hs[0], targets, seen, evaluator.split_fn(params))
    # cost_analysis counts a scan's body once: times the chunks, per user
    num_chunks = evaluator.num_chunks
    per_user = {k: None if v is None else v * num_chunks / evaluator.batch_size for k, v in xla.items()}
    peaks = roofline.measure_peaks() if probe else {"peak_gflop_s": None, "peak_gb_s": None}
    return roofline.roofline_fields(evaluator.num_users / rank_s, flops, nbytes, how, peaks["peak_gflop_s"],
                                    peaks["peak_gb_s"], xla_flops_per_step=per_user["flops"],
                                    xla_bytes_per_step=per_user["bytes"])


def main(args: Config) -> dict:
    import jax

    from rec_jax.models import make_model
    from rec_jax.train.config import TrainConfig, model_config
    from rec_jax.train.evaluate import Evaluator
    from rec_jax.train.run import peak_rss_mb

    if args.users < 1 or args.items < 2 or args.min_len < 1 or args.max_len < args.min_len:
        raise ValueError("need users >= 1, items >= 2 and 1 <= min_len <= max_len")
    config = TrainConfig(model="sasrec", dim=args.dim, max_len=args.max_len)
    model = make_model("sasrec", model_config(config, args.items))
    params = jax.jit(model.init)(jax.random.key(args.seed))
    arrays = random_eval_arrays(args.users, args.items, args.max_len, args.min_len, args.seed)
    evaluator = Evaluator(model, arrays, args.batch_size, chunk_size=args.chunk_size,
                          encode_batch_size=args.encode_batch_size)
    timing = evaluator.timings(params, repeats=args.repeats)
    table, _ = model.output_layer(params)
    hs = evaluator.encode(params)
    matmul_s = matmul_seconds(table, hs, args.repeats)
    # the same matmul in batches of 1024 users (often faster per user than small batches on CPU)
    big = jax.numpy.concatenate(hs)
    matmul_1024_s = matmul_seconds(table, [big[i : i + 1024] for i in range(0, big.shape[0], 1024)], args.repeats)
    out = {
        "users": args.users, "items": args.items, "dim": args.dim, "chunk_size": args.chunk_size,
        "batch_size": evaluator.batch_size, "encode_batch_size": args.encode_batch_size,
        "matmul_s": matmul_s, "matmul_1024_s": matmul_1024_s, **timing, "ratio": timing["rank_s"] / matmul_s,
        "ratio_vs_1024": timing["rank_s"] / matmul_1024_s,
        "peak_rss_mb": peak_rss_mb(),
        **ranking_roofline(evaluator, params, hs, timing["rank_s"], args.roofline),
    }
    print(json.dumps(out))
    return out


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
