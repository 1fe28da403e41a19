"""The service's jitted rank step: at most one new event per user, scores, the policy's slate.

    step = make_rank_step(inc, policy, num_items=N, slate_size=K, fast_epsilon=True)
    slate, propensity, store = step(params, head, policy_params, store, key, slots, items, append, event_ids,
                                    available)

Row b serves a user whose cached state sits in store row ``slots[b]`` (rebuilt by the
caller on a cache miss, :func:`rec_jax.serve.user_cache.make_rebuild_rows`). When
``append[b]`` the user consumed ``items[b]`` since the state was cached: it is folded
in by ONE incremental step (:mod:`rec_jax.serve.incremental`) and the row written
back; otherwise the stored user vector ``h`` scores the user as they are (a second
rank call with nothing new costs no encoder work at all). ``available bool[B, N+1]``
is built by the host from the user's history, the request's candidates and
exclusions; the policy picks a K-slate slot by slot from it
(:func:`rec_jax.serve.recommend.slates_from_logits`), so the caller may return the
first k <= K slots (exactly a k-slate) for a request that asks for fewer.

Randomness: ``fold_in(key, event_ids[b])``, one id per decision.
The store is donated: the rows are gathered in one jitted call and the B changed
rows scattered back by a second, donated one (on XLA:CPU one call doing both copied
the whole store; see :func:`rec_jax.serve.recommend.make_recommend`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rec_jax.models.base import tied_scores
from rec_jax.serve.recommend import slates_from_logits


def make_rank_step(inc, policy, *, num_items: int, slate_size: int, fast_epsilon: bool):
    """The jitted step (see module docstring). Shapes: slots, items, event_ids int32[B];
    append bool[B]; available bool[B, N+1]; padding rows use the store's last (trash)
    row, ``append`` False and at least ``2 * slate_size`` available items.
    Returns (slate int32[B, K], propensity f32[B, K], store)."""

    def compute(params, head, policy_params, store, key, slots, items, append, event_ids, available):
        rows = jax.tree.map(lambda a: a[slots], store)
        update, h_new = jax.vmap(inc.append, in_axes=(None, 0, 0))(params, rows["state"], items)
        h = jnp.where(append[:, None], h_new, rows["h"])
        logits = tied_scores(h, head.table, num_items) + head.bias
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(event_ids)
        slate, propensity, _ = slates_from_logits(policy, policy_params, keys, logits, available, slate_size,
                                                  fast_epsilon)
        return slate, propensity, (update, h_new)

    def commit(store, slots, append, new):
        update, h = new
        write = jnp.where(append, slots, store["h"].shape[0] - 1)  # rows with nothing new -> trash row
        return {"state": inc.write_rows(store["state"], write, update), "h": store["h"].at[write].set(h)}

    compute = jax.jit(compute)
    commit = jax.jit(commit, donate_argnums=0)

    def step(params, head, policy_params, store, key, slots, items, append, event_ids, available):
        slate, propensity, new = compute(params, head, policy_params, store, key, slots, items, append, event_ids,
                                         available)
        return slate, propensity, commit(store, slots, append, new)

    return step
