"""The load generator of experiments/serve_load.py: ML-100K users against the HTTP service.

* :class:`Users`: replays each ML-100K user's real events (each ``/rank`` carries the
  user's next real item as ``events``) and draws their clicks on the returned slate
  from the ``ml100k`` simulator's ground truth, so rewards respond to what is shown:
  P(click at slot k) = examination[k] * sigmoid(scale * (<u, v_i> + b_i) + offset)
  (the position-based model of :mod:`rec_jax.sim.recsys_clicks`; fatigue is left out).
  A user is in at most one rank/reward cycle at a time.
* :func:`open_loop`: cycles started at a fixed rate (each ``/rank`` followed by its
  ``/reward``); rank latency counts from the SCHEDULED start, so a client or server
  that falls behind shows up in the figure (no coordinated omission).
* :func:`closed_loop`: C workers, each starting its next cycle when the last ended.

Bounded: at most ``max_in_flight`` cycles at once (beyond: counted as ``skipped``), and
each phase ends after its duration.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import time

import numpy as np
import orjson

JSON = {"Content-Type": "application/json"}


@dataclasses.dataclass
class Tally:
    """What one phase saw."""

    rank_latency_s: list = dataclasses.field(default_factory=list)
    rank_scheduled: list = dataclasses.field(default_factory=list)  # perf_counter() each cycle was scheduled at
    error_at: list = dataclasses.field(default_factory=list)  # perf_counter() of each failed request
    rank_ok: int = 0
    reward_ok: int = 0
    errors: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    skipped: int = 0  # cycles not started: every user busy or max_in_flight reached
    acknowledged: list = dataclasses.field(default_factory=list)  # decision ids whose reward was acknowledged
    clicks: int = 0
    slots: int = 0
    elapsed_s: float = 0.0

    def summary(self) -> dict:
        lat = 1e3 * np.asarray(self.rank_latency_s) if self.rank_latency_s else np.array([np.nan])
        return {"rank_p50_ms": float(np.percentile(lat, 50)), "rank_p99_ms": float(np.percentile(lat, 99)),
                "requests_per_s": (self.rank_ok + self.reward_ok) / max(self.elapsed_s, 1e-9),
                "rank_ok": self.rank_ok, "reward_ok": self.reward_ok, "errors": dict(self.errors),
                "skipped": self.skipped, "ctr": self.clicks / max(self.slots, 1)}


class Users:
    """ML-100K users' event streams and simulated clicks (see module docstring)."""

    def __init__(self, seqs, ground_truth, offset: float, scale: float, examination, seed: int = 0):
        self.offsets = np.asarray(seqs.offsets, np.int64)
        self.items = np.asarray(seqs.items, np.int64)
        self.position = np.zeros(seqs.num_users, np.int64)
        self.u = np.asarray(ground_truth.user_factors, np.float32)
        self.v = np.asarray(ground_truth.item_factors, np.float32)
        self.b = np.asarray(ground_truth.item_bias, np.float32)
        self.offset, self.scale = float(offset), float(scale)
        self.examination = np.asarray(examination, np.float32)
        self.rng = np.random.default_rng(seed)
        self.idle = collections.deque(self.rng.permutation(seqs.num_users).tolist())

    def next_events(self, user: int) -> list[int]:
        """The user's next real item (none once their log is replayed)."""
        p = self.position[user]
        if self.offsets[user] + p >= self.offsets[user + 1]:
            return []
        self.position[user] += 1
        return [int(self.items[self.offsets[user] + p])]

    def clicks(self, user: int, slate: list[int]) -> list[float]:
        items = np.asarray(slate, np.int64) - 1  # item id i is ground-truth row i - 1
        attraction = 1.0 / (1.0 + np.exp(-(self.scale * (self.v[items] @ self.u[user] + self.b[items]) + self.offset)))
        p = self.examination[: len(slate)] * attraction
        return (self.rng.random(len(slate)) < p).astype(float).tolist()


async def cycle(session, base: str, users: Users, user: int, scheduled: float, tally: Tally, slate_size: int,
                headers=JSON) -> None:
    """One user's ``/rank`` then ``/reward``; the user returns to the idle pool at the end."""
    try:
        body = {"user": str(user), "events": users.next_events(user), "slate_size": slate_size}
        async with session.post(base + "/rank", data=orjson.dumps(body), headers=headers) as response:
            payload = await response.read()
            status = response.status
        if status != 200:
            tally.errors[f"rank {status}"] += 1
            tally.error_at.append(time.perf_counter())
            return
        tally.rank_latency_s.append(time.perf_counter() - scheduled)
        tally.rank_scheduled.append(scheduled)
        tally.rank_ok += 1
        decision = orjson.loads(payload)
        rewards = users.clicks(user, decision["slate"])
        tally.clicks += int(sum(rewards))
        tally.slots += len(rewards)
        body = {"decision_id": decision["decision_id"], "rewards": rewards}
        async with session.post(base + "/reward", data=orjson.dumps(body), headers=headers) as response:
            await response.read()
            status = response.status
        if status == 200:
            tally.reward_ok += 1
            tally.acknowledged.append(decision["decision_id"])
        else:
            tally.errors[f"reward {status}"] += 1
            tally.error_at.append(time.perf_counter())
    except Exception as err:  # noqa: BLE001 (a killed server: connection refused / reset, counted)
        tally.errors[type(err).__name__] += 1
        tally.error_at.append(time.perf_counter())
    finally:
        users.idle.append(user)


async def open_loop(session, base: str, users: Users, rate: float, duration_s: float, slate_size: int, *,
                    max_in_flight: int = 512, during=None) -> Tally:
    """Cycles started at ``rate`` per second for ``duration_s``; ``during(elapsed_s)`` is
    awaited-free callback run between starts (the SIGKILL phase uses it)."""
    tally = Tally()
    tasks: set = set()
    start = time.perf_counter()
    i = 0
    while True:
        scheduled = start + i / rate
        if scheduled - start >= duration_s:
            break
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if during is not None:
            during(time.perf_counter() - start)
        i += 1
        if not users.idle or len(tasks) >= max_in_flight:
            tally.skipped += 1
            continue
        task = asyncio.create_task(cycle(session, base, users, users.idle.popleft(), scheduled, tally, slate_size))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    tally.elapsed_s = time.perf_counter() - start
    return tally


async def closed_loop(session, base: str, users: Users, concurrency: int, duration_s: float, slate_size: int
                      ) -> Tally:
    """``concurrency`` workers back to back for ``duration_s``."""
    tally = Tally()
    start = time.perf_counter()

    async def worker():
        while time.perf_counter() - start < duration_s:
            if not users.idle:
                await asyncio.sleep(0.001)
                continue
            await cycle(session, base, users, users.idle.popleft(), time.perf_counter(), tally, slate_size)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    tally.elapsed_s = time.perf_counter() - start
    return tally
