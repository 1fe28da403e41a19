"""The decision log as Parquet, one row per shown slot, for off-policy evaluation.

    python -m rec_jax.serve.http.export runs/ml100k/decisions.db log.parquet
    log = read_served_log("log.parquet")       # dict of NumPy columns
    rec_jax.ope.validate_log(log, pi_e=..., num_actions=N + 1)

Columns: ``decision_id`` (str), ``user`` (str), ``created`` (f64 Unix s),
``position`` (i32 slot), ``action`` (i32 item id), ``pscore`` (f32: the slot's
conditional propensity given the picks before it), ``slate_pscore`` (f32: the
product over slots 0..position, i.e. the probability of the slate's prefix),
``propensity_kind`` (i8 code of ``rec_jax.policies.base.PROPENSITY_KINDS``),
``reward`` (f32; NaN when no reward came), ``has_reward`` (bool), ``policy``,
``greedy_action`` (i32: the item the greedy policy would have shown at this slot,
-1 if not logged), ``policy_version``, ``model_version`` (str), ``context`` (list<i32>: the user's
history the slate was computed from). Only decisions whose reward was joined are
usable for estimation; ``read_served_log(..., rewarded_only=True)`` keeps those.

The file is written to a temporary name beside the target and renamed, so a
failed export leaves nothing half-written.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import orjson

from rec_jax.policies.base import PROPENSITY_KINDS
from rec_jax.serve.http.decision_log import connect

COLUMNS = ("decision_id", "user", "created", "position", "action", "pscore", "slate_pscore", "propensity_kind",
           "reward", "has_reward", "greedy_action", "policy", "policy_version", "model_version", "context")


def served_log_table(db: str | Path):
    """The log as a ``pyarrow.Table`` (see module docstring)."""
    import pyarrow as pa

    if not Path(db).exists():
        raise FileNotFoundError(f"{db}: no decision log there")
    con = connect(db, readonly=True)
    try:
        rows = con.execute(
            "SELECT d.id, d.user, d.created, d.slate, d.propensities, d.propensity_kind, d.policy, d.policy_params, "
            "d.model_version, d.context, r.rewards, d.greedy FROM decisions d LEFT JOIN rewards r ON r.decision_id = d.id "
            "ORDER BY d.created, d.id").fetchall()
    finally:
        con.close()
    cols: dict[str, list] = {name: [] for name in COLUMNS}
    for did, user, created, slate, props, kind, policy, pparams, version, context, rewards, greedy in rows:
        slate, props, context = orjson.loads(slate), orjson.loads(props), orjson.loads(context)
        rewards = orjson.loads(rewards) if rewards is not None else None
        greedy = orjson.loads(greedy) if greedy is not None else [-1] * len(slate)
        version_text = orjson.loads(pparams).get("version", "")
        prefix = np.cumprod(np.asarray(props, np.float64))
        for k, (item, p) in enumerate(zip(slate, props)):
            cols["decision_id"].append(did)
            cols["user"].append(user)
            cols["created"].append(created)
            cols["position"].append(k)
            cols["action"].append(item)
            cols["pscore"].append(p)
            cols["slate_pscore"].append(float(prefix[k]))
            cols["propensity_kind"].append(PROPENSITY_KINDS.index(kind))
            cols["reward"].append(float("nan") if rewards is None else rewards[k])
            cols["has_reward"].append(rewards is not None)
            cols["greedy_action"].append(greedy[k])
            cols["policy"].append(policy)
            cols["policy_version"].append(version_text)
            cols["model_version"].append(version)
            cols["context"].append(context)
    types = {"created": pa.float64(), "position": pa.int32(), "action": pa.int32(), "pscore": pa.float32(),
             "slate_pscore": pa.float32(), "propensity_kind": pa.int8(), "reward": pa.float32(),
             "has_reward": pa.bool_(), "greedy_action": pa.int32(), "context": pa.list_(pa.int32())}
    return pa.table({name: pa.array(values, type=types.get(name, pa.string())) for name, values in cols.items()})


def export_parquet(db: str | Path, out: str | Path) -> int:
    """Write the log to ``out`` (atomically); returns the number of rows (slots)."""
    import pyarrow.parquet as pq

    table = served_log_table(db)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return table.num_rows


def read_served_log(path: str | Path, *, rewarded_only: bool = True) -> dict[str, np.ndarray]:
    """A Parquet export (or the SQLite log itself) as NumPy columns, the fields
    ``rec_jax.ope.validate_log`` reads (``reward``, ``action``, ``pscore``,
    ``propensity_kind``) among them."""
    path = Path(path)
    if path.suffix in (".db", ".sqlite", ".sqlite3"):
        table = served_log_table(path)
    else:
        import pyarrow.parquet as pq

        if not path.exists():
            raise FileNotFoundError(f"{path}: no served log there")
        table = pq.read_table(path)
        missing = [c for c in ("action", "pscore", "reward", "has_reward", "propensity_kind", "position")
                   if c not in table.column_names]
        if missing:
            raise ValueError(f"{path}: not a rec_jax served log (missing columns {', '.join(missing)}; "
                             f"expected {', '.join(COLUMNS)})")
    out = {}
    for name in table.column_names:
        column = table.column(name)
        out[name] = np.asarray(column.to_pylist(), dtype=object) if name == "context" else column.to_numpy()
    if rewarded_only:
        keep = out["has_reward"]
        out = {k: v[keep] for k, v in out.items()}
    return out


def cli(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m rec_jax.serve.http.export DB OUT.parquet", file=sys.stderr)
        return 2
    try:
        rows = export_parquet(argv[0], argv[1])
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"{argv[1]}: {rows} rows (one per shown slot)")
    return 0


if __name__ == "__main__":
    sys.exit(cli())
