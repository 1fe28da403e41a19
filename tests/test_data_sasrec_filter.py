"""The SASRec authors' one-pass filter against a plain-Python rendering of their rule, on a
generated log whose counts sit around the threshold (where one pass and the iterated k-core part)."""
import numpy as np
import pytest

from rec_jax.data import DataError, Interactions, apply_filter, data_home, kcore_filter, load, sasrec_filter
from rec_jax.data.__main__ import main


def _log(seed=0, rows=700):
    """A log in shuffled file order: 80 users and 120 items with a few rows each, times with many
    ties. Seed 1 leaves a user with one row after the one-pass filter."""
    rng = np.random.default_rng(seed)
    user = rng.integers(1000, 1080, rows)
    item = rng.choice(np.arange(7, 7 + 120) * 3, rows)  # sparse raw ids, not 0..N-1
    time = rng.integers(0, 20, rows)  # ties everywhere: file order must break them
    return Interactions(user.astype(np.int64), item.astype(np.int64), time.astype(np.int64), None, "gen")


def _reference(inter, k=5):
    """DataProcessing.py's rule in plain Python: count on the raw log, one pass keeping rows whose
    user and item both have >= k rows, 1-based ids by first appearance among kept rows, each
    user's (time, item) list sorted by time with Python's stable sort."""
    rows = list(zip(inter.user.tolist(), inter.item.tolist(), inter.timestamp.tolist()))
    count_u, count_i = {}, {}
    for u, i, _ in rows:
        count_u[u] = count_u.get(u, 0) + 1
        count_i[i] = count_i.get(i, 0) + 1
    usermap, itemmap, seqs = {}, {}, {}
    for u, i, t in rows:
        if count_u[u] < k or count_i[i] < k:
            continue
        if u not in usermap:
            usermap[u] = len(usermap) + 1
            seqs[usermap[u]] = []
        if i not in itemmap:
            itemmap[i] = len(itemmap) + 1
        seqs[usermap[u]].append((t, itemmap[i]))
    for s in seqs.values():
        s.sort(key=lambda x: x[0])
    return usermap, itemmap, seqs


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sasrec_filter_matches_the_reference(seed):
    inter = _log(seed)
    usermap, itemmap, ref = _reference(inter)
    seqs = apply_filter(inter, "sasrec")
    assert (seqs.num_users, seqs.num_items) == (len(usermap), len(itemmap))
    assert seqs.num_interactions == sum(len(s) for s in ref.values())
    np.testing.assert_array_equal(seqs.raw_user_ids, list(usermap))  # dicts keep insertion = first-appearance order
    np.testing.assert_array_equal(seqs.raw_item_ids[1:], list(itemmap))
    for u in range(seqs.num_users):
        np.testing.assert_array_equal(seqs.seq(u), [i for _, i in ref[u + 1]])
        np.testing.assert_array_equal(seqs.timestamps[seqs.offsets[u]:seqs.offsets[u + 1]], [t for t, _ in ref[u + 1]])


def test_one_pass_is_not_the_iterated_core():
    """On this log one pass keeps users left with < 5 rows, which the iterated k-core drops."""
    inter = _log(0)
    one = sasrec_filter(inter)
    _, counts = np.unique(one.user, return_counts=True)
    assert counts.min() < 5
    iterated = kcore_filter(inter)
    assert len(iterated) < len(one)
    assert np.unique(iterated.user, return_counts=True)[1].min() >= 5


def test_kcore_numbering_is_unchanged():
    seqs = apply_filter(_log(0), "kcore")
    assert np.all(np.diff(seqs.raw_user_ids) > 0) and np.all(np.diff(seqs.raw_item_ids[1:]) > 0)


def test_unknown_filter_and_empty_result():
    with pytest.raises(DataError, match="expected one of kcore, sasrec"):
        apply_filter(_log(0), "iterated")
    with pytest.raises(DataError, match="no interactions left"):
        sasrec_filter(_log(0), min_user=10_000)


def test_filter_switch_on_a_user_file(tmp_path, capsys):
    """``stats PATH --filter sasrec`` on a SASRec-format file, and TrainConfig.filter through prepare()."""
    import dataclasses

    from rec_jax.train.config import get_preset
    from rec_jax.train.pipeline import prepare

    inter = _log(1)
    path = tmp_path / "log.txt"  # `user item`, file order = time order (timestamps all 0)
    order = np.lexsort((np.arange(len(inter)), inter.timestamp))
    path.write_text("".join(f"{u} {i}\n" for u, i in zip(inter.user[order], inter.item[order])))
    ordered = Interactions(inter.user[order], inter.item[order], np.zeros(len(inter), np.int64), None, "o")
    usermap, itemmap, ref = _reference(ordered)
    assert main(["stats", str(path), "--filter", "sasrec"]) == 0
    assert capsys.readouterr().out.split() == ["users:", str(len(usermap)), "items:", str(len(itemmap)),
                                               "interactions:", str(sum(map(len, ref.values())))]
    config = dataclasses.replace(get_preset("tiny-sasrec"), data=str(path), filter="sasrec")
    short = [u for u, s in ref.items() if len(s) < 3]  # no valid/test item: left out of the split
    assert len(short) == 1
    assert prepare(config).stats() == {"num_users": len(usermap) - 1, "num_items": len(itemmap),
                                       "num_interactions": sum(len(s) for u, s in ref.items() if u not in short),
                                       "num_users_dropped_short": 1}
    assert main(["stats", str(path), "--filter", "nope"]) == 1
    assert "filter='nope'" in capsys.readouterr().err


@pytest.mark.skipif(not (data_home() / "ml-1m" / "ratings.dat").is_file(),
                    reason="ML-1M not fetched (python -m rec_jax.data fetch ml-1m)")
def test_ml1m_counts_of_the_papers():
    seqs = load("ml-1m", filter="sasrec")
    assert (seqs.num_users, seqs.num_items, seqs.num_interactions) == (6040, 3416, 999611)


@pytest.mark.parametrize("name,data,model,loss", [
    ("ml1m-sasrec", "ml-1m", "sasrec", "ce"),
    ("ml1m-bert4rec", "ml-1m", "bert4rec", "ce"),
    ("ml20m-sasrec", "ml-20m", "sasrec", "ce_chunked"),
])
def test_paper_presets_carry_the_papers_protocol(name, data, model, loss):
    """The papers' setting, field by field: their one-pass filter, L = 200, width 64, 2 blocks, full CE
    (chunked at ML-20M's ~27k items: the same loss), and SASRec's dropout 0.2."""
    from rec_jax.train.config import get_preset

    c = get_preset(name)
    assert (c.data, c.model, c.loss, c.filter) == (data, model, loss, "sasrec")
    assert (c.max_len, c.dim, c.num_layers) == (200, 64, 2)
    if model == "sasrec":
        assert c.dropout == c.attn_dropout == 0.2
    else:
        assert c.mask_prob == 0.2
