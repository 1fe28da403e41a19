"""GRU4Rec for next-item prediction with full cross-entropy (Hidasi et al., ICLR 2016;
the RecBole variant: embedding -> dropout -> GRU layers -> Dense to D -> dot product
with the item embedding).

The GRU is the cuDNN/PyTorch formulation, identical to ``flax.linen.GRUCell``
(Cho et al. 2014 with the reset gate applied after the recurrent matmul):

    r = sigmoid(x W_ir + b_ir + h W_hr)
    z = sigmoid(x W_iz + b_iz + h W_hz)
    n = tanh(x W_in + b_in + r * (h W_hn + b_hn))
    h' = (1 - z) * n + z * h

written with the three input projections fused and hoisted out of the time scan
(one [B, L, 3H] matmul), which is what makes it fast on CPU. At padding positions
the carry is left unchanged, so the left pads before the first item keep h = 0.

params: {'item_embed': {'embedding': f32[N+1, D]},
         'gru_{i}': {'w_i': f32[in, 3H], 'b_i': f32[3H], 'w_h': f32[H, 3H], 'b_hn': f32[H]}
                  (gate order r, z, n along the last axis),
         'proj': {'kernel': f32[H, D], 'bias': f32[D]}}
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp

from rec_jax.models.dropout import Dropout
from rec_jax.models.base import (
    ModelInfo,
    SequentialModel,
    check_init_config,
    next_item_training_batch,
    tied_scores,
)


@dataclasses.dataclass(frozen=True)
class GRU4RecConfig:
    """Static shape and regularisation of a GRU4Rec model."""

    num_items: int  # N: item ids are 1..N, 0 = padding
    max_len: int = 50  # L used to build init's dummy input (any L works at apply time)
    dim: int = 64  # D: item embedding width and output state width
    hidden_dim: int = 128  # H: GRU state width
    num_layers: int = 1  # stacked GRU layers
    dropout: float = 0.2  # dropout on the item embeddings

    def __post_init__(self):
        if self.num_items < 1:
            raise ValueError(f"GRU4RecConfig.num_items must be >= 1, got {self.num_items}")
        if min(self.max_len, self.dim, self.hidden_dim, self.num_layers) < 1:
            raise ValueError(f"GRU4RecConfig: max_len, dim, hidden_dim, num_layers must be >= 1: {self}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GRU4RecConfig.dropout must be in [0, 1), got {self.dropout}")


def _orthogonal_gates(key, shape, dtype=jnp.float32):
    """Three independent orthogonal [H, H] blocks, as flax's GRUCell initialises them."""
    hidden = shape[0]
    keys = jax.random.split(key, 3)
    ortho = nn.initializers.orthogonal()
    return jnp.concatenate([ortho(k, (hidden, hidden), dtype) for k in keys], axis=1)


class GRULayer(nn.Module):
    """x: f32[B, L, in], valid: bool[B, L] -> states f32[B, L, H] (carry held at pads)."""

    hidden_dim: int

    @nn.compact
    def __call__(self, x, valid):
        hid = self.hidden_dim
        w_i = self.param("w_i", nn.initializers.lecun_normal(), (x.shape[-1], 3 * hid))
        b_i = self.param("b_i", nn.initializers.zeros_init(), (3 * hid,))
        w_h = self.param("w_h", _orthogonal_gates, (hid, 3 * hid))
        b_hn = self.param("b_hn", nn.initializers.zeros_init(), (hid,))
        xi = jnp.einsum("bli,ig->lbg", x, w_i) + b_i  # time-major f32[L, B, 3H]

        def step(h, inputs):
            xi_t, valid_t = inputs
            hh = h @ w_h
            r = jax.nn.sigmoid(xi_t[:, :hid] + hh[:, :hid])
            z = jax.nn.sigmoid(xi_t[:, hid : 2 * hid] + hh[:, hid : 2 * hid])
            n = jnp.tanh(xi_t[:, 2 * hid :] + r * (hh[:, 2 * hid :] + b_hn))
            h_new = (1.0 - z) * n + z * h
            h = jnp.where(valid_t[:, None], h_new, h)
            return h, h

        h0 = jnp.zeros((x.shape[0], hid), x.dtype)
        _, states = jax.lax.scan(step, h0, (xi, valid.T))
        return jnp.swapaxes(states, 0, 1)


class GRU4Rec(nn.Module):
    """seq int32[B, L] -> f32[B, L, D] (zero at padding positions)."""

    config: GRU4RecConfig

    @nn.compact
    def __call__(self, seq, deterministic: bool = True):
        c = self.config
        valid = seq > 0
        # Xavier-normal, as RecBole initialises GRU4Rec's embedding.
        embed_init = nn.initializers.xavier_normal()
        x = nn.Embed(c.num_items + 1, c.dim, embedding_init=embed_init, name="item_embed")(seq)
        x = Dropout(c.dropout)(x, deterministic=deterministic)
        for i in range(c.num_layers):
            x = GRULayer(c.hidden_dim, name=f"gru_{i}")(x, valid)
        x = nn.Dense(c.dim, name="proj")(x)
        return x * valid[..., None]


def make_gru4rec(config: GRU4RecConfig) -> SequentialModel:
    """Builds GRU4Rec's pure functions for ``config``."""
    module = GRU4Rec(config)

    def init(key, cfg=None):
        check_init_config(config, cfg)
        seq = jnp.zeros((1, config.max_len), jnp.int32)
        return module.init(key, seq, deterministic=True)["params"]

    def hidden(params, seq, *, train: bool, key=None):
        deterministic = not (train and key is not None)
        rngs = None if deterministic else {"dropout": key}
        return module.apply({"params": params}, seq, deterministic=deterministic, rngs=rngs)

    def encode(params, seq):
        return hidden(params, seq, train=False)[:, -1]

    def item_embeddings(params):
        return params["item_embed"]["embedding"]

    def score(params, h):
        return tied_scores(h, item_embeddings(params), config.num_items)

    return SequentialModel(
        name="gru4rec", config=config, init=init, hidden=hidden, encode=encode,
        score=score, item_embeddings=item_embeddings,
        training_batch=next_item_training_batch,
        output_layer=lambda params: (item_embeddings(params)[: config.num_items + 1], None),
    )


# The registry line in rec_jax/models/base.py reads this.
MODEL = ModelInfo(
    config=GRU4RecConfig,
    make=make_gru4rec,
    tiny=lambda num_items, max_len, dim: GRU4RecConfig(num_items=num_items, max_len=max_len, dim=dim, hidden_dim=dim + dim // 2),
)
