"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

A causal Transformer over the item history; the state at the last position scores
the next item through the tied item embedding (Kang & McAuley 2018, Eq. 6).
Block layout: pre-LN with a final LayerNorm, as in the authors' code (see
``rec_jax.models.transformer``). Trained with full-softmax cross-entropy on every
next-item target (as in RecBole's ``loss_type='CE'``), not the paper's sampled BCE.

params (the flax 'params' collection):
    {'encoder': {'item_embed': {'embedding': f32[N+1, D]},
                 'pos_embed':  {'embedding': f32[max_len, D]},
                 'block_i': {'ln_attn', 'attn': {'qkv', 'out'}, 'ln_ff', 'ff_in', 'ff_out'},
                 'ln_final': {...}}}
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
    next_item_training_batch,
    tied_scores,
)
from rec_jax.models.transformer import TransformerEncoder


@dataclasses.dataclass(frozen=True)
class SASRecConfig:
    """Static shape and regularisation of a SASRec model."""

    num_items: int  # N: item ids are 1..N, 0 = padding
    max_len: int = 50  # longest sequence L (size of the positional table)
    dim: int = 64  # D: embedding and hidden width
    num_layers: int = 2  # Transformer blocks
    num_heads: int = 2  # attention heads (must divide dim)
    ff_dim: int = 256  # feed-forward inner width
    dropout: float = 0.2  # embedding / hidden / FFN dropout rate
    attn_dropout: float = 0.2  # dropout on attention weights
    init_std: float = 0.02  # std of the normal init of embeddings and kernels

    def __post_init__(self):
        _check_transformer_config(self, "SASRecConfig")


def _check_transformer_config(c, name: str) -> None:
    if c.num_items < 1:
        raise ValueError(f"{name}.num_items must be >= 1, got {c.num_items}")
    if c.max_len < 1 or c.dim < 1 or c.num_layers < 0 or c.ff_dim < 1:
        raise ValueError(f"{name}: max_len, dim, ff_dim must be >= 1 and num_layers >= 0: {c}")
    if c.num_heads < 1 or c.dim % c.num_heads:
        raise ValueError(f"{name}.num_heads={c.num_heads} must divide dim={c.dim}")
    for field in ("dropout", "attn_dropout"):
        if not 0.0 <= getattr(c, field) < 1.0:
            raise ValueError(f"{name}.{field} must be in [0, 1), got {getattr(c, field)}")


class SASRec(nn.Module):
    """Causal encoder: seq int32[B, L] -> f32[B, L, D]."""

    config: SASRecConfig

    @nn.compact
    def __call__(self, seq, deterministic: bool = True, last_only: bool = False):
        c = self.config
        return TransformerEncoder(
            num_embeddings=c.num_items + 1, max_len=c.max_len, dim=c.dim,
            num_layers=c.num_layers, num_heads=c.num_heads, ff_dim=c.ff_dim,
            dropout=c.dropout, attn_dropout=c.attn_dropout, init_std=c.init_std,
            causal=True, name="encoder",
        )(seq, deterministic, last_only)


def make_sasrec(config: SASRecConfig) -> SequentialModel:
    """Builds SASRec's pure functions for ``config``."""
    module = SASRec(config)

    def init(key, cfg=None):
        check_init_config(config, cfg)
        seq = jnp.zeros((1, config.max_len), jnp.int32)
        return module.init(key, seq, deterministic=True)["params"]

    def hidden(params, seq, *, train: bool, key=None):
        check_seq_len(seq.shape[1], config.max_len, "SASRec")
        deterministic = not (train and key is not None)
        rngs = None if deterministic else {"dropout": key}
        return module.apply({"params": params}, seq, deterministic=deterministic, rngs=rngs)

    def encode(params, seq):
        check_seq_len(seq.shape[1], config.max_len, "SASRec")
        return module.apply({"params": params}, seq, deterministic=True, last_only=True)[:, -1]

    def item_embeddings(params):
        return params["encoder"]["item_embed"]["embedding"]

    def score(params, h):
        return tied_scores(h, item_embeddings(params), config.num_items)

    return SequentialModel(
        name="sasrec", config=config, init=init, hidden=hidden, encode=encode,
        score=score, item_embeddings=item_embeddings,
        training_batch=next_item_training_batch,
        output_layer=lambda params: (item_embeddings(params)[: config.num_items + 1], None),
    )


# The registry line in rec_jax/models/base.py reads this.
MODEL = ModelInfo(
    config=SASRecConfig,
    make=make_sasrec,
    tiny=lambda num_items, max_len, dim: SASRecConfig(num_items=num_items, max_len=max_len, dim=dim, num_heads=2, ff_dim=2 * dim),
)
