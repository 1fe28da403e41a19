"""The in-process figures of ``experiments/serve_load.py`` (no HTTP): the saturated warm replay
of every ML-100K user through ``rec_jax.serve.server`` and the incremental step against
re-encoding the L-item window on the same micro-batches."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


def in_process_figures(model_dir: Path, batch: int, max_events: int, log) -> dict:
    """The in-process saturated warm throughput and the incremental-vs-re-encode step ratio."""
    import jax

    from experiments._realtime_replay import Prequential, concurrent_stream, replay, seen_before
    from rec_jax.data import load
    from rec_jax.serve.server import Reencoder, Server, ServerConfig
    from rec_jax.train.load import load_trained

    seqs = load("ml-100k")
    model, params, _ = load_trained(model_dir, seqs.num_items)
    histories, users, items = concurrent_stream(seqs)
    n = min(max_events or len(users), len(users))
    users, items = users[:n], items[:n]
    cfg = ServerConfig(batch_size=batch, capacity=seqs.num_users, update_every=max(256, batch))
    key = jax.random.key(1)
    server = Server(model, params, histories, cfg, key)
    server.warmup()
    nothing = Prequential(np.zeros((seqs.num_users, cfg.eval_k), np.int32), np.zeros(seqs.num_users, bool))
    out = replay(server, users, items, batch, 0.0, nothing, desc="in-process load")
    first_round_end = int(out["batch_of"][~seen_before(users)].max())
    warm_events = n - int(np.sum(out["batch_len"][: first_round_end + 1]))
    warm_s = out["batch_end_s"][-1] - out["batch_end_s"][first_round_end]
    warm = float(warm_events / warm_s) if warm_events > 0 else float("nan")
    # incremental vs re-encode on the same full micro-batches (policy, scoring, top-k in both)
    timed = Server(model, params, histories, dataclasses.replace(cfg, online=False, pad_to_full=True), key,
                   compiled=None)
    timed.warmup()
    reencoder = Reencoder(timed)
    reencoder.serve(users[:0], items[:0], np.zeros(0, np.int64))
    reencoder.seen = jax.numpy.array(timed.seen, copy=True)
    m = min(n, 8192)
    pre = Prequential(np.zeros((seqs.num_users, cfg.eval_k), np.int32), np.zeros(seqs.num_users, bool))
    pre_r = Prequential(np.zeros((seqs.num_users, cfg.eval_k), np.int32), np.zeros(seqs.num_users, bool))
    both = replay(timed, users[:m], items[:m], batch, 0.0, pre, reencoder=reencoder, pre_reencode=pre_r,
                  desc="incremental vs re-encode")
    keep = slice(min(2, len(both["step_s"]) - 1), None)
    inc_ms, full_ms = 1e3 * np.median(both["step_s"][keep]), 1e3 * np.median(both["reencode_s"][keep])
    log(f"in-process b={batch}: {warm:,.0f} events/s warm over {n} events; step {inc_ms:.2f} ms incremental vs "
        f"{full_ms:.2f} ms re-encode")
    return {f"in_process_events_per_s/batch={batch}": warm,
            f"incremental_speedup/batch={batch}": float(full_ms / inc_ms),
            f"in_process_step_ms/incremental/batch={batch}": float(inc_ms),
            f"in_process_step_ms/reencode/batch={batch}": float(full_ms), "in_process_events": n}
