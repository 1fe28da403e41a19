"""``python -m rec_jax.data``: stats/fetch output and one-line errors."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rec_jax.data import load
from rec_jax.data.__main__ import main


def test_stats_prints_counts(tmp_path, capsys):
    p = tmp_path / "r.csv"
    p.write_text("user,item,timestamp\n" + "".join(f"{u},{i},{u + i}\n" for u in range(4) for i in range(3)))
    assert main(["stats", str(p), "--min-user", "1", "--min-item", "1"]) == 0
    seqs = load(str(p), min_user=1, min_item=1)
    out = capsys.readouterr().out
    assert out.split() == ["users:", str(seqs.num_users), "items:", str(seqs.num_items),
                           "interactions:", str(seqs.num_interactions)]


@pytest.mark.parametrize("argv,expect", [
    (["stats", "BAD"], "line 3: field 'timestamp' is 'abc'"),
    (["stats", "MISSING"], "no such file"),
    (["fetch", "nonexistent-dataset"], "unknown dataset"),
])
def test_errors_one_line_nonzero(tmp_path, capsys, argv, expect):
    bad = tmp_path / "ratings.csv"
    bad.write_text("user,item,timestamp\n1,2,3\n1,2,abc\n")
    argv = [{"BAD": str(bad), "MISSING": str(tmp_path / "x.csv")}.get(a, a) for a in argv]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and expect in err


def test_cli_subprocess_exit_code(tmp_path):
    bad = tmp_path / "ratings.csv"
    bad.write_text("user,item,timestamp\n1,2,3\n1,2,abc\n")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(root)}
    proc = subprocess.run([sys.executable, "-m", "rec_jax.data", "stats", str(bad)],
                          capture_output=True, text=True, env=env, cwd=root, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [f"error: {bad} line 3: field 'timestamp' is 'abc', expected an integer"]
