"""Incremental SASRec: a per-user key/value ring buffer of the last L positions.

Appending one event runs ONE query position through the blocks (its keys/values
are written into the ring, the query attends to the ring), instead of re-encoding
the whole L-item window. Shapes are fixed (jit/vmap-friendly); functions here are
written for ONE user and vmapped by :mod:`rec_jax.serve.recommend`.

Semantics (read this before trusting a number)
----------------------------------------------
SASRec's learned positions count from the first item of the (left-padded) window,
so once a history is longer than L every position shifts when an event arrives and
every cached key/value would change. A ring buffer is exact only under a STREAMING
semantics, which this module implements and tests:

* item j (0-based arrival index) keeps the position it got at arrival,
  ``min(j, L-1)`` (the newest item of a window always sits at L-1, as in training);
* its keys/values in every block are those computed at arrival, when its query
  attended to the (at most) L most recent items, itself included (a banded causal
  mask of width L).

For every prefix of at most L items this IS SASRec (``model.encode`` of the
left-padded prefix) -- tested to float32 tolerance. Beyond L it is a sliding-window
Transformer whose deeper blocks see further back (block i's output at t depends on
items t - (i+1)(L-1) .. t); :func:`rebuild` computes exactly that in one banded pass
over the last ``R = num_layers * (L-1) + 1`` items, which is what a cache miss uses
and what the tests compare the incremental path with beyond L. The accuracy cost of
the streaming semantics against windowed re-encoding is measured by
``experiments/realtime.py`` (``prequential_hr@10/static`` vs ``.../static_reencode``).

state (one user): KVState(keys, values: one f32[H, L, Dh] per layer, count i32[] =
number of items appended so far; item j lives in ring slot j % L). Layout matters on
a CPU (measured at 256 users): with the head axis before the ring axis a query reads
each (user, head)'s keys as one contiguous [L, Dh] block (9x faster attention than
[L, H, Dh]), and one array per layer keeps the batched [B, H, L, Dh] operand of each
layer contiguous (a [B, layers, ...] array sliced per layer cost 2.5x more).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.models.sasrec import SASRecConfig
from rec_jax.models.transformer import _LN_EPS, _MASKED


@struct.dataclass
class KVState:
    """One user's ring buffer (see module docstring)."""

    keys: tuple  # per layer f32[H, L, Dh]
    values: tuple  # per layer f32[H, L, Dh]
    count: jax.Array  # i32[] items appended so far


def empty_state(config: SASRecConfig) -> KVState:
    """The state of a user with no history."""
    c = config
    shape = (c.num_heads, c.max_len, c.dim // c.num_heads)
    zeros = tuple(jnp.zeros(shape, jnp.float32) for _ in range(c.num_layers))
    return KVState(keys=zeros, values=zeros, count=jnp.zeros((), jnp.int32))


def rebuild_len(config: SASRecConfig) -> int:
    """R: the most recent items that determine a user's state (and the next scores)."""
    return max(1, config.num_layers) * (config.max_len - 1) + 1


def _ln(p, x):
    # The flax module itself, so the arithmetic is the model's own.
    return nn.LayerNorm(epsilon=_LN_EPS).apply({"params": p}, x)


def _qkv(block, y):
    """y f32[..., D] -> q, k, v f32[..., H, Dh] (the fused projection of SelfAttention)."""
    p = block["attn"]["qkv"]
    qkv = jnp.einsum("...d,dchk->...chk", y, p["kernel"]) + p["bias"]
    return qkv[..., 0, :, :], qkv[..., 1, :, :], qkv[..., 2, :, :]


def _attend(q, keys, values, mask):
    """q f32[Q, H, Dh], keys/values f32[K, H, Dh], mask bool[Q, K] -> f32[Q, H, Dh]."""
    q = q * (q.shape[-1] ** -0.5)
    logits = jnp.einsum("qhd,khd->hqk", q, keys)
    logits = jnp.where(mask[None], logits, _MASKED)
    weights = jax.nn.softmax(logits, axis=-1)
    return jnp.einsum("hqk,khd->qhd", weights, values)


def _attend_one(q, keys, values, kept, k, v):
    """One query over the ring plus the new position, without writing the ring.

    q, k, v f32[H, Dh] (the new position's), keys/values f32[H, L, Dh] (the ring),
    kept bool[L] (ring slots the query may see) -> f32[H, Dh]. The same softmax as
    attending to the ring with slot ``count % L`` replaced by (k, v), but it reads the
    ring once instead of copying it first.
    """
    q = q * (q.shape[-1] ** -0.5)
    old = jnp.where(kept, jnp.einsum("hd,hld->hl", q, keys), _MASKED)  # f32[H, L]
    new = jnp.sum(q * k, axis=-1, keepdims=True)  # f32[H, 1]
    weights = jax.nn.softmax(jnp.concatenate([old, new], axis=-1), axis=-1)
    return jnp.einsum("hl,hld->hd", weights[:, :-1], values) + weights[:, -1:] * v


def _finish_block(block, x, attn):
    """Residual attention output, then the pre-LN feed-forward (as EncoderBlock)."""
    p = block["attn"]["out"]
    x = x + jnp.einsum("...hd,hdo->...o", attn, p["kernel"]) + p["bias"]
    y = _ln(block["ln_ff"], x)
    y = nn.gelu(y @ block["ff_in"]["kernel"] + block["ff_in"]["bias"])
    return x + y @ block["ff_out"]["kernel"] + block["ff_out"]["bias"]


def append(config: SASRecConfig, params, state: KVState, item):
    """Append ``item`` (int32[], >= 1) to one user's state.

    Returns (new_kv, h): ``new_kv`` = (k, v) f32[layers, H, Dh] of the new position
    (the caller writes them into ring slot ``state.count % L``; see :func:`write`)
    and ``h`` f32[D], the user state that scores the NEXT item.
    """
    c = config
    enc = params["encoder"]
    slot = state.count % c.max_len
    position = jnp.minimum(state.count, c.max_len - 1)
    x = enc["item_embed"]["embedding"][item] + enc["pos_embed"]["embedding"][position]
    ring = jnp.arange(c.max_len)
    # the slots that stay visible: filled before this event, except the one being overwritten
    kept = (ring < jnp.minimum(state.count, c.max_len)) & (ring != slot)  # bool[L]
    new_k, new_v = [], []
    for i in range(c.num_layers):
        block = enc[f"block_{i}"]
        q, k, v = _qkv(block, _ln(block["ln_attn"], x))  # f32[H, Dh] each
        attn = _attend_one(q, state.keys[i], state.values[i], kept, k, v)
        x = _finish_block(block, x, attn)
        new_k.append(k)
        new_v.append(v)
    h = _ln(enc["ln_final"], x)
    return (jnp.stack(new_k), jnp.stack(new_v)), h


def write(config: SASRecConfig, state: KVState, new_kv) -> KVState:
    """The state after :func:`append`: ``new_kv`` stored in ring slot ``count % L``."""
    slot = state.count % config.max_len
    k, v = new_kv
    return KVState(keys=tuple(kk.at[:, slot].set(k[i]) for i, kk in enumerate(state.keys)),
                   values=tuple(vv.at[:, slot].set(v[i]) for i, vv in enumerate(state.values)),
                   count=state.count + 1)


def rebuild(config: SASRecConfig, params, tail, count):
    """One user's state from its stored history, in one banded pass (no ring, no scan).

    tail: int32[R'] the user's most recent items, LEFT-padded with 0 (R' >= R =
    :func:`rebuild_len` gives the exact streaming state; any R' works for histories
    of at most R' items). count: int32[] the user's total number of items (so the
    tail's arrival indices, hence positions, are known).
    Returns (KVState, h f32[D]); all-padding tails give the empty state and h = 0.
    """
    c = config
    enc = params["encoder"]
    width = tail.shape[0]
    index = count - width + jnp.arange(width)  # arrival index of each tail entry
    valid = (tail > 0) & (index >= 0)
    position = jnp.clip(index, 0, c.max_len - 1)
    x = enc["item_embed"]["embedding"][tail] + enc["pos_embed"]["embedding"][position]
    x = x * valid[:, None]
    gap = jnp.arange(width)[:, None] - jnp.arange(width)[None, :]  # query - key
    mask = valid[None, :] & (gap >= 0) & (gap < c.max_len)  # banded causal: the L most recent
    # ring slot j % L <- the tail entry with arrival index j, for the last L arrivals
    ring_index = count - c.max_len + (jnp.arange(c.max_len) - count) % c.max_len
    take = jnp.clip(ring_index - (count - width), 0, width - 1)
    held = (ring_index >= 0)[:, None, None]
    keys, values = [], []
    for i in range(c.num_layers):
        block = enc[f"block_{i}"]
        q, k, v = _qkv(block, _ln(block["ln_attn"], x))
        x = _finish_block(block, x, _attend(q, k, v, mask))
        keys.append(jnp.where(held, k[take], 0.0).swapaxes(0, 1))  # f32[H, L, Dh]
        values.append(jnp.where(held, v[take], 0.0).swapaxes(0, 1))
    h = _ln(enc["ln_final"], x[-1]) * valid[-1]
    state = KVState(keys=tuple(keys), values=tuple(values), count=jnp.asarray(count, jnp.int32))
    return state, h
