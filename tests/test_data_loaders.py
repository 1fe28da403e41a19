"""Loaders on tiny generated files: values against the written rows, errors located."""
import numpy as np
import pytest

from rec_jax.data import DataError, load_interactions

ROWS = [(3, 10, 4.0, 100), (1, 7, 2.5, 50), (3, 7, 1.0, 100), (2, 10, 5.0, 20)]


def _check(inter, rows, with_rating=True):
    u, i, r, t = (np.array(c) for c in zip(*rows))
    np.testing.assert_array_equal(inter.user, u)
    np.testing.assert_array_equal(inter.item, i)
    np.testing.assert_array_equal(inter.timestamp, t)
    assert inter.user.dtype == np.int64 and inter.timestamp.dtype == np.int64
    if with_rating:
        np.testing.assert_allclose(inter.rating, r)
        assert inter.rating.dtype == np.float32
    else:
        assert inter.rating is None


def test_udata(tmp_path):
    p = tmp_path / "u.data"
    p.write_text("".join(f"{u}\t{i}\t{r:g}\t{t}\n" for u, i, r, t in ROWS))
    _check(load_interactions(p), ROWS)


def test_ratings_dat(tmp_path):
    p = tmp_path / "ratings.dat"
    p.write_text("".join(f"{u}::{i}::{r:g}::{t}\n" for u, i, r, t in ROWS))
    _check(load_interactions(p), ROWS)


def test_inter_columns_found_by_header_name(tmp_path):
    p = tmp_path / "x.inter"
    header = "timestamp:float\titem_id:token\textra:token_seq\tuser_id:token\trating:float\n"
    p.write_text(header + "".join(f"{t}\t{i}\tsome words\t{u}\t{r:g}\n" for u, i, r, t in ROWS))
    _check(load_interactions(p), ROWS)


def test_inter_without_rating_and_timestamp(tmp_path):
    p = tmp_path / "x.inter"
    p.write_text("user_id:token\titem_id:token\n" + "".join(f"{u}\t{i}\n" for u, i, _, _ in ROWS))
    inter = load_interactions(p)
    np.testing.assert_array_equal(inter.timestamp, np.zeros(len(ROWS)))
    assert inter.rating is None


@pytest.mark.parametrize("with_rating", [True, False])
def test_csv_any_column_order(tmp_path, with_rating):
    p = tmp_path / "ratings.csv"
    if with_rating:
        text = "rating,timestamp,user,item\n" + "".join(f"{r:g},{t},{u},{i}\n" for u, i, r, t in ROWS)
    else:
        text = "user,item,timestamp\n" + "".join(f"{u},{i},{t}\n" for u, i, _, t in ROWS)
    p.write_text(text + "\n")  # a trailing blank line is ignored
    _check(load_interactions(p), ROWS, with_rating)


BAD = [
    # (file name, content, expected substrings of the message)
    ("ratings.csv", "user,item,timestamp\n1,2,3\n1,2,abc\n", ["line 3", "'timestamp'", "'abc'", "an integer"]),
    ("ratings.csv", "user,item,timestamp\n1,2,3\n\n4,x,5\n", ["line 4", "'item'", "'x'", "an integer"]),
    ("ratings.csv", "user,item,timestamp\n1,2,3\n1,2\n", ["line 3", "expected 3 fields", "got 2"]),
    ("ratings.csv", "user,item,timestamp,rating\n1,2,3,good\n", ["line 2", "'rating'", "'good'", "a number"]),
    ("ratings.csv", "user,item\n1,2\n", ["line 1", "'timestamp'"]),
    ("u.data", "1\t2\t3\t4\n1.5\t2\t3\t4\n", ["line 2", "'user'", "'1.5'"]),
    ("u.data", "1\t2\t3\t4\n1\t2\t3\n", ["line 2", "expected 4 fields", "got 3"]),
    ("u.data", "1\t2\t3\t4\n1\t2\t3\t4\t5\n", ["line 2", "expected 4 fields", "got 5"]),  # the C reader ignores it
    ("ratings.dat", "1::2::3::4\n5::6::7::8::9\n", ["line 2", "expected 4 fields", "got 5"]),
    ("ml-1m.txt", "1 2\n1 3\n2 x\n", ["line 3", "'item'", "'x'", "an integer"]),
    ("ml-1m.txt", "1 2\n1 3 4\n", ["line 2", "expected 2 fields", "got 3"]),
    ("ratings.dat", "1::2::3::4\n5::6::7::8\n9::1::2::yesterday\n", ["line 3", "'timestamp'", "'yesterday'"]),
    ("x.inter", "user_id:token\titem_id:token\ttimestamp:float\n1\t2\t3.5\n", ["line 2", "'timestamp'", "'3.5'", "integer value"]),
    ("x.inter", "user_id:token\titem_id:token\n1\t2\nu7\t3\n", ["line 3", "'user_id'", "'u7'", "an integer"]),
    ("ratings.csv", "user_id,item_id,timestamp\n1,2,3\n1,,3\n", ["line 3", "'item_id'", "''"]),
    ("x.inter", "user:token\titem_id:token\n1\t2\n", ["line 1", "'user_id'"]),
    ("x.inter", "user_id:token\titem_id:token\n", ["no interactions"]),
    ("ratings.csv", "", ["empty"]),
    ("ratings.csv", "\n  \n", ["empty"]),
    ("ratings.xlsx", "1,2,3\n", ["unknown interaction file format"]),
]


@pytest.mark.parametrize("reader", ["arrow", "numpy"])
@pytest.mark.parametrize("name,content,expected", BAD)
def test_bad_input_one_located_error(tmp_path, monkeypatch, name, content, expected, reader):
    from rec_jax.data import loaders

    monkeypatch.setattr(loaders, "TEXT_READER", reader)
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(DataError) as info:
        load_interactions(p)
    msg = str(info.value)
    assert name in msg and "\n" not in msg
    for s in expected:
        assert s in msg, (s, msg)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file") as info:
        load_interactions(tmp_path / "nope.csv")
    assert "nope.csv" in str(info.value)


def test_data_error_is_value_error():
    assert issubclass(DataError, ValueError)


@pytest.mark.parametrize("reader", ["arrow", "numpy"])
@pytest.mark.parametrize("name", ["ratings.csv", "u.data", "ratings.dat", "x.inter"])
def test_clean_files_take_the_c_reader_and_match_the_line_parser(tmp_path, monkeypatch, name, reader):
    """A regular file is read by a C reader (Arrow's or NumPy's; NumPy's for ``::``) alone; its
    result equals the line-by-line parser's."""
    from rec_jax.data import loaders

    monkeypatch.setattr(loaders, "TEXT_READER", reader)
    rng = np.random.default_rng(0)
    rows = [(int(u), int(i), float(r) / 2, int(t)) for u, i, r, t in
            zip(rng.integers(1, 50, 300), rng.integers(1, 900, 300), rng.integers(1, 11, 300), rng.integers(0, 2**40, 300))]
    sep = {"ratings.csv": ",", "u.data": "\t", "ratings.dat": "::", "x.inter": "\t"}[name]
    header = {"ratings.csv": "user,item,rating,timestamp\n",
              "x.inter": "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"}.get(name, "")
    p = tmp_path / name
    p.write_text(header + "".join(sep.join(map(str, row)) + "\n" for row in rows))
    slow = loaders._parse
    monkeypatch.setattr(loaders, "_parse", lambda *a, **k: pytest.fail("took the line-by-line path"))
    fast = load_interactions(p)
    monkeypatch.setattr(loaders, "_parse", slow)
    monkeypatch.setattr(loaders, "_fast_parse", lambda *a, **k: None)
    monkeypatch.setattr(loaders, "arrow_text", lambda *a, **k: None)
    ref = load_interactions(p)
    for field in ("user", "item", "timestamp", "rating"):
        np.testing.assert_array_equal(getattr(fast, field), getattr(ref, field), err_msg=field)
    _check(fast, rows, True)


def test_user_item_txt_keeps_file_order_as_time(tmp_path):
    """SASRec's ``user item`` lines: each user's sequence is its lines in file order (ids not sorted)."""
    from rec_jax.data import build_sequences

    pairs = [(2, 30), (1, 20), (2, 10), (1, 50), (2, 20), (1, 10)]
    p = tmp_path / "ml-1m.txt"
    p.write_text("".join(f"{u} {i}\n" for u, i in pairs))
    inter = load_interactions(p)
    np.testing.assert_array_equal(inter.user, [u for u, _ in pairs])
    np.testing.assert_array_equal(inter.item, [i for _, i in pairs])
    seqs = build_sequences(inter)
    raw = seqs.raw_item_ids
    assert [list(raw[seqs.seq(u)]) for u in range(2)] == [[20, 50, 10], [30, 10, 20]]
