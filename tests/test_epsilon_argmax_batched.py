"""The K = 1 epsilon-argmax picks under vmap (shared or per-stream availability, ties,
exploration) equal a NumPy reference: the (j+1)-th item of the pool."""
import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.policies import _slates


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
        fn = jax.jit(jax.vmap(_slates._nth_in_pool_unless, in_axes=(0, 0, 0 if batched_mask else None, 0, 0, 0, 0)))
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
        top = np.asarray(jax.jit(jax.vmap(_slates._row_max))(jnp.asarray(v)))
        np.testing.assert_array_equal(top, v.max(axis=1))
        best = v == v.max(axis=1, keepdims=True)
        count, only = jax.jit(jax.vmap(_slates._count_and_only_index))(jnp.asarray(best))
        np.testing.assert_array_equal(np.asarray(count), best.sum(axis=1))
        single = best.sum(axis=1) == 1
        np.testing.assert_array_equal(np.asarray(only)[single], np.argmax(best, axis=1)[single])
