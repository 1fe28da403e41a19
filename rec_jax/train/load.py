"""Load a trained model back from a ``train_sequential.py`` run folder.

The folder holds ``config.json`` (the resolved TrainConfig) and ``checkpoints/``
(Orbax; the latest record carries the best-validation params).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import orbax.checkpoint as ocp

from rec_jax import checkpoint
from rec_jax.models import make_model
from rec_jax.train.config import TrainConfig, model_config


EXTRA_ROWS = {"sasrec": 1, "gru4rec": 1, "bert4rec": 2}  # item-table rows beyond N (padding, [MASK])


def load_trained(model_dir: str | Path, num_items: int | None = None) -> tuple[Any, Any, TrainConfig]:
    """(SequentialModel, best-validation params, TrainConfig) of the run in ``model_dir``.

    ``num_items`` is the catalogue size of the data the caller will serve (it must be
    the one the model was trained on; checked against the embedding table); None
    reads it off the item table (a service with no data of its own).
    """
    model_dir = Path(model_dir)
    config_path = model_dir / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"--model-dir {model_dir}: no config.json (expected a train_sequential.py run folder)")
    raw = json.loads(config_path.read_text())["config"]
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    config = TrainConfig(**{k: v for k, v in raw.items() if k in fields})
    step = checkpoint.latest_step(model_dir / "checkpoints")
    if step is None:
        raise FileNotFoundError(f"--model-dir {model_dir}: no checkpoint under checkpoints/")
    with ocp.CheckpointManager((model_dir / "checkpoints").absolute()) as manager:
        record = manager.restore(step, args=ocp.args.StandardRestore())
    params = _as_jax(record["best_params"])
    if num_items is None:
        num_items = _table_rows(params) - EXTRA_ROWS.get(config.model, 1)
    model = make_model(config.model, model_config(config, num_items))
    table = model.item_embeddings(params)
    if table.shape[0] < num_items + 1:
        raise ValueError(f"--model-dir {model_dir}: the model knows {table.shape[0] - 1} items, "
                         f"the data has {num_items}; train it on the same data")
    return model, params, config


def _as_jax(tree):
    if isinstance(tree, dict):
        return {k: _as_jax(v) for k, v in tree.items()}
    return jnp.asarray(tree)


def _table_rows(params) -> int:
    """Rows of the item embedding table (``.../item_embed/embedding``)."""
    if isinstance(params, dict):
        if "item_embed" in params:
            return int(params["item_embed"]["embedding"].shape[0])
        for value in params.values():
            rows = _table_rows(value)
            if rows:
                return rows
    return 0
