"""Load test of the HTTP decision service: open loop, closed loop, SIGKILL and restart.

    python experiments/serve_load.py --quick        # about 3 minutes on 2 cores
    python experiments/serve_load.py [--model-dir RUN] [--rate 1000] [--duration-s 20]

1. The model: ``--model-dir`` (a ``train_sequential.py`` run on ML-100K) or, without
   one, the ``ml100k-sasrec`` shape with random-initialised weights written to
   ``<workdir>/model`` (throughput and latency do not depend on the weights; the
   clicks, drawn from the simulator, do not need a good model either).
2. The service (``python -m rec_jax.serve.http``) starts on 127.0.0.1 at a free port
   with its decision log in ``<workdir>/decisions.db`` (started afresh).
3. ML-100K users replay their real events against it from one bounded asynchronous
   aiohttp client on the same machine (``experiments/_serve_client.py``); clicks on
   each slate come from the ``ml100k`` simulator's ground truth (position-based model).
   * open loop: ``--rate`` rank cycles/s (each ``/rank`` followed by its ``/reward``);
     ``http_rank_p50_ms`` / ``http_rank_p99_ms`` from the scheduled start;
   * closed loop to saturation: ``--concurrency`` workers back to back, each level for
     ``--closed-duration-s``; ``max_requests_per_s`` = the highest rank+reward rate
     whose rank p99 stayed under 100 ms;
   * swap: an open-loop phase at ``--rate`` halfway through which a head learned from
     the log so far (``rec_jax.serve.http.learner``) is published; errors after it and
     the rank p99 in the 3 s after it against the p99 before it;
   * SIGKILL: an open-loop phase during which the service is killed with SIGKILL
     halfway and restarted on the same log; afterwards every acknowledged reward is
     looked up in the log (``rewards_lost`` = acknowledged but absent) and the
     restarted service's model version is compared with the killed one's;
   * ``--ope``: a fresh service serves epsilon-greedy, greedy's CTR is estimated from
     its log (``rec_jax.ope.from_log``: IPW, SNIPW, DR, 95% bootstrap CIs), then a
     fresh service serves greedy to the same users replaying the same events, and
     its CTR is measured on-policy (``on_policy/greedy``).
4. In-process (``rec_jax.serve.server``, no HTTP): the saturated warm replay of all
   ML-100K users' interleaved sequences at micro-batch 256 (what
   ``experiments/realtime.py`` calls ``load_events_per_s_warm``) and the incremental
   step against re-encoding the L-item window on the same micro-batches.

Prints one JSON line (and writes it to ``<workdir>/serve_load.json``). Client and
server share the machine's cores: the figures are those of the whole system.
"""
from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
P99_LIMIT_MS = 100.0


@dataclasses.dataclass(frozen=True)
class Config:
    """Load test of the HTTP decision service (see module docstring)."""

    quick: bool = False  # short phases, two closed-loop levels, a smaller in-process replay
    model_dir: str = ""  # a train_sequential.py run on ML-100K (empty: random-init ml100k-sasrec weights)
    workdir: str = "runs/serve_load"  # model (if generated), decision log, server output, result JSON
    rate: float = 1000.0  # open loop: rank cycles started per second
    duration_s: float = 0.0  # open-loop phase length (0: 20 s; quick: 8 s)
    concurrency: tuple[int, ...] = ()  # closed-loop worker counts tried (empty: 8 16 32 64 128; quick: 16 64)
    closed_duration_s: float = 0.0  # each closed-loop level (0: 10 s; quick: 5 s)
    swap: bool = True  # a published head swapped in halfway through an open-loop phase at --rate
    kill: bool = True  # the SIGKILL-and-restart phase
    kill_duration_s: float = 0.0  # its open-loop length, killed halfway (0: 16 s; quick: 8 s)
    kill_rate: float = 300.0  # its rate (cycles/s)
    in_process: bool = True  # the in-process figures (rec_jax.serve.server, no HTTP)
    in_process_events: int = 0  # events of the in-process replay (0: all of ML-100K; quick: 16384)
    slate_size: int = 10  # K slots per slate
    policy: str = "epsilon_greedy"  # the served policy
    http: bool = True  # the open-loop, closed-loop and SIGKILL phases
    ope: bool = False  # closed-loop OPE check: serve epsilon-greedy, estimate greedy's CTR, then serve greedy
    ope_decisions: int = 0  # decisions per OPE phase (0: 8000; quick: 4000)
    ope_rate: float = 400.0  # OPE phases' open-loop rate (cycles/s)
    seed: int = 0


def resolve(cfg: Config) -> dict:
    q = cfg.quick
    settings = dict(dataclasses.asdict(cfg),
                    duration_s=cfg.duration_s or (8.0 if q else 20.0),
                    concurrency=tuple(cfg.concurrency) or ((16, 64) if q else (8, 16, 32, 64, 128)),
                    closed_duration_s=cfg.closed_duration_s or (5.0 if q else 10.0),
                    kill_duration_s=cfg.kill_duration_s or (8.0 if q else 16.0),
                    in_process_events=cfg.in_process_events or (16384 if q else 0),
                    ope_decisions=cfg.ope_decisions or (4000 if q else 8000))
    if cfg.rate <= 0 or cfg.kill_rate <= 0:
        raise ValueError(f"--rate and --kill-rate must be > 0 cycles/s, got {cfg.rate}, {cfg.kill_rate}")
    if min(settings["concurrency"]) < 1:
        raise ValueError(f"--concurrency: expected positive worker counts, got {settings['concurrency']}")
    return settings


def random_model_dir(folder: Path, num_items: int, seed: int) -> Path:
    """A run folder with random-initialised ``ml100k-sasrec`` weights, as train_sequential.py writes one."""
    import jax

    from rec_jax import checkpoint, runs
    from rec_jax.models import make_model
    from rec_jax.train.config import get_preset, model_config

    if (folder / "config.json").exists():
        return folder
    config = get_preset("ml100k-sasrec")
    model = make_model(config.model, model_config(config, num_items))
    params = model.init(jax.random.key(seed))
    checkpoint.save(folder / "checkpoints", 0, {"best_params": params})
    runs.write_config(folder, config, note="random-initialised weights (experiments/serve_load.py)")
    return folder


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """``python -m rec_jax.serve.http`` as a child process on 127.0.0.1."""

    def __init__(self, model_dir: Path, db: Path, port: int, log_path: Path, slate_size: int, policy: str,
                 publish_dir: Path):
        self.args = [sys.executable, "-m", "rec_jax.serve.http", "--model-dir", str(model_dir), "--db", str(db),
                     "--port", str(port), "--slate-size", str(slate_size), "--max-slate", str(slate_size),
                     "--policy", policy, "--publish-dir", str(publish_dir)]
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 300.0) -> float:
        """Start and wait for /healthz; returns the seconds it took."""
        import urllib.request

        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
        start = time.perf_counter()
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        while time.perf_counter() - start < timeout_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the service exited with code {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the service did not answer /healthz within {timeout_s:.0f} s; see {self.log_path}")

    def health(self) -> dict:
        import urllib.request

        with urllib.request.urlopen(self.base + "/healthz", timeout=5) as r:
            return json.loads(r.read())

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


def simulated_users(seed: int, slate_size: int):
    from experiments._serve_client import Users
    from rec_jax.sim.recsys import calibrate, ml100k_ground_truth, pbm_examination

    gt, seqs = ml100k_ground_truth()
    offset, scale = calibrate(gt)
    return Users(seqs, gt, offset, scale, np.asarray(pbm_examination(slate_size)), seed=seed), seqs


async def http_phases(service: ServiceProcess, users, settings: dict, log) -> dict:
    import aiohttp

    from experiments._serve_client import closed_loop, open_loop

    k = settings["slate_size"]
    out: dict = {"acknowledged": []}
    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:
        await open_loop(session, service.base, users, 50.0, 1.0, k)  # connections, caches, first steps
        tally = await open_loop(session, service.base, users, settings["rate"], settings["duration_s"], k)
        out["open"] = s = tally.summary()
        out["acknowledged"] += tally.acknowledged
        log(f"open loop {settings['rate']:.0f} cycles/s: rank p50 {s['rank_p50_ms']:.1f} ms, p99 "
            f"{s['rank_p99_ms']:.1f} ms, {s['requests_per_s']:.0f} requests/s, errors {s['errors']}, "
            f"skipped {s['skipped']}, CTR {s['ctr']:.4f}")
        out["closed"] = []
        for c in settings["concurrency"]:
            tally = await closed_loop(session, service.base, users, c, settings["closed_duration_s"], k)
            s = dict(tally.summary(), concurrency=c)
            out["closed"].append(s)
            out["acknowledged"] += tally.acknowledged
            log(f"closed loop {c} workers: {s['requests_per_s']:.0f} requests/s, rank p99 {s['rank_p99_ms']:.1f} ms,"
                f" errors {s['errors']}")
    return out


def staged_head(model_dir: Path, db: Path, work: Path):
    """A head learned from the log so far (the learner's own update), staged for publishing."""
    from rec_jax.serve.http.learner import Config as LearnerConfig
    from rec_jax.serve.http.learner import main as learn
    from rec_jax.serve.http.publish import latest_version, load_head
    from rec_jax.serve.recommend import initial_head
    from rec_jax.train.load import load_trained

    staging = work / "staged"
    shutil.rmtree(staging, ignore_errors=True)
    learn(LearnerConfig(model_dir=str(model_dir), db=str(db), publish_dir=str(staging), once=True, min_clicks=1),
          log=lambda line: None)
    model, params, _ = load_trained(model_dir)
    return load_head(staging, latest_version(staging), initial_head(model, params))


async def swap_phase(service: ServiceProcess, users, settings: dict, publish: Path, head, log) -> dict:
    """Open loop at --rate; halfway a new head is published; p99 around the swap vs before it."""
    import aiohttp

    from experiments._serve_client import open_loop
    from rec_jax.serve.http.publish import publish_head

    duration = settings["duration_s"]
    state: dict = {}

    def during(elapsed_s: float) -> None:
        if "at" not in state and elapsed_s >= duration / 2:
            state["at"] = time.perf_counter()
            state["version"] = publish_head(publish, head, note={"by": "serve_load swap phase"})

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
        tally = await open_loop(session, service.base, users, settings["rate"], duration, settings["slate_size"],
                                during=during)
    at = state["at"]
    sched = np.asarray(tally.rank_scheduled)
    lat = 1e3 * np.asarray(tally.rank_latency_s)
    steady = lat[(sched < at - 0.5) & (sched > at - duration / 2 + 1.0)]
    around = lat[(sched >= at) & (sched < at + 3.0)]  # the service looks for a new head every second
    version = service.health()["model_version"]
    out = {"swap_version": version, "swap_taken": version.endswith("+" + state["version"]),
           "swap_errors": int(sum(1 for t in tally.error_at if t >= at)),
           "swap_p99_steady_ms": float(np.percentile(steady, 99)) if len(steady) else float("nan"),
           "swap_p99_around_ms": float(np.percentile(around, 99)) if len(around) else float("nan")}
    out["swap_p99_ratio"] = out["swap_p99_around_ms"] / out["swap_p99_steady_ms"]
    log(f"swap phase: published {state['version']} (now serving {version}); errors after it "
        f"{out['swap_errors']}; p99 {out['swap_p99_steady_ms']:.1f} ms before, {out['swap_p99_around_ms']:.1f} ms "
        f"in the 3 s after")
    return out


async def kill_phase(service: ServiceProcess, users, settings: dict, log) -> dict:
    import aiohttp

    from experiments._serve_client import open_loop

    before = service.health()["model_version"]
    half = settings["kill_duration_s"] / 2
    state = {"killed": False}
    loop = asyncio.get_running_loop()
    restart: dict = {}

    def during(elapsed_s: float) -> None:
        if not state["killed"] and elapsed_s >= half:
            state["killed"] = True
            service.kill()
            log("SIGKILL sent to the service; restarting it on the same log")
            restart["future"] = loop.run_in_executor(None, service.start)

    connector = aiohttp.TCPConnector(limit=512)
    async with aiohttp.ClientSession(connector=connector) as session:
        tally = await open_loop(session, service.base, users, settings["kill_rate"], settings["kill_duration_s"],
                                settings["slate_size"], during=during)
        restart_s = await restart["future"]
        after_tally = await open_loop(session, service.base, users, 50.0, 2.0, settings["slate_size"])
    after = service.health()["model_version"]
    log(f"kill phase: {tally.reward_ok} rewards acknowledged, errors {dict(tally.errors)}; restart took "
        f"{restart_s:.1f} s; model version before {before}, after {after}")
    return {"acknowledged": tally.acknowledged + after_tally.acknowledged, "restart_s": restart_s,
            "model_version_before": before, "model_version_after": after, "errors": dict(tally.errors),
            "after_restart_rank_ok": after_tally.rank_ok}


def ope_check(model_dir: Path, work: Path, settings: dict, log) -> dict:
    """Serve epsilon-greedy, estimate greedy's CTR from that log (rec_jax.ope.from_log),
    then serve greedy to the same users replaying the same events and measure its CTR."""
    from rec_jax.ope.from_log import estimate, slate_rounds
    from rec_jax.serve.http.export import read_served_log

    import aiohttp

    from experiments._serve_client import open_loop

    duration = settings["ope_decisions"] / settings["ope_rate"]
    out: dict = {}
    logs = {}
    for policy in ("epsilon_greedy", "greedy"):
        db = work / f"ope_{policy}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        users, _ = simulated_users(settings["seed"], settings["slate_size"])  # the same users, events, order
        service = ServiceProcess(model_dir, db, free_port(), work / f"service_ope_{policy}.log",
                                 settings["slate_size"], policy, work / f"publish_ope_{policy}")
        try:
            service.start()

            async def run():
                async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=512)) as session:
                    return await open_loop(session, service.base, users, settings["ope_rate"], duration,
                                           settings["slate_size"])

            freeze_heap()
            tally = asyncio.run(run())
        finally:
            service.stop()
        log(f"OPE phase, serving {policy}: {tally.reward_ok} rewarded decisions, CTR {tally.clicks / max(tally.slots, 1):.4f}"
            f", errors {dict(tally.errors)}")
        logs[policy] = read_served_log(db)
    est = estimate(logs["epsilon_greedy"], "greedy", seed=settings["seed"])
    for name in ("ipw", "snipw", "dr"):
        out[f"ope_estimate/greedy/{name}"] = est[name]
        out[f"ope_estimate/greedy/{name}_ci95"] = est[f"{name}_ci95"]
    on = slate_rounds(logs["greedy"])["reward"]
    rng = np.random.default_rng(settings["seed"])
    boot = [float(np.mean(on[rng.integers(0, len(on), len(on))])) for _ in range(500)]
    out["on_policy/greedy"] = float(np.mean(on))
    out["on_policy/greedy_ci95"] = [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))]
    out["on_policy/logging"] = est["logging_ctr"]
    out["ope_rounds"] = est["rounds"]
    out["ope_greedy_matches"] = est["matches"]
    for name in ("ipw", "dr"):
        lo, hi = est[f"{name}_ci95"]
        out[f"ope_contains_on_policy/{name}"] = bool(lo <= out["on_policy/greedy"] <= hi)
    log(f"greedy CTR: IPW {est['ipw']:.4f} {est['ipw_ci95']}, DR {est['dr']:.4f} {est['dr_ci95']}; "
        f"on-policy {out['on_policy/greedy']:.4f} {out['on_policy/greedy_ci95']}")
    return out


def rewards_in_log(db: Path, decision_ids: list[str]) -> int:
    con = sqlite3.connect(f"file:{db.absolute()}?mode=ro", uri=True)
    try:
        found = {row[0] for row in con.execute("SELECT decision_id FROM rewards")}
    finally:
        con.close()
    return sum(1 for d in set(decision_ids) if d in found)


def freeze_heap() -> None:
    """Move every object alive now out of the garbage collector's reach, before a timed phase.

    The client shares this process with JAX and the simulator (~140,000 objects): a full
    collection stalled its event loop 83-108 ms, which every request in flight then counted as
    latency. In 10 s windows at 1,000 rank/s (2026-12-07, A/B in one sitting), rank p99 was
    19.4 / 161.3 / 23.2 and 21.6 / 126.4 / 85.1 ms without this, and 18.8 / 18.2 / 20.1 and
    19.7 / 19.8 / 19.9 ms with it. What a phase allocates is collected as usual."""
    gc.collect()
    gc.freeze()


def main(cfg: Config, log=print) -> dict:
    from rec_jax.roofline import cpu_model

    settings = resolve(cfg)
    work = Path(cfg.workdir)
    work.mkdir(parents=True, exist_ok=True)
    users, seqs = simulated_users(cfg.seed, cfg.slate_size)
    model_dir = Path(cfg.model_dir) if cfg.model_dir else random_model_dir(work / "model", seqs.num_items, cfg.seed)
    publish = work / "publish"  # heads published during this run (never the model folder's own)
    shutil.rmtree(publish, ignore_errors=True)
    db = work / "decisions.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    service = ServiceProcess(model_dir, db, free_port(), work / "service.log", cfg.slate_size, cfg.policy, publish)
    result: dict = {"cpu_model": cpu_model(), "model": str(model_dir) if cfg.model_dir else "random-init ml100k-sasrec",
                    "rate_offered": settings["rate"], "slate_size": cfg.slate_size, "policy": cfg.policy}
    acknowledged: list = []
    if cfg.http:
        try:
            result["service_start_s"] = service.start()
            log(f"service up in {result['service_start_s']:.1f} s at {service.base}")
            freeze_heap()
            phases = asyncio.run(http_phases(service, users, settings, log))
            acknowledged = list(phases["acknowledged"])
            result["http_rank_p50_ms"] = phases["open"]["rank_p50_ms"]
            result["http_rank_p99_ms"] = phases["open"]["rank_p99_ms"]
            result["open_loop"] = phases["open"]
            result["closed_loop"] = phases["closed"]
            under = [s["requests_per_s"] for s in phases["closed"] if s["rank_p99_ms"] < P99_LIMIT_MS]
            result["max_requests_per_s"] = max(under) if under else float("nan")
            if cfg.swap:
                head = staged_head(model_dir, db, work)
                freeze_heap()  # the staged head's learner loaded a model into this process
                result["swap"] = asyncio.run(swap_phase(service, users, settings, publish, head, log))
            if cfg.kill:
                freeze_heap()
                killed = asyncio.run(kill_phase(service, users, settings, log))
                acknowledged += killed.pop("acknowledged")
                result["kill"] = killed
                result["resumed_model_version"] = killed["model_version_before"] == killed["model_version_after"]
        finally:
            service.stop()
        result["rewards_acknowledged"] = len(set(acknowledged))
        result["rewards_in_log"] = rewards_in_log(db, acknowledged)
        result["rewards_lost"] = result["rewards_acknowledged"] - result["rewards_in_log"]
    if cfg.ope:
        result.update(ope_check(model_dir, work, settings, log))
    if cfg.in_process:
        from experiments._serve_in_process import in_process_figures

        result.update(in_process_figures(model_dir, 256, settings["in_process_events"], log))
    (work / "serve_load.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(json.dumps(result, sort_keys=True))
    return result


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
