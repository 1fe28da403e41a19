"""Every study of rec_jax in one command, and runs/FIGURES.md with each figure and its numbers.

    python -m experiments.reproduce --quick                   # every study at its quick size (<= 15 min, 2 cores)
    python -m experiments.reproduce --full                    # publication size (hours on a CPU)
    python -m experiments.reproduce --quick --only bandits realtime --out runs

Each study runs as its own process (``python -m experiments.<module> ...``), its output
going to ``OUT/<study>.log``; the study writes ``OUT/<study>/`` atomically, and when
it succeeds this script adds ``OUT/<study>/reproduce.json`` (mode, command, seconds,
date). A study whose folder holds that file for the same mode, with every figure it
should have, is skipped: killing ``reproduce`` and starting it again finishes the
remaining studies without redoing the completed ones. ``OUT/FIGURES.md`` is rewritten
after every study: each figure embedded, the exact command that made it, the key
numbers beneath, the date and the machine. A failed study is reported (with the last
line of its log) and the others still run; the exit code is then 1.
"""
from __future__ import annotations

import dataclasses
import fnmatch
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
Mode = Literal["quick", "full", "smoke"]


@dataclasses.dataclass(frozen=True)
class Study:
    name: str  # folder under OUT and the --only name
    module: str  # experiments.<module>
    title: str
    quick: tuple[str, ...]  # arguments at the quick size (10 s to 4 min each on 2 cores; at most 15 min together)
    full: tuple[str, ...]  # arguments at the publication size
    figures: tuple[str, ...]  # files the study must leave in its folder (PNGs, or a table)
    numbers: tuple[str, ...]  # metrics.json keys (fnmatch patterns) shown under the figures
    smoke: tuple[str, ...] | None = None  # a tiny size for the test suite (synthetic data), where defined

    def args(self, mode: Mode, out: Path) -> list[str]:
        sizes = {"quick": self.quick, "full": self.full, "smoke": self.smoke}
        return [sys.executable, "-m", f"experiments.{self.module}", *sizes[mode], "--out", str(out / self.name)]


STUDIES = (
    # quick: leave-one-out only, one epoch (18 more trainings for 5-fold CV do not fit 90 s)
    Study("offline_accuracy", "offline_accuracy", "Offline accuracy: SASRec, BERT4Rec, GRU4Rec and baselines",
          ("--quick", "--epochs", "1", "--no-progress"), ("--seeds", "3", "--cv-folds", "5"),
          ("table.md",), ("*/test/ndcg@10", "*/test/hr@10", "cv/*/ndcg@10")),
    Study("bandits", "bandits", "Bandit policies: regret curves",
          # 2,000 steps x 64 streams: past the 1,349 steps UCB1 needs to try every item once, and
          # long enough for LinUCB to separate from random, UCB1 and LinTS (at 200 x 16 all overlap)
          ("--quick", "--envs", "ml100k", "--policies", "random,epsilon_greedy,ucb1,linucb,lints",
           "--steps", "2000", "--streams", "64"), (),
          ("regret_*.png",), ("final_regret/*",),
          smoke=("--data", "synthetic", "--seeds", "2", "--steps", "6", "--streams", "2", "--envs", "bernoulli",
                 "--policies", "ucb1,linucb")),
    Study("large_model_ee", "large_model_ee", "Exploration around the trained SASRec vs exploiting it",
          # 256 users x 150 slates: NeuralLinear TS/UCB and epsilon-greedy separate from exploit
          # (at 16 x 60 every curve overlaps); the engine's incremental K/V view keeps it ~2.5 min
          ("--quick", "--seeds", "3", "--steps", "150", "--streams", "256", "--policies",
           "exploit,epsilon_greedy,neural_linear_ts,neural_linear_ucb"), (),
          ("reward_curves.png", "regret_curves.png"), ("cumulative_reward/*",)),
    Study("adaptive", "adaptive", "Adaptive regulation: meta-bandits, PBT, drift resets",
          # the publication size (10 seeds, T = 4000, 64 streams; PBT's quick population of 8): about
          # a minute, and the drift-reset, PBT and meta-TS gains after the abrupt drift clear their CIs
          ("--quick", "--seeds", "10", "--steps", "4000", "--streams", "64"), (),
          ("cumulative_reward.png", "chosen_setting.png"), ("cumulative_reward/abrupt_drift/*",)),
    Study("online_learning", "online_learning", "Online learning of the Transformer from streamed clicks",
          # README's size (5 seeds, 32 users, 300 slates): the click loss after the drift and REINFORCE
          # without drift both clear their CIs against the frozen model (at 3 x 16 x 150 only the first)
          ("--quick", "--seeds", "5", "--steps", "300", "--streams", "32",
           "--variants", "online_full_ctr,online_full_reinforce"),
          (), ("reward_*.png",), ("after_drift_vs_frozen/*",)),
    Study("ope_obd", "ope_obd", "Off-policy evaluation on the Open Bandit Dataset",
          ("--quick", "--campaigns", "all"), (),
          ("rel_error.png",), ("rel_error/bts_from_random/all/*",)),
    Study("ab_test", "ab_test", "Simulated A/B tests: A/A false positives under peeking",
          ("--quick", "--aa-replications", "2000", "--power-replications", "1000"), (),
          ("aa_peeking.png", "ab_looks.png"), ("aa_false_positive_rate/*", "power/*power", "ab/diff")),
    Study("fairness", "fairness", "Fairness of exposure against accuracy",
          ("--quick", "--seeds", "3", "--sim-steps", "60"), (),
          ("tradeoff_offline.png", "tradeoff_sim.png"), ("gini@10/*", "ndcg@10/lambda=*")),
    Study("realtime", "realtime", "Real-time serving: latency, throughput, prequential accuracy",
          ("--quick", "--max-events", "2048", "--max-events-batch1", "512", "--load-events", "8192",
           "--batch-sizes", "1,256"), (),
          ("latency_vs_batch.png", "prequential_hr.png"),
          ("latency_ms_p99/*", "events_per_s/*", "load_events_per_s/*", "incremental_speedup/*", "prequential_hr@10/*",
           "slates_identical_to_unbounded")),
    Study("scaling", "scaling", "Engine scaling: user-steps per second vs streams and devices", ("--quick",), (),
          ("scaling.png",), ("user_steps_per_s/*", "numpy_batched_steps_per_s/*"),
          smoke=("--streams", "8,16", "--devices", "1,2", "--steps", "3")),
)
BY_NAME = {s.name: s for s in STUDIES}


@dataclasses.dataclass(frozen=True)
class Config:
    """Run every study and write OUT/FIGURES.md."""

    quick: bool = False  # every study at its quick size (the default when neither --quick nor --full)
    full: bool = False  # every study at its publication size
    smoke: bool = False  # a tiny size, for the test suite (only studies that define one)
    only: tuple[str, ...] = ()  # run only these studies (names as in FIGURES.md)
    out: Path = Path("runs")  # parent folder: one folder per study, FIGURES.md, logs
    force: bool = False  # rerun studies even when complete


def resolve(cfg: Config) -> tuple[Mode, list[Study]]:
    if cfg.quick + cfg.full + cfg.smoke > 1:
        raise ValueError("--quick, --full, --smoke: choose one")
    unknown = [n for n in cfg.only if n not in BY_NAME]
    if unknown:
        raise ValueError(f"--only: unknown study {unknown[0]!r}; expected some of {', '.join(BY_NAME)}")
    studies = [s for s in STUDIES if not cfg.only or s.name in cfg.only]
    mode = "full" if cfg.full else "smoke" if cfg.smoke else "quick"
    if mode == "smoke" and any(s.smoke is None for s in studies):
        names = ", ".join(s.name for s in STUDIES if s.smoke is not None)
        raise ValueError(f"--smoke: defined only for {names}; pass --only with some of them")
    return mode, studies


def _figures_present(folder: Path, study: Study) -> list[Path]:
    found = []
    for pattern in study.figures:
        found += sorted(folder.glob(pattern))
    return found


def is_complete(out: Path, study: Study, mode: Mode) -> bool:
    """The study's folder holds a finished run of this mode with every figure it should have."""
    folder = out / study.name
    try:
        record = json.loads((folder / "reproduce.json").read_text())
    except (OSError, ValueError):
        return False
    return record.get("mode") == mode and all(list(folder.glob(p)) for p in study.figures)


def run_study(study: Study, mode: Mode, out: Path) -> tuple[bool, float, str]:
    """Run one study in its own process; (ok, seconds, last log line)."""
    args = study.args(mode, out)
    log_path = out / f"{study.name}.log"
    start = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + shlex.join(args[1:]) + "\n")
        log.flush()
        proc = subprocess.run(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                              env=dict(os.environ, PYTHONUNBUFFERED="1"))
    seconds = time.perf_counter() - start
    lines = [ln for ln in log_path.read_text(errors="replace").replace("\r", "\n").splitlines() if ln.strip()]
    last = lines[-1].strip() if lines else ""
    ok = proc.returncode == 0 and (out / study.name / "metrics.json").exists()
    if ok:
        record = {"mode": mode, "command": command_line(study, mode, out), "seconds": seconds,
                  "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine()}
        (out / study.name / "reproduce.json").write_text(json.dumps(record, indent=2) + "\n")
    return ok, seconds, last


def command_line(study: Study, mode: Mode, out: Path) -> str:
    return "python " + shlex.join(study.args(mode, out)[1:])


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    return f"{platform.system()} {platform.machine()} ({cpu}), {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def _flat_numbers(metrics: dict, patterns: tuple[str, ...], limit: int = 16) -> list[tuple[str, object]]:
    rows = []
    for key in sorted(metrics):
        if any(fnmatch.fnmatch(key, p) for p in patterns) and not key.endswith("_ci95"):
            value = metrics[key]
            if isinstance(value, (int, float)):
                ci = metrics.get(f"{key}_ci95")
                shown = isinstance(ci, (int, float)) and ci > 0  # one seed: no interval to show
                rows.append((key, f"{value:.4g} ± {ci:.2g}" if shown else value))
    return rows[:limit]


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e5 else f"{value:,.0f}"
    return str(value)


def write_figures_md(out: Path, mode: Mode, status: dict[str, str]) -> Path:
    """OUT/FIGURES.md over every study folder present (complete or not)."""
    lines = [f"# rec_jax figures ({mode} size)", "",
             f"Written {time.strftime('%Y-%m-%d %H:%M %Z')} by `python -m experiments.reproduce --{mode}` on "
             f"{machine()}.", "",
             "Each section: the command that made it (run from the repository root), its figures, and the key",
             "numbers from the study's `metrics.json` (`± x` is a 95% interval half-width where the study reports one).",
             ""]
    for study in STUDIES:
        folder = out / study.name
        lines += [f"## {study.title}", ""]
        try:
            record = json.loads((folder / "reproduce.json").read_text())
        except (OSError, ValueError):
            lines += [f"_Not run yet ({status.get(study.name, 'not requested')})._", ""]
            continue
        lines += [f"`{record['command']}`", "",
                  f"{record['mode']} size, {record['seconds']:.0f} s, {record['date']}, {record.get('machine', '')}", ""]
        for path in _figures_present(folder, study):
            if path.suffix == ".png":
                lines += [f"![{study.name}: {path.stem}]({study.name}/{path.name})", ""]
            elif path.suffix == ".md":
                lines += [path.read_text().strip(), ""]
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}
        rows = _flat_numbers(metrics, study.numbers)
        if rows:
            lines += ["| metric | value |", "|---|---|"] + [f"| `{k}` | {_fmt(v)} |" for k, v in rows] + [""]
    path = out / "FIGURES.md"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    return path


def main(cfg: Config) -> int:
    from tqdm.auto import tqdm

    mode, studies = resolve(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    status: dict[str, str] = {}
    failed = []
    bar = tqdm(studies, desc=f"reproduce --{mode}", unit="study")
    for study in bar:
        bar.set_postfix_str(study.name)
        if not cfg.force and is_complete(out, study, mode):
            status[study.name] = "complete, skipped"
            tqdm.write(f"{study.name}: complete ({mode}), skipped")
            continue
        ok, seconds, last = run_study(study, mode, out)
        status[study.name] = "done" if ok else f"FAILED: {last}"
        tqdm.write(f"{study.name}: {'done' if ok else 'FAILED'} in {seconds:.0f} s"
                   + ("" if ok else f" ({last}; log {out / (study.name + '.log')})"))
        if not ok:
            failed.append(study.name)
        write_figures_md(out, mode, status)
    path = write_figures_md(out, mode, status)
    print(f"wrote {path}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
