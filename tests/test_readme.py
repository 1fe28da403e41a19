"""README.md's worked examples keep their promise: a new part is one module, one test
file and one registry line, after which the registry-wide tests cover it.

Each example runs its own test, then is installed into a temporary COPY of the
package with its one registry line, and the registry-wide tests run on it in a
subprocess (so this process keeps the real package).
"""
import importlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rec_jax

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def _block(text: str, marker: str) -> str:
    match = re.search(rf"<!-- example: {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README.md has no code block after '<!-- example: {marker} -->'"
    return match.group(1)


def _module_name(block: str) -> str:
    """The ``# name.py`` first line of an example block."""
    match = re.match(r"# (\w+)\.py\n", block)
    assert match, f"example block must start with '# <module>.py', got {block[:40]!r}"
    return match.group(1)


def _package_copy(tmp_path: Path) -> Path:
    """A copy of the rec_jax package under ``tmp_path/pkg`` (returns the copy's folder)."""
    dest = tmp_path / "pkg" / "rec_jax"
    shutil.copytree(Path(rec_jax.__file__).parent, dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def _add_registry_line(init_file: Path, line: str) -> None:
    """Insert ``line`` as the first entry of the ``_REGISTRY = {`` dict in ``init_file``."""
    text = init_file.read_text()
    head = re.search(r"^_REGISTRY[^\n]*= \{\n", text, re.M)
    assert head, f"{init_file} has no '_REGISTRY ... = {{' line"
    init_file.write_text(text[: head.end()] + line.rstrip() + "\n" + text[head.end() :])


def _copy_env(tmp_path: Path, *extra_paths: Path) -> dict[str, str]:
    """The environment of a subprocess that imports the package copy first."""
    env = dict(os.environ, JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(tmp_path / "pkg"), *map(str, extra_paths), str(ROOT)]))
    # Share this suite's XLA compilation cache (conftest's default would be a cold one in tmp).
    env.setdefault("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".pytest_cache" / "jax_compilation_cache"))
    return env


def _bandits_study_selects(tmp_path: Path, policy: str, env_name: str) -> None:
    """``experiments/bandits.py --policies POLICY --envs ENV`` accepts both names and builds
    the env and the policy, against the package copy (no other file was changed)."""
    script = (
        "from experiments import bandits\n"
        "from rec_jax.policies import PolicySpec, make_policy\n"
        f"cfg = bandits.Config(policies={policy!r}, envs={env_name!r}, data='synthetic')\n"
        "settings = bandits.resolve(cfg)\n"
        f"assert settings['policies'] == [{policy!r}] and settings['envs'] == [{env_name!r}], settings\n"
        f"sim, params = bandits.make_env({env_name!r}, cfg)\n"
        f"make_policy({policy!r}, PolicySpec(num_items=sim.num_items, feature_dim=sim.feature_dim))\n"
        "print('SELECTED')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], env=_copy_env(tmp_path), capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0 and "SELECTED" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]


def _run_pytest(tmp_path: Path, test_files: list[str], select: str, extra: dict[str, str]) -> str:
    """Run pytest on ``test_files`` (written into ``tmp_path/tests``) against the package
    copy, selecting tests whose id contains ``select``; returns pytest's output."""
    tests = tmp_path / "tests"
    tests.mkdir(exist_ok=True)
    for name in test_files:
        shutil.copy(TESTS / name, tests / name)
    for name, text in extra.items():
        (tests / name).write_text(text)
    env = _copy_env(tmp_path, tests)
    probe = subprocess.run([sys.executable, "-c", "import rec_jax; print(rec_jax.__file__)"],
                           env=env, capture_output=True, text=True, cwd=tmp_path)
    assert probe.stdout.strip().startswith(str(tmp_path)), probe.stdout + probe.stderr  # the copy, not the real one
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "-k", select, *sorted(
            set(test_files) | set(extra))],
        env=env, capture_output=True, text=True, cwd=tests, timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    return proc.stdout


def test_readme_policy_example_passes_its_own_test(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    (tmp_path / "explore_then_commit.py").write_text(_block(text, "policy"))
    (tmp_path / "test_explore_then_commit.py").write_text(_block(text, "test"))
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("explore_then_commit", "test_explore_then_commit"):
        sys.modules.pop(name, None)
    example_test = importlib.import_module("test_explore_then_commit")
    tests = [getattr(example_test, n) for n in dir(example_test) if n.startswith("test_")]
    assert len(tests) == 1
    tests[0]()  # raises if the example's assertions fail


def test_readme_policy_registered_by_one_line_passes_the_registry_wide_tests(tmp_path):
    text = (ROOT / "README.md").read_text()
    module = _block(text, "policy")
    name = _module_name(module)
    pkg = _package_copy(tmp_path)
    (pkg / "policies" / f"{name}.py").write_text(module)
    line = _block(text, "policy_registry_line")
    assert line.count("\n") == 1, f"the registry addition must be ONE line, got {line!r}"
    _add_registry_line(pkg / "policies" / "__init__.py", line)
    # The example's test imports the module by its own name, as a file beside it.
    example_test = _block(text, "test").replace(f"from {name} import", f"from rec_jax.policies.{name} import")
    out = _run_pytest(
        tmp_path,
        ["conftest.py", "test_policies_utils.py", "test_policies_params.py", "test_policies_behaviour.py",
         "test_policies_linucb.py"],
        select=name,
        extra={f"test_{name}.py": example_test},
    )
    passed = int(re.search(r"(\d+) passed", out).group(1))
    # params, spec checks, propensities (K = 1, 3), slot conditionals, availability (K = 1, 3),
    # jit == eager, update vs NumPy (K = 1, 3), merge, and the example's own test.
    assert passed >= 12, out[-2000:]
    _bandits_study_selects(tmp_path, name, "bernoulli")


@pytest.mark.slow  # ~8 s of subprocess pytest; the policy example keeps the promise in the default suite
def test_readme_simulator_registered_by_one_line_passes_its_test_and_the_registry_wide_tests(tmp_path):
    text = (ROOT / "README.md").read_text()
    module = _block(text, "simulator")
    name = _module_name(module)
    pkg = _package_copy(tmp_path)
    (pkg / "sim" / f"{name}.py").write_text(module)
    line = _block(text, "simulator_registry_line")
    assert line.count("\n") == 1, f"the registry addition must be ONE line, got {line!r}"
    _add_registry_line(pkg / "sim" / "__init__.py", line)
    example_test = _block(text, "simulator_test")
    assert _module_name(example_test) == f"test_{name}"
    out = _run_pytest(tmp_path, ["conftest.py", "test_sim_registry.py"], select=name,
                      extra={f"test_{name}.py": example_test})
    passed = int(re.search(r"(\d+) passed", out).group(1))
    # test_sim_registry.py: defaults and shapes, bad params, slates (refused); and the example's own test.
    assert passed == 4, out[-2000:]
    _bandits_study_selects(tmp_path, "ucb1", name)
