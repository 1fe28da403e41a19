"""The model's view of each stream's history, kept incrementally (a ``StreamView``).

:func:`rec_jax.policies.model_backed.make_model_backed` re-encodes the user's whole
window ``obs.history`` int32[L] with the Transformer in ``act`` and again in ``update``:
O(L^2) attention and L positions through the blocks, twice a step. The view built here
keeps, per stream, the serving path's incremental state (:mod:`rec_jax.serve.incremental`:
SASRec's K/V ring, GRU4Rec's hidden state) and appends only the items that entered the
history since the previous step (ONE query position each: O(L) a block), so the engine
(:mod:`rec_jax.online.engine`) computes the model's view once per step and hands the same
scores/features to ``act`` and ``update``.

vstate (one stream): :class:`ViewState` ``(model_state, h f32[D], history int32[L])``:
the incremental model state, the raw encoder output ``h`` (before the adapter, so
adapter/head updates need no rebuild) and the window ``history`` they stand for.

Semantics (see :mod:`rec_jax.serve.sasrec_kv`):

* ``init`` (run start, cache misses, a changed encoder) encodes the window as
  ``model.encode`` does (a left-padded prefix of at most L items; the K/V from the
  serving ``rebuild`` with count = the window's items), so the scores are exactly the
  re-encoding path's;
* ``advance`` finds how many items n <= ``max_appends`` entered the window
  (``obs.history_count`` minus the previous one, checked against the windows: the new
  one must be the old one shifted by n; without a count, the only shift that explains
  the new window) and appends them: for every prefix of at most L
  items this equals a full re-encode (to float32 tolerance), beyond L it is the
  streaming semantics of the K/V ring (each item keeps the position and keys/values it
  got at arrival). When no n or more than one n explains the new window (a reset, more
  than ``max_appends`` clicks; without a count, a periodic window such as L copies of
  one item), it
  reports a miss and the engine rebuilds, so the state never guesses.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.policies.base import Observation, Policy, StreamView
from rec_jax.policies._factored import ScaledRows
from rec_jax.policies.model_backed import adapt, item_table, item_view


@struct.dataclass
class ViewState:
    """One stream's cached model view (see module docstring)."""

    model_state: Any  # the incremental model's state (sasrec_kv.KVState / GRU hidden)
    h: jax.Array  # f32[D] the encoder's user state for ``history`` (before the adapter)
    history: jax.Array  # int32[L] the window this state stands for
    history_count: jax.Array  # i32[] obs.history_count of that window (-1 when the obs has none)


def make_model_view(policy: Policy, model, max_appends: int = 1) -> StreamView:
    """A :class:`StreamView` running ``policy`` on ``model``'s incrementally kept view.

    ``policy``'s params are ``ModelBackedParams.base``; ``max_appends``: the most items
    the simulator may add to a history in one step (the slate size for the recsys env);
    more is a miss (rebuilt, still correct, just slower).
    """
    from rec_jax.serve.incremental import make_incremental

    inc = make_incremental(model)

    def init(params, obs: Observation) -> ViewState:
        hist = _history(obs)
        encoder = params.view["encoder"]
        count = jnp.sum(hist > 0).astype(jnp.int32)  # left-padded: the items are the last `count`
        state, _ = inc.rebuild(encoder, hist, count)
        # h from the model's own encode: bit-identical to the re-encoding path (the serving
        # rebuild gives 0 for an empty history where encode gives its padding output).
        h = model.encode(encoder, hist[None])[0]
        return ViewState(model_state=state, h=h, history=hist, history_count=_count(obs))

    def advance(params, vs: ViewState, obs: Observation) -> tuple[ViewState, jax.Array]:
        new, old = _history(obs), vs.history
        size = new.shape[0]
        # matches[n]: the new window is the old one shifted left by n with n real items appended
        matches = jnp.stack([jnp.all(new[: size - n] == old[n:]) & jnp.all(new[size - n:] > 0)
                             for n in range(min(max_appends, size) + 1)])
        if obs.history_count is None:  # only a unique shift tells how many items are new
            hit = jnp.sum(matches) == 1
            n = jnp.argmax(matches)
        else:  # the count says it; the shift must agree
            n = _count(obs) - vs.history_count
            hit = (n >= 0) & (n < matches.shape[0]) & matches[jnp.clip(n, 0, matches.shape[0] - 1)]
        encoder = params.view["encoder"]
        state, h = vs.model_state, vs.h
        for j in range(min(max_appends, size)):
            take = j < n
            item = new[jnp.clip(size - n + j, 0, size - 1)]  # the j-th new item, oldest first
            update, h_j = inc.append(encoder, state, jnp.maximum(item, 1))
            # Computed for every stream (vmap), kept where it happened.
            state = _write_if(inc, state, update, take)
            h = jnp.where(take, h_j, h)
        return ViewState(model_state=state, h=h, history=new, history_count=_count(obs)), hit

    def observe(params, vs: ViewState, obs: Observation) -> Observation:
        # The features h * e_n as their two factors (the table shared by all streams):
        # the linear policies never form the f32[N, D] array (rec_jax.policies._factored).
        h = adapt(params.view, vs.h)
        num_items = obs.available.shape[-1]
        scores, _ = item_view(model, params.view, h, num_items)
        return obs.replace(scores=scores, features=ScaledRows(scale=h, table=item_table(model, params.view, num_items)))

    return StreamView(init=init, advance=advance, observe=observe, inner=policy,
                      inner_params=lambda params: params.base,
                      depends_on=lambda params: params.view["encoder"])


def _write_if(inc, state, update, take):
    """``inc.write(state, update)`` where ``take``, else ``state``.

    For the K/V ring only the one slot and the count are selected (selecting the whole
    written ring would copy every stream's f32[layers, H, L, Dh] each step)."""
    if inc.name != "sasrec":  # a GRU's state is its (small) hidden state
        return jax.tree.map(lambda a, b: jnp.where(take, a, b), inc.write(state, update), state)
    size = state.keys[0].shape[1]
    slot = state.count % size
    k, v = update  # f32[layers, H, Dh]
    k = jnp.where(take, k, jnp.stack([kk[:, slot] for kk in state.keys]))
    v = jnp.where(take, v, jnp.stack([vv[:, slot] for vv in state.values]))
    written = inc.write(state, (k, v))
    return written.replace(count=state.count + take.astype(jnp.int32))


def _count(obs: Observation) -> jax.Array:
    return jnp.asarray(-1 if obs.history_count is None else obs.history_count, jnp.int32)


def _history(obs: Observation) -> jax.Array:
    if obs.history is None:
        raise ValueError("model-backed policy: the simulator must expose Observation.history "
                         "(e.g. make_recsys_env(..., observe_history=True))")
    return obs.history.astype(jnp.int32)
