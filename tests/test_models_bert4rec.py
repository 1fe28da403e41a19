"""BERT4Rec: bidirectional attention and Cloze masking statistics."""
import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.models import BERT4RecConfig, make_bert4rec

N, L, D = 20, 8, 16
# Cloze restricted to the window's counted targets, so the statistics below can check that
# positions outside target_mask are never hidden, and next-item rows at the window's end;
# the whole-window and random-prefix defaults are tested apart.
CFG = BERT4RecConfig(num_items=N, max_len=L, dim=D, num_heads=2, ff_dim=32, mask_prob=0.3,
                     cloze_whole_window=False, ft_random_prefix=False)


def test_bidirectional_later_items_change_earlier_states():
    model = make_bert4rec(CFG)
    params = jax.jit(model.init)(jax.random.key(0))
    base = np.array([0, 0, 4, 9, 2, 11, 6, 3], np.int32)
    changed = base.copy()
    changed[-1] = 17
    h = np.asarray(jax.jit(lambda p, s: model.hidden(p, s, train=False))(
        params, jnp.asarray(np.stack([base, changed]))))
    # Every real position (not only the last) sees the changed future item ...
    assert np.all(np.abs(h[0, 2:] - h[1, 2:]).max(axis=-1) > 1e-4)
    # ... and padding positions stay zero.
    np.testing.assert_array_equal(h[:, :2], 0.0)


def _windows(rng, num_rows):
    """Random windows int32[B, L+1] with random left padding."""
    windows = rng.integers(1, N + 1, (num_rows, L + 1)).astype(np.int32)
    pads = rng.integers(0, L + 1, num_rows)
    windows[np.arange(L + 1)[None] < pads[:, None]] = 0
    return windows


@pytest.fixture(scope="module")
def cloze():
    """training_batch jitted once for the two masking regimes (ft_ratio 0 and 1)."""
    cloze_only = make_bert4rec(dataclasses.replace(CFG, ft_ratio=0.0))
    last_only = make_bert4rec(dataclasses.replace(CFG, ft_ratio=1.0))
    mixed = make_bert4rec(CFG)  # default ft_ratio = 0.5

    @jax.jit
    def batches(key, windows, target_mask):
        return [m.training_batch(key, windows, target_mask) for m in (cloze_only, last_only, mixed)]

    return batches


def test_cloze_masking_statistics(cloze):
    rng = np.random.default_rng(0)
    windows = _windows(rng, 2000)
    target_mask = rng.random((2000, L)) < 0.9
    (inputs, targets, mask), (inputs_l, targets_l, mask_l), (_, _, mask_m) = (
        jax.tree.map(np.asarray, cloze(jax.random.key(1), jnp.asarray(windows), jnp.asarray(target_mask)))
    )
    items = windows[:, 1:]
    candidates = (items > 0) & target_mask
    n = candidates.sum(1)
    has = n > 0
    # Only candidates are masked (never padding, never a position the caller excluded).
    assert not np.any(mask & ~candidates) and not np.any(mask_l & ~candidates)
    # Inputs: [MASK] exactly at masked positions, the original item elsewhere.
    np.testing.assert_array_equal(inputs, np.where(mask, N + 1, items))
    np.testing.assert_array_equal(inputs_l, np.where(mask_l, N + 1, items))
    # Targets: the original items at masked positions, 0 elsewhere.
    np.testing.assert_array_equal(targets, np.where(mask, items, 0))
    # At least one mask in every row that has a candidate; none otherwise.
    np.testing.assert_array_equal(mask.any(1), has)
    # Expected count per row: n p + (1-p)^n (the forced mask when none was drawn).
    p = CFG.mask_prob
    expected = (n * p + (1 - p) ** n)[has].sum()
    observed = mask[has].sum()
    std = np.sqrt((n * p * (1 - p))[has].sum())
    assert abs(observed - expected) < 4 * std, (observed, expected, std)
    # Fine-tuning rows mask exactly the last candidate (the next-item task).
    last = np.where(has, L - 1 - np.argmax(candidates[:, ::-1], axis=1), -1)
    expected_last = np.zeros_like(mask_l)
    expected_last[has, last[has]] = True
    np.testing.assert_array_equal(mask_l, expected_last)
    # Mixed rows: about half the rows are fine-tuning rows with a single mask at the
    # last candidate; in Cloze rows with >= 4 candidates that is rarer, so count rows
    # whose mask is exactly "last only" among rows with many candidates.
    many = n >= 6
    last_only_rows = (mask_m == expected_last).all(1)[many].mean()
    # P(last-only | Cloze row, n) = p (1-p)^(n-1) + (1-p)^n / n; ft rows are always last-only.
    nm = n[many]
    cloze_last_only = (p * (1 - p) ** (nm - 1) + (1 - p) ** nm / nm).mean()
    expected_frac = CFG.ft_ratio + (1 - CFG.ft_ratio) * cloze_last_only
    assert abs(last_only_rows - expected_frac) < 4 * np.sqrt(0.25 / many.sum()), (
        last_only_rows, expected_frac)


def test_masking_depends_on_the_key(cloze):
    windows = jnp.asarray(_windows(np.random.default_rng(2), 64))
    tm = jnp.ones((64, L), bool)
    a = cloze(jax.random.key(3), windows, tm)[0][2]
    b = cloze(jax.random.key(3), windows, tm)[0][2]
    c = cloze(jax.random.key(4), windows, tm)[0][2]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_whole_window_cloze_hides_any_real_item_but_never_padding():
    model = make_bert4rec(dataclasses.replace(CFG, cloze_whole_window=True, ft_ratio=0.0, mask_prob=0.5))
    windows = _windows(np.random.default_rng(4), 4000)
    target_mask = np.zeros((4000, L), bool)
    target_mask[:, -1] = True  # the window counts only its last target
    _, targets, mask = jax.tree.map(np.asarray, jax.jit(model.training_batch)(
        jax.random.key(5), jnp.asarray(windows), jnp.asarray(target_mask)))
    items = windows[:, 1:]
    assert not np.any(mask & (items == 0))
    np.testing.assert_array_equal(targets, np.where(mask, items, 0))
    # Every real position, not only the counted last one, is hidden with probability
    # p + (1 - p)^n / n in a row of n real items (the forced mask when none was drawn).
    real = items > 0
    n = real.sum(1, keepdims=True)
    p = 0.5
    expected = np.where(real, p + (1 - p) ** n / np.maximum(n, 1), 0.0).sum(0)
    std = np.sqrt(np.where(real, 0.25, 0.0).sum(0))
    assert np.all(np.abs(mask.sum(0) - expected) < 4 * std), (mask.sum(0), expected)


def test_random_prefix_rows_end_at_a_uniform_item_with_history():
    model = make_bert4rec(dataclasses.replace(CFG, cloze_whole_window=True, ft_random_prefix=True, ft_ratio=1.0))
    rng = np.random.default_rng(6)
    windows = _windows(rng, 3000)
    windows[:, 0] = 0  # so the first real item has no item before it and cannot be a cut
    inputs, targets, mask = jax.tree.map(np.asarray, jax.jit(model.training_batch)(
        jax.random.key(7), jnp.asarray(windows), jnp.ones((3000, L), bool)))
    items = windows[:, 1:]
    for row in range(3000):
        real = np.flatnonzero(items[row])
        if real.size < 2:  # no cut with history: nothing hidden
            assert not mask[row].any()
            continue
        # hidden: only the last column, and it holds an item that has history before it
        np.testing.assert_array_equal(np.flatnonzero(mask[row]), [L - 1])
        # inputs: the window up to the cut, right-aligned, its last item replaced by [MASK]
        length = int((inputs[row] > 0).sum())
        prefix = items[row, real[0]: real[0] + length]
        np.testing.assert_array_equal(inputs[row, L - length:-1], prefix[:-1])
        assert inputs[row, -1] == N + 1 and targets[row, -1] == prefix[-1] and length >= 2
    # the cut is uniform over the items with history: the prefix length of a full row
    # (no padding, L real items) is uniform on 2..L
    full = (items > 0).all(1)
    lengths = (inputs[full] > 0).sum(1)
    counts = np.bincount(lengths, minlength=L + 1)[2:]
    expected = full.sum() / (L - 1)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts


def _np_layer_norm(x, p, eps=1e-6):
    mu = x.mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(((x - mu) ** 2).mean(-1, keepdims=True) + eps) * p["scale"] + p["bias"]


def _np_gelu(x):  # flax's nn.gelu default: the tanh approximation
    return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))


def numpy_bert4rec(params, seq, num_heads):
    """Eval-mode forward of ONE sequence, from the paper's equations: item + position
    embeddings (positions from the first real item), pre-LN blocks with bidirectional
    attention over the real items, final LN, prediction head GELU(h W + b) then LN;
    zero at padding. Returns f32[L, D]."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    enc = p["encoder"]
    valid = seq > 0
    pos = np.clip(np.cumsum(valid) - 1, 0, None)
    x = (enc["item_embed"]["embedding"][seq] + enc["pos_embed"]["embedding"][pos]) * valid[:, None]
    dim = x.shape[1]
    dh = dim // num_heads
    for i in range(sum(k.startswith("block_") for k in enc)):
        b = enc[f"block_{i}"]
        y = _np_layer_norm(x, b["ln_attn"])
        qkv = np.einsum("ld,dchk->lchk", y, b["attn"]["qkv"]["kernel"]) + b["attn"]["qkv"]["bias"]
        out = np.zeros((len(seq), num_heads, dh))
        for h in range(num_heads):
            q, k, v = qkv[:, 0, h], qkv[:, 1, h], qkv[:, 2, h]
            a = np.where(valid[None, :], q @ k.T / np.sqrt(dh), -np.inf)  # every real key, both directions
            w = np.exp(a - a.max(1, keepdims=True))
            out[:, h] = (w / w.sum(1, keepdims=True)) @ v
        x = x + np.einsum("lhk,hkd->ld", out, b["attn"]["out"]["kernel"]) + b["attn"]["out"]["bias"]
        y = _np_layer_norm(x, b["ln_ff"])
        x = x + _np_gelu(y @ b["ff_in"]["kernel"] + b["ff_in"]["bias"]) @ b["ff_out"]["kernel"] + b["ff_out"]["bias"]
    x = _np_layer_norm(x, enc["ln_final"])
    hd = p["head"]
    x = _np_layer_norm(_np_gelu(x @ hd["dense"]["kernel"] + hd["dense"]["bias"]), hd["ln"])
    return x * valid[:, None]


def test_forward_and_scores_match_numpy_reference():
    """A 1-layer tiny BERT4Rec with O(1) random params (so attention is far from uniform)
    against :func:`numpy_bert4rec`: hidden states of padded and full windows with a
    [MASK] inside, and the next-item scores ``encode`` + ``score`` give (history shifted
    left, [MASK] appended; logits h E^T + b_O over items 0..N, column 0 the pad logit)."""
    from rec_jax.models.base import PAD_LOGIT

    cfg = dataclasses.replace(CFG, num_layers=1)
    model = make_bert4rec(cfg)
    params = model.init(jax.random.key(0))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda a: jnp.asarray(rng.normal(0.0, 0.5, a.shape), a.dtype), params)
    seqs = np.array([[0, 0, 4, 9, N + 1, 11, 6, 3], [2, 4, 6, 8, 10, 12, 14, 16]], np.int32)
    h, scores = jax.jit(lambda p, s: (model.hidden(p, s, train=False), model.score(p, model.encode(p, s))))(
        params, jnp.asarray(seqs))
    table = np.asarray(params["encoder"]["item_embed"]["embedding"], np.float64)[: N + 1]
    bias = np.asarray(params["output_bias"], np.float64)
    for b in range(2):
        np.testing.assert_allclose(np.asarray(h[b]), numpy_bert4rec(params, seqs[b], cfg.num_heads),
                                   rtol=1e-4, atol=1e-4)
        last = numpy_bert4rec(params, np.append(seqs[b, 1:], N + 1), cfg.num_heads)[-1]
        ref = last @ table.T + bias
        np.testing.assert_allclose(np.asarray(scores[b, 1:]), ref[1:], rtol=1e-4, atol=1e-4)
        assert float(scores[b, 0]) == PAD_LOGIT
