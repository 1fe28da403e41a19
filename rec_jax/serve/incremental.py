"""One interface over the incremental models (SASRec K/V ring, GRU4Rec hidden state).

    inc = make_incremental(model)
    state = inc.empty_state()                                  # one user
    update, h = inc.append(params, state, item)                # one event, one user
    state = inc.write(state, update)                           # state after the event
    cache = inc.write_rows(cache, slots, update)               # batched, into a [C, ...] store
    state, h = inc.rebuild(params, tail int32[R], count)       # from the stored history
    logits = model.score(params, h)                            # f32[N+1] for the next item

``rebuild_len`` is how many most recent items determine the state (None: all of
them, for the recurrent model). ``append``/``write``/``rebuild`` are written for one
user; vmap them. ``write_rows`` takes a store with a leading slot axis and a batch
of updates (one per row of ``slots``) and writes only what changed, so a serving
step does not copy whole per-user states back into the store.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import jax

from rec_jax.serve import gru_state, sasrec_kv


class Incremental(NamedTuple):
    name: str
    config: Any
    empty_state: Callable[[], Any]
    append: Callable[..., tuple]  # (params, state, item int32[]) -> (update, h f32[D])
    write: Callable[..., Any]  # (state, update) -> state
    write_rows: Callable[..., Any]  # (store [C, ...], slots int32[B], update [B, ...]) -> store
    rebuild: Callable[..., tuple]  # (params, tail int32[R], count int32[]) -> (state, h f32[D])
    rebuild_len: int | None  # R, or None = the whole history


def _sasrec_write_rows(config, store: sasrec_kv.KVState, slots, update):
    k, v = update  # f32[B, layers, H, Dh] each
    ring = store.count[slots] % config.max_len  # the store holds f32[C, H, L, Dh] per layer
    return sasrec_kv.KVState(
        keys=tuple(kk.at[slots, :, ring].set(k[:, i]) for i, kk in enumerate(store.keys)),
        values=tuple(vv.at[slots, :, ring].set(v[:, i]) for i, vv in enumerate(store.values)),
        count=store.count.at[slots].add(1),
    )


def _gru_write_rows(store, slots, update):
    return jax.tree.map(lambda s, u: s.at[slots].set(u), store, update)


def make_incremental(model) -> Incremental:
    """The incremental form of a ``SequentialModel`` ("sasrec" or "gru4rec")."""
    c = model.config
    if model.name == "sasrec":
        return Incremental(
            name="sasrec", config=c,
            empty_state=functools.partial(sasrec_kv.empty_state, c),
            append=functools.partial(sasrec_kv.append, c),
            write=functools.partial(sasrec_kv.write, c),
            write_rows=functools.partial(_sasrec_write_rows, c),
            rebuild=functools.partial(sasrec_kv.rebuild, c),
            rebuild_len=sasrec_kv.rebuild_len(c),
        )
    if model.name == "gru4rec":
        return Incremental(
            name="gru4rec", config=c,
            empty_state=functools.partial(gru_state.empty_state, c),
            append=functools.partial(gru_state.append, c),
            write=lambda state, update: update,
            write_rows=_gru_write_rows,
            rebuild=functools.partial(gru_state.rebuild, c),
            rebuild_len=None,
        )
    raise ValueError(f"make_incremental: model {model.name!r} has no incremental form; "
                     "expected 'sasrec' or 'gru4rec' (bert4rec is bidirectional)")
