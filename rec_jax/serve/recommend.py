"""The batched serving step: events in, slates with propensities out, states updated.

    recommend = make_recommend(inc, policy, num_items=N, slate_size=K)
    served, store, seen, feedback = recommend(
        params, head, policy_params, store, seen, feedback, key,
        slots, users, items, event_ids, valid)

One jit-compiled call handles a micro-batch of B events of DISTINCT users (row b:
user ``users[b]`` just consumed ``items[b]``): it appends each event to its user's
cached state (one incremental step, :mod:`rec_jax.serve.incremental`), scores all
items for the user's next event, removes already-seen items when ``mask_seen``, and
lets the exploration policy pick a K-item slate with its propensities (logged for
off-policy evaluation). ``store``, ``seen`` and ``feedback`` are donated (updated in
place; the store by a second small jitted scatter of only the B rows that changed). The signature of the issue, ``recommend(state_cache, user_ids, events) ->
(slates, propensities, new cache)``, is this call with the model, policy and
bookkeeping arguments made explicit (pure functions, no hidden state).

Policies: the context-free policies of :mod:`rec_jax.policies` ("greedy",
"epsilon_greedy", "softmax") act on per-item values held in a ``CountsState``; the
serving step hands them the model's scores as those values (counts 1, sums =
scores), so epsilon-greedy explores around the model's ranking and softmax samples a
Plackett-Luce slate from the model's logits, with their exact propensities. The
slate is built slot by slot from the policy's single-item ``act``
(:func:`slate_by_single_picks`), so build the policy with ``slate_size=1``.

Per-event randomness is ``fold_in(key, event_id)``, so a slate depends on the event,
not on how the stream was cut into micro-batches or on the cache's state.

:func:`make_reencode` is the baseline: the same step, but every user vector comes
from re-encoding the full L-item window from scratch (``model.encode``).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.fused_threefry import as_fused
from rec_jax.models.base import tied_scores
from rec_jax.policies._common import CountsState
from rec_jax.policies.base import Observation
from rec_jax.serve.fast_slate import epsilon_greedy_slates

SCORE_POLICIES = ("greedy", "epsilon_greedy", "softmax")


@struct.dataclass
class Head:
    """The output layer that scores items: logits = h . table[n] + bias[n].

    Starts as the model's tied item embeddings (bias 0); the online updater adapts
    it while the encoder (and so every cached state) stays fixed.
    """

    table: jax.Array  # f32[N+1, D]
    bias: jax.Array  # f32[N+1]


def initial_head(model, params) -> Head:
    table = model.item_embeddings(params)[: model.config.num_items + 1]
    return Head(table=jnp.asarray(table, jnp.float32), bias=jnp.zeros((table.shape[0],), jnp.float32))


@struct.dataclass
class Served:
    """What a step returns for each of the B events (the slate of the user's NEXT event)."""

    slate: jax.Array  # int32[B, K] item ids shown
    propensity: jax.Array  # f32[B, K] conditional probability of each pick (policy's ActInfo)
    topk: jax.Array  # int32[B, k_eval] the model's own top items (seen masked): next-item prediction


@struct.dataclass
class Feedback:
    """Ring buffer of (user vector that scored an event, the item that came): online targets."""

    h: jax.Array  # f32[M, D]
    item: jax.Array  # int32[M]
    valid: jax.Array  # bool[M]
    ptr: jax.Array  # int32[] next row to write

    @classmethod
    def empty(cls, size: int, dim: int) -> "Feedback":
        return cls(h=jnp.zeros((size, dim), jnp.float32), item=jnp.zeros((size,), jnp.int32),
                   valid=jnp.zeros((size,), bool), ptr=jnp.zeros((), jnp.int32))

    def push(self, h, item, keep) -> "Feedback":
        """Append the rows of ``h f32[B, D]``, ``item int32[B]`` where ``keep bool[B]`` (B <= M)."""
        size = self.item.shape[0]
        rows = (self.ptr + jnp.cumsum(keep) - 1) % size
        rows = jnp.where(keep, rows, size)  # out of bounds: dropped
        return Feedback(h=self.h.at[rows].set(h, mode="drop"), item=self.item.at[rows].set(item, mode="drop"),
                        valid=self.valid.at[rows].set(True, mode="drop"),
                        ptr=(self.ptr + jnp.sum(keep, dtype=jnp.int32)) % size)


def scores_as_counts(scores) -> CountsState:
    """A CountsState whose empirical means are ``scores f32[N]``."""
    return CountsState(counts=jnp.ones_like(scores), sums=scores, t=jnp.zeros((), jnp.int32))


def slate_by_single_picks(policy, policy_params, key, scores, available, slate_size: int):
    """A K-item slate as K successive single-item ``act`` calls on the items left.

    ``policy`` must be built with ``PolicySpec(slate_size=1)``. For the score-driven
    policies served here this is exactly their own slate scheme (each slot: epsilon-
    greedy explores uniformly among the items left or takes the best left; softmax
    draws from the softmax over the items left, i.e. Plackett-Luce), and each
    single call's propensity is the conditional propensity of that slot given the
    picks before it. It is also far cheaper on a CPU than the K-slot builders, which
    draw 2N+1 uniforms per slot: the single-pick paths draw a handful.
    scores: f32[N]; available: bool[N] -> (slate int32[K], propensity f32[K]).
    """
    state = scores_as_counts(scores)
    features = jnp.zeros((scores.shape[0], 0), jnp.float32)

    def slot(remaining, slot_key):
        obs = Observation(features=features, available=remaining, scores=scores)
        pick, info = policy.act(slot_key, state, obs, policy_params)
        return remaining.at[pick].set(False), (pick, info.propensity)

    _, (slate, propensity) = jax.lax.scan(slot, available, jax.random.split(key, slate_size))
    return slate.astype(jnp.int32), propensity


def event_keys(key, event_ids):
    """key[B]: ``fold_in(key, event_ids[b])``, one key per event, on the key re-typed by
    :func:`rec_jax.fused_threefry.as_fused` (the same bits; its hash compiles to one fused loop
    instead of JAX's rolled 5-trip loops: 1,740 -> 1,020 XLA:CPU thunks for an HTTP rank step
    of 8 rows, 5-10% of the step)."""
    fused = as_fused(key)
    return jax.vmap(lambda i: jax.random.fold_in(fused, i))(event_ids)


def _serve_from_h(policy, num_items, slate_size, eval_k, mask_seen, head, policy_params, seen, key, h, users,
                  event_ids, fast_epsilon=False):
    """Scores f32[B, N+1] from user vectors, seen-masking, the policy's slates, the top-k."""
    logits = tied_scores(h, head.table, num_items) + head.bias
    real = jnp.arange(num_items + 1) > 0
    available = (~seen[users] & real) if mask_seen else jnp.broadcast_to(real, logits.shape)
    keys = event_keys(key, event_ids)
    slate, propensity, ranked = slates_from_logits(policy, policy_params, keys, logits, available, slate_size,
                                                   fast_epsilon, ranked_len=max(eval_k, slate_size))
    return Served(slate=slate, propensity=propensity, topk=ranked[:, :eval_k].astype(jnp.int32))


def slates_from_logits(policy, policy_params, keys, logits, available, slate_size: int, fast_epsilon: bool,
                       ranked_len: int | None = None):
    """The policy's K-item slates on the model's scores.

    keys: key[B] (one per event); logits f32[B, N+1]; available bool[B, N+1].
    Returns (slate int32[B, K], propensity f32[B, K] (each slot's conditional
    propensity given the picks before it), ranked int32[B, ranked_len] the available
    items in descending score order). Slots are built one after the other, so the
    first k slots of a K-slate are distributed exactly as a k-slate.
    """
    # one top-k serves both the prediction (top eval_k) and epsilon-greedy's greedy order
    ranked = jax.lax.top_k(jnp.where(available, logits, -jnp.inf), ranked_len or slate_size)[1]
    if fast_epsilon:  # the same distribution, cheaply (rec_jax.serve.fast_slate)
        slate, propensity = epsilon_greedy_slates(keys, logits, available, policy_params.epsilon, slate_size,
                                                  greedy=ranked)
    else:
        slate, propensity = jax.vmap(slate_by_single_picks, in_axes=(None, None, 0, 0, 0, None))(
            policy, policy_params, keys, logits, available, slate_size)
    return slate, propensity, ranked


def make_recommend(inc, policy, *, num_items: int, slate_size: int, eval_k: int = 10, mask_seen: bool = True,
                   fast_epsilon: bool = False):
    """The jitted incremental serving step (see module docstring). ``fast_epsilon``: the
    policy is epsilon-greedy (constant epsilon); build its slates with
    :func:`rec_jax.serve.fast_slate.epsilon_greedy_slates` (same distribution, cheaper).

    Arguments of the returned function:
      params: model params; head: :class:`Head`; policy_params: the policy's params;
      store: the cache rows (``user_cache.init_store``; rows ``slots`` must hold the
        users' states, i.e. misses rebuilt first; the last row is the trash row);
      seen: bool[U+1, N+1] items each user has consumed (row U = padding user);
      feedback: :class:`Feedback`; key: the serving key;
      slots, users, items, event_ids: int32[B]; valid: bool[B] (False = padding row,
        which must use user U, the trash slot and any item id >= 1).
    Returns (Served, store, seen, feedback).
    """

    def step(params, head, policy_params, store, seen, feedback, key, slots, users, items, event_ids, valid):
        rows = jax.tree.map(lambda a: a[slots], store)
        update, h = jax.vmap(inc.append, in_axes=(None, 0, 0))(params, rows["state"], items)
        # the vector that scored this event (before it was appended) and the item that came
        feedback = feedback.push(rows["h"], items, valid & (rows["state"].count > 0))
        seen = seen.at[users, items].set(True)
        served = _serve_from_h(policy, num_items, slate_size, eval_k, mask_seen, head, policy_params, seen,
                               key, h, users, event_ids, fast_epsilon)
        return served, (update, h), seen, feedback

    def commit(store, slots, valid, new):
        update, h = new
        write_slots = jnp.where(valid, slots, store["h"].shape[0] - 1)  # padding rows -> trash row
        return {"state": inc.write_rows(store["state"], write_slots, update), "h": store["h"].at[write_slots].set(h)}

    # Two jitted calls: XLA on CPU copied the whole donated store when the gather of the
    # rows and the write-back shared one computation (measured: the step time then grew
    # with the cache size); a separate donated scatter writes only the B new rows.
    step = jax.jit(step, donate_argnums=(4, 5))
    commit = jax.jit(commit, donate_argnums=0)

    def recommend(params, head, policy_params, store, seen, feedback, key, slots, users, items, event_ids, valid):
        served, new, seen, feedback = step(params, head, policy_params, store, seen, feedback, key, slots, users,
                                           items, event_ids, valid)
        return served, commit(store, slots, valid, new), seen, feedback

    recommend.compiled = (step, commit)  # the jitted parts (tests count their compilations)
    return recommend


def make_reencode(model, policy, *, num_items: int, slate_size: int, eval_k: int = 10, mask_seen: bool = True,
                  fast_epsilon: bool = False):
    """Baseline step: ``(params, head, policy_params, seen, key, windows int32[B, L], users,
    items, event_ids) -> (Served, seen)``; ``windows`` are the users' last L items
    (the new event included, left-padded), encoded from scratch."""

    def reencode(params, head, policy_params, seen, key, windows, users, items, event_ids):
        h = model.encode(params, windows)
        seen = seen.at[users, items].set(True)
        return _serve_from_h(policy, num_items, slate_size, eval_k, mask_seen, head, policy_params, seen,
                             key, h, users, event_ids, fast_epsilon), seen

    return jax.jit(reencode, donate_argnums=3)


def check_policy(name: str) -> None:
    if name not in SCORE_POLICIES:
        raise ValueError(f"policy={name!r}: the serving step runs the score-driven policies "
                         f"{', '.join(SCORE_POLICIES)}")


