"""experiments/bench_device.py: importable on a bare device image (no tyro, tensorboardX,
Orbax, tqdm, matplotlib, pandas), and its JSON file at tiny sizes on CPU."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKED = ("tyro", "tensorboardX", "orbax", "orbax.checkpoint", "tqdm", "matplotlib", "pandas")
# every module bench_device imports, at the top or inside its sections
DEPENDENCIES = ("experiments.bench_device", "experiments.bench_engine", "rec_jax.roofline", "rec_jax.online",
                "rec_jax.online.large_model", "rec_jax.policies.model_backed", "rec_jax.sim.recsys",
                "rec_jax.sim.ground_truth", "rec_jax.models", "rec_jax.models.sasrec", "rec_jax.data.preprocess",
                "rec_jax.train.config", "rec_jax.train.pipeline", "rec_jax.train.trainer", "rec_jax.train.evaluate",
                "rec_jax.train.step_cost", "rec_jax.policies", "rec_jax.sim")


def _run(code_or_args, timeout=300):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, *code_or_args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_dependencies_import_without_the_projects_extras():
    code = (f"import sys\nfor m in {BLOCKED!r}: sys.modules[m] = None\n"
            f"import importlib\nfor m in {DEPENDENCIES!r}: importlib.import_module(m)\n"
            "import experiments.bench_device as b\nassert b.cli(['--help']) == 0\n"
            "from rec_jax.sim import make_env\nmake_env('linear', num_items=5, dim=3)\nprint('ok')")
    proc = _run(["-c", code], timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr


@pytest.mark.slow  # ~7 s: a subprocess that imports JAX and compiles the eval section
def test_eval_section_writes_the_json_file(tmp_path):
    out = tmp_path / "b.json"
    proc = _run(["experiments/bench_device.py", "--tiny", "--sections", "eval", "--out", str(out)])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["sizes"] == "tiny" and data["peak_gflop_s"] > 0 and data["cpu_model"]
    (row,) = data["sections"]["eval"]
    assert row["users_per_s"] > 0 and 0 < row["roofline_fraction"]


def test_bad_section_is_a_usage_error():
    proc = _run(["experiments/bench_device.py", "--sections", "engine,nope"], timeout=60)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --sections: unknown nope; expected a subset of engine, model_engine, train, eval"]


@pytest.mark.slow
def test_every_section_at_tiny_sizes(tmp_path):
    out = tmp_path / "b.json"
    proc = _run(["experiments/bench_device.py", "--tiny", "--out", str(out)], timeout=600)
    assert proc.returncode == 0, proc.stderr
    sections = json.loads(out.read_text())["sections"]
    assert set(sections) == {"engine", "model_engine", "train", "eval"}
    for name, rows in sections.items():
        assert isinstance(rows, list), (name, rows)
        for row in rows:
            assert row["roofline_fraction"] > 0 and row["flops_per_step"] > 0, (name, row)
    assert sections["engine"][0]["flops_source"].startswith("analytic minimal LinUCB")
