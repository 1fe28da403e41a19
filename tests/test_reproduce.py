"""experiments/reproduce.py: runs studies, skips complete ones (also after a kill), writes FIGURES.md."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiments import reproduce

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--smoke", "--only", "bandits", "scaling"]


def _run(out, *extra):
    return subprocess.run([sys.executable, "-m", "experiments.reproduce", *ARGS, "--out", str(out), *extra],
                          cwd=ROOT, capture_output=True, text=True)


@pytest.mark.slow  # a real kill and two resumed runs of reproduce: three processes, each importing JAX and compiling two studies
def test_reproduce_runs_skips_and_resumes_after_a_kill(tmp_path):
    # a real kill: start, wait until the first study is complete, kill the whole process group
    proc = subprocess.Popen([sys.executable, "-m", "experiments.reproduce", *ARGS, "--out", str(tmp_path)],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    done_first = tmp_path / "bandits" / "reproduce.json"
    deadline = time.time() + 240
    while not done_first.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert done_first.exists(), "the first study never completed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first_stamp = done_first.stat().st_mtime_ns
    assert not (tmp_path / "scaling" / "reproduce.json").exists()  # killed before (or during) scaling

    result = _run(tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "bandits: complete (smoke), skipped" in result.stderr + result.stdout
    assert done_first.stat().st_mtime_ns == first_stamp  # not redone
    record = json.loads((tmp_path / "scaling" / "reproduce.json").read_text())
    assert record["mode"] == "smoke" and record["command"].startswith("python -m experiments.scaling --streams 8,16")

    # FIGURES.md: every figure of both studies embedded (and present), the command, numbers from metrics.json
    text = (tmp_path / "FIGURES.md").read_text()
    for study in ("bandits", "scaling"):
        for fig in reproduce._figures_present(tmp_path / study, reproduce.BY_NAME[study]):
            assert f"({study}/{fig.name})" in text and fig.stat().st_size > 0
    scaling = json.loads((tmp_path / "scaling" / "metrics.json").read_text())
    assert f"| `user_steps_per_s/streams=16` | {reproduce._fmt(scaling['user_steps_per_s/streams=16'])} |" in text
    assert "python -m experiments.bandits --data synthetic" in text
    assert "_Not run yet (not requested)._" in text  # the studies left out

    # a third run redoes nothing
    stamps = {s: (tmp_path / s / "reproduce.json").stat().st_mtime_ns for s in ("bandits", "scaling")}
    assert _run(tmp_path).returncode == 0
    assert stamps == {s: (tmp_path / s / "reproduce.json").stat().st_mtime_ns for s in ("bandits", "scaling")}


@pytest.mark.slow  # the scaling study end to end
def test_scaling_points_are_consistent(tmp_path, monkeypatch):
    """Run by the test above too; here every point against what the test itself measures:
    the sizes it asked for, and each point's wall clock (its subprocess timed from here),
    which bounds the timed engine run from above, so the throughput from below."""
    import time

    from experiments import scaling

    walls = {}
    bench_point = scaling.bench_point

    def timed_point(settings, streams, devices, numpy):
        t0 = time.perf_counter()
        out = bench_point(settings, streams, devices, numpy)
        walls[(streams, devices)] = time.perf_counter() - t0
        return out

    monkeypatch.setattr(scaling, "bench_point", timed_point)
    metrics = scaling.main(scaling.Config(out=str(tmp_path / "s"), streams="8,16", devices="1", steps=3))
    points = json.loads((tmp_path / "s" / "points.json").read_text())
    assert sorted((p["streams"], p["devices"]) for p in points) == sorted(walls) == [(8, 1), (16, 1)]
    for p, requested in zip(sorted(points, key=lambda q: q["streams"]), (8, 16)):
        assert (p["streams"], p["steps"], p["items"], p["dim"], p["policy"]) == (requested, 3, 100, 16, "linucb")
        wall = walls[(requested, 1)]
        assert 0 < p["run_s"] < wall
        # the rate counts the requested work, S * T user-steps, over the timed run ...
        assert p["user_steps_per_s"] * p["run_s"] == pytest.approx(requested * 3, rel=1e-6)
        # ... which ran within the point's wall clock
        assert p["user_steps_per_s"] >= requested * 3 / wall
        assert p["numpy_batched_steps_per_s"] >= p["streams"] * 3 / wall
        assert metrics[f"user_steps_per_s/streams={p['streams']}"] == p["user_steps_per_s"]
    assert (tmp_path / "s" / "scaling.png").stat().st_size > 0


@pytest.mark.parametrize("argv, message", [
    (["--only", "nope"], "--only: unknown study 'nope'"),
    (["--quick", "--full"], "choose one"),
    (["--smoke", "--only", "realtime"], "--smoke: defined only for"),
    (["--streams", "0"], None),
])
def test_errors_are_one_line(argv, message, tmp_path):
    module = "experiments.scaling" if message is None else "experiments.reproduce"
    result = subprocess.run([sys.executable, "-m", module, *argv, "--out", str(tmp_path / "x")], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert message is None or message in lines[0]
    assert not (tmp_path / "x").exists()
