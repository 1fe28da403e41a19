"""Sequential recommenders (SASRec, BERT4Rec, GRU4Rec) and the MF / popularity baselines.

Every sequential model is a :class:`SequentialModel` of pure functions; build one
with ``make_model(name, config)`` (see ``rec_jax.models.base`` for the contract).
"""
from rec_jax.models.base import (
    MODEL_NAMES,
    PAD_LOGIT,
    ModelInfo,
    SequentialModel,
    make_model,
    model_info,
    mask_pad_column,
    next_item_training_batch,
)
from rec_jax.models.bert4rec import BERT4RecConfig, make_bert4rec
from rec_jax.models.gru4rec import GRU4RecConfig, make_gru4rec
from rec_jax.models.mf import fit_mf, init_mf, mf_scores
from rec_jax.models.popularity import fit_most_popular, most_popular_scores
from rec_jax.models.sasrec import SASRecConfig, make_sasrec

MODEL_CONFIGS = {name: model_info(name).config for name in MODEL_NAMES}  # name -> config class

__all__ = [
    "BERT4RecConfig", "GRU4RecConfig", "MODEL_CONFIGS", "MODEL_NAMES", "ModelInfo", "PAD_LOGIT", "SASRecConfig",
    "SequentialModel", "fit_mf", "fit_most_popular", "init_mf", "make_bert4rec",
    "make_gru4rec", "make_model", "make_sasrec", "mask_pad_column", "mf_scores",
    "model_info", "most_popular_scores", "next_item_training_batch",
]
