"""fast_ids equals np.unique / np.lexsort exactly, on the fast paths and the fallbacks."""
import numpy as np
import pytest

from rec_jax.data.fast_ids import argsort_by_user_time, sorted_unique, unique_inverse


@pytest.mark.parametrize("x", [
    np.random.default_rng(0).integers(0, 50, 1000),            # dense ids: the presence table
    np.random.default_rng(1).integers(-7, 9, 300),              # negative ids, shifted
    np.random.default_rng(2).integers(0, 2**40, 500),           # a huge range: np.unique's fallback
    np.array([5]), np.zeros(0, np.int64), np.array([3, 3, 3]),
    np.random.default_rng(3).integers(0, 9, 100).astype(np.int32),
])
def test_unique_inverse_and_sorted_unique_equal_numpy(x):
    values, inverse = np.unique(x, return_inverse=True)
    got_values, got_inverse = unique_inverse(x)
    np.testing.assert_array_equal(got_values, values)
    assert got_values.dtype == values.dtype
    np.testing.assert_array_equal(got_inverse, inverse)
    np.testing.assert_array_equal(sorted_unique(x), np.unique(x))


@pytest.mark.parametrize("span", [10, 2**31, 2**62])  # packed key, and the lexsort when it cannot pack
def test_argsort_by_user_time_equals_lexsort(span):
    rng = np.random.default_rng(4)
    user = rng.integers(0, 30, 2000)
    timestamp = rng.integers(0, 4, 2000) * (span // 4) + rng.integers(0, 2, 2000)  # heavy ties
    want = np.lexsort((np.arange(2000), timestamp, user))
    np.testing.assert_array_equal(argsort_by_user_time(user, timestamp), want)
