"""Real-time recommendation: replay ML-100K's last 20% as an event stream.

    python experiments/realtime.py --quick                 # a prefix of the stream, a few minutes
    python experiments/realtime.py                         # the whole stream
    python experiments/realtime.py --data synthetic --quick

1. The ``static`` model: SASRec (``--preset``, default ``ml100k-sasrec``) trained on
   the first ``train_fraction`` of the interactions in time (users with < 3 of them
   only seed histories).
2. The remaining interactions are replayed in timestamp order. Each event (user u
   consumed item i) goes through the serving step (``rec_jax.serve``): i is appended
   to u's cached state in ONE incremental step, all items are scored, seen items
   masked, and the exploration policy returns the slate of u's next event with its
   propensities. Micro-batches hold distinct users (``rec_jax.serve.stream``).
3. Prequential HR@10: when u's next event arrives, it is a hit if the item is in the
   model's top-10 made after u's previous event (predict before the event is
   revealed, then learn from it). ``online``: the output head is updated every
   ``update_every`` events from the clicks; ``static``: never updated.
4. Latency (per event, from arrival to returned slate) and throughput are measured
   with the policy and the online updates running. Without ``--rate`` the queue is
   saturated (closed loop): a micro-batch arrives when the previous one has been
   answered, so each event's latency is the wait for the whole micro-batch plus any
   online update that ran just before it. With ``--rate R`` events arrive every
   1/R s and latency includes queueing.
5. ``incremental_speedup/batch=<b>``: per micro-batch, the device serving step on the
   incremental states vs the same step re-encoding each user's full L-item window
   (scoring, seen mask, policy and top-k included in both; host bookkeeping and
   cache-miss rebuilds excluded from both), timed back to back on the same events;
   the ratio of medians.

Streaming semantics (see ``rec_jax.serve.sasrec_kv``): beyond L items, the cached
states keep each item's arrival position; ``prequential_hr@10/static_reencode``
(windowed re-encoding, the model's own semantics) measures what that costs.
The online update touches only the output head, so no cached state goes stale.
Each replay starts with a warm cache holding the users active last before the stream
(rebuilt untimed); hit rates count the stream's events only.

Timings on a shared machine are noisy: the study runs the compared paths side by
side in one process and reports medians; ``config.json`` records the load average.

Writes into ``--out`` (default ``runs/realtime``), via a temp folder renamed at the end:
``config.json``, ``metrics.json``, ``curves.npz`` (latencies per batch size, HR
curves), ``latency_vs_batch.png``, ``prequential_hr.png``.
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import rec_jax.cli  # noqa: E402
from experiments._realtime_replay import (  # noqa: E402,F401 (concurrent_stream: part of this study's API)
    Prequential, concurrent_stream, initial_topk, replay, seen_before, temporal_split, users_by_recency)


@dataclasses.dataclass(frozen=True)
class Config:
    """Stream replay of a static SASRec with incremental serving and online updates."""

    out: str = "runs/realtime"  # run folder (replaced atomically at the end)
    quick: bool = False  # small size: few training epochs, a prefix of the stream
    data: str = "ml-100k"  # ml-100k | synthetic | a path to a log file
    preset: str = "ml100k-sasrec"  # training preset of the static model (rec_jax.train.config.PRESETS)
    epochs: int = 0  # static-model training epochs (0: the preset's, with early stopping; quick: 3)
    train_fraction: float = 0.8  # the first fraction of interactions in time trains the static model
    batch_sizes: str = "1,16,64,256"  # micro-batch sizes replayed (quick: 1,16,256)
    max_events: int = 0  # replay at most this many stream events (0: all; quick: 4096)
    max_events_batch1: int = 0  # cap for micro-batch 1 and the unbounded-cache check (0: max_events; quick: 1024)
    load_events: int = 0  # saturated load test: events of the whole log replayed (0: all; quick: 16384)
    rate: float = 0.0  # arrival rate in events/s (0: saturated queue, closed loop)
    capacity: int = 0  # cached user states (0: a quarter of the users)
    eviction: str = "lru"  # lru | fifo
    policy: str = "epsilon_greedy"  # greedy | epsilon_greedy | softmax, on the model's scores
    epsilon: float = 0.1  # epsilon_greedy: per-slot exploration probability
    temperature: float = 1.0  # softmax: temperature on the logits
    slate_size: int = 10  # K items per slate
    update_every: int = 256  # M: events between online updates of the output head
    learning_rate: float = 1e-3  # Adam step size of the online head update
    update_steps: int = 1  # Adam steps per online update
    hr_bins: int = 20  # bins of the prequential-HR-over-time curve
    seed: int = 0  # training and serving seed


def resolve(cfg: Config) -> dict:
    """Concrete settings with the --quick defaults filled in; ValueError for people."""
    sizes = sorted({int(b) for b in (cfg.batch_sizes if not cfg.quick or cfg.batch_sizes != Config.batch_sizes
                                     else "1,16,256").split(",") if b.strip()})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"--batch-sizes: expected positive integers, got {cfg.batch_sizes!r}")
    if cfg.update_every < sizes[-1]:
        raise ValueError(f"--update-every={cfg.update_every} must be >= the largest micro-batch {sizes[-1]}")
    if not 0.0 < cfg.train_fraction < 1.0:
        raise ValueError(f"--train-fraction must be in (0, 1), got {cfg.train_fraction}")
    if cfg.rate < 0:
        raise ValueError(f"--rate must be >= 0 events/s, got {cfg.rate}")
    if cfg.eviction not in ("lru", "fifo"):
        raise ValueError(f"--eviction must be lru or fifo, got {cfg.eviction!r}")
    max_events = cfg.max_events or (4096 if cfg.quick else 0)
    return dict(dataclasses.asdict(cfg), batch_sizes=sizes, max_events=max_events,
                max_events_batch1=cfg.max_events_batch1 or (1024 if cfg.quick else max_events),
                epochs=cfg.epochs or (3 if cfg.quick else 0),
                load_events=cfg.load_events or (16384 if cfg.quick else 0))


def train_static(settings: dict, seqs, histories, log):
    """Train the static model on the history part; returns (model, params, train_metrics)."""
    from rec_jax.data.preprocess import SequenceData
    from rec_jax.models import make_model
    from rec_jax.train.config import get_preset, model_config
    from rec_jax.train.evaluate import Evaluator
    from rec_jax.train.pipeline import prepare
    from rec_jax.train.trainer import fit

    config = get_preset(settings["preset"])
    changes = {"seed": settings["seed"], "checkpoint_every": 0}
    if settings["epochs"]:
        changes["epochs"] = settings["epochs"]
    config = dataclasses.replace(config, **changes)
    users = [u for u, h in enumerate(histories) if len(h) >= 3]
    lengths = np.array([len(histories[u]) for u in users], np.int64)
    train_seqs = SequenceData(
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        items=np.concatenate([histories[u] for u in users]).astype(np.int32),
        timestamps=np.zeros(int(lengths.sum()), np.int64), num_users=len(users), num_items=seqs.num_items,
        raw_user_ids=seqs.raw_user_ids[users], raw_item_ids=seqs.raw_item_ids)
    prepared = prepare(config, seqs=train_seqs)
    model = make_model(config.model, model_config(config, seqs.num_items))
    if model.name != "sasrec":
        raise ValueError(f"--preset {settings['preset']!r} trains {model.name}; this study serves SASRec")
    result = fit(model, config, prepared.windows, Evaluator(model, prepared.valid, config.eval_batch_size),
                 progress=True, log=log)
    return model, result.best_params, {"valid/ndcg@10": float(result.history["valid_ndcg@10"][result.best_epoch]),
                                       "epochs_run": int(result.epochs_run), "train_users": len(users)}


# ----------------------------------------------------------------------------- study


def load_test(make_server, seqs, settings: dict, biggest: int, capacity: int, topk_width: int, log) -> dict:
    """``load_*`` metrics of the saturated load test (step (d) of ``main``).

    The replayed stream has few concurrent users (303 over its 19,857 events: a
    closed-loop micro-batch of 256 fills only at the start, the mean is ~43), so it
    cannot show what a full micro-batch sustains. Here every user's real item sequence
    arrives interleaved with everyone else's (round k holds every user's k-th item, users in
    order of their first timestamp): 943 concurrent users from empty states, with the policy
    and online updates running as in (b). Round-robin arrivals over 943 users defeat any cache
    smaller than the active set (LRU and FIFO both evict each user just before they return),
    so the headline run caches every user and a second run on a prefix measures the all-miss
    worst case with the default quarter-size cache (every event rebuilds its user's state).
    """
    num_users = seqs.num_users
    metrics: dict = {}
    load_histories, load_users, load_items = concurrent_stream(seqs)
    n_load = min(settings["load_events"] or len(load_users), len(load_users))
    for label, cap, n in (("", num_users, n_load), ("/quarter_cache", capacity, min(n_load, 4096))):
        server = make_server(biggest, start=load_histories, warm_cache=False, capacity=cap)
        nothing_pending = Prequential(np.zeros((num_users, topk_width), np.int32), np.zeros(num_users, bool))
        out = replay(server, load_users[:n], load_items[:n], biggest, 0.0, nothing_pending, desc=f"load test{label}")
        lat_ms = 1e3 * out["latency_s"]
        metrics[f"load_events_per_s/batch={biggest}{label}"] = float(n / out["total_s"])
        metrics[f"load_latency_ms_p99/batch={biggest}{label}"] = float(np.percentile(lat_ms, 99))
        metrics[f"load_mean_micro_batch/batch={biggest}{label}"] = float(np.mean(out["batch_len"]))
        metrics[f"load_cache_hit_rate/batch={biggest}{label}"] = server.table.hit_rate()
        metrics[f"load_events{label}"] = n
        # after the cold start: from the end of the batch that served the last user's first event
        first_round_end = int(out["batch_of"][~seen_before(load_users[:n])].max())
        warm_events = n - int(np.sum(out["batch_len"][: first_round_end + 1]))
        warm_s = out["batch_end_s"][-1] - out["batch_end_s"][first_round_end]
        metrics[f"load_events_per_s_warm/batch={biggest}{label}"] = (  # NaN: no event after the cold start
            float(warm_events / warm_s) if warm_events > 0 else float("nan"))
        log(f"load test b={biggest}{label} (cache {cap}): {n / out['total_s']:,.0f} events/s over {n} events, "
            f"mean micro-batch {np.mean(out['batch_len']):.1f}, hit rate {server.table.hit_rate():.3f}, "
            f"p99 {np.percentile(lat_ms, 99):.1f} ms")
    return metrics


def main(cfg: Config, log=print) -> dict:
    import jax

    from rec_jax import runs
    from rec_jax.data import load
    from rec_jax.serve.server import Reencoder, Server, ServerConfig

    settings = resolve(cfg)
    seqs = load(cfg.data)
    histories, users, items = temporal_split(seqs, cfg.train_fraction)
    if settings["max_events"]:
        users, items = users[: settings["max_events"]], items[: settings["max_events"]]
    num_users = seqs.num_users
    capacity = cfg.capacity or max(1, num_users // 4)
    log(f"{num_users} users, {seqs.num_items} items; {sum(map(len, histories))} history events, "
        f"replaying {len(users)} stream events; cache of {capacity} users")
    model, params, train_metrics = train_static(settings, seqs, histories, log)
    has_history = np.array([len(h) > 0 for h in histories])
    recent_users = users_by_recency(seqs, histories)
    serve_key = jax.random.key(cfg.seed + 1)  # slates keyed per event
    base = ServerConfig(batch_size=1, capacity=capacity, eviction=cfg.eviction, policy=cfg.policy,
                        epsilon=cfg.epsilon, temperature=cfg.temperature, slate_size=cfg.slate_size,
                        update_every=cfg.update_every, learning_rate=cfg.learning_rate,
                        update_steps=cfg.update_steps)
    compiled: dict = {}

    def make_server(batch: int, start=histories, warm_cache=True, **changes) -> Server:
        scfg = dataclasses.replace(base, batch_size=batch, **changes)
        # share jitted functions between servers of one batch size (jit caches by shape)
        fns = compiled.setdefault(("server", scfg.policy, scfg.update_every), None)
        server = Server(model, params, start, scfg, serve_key, compiled=fns)
        compiled[("server", scfg.policy, scfg.update_every)] = server.fns
        server.warmup()
        if warm_cache:
            server.prefill(recent_users)  # a warm cache: the users active last before the stream
        return server

    probe = make_server(1)
    start_topk = initial_topk(probe, histories, reencode=False)
    start_topk_reencode = initial_topk(probe, histories, reencode=True)

    metrics: dict = {f"static_model/{k}": v for k, v in train_metrics.items()}
    curves: dict = {}
    limit1 = settings["max_events_batch1"] or len(users)
    biggest = settings["batch_sizes"][-1]

    # (a) static model, incremental vs full re-encode, side by side on the same micro-batches
    for batch in sorted({1, biggest}):
        n = limit1 if batch == 1 else len(users)
        server = make_server(batch, online=False, pad_to_full=True)  # B-row steps: the cost of a full batch
        reencoder = Reencoder(server, compiled=compiled.get(("reencode", cfg.policy)))
        compiled[("reencode", cfg.policy)] = reencoder.fn
        pre, pre_r = Prequential(start_topk, has_history), Prequential(start_topk_reencode, has_history)
        reencoder.serve(users[:0], items[:0], np.zeros(0, np.int64))  # compile
        reencoder.seen = jax.numpy.array(server.seen, copy=True)
        out = replay(server, users[:n], items[:n], batch, 0.0, pre, reencoder=reencoder, pre_reencode=pre_r,
                     desc=f"static b={batch}")
        warm = slice(min(2, len(out["step_s"]) - 1), None)  # first calls may still allocate
        inc_ms, full_ms = 1e3 * np.median(out["step_s"][warm]), 1e3 * np.median(out["reencode_s"][warm])
        metrics[f"incremental_speedup/batch={batch}"] = float(full_ms / inc_ms)
        metrics[f"step_ms_median/incremental/batch={batch}"] = float(inc_ms)
        metrics[f"step_ms_median/reencode/batch={batch}"] = float(full_ms)
        metrics[f"step_capacity_events_per_s/batch={batch}"] = float(1e3 * batch / inc_ms)
        log(f"b={batch}: incremental step {inc_ms:.2f} ms, full re-encode {full_ms:.2f} ms "
            f"-> speedup {full_ms / inc_ms:.1f}x")
        if batch == biggest:
            metrics["prequential_hr@10/static"] = pre.hr()
            metrics["prequential_hr@10/static_reencode"] = pre_r.hr()
            metrics["prequential_events"] = len(pre.hits)
            curves["hr_curve/static"] = pre.curve(len(users), cfg.hr_bins)
            curves["hr_curve/static_reencode"] = pre_r.curve(len(users), cfg.hr_bins)

    # (b) timed replays with policy and online updates running, one per micro-batch size
    bounded_slates = None
    for batch in settings["batch_sizes"]:
        n = limit1 if batch == 1 else len(users)
        server = make_server(batch)
        pre = Prequential(start_topk, has_history)
        out = replay(server, users[:n], items[:n], batch, cfg.rate, pre, desc=f"online b={batch}")
        lat_ms = 1e3 * out["latency_s"]
        for q in (50, 95, 99):
            metrics[f"latency_ms_p{q}/batch={batch}"] = float(np.percentile(lat_ms, q))
        metrics[f"latency_ms_max/batch={batch}"] = float(lat_ms.max())
        metrics[f"events_per_s/batch={batch}"] = float(n / out["total_s"])
        metrics[f"cache_hit_rate/batch={batch}"] = server.table.hit_rate()
        metrics[f"online_updates/batch={batch}"] = server.num_updates
        metrics[f"update_ms_median/batch={batch}"] = float(1e3 * np.median(server.update_s)) if server.update_s \
            else float("nan")
        metrics[f"mean_micro_batch/batch={batch}"] = float(np.mean(out["batch_len"]))
        curves[f"latency_ms/batch={batch}"] = lat_ms.astype(np.float32)
        log(f"b={batch}: p50 {np.percentile(lat_ms, 50):.2f} ms, p99 {np.percentile(lat_ms, 99):.2f} ms, "
            f"{n / out['total_s']:,.0f} events/s, hit rate {server.table.hit_rate():.3f}, HR@10 {pre.hr():.4f}")
        if batch == biggest:
            metrics["cache_hit_rate"] = server.table.hit_rate()
            metrics["prequential_hr@10/online"] = pre.hr()
            curves["hr_curve/online"] = pre.curve(len(users), cfg.hr_bins)
            bounded_slates = out["slates"]

    # (c) eviction: an unbounded cache must give the same slates; FIFO's hit rate as the baseline
    n = min(limit1 if biggest == 1 else len(users), len(users))
    unbounded = make_server(biggest, capacity=num_users)
    out = replay(unbounded, users[:n], items[:n], biggest, 0.0, Prequential(start_topk, has_history),
                 desc="unbounded cache")
    same = np.all(out["slates"] == bounded_slates[:n], axis=1)
    metrics["slates_identical_to_unbounded"] = float(same.mean())
    fifo = make_server(biggest, eviction="fifo")
    replay(fifo, users[:n], items[:n], biggest, 0.0, Prequential(start_topk, has_history), desc="fifo cache")
    metrics["cache_hit_rate/fifo"] = fifo.table.hit_rate()
    # (d) saturated load test: the whole log's users at once
    metrics.update(load_test(make_server, seqs, settings, biggest, capacity, start_topk.shape[1], log))

    metrics["cache_capacity"] = capacity
    metrics["num_users"] = num_users
    metrics["stream_events"] = len(users)
    log(f"slates identical to an unbounded cache: {same.mean():.4f}; hit rate LRU "
        f"{metrics['cache_hit_rate']:.3f} vs FIFO {metrics['cache_hit_rate/fifo']:.3f}")

    with runs.staged_run_dir(cfg.out) as tmp:  # a temp folder renamed at the end: never half-written
        runs.write_json(tmp / "config.json", {"config": settings, "provenance": runs.provenance(),
                                              "load_average": os.getloadavg()})
        runs.write_json(tmp / "metrics.json", metrics)
        np.savez(tmp / "curves.npz", **curves)
        plot(metrics, curves, settings, tmp)
    return metrics


def plot(metrics: dict, curves: dict, settings: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rec_jax.runs import save_figure

    sizes = settings["batch_sizes"]
    fig, (ax, ax_tp) = plt.subplots(1, 2, figsize=(10, 3.8))
    for q in (50, 95, 99):
        ax.plot(sizes, [metrics[f"latency_ms_p{q}/batch={b}"] for b in sizes], marker="o", label=f"p{q}")
    ax.set(xscale="log", yscale="log", xlabel="micro-batch size", ylabel="latency, arrival to slate (ms)",
           title="latency (policy + online updates running)")
    ax.legend()
    ax_tp.plot(sizes, [metrics[f"events_per_s/batch={b}"] for b in sizes], marker="o")
    ax_tp.set(xscale="log", yscale="log", xlabel="micro-batch size", ylabel="events / s", title="throughput")
    save_figure(fig, out / "latency_vs_batch.png")

    fig, ax = plt.subplots(figsize=(6, 3.8))
    bins = settings["hr_bins"]
    x = (np.arange(bins) + 0.5) / bins
    for name, label in (("online", "online head updates"), ("static", "static (no updates)"),
                        ("static_reencode", "static, windowed re-encode")):
        if f"hr_curve/{name}" in curves:
            ax.plot(x, curves[f"hr_curve/{name}"], marker=".", label=label)
    ax.set(xlabel="fraction of the replayed stream", ylabel="prequential HR@10",
           title="next-item accuracy over time")
    ax.legend()
    save_figure(fig, out / "prequential_hr.png")


def cli(argv: list[str] | None = None) -> int:
    return rec_jax.cli.main(Config, main, argv, __doc__)


if __name__ == "__main__":
    sys.exit(cli())
