"""The notebooks in notebooks/ executed end to end (nbclient) at their tiny size, so they cannot rot.

Each notebook runs in a fresh kernel whose working directory is a tmp folder and whose
outputs go to ``REC_JAX_NOTEBOOK_OUT`` (a tmp folder): nothing is written into the
repository, and the stored notebooks are never rewritten. The numbers they leave behind
are checked against the same quantities computed here from their saved arrays.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need the dev extra (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need the dev extra (nbclient)")
pytest.importorskip("ipykernel", reason="notebook tests need the dev extra (ipykernel)")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CELL_TIMEOUT_S = 300  # per cell; the tiny sizes take seconds once XLA's cache is warm
# The tiny sizes are compile-bound (a cold run spends most of its time in XLA:CPU's LLVM
# passes); unoptimised backend code compiles about 3x faster and the tiny programs run fast anyway.
KERNEL_XLA_FLAGS = "--xla_backend_optimization_level=0"


def execute(name: str, tmp_path: Path, monkeypatch, **env: str):
    """Run notebooks/<name> in a fresh python kernel (this interpreter); returns the executed copy."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    # Our own kernel spec, so the kernel is this interpreter whatever `python` is on PATH
    # and whether or not `python -m ipykernel install` was ever run.
    spec_dir = tmp_path / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "rec_jax tests", "language": "python"}))
    km = KernelManager(kernel_name="python3",
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")]))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("XLA_FLAGS", " ".join(filter(None, [os.environ.get("XLA_FLAGS"), KERNEL_XLA_FLAGS])))
    # the kernel imports rec_jax (and experiments) from this checkout even when not pip-installed
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def stdout_of(nb) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.parametrize("name", ["quickstart.ipynb", "figures.ipynb"])
def test_notebooks_are_stored_without_outputs(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


@pytest.mark.slow  # executes the whole quickstart notebook (training, three policies, plots) in a kernel
def test_quickstart_tiny(tmp_path, monkeypatch):
    before = (NOTEBOOKS / "quickstart.ipynb").read_bytes()
    out = tmp_path / "out"
    nb = execute("quickstart.ipynb", tmp_path, monkeypatch, REC_JAX_NOTEBOOK_SIZE="tiny", REC_JAX_NOTEBOOK_OUT=str(out))
    assert (NOTEBOOKS / "quickstart.ipynb").read_bytes() == before
    assert not any((tmp_path / "cwd").iterdir())  # every write went to OUT

    metrics = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / "config.json").read_text())
    assert config["size"] == "tiny"
    assert all(np.isfinite(v) for v in metrics.values())
    # the test metrics are the means of the per-user full-ranking metrics the training run saved
    per_user = np.load(out / "sasrec" / "per_user.npz")
    hr, ndcg = per_user["masked__hr@10"], per_user["masked__ndcg@10"]
    assert np.all(hr >= ndcg - 1e-6) and np.all((0 <= ndcg) & (hr <= 1))  # a hit scores NDCG <= 1 = HR
    np.testing.assert_allclose(metrics["test/hr@10"], hr.mean(), rtol=1e-6)
    np.testing.assert_allclose(metrics["test/ndcg@10"], ndcg.mean(), rtol=1e-6)
    assert metrics["test/hr@10"] >= metrics["test/ndcg@10"]

    curves = np.load(out / "curves.npz")
    k, steps, streams = config["slate_size"], config["steps"], config["streams"]
    for p in ("exploit", "epsilon_greedy", "neural_linear_ts"):
        click, reward, regret = (curves[f"{p}/{w}"].astype(np.float64) for w in ("click", "reward", "regret"))
        assert click.shape == reward.shape == regret.shape == (steps, streams)
        assert set(np.unique(click)) <= {0.0, 1.0}
        # click reward only: a slate's reward counts its clicks, so click <= reward <= K * click
        assert np.all(click <= reward) and np.all(reward <= k * click)
        assert np.all(regret >= -1e-5)  # never better than the best slate
        np.testing.assert_allclose(metrics[f"ctr/{p}"], click.mean(), rtol=1e-6)
        np.testing.assert_allclose(metrics[f"cumulative_reward/{p}"], reward.sum(0).mean(), rtol=1e-6)
        np.testing.assert_allclose(metrics[f"cumulative_regret/{p}"], regret.sum(0).mean(), rtol=1e-5)
    assert (out / "quickstart.png").stat().st_size > 0
    assert "neural_linear_ts  CTR" in stdout_of(nb)


def test_figures_redraws_a_bandits_run(tmp_path, monkeypatch):
    from experiments import bandits

    runs = tmp_path / "runs"
    policies = ("ucb1", "linucb")
    argv = ["--data", "synthetic", "--out", str(runs / "bandits"), "--seeds", "2", "--steps", "6", "--streams", "2",
            "--envs", "bernoulli", "--policies", ",".join(policies)]
    assert bandits.cli(argv) == 0
    out = tmp_path / "out"
    before = (NOTEBOOKS / "figures.ipynb").read_bytes()
    nb = execute("figures.ipynb", tmp_path, monkeypatch, REC_JAX_RUNS=str(runs), REC_JAX_NOTEBOOK_OUT=str(out))
    assert (NOTEBOOKS / "figures.ipynb").read_bytes() == before and not any((tmp_path / "cwd").iterdir())

    metrics = json.loads((runs / "bandits" / "metrics.json").read_text())
    redrawn = json.loads((out / "redrawn.json").read_text())
    assert set(redrawn) == {"bandits/regret_bernoulli", "bandits/ctr_bernoulli"}
    for p in policies:
        # the last point drawn is the mean over seeds of the regret summed over T (float32 cumsum
        # in curves.npz vs the float64 sum behind metrics.json)
        np.testing.assert_allclose(redrawn["bandits/regret_bernoulli"][p], metrics[f"final_regret/bernoulli/{p}"],
                                   rtol=1e-5)
        np.testing.assert_allclose(redrawn["bandits/ctr_bernoulli"][p], metrics[f"final_ctr/bernoulli/{p}"],
                                   rtol=1e-5)
    assert (out / "bandits_bernoulli.png").stat().st_size > 0
    text = stdout_of(nb)
    for missing in ("realtime", "adaptive", "offline_accuracy"):
        assert f"{missing}: skipped" in text
    assert "redrawn 2 panels from 1 of 11 studies" in text
