"""Parquet, Arrow's CSV reader, reading by content, mixed formats: values against the rows
written, every error one line naming the file and where."""
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rec_jax.data import DataError, load_interactions

ROWS = [(3, 10, 4.0, 100), (1, 7, 2.5, 50), (3, 7, 1.0, 100), (2, 10, 5.0, 20)]
U, I, R, T = (list(c) for c in zip(*ROWS))


def _one_line_error(path, *expected):
    with pytest.raises(DataError) as info:
        load_interactions(path)
    msg = str(info.value)
    assert path.name in msg and "\n" not in msg, msg
    for s in expected:
        assert s in msg, (s, msg)
    return msg


def _same(inter, user, item, timestamp, rating=None):
    np.testing.assert_array_equal(inter.user, user)
    np.testing.assert_array_equal(inter.item, item)
    np.testing.assert_array_equal(inter.timestamp, timestamp)
    assert inter.user.dtype == inter.item.dtype == inter.timestamp.dtype == np.int64
    if rating is None:
        assert inter.rating is None
    else:
        np.testing.assert_allclose(inter.rating, rating)


def test_parquet_ml20m_names_any_order(tmp_path):
    p = tmp_path / "ratings.parquet"
    pq.write_table(pa.table({"timestamp": pa.array(T, pa.int32()), "movieId": pa.array(I, pa.uint16()),
                             "rating": R, "userId": pa.array(U, pa.int64())}), p)
    _same(load_interactions(p), U, I, T, R)


def test_parquet_string_ids_arrow_timestamps_and_no_rating(tmp_path):
    """String ids holding integers read as integers; an Arrow timestamp keeps its order (its unit's ticks)."""
    p = tmp_path / "log.pq"
    ts = pa.array([t * 1_000_000 for t in T], pa.timestamp("us"))
    pq.write_table(pa.table({"user_id": [str(u) for u in U], "item_id": [f" {i}" for i in I], "timestamp": ts}), p)
    _same(load_interactions(p), U, I, [t * 1_000_000 for t in T])


def test_parquet_without_timestamp_keeps_file_order(tmp_path):
    p = tmp_path / "pairs.parquet"
    pq.write_table(pa.table({"user": U, "item": I}), p)
    _same(load_interactions(p), U, I, [0] * len(U))


def test_parquet_magic_wins_over_a_text_name(tmp_path):
    p = tmp_path / "ratings.csv"
    pq.write_table(pa.table({"user": U, "item": I, "timestamp": T}), p)
    _same(load_interactions(p), U, I, T)


@pytest.mark.parametrize("columns,expected", [
    ({"uid": U, "item": I}, ["['uid', 'item']", "lack user", "expected user"]),
    ({"user": U, "movie": I}, ["['user', 'movie']", "lack item"]),
])
def test_parquet_missing_columns(tmp_path, columns, expected):
    p = tmp_path / "x.parquet"
    pq.write_table(pa.table(columns), p)
    _one_line_error(p, *expected)


@pytest.mark.parametrize("user,expected", [
    ([1, 2, 2.5, 4], ["row 3", "'user'", "2.5", "integer"]),
    (["1", "2", "3", "u7"], ["row 4", "'user'", "'u7'", "an integer"]),
    ([1, None, 3, 4], ["row 2", "'user'", "null"]),
])
def test_parquet_bad_ids_name_the_row(tmp_path, user, expected):
    p = tmp_path / "x.parquet"
    pq.write_table(pa.table({"user": user, "item": I, "timestamp": T}), p)
    _one_line_error(p, *expected)


def test_text_named_parquet(tmp_path):
    p = tmp_path / "x.parquet"
    p.write_text("user,item,timestamp\n1,2,3\n")
    _one_line_error(p, "not a readable Parquet file")


@pytest.mark.parametrize("text,reader_result", [
    ("".join(f"{u}::{i}::{r:g}::{t}\n" for u, i, r, t in ROWS), "dat"),
    ("user,item,timestamp,rating\n" + "".join(f"{u},{i},{t},{r:g}\n" for u, i, r, t in ROWS), "csv"),
    ("".join(f"{u}\t{i}\t{r:g}\t{t}\n" for u, i, r, t in ROWS), "udata"),
    ("user_id:token\titem_id:token\ttimestamp:float\n" + "".join(f"{u}\t{i}\t{t}\n" for u, i, _, t in ROWS), "inter"),
    ("".join(f"{u} {i}\n" for u, i, _, _ in ROWS), "txt"),
])
def test_no_extension_read_by_content(tmp_path, text, reader_result):
    p = tmp_path / "ratings"
    p.write_text(text)
    inter = load_interactions(p)
    with_time = reader_result != "txt"
    with_rating = reader_result in ("dat", "csv", "udata")
    _same(inter, U, I, T if with_time else [0] * len(U), R if with_rating else None)


def test_no_extension_unknown_content(tmp_path):
    p = tmp_path / "ratings"
    p.write_text("1;2;3\n")
    _one_line_error(p, "line 1", "cannot tell the format")


MIXED = [
    # (name, content, expected): a file whose lines mix two formats
    ("ratings.csv", "user,item,timestamp\n1,2,3\n4\t5\t6\n", ["line 3", "expected 3 fields", "got 1"]),
    ("ml-1m.txt", "1 2\n1 3\n2::4::5::6\n", ["line 3", "expected 2 fields", "got 1"]),
    ("ratings.dat", "1::2::3::4\n1,2,3,4\n", ["line 2", "expected 4 fields", "got 1"]),
    ("u.data", "1\t2\t3\t4\n1 2 3 4\n", ["line 2", "expected 4 fields", "got 1"]),
]


@pytest.mark.parametrize("name,content,expected", MIXED)
def test_mixed_formats_one_located_error(tmp_path, name, content, expected):
    p = tmp_path / name
    p.write_text(content)
    _one_line_error(p, *expected)


def test_arrow_reader_declines_rather_than_misreads(tmp_path):
    """Values Arrow parses differently from the line parser (spaces, '+', quotes) go to the line parser."""
    from rec_jax.data import columnar, loaders

    p = tmp_path / "ratings.csv"
    p.write_text('user,item,timestamp\n 1,+2,3\n"4",5,6\n')
    cols = [loaders._Column(f, j, "int") for j, f in enumerate(("user", "item", "timestamp"))]
    assert columnar.arrow_text(p, 1, ",", 3, cols) is None
    _one_line_error(p, "line 3", "'user'", "'\"4\"'")


def test_bad_data_via_cli_exits_nonzero_and_writes_nothing(tmp_path):
    """``train_sequential.py --data BAD``: one error line, exit 2, no run folder."""
    bad = tmp_path / "log.txt"
    bad.write_text("1 2\n1 x\n")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "experiments/train_sequential.py", "--preset", "tiny-sasrec",
                           "--data", str(bad), "--out", str(out), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "log.txt line 2" in lines[0] and "'item'" in lines[0], proc.stderr
    assert not out.exists() and [q.name for q in tmp_path.iterdir()] == ["log.txt"]


def _bad_parquet(path):
    pq.write_table(pa.table({"uid": U, "item": I}), path)


@pytest.mark.parametrize("name,write,expected", [
    ("mixed.csv", lambda p: p.write_text("user,item,timestamp\n1,2,3\n4\t5\t6\n"), ["line 3", "expected 3 fields"]),
    ("ids.csv", lambda p: p.write_text("user,item,timestamp\n1,2,3\nu4,5,6\n"), ["line 3", "'user'", "'u4'"]),
    ("cols.parquet", _bad_parquet, ["lack user"]),
])
def test_bad_data_in_process_cli_one_line_exit_2_no_run_folder(tmp_path, capsys, name, write, expected):
    """Each kind of bad file through ``train_sequential``'s CLI (in process, so no new interpreter):
    one stderr line naming the file and what was expected, exit 2, nothing written."""
    import importlib

    train_sequential = importlib.import_module("experiments.train_sequential")
    write(tmp_path / name)
    out = tmp_path / "run"
    code = train_sequential.cli(["--preset", "tiny-sasrec", "--data", str(tmp_path / name), "--out", str(out),
                                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and name in err[0], err
    for s in expected:
        assert s in err[0], (s, err)
    assert not out.exists() and [q.name for q in tmp_path.iterdir()] == [name]
