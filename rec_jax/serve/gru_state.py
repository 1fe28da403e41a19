"""Incremental GRU4Rec: the per-user state is the GRU hidden state of every layer.

A recurrent model is incremental by construction: appending an event is one GRU
cell step per layer, and the state after t events equals encoding the whole
t-item prefix from scratch (``model.encode`` with any L >= t), exactly, for every
prefix. Written for ONE user; :mod:`rec_jax.serve.recommend` vmaps it.

state (one user): GRUState(hidden f32[layers, H], count i32[]).
The cell is GRU4Rec's (see :mod:`rec_jax.models.gru4rec`, gate order r, z, n).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.models.gru4rec import GRU4RecConfig


@struct.dataclass
class GRUState:
    hidden: jax.Array  # f32[layers, H]
    count: jax.Array  # i32[] items appended so far


def empty_state(config: GRU4RecConfig) -> GRUState:
    return GRUState(hidden=jnp.zeros((config.num_layers, config.hidden_dim), jnp.float32),
                    count=jnp.zeros((), jnp.int32))


def _cell(p, x, h):
    """One GRU4Rec cell step: x f32[in], h f32[H] -> f32[H]."""
    hid = h.shape[-1]
    xi = x @ p["w_i"] + p["b_i"]
    hh = h @ p["w_h"]
    r = jax.nn.sigmoid(xi[:hid] + hh[:hid])
    z = jax.nn.sigmoid(xi[hid : 2 * hid] + hh[hid : 2 * hid])
    n = jnp.tanh(xi[2 * hid :] + r * (hh[2 * hid :] + p["b_hn"]))
    return (1.0 - z) * n + z * h


def _output(params, top):
    return top @ params["proj"]["kernel"] + params["proj"]["bias"]


def append(config: GRU4RecConfig, params, state: GRUState, item):
    """Append ``item`` (int32[] >= 1): returns (new GRUState, h f32[D] scoring the next item)."""
    x = params["item_embed"]["embedding"][item]
    hidden = []
    for i in range(config.num_layers):
        x = _cell(params[f"gru_{i}"], x, state.hidden[i])
        hidden.append(x)
    return GRUState(hidden=jnp.stack(hidden), count=state.count + 1), _output(params, x)


def rebuild(config: GRU4RecConfig, params, history, count):
    """The state from the user's WHOLE stored history ``int32[T]`` (left-padded with 0):
    a recurrent state depends on every item, so there is no shorter tail. ``count`` is
    the number of real items (kept in the state). Returns (GRUState, h f32[D]); h = 0
    for an empty history."""

    def step(state, item):
        new, h = append(config, params, state, jnp.maximum(item, 1))
        keep = item > 0  # padding leaves the carry unchanged, as the model does
        state = jax.tree.map(lambda a, b: jnp.where(keep, a, b), new, state)
        return state, h * keep

    state, hs = jax.lax.scan(step, empty_state(config), history)
    return state.replace(count=jnp.asarray(count, jnp.int32)), hs[-1]
