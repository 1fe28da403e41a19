"""Bandit policies on top of a trained sequential model (the "large model" of the study).

:func:`make_model_backed` wraps any policy so that, before it acts or learns, the
observation is replaced by the Transformer's view of the user's history
(``obs.history``, kept by the simulator):

    h      = adapter(encode(history))                f32[D]  the user state
    x_n    = h * e_n                                 f32[N, D] features (NeuralLinear, heads)
    s_n    = x_n . w + b  (= h . e_n at w = 1, b = 0) f32[N]    scores (epsilon-greedy, softmax, exploit)

``e_n`` is item n's output embedding (env item n = data item id n + 1). The model's
parameters travel in the policy params (:class:`ModelBackedParams`) as DATA, so an
online learner (:mod:`rec_jax.online.model_learning`) can replace them between
engine chunks without recompiling, and a frozen model is the same program with the
parameters left alone. The view's extra parameters start as the identity:

* ``adapter``: a residual bottleneck ``h + relu(h A) B`` with ``B = 0`` at init
  (the parameter-efficient option: train only it and the head);
* ``head``: ``w = 1``, ``b = 0`` by default (scores are the model's own tied logits), plus
  per-slot logits ``pos`` used only by the click loss (position bias of the feed).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.policies.base import Observation, Policy, PolicySpec


@struct.dataclass
class ModelBackedParams:
    view: Any  # {"encoder": model params, "adapter": {"down", "up"}, "head": {"w", "b", "pos"}}
    base: Any  # the wrapped policy's params

    def validate(self, spec: PolicySpec | None = None) -> None:
        if hasattr(self.base, "validate"):
            self.base.validate(spec)
        if self.view is None or "encoder" not in self.view:
            raise ValueError("ModelBackedParams.view: expected the dict from init_view(...)")


def init_view(model, encoder_params, key: jax.Array, slate_size: int, adapter_rank: int = 8,
              head_scale: float = 1.0, head_bias: float = 0.0) -> dict:
    """The trainable view around ``encoder_params``: identity adapter, head ``w = head_scale * 1``,
    ``b = head_bias``. Any ``head_scale > 0`` ranks exactly like the model; a click objective
    wants it small and ``head_bias`` near logit(CTR), so that sigmoid(score) starts near the
    observed click rates instead of ~1 (raw logits of top items are ~5-10), which would push
    every shown item down (the unshown items get no gradient) and wreck the ranking."""
    d = model.item_embeddings(encoder_params).shape[-1]
    return {
        "encoder": encoder_params,
        "adapter": {
            "down": jax.random.normal(key, (d, adapter_rank), jnp.float32) / jnp.sqrt(d),
            "up": jnp.zeros((adapter_rank, d), jnp.float32),
        },
        "head": {"w": jnp.full((d,), head_scale, jnp.float32), "b": jnp.asarray(head_bias, jnp.float32),
                 "pos": jnp.zeros((slate_size,), jnp.float32)},
    }


def user_states(model, view: dict, histories: jax.Array) -> jax.Array:
    """f32[B, D] adapted user states of ``histories`` int32[B, L] (left-padded item ids)."""
    return adapt(view, model.encode(view["encoder"], histories))


def adapt(view: dict, h: jax.Array) -> jax.Array:
    """f32[..., D] the residual adapter ``h + relu(h A) B`` on encoder states ``h`` f32[..., D]."""
    return h + jax.nn.relu(h @ view["adapter"]["down"]) @ view["adapter"]["up"]


def item_view(model, view: dict, h: jax.Array, num_items: int) -> tuple[jax.Array, jax.Array]:
    """(scores f32[..., N], features f32[..., N, D]) for user states ``h`` f32[..., D].

    The scores are one matmul, (h * w) E^T + b, never through the [..., N, D]
    features (which XLA drops when the caller does not use them)."""
    emb = item_table(model, view, num_items)
    features = h[..., None, :] * emb
    scores = (h * view["head"]["w"]) @ emb.T + view["head"]["b"]
    return scores, features


def item_table(model, view: dict, num_items: int) -> jax.Array:
    """f32[N, D] output embeddings of env items 0..N-1 (env item n = data item id n + 1)."""
    return model.item_embeddings(view["encoder"])[1 : num_items + 1]


def shown_scores(model, view: dict, h: jax.Array, items: jax.Array, num_items: int) -> jax.Array:
    """f32[B, K] scores of ``items`` int32[B, K] for user states f32[B, D] (no [B, N] work)."""
    emb = item_table(model, view, num_items)[items]  # [B, K, D]
    return jnp.einsum("bd,bkd->bk", h * view["head"]["w"], emb) + view["head"]["b"]


def model_observation(model, view: dict, obs: Observation) -> Observation:
    """``obs`` with scores/features from the model's view of ``obs.history`` (one stream)."""
    if obs.history is None:
        raise ValueError("model-backed policy: the simulator must expose Observation.history "
                         "(e.g. make_recsys_env(..., observe_history=True))")
    h = user_states(model, view, obs.history[None])[0]
    scores, features = item_view(model, view, h, obs.available.shape[-1])
    return obs.replace(scores=scores, features=features)


def make_model_backed(policy: Policy, model, *, incremental: bool = True, max_appends: int = 1) -> Policy:
    """``policy`` acting on the model's view; params are :class:`ModelBackedParams`.

    ``act``/``update`` re-encode ``obs.history`` (what any caller outside the engine
    gets). With ``incremental`` (and a model that has an incremental form: SASRec,
    GRU4Rec) the tuple also carries ``view``, a
    :func:`rec_jax.policies.model_view_cache.make_model_view`: the engine then keeps each
    stream's encoder state and appends the new items (O(L) a step instead of O(L^2),
    once a step instead of in both act and update). ``max_appends``: the most items a
    step may add to a history (the slate size for the recsys env)."""

    def act(key, state, obs, params):
        return policy.act(key, state, model_observation(model, params.view, obs), params.base)

    def update(key, state, obs, action, reward, params):
        return policy.update(key, state, model_observation(model, params.view, obs), action, reward, params.base)

    view = None
    if incremental and model.name in ("sasrec", "gru4rec"):
        from rec_jax.policies.model_view_cache import make_model_view

        view = make_model_view(policy, model, max_appends)
    return Policy(init=policy.init, act=act, update=update, merge=policy.merge, view=view)


def model_spec(model, encoder_params, num_items: int, slate_size: int) -> PolicySpec:
    """The PolicySpec of a wrapped policy: features are D wide (the model's width)."""
    d = int(model.item_embeddings(encoder_params).shape[-1])
    return PolicySpec(num_items=num_items, feature_dim=d, slate_size=slate_size)


def num_params(tree: Any) -> int:
    return int(sum(x.size for x in jax.tree.leaves(tree)))
