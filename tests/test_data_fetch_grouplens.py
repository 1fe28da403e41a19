"""``fetch ml-1m|ml-20m``: small zips built here, served over HTTP on 127.0.0.1 through the same
download function; corrupt and truncated archives leave nothing in the cache."""
import dataclasses
import hashlib
import http.server
import importlib
import io
import json
import threading
import zipfile

import numpy as np
import pytest

from rec_jax.data import DataError, data_record, fetch, load_log
from rec_jax.data.__main__ import main

F = importlib.import_module("rec_jax.data.fetch")

ROWS = [(1, 1193, 5, 978300760), (1, 661, 3, 978302109), (2, 1193, 4, 978298413), (2, 3408, 4, 978300275)]
RATINGS = "".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in ROWS)


def _zip_bytes(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


GOOD = _zip_bytes({"ml-1m/ratings.dat": RATINGS, "ml-1m/movies.dat": "1193::x::Drama\n",
                   "ml-1m/README": "not extracted"})


class _Server:
    """Serves ``routes[path] = (body, content_length)``; a length above len(body) is a cut transfer."""

    def __init__(self):
        self.routes = {}
        routes = self.routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path not in routes:
                    self.send_error(404)
                    return
                body, length = routes[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(length))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "cache"
    monkeypatch.setenv("REC_JAX_DATA", str(h))
    return h


def _serve_ml1m(monkeypatch, server, body, length=None, md5="pinned", sidecar=None):
    """Point ml-1m at ``server``; ``md5``: "pinned" (GOOD's MD5 pinned) or None (read ``<url>.md5``)."""
    server.routes["/ml-1m.zip"] = (body, len(body) if length is None else length)
    if sidecar is not None:
        line = f"MD5 (ml-1m.zip) = {sidecar}\n".encode()
        server.routes["/ml-1m.zip.md5"] = (line, len(line))
    ds = dataclasses.replace(F.DATASETS["ml-1m"], official_url=f"{server.url}/ml-1m.zip",
                             archive_md5=hashlib.md5(GOOD).hexdigest() if md5 == "pinned" else None)
    monkeypatch.setitem(F.DATASETS, "ml-1m", ds)


def test_fetch_ml1m_checks_md5_records_sha256_and_loads(home, server, monkeypatch):
    _serve_ml1m(monkeypatch, server, GOOD)
    folder = fetch("ml-1m")
    assert sorted(p.name for p in folder.iterdir()) == ["SOURCE.json", "movies.dat", "ratings.dat"]
    assert sorted(p.name for p in home.iterdir()) == ["ml-1m"]  # no staging leftovers
    source = json.loads((folder / "SOURCE.json").read_text())
    assert source["sha256"] == hashlib.sha256(GOOD).hexdigest() and source["bytes"] == len(GOOD)
    assert source["files"]["ratings.dat"] == hashlib.sha256(RATINGS.encode()).hexdigest()
    inter = load_log("ml-1m")  # UserID::MovieID::Rating::Timestamp
    u, i, r, t = (np.array(c) for c in zip(*ROWS))
    np.testing.assert_array_equal(inter.user, u)
    np.testing.assert_array_equal(inter.item, i)
    np.testing.assert_array_equal(inter.timestamp, t)
    np.testing.assert_allclose(inter.rating, r)
    record = data_record("ml-1m")
    assert record["archive_sha256"] == hashlib.sha256(GOOD).hexdigest()
    assert record["archive_md5"] == hashlib.md5(GOOD).hexdigest()
    server.routes.clear()  # cached: no second download
    assert fetch("ml-1m") == folder


def test_md5_from_the_sidecar_when_not_pinned(home, server, monkeypatch):
    _serve_ml1m(monkeypatch, server, GOOD, md5=None, sidecar=hashlib.md5(GOOD).hexdigest())
    folder = fetch("ml-1m")
    assert json.loads((folder / "SOURCE.json").read_text())["md5_source"].endswith("/ml-1m.zip.md5")


def _fails(home, expected):
    with pytest.raises(DataError) as info:
        fetch("ml-1m")
    msg = str(info.value)
    assert "\n" not in msg and "ml-1m.zip" in msg, msg
    for s in expected:
        assert s in msg, (s, msg)
    assert not home.exists() or list(home.iterdir()) == []  # not even a hidden partial folder
    return msg


def test_corrupt_archive_md5_mismatch(home, server, monkeypatch):
    corrupt = bytearray(GOOD)
    corrupt[40] ^= 0xFF
    _serve_ml1m(monkeypatch, server, bytes(corrupt))
    _fails(home, [f"MD5 {hashlib.md5(bytes(corrupt)).hexdigest()}", f"expected {hashlib.md5(GOOD).hexdigest()}"])


def test_truncated_transfer(home, server, monkeypatch):
    _serve_ml1m(monkeypatch, server, GOOD[: len(GOOD) // 2], length=len(GOOD))
    _fails(home, ["truncated", f"got {len(GOOD) // 2} bytes", f"expected {len(GOOD)}"])


def test_truncated_archive_with_a_matching_sidecar(home, server, monkeypatch):
    """A cut archive whose published MD5 matches it still fails, at the zip check, before any file lands."""
    cut = GOOD[: len(GOOD) - 30]
    _serve_ml1m(monkeypatch, server, cut, md5=None, sidecar=hashlib.md5(cut).hexdigest())
    _fails(home, ["not a complete zip archive"])


def test_cli_fetch_error_one_line_nonzero(home, server, monkeypatch, capsys):
    _serve_ml1m(monkeypatch, server, GOOD[:100])
    assert main(["fetch", "ml-1m"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "ml-1m.zip" in err
    assert list(home.iterdir()) == []


def test_download_takes_file_urls_and_hashes(tmp_path):
    from rec_jax.data.download import download

    src = tmp_path / "a.zip"
    src.write_bytes(GOOD)
    got = download(src.as_uri(), tmp_path / "b.zip")
    assert (got.num_bytes, got.md5, got.sha256) == (len(GOOD), hashlib.md5(GOOD).hexdigest(),
                                                    hashlib.sha256(GOOD).hexdigest())
    assert (tmp_path / "b.zip").read_bytes() == GOOD


def test_data_record_of_a_path(tmp_path):
    p = tmp_path / "log.txt"
    p.write_text("1 2\n1 3\n")
    rec = data_record(str(p))
    assert rec["sha256"] == hashlib.sha256(b"1 2\n1 3\n").hexdigest() and rec["bytes"] == 8


@pytest.mark.slow  # ~10 s: a one-epoch training run (CI's second step runs it)
def test_training_run_records_the_data_sha256(tmp_path):
    """A run's config.json names the file it read and its SHA-256 (hashed here from the bytes)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from experiments.train_sequential import main as train

    rng = np.random.default_rng(0)
    log = tmp_path / "log.txt"
    log.write_text("".join(f"{u} {i}\n" for u in range(1, 41) for i in rng.choice(np.arange(1, 31), 8, replace=False)))
    out = tmp_path / "run"
    train(["--preset", "tiny-sasrec", "--data", str(log), "--filter", "sasrec", "--out", str(out),
           "--epochs", "1", "--no-progress"])
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["filter"] == "sasrec"
    assert config["data"]["sha256"] == hashlib.sha256(log.read_bytes()).hexdigest()
    assert config["data"]["file"] == str(log.resolve())
