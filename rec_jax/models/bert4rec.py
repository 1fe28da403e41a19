"""BERT4Rec: bidirectional Transformer trained by Cloze (Sun et al., CIKM 2019).

The encoder is SASRec's pre-LN Transformer without the causal mask, over an item
table with one extra row, the [MASK] token ``N+1``. Output layer as in the paper
(Sec. 3.5): ``P = softmax(GELU(h W + b) E^T + b_O)`` with the tied item table ``E``;
``hidden`` already includes the ``GELU(h W + b)`` transform (followed by a LayerNorm, as
in BERT's prediction head), so ``score(params, h) = h E^T + b_O``. ``item_embeddings``
returns ``E`` without the output bias ``params['output_bias']``.

To recommend, ``encode`` shifts the history one step left, appends [MASK] in the
last column, and reads the state there.

Training (``training_batch``): the last L items of the window are the input. Each row
is, with probability ``ft_ratio``, a "fine-tuning" row where only the last item is
masked (next-item prediction, RecBole's ``ft_ratio``; the original code's
``mask_last`` instances), otherwise a Cloze row where every candidate item is
masked with probability ``mask_prob`` and at least one is masked. With
``cloze_whole_window`` (the default) every non-pad item of the window is a
candidate; otherwise only the targets the window counts (``target_mask``). The
whole window is the Cloze of the paper: a next-item model needs each target once
per epoch, but a masked-item model learns from every position it can hide, and
RecBole, which samples every prefix of a history, hides each item in many of them.
With ``ft_random_prefix`` (off by default: on ML-100K it was not better in the run
measured, see the README) a fine-tuning row is a prefix of the window
that ends at a uniformly drawn candidate with at least one item before it, moved to
the right end (left-padded, as ``encode`` sees a history) with its last item hidden:
the next-item task then covers every position of a history, as RecBole's prefix
samples do, instead of only the window ends (every ``window_stride``-th item).

params: {'encoder': {... as SASRec, item_embed has N+2 rows ...},
         'head': {'dense': {'kernel', 'bias'}, 'ln': {'scale', 'bias'}},
         'output_bias': f32[N+1]}
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from rec_jax.models.base import (
    ModelInfo,
    SequentialModel,
    check_init_config,
    check_seq_len,
    mask_pad_column,
)
from rec_jax.models.sasrec import _check_transformer_config
from rec_jax.models.transformer import TransformerEncoder


@dataclasses.dataclass(frozen=True)
class BERT4RecConfig:
    """Static shape, regularisation and masking of a BERT4Rec model."""

    num_items: int  # N: item ids are 1..N, 0 = padding, N+1 = [MASK]
    max_len: int = 50  # longest sequence L (size of the positional table)
    dim: int = 64  # D: embedding and hidden width
    num_layers: int = 2  # Transformer blocks
    num_heads: int = 2  # attention heads (must divide dim)
    ff_dim: int = 256  # feed-forward inner width
    dropout: float = 0.2  # embedding / hidden / FFN dropout rate
    attn_dropout: float = 0.2  # dropout on attention weights
    mask_prob: float = 0.2  # Cloze: probability that an item is replaced by [MASK]
    init_std: float = 0.02  # std of the normal init of embeddings and kernels
    ft_ratio: float = 0.5  # fraction of training rows with only the last item masked (RecBole)
    cloze_whole_window: bool = True  # Cloze candidates: every item of the window (False: its counted targets)
    ft_random_prefix: bool = False  # next-item rows end at a uniformly drawn item (False: the window's last)

    def __post_init__(self):
        _check_transformer_config(self, "BERT4RecConfig")
        if not 0.0 < self.mask_prob <= 1.0:
            raise ValueError(f"BERT4RecConfig.mask_prob must be in (0, 1], got {self.mask_prob}")
        if not 0.0 <= self.ft_ratio <= 1.0:
            raise ValueError(f"BERT4RecConfig.ft_ratio must be in [0, 1], got {self.ft_ratio}")

    @property
    def mask_token(self) -> int:
        """Id of the [MASK] token."""
        return self.num_items + 1


class BERT4Rec(nn.Module):
    """Bidirectional encoder + prediction transform: seq int32[B, L] -> f32[B, L, D]."""

    config: BERT4RecConfig

    @nn.compact
    def __call__(self, seq, deterministic: bool = True, last_only: bool = False):
        c = self.config
        x = TransformerEncoder(
            num_embeddings=c.num_items + 2, max_len=c.max_len, dim=c.dim,
            num_layers=c.num_layers, num_heads=c.num_heads, ff_dim=c.ff_dim,
            dropout=c.dropout, attn_dropout=c.attn_dropout, init_std=c.init_std,
            causal=False, name="encoder",
        )(seq, deterministic, last_only)
        x = _Head(c.dim, c.init_std, name="head")(x)
        # Registered here so that init creates it; used by ``score``.
        self.param("output_bias", nn.initializers.zeros_init(), (c.num_items + 1,))
        return x * ((seq[:, -1:] if last_only else seq) > 0)[..., None]


class _Head(nn.Module):
    dim: int
    init_std: float

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.dim, kernel_init=nn.initializers.normal(self.init_std), name="dense")(x)
        return nn.LayerNorm(epsilon=1e-6, name="ln")(nn.gelu(x))


def cloze_mask(key, items, candidates, mask_prob: float, ft_ratio: float):
    """Which positions to mask. items: int32[B, L], candidates: bool[B, L] -> (bool[B, L], ft_row bool[B]).

    Row kind: with probability ``ft_ratio`` only the last candidate is masked;
    otherwise each candidate is masked with probability ``mask_prob``, and if none
    was, one candidate drawn uniformly is. Rows without candidates mask nothing.
    """
    del items
    row_key, pos_key = jax.random.split(key)
    num_rows, seq_len = candidates.shape
    u = jax.random.uniform(pos_key, (num_rows, seq_len))
    random_mask = candidates & (u < mask_prob)
    # At least one: the candidate with the smallest u (uniform among candidates).
    forced = jnp.argmin(jnp.where(candidates, u, 2.0), axis=1)
    none_masked = ~random_mask.any(axis=1)
    cols = jnp.arange(seq_len)[None, :]
    random_mask = random_mask | (none_masked[:, None] & (cols == forced[:, None]) & candidates)
    # Last candidate: the largest column index that is a candidate.
    last = jnp.max(jnp.where(candidates, cols, -1), axis=1)
    last_mask = (cols == last[:, None]) & candidates
    ft_row = jax.random.uniform(row_key, (num_rows,)) < ft_ratio
    return jnp.where(ft_row[:, None], last_mask, random_mask), ft_row


def right_aligned_prefix(key, items, cut_ok):
    """Each row cut after a uniformly drawn ``cut_ok`` column and shifted to end at column L-1.

    items: int32[B, L] (left-padded); cut_ok: bool[B, L].  Returns int32[B, L], left-padded
    with 0; a row without any ``cut_ok`` column is returned unchanged.
    """
    num_rows, seq_len = items.shape
    u = jax.random.uniform(key, (num_rows, seq_len))
    cut = jnp.argmax(jnp.where(cut_ok, u, -1.0), axis=1)
    shift = jnp.where(cut_ok.any(axis=1), seq_len - 1 - cut, 0)
    source = jnp.arange(seq_len)[None, :] - shift[:, None]
    shifted = jnp.take_along_axis(items, jnp.clip(source, 0, seq_len - 1), axis=1)
    return jnp.where(source >= 0, shifted, 0)


def make_bert4rec(config: BERT4RecConfig) -> SequentialModel:
    """Builds BERT4Rec's pure functions for ``config``."""
    module = BERT4Rec(config)
    mask_token = config.mask_token

    def init(key, cfg=None):
        check_init_config(config, cfg)
        seq = jnp.zeros((1, config.max_len), jnp.int32)
        return module.init(key, seq, deterministic=True)["params"]

    def hidden(params, seq, *, train: bool, key=None):
        check_seq_len(seq.shape[1], config.max_len, "BERT4Rec")
        deterministic = not (train and key is not None)
        rngs = None if deterministic else {"dropout": key}
        return module.apply({"params": params}, seq, deterministic=deterministic, rngs=rngs)

    def encode(params, seq):
        # Drop the oldest column, append [MASK]: the window length stays L.
        fill = jnp.full((seq.shape[0], 1), mask_token, seq.dtype)
        masked = jnp.concatenate([seq[:, 1:], fill], axis=1)
        check_seq_len(masked.shape[1], config.max_len, "BERT4Rec")
        return module.apply({"params": params}, masked, deterministic=True, last_only=True)[:, -1]

    def item_embeddings(params):
        return params["encoder"]["item_embed"]["embedding"][: config.num_items + 1]

    def score(params, h):
        logits = jnp.einsum("...d,nd->...n", h, item_embeddings(params)) + params["output_bias"]
        return mask_pad_column(logits)

    def training_batch(key, seq_window, target_mask):
        seq_window = jnp.asarray(seq_window)
        items = seq_window[:, 1:]
        candidates = items > 0
        if not config.cloze_whole_window:
            candidates = candidates & jnp.asarray(target_mask, bool)
        mask_key, prefix_key = jax.random.split(key)
        masked, ft_row = cloze_mask(mask_key, items, candidates, config.mask_prob, config.ft_ratio)
        base = items
        if config.ft_random_prefix:  # fine-tuning rows become random right-aligned prefixes
            cut_ok = candidates & (seq_window[:, :-1] > 0)  # at least one item before the cut
            prefix = right_aligned_prefix(prefix_key, items, cut_ok)
            base = jnp.where(ft_row[:, None], prefix, items)
            last_col = jnp.arange(items.shape[1])[None, :] == items.shape[1] - 1
            masked = jnp.where(ft_row[:, None], last_col & cut_ok.any(axis=1, keepdims=True), masked)
        inputs = jnp.where(masked, mask_token, base).astype(items.dtype)
        targets = jnp.where(masked, base, 0).astype(items.dtype)
        return inputs, targets, masked

    return SequentialModel(
        name="bert4rec", config=config, init=init, hidden=hidden, encode=encode,
        score=score, item_embeddings=item_embeddings, training_batch=training_batch,
        output_layer=lambda params: (item_embeddings(params), params["output_bias"]),
    )


# The registry line in rec_jax/models/base.py reads this.
MODEL = ModelInfo(
    config=BERT4RecConfig,
    make=make_bert4rec,
    tiny=lambda num_items, max_len, dim: BERT4RecConfig(num_items=num_items, max_len=max_len, dim=dim, num_heads=2, ff_dim=2 * dim),
)
