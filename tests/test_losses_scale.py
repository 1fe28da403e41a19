"""Losses that scale (sampled softmax with log-Q, gBCE, chunked exact CE) against NumPy references."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.train import losses

B, L, D, N = 2, 4, 3, 10  # N items + the padding id 0


def _data(seed=0):
    rng = np.random.default_rng(seed)
    h = rng.normal(size=(B, L, D)).astype(np.float32)
    table = rng.normal(size=(N + 1, D)).astype(np.float32)
    bias = rng.normal(size=(N + 1,)).astype(np.float32)
    targets = rng.integers(1, N + 1, size=(B, L)).astype(np.int32)
    targets[0, 0] = 0  # a padding target, masked
    mask = np.ones((B, L), bool)
    mask[0, 0] = mask[1, 3] = False
    return h, table, bias, targets, mask


def _numeric_grad(f, x, eps=1e-5):
    x = np.asarray(x, np.float64)
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += eps
        down[i] -= eps
        g[i] = (f(up) - f(down)) / (2 * eps)
    return g


def _lse(x, axis=-1):
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def _np_sampled_softmax(h, table, bias, targets, mask, negatives, log_kq):
    out, count = 0.0, 0
    for b in range(B):
        for t in range(L):
            if not mask[b, t]:
                continue
            z = table @ h[b, t] + bias
            neg = np.where(negatives[b] == targets[b, t], -np.inf, z[negatives[b]] - log_kq[b])
            out += _lse(np.concatenate([[z[targets[b, t]]], neg])) - z[targets[b, t]]
            count += 1
    return out / count


def _np_gbce(h, table, bias, targets, mask, negatives, beta, k):
    log_sig = lambda x: -np.logaddexp(0.0, -x)  # noqa: E731
    out, count = 0.0, 0
    for b in range(B):
        for t in range(L):
            if not mask[b, t]:
                continue
            z = table @ h[b, t] + bias
            neg = np.where(negatives[b] == targets[b, t], 0.0, log_sig(-z[negatives[b]]))
            out += -(beta * log_sig(z[targets[b, t]]) + neg.sum()) / (k + 1)
            count += 1
    return out / count


@pytest.mark.parametrize("alpha", [0.0, 0.75])
def test_sampled_softmax_matches_numpy_value_and_gradient(alpha):
    h, table, bias, targets, mask = _data()
    k, key = 6, jax.random.key(3)
    counts = np.arange(N + 1) * 3
    log_q = None if alpha == 0 else losses.popularity_log_q(counts, alpha)
    negatives = np.asarray(losses.draw_negatives(key, (B, k), N, log_q))
    assert negatives.min() >= 1 and negatives.max() <= N
    if log_q is None:
        log_kq = np.full((B, k), np.log(k / N))
    else:
        q = (counts[1:] + 1.0) ** alpha
        np.testing.assert_allclose(np.exp(np.asarray(log_q))[1:], q / q.sum(), rtol=1e-5)
        log_kq = np.log(k * (q / q.sum())[negatives - 1])
    fn = jax.value_and_grad(lambda hh: losses.sampled_softmax_ce(key, hh, table, bias, targets, mask, k, log_q))
    value, grad = fn(jnp.asarray(h))
    ref = lambda hh: _np_sampled_softmax(hh, table, bias, targets, mask, negatives, log_kq)  # noqa: E731
    np.testing.assert_allclose(float(value), ref(h.astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(grad), _numeric_grad(ref, h), atol=1e-5)


def test_sampled_softmax_approaches_the_full_softmax_with_many_negatives():
    h, table, bias, targets, mask = _data(1)
    full = float(losses.full_softmax_ce(jnp.einsum("bld,nd->bln", h, table) + bias, targets, mask))
    sampled = float(losses.sampled_softmax_ce(jax.random.key(0), h, table, bias, targets, mask, 20000))
    assert abs(sampled - full) < 0.02 * full


def test_gbce_beta_follows_the_paper():
    k, n = 256, 1349
    alpha = k / (n - 1)
    assert losses.gbce_beta(k, n, 0.0) == pytest.approx(1.0)
    assert losses.gbce_beta(k, n, 1.0) == pytest.approx(alpha)
    assert losses.gbce_beta(k, n, 0.75) == pytest.approx(alpha * (0.75 * (1 - 1 / alpha) + 1 / alpha))


def test_gbce_matches_numpy_value_and_gradient():
    h, table, bias, targets, mask = _data(2)
    k, t, key = 5, 0.75, jax.random.key(4)
    negatives = np.asarray(losses.draw_negatives(key, (B, k), N))
    beta = losses.gbce_beta(k, N, t)
    fn = jax.value_and_grad(lambda hh: losses.gbce(key, hh, table, bias, targets, mask, k, t))
    value, grad = fn(jnp.asarray(h))
    ref = lambda hh: _np_gbce(hh, table, bias, targets, mask, negatives, beta, k)  # noqa: E731
    np.testing.assert_allclose(float(value), ref(h.astype(np.float64)), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(grad), _numeric_grad(ref, h), atol=1e-5)


@pytest.mark.parametrize("chunk", [3, 4, 64])  # uneven chunks, exact chunks of 12 padded columns, one chunk
def test_chunked_ce_equals_full_ce_value_and_gradient(chunk):
    h, table, bias, targets, mask = _data(3)

    def full(hh, tt, bb):
        return losses.full_softmax_ce(jnp.einsum("bld,nd->bln", hh, tt) + bb, targets, mask)

    def chunked(hh, tt, bb):
        return losses.chunked_softmax_ce(hh, tt, bb, targets, mask, chunk)

    v_full, g_full = jax.value_and_grad(full, argnums=(0, 1, 2))(h, table, bias)
    v_chunk, g_chunk = jax.value_and_grad(chunked, argnums=(0, 1, 2))(h, table, bias)
    np.testing.assert_allclose(float(v_chunk), float(v_full), rtol=1e-5, atol=1e-5)
    for a, b in zip(g_chunk, g_full):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    # NumPy reference of the value (masked positions out; the padding column excluded)
    z = np.einsum("bld,nd->bln", h.astype(np.float64), table) + bias
    per = _lse(z[..., 1:]) - np.take_along_axis(z, targets[..., None], -1)[..., 0]
    np.testing.assert_allclose(float(v_chunk), per[mask].mean(), rtol=1e-5)
    if chunk < N + 1:  # neither pass holds a [positions, items] array
        text = str(jax.make_jaxpr(jax.grad(chunked, argnums=(0, 1, 2)))(h, table, bias))
        padded = -(-(N + 1) // chunk) * chunk
        assert f"f32[{B * L},{N + 1}]" not in text and f"f32[{B * L},{padded}]" not in text


@pytest.mark.slow  # ~17 s: four value-and-grad compilations of a SASRec
def test_trainer_wires_the_new_losses():
    from rec_jax.models import make_model
    from rec_jax.train.config import get_preset, model_config
    from rec_jax.train.trainer import item_counts, make_loss_fn

    base = get_preset("tiny-sasrec")
    num_items = 30
    model = make_model("sasrec", model_config(base, num_items))
    params = jax.jit(model.init)(jax.random.key(0))
    rng = np.random.default_rng(0)
    window = rng.integers(1, num_items + 1, size=(4, base.max_len + 1)).astype(np.int32)
    target_mask = np.ones((4, base.max_len), bool)
    key = jax.random.key(1)

    def value_grad(config, counts=None):
        return jax.jit(jax.value_and_grad(make_loss_fn(model, config, None, counts)))(params, key, window, target_mask)

    v_ce, g_ce = value_grad(base)
    v_ch, g_ch = value_grad(dataclasses.replace(base, loss="ce_chunked", loss_chunk_size=7))
    np.testing.assert_allclose(float(v_ch), float(v_ce), rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_ch), jax.tree.leaves(g_ce)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)

    class W:  # a Windows-like pair
        seq, target_mask = window, np.ones((4, base.max_len), bool)

    counts = item_counts(W, num_items)
    assert counts.shape == (num_items + 1,) and counts.sum() == 4 * base.max_len and counts[0] == 0
    pop = dataclasses.replace(base, loss="sampled_softmax", num_negatives=8, negative_alpha=0.5)
    for config, c in ((pop, counts), (dataclasses.replace(base, loss="gbce", num_negatives=8), None)):
        v, g = value_grad(config, c)
        assert np.isfinite(float(v)) and all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(g))
    with pytest.raises(ValueError, match="item counts"):
        make_loss_fn(model, pop)
    with pytest.raises(ValueError, match="unknown loss"):
        make_loss_fn(model, dataclasses.replace(base, loss="nope"))
    with pytest.raises(ValueError, match="gbce_t"):
        make_loss_fn(model, dataclasses.replace(base, loss="gbce", gbce_t=1.5))
