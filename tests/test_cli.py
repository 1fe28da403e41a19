"""rec_jax.cli: the one command-line convention of every experiment (argparse from a config dataclass, no tyro).

Fast: no JAX compilation; the experiment modules are imported and asked for --help in-process.
"""
from __future__ import annotations

import ast
import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

import rec_jax.cli
from rec_jax.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if not p.stem.startswith("_"))


@dataclasses.dataclass(frozen=True)
class Toy:
    """A toy config."""

    out: Path = Path("runs/toy")  # run folder
    quick: bool = False  # small size, 95% CI
    count: int | None = None  # how many (default 3, quick 1)
    scale: float = 1.5  # a float
    mode: Literal["a", "b"] = "a"  # which mode
    only: tuple[str, ...] = ()  # names to keep
    name: str = ""  # a name
    label: str | None = None  # an optional label


def _help(capsys, cls=Toy, **kw) -> str:
    with pytest.raises(SystemExit) as exit_:
        rec_jax.cli.parse(cls, ["--help"], "Toy doc: 50% of it.", **kw)
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_every_field_is_a_flag_with_its_comment_and_default(capsys):
    text = " ".join(_help(capsys).split())  # argparse wraps lines
    assert "Toy doc: 50% of it." in text
    for flag, help_text in (("--out PATH", "run folder (default: runs/toy)"),
                            ("--quick, --no-quick", "small size, 95% CI (default: False)"),
                            ("--count INT", "how many (default 3, quick 1)"),
                            ("--scale FLOAT", "a float (default: 1.5)"),
                            ("--mode {a,b}", "which mode (default: a)"),
                            ("--only [STR ...]", "names to keep (default: ())"),
                            ("--name STR", "a name (default: '')"),
                            ("--label STR", "an optional label (default: None)")):
        assert f"{flag} {help_text}" in text, flag


def test_types_bools_literals_none_and_tuples():
    assert rec_jax.cli.parse(Toy, []) == Toy()
    cfg = rec_jax.cli.parse(Toy, ["--out", "x/y", "--quick", "--count", "4", "--scale", "-2", "--mode", "b",
                                  "--only", "p", "q", "--name", "n", "--label", "L"])
    assert cfg == Toy(out=Path("x/y"), quick=True, count=4, scale=-2.0, mode="b", only=("p", "q"), name="n",
                      label="L")
    assert rec_jax.cli.parse(Toy, ["--quick", "--no-quick", "--count", "None"]) == Toy(quick=False, count=None)


@pytest.mark.parametrize("argv, needle", [
    (["--mode", "c"], "invalid choice: 'c'"),
    (["--count", "x"], "invalid int value: 'x'"),
    (["--nope"], "unrecognized arguments: --nope"),
    (["--qui"], "unrecognized arguments: --qui"),  # no abbreviations
])
def test_usage_errors_are_one_line_exit_2(argv, needle, capsys):
    assert rec_jax.cli.main(Toy, lambda cfg: pytest.fail("must not run"), argv) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: ") and needle in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("exc", [ValueError("--scale: expected >= 0, got -1\n(second line)"),
                                 FileNotFoundError("no such file: x.csv")])
def test_run_errors_are_one_line_exit_2(exc, capsys):
    def run(cfg):
        raise exc

    assert rec_jax.cli.main(Toy, run, []) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert err.strip() == rec_jax.cli.error_line(exc)
    assert rec_jax.cli.main(Toy, run, [], error_code=1) == 1


def test_exit_codes_of_help_and_of_the_run():
    seen = []
    assert rec_jax.cli.main(Toy, seen.append, ["--help"]) == 0 and not seen
    assert rec_jax.cli.main(Toy, seen.append, ["--quick"]) == 0 and seen == [Toy(quick=True)]
    assert rec_jax.cli.main(Toy, lambda cfg: 1, []) == 1  # an int from the run is the exit code
    assert rec_jax.cli.main(Toy, lambda cfg: {"metrics": 1.0}, []) == 0


def test_preset_overrides_keep_the_preset_unless_given(capsys):
    @dataclasses.dataclass(frozen=True)
    class Script:
        preset: str = "tiny-sasrec"  # the preset
        epochs: int = 3  # the script's own, wins over TrainConfig's

    cfg, changes = rec_jax.cli.parse_with_overrides(Script, TrainConfig, ["--dropout", "0.3", "--no-mask-history"],
                                                    skip=("patience",))
    assert cfg == Script() and changes == {"dropout": 0.3, "mask_history": False}
    assert rec_jax.cli.parse_with_overrides(Script, TrainConfig, [])[1] == {}
    assert rec_jax.cli.parse_with_overrides(Script, TrainConfig, ["--epochs", "7"]) == (Script(epochs=7), {})
    with pytest.raises(SystemExit):
        rec_jax.cli.parse_with_overrides(Script, TrainConfig, ["--patience", "2"], skip=("patience",))
    capsys.readouterr()
    with pytest.raises(SystemExit):
        rec_jax.cli.parse_with_overrides(Script, TrainConfig, ["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "TrainConfig overrides" in text and "--patience INT" in text
    for field in dataclasses.fields(TrainConfig):
        assert "--" + field.name.replace("_", "-") in text, field.name
    seen = []
    assert rec_jax.cli.main(Script, lambda c, ch: seen.append((c, ch)), ["--seed", "2"], overrides=TrainConfig) == 0
    assert seen == [(Script(), {"seed": 2})]


def test_subcommands_and_positionals():
    @dataclasses.dataclass(frozen=True)
    class Fetch:
        """Fetch one."""

        name: str  # what to fetch

    @dataclasses.dataclass(frozen=True)
    class Stats:
        """Stats of one."""

        data: str  # where
        min_user: int = 5  # k-core

    commands = {"fetch": Fetch, "stats": Stats}
    assert rec_jax.cli.parse(commands, ["fetch", "obd"]) == Fetch("obd")
    assert rec_jax.cli.parse(commands, ["stats", "x.csv", "--min-user", "1"]) == Stats("x.csv", 1)


def _imports(module: str) -> set[str]:
    tree = ast.parse((ROOT / "experiments" / f"{module}.py").read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("module", EXPERIMENTS)
def test_every_experiment_cli_is_built_by_rec_jax_cli(module, capsys, monkeypatch):
    """No argparse or tyro of its own; ``--help`` (in-process, tyro unimportable) lists every Config field."""
    assert not {"argparse", "tyro"} & _imports(module), module
    source = (ROOT / "experiments" / f"{module}.py").read_text()
    assert "rec_jax.cli.main(" in source and 'if __name__ == "__main__":' in source
    monkeypatch.setitem(sys.modules, "tyro", None)  # as on the accelerator image: no tyro
    mod = importlib.import_module(f"experiments.{module}")
    try:
        code = mod.cli(["--help"])
    except SystemExit as exit_:  # ope_obd / ope_sim: cli(argv) returns the metrics, parse errors raise
        code = exit_.code
    assert code == 0
    text = capsys.readouterr().out
    for field in dataclasses.fields(mod.Config):
        assert "--" + field.name.replace("_", "-") in text, (module, field.name)


def test_data_cli_is_built_by_rec_jax_cli(capsys):
    from rec_jax.data.__main__ import main

    assert main(["stats", "--help"]) == 0
    assert "--min-user INT" in capsys.readouterr().out
    assert main([]) == 2  # no command: a usage error
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("argv", [["experiments/bench_engine.py"], ["-m", "experiments.scaling"]])
def test_script_and_module_forms_run_without_tyro(argv, tmp_path):
    """``python experiments/NAME.py`` and ``python -m experiments.NAME`` with tyro made unimportable."""
    (tmp_path / "tyro.py").write_text("raise ImportError('no tyro here')\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, *argv, "--help"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "--streams" in proc.stdout
