"""The event streams of experiments/realtime.py and their replay through a server.

* the streams: ``temporal_split`` (history, then the stream, by timestamp) and
  ``concurrent_stream`` (every user's sequence interleaved: the saturated load test);
* prequential HR@10: ``Prequential`` keeps each user's pending top-k and scores it when
  the user's next event arrives; ``initial_topk`` is the top-k before the stream;
* ``replay``: the timed serving loop (closed loop, or arrivals at a fixed rate), with
  the full re-encode of the same micro-batches optionally timed beside it.
"""
from __future__ import annotations

import time

import numpy as np


def temporal_split(seqs, fraction: float):
    """(histories: list of int32 arrays, stream_users i64[E], stream_items i32[E]).

    All interactions sorted by (timestamp, user, position in the user's sequence); the
    first ``fraction`` are history, the rest the stream (each user's history is a
    prefix of their sequence, and their stream events follow it in order).
    """
    owner = seqs.user_of_position
    position = np.arange(len(seqs.items)) - seqs.offsets[owner]
    order = np.lexsort((position, owner, seqs.timestamps))
    cut = int(round(fraction * len(order)))
    in_history = np.zeros(len(order), bool)
    in_history[order[:cut]] = True
    histories = [seqs.items[seqs.offsets[u]:seqs.offsets[u + 1]][in_history[seqs.offsets[u]:seqs.offsets[u + 1]]]
                 for u in range(seqs.num_users)]
    stream = order[cut:]
    return histories, owner[stream].astype(np.int64), seqs.items[stream].astype(np.int32)


def concurrent_stream(seqs):
    """(empty histories, users i64[E], items i32[E]): every interaction of the log, ordered
    by (position in the user's sequence, the user's first timestamp, user): each user's
    events keep their order, and all users are active at once."""
    owner = seqs.user_of_position
    position = np.arange(len(seqs.items)) - seqs.offsets[owner]
    first_seen = seqs.timestamps[seqs.offsets[:-1]][owner]
    order = np.lexsort((owner, first_seen, position))
    empty = [np.zeros(0, np.int32) for _ in range(seqs.num_users)]
    return empty, owner[order].astype(np.int64), seqs.items[order].astype(np.int32)


def seen_before(users) -> np.ndarray:
    """bool[E]: event e's user had an earlier event in ``users``."""
    _, first = np.unique(users, return_index=True)
    seen = np.ones(len(users), bool)
    seen[first] = False
    return seen


def users_by_recency(seqs, histories) -> np.ndarray:
    """Users with a history, most recently active (last history event) first."""
    last = np.full(seqs.num_users, -1, np.int64)
    for u, h in enumerate(histories):
        if len(h):
            last[u] = seqs.timestamps[seqs.offsets[u] + len(h) - 1]
    order = np.argsort(-last, kind="stable")
    return order[last[order] >= 0]


class Prequential:
    """Per-user pending top-k lists and the hits of the events they predicted."""

    def __init__(self, initial_topk: np.ndarray, has_history: np.ndarray):
        self.pending = initial_topk.copy()
        self.ready = has_history.copy()
        self.hits: list[tuple[int, bool]] = []  # (event index, hit)

    def score(self, users, items, event_ids) -> None:
        users, items, event_ids = np.asarray(users), np.asarray(items), np.asarray(event_ids)
        ready = self.ready[users]  # vectorised: this runs inside the timed serving loop
        hit = np.any(self.pending[users] == items[:, None], axis=1)
        self.hits.extend(zip(event_ids[ready].tolist(), hit[ready].tolist()))

    def record(self, users, topk) -> None:
        self.pending[users] = topk
        self.ready[users] = True

    def hr(self) -> float:
        return float(np.mean([h for _, h in self.hits])) if self.hits else float("nan")

    def curve(self, num_events: int, bins: int) -> np.ndarray:
        """f32[bins]: HR of the events in each equal slice of the stream (NaN if none)."""
        if not self.hits:
            return np.full(bins, np.nan, np.float32)
        events, hits = np.array(self.hits).T
        which = np.minimum(events * bins // max(num_events, 1), bins - 1)
        total = np.bincount(which, minlength=bins)
        return (np.bincount(which, weights=hits, minlength=bins) / np.maximum(total, 1)).astype(np.float32)


def initial_topk(server, histories, *, reencode: bool) -> np.ndarray:
    """int32[U, k]: each user's top-k before the stream (from rebuilt states, or windows)."""
    import jax
    import jax.numpy as jnp

    from rec_jax.models.base import tied_scores

    model, inc, head, k = server.model, server.inc, server.head, server.cfg.eval_k
    n = model.config.num_items
    width = model.config.max_len if reencode else inc.rebuild_len

    @jax.jit
    def topk(params, tails, counts, seen):
        if reencode:
            h = model.encode(params, tails)
        else:
            h = jax.vmap(inc.rebuild, in_axes=(None, 0, 0))(params, tails, counts)[1]
        logits = tied_scores(h, head.table, n) + head.bias
        return jax.lax.top_k(jnp.where(seen | (jnp.arange(n + 1) == 0), -jnp.inf, logits), k)[1]

    out, chunk = [], 256
    users = np.arange(len(histories))
    for start in range(0, len(users), chunk):
        part = users[start:start + chunk]
        pad = chunk - len(part)
        rows = np.concatenate([part, np.full(pad, part[0])])
        tails = server.history.tails(rows, width)
        counts = server.history.lengths[rows].astype(np.int32)
        out.append(np.asarray(topk(server.params, tails, counts, server.seen[rows]))[: len(part)])
    return np.concatenate(out).astype(np.int32)


def replay(server, users, items, batch_size: int, rate: float, prequential: Prequential, *,
           reencoder=None, pre_reencode: Prequential | None = None, desc: str = "replay"):
    """Replay the stream through ``server``; returns a dict of per-event/per-batch arrays."""
    from tqdm.auto import tqdm

    from rec_jax.serve.stream import MicroBatcher

    batcher = MicroBatcher(users, batch_size)
    num = len(users)
    latency = np.zeros(num)
    slates = np.zeros((num, server.cfg.slate_size), np.int32)
    step_s, reencode_s, batch_len, batch_end = [], [], [], []
    batch_of = np.zeros(num, np.int64)  # which micro-batch served each event
    bar = tqdm(total=num, desc=desc, unit="ev", leave=False, mininterval=2.0)
    start = time.perf_counter()
    arrival = start + np.arange(num) / rate if rate > 0 else None
    ready_at = start  # closed loop: a micro-batch arrives when the previous one is answered
    while batcher.remaining:
        if arrival is not None:
            now = time.perf_counter()
            arrived = int(np.searchsorted(arrival, now, side="right"))
            idx = batcher.next_batch(arrived)
            if len(idx) == 0:
                time.sleep(max(0.0, arrival[batcher.next_waiting()] - time.perf_counter()))
                continue
        else:
            idx = batcher.next_batch()
        u, i = users[idx], items[idx]
        prequential.score(u, i, idx)
        slate, _, topk = server.serve(u, i, idx)
        done = time.perf_counter()
        latency[idx] = done - (arrival[idx] if arrival is not None else ready_at)
        prequential.record(u, topk)
        slates[idx] = slate
        step_s.append(server.last_step_s)
        batch_len.append(len(idx))
        batch_end.append(done - start)
        batch_of[idx] = len(batch_end) - 1
        if reencoder is not None:
            pre_reencode.score(u, i, idx)
            _, _, topk_r = reencoder.serve(u, i, idx)
            pre_reencode.record(u, topk_r)
            reencode_s.append(reencoder.last_step_s)
        server.maybe_update()
        ready_at = time.perf_counter() if reencoder is not None else done
        bar.update(len(idx))
    total_s = time.perf_counter() - start
    bar.close()
    return {"latency_s": latency, "slates": slates, "step_s": np.asarray(step_s),
            "reencode_s": np.asarray(reencode_s), "batch_len": np.asarray(batch_len),
            "batch_end_s": np.asarray(batch_end), "batch_of": batch_of, "total_s": total_s}
