"""Chunked full ranking (rec_jax/train/evaluate.py: chunked_rank, Evaluator) against the dense rank_metrics."""
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.models import mask_pad_column
from rec_jax.train.evaluate import Evaluator, make_rank_fn, rank_batches, rank_metrics

NUM_ITEMS, DIM, USERS, K = 22, 3, 13, 20  # N+1 = 23 columns: chunks of 5 split them unevenly


def _case(seed=0):
    """Small-integer scores (exact in any summation order: many exact ties), NaN columns and NaN users."""
    rng = np.random.default_rng(seed)
    table = rng.integers(-1, 2, size=(NUM_ITEMS + 1, DIM)).astype(np.float32)
    bias = rng.integers(0, 2, size=NUM_ITEMS + 1).astype(np.float32)
    table[[4, 17]] = np.nan  # NaN competitors
    h = rng.integers(-1, 2, size=(USERS, DIM)).astype(np.float32)
    h[5] = np.nan  # a user whose every score (its target's too) is NaN
    targets = rng.integers(1, NUM_ITEMS + 1, size=USERS).astype(np.int32)
    targets[2] = 4  # a NaN target
    seen = rng.random((USERS, NUM_ITEMS + 1)) < 0.35
    seen[:, 0] = False
    seen[np.arange(0, USERS, 3), targets[::3]] = True  # a seen target stays rankable
    return {"t": table, "b": bias}, h, targets, seen


def _model(with_output_layer=True):
    score = lambda p, h: mask_pad_column(h @ p["t"].T + p["b"])
    layer = (lambda p: (p["t"], p["b"])) if with_output_layer else None
    return SimpleNamespace(encode=lambda p, x: x, score=score, output_layer=layer)


def _seen_lists(seen):
    users, items = np.nonzero(seen)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(users, minlength=len(seen)))])
    (_, t, s), = rank_batches(np.zeros((len(seen), 1), np.int32), np.zeros(len(seen), np.int32),
                              offsets, items.astype(np.int32), len(seen))
    return s


@pytest.mark.parametrize("chunk,layer", [(5, True), (64, True), (5, False)])
def test_chunked_equals_dense(chunk, layer):
    params, h, targets, seen = _case()
    model = _model(layer)
    rank = jax.jit(make_rank_fn(model, NUM_ITEMS, chunk, top_k=K))
    got, (top_v, top_i) = rank(params, h, targets, _seen_lists(seen))
    logits = model.score(params, jnp.asarray(h))
    want = rank_metrics(logits, jnp.asarray(targets), jnp.asarray(seen))
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(np.asarray(got[key]), np.asarray(want[key]), atol=1e-6, err_msg=key)
    # the running top-k: the scores of lax.top_k over the dense masked logits (ties: any item of the score)
    lg = np.array(logits)
    lg[:, 0] = -np.inf
    drop = seen.copy()
    drop[np.arange(USERS), targets] = False
    lg[drop] = -np.inf
    ref_v, _ = jax.lax.top_k(jnp.asarray(lg), K)
    np.testing.assert_array_equal(np.sort(np.asarray(top_v), axis=1), np.sort(np.asarray(ref_v), axis=1))
    top_v, top_i = np.asarray(top_v), np.asarray(top_i)
    assert ((top_i >= 0) & (top_i <= NUM_ITEMS)).all()
    finite = np.isfinite(top_v)
    np.testing.assert_array_equal(top_v[finite], lg[np.nonzero(finite)[0], top_i[finite]])


def test_evaluator_chunks_and_batches():
    """Evaluator (encode batches of 4, ranking batches of 6, chunks of 5) per user = dense metrics."""
    params, h, targets, seen = _case(1)
    model = _model()
    model.encode = lambda p, x: p["h"][x[:, 0]]  # "inputs" are user ids here
    params = {**params, "h": h}
    arrays = SimpleNamespace(inputs=np.arange(USERS)[:, None], targets=targets, seen=seen)
    ev = Evaluator(model, arrays, batch_size=6, chunk_size=5, encode_batch_size=4)
    got = ev.per_user(params)
    want = rank_metrics(model.score(params, jnp.asarray(h)), jnp.asarray(targets), jnp.asarray(seen))
    for key in want:
        np.testing.assert_allclose(got[key], np.asarray(want[key]), atol=1e-6, err_msg=key)
    timing = ev.timings(params, repeats=1)
    assert set(timing) == {"encode_s", "score_s", "rank_s", "eval_s"}
    assert timing["eval_s"] == pytest.approx(timing["encode_s"] + timing["rank_s"])
    scores, items = ev.top_items(params)
    assert scores.shape == items.shape == (USERS, K)


def test_grouped_running_top_equals_lax_top_k():
    """The grouped top-k keeps lax.top_k's values AND ids (ties: lower id first), NaNs included."""
    from rec_jax.train.evaluate import _running_top

    rng = np.random.default_rng(1)
    batch, chunk, keep = 6, 256, 5
    scores = rng.integers(0, 4, size=(batch, chunk)).astype(np.float32)  # heavy ties
    scores[1, [7, 100]] = np.nan
    scores[2] = -np.inf
    top_v = np.sort(rng.integers(0, 5, size=(batch, keep)).astype(np.float32), axis=1)[:, ::-1].copy()
    top_i = rng.integers(0, 50, size=(batch, keep)).astype(np.int32)
    ids = 1000 + np.arange(chunk)[None, :]
    got_v, got_i = _running_top(jnp.asarray(top_v), jnp.asarray(top_i), jnp.asarray(scores), jnp.asarray(ids), keep, 8)
    want_v, pos = jax.lax.top_k(jnp.concatenate([top_v, scores], axis=1), keep)
    want_i = np.take_along_axis(np.concatenate([top_i, np.broadcast_to(ids, scores.shape)], axis=1), np.asarray(pos), 1)
    np.testing.assert_array_equal(np.asarray(got_v), np.asarray(want_v))
    np.testing.assert_array_equal(np.asarray(got_i), want_i)


def test_chunked_grouped_path_equals_dense(monkeypatch):
    """The grouped top-k's path (forced on small chunks), ties and NaNs: ranks as target_rank's."""
    from rec_jax.eval.ranking import metrics_from_rank, target_rank
    from rec_jax.train import evaluate
    from rec_jax.train.evaluate import _group_size, chunked_rank

    monkeypatch.setattr(evaluate, "GROUPED_TOP_MIN_CHUNK", 0)

    rng = np.random.default_rng(2)
    users, items, chunk, ks = 9, 300, 128, (1, 3)
    assert _group_size(chunk, max(ks) + 1) > 1
    lg = rng.integers(-2, 3, size=(users, items + 1)).astype(np.float32)
    lg[:, [5, 77]] = np.nan
    lg[3] = np.nan
    targets = rng.integers(1, items + 1, size=users).astype(np.int32)
    seen = rng.random((users, items + 1)) < 0.2
    seen[:, 0] = False
    seen[0, targets[0]] = True
    num_chunks = -(-(items + 1) // chunk)
    padded = np.pad(lg, ((0, 0), (0, num_chunks * chunk - items - 1)))
    chunks = jnp.asarray(padded.reshape(users, num_chunks, chunk).transpose(1, 0, 2))
    got, _ = jax.jit(lambda c, t, s: chunked_rank(lambda x: x, c, num_chunks, chunk, items + 1, t, s, ks))(
        chunks, jnp.asarray(targets), jnp.asarray(_seen_lists(seen)))
    dense = lg.copy()
    dense[:, 0] = -np.inf
    masked = dense.copy()
    drop = seen.copy()
    drop[np.arange(users), targets] = False
    masked[drop] = -np.inf
    for name, x in (("masked", masked), ("unmasked", dense)):
        want = metrics_from_rank(target_rank(jnp.asarray(x), jnp.asarray(targets)), ks)
        for key in want:
            np.testing.assert_allclose(np.asarray(got[f"{name}/{key}"]), np.asarray(want[key]), atol=1e-6,
                                       err_msg=f"{name}/{key}")
