"""The interface every sequential recommender in rec_jax meets (docs/DESIGN.md, "Model").

A model is a :class:`SequentialModel` named tuple of pure functions, built once by
its factory ``make_<name>(config)`` (or :func:`make_model`):

    init(key, config=None)                        -> params
    hidden(params, seq, *, train, key=None)       -> f32[B, L, D]
    encode(params, seq)                           -> f32[B, D]
    score(params, h)                              -> f32[..., N+1]
    item_embeddings(params)                       -> f32[N+1, D]
    training_batch(key, seq_window, target_mask)  -> (inputs, targets, loss_mask)
    output_layer(params)  (optional)              -> (table f32[N+1, D], bias f32[N+1] | None)

Conventions shared by every model:

* Item ids are ``1..N``; ``0`` is padding. ``seq: int32[B, L]`` is LEFT-padded: the
  most recent item sits in the last column ``L-1``.
* ``params`` is the ``'params'`` collection of the flax variables (a plain nested
  dict of arrays), so it goes straight into Optax and Orbax.
* ``score`` returns N+1 columns; column 0 (padding) is set to :data:`PAD_LOGIT`, a
  large finite negative number, so it is never recommended and never NaNs a softmax.
* ``hidden`` is zero at padding positions and never NaN, even for all-pad rows.
* Dropout is active only with ``train=True`` AND a ``key``; otherwise eval mode.
* ``training_batch`` turns a training window ``int32[B, L+1]`` (left-padded,
  consecutive items) and ``target_mask: bool[B, L]`` (which next-item targets of
  window positions 1..L count) into ``inputs int32[B, L]``, ``targets int32[B, L]``
  and ``loss_mask bool[B, L]``; the trainer then computes
  ``score(params, hidden(params, inputs, train=True, key=k))`` and full-softmax
  cross-entropy at ``loss_mask``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

# Logit given to the padding column 0 (finite, so softmax/logsumexp never NaN).
PAD_LOGIT = -1e9

Params = Any


class SequentialModel(NamedTuple):
    """A sequential recommender as pure functions (see module docstring)."""

    name: str  # registry name: "sasrec" | "bert4rec" | "gru4rec"
    config: Any  # the frozen config the functions were built for (static)
    init: Callable[..., Params]  # (key, config=None) -> params
    hidden: Callable[..., jax.Array]  # (params, seq, *, train, key=None) -> f32[B, L, D]
    encode: Callable[..., jax.Array]  # (params, seq) -> f32[B, D]
    score: Callable[..., jax.Array]  # (params, h f32[..., D]) -> f32[..., N+1]
    item_embeddings: Callable[..., jax.Array]  # (params) -> f32[N+1, D]
    training_batch: Callable[..., tuple]  # (key, window, target_mask) -> (inputs, targets, loss_mask)
    # (params) -> (table f32[N+1, D], bias f32[N+1] or None) with
    # score(params, h) == mask_pad_column(h @ table.T (+ bias)); lets evaluation score item chunks.
    # None: the model only scores through ``score`` (evaluation then slices full logits).
    output_layer: Callable[..., tuple] | None = None


def mask_pad_column(logits: jax.Array) -> jax.Array:
    """Sets column 0 (padding) of ``logits: f32[..., N+1]`` to :data:`PAD_LOGIT`."""
    return logits.at[..., 0].set(PAD_LOGIT)


def tied_scores(h: jax.Array, table: jax.Array, num_items: int) -> jax.Array:
    """``h: f32[..., D]`` times rows 0..N of ``table: f32[>=N+1, D]`` -> f32[..., N+1]."""
    logits = jnp.einsum("...d,nd->...n", h, table[: num_items + 1])
    return mask_pad_column(logits)


def next_item_training_batch(key, seq_window, target_mask):
    """Next-item (causal) targets, used by SASRec and GRU4Rec; ``key`` is unused.

    seq_window: int32[B, L+1], target_mask: bool[B, L] ->
    inputs = window[:, :-1], targets = window[:, 1:],
    loss_mask = target_mask & (targets > 0) & (inputs > 0)
    (a target whose input is padding has no history to predict from).
    """
    del key
    seq_window = jnp.asarray(seq_window)
    inputs = seq_window[:, :-1]
    targets = seq_window[:, 1:]
    loss_mask = jnp.asarray(target_mask, bool) & (targets > 0) & (inputs > 0)
    return inputs, targets, loss_mask


def check_init_config(config, given) -> None:
    """``init(key, config)`` accepts the config it was built for, or None."""
    if given is not None and given != config:
        raise ValueError(
            f"init: got config {given!r}, but this model was built for {config!r}; "
            "build a new model with make_model(name, config)."
        )


def check_seq_len(seq_len: int, max_len: int, name: str) -> None:
    """Raises (at trace time) if a sequence is longer than the positional table."""
    if seq_len > max_len:
        raise ValueError(
            f"{name}: sequence length L={seq_len} exceeds config.max_len={max_len}; "
            "truncate the history or raise max_len."
        )


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What a model module declares next to its factory (module-level ``MODEL``).

    config: the frozen config dataclass (first field ``num_items``).
    make:   ``make(config) -> SequentialModel``.
    tiny:   ``tiny(num_items, max_len, dim) -> config``: the smallest sensible config,
            which the registry-wide tests build (tests/test_models_common.py).
    """

    config: type
    make: Callable[[Any], SequentialModel]
    tiny: Callable[[int, int, int], Any]


# name -> "module:ModelInfo attribute": ONE line per model (imported on first use,
# since the model modules import this one).
_REGISTRY: dict[str, str] = {
    "sasrec": "rec_jax.models.sasrec:MODEL",
    "bert4rec": "rec_jax.models.bert4rec:MODEL",
    "gru4rec": "rec_jax.models.gru4rec:MODEL",
}

MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` model ``name`` declares; ValueError listing the known names."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; known models: {sorted(_REGISTRY)}")
    from rec_jax.declarations import load_declaration

    return load_declaration(_REGISTRY[name], ModelInfo, "MODEL")


def make_model(name: str, config) -> SequentialModel:
    """Builds the model registered as ``name`` (one of ``MODEL_NAMES``)."""
    info = model_info(name)
    if not isinstance(config, info.config):
        raise ValueError(
            f"model {name!r} needs a {info.config.__name__}, got {type(config).__name__}"
        )
    return info.make(config)


def __getattr__(attr: str):
    # MODEL_CONFIGS is built on first access (PEP 562) to avoid an import cycle.
    if attr == "MODEL_CONFIGS":
        return {name: model_info(name).config for name in MODEL_NAMES}
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")
