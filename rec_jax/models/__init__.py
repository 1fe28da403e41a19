"""Sequential recommenders (SASRec, BERT4Rec, GRU4Rec) and the MF / popularity baselines.

Every sequential model is a :class:`SequentialModel` of pure functions; build one
with ``make_model(name, config)`` (see ``rec_jax.models.base`` for the contract).
"""
from rec_jax.models.base import (
    PAD_LOGIT,
    SequentialModel,
    make_model,
    mask_pad_column,
    next_item_training_batch,
)
from rec_jax.models.bert4rec import BERT4RecConfig, make_bert4rec
from rec_jax.models.gru4rec import GRU4RecConfig, make_gru4rec
from rec_jax.models.mf import fit_mf, init_mf, mf_scores
from rec_jax.models.popularity import fit_most_popular, most_popular_scores
from rec_jax.models.sasrec import SASRecConfig, make_sasrec

MODEL_CONFIGS = {"sasrec": SASRecConfig, "bert4rec": BERT4RecConfig, "gru4rec": GRU4RecConfig}

__all__ = [
    "BERT4RecConfig", "GRU4RecConfig", "MODEL_CONFIGS", "PAD_LOGIT", "SASRecConfig",
    "SequentialModel", "fit_mf", "fit_most_popular", "init_mf", "make_bert4rec",
    "make_gru4rec", "make_model", "make_sasrec", "mask_pad_column", "mf_scores",
    "most_popular_scores", "next_item_training_batch",
]
