"""User demographics of MovieLens-100K, aligned with the remapped user ids of a ``SequenceData``.

    users = load_ml100k_users(seqs)          # seqs = rec_jax.data.load("ml-100k")
    users.gender[u], users.age_band[u]       # for remapped user u = 0..U-1

Reads ``ml-100k.user`` (RecBole atomic format: a tab-separated header
``user_id:token  age:token  gender:token  occupation:token  zip_code:token``) or the
official ``u.user`` (``id|age|gender|occupation|zip``, no header), whichever the
fetched folder holds. Users of ``seqs`` are numbered by sorted raw id
(``seqs.raw_user_ids``); the rows are matched through that raw id.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from rec_jax.data.errors import DataError

GENDERS = ("M", "F")
# Age bands in years, [low, high): the MovieLens-1M bands.
AGE_BANDS = ((0, 18), (18, 25), (25, 35), (35, 45), (45, 50), (50, 56), (56, 200))
AGE_BAND_NAMES = tuple(f"{lo}-{hi - 1}" if hi < 200 else f"{lo}+" for lo, hi in AGE_BANDS)


@dataclasses.dataclass(frozen=True)
class UserDemographics:
    """Per remapped user u = 0..U-1."""

    age: np.ndarray  # i32[U] age in years
    gender: np.ndarray  # i32[U] index into GENDERS (0 = M, 1 = F)
    age_band: np.ndarray  # i32[U] index into AGE_BANDS
    occupation: np.ndarray  # object[U] occupation names


def age_band(age: np.ndarray) -> np.ndarray:
    """i32[...]: the index into AGE_BANDS of each age."""
    lows = np.array([lo for lo, _ in AGE_BANDS[1:]])
    return np.searchsorted(lows, np.asarray(age), side="right").astype(np.int32)


def read_user_file(path: str | Path) -> dict[int, tuple[int, str, str]]:
    """{raw user id: (age, gender, occupation)} from ``ml-100k.user`` or ``u.user``."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: user file not found")
    lines = path.read_text(encoding="latin-1").splitlines()
    if not lines:
        raise DataError(f"{path}: empty user file")
    if "user_id:" in lines[0]:  # RecBole atomic: a header names the columns
        header = [h.split(":")[0] for h in lines[0].split("\t")]
        try:
            cols = [header.index(name) for name in ("user_id", "age", "gender", "occupation")]
        except ValueError:
            raise DataError(f"{path}: header {lines[0]!r} lacks one of user_id, age, gender, occupation") from None
        rows, delim, first = lines[1:], "\t", 2
    else:
        cols, rows, delim, first = [0, 1, 2, 3], lines, "|", 1
    out = {}
    for line_no, line in enumerate(rows, start=first):
        if not line.strip():
            continue
        fields = line.split(delim)
        try:
            uid, age, gender, occupation = (fields[c].strip() for c in cols)
        except IndexError:
            raise DataError(f"{path}:{line_no}: expected at least {max(cols) + 1} fields, got {len(fields)}") from None
        if gender not in GENDERS:
            raise DataError(f"{path}:{line_no}: field gender: expected M or F, got {gender!r}")
        try:
            out[int(uid)] = (int(age), gender, occupation)
        except ValueError:
            raise DataError(f"{path}:{line_no}: fields user_id and age: expected integers, got {uid!r}, {age!r}") from None
    return out


def user_demographics(records: dict[int, tuple[int, str, str]], raw_user_ids: np.ndarray,
                      source: str = "user file") -> UserDemographics:
    """Align ``records`` (from :func:`read_user_file`) with remapped users (``seqs.raw_user_ids``)."""
    raw = np.asarray(raw_user_ids, np.int64)
    missing = [int(r) for r in raw if int(r) not in records]
    if missing:
        raise DataError(f"{source}: no demographics for raw user ids {missing[:5]} ({len(missing)} missing)")
    age = np.array([records[int(r)][0] for r in raw], np.int32)
    gender = np.array([GENDERS.index(records[int(r)][1]) for r in raw], np.int32)
    occupation = np.array([records[int(r)][2] for r in raw], object)
    return UserDemographics(age=age, gender=gender, age_band=age_band(age), occupation=occupation)


def load_ml100k_users(seqs) -> UserDemographics:
    """Demographics of the users of ``seqs`` (ML-100K sequences), fetching the dataset if needed."""
    from rec_jax.data.fetch import fetch

    folder = fetch("ml-100k")
    for name in ("ml-100k.user", "u.user"):
        if (folder / name).is_file():
            return user_demographics(read_user_file(folder / name), seqs.raw_user_ids, str(folder / name))
    raise DataError(f"{folder}: expected ml-100k.user or u.user with the user demographics")
