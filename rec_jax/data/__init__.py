"""Data: fetch (cache + checksums), loaders, k-core, sequences, splits, batching, synthetic logs.

Typical use::

    seqs = rec_jax.data.load("ml-100k")             # SequenceData, 5-core
    split = rec_jax.data.leave_one_out(seqs)
    windows = rec_jax.data.make_windows(split.train, max_len=50, stride=50)
    valid = rec_jax.data.eval_arrays(split, "valid", max_len=50)
"""
from __future__ import annotations

from pathlib import Path

from rec_jax.data.batching import Windows, batch_indices, make_windows
from rec_jax.data.errors import DataError
from rec_jax.data.fetch import data_home, data_record, dataset_dir, fetch, interaction_file, is_fetched, safe_extract
from rec_jax.data.loaders import (Interactions, load_csv, load_inter, load_interactions, load_ratings_dat,
                                  load_udata, load_user_item)
from rec_jax.data.obd import BanditLog, load_bts_prior, load_obd
from rec_jax.data.preprocess import (FILTERS, SequenceData, apply_filter, build_sequences, kcore_filter,
                                     sasrec_filter)
from rec_jax.data.splits import EvalArrays, LOOSplit, eval_arrays, kfold_users, leave_one_out
from rec_jax.data.synthetic import SyntheticTruth, synthetic_interactions

__all__ = [
    "BanditLog", "DataError", "EvalArrays", "FILTERS", "Interactions", "LOOSplit", "SequenceData", "SyntheticTruth",
    "Windows", "apply_filter", "batch_indices", "build_sequences", "data_home", "data_record", "dataset_dir",
    "eval_arrays", "fetch", "interaction_file", "is_fetched", "kcore_filter", "kfold_users", "leave_one_out",
    "load", "load_bts_prior", "load_csv", "load_inter", "load_interactions", "load_log", "load_obd",
    "load_ratings_dat", "load_udata", "load_user_item", "make_windows", "safe_extract", "sasrec_filter",
    "synthetic_interactions",
]


def load_log(data: str) -> Interactions:
    """The raw log for ``data``: "synthetic", "ml-100k" / "ml-1m" / "ml-20m" (fetched on first use) or a file path."""
    if data == "synthetic":
        return synthetic_interactions()[0]
    if data in ("ml-100k", "ml-1m", "ml-20m"):
        return load_interactions(interaction_file(data))
    if data == "obd":
        raise DataError("'obd' is bandit feedback, not a user-item log; use rec_jax.data.load_obd()")
    return load_interactions(Path(data))


def load(data: str, *, min_user: int = 5, min_item: int = 5, filter: str = "kcore") -> SequenceData:
    """Sequences for ``data`` ("synthetic", a dataset name or a path), after ``filter``.

    ``filter``: "kcore" (iterated, ids by sorted raw id) or "sasrec" (one pass on raw counts,
    ids by first appearance; :func:`rec_jax.data.preprocess.sasrec_filter`).
    ML-100K with the defaults: 943 users, 1,349 items, 99,287 interactions (every
    rating counts as an interaction), as RecBole reports for the same protocol.
    """
    return apply_filter(load_log(data), filter, min_user=min_user, min_item=min_item)
