"""The Transformer encoder shared by SASRec (causal) and BERT4Rec (bidirectional).

Pre-LN blocks (Kang & McAuley 2018 normalise the attention query and the FFN input,
then apply a final LayerNorm; Xiong et al. 2020 show pre-LN trains stably without a
learning-rate warm-up, which matters for the short online fine-tuning runs here):

    x = x + Dropout(MHA(LN(x)))          # causal or not, keys at padding masked
    x = x + Dropout(FFN(LN(x)))          # FFN = Dense(ff) -> GELU -> Dropout -> Dense(D)
    out = LN(x)                          # final LayerNorm
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from rec_jax.models.dropout import Dropout

# Attention logit for masked keys: finite, so a fully-masked row (a padding query
# under the causal mask) gives a uniform average instead of NaN.
_MASKED = -1e9
_LN_EPS = 1e-6


class SelfAttention(nn.Module):
    """Multi-head self-attention. x: f32[B, L, D], mask: bool[B or 1, 1, L, L]."""

    dim: int
    num_heads: int
    attn_dropout: float
    init_std: float

    @nn.compact
    def __call__(self, x, mask, deterministic: bool, last_only: bool = False):
        """``last_only``: only the last position queries (f32[B, 1, D] out); keys are all of x."""
        head_dim = self.dim // self.num_heads
        init = nn.initializers.normal(self.init_std)
        # One fused projection for Q, K, V: f32[B, L, 3, H, Dh].
        qkv = nn.DenseGeneral((3, self.num_heads, head_dim), kernel_init=init, name="qkv")(x)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if last_only:
            q = q[:, -1:]
        q = q * (head_dim**-0.5)  # Vaswani et al. 2017, Eq. 1 (scaled on the smaller tensor)
        logits = jnp.einsum("bqhd,bkhd->bhqk", q, k)
        logits = jnp.where(mask, logits, _MASKED)
        weights = jax.nn.softmax(logits, axis=-1)
        weights = Dropout(self.attn_dropout)(weights, deterministic=deterministic)
        out = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
        return nn.DenseGeneral(self.dim, axis=(-2, -1), kernel_init=init, name="out")(out)


class EncoderBlock(nn.Module):
    """One pre-LN Transformer block."""

    dim: int
    num_heads: int
    ff_dim: int
    dropout: float
    attn_dropout: float
    init_std: float

    @nn.compact
    def __call__(self, x, mask, deterministic: bool, last_only: bool = False):
        init = nn.initializers.normal(self.init_std)
        y = nn.LayerNorm(epsilon=_LN_EPS, name="ln_attn")(x)
        y = SelfAttention(self.dim, self.num_heads, self.attn_dropout, self.init_std, name="attn")(
            y, mask, deterministic, last_only
        )
        if last_only:
            x = x[:, -1:]
        x = x + Dropout(self.dropout)(y, deterministic=deterministic)
        y = nn.LayerNorm(epsilon=_LN_EPS, name="ln_ff")(x)
        y = nn.Dense(self.ff_dim, kernel_init=init, name="ff_in")(y)
        y = nn.gelu(y)
        y = Dropout(self.dropout)(y, deterministic=deterministic)
        y = nn.Dense(self.dim, kernel_init=init, name="ff_out")(y)
        return x + Dropout(self.dropout)(y, deterministic=deterministic)


class TransformerEncoder(nn.Module):
    """Item + learned position embeddings, ``num_layers`` pre-LN blocks, final LN.

    Positions count from the first non-padding item (0, 1, 2, ... left to right), so
    a left-padded sequence gives the same states whatever the amount of padding, and
    (with the causal mask) the state at step t equals the state of the prefix up to t.
    Output at padding positions is zero.
    """

    num_embeddings: int  # rows of the item table (N+1 for SASRec, N+2 with [MASK])
    max_len: int
    dim: int
    num_layers: int
    num_heads: int
    ff_dim: int
    dropout: float
    attn_dropout: float
    init_std: float
    causal: bool

    @nn.compact
    def __call__(self, seq, deterministic: bool, last_only: bool = False):
        """seq int32[B, L] -> f32[B, L, D], or f32[B, 1, D] (the last position) with ``last_only``.

        ``last_only`` is what recommending the next item needs: the last block then
        computes queries, attention output and feed-forward for the last position
        only (keys and values still cover the whole sequence), which saves most of
        that block's work. The parameters are the same either way.
        """
        init = nn.initializers.normal(self.init_std)
        item_embed = nn.Embed(self.num_embeddings, self.dim, embedding_init=init, name="item_embed")
        pos_embed = nn.Embed(self.max_len, self.dim, embedding_init=init, name="pos_embed")
        valid = seq > 0  # bool[B, L]
        positions = jnp.clip(jnp.cumsum(valid, axis=1) - 1, 0, self.max_len - 1)
        x = item_embed(seq) + pos_embed(positions)
        x = x * valid[..., None]
        x = Dropout(self.dropout)(x, deterministic=deterministic)
        seq_len = seq.shape[1]
        mask = valid[:, None, None, :]  # keys at padding never attended to
        if self.causal:
            mask = mask & jnp.tril(jnp.ones((seq_len, seq_len), bool))[None, None]
        for i in range(self.num_layers):
            last = last_only and i == self.num_layers - 1
            x = EncoderBlock(
                self.dim, self.num_heads, self.ff_dim, self.dropout, self.attn_dropout,
                self.init_std, name=f"block_{i}",
            )(x, mask[:, :, -1:] if last else mask, deterministic, last)
        x = nn.LayerNorm(epsilon=_LN_EPS, name="ln_final")(x)
        return x * (valid[:, -1:] if last_only else valid)[..., None]
