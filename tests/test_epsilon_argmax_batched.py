"""The K = 1 epsilon-argmax picks under vmap (shared or per-stream availability, ties,
exploration) equal a NumPy reference: the (j+1)-th item of the pool."""
import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.policies import _argmax_pick, _slates


def _reference(v_left, mask, explore, j):
    best = mask & (v_left == v_left.max())
    pool = mask if explore else best
    return int(np.flatnonzero(pool)[j])


def test_vmapped_picks_match_numpy_for_shared_and_per_stream_masks():
    rng = np.random.default_rng(3)
    s, n = 64, 37
    values = rng.integers(0, 4, (s, n)).astype(np.float32)  # few distinct values: many ties
    values[: s // 2] += rng.random((s // 2, n)).astype(np.float32)  # half the streams: no ties
    shared_mask = rng.random(n) < 0.7
    per_stream_mask = rng.random((s, n)) < 0.7
    per_stream_mask[:, 0] = True
    explore = rng.random(s) < 0.3

    def picks(mask, batched_mask):
        v_left = np.where(mask, values, -np.inf).astype(np.float32)
        top = v_left.max(axis=1)
        best = mask & (v_left == top[:, None])
        count = np.where(explore, mask.sum(axis=-1), best.sum(axis=1))
        j = (rng.random(s) * count).astype(np.int32)
        only = np.argmax(best, axis=1).astype(np.int32)  # right only where a single best
        unknown = explore | (best.sum(axis=1) != 1)
        fn = jax.jit(jax.vmap(_argmax_pick._nth_in_pool_unless, in_axes=(0, 0, 0 if batched_mask else None, 0, 0, 0, 0)))
        got = np.asarray(fn(jnp.asarray(v_left), jnp.asarray(top), jnp.asarray(mask), jnp.asarray(explore),
                            jnp.asarray(j), jnp.asarray(only), jnp.asarray(unknown)))
        want = [_reference(v_left[i], np.broadcast_to(mask, (s, n))[i], explore[i], j[i]) for i in range(s)]
        return got, np.array(want)

    for mask, batched in ((shared_mask, False), (per_stream_mask, True)):
        got, want = picks(mask, batched)
        np.testing.assert_array_equal(got, want)


def test_row_max_and_packed_tie_count_match_numpy():
    rng = np.random.default_rng(4)
    for n in (5, 32, 37, 100, 130):  # one slice, exactly one, several, a short last slice
        v = rng.standard_normal((16, n)).astype(np.float32)
        v[0] = 0.0
        v[0, ::2] = -0.0  # signed zeros tie as floats
        v[1, :] = -np.inf
        v[1, n // 2] = -1e30
        v[2, rng.integers(0, n, 3)] = 9.0  # a three-way tie for the best
        top = np.asarray(jax.jit(jax.vmap(_argmax_pick._row_max))(jnp.asarray(v)))
        np.testing.assert_array_equal(top, v.max(axis=1))
        best = v == v.max(axis=1, keepdims=True)
        count, only = jax.jit(jax.vmap(_argmax_pick._count_and_only_index))(jnp.asarray(best))
        np.testing.assert_array_equal(np.asarray(count), best.sum(axis=1))
        single = best.sum(axis=1) == 1
        np.testing.assert_array_equal(np.asarray(only)[single], np.argmax(best, axis=1)[single])


def test_greedy_path_equals_the_epsilon_path_at_epsilon_zero():
    """A static epsilon of 0 (LinUCB, UCB, greedy) draws its tie-breaking uniform only in the
    rare branch: the same picks, propensities and marginals as the general path given a
    traced 0, from the same keys, with and without ties, under vmap and for one stream."""
    rng = np.random.default_rng(5)
    s, n = 48, 21
    values = rng.integers(0, 3, (s, n)).astype(np.float32)  # many exact ties
    values[: s // 3] += rng.random((s // 3, n)).astype(np.float32)  # a third: no ties
    values[s - 1] = np.nan  # NaN ranks lowest: every item ties
    available = rng.random((s, n)) < 0.8
    available[s - 2] = False  # nothing available: item 0
    keys = jax.random.split(jax.random.key(7), s)

    def act(eps_static):
        def one(key, v, a, eps):
            return _slates.epsilon_ranked_slate(key, v, a, 0.0 if eps_static else eps, 1)
        return jax.jit(jax.vmap(one, in_axes=(0, 0, 0, None)))

    eps0 = jnp.float32(0.0)
    for draw in range(3):  # three different key sets: different tie-breaks
        ks = jax.vmap(lambda k: jax.random.fold_in(k, draw))(keys)
        got = act(True)(ks, values, available, eps0)
        want = act(False)(ks, values, available, eps0)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
            np.testing.assert_array_equal(np.asarray(g), np.asarray(w))
    one = jax.jit(lambda k, v, a: _slates.epsilon_ranked_slate(k, v, a, 0.0, 1))
    pick, info = one(keys[s - 1], values[s - 1], available[s - 1])
    want_pick, want_info = act(False)(keys, values, available, eps0)
    assert int(pick) == int(want_pick[s - 1])
    assert float(info.propensity) == float(want_info.propensity[s - 1])
