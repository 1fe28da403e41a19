"""The small Open Bandit Dataset (Saito et al., 2021, arXiv:2008.07146) as arrays.

Files come from ``fetch("obd")``: ``<behavior_policy>/<campaign>/<campaign>.csv``
(10,000 rounds each), ``item_context.csv`` beside it, and ``prior_bts.yaml``
(the Beta priors of the production Bernoulli-TS policy).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from rec_jax.data.errors import DataError

BEHAVIOR_POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")


@dataclass(frozen=True, eq=False)
class BanditLog:
    """Logged bandit feedback of one (behavior policy, campaign).

    timestamp: i64[n]         microseconds since the Unix epoch (UTC)
    action: i32[n]            item shown, 0..num_actions-1
    position: i32[n]          slot of the slate it was shown in, 0..len_list-1
    reward: f32[n]            click (0/1)
    pscore: f32[n]            behavior policy's propensity of (action, position)
    user_features: i32[n, 4]  the 4 hashed user features as category codes (sorted hash order)
    context: f32[n, D]        one-hot of ``user_features`` (all categories, none dropped)
    affinity: f32[n, num_actions]   user-item affinity columns of the file
    item_features: f32[num_actions, F]  item_feature_0 (numeric) then one-hot of features 1..3
    num_actions: int
    len_list: int             slate size (3 in OBD)
    source: str
    """

    timestamp: np.ndarray
    action: np.ndarray
    position: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    user_features: np.ndarray
    context: np.ndarray
    affinity: np.ndarray
    item_features: np.ndarray
    num_actions: int
    len_list: int
    source: str

    def __len__(self) -> int:
        return len(self.action)


def load_obd(behavior_policy: str = "random", campaign: str = "all", folder: str | Path | None = None) -> BanditLog:
    """Load one OBD log. ``folder`` is the dataset root (default: ``fetch("obd")``)."""
    if behavior_policy not in BEHAVIOR_POLICIES or campaign not in CAMPAIGNS:
        raise DataError(f"load_obd: behavior_policy={behavior_policy!r}, campaign={campaign!r}; "
                        f"expected one of {BEHAVIOR_POLICIES} and {CAMPAIGNS}")
    if folder is None:
        from rec_jax.data.fetch import fetch
        folder = fetch("obd")
    base = Path(folder) / behavior_policy / campaign
    path = base / f"{campaign}.csv"
    header, rows = _read_csv(path)
    col = {h: j for j, h in enumerate(header)}
    for need in ("timestamp", "item_id", "position", "click", "propensity_score", "user_feature_0"):
        if need not in col:
            raise DataError(f"{path} line 1: header has no '{need}' column")
    aff_cols = sorted((h for h in header if h.startswith("user-item_affinity_")), key=lambda h: int(h.rsplit("_", 1)[1]))
    numeric = _block(path, rows, col, ["item_id", "position", "click", "propensity_score"] + aff_cols, np.float64)
    ints = numeric[:, :2]
    if np.any(ints != np.round(ints)):
        raise DataError(f"{path}: item_id and position must be integers")
    action = ints[:, 0].astype(np.int32)
    position = ints[:, 1].astype(np.int32) - 1  # file positions are 1-based
    reward = numeric[:, 2].astype(np.float32)
    pscore = numeric[:, 3].astype(np.float32)
    affinity = numeric[:, 4:].astype(np.float32)
    split_rows = [r.split(",") for r in rows]
    ts = []
    for k, v in enumerate(r[col["timestamp"]] for r in split_rows):
        try:
            ts.append(int(datetime.fromisoformat(v).timestamp() * 1_000_000))
        except ValueError:
            raise DataError(f"{path} line {k + 2}: field 'timestamp' is {v!r}, expected an ISO date-time") from None
    ufeat_cols = sorted((h for h in header if h.startswith("user_feature_")), key=lambda h: int(h.rsplit("_", 1)[1]))
    codes, onehots = [], []
    for h in ufeat_cols:
        cats, code = np.unique(np.array([r[col[h]] for r in split_rows]), return_inverse=True)
        codes.append(code)
        onehots.append(np.eye(len(cats), dtype=np.float32)[code])
    item_features = _item_features(base / "item_context.csv")
    num_actions = len(item_features)
    if action.min() < 0 or action.max() >= num_actions:
        raise DataError(f"{path}: item_id outside 0..{num_actions - 1} (item_context.csv has {num_actions} items)")
    return BanditLog(
        timestamp=np.asarray(ts, np.int64), action=action, position=position, reward=reward, pscore=pscore,
        user_features=np.stack(codes, axis=1).astype(np.int32), context=np.concatenate(onehots, axis=1),
        affinity=affinity, item_features=item_features, num_actions=int(num_actions),
        len_list=int(position.max()) + 1, source=str(path))


def load_bts_prior(campaign: str = "all", folder: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Beta(alpha, beta) priors per item of the production Bernoulli TS: ``(f32[A], f32[A])``.

    Parses ``prior_bts.yaml`` (``campaign: {alpha: [...], beta: [...]}``) without a YAML library.
    """
    if campaign not in CAMPAIGNS:
        raise DataError(f"load_bts_prior: campaign={campaign!r}, expected one of {CAMPAIGNS}")
    if folder is None:
        from rec_jax.data.fetch import fetch
        folder = fetch("obd")
    path = Path(folder) / "prior_bts.yaml"
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    prior: dict[str, dict[str, list[float]]] = {}
    top = key = None
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        try:
            if indent == 0 and text.endswith(":"):
                top = text[:-1]
                prior[top] = {}
            elif text.endswith(":"):
                key = text[:-1]
                prior[top][key] = []
            elif text.startswith("- "):
                prior[top][key].append(float(text[2:]))
            else:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            raise DataError(f"{path} line {n}: cannot read {text!r}") from None
    if campaign not in prior or set(prior[campaign]) != {"alpha", "beta"}:
        raise DataError(f"{path}: no alpha/beta lists for campaign {campaign!r}")
    return np.asarray(prior[campaign]["alpha"], np.float32), np.asarray(prior[campaign]["beta"], np.float32)


def _read_csv(path: Path) -> tuple[list[str], list[str]]:
    """Header fields and the non-empty data lines of an unquoted CSV (field counts checked)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    if len(lines) < 2:
        raise DataError(f"{path}: file is empty")
    header = lines[0].split(",")
    rows = lines[1:]
    counts = np.fromiter((r.count(",") for r in rows), np.int64, count=len(rows))
    bad = np.flatnonzero(counts != len(header) - 1)
    if len(bad):
        raise DataError(f"{path} line {bad[0] + 2}: expected {len(header)} fields, got {counts[bad[0]] + 1}")
    return header, rows


def _column(rows: list[str], j: int) -> list[str]:
    return [r.split(",")[j] for r in rows]


def _block(path, rows, col, names, dtype) -> np.ndarray:
    """``dtype[n, len(names)]``: numeric columns parsed at once; a bad field is located."""
    try:
        out = np.loadtxt(rows, delimiter=",", usecols=[col[h] for h in names], dtype=np.float64,
                         comments=None, ndmin=2)
    except ValueError:
        for name in names:
            for k, v in enumerate(_column(rows, col[name])):
                try:
                    float(v)
                except ValueError:
                    raise DataError(f"{path} line {k + 2}: field '{name}' is {v!r}, expected a number") from None
        raise
    if np.issubdtype(dtype, np.integer):
        bad = np.argwhere(out != np.round(out))
        if len(bad):
            k, c = bad[0]
            raise DataError(f"{path} line {k + 2}: field '{names[c]}' is {out[k, c]!r}, expected an integer")
    return out.astype(dtype)


def _numbers(path, rows, col, name, dtype) -> np.ndarray:
    return _block(path, rows, col, [name], dtype)[:, 0]


def _item_features(path: Path) -> np.ndarray:
    header, rows = _read_csv(path)
    col = {h: j for j, h in enumerate(header)}
    if "item_id" not in col:
        raise DataError(f"{path} line 1: header has no 'item_id' column")
    ids = _numbers(path, rows, col, "item_id", np.int32)
    order = np.argsort(ids)
    if not np.array_equal(ids[order], np.arange(len(ids))):
        raise DataError(f"{path}: item_id must be 0..{len(ids) - 1}, each once")
    feats = [_numbers(path, rows, col, "item_feature_0", np.float32)[:, None]] if "item_feature_0" in col else []
    for h in sorted(h for h in header if h.startswith("item_feature_") and h != "item_feature_0"):
        cats, code = np.unique(np.array(_column(rows, col[h])), return_inverse=True)
        feats.append(np.eye(len(cats), dtype=np.float32)[code])
    return np.concatenate(feats, axis=1)[order]
