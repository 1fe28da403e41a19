"""ML-100K from the local cache (never fetched by the tests)."""
import numpy as np
import pytest

from rec_jax.data import is_fetched, interaction_file, leave_one_out, load, load_interactions

pytestmark = pytest.mark.skipif(
    not is_fetched("ml-100k"),
    reason="ML-100K not in cache ($REC_JAX_DATA); run python -m rec_jax.data fetch ml-100k")


def test_ml100k_raw_log():
    inter = load_interactions(interaction_file("ml-100k"))
    # GroupLens README: 100,000 ratings (1-5) from 943 users on 1682 movies
    assert len(inter) == 100_000
    assert len(np.unique(inter.user)) == 943 and len(np.unique(inter.item)) == 1682
    assert set(np.unique(inter.rating).tolist()) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_ml100k_5core_matches_recbole():
    seqs = load("ml-100k")
    assert (seqs.num_users, seqs.num_items, seqs.num_interactions) == (943, 1349, 99_287)
    split = leave_one_out(seqs)
    assert split.train.num_interactions == 99_287 - 2 * 943
