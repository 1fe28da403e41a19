"""README.md's worked example (a new policy in one file, its test in another) runs as written."""
import importlib
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _block(text: str, marker: str) -> str:
    match = re.search(rf"<!-- example: {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README.md has no code block after '<!-- example: {marker} -->'"
    return match.group(1)


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
