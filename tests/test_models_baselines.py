"""Most-popular and matrix-factorisation baselines."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.models import PAD_LOGIT, fit_mf, fit_most_popular, init_mf, mf_scores, most_popular_scores

N = 20


def test_most_popular_counts_and_scores():
    rng = np.random.default_rng(0)
    seqs = rng.integers(0, N + 1, (30, 8))
    counts = np.asarray(fit_most_popular(jnp.asarray(seqs), N))
    expected = np.array([0] + [np.sum(seqs == i) for i in range(1, N + 1)], np.float32)
    np.testing.assert_array_equal(counts, expected)
    scores = np.asarray(most_popular_scores(jnp.asarray(counts), 3))
    assert scores.shape == (3, N + 1)
    np.testing.assert_array_equal(scores[:, 1:], np.broadcast_to(expected[1:], (3, N)))
    np.testing.assert_array_equal(scores[:, 0], PAD_LOGIT)


def test_mf_scores_are_dot_products():
    params = init_mf(jax.random.key(0), num_users=5, num_items=N, dim=4)
    users = jnp.array([4, 0, 2])
    got = np.asarray(mf_scores(params, users))
    p = np.asarray(params["user"], np.float64)[[4, 0, 2]]
    q = np.asarray(params["item"], np.float64)
    np.testing.assert_allclose(got[:, 1:], (p @ q.T)[:, 1:], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(got[:, 0], PAD_LOGIT)


def test_fit_mf_recovers_block_structure():
    """Two user groups with disjoint tastes: each user's top items come from their group."""
    num_users = 8
    group_items = [np.arange(1, 11), np.arange(11, 21)]
    rng = np.random.default_rng(0)
    lists = [rng.choice(group_items[u % 2], 6, replace=False) for u in range(num_users)]
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])])
    items = np.concatenate(lists)
    params = fit_mf(jax.random.key(0), (offsets, items), num_users, N, dim=8, epochs=60,
                    lr=5e-2, batch_size=16)
    scores = np.asarray(mf_scores(params, jnp.arange(num_users)))
    top = np.argsort(-scores, axis=1)[:, :6]
    for u in range(num_users):
        assert set(top[u]) <= set(group_items[u % 2]), (u, top[u])
        # The items the user trained on outrank the other group's items.
        assert scores[u, lists[u]].min() > scores[u, group_items[1 - u % 2]].max()
    with pytest.raises(ValueError, match="offsets"):
        fit_mf(jax.random.key(0), (offsets[:-1], items), num_users, N)
