"""The service's jitted rank step: at most one new event per user, scores, the policy's slate.

    step = make_rank_step(inc, policy, num_items=N, slate_size=K, fast_epsilon=True)
    slate, propensity, greedy, store = step(params, head, policy_params, store, key, slots, items, count,
                                            event_ids, available)

Row b serves a user whose cached state sits in store row ``slots[b]`` (rebuilt by the
caller on a cache miss, :func:`rec_jax.serve.user_cache.make_rebuild_rows`). The
``count[b]`` (at most E, 2 by default) items the user consumed since the state was
cached (their next event, a clicked slot) are folded in by one incremental step each
(:mod:`rec_jax.serve.incremental`) and only their keys/values written back; with
nothing new the stored user vector ``h`` scores the user as they are (a second rank
call with nothing new costs no encoder work at all). ``available bool[B, N+1]``
is built by the host from the user's history, the request's candidates and
exclusions; the policy picks a K-slate slot by slot from it
(:func:`rec_jax.serve.recommend.slates_from_logits`), so the caller may return the
first k <= K slots (exactly a k-slate) for a request that asks for fewer.

Randomness: ``fold_in(key, event_ids[b])``, one id per decision
(:func:`rec_jax.serve.recommend.event_keys`).
The store is donated: the rows are gathered in one jitted call and the B changed
rows scattered back by a second, donated one (on XLA:CPU one call doing both copied
the whole store; see :func:`rec_jax.serve.recommend.make_recommend`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from rec_jax.models.base import tied_scores
from rec_jax.serve.recommend import event_keys, slates_from_logits


def make_rank_step(inc, policy, *, num_items: int, slate_size: int, fast_epsilon: bool):
    """The jitted step (see module docstring). Shapes: slots, event_ids int32[B];
    items int32[B, E] (row b's ``count[b]`` new items, oldest first, left-aligned;
    E is static: a user with more new items is rebuilt by the caller instead);
    count int32[B] in 0..E; available bool[B, N+1]; padding rows use the store's last
    (trash) row, count 0 and at least ``2 * slate_size`` available items.
    Returns (slate int32[B, K], propensity f32[B, K], greedy int32[B, K] (the available
    items in the model's score order: the greedy slate, logged so that off-policy
    evaluation knows it), store)."""

    def compute(params, head, policy_params, store, key, slots, items, count, event_ids, available):
        rows = jax.tree.map(lambda a: a[slots], store)
        state, h = rows["state"], rows["h"]
        updates = []
        for e in range(items.shape[1]):  # E is small (2: the user's next event and a click)
            update, h_e = jax.vmap(inc.append, in_axes=(None, 0, 0))(params, state, items[:, e])
            take = count > e
            h = jnp.where(take[:, None], h_e, h)
            updates.append(update)
            if e + 1 < items.shape[1]:
                # Unmasked: a row with count <= e gets a slot it never uses (its later appends
                # are not taken, and the store is written from ``updates`` only). A masked
                # select here copied every row's whole K/V state (measured ~10% of the step).
                state = jax.vmap(inc.write)(state, update)
        logits = tied_scores(h, head.table, num_items) + head.bias
        keys = event_keys(key, event_ids)
        slate, propensity, greedy = slates_from_logits(policy, policy_params, keys, logits, available, slate_size,
                                                  fast_epsilon)
        return slate, propensity, greedy.astype(jnp.int32), (tuple(updates), h)

    def commit(store, slots, count, new):
        updates, h = new
        trash = store["h"].shape[0] - 1
        state = store["state"]
        for e, update in enumerate(updates):  # each write advances the row's ring by one
            state = inc.write_rows(state, jnp.where(count > e, slots, trash), update)
        return {"state": state, "h": store["h"].at[jnp.where(count > 0, slots, trash)].set(h)}

    compute = jax.jit(compute)
    commit = jax.jit(commit, donate_argnums=0)

    def step(params, head, policy_params, store, key, slots, items, count, event_ids, available):
        slate, propensity, greedy, new = compute(params, head, policy_params, store, key, slots, items, count,
                                                 event_ids, available)
        return slate, propensity, greedy, commit(store, slots, count, new)

    step.compiled = (compute, commit)  # the jitted parts (tests count their compilations)
    return step
