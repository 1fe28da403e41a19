"""Full-ranking evaluation over all items, on device, in fixed-shape batches.

Every user's target is ranked against ALL items (no sampled negatives). Both
conventions are computed in the same pass: ``masked`` excludes the items already
in the user's input history (the target itself is never excluded), ``unmasked``
only excludes the padding id (RecBole's convention).

:func:`rank_metrics` ranks dense logits ``[B, N+1]``; :class:`Evaluator` ranks over
item chunks of C columns (:func:`chunked_rank`), so its memory is O(users per batch x
C), never [users, items], in ONE pass over the chunks: the scores ``h @ table.T (+ bias)`` of one
chunk; the target's and the seen items' scores gathered from it; the seen items (but the target)
masked by scattering -inf into it from the batch's seen lists; a running top-(K+1) of the masked
scores (for large chunks grouped: one top-k over group maxima, one over the chosen groups); the @K
ranks are read off the list at the end.
"""
from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.eval.ranking import DEFAULT_KS, metrics_from_rank, target_rank


def rank_metrics(logits: jax.Array, targets: jax.Array, seen: jax.Array) -> dict[str, jax.Array]:
    """Per-example metrics of both conventions from full logits.

    logits: f32[B, N+1]; targets: int32[B]; seen: bool[B, N+1] (the input history).
    returns {"masked/ndcg@10": f32[B], "unmasked/ndcg@10": f32[B], ...}.
    """
    logits = logits.at[:, 0].set(-jnp.inf)
    not_target = jnp.arange(logits.shape[1])[None, :] != targets[:, None]
    masked_logits = jnp.where(seen & not_target, -jnp.inf, logits)
    out = {}
    for name, lg in (("masked", masked_logits), ("unmasked", logits)):
        for key, value in metrics_from_rank(target_rank(lg, targets), DEFAULT_KS).items():
            out[f"{name}/{key}"] = value
    return out


def make_eval_fn(model) -> Callable:
    """Returns jitted ``eval_batch(params, inputs, targets, seen)`` -> per-example metrics (dense).

    inputs: int32[B, L] left-padded histories; targets: int32[B]; seen: bool[B, N+1].
    returns {"masked/ndcg@10": f32[B], "unmasked/ndcg@10": f32[B], ...}.
    """

    @jax.jit
    def eval_batch(params, inputs, targets, seen):
        return rank_metrics(model.score(params, model.encode(params, inputs)), targets, seen)

    return eval_batch


# --------------------------------------------------------------------------- chunked ranking


GROUPED_TOP_MIN_CHUNK = 4096  # below, one plain top-k over the chunk (ML-100K's 1,350 items: measured 4x faster)


def _group_size(chunk: int, keep: int) -> int:
    """Items per group of the grouped top-k (1: a plain top-k over the chunk)."""
    if chunk < GROUPED_TOP_MIN_CHUNK:
        return 1
    for g in (32, 16, 8):
        if chunk % g == 0 and chunk // g >= 4 * keep:
            return g
    return 1


def _running_top(top_v, top_i, scores, ids, keep: int, group: int):
    """The top-``keep`` of [carry, chunk] (lax.top_k's order and ties: the lower item id first).

    top_v f32[B, keep], top_i i32[B, keep]: the carry; scores f32[B, C]; ids i32[1, C]: the chunk's
    contiguous item ids (the carry's are lower); masked columns are already -inf.
    With group > 1 the chunk's columns are cut into groups of ``group``; only the ``keep`` groups with
    the largest maxima (in id order) can hold a top-``keep`` item (a NaN max counts as largest, as in
    lax.top_k), so the second top-k sees keep*group candidates, not the whole chunk: exact, ties included.
    """
    batch, chunk = scores.shape
    if group > 1:
        shape = (batch, chunk // group, group)
        grouped = scores.reshape(shape)
        _, best = jax.lax.top_k(jnp.max(grouped, axis=2), keep)
        best = jnp.sort(best, axis=1)[:, :, None]  # id order, so ties keep the lower id
        cand = jnp.take_along_axis(grouped, best, axis=1)
        scores = cand.reshape(batch, keep * group)
        ids = (ids[0, 0] + best * group + jnp.arange(group)).reshape(batch, keep * group)
    else:
        ids = jnp.broadcast_to(ids, (batch, chunk))
    top_v, pos = jax.lax.top_k(jnp.concatenate([top_v, scores], axis=1), keep)
    return top_v, jnp.take_along_axis(jnp.concatenate([top_i, ids.astype(jnp.int32)], axis=1), pos, axis=1)


def chunked_rank(chunk_scores: Callable, chunks, num_chunks: int, chunk: int, num_cols: int,
                 targets: jax.Array, seen_lists: jax.Array, ks=DEFAULT_KS, top_k: int = 0):
    """Both conventions' per-example metrics (as :func:`rank_metrics`) over item chunks, in ONE pass.

    chunk_scores(chunks[i]) -> f32[B, C]: the scores of columns i*C .. i*C+C-1 (``chunks``: a pytree
    with leading axis ``num_chunks``); columns >= ``num_cols`` (= N+1) are padding, never counted.
    targets: int32[B]; seen_lists: int32[B, S] each row's seen items (unique), padded with 0.
    top_k > 0: also the running top-``top_k`` of the MASKED scores (the list a user is shown).

    Every metric is @K, so a rank is needed exactly only below K = max(ks). The pass keeps the running
    top-R (R = max(K + 1, top_k)) of the masked scores with their ids, the target's score (taken from
    its chunk's scores: bit-identical to the compared values) and the scores of the seen items (gathered
    from the same chunk scores). Then the masked rank = the list's non-target entries scored >= the
    target or NaN: exact whenever it is < K (all such items fit in the list), >= K otherwise; the
    unmasked rank adds the seen non-target items scored >= the target or NaN. Ranks follow
    :func:`target_rank`: strictly higher + ties with another item, NaN competitors above, a NaN
    target last, and so does a -inf one. Returns (metrics {"masked/ndcg@10": f32[B], ...}, (top scores f32[B, k],
    top items i32[B, k]) or None).
    """
    batch = targets.shape[0]
    keep = max(max(ks) + 1, int(top_k))
    group = _group_size(chunk, keep)
    cols = jnp.arange(chunk)
    starts = jnp.arange(num_chunks) * chunk
    rows = jnp.arange(batch)[:, None]

    pad = num_chunks * chunk - num_cols  # padding columns, all in the last chunk

    def body(carry, xs):
        ts, seen_scores, top_v, top_i = carry
        x, start = xs
        lg = chunk_scores(x)
        g = start + cols  # [C] global item ids
        # the target's score gathered from this very array (a where+sum materialised [B, C] twice:
        # ~13% of a pass at 25k items)
        local_t = targets - start
        in_t = (local_t >= 0) & (local_t < chunk)
        ts = ts + jnp.where(in_t, jnp.take_along_axis(lg, jnp.clip(local_t, 0, chunk - 1)[:, None], 1)[:, 0], 0.0)
        local = seen_lists - start
        inside = (local >= 0) & (local < chunk)
        seen_scores = seen_scores + jnp.where(inside, jnp.take_along_axis(lg, jnp.clip(local, 0, chunk - 1), 1), 0.0)
        # masking = scattering -inf into the scores: the seen items but the target, id 0 and the
        # padding columns (an index >= chunk is dropped; explicitly, since a negative one would wrap)
        idx = jnp.where(inside & (seen_lists != targets[:, None]), local, chunk)
        lg = lg.at[rows, idx].set(-jnp.inf, mode="drop")
        lg = lg.at[:, jnp.where(start == 0, 0, chunk)].set(-jnp.inf, mode="drop")
        if pad:
            lg = lg.at[:, num_cols - start + jnp.arange(pad)].set(-jnp.inf, mode="drop")
        top_v, top_i = _running_top(top_v, top_i, lg, g[None, :], keep, group)
        return (ts, seen_scores, top_v, top_i), None

    init = (jnp.zeros((batch,), jnp.float32), jnp.zeros(seen_lists.shape, jnp.float32),
            jnp.full((batch, keep), -jnp.inf), jnp.full((batch, keep), -1, jnp.int32))  # -1: no item yet
    (ts, seen_scores, top_v, top_i), _ = jax.lax.scan(body, init, (chunks, starts))
    # a barrier: XLA:CPU lowers lax.top_k to its fast TopK kernel only when the result is used whole; a
    # one-chunk scan is inlined and the [:, :top_k] slice below would turn it into a full sort (measured
    # 20x slower at ML-100K's 1,350 items)
    top_v, top_i = jax.lax.optimization_barrier((top_v, top_i))

    def above(v):
        return (v >= ts[:, None]) | jnp.isnan(v)

    in_list = (top_i >= 0) & (top_i < num_cols) & (top_i != targets[:, None])
    masked_rank = jnp.sum(in_list & above(top_v), axis=1)
    seen_other = (seen_lists > 0) & (seen_lists < num_cols) & (seen_lists != targets[:, None])
    unmasked_rank = masked_rank + jnp.sum(seen_other & above(seen_scores), axis=1)
    out = _rank_metrics(masked_rank, unmasked_rank, ts, num_cols, ks)
    return out, ((top_v[:, :top_k], jnp.maximum(top_i[:, :top_k], 0)) if top_k else None)


def _rank_metrics(masked_rank, unmasked_rank, ts, num_cols, ks):
    out = {}
    for name, rank in (("masked", masked_rank), ("unmasked", unmasked_rank)):
        # a NaN target ranks last; so does a -inf one (every competitor, -inf ones too, ties or beats it)
        rank = jnp.where(jnp.isnan(ts) | (ts == -jnp.inf), num_cols - 1, rank).astype(jnp.int32)
        for key, value in metrics_from_rank(rank, ks).items():
            out[f"{name}/{key}"] = value
    return out


def _chunk_plan(num_cols: int, chunk_size: int) -> tuple[int, int]:
    """(num_chunks, chunk): at most ``chunk_size`` columns a chunk, balanced so the last one is not mostly
    padding; chunks of 1024 or more are rounded up to a multiple of 32 (the grouped top-k's groups)."""
    num_chunks = -(-num_cols // max(1, min(int(chunk_size), num_cols)))
    chunk = -(-num_cols // num_chunks)
    if chunk >= 1024:
        chunk = -(-chunk // 32) * 32
    return num_chunks, chunk


def _split_chunks(x: jax.Array, num_chunks: int, chunk: int, axis: int = 0):
    """Pads ``axis`` of x (length N+1) with zeros to num_chunks*chunk and splits it into a leading chunk axis."""
    pad = num_chunks * chunk - x.shape[axis]
    if pad:
        widths = [(0, 0)] * x.ndim
        widths[axis] = (0, pad)
        x = jnp.pad(x, widths)
    x = x.reshape(x.shape[:axis] + (num_chunks, chunk) + x.shape[axis + 1:])
    return jnp.moveaxis(x, axis, 0)


def output_chunks(model, params, num_items: int, chunk_size: int):
    """The output layer cut into K item chunks of C (:func:`_chunk_plan`): (table f32[K, C, D], bias
    f32[K, C]), padded with zero rows; None for a model without ``output_layer`` (scored whole).
    Computed once per evaluation pass, not per batch (a copy of the table each batch cost ~9% of a
    ranking pass at 25k items)."""
    output_layer = getattr(model, "output_layer", None)
    if output_layer is None:
        return None
    num_chunks, chunk = _chunk_plan(num_items + 1, chunk_size)
    table, bias = output_layer(params)
    table = table[: num_items + 1]
    bias = jnp.zeros((num_items + 1,), table.dtype) if bias is None else bias[: num_items + 1]
    return _split_chunks(table, num_chunks, chunk), _split_chunks(bias, num_chunks, chunk)


def chunk_source(model, params, h: jax.Array, num_items: int, chunk_size: int, split=None):
    """(chunk_scores, chunks, num_chunks, chunk) for :func:`chunked_rank` of users ``h: f32[B, D]``.

    With ``model.output_layer`` each chunk is ``h @ table_chunk.T (+ bias_chunk)`` (``split``: the
    :func:`output_chunks` of ``params``, if already computed); a model without one (output_layer None
    or missing) is scored whole by ``model.score`` and the logits sliced.
    """
    num_chunks, chunk = _chunk_plan(num_items + 1, chunk_size)
    chunks = output_chunks(model, params, num_items, chunk_size) if split is None else split
    if chunks is None:
        logits = model.score(params, h)[:, : num_items + 1]
        return (lambda x: x), _split_chunks(logits, num_chunks, chunk, axis=1), num_chunks, chunk

    def chunk_scores(x):
        table_c, bias_c = x
        return jnp.einsum("bd,cd->bc", h, table_c) + bias_c

    return chunk_scores, chunks, num_chunks, chunk


def make_rank_fn(model, num_items: int, chunk_size: int = 8192, ks=DEFAULT_KS, top_k: int = 0) -> Callable:
    """``rank(params, h f32[B, D], targets i32[B], seen_lists i32[B, S], split=None) -> (metrics, top
    or None)`` (not jitted: jit or vmap it), ranking over chunks of ``chunk_size`` items; ``split``:
    :func:`output_chunks` of ``params``, to cut the table once for many batches."""

    def rank(params, h, targets, seen_lists, split=None):
        fn, chunks, num_chunks, chunk = chunk_source(model, params, h, num_items, chunk_size, split)
        return chunked_rank(fn, chunks, num_chunks, chunk, num_items + 1, targets, seen_lists, ks, top_k)

    return rank


def host_arrays(eval_arrays):
    """(inputs i32[U, L], targets i32[U], seen_offsets i64[U+1], seen_items i32[nnz], num_items) of an
    :class:`~rec_jax.data.splits.EvalArrays`, or of anything with ``inputs``, ``targets`` and a dense
    ``seen: bool[U, N+1]``."""
    inputs = np.asarray(eval_arrays.inputs, np.int32)
    targets = np.asarray(eval_arrays.targets, np.int32)
    if hasattr(eval_arrays, "seen_offsets"):
        return (inputs, targets, np.asarray(eval_arrays.seen_offsets, np.int64),
                np.asarray(eval_arrays.seen_items, np.int32), int(eval_arrays.num_items))
    seen = np.asarray(eval_arrays.seen, bool).copy()
    seen[:, 0] = False
    users, items = np.nonzero(seen)
    offsets = np.zeros(seen.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(users, minlength=seen.shape[0]), out=offsets[1:])
    return inputs, targets, offsets, items.astype(np.int32), seen.shape[1] - 1


def _bucket(n: int) -> int:
    """Seen-list width for a batch whose longest list is n: a power of two >= max(n, 8) (few compiles)."""
    return max(8, 1 << max(0, int(n) - 1).bit_length())


def rank_batches(inputs, targets, offsets, items, batch_size: int):
    """Host batches of ``batch_size`` users (last one padded): [(inputs, targets, seen_lists i32[B, S_b])].

    S_b is a power of two >= the batch's longest seen list; a padded row targets item 1 with an empty
    history and no seen items (its metrics are dropped)."""
    num = inputs.shape[0]
    num_batches = -(-num // batch_size)
    counts = np.diff(offsets)
    out = []
    for b in range(num_batches):
        lo, hi = b * batch_size, min(num, (b + 1) * batch_size)
        width = _bucket(counts[lo:hi].max(initial=0))
        seen = np.zeros((batch_size, width), np.int32)
        row_of = np.repeat(np.arange(hi - lo), counts[lo:hi])
        begin = np.cumsum(counts[lo:hi]) - counts[lo:hi]
        flat = np.arange(offsets[lo], offsets[hi])
        seen[row_of, flat - offsets[lo] - begin[row_of]] = items[flat]
        x = np.zeros((batch_size,) + inputs.shape[1:], np.int32)
        x[: hi - lo] = inputs[lo:hi]
        t = np.ones((batch_size,), np.int32)
        t[: hi - lo] = targets[lo:hi]
        out.append((x, t, seen))
    return out


class Evaluator:
    """Evaluates one set of users (e.g. all test users), ranking over item chunks.

    batch_size: users per ranking batch; chunk_size: items per chunk (the default 8192 makes
    ML-100K's 1,350 items one chunk); encode_batch_size: users per encoder call (independent of
    the ranking batch; on CPU small batches encode much faster: 128 vs 512 measured).
    Memory O(batch_size x chunk_size): no [users, items] array is built. The arrays are moved to
    the device once; a pass encodes every user, then ranks each batch in one jitted call.
    """

    def __init__(self, model, eval_arrays, batch_size: int = 1024, *, chunk_size: int = 8192,
                 encode_batch_size: int = 128, ks=DEFAULT_KS):
        inputs, targets, offsets, items, num_items = host_arrays(eval_arrays)
        self.num_users = num = int(inputs.shape[0])
        self.num_items = num_items
        self.top_k = max(ks)
        enc = max(1, min(int(encode_batch_size), num))
        enc_pad = -(-num // enc) * enc - num
        padded = np.concatenate([inputs, np.zeros((enc_pad,) + inputs.shape[1:], np.int32)])
        self.encode_batches = [jax.device_put(padded[i : i + enc]) for i in range(0, len(padded), enc)]
        self.batch_size = max(1, min(int(batch_size), num))
        self.batches = [jax.device_put((t, s)) for _, t, s in
                        rank_batches(inputs, targets, offsets, items, self.batch_size)]
        self.encode_fn = jax.jit(model.encode)
        rank = make_rank_fn(model, num_items, chunk_size, ks, self.top_k)
        self.rank_fn = jax.jit(rank)
        self.split_fn = jax.jit(lambda params: output_chunks(model, params, num_items, chunk_size))
        self.num_chunks = _chunk_plan(num_items + 1, chunk_size)[0]

        def score_only(params, h, split=None):
            fn, chunks, num_chunks, _ = chunk_source(model, params, h, num_items, chunk_size, split)
            return jax.lax.scan(lambda acc, x: (acc + jnp.sum(jnp.max(fn(x), axis=1)), None),
                                jnp.zeros((), jnp.float32), chunks)[0]

        self.score_fn = jax.jit(score_only)

    def encode(self, params) -> list[jax.Array]:
        """The users' states cut into the ranking batches: [f32[batch_size, D]] (padded rows zero)."""
        h = jnp.concatenate([self.encode_fn(params, x) for x in self.encode_batches])[: self.num_users]
        rows = len(self.batches) * self.batch_size
        h = jnp.pad(h, ((0, rows - self.num_users), (0, 0)))
        return [h[i : i + self.batch_size] for i in range(0, rows, self.batch_size)]

    def rank_pass(self, params, hs) -> list:
        """Rank the encoded batches ``hs`` (from :meth:`encode`; a prefix of them is fine): per batch
        (metrics, top). The output table is cut into chunks once for the whole pass."""
        split = self.split_fn(params)
        return [self.rank_fn(params, h, t, s, split) for h, (t, s) in zip(hs, self.batches)]

    def score_pass(self, params, hs) -> list:
        """The scoring-only pass over the batches ``hs`` (each chunk's scores reduced to a scalar): the
        matmul floor of :meth:`rank_pass`."""
        split = self.split_fn(params)
        return [self.score_fn(params, h, split) for h in hs]

    def per_user(self, params) -> dict[str, np.ndarray]:
        """Per-user metrics, {"masked/ndcg@10": f32[U], ...}."""
        parts = [m for m, _ in self.rank_pass(params, self.encode(params))]
        return {k: np.concatenate([np.asarray(p[k]) for p in parts])[: self.num_users] for k in parts[0]}

    def top_items(self, params) -> tuple[np.ndarray, np.ndarray]:
        """The masked top-k lists (k = max of the reported Ks): (scores f32[U, k], items i32[U, k])."""
        tops = [top for _, top in self.rank_pass(params, self.encode(params))]
        return tuple(np.concatenate([np.asarray(t[i]) for t in tops])[: self.num_users] for i in (0, 1))

    def __call__(self, params) -> dict[str, float]:
        """Mean metrics over users, {"masked/ndcg@10": float, ...}."""
        return {k: float(np.mean(v)) for k, v in self.per_user(params).items()}

    def time_pass(self, params, repeats: int = 5) -> float:
        """Median wall time in seconds of a warm full-ranking pass over all users (encode + rank)."""
        jax.block_until_ready(self.rank_pass(params, self.encode(params)))  # compile / warm up
        times = []
        for _ in range(max(3, repeats)):
            start = time.perf_counter()
            jax.block_until_ready(self.rank_pass(params, self.encode(params)))
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    def timings(self, params, repeats: int = 5) -> dict[str, float]:
        """Medians over ``max(3, repeats)`` warm passes, in seconds:

        encode_s: encoding every user (batches of ``encode_batch_size``);
        score_s: a scoring-only pass over all chunks (each chunk's scores reduced to a scalar, so XLA
                 cannot skip it): the matmul floor of ranking;
        rank_s: the ranking pass (scores, masks, running top-k, seen corrections) given the encoded users;
        eval_s = encode_s + rank_s.
        """
        hs = jax.block_until_ready(self.encode(params))  # compile / warm up
        jax.block_until_ready(self.rank_pass(params, hs))
        jax.block_until_ready(self.score_pass(params, hs))
        times = {"encode_s": [], "score_s": [], "rank_s": []}
        for _ in range(max(3, repeats)):
            start = time.perf_counter()
            hs = jax.block_until_ready(self.encode(params))
            times["encode_s"].append(time.perf_counter() - start)
            start = time.perf_counter()
            jax.block_until_ready(self.score_pass(params, hs))
            times["score_s"].append(time.perf_counter() - start)
            start = time.perf_counter()
            jax.block_until_ready(self.rank_pass(params, hs))
            times["rank_s"].append(time.perf_counter() - start)
        out = {k: float(np.median(v)) for k, v in times.items()}
        out["eval_s"] = out["encode_s"] + out["rank_s"]
        return out
