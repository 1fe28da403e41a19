"""Open Bandit Dataset reader on a tiny generated copy (and the cached one when present)."""
import numpy as np
import pytest

from rec_jax.data import DataError, is_fetched, load_bts_prior, load_obd

NUM_ACTIONS = 4


def _write_obd(root, bad_line=None):
    rng = np.random.default_rng(0)
    d = root / "random" / "all"
    d.mkdir(parents=True)
    n = 6
    action = rng.integers(0, NUM_ACTIONS, n)
    position = rng.integers(1, 4, n)
    click = rng.integers(0, 2, n)
    aff = rng.random((n, NUM_ACTIONS)).round(3)
    ufeat = [["a", "b", "a", "c", "b", "a"], ["x", "x", "y", "y", "x", "y"]]
    header = (",timestamp,item_id,position,click,propensity_score,user_feature_0,user_feature_1,"
              + ",".join(f"user-item_affinity_{j}" for j in range(NUM_ACTIONS)))
    lines = [header]
    for k in range(n):
        lines.append(f"{k},2019-11-24 00:00:{10 + k:02d}.500000+00:00,{action[k]},{position[k]},{click[k]},0.25,"
                     f"{ufeat[0][k]},{ufeat[1][k]}," + ",".join(str(v) for v in aff[k]))
    if bad_line is not None:
        lines[bad_line] = lines[bad_line].replace(",0.25,", ",oops,")
    (d / "all.csv").write_text("\n".join(lines) + "\n")
    items = [",item_id,item_feature_0,item_feature_1"] + [f"{j},{j},{0.5 * j},{'pq'[j % 2]}" for j in range(NUM_ACTIONS)]
    (d / "item_context.csv").write_text("\n".join(items[:1] + items[1:][::-1]) + "\n")  # unsorted ids
    (root / "prior_bts.yaml").write_text(
        "all:\n  alpha:\n" + "".join(f"    - {a}.0\n" for a in range(1, NUM_ACTIONS + 1))
        + "  beta:\n" + "".join(f"    - {10 * b}.0\n" for b in range(1, NUM_ACTIONS + 1)) + "men:\n  alpha:\n    - 1.0\n  beta:\n    - 2.0\n")
    return action, position, click, aff, ufeat


def test_tiny_obd(tmp_path):
    action, position, click, aff, ufeat = _write_obd(tmp_path)
    log = load_obd("random", "all", folder=tmp_path)
    np.testing.assert_array_equal(log.action, action)
    np.testing.assert_array_equal(log.position, position - 1)
    np.testing.assert_array_equal(log.reward, click)
    np.testing.assert_allclose(log.pscore, 0.25)
    np.testing.assert_allclose(log.affinity, aff, rtol=1e-6)
    cats0 = sorted(set(ufeat[0]))
    np.testing.assert_array_equal(log.user_features[:, 0], [cats0.index(v) for v in ufeat[0]])
    assert log.context.shape == (6, 3 + 2) and np.all(log.context.sum(1) == 2)
    assert log.num_actions == NUM_ACTIONS and log.item_features.shape == (NUM_ACTIONS, 1 + 2)
    np.testing.assert_allclose(log.item_features[:, 0], 0.5 * np.arange(NUM_ACTIONS))  # re-sorted by item_id
    assert np.all(np.diff(log.timestamp) == 1_000_000)
    alpha, beta = load_bts_prior("all", folder=tmp_path)
    np.testing.assert_array_equal(alpha, np.arange(1, NUM_ACTIONS + 1))
    np.testing.assert_array_equal(beta, 10 * np.arange(1, NUM_ACTIONS + 1))


def test_tiny_obd_bad_field(tmp_path):
    _write_obd(tmp_path, bad_line=3)
    with pytest.raises(DataError, match=r"all\.csv line 4: field 'propensity_score' is 'oops'"):
        load_obd("random", "all", folder=tmp_path)


def test_bad_names(tmp_path):
    with pytest.raises(DataError, match="campaign"):
        load_obd("random", "kids", folder=tmp_path)


@pytest.mark.skipif(not is_fetched("obd"), reason="OBD not in cache ($REC_JAX_DATA); run python -m rec_jax.data fetch obd")
def test_cached_obd():
    log = load_obd("random", "all")
    assert len(log) == 10_000 and log.len_list == 3
    np.testing.assert_allclose(log.pscore, 1.0 / log.num_actions)  # uniform random behavior policy
    assert log.affinity.shape == (len(log), log.num_actions)
    alpha, beta = load_bts_prior("all")
    assert alpha.shape == beta.shape == (log.num_actions,)
