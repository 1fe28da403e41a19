"""SASRec: causality, padding invariance, a NumPy reference forward, and a tiny overfit."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rec_jax.models import SASRecConfig, make_sasrec

N, L, D = 20, 8, 16
CFG = SASRecConfig(num_items=N, max_len=L, dim=D, num_layers=2, num_heads=2, ff_dim=32)


@pytest.fixture(scope="module")
def sasrec():
    model = make_sasrec(CFG)
    params = jax.jit(model.init)(jax.random.key(0))
    hidden = jax.jit(lambda p, s: model.hidden(p, s, train=False))
    return model, params, hidden


def test_causal_future_items_do_not_change_the_past(sasrec):
    model, params, hidden = sasrec
    base = np.array([0, 0, 4, 9, 2, 11, 6, 3], np.int32)
    t = 4
    changed = base.copy()
    changed[t + 1 :] = [17, 1, 13]
    h = np.asarray(hidden(params, jnp.asarray(np.stack([base, changed]))))
    np.testing.assert_allclose(h[0, : t + 1], h[1, : t + 1], rtol=1e-6, atol=1e-6)
    assert np.abs(h[0, t + 1 :] - h[1, t + 1 :]).max() > 1e-3  # the future part does change


def test_state_at_t_equals_encoding_of_the_prefix(sasrec):
    """Positions count from the first item, so h[t] = encode(prefix up to t, left-padded)."""
    model, params, hidden = sasrec
    seq = np.array([0, 0, 0, 5, 12, 7, 19, 1], np.int32)
    prefixes = np.zeros((L, L), np.int32)
    for t in range(L):
        prefixes[t, L - 1 - t :] = seq[: t + 1]
    h_seq = np.asarray(hidden(params, jnp.asarray(seq[None])))[0]
    h_prefix_last = np.asarray(hidden(params, jnp.asarray(prefixes)))[:, -1]
    valid = seq > 0
    np.testing.assert_allclose(h_prefix_last[valid], h_seq[valid], rtol=1e-5, atol=1e-5)


def test_padding_invariance_across_window_lengths(sasrec):
    """The same history left-padded to L=8 or unpadded at L=5 gives the same states."""
    model, params, hidden = sasrec
    items = np.array([5, 12, 7, 19, 1], np.int32)
    padded = np.concatenate([np.zeros(L - 5, np.int32), items])[None]
    h_long = np.asarray(hidden(params, jnp.asarray(padded)))[0, L - 5 :]
    h_short = np.asarray(model.hidden(params, jnp.asarray(items[None]), train=False))[0]
    np.testing.assert_allclose(h_long, h_short, rtol=1e-5, atol=1e-5)


def test_longer_than_max_len_raises(sasrec):
    model, params, hidden = sasrec
    with pytest.raises(ValueError, match="max_len"):
        jax.eval_shape(lambda p: model.encode(p, jnp.ones((1, L + 1), jnp.int32)), params)


def _layer_norm(x, p, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * p["scale"] + p["bias"]


def _gelu(x):  # flax's default nn.gelu is the tanh approximation
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def numpy_sasrec(params, seq):
    """Reference forward for one sequence, eval mode, written from the paper's equations."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)["encoder"]
    valid = seq > 0
    pos = np.clip(np.cumsum(valid) - 1, 0, None)
    x = (p["item_embed"]["embedding"][seq] + p["pos_embed"]["embedding"][pos]) * valid[:, None]
    heads, dh = CFG.num_heads, D // CFG.num_heads
    allowed = np.tril(np.ones((len(seq), len(seq)), bool)) & valid[None, :]
    for i in range(CFG.num_layers):
        b = p[f"block_{i}"]
        y = _layer_norm(x, b["ln_attn"])
        qkv = np.einsum("ld,dchk->lchk", y, b["attn"]["qkv"]["kernel"]) + b["attn"]["qkv"]["bias"]
        out = np.zeros((len(seq), heads, dh))
        for h in range(heads):
            q, k, v = qkv[:, 0, h], qkv[:, 1, h], qkv[:, 2, h]
            a = q @ k.T / np.sqrt(dh)
            a = np.where(allowed, a, -np.inf)
            for row in range(len(seq)):
                if not allowed[row].any():  # a padding query: no key, output unused
                    continue
                w = np.exp(a[row] - a[row].max())
                out[row, h] = (w / w.sum()) @ v
        x = x + np.einsum("lhk,hkd->ld", out, b["attn"]["out"]["kernel"]) + b["attn"]["out"]["bias"]
        y = _layer_norm(x, b["ln_ff"])
        y = _gelu(y @ b["ff_in"]["kernel"] + b["ff_in"]["bias"])
        x = x + y @ b["ff_out"]["kernel"] + b["ff_out"]["bias"]
    return _layer_norm(x, p["ln_final"]) * valid[:, None]


def test_matches_numpy_reference(sasrec):
    model, params, hidden = sasrec
    seqs = np.array([[0, 0, 0, 3, 7, 1, 20, 5], [2, 4, 6, 8, 10, 12, 14, 16]], np.int32)
    got = np.asarray(hidden(params, jnp.asarray(seqs)))
    for b in range(2):
        np.testing.assert_allclose(got[b], numpy_sasrec(params, seqs[b]), rtol=1e-4, atol=1e-4)


def _successor_windows(rng, num_rows):
    """Item i is always followed by i % N + 1; random left padding (>= 2 items kept)."""
    starts = rng.integers(0, N, num_rows)
    windows = (starts[:, None] + np.arange(L + 1)[None]) % N + 1
    pads = rng.integers(0, L, num_rows)
    windows[np.arange(L + 1)[None] < pads[:, None]] = 0
    return windows.astype(np.int32)


@pytest.mark.slow  # trains a tiny SASRec to convergence
def test_overfits_a_deterministic_successor_rule(sasrec):
    # Same shapes as CFG (so the fixture's params fit), lighter regularisation.
    model = make_sasrec(dataclasses.replace(CFG, dropout=0.1, attn_dropout=0.0))
    init_params = sasrec[1]
    windows = _successor_windows(np.random.default_rng(0), 64)
    windows[-1] = 0  # an all-padding row must not poison the gradient
    target_mask = jnp.ones((64, L), bool)
    optimizer = optax.flatten(optax.adam(1e-2))  # one flat vector: fewer ops to compile

    def loss_fn(params, key):
        inputs, targets, mask = model.training_batch(None, jnp.asarray(windows), target_mask)
        logits = model.score(params, model.hidden(params, inputs, train=True, key=key))
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        return jnp.sum(nll * mask) / mask.sum()

    @jax.jit
    def train(params, loop_key):

        def step(carry, step_key):
            params, opt_state = carry
            loss, grads = jax.value_and_grad(loss_fn)(params, step_key)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            finite = jnp.all(jnp.array([jnp.isfinite(g).all() for g in jax.tree.leaves(grads)]))
            return (optax.apply_updates(params, updates), opt_state), (loss, finite)

        (params, _), (losses, finite) = jax.lax.scan(
            step, (params, optimizer.init(params)), jax.random.split(loop_key, 150)
        )
        # Evaluate next-item prediction on fresh windows (each ends in a known item).
        test = _successor_windows(np.random.default_rng(1), 40)[:, :-1]
        pred = jnp.argmax(model.score(params, model.encode(params, jnp.asarray(test))), axis=-1)
        return losses, finite, pred, test[:, -1] % N + 1

    losses, finite, pred, truth = train(init_params, jax.random.key(0))
    assert bool(np.all(finite))
    assert losses[-1] < 0.1 * losses[0]
    accuracy = float(np.mean(np.asarray(pred) == truth))
    assert accuracy >= 0.95, accuracy
