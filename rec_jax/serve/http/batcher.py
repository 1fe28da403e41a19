"""Micro-batching: concurrent ``/rank`` requests into the jitted step, one thread, bounded queue.

    batcher = Batcher(ranker, log, loop, BatcherConfig(...), metrics)
    future = batcher.submit(request, deadline)      # asyncio.Future[Answer]; raises QueueFull
    batcher.add_clicks(user, items)                 # from a committed reward
    batcher.stop()

One thread owns the :class:`rec_jax.serve.http.ranker.Ranker` (JAX releases the GIL
while a step runs, so the event loop keeps accepting requests meanwhile). It waits
for a request, then takes every request already waiting, up to the largest compiled
bucket (no waiting for more: a lone request is served at once in the smallest
bucket, a burst in one large step). Requests of one user in the same batch would
race on the user's state, and a batch runs one policy: such requests wait for the
next batch, in arrival order. A request whose deadline passed before its batch
starts is answered "deadline exceeded" (503) and neither served nor logged.

After the step, the batch's decisions go to the decision log as one job, and each
request is answered only when that job is committed, so every slate a client
receives is in the log. The thread does not wait for the commit: it computes the
next batch meanwhile.
"""
from __future__ import annotations

import asyncio
import collections
import dataclasses
import os
import queue
import threading
import time

from rec_jax.serve.http.decision_log import Decision, DecisionLog
from rec_jax.serve.http.ranker import RankRequest, Ranker


class QueueFull(RuntimeError):
    """The bounded queue is full: answer 429."""


@dataclasses.dataclass(frozen=True)
class BatcherConfig:
    queue_size: int = 1024  # requests waiting at most (more: 429)
    ttl_s: float = 600.0  # a decision's time-to-live: rewards after it are refused


@dataclasses.dataclass(frozen=True)
class Answer:
    """What ``/rank`` returns (``status`` 200) or why not (``error`` with a 4xx/5xx ``status``)."""

    status: int
    body: dict


class Batcher:
    """See module docstring."""

    def __init__(self, ranker: Ranker, log: DecisionLog, loop: asyncio.AbstractEventLoop, cfg: BatcherConfig,
                 metrics=None, clock=time.time, reload=None, reload_s: float = 1.0):
        self.ranker, self.log, self.loop, self.cfg, self.metrics, self.clock = ranker, log, loop, cfg, metrics, clock
        self.reload, self.reload_s = reload, reload_s  # reload(): swap in a newly published head, if any
        self.last_reload = 0.0
        self.waiting: queue.SimpleQueue = queue.SimpleQueue()
        self.depth = 0  # requests submitted and not yet taken into a batch
        self.depth_lock = threading.Lock()
        self.clicks: queue.SimpleQueue = queue.SimpleQueue()
        self.held: collections.deque = collections.deque()  # requests pushed back to the next batch
        self.thread = threading.Thread(target=self._run, name="rank-batcher", daemon=True)
        self.running = True
        self.thread.start()

    # ---- the event loop's side ------------------------------------------------------------
    def submit(self, request: RankRequest, deadline: float) -> asyncio.Future:
        """Queue ``request`` (``deadline``: time.monotonic() after which it is dropped)."""
        with self.depth_lock:
            if self.depth >= self.cfg.queue_size:
                raise QueueFull(f"queue: {self.depth} requests waiting (the limit is {self.cfg.queue_size})")
            self.depth += 1
        future = self.loop.create_future()
        self.waiting.put((request, deadline, future))
        return future

    def add_clicks(self, user: str, items) -> None:
        if items:
            self.clicks.put((user, tuple(items)))

    def stop(self) -> None:
        self.running = False
        self.waiting.put(None)
        self.thread.join()

    def _answer(self, future: asyncio.Future, answer: Answer) -> None:
        self._answer_all([(future, answer)])

    def _answer_all(self, pairs) -> None:
        """Complete many futures with ONE wake-up of the event loop (each
        ``call_soon_threadsafe`` writes to the loop's self-pipe)."""

        def set_results():
            for future, answer in pairs:
                if not future.done():
                    future.set_result(answer)

        self.loop.call_soon_threadsafe(set_results)

    # ---- the batcher thread ---------------------------------------------------------------
    def _take(self):
        """The next batch: (requests, deadlines, futures), distinct users, one policy."""
        pending = list(self.held)
        taken = len(pending)  # held requests were counted in depth when pushed back
        self.held.clear()
        if not pending:
            try:  # wake up now and then while idle, to take a new published head in
                first = self.waiting.get(timeout=self.reload_s if self.reload else None)
            except queue.Empty:
                return []
            if first is None:
                return None
            pending.append(first)
            taken += 1
        while True:
            try:
                item = self.waiting.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self.running = False
                break
            pending.append(item)
            taken += 1
        with self.depth_lock:
            self.depth -= taken
        batch, users = [], set()
        policy = pending[0][0].policy
        for item in pending:
            request = item[0]
            if len(batch) < self.ranker.max_rows and request.user not in users and request.policy == policy:
                batch.append(item)
                users.add(request.user)
            else:
                self.held.append(item)
        with self.depth_lock:
            self.depth += len(self.held)
        return batch

    def _drain_clicks(self) -> None:
        while True:
            try:
                user, items = self.clicks.get_nowait()
            except queue.Empty:
                return
            self.ranker.add_clicks(user, items)

    def _run(self) -> None:
        while self.running or self.held:
            if self.reload is not None and time.monotonic() - self.last_reload >= self.reload_s:
                self.last_reload = time.monotonic()
                self.reload()  # between batches: a batch is served by one model version
            batch = self._take()
            if batch is None:
                break
            if not batch:
                continue
            self._drain_clicks()
            now = time.monotonic()
            live = []
            for request, deadline, future in batch:
                if now > deadline:
                    self._answer(future, Answer(503, {"error": "deadline: the request waited past its deadline "
                                                               "before a batch could take it"}))
                else:
                    live.append((request, future))
            if not live:
                continue
            try:
                self._serve(live)
            except Exception as err:  # noqa: BLE001 (the service survives; the clients learn why)
                for _, future in live:
                    self._answer(future, Answer(500, {"error": f"rank step failed: {type(err).__name__}: {err}"}))

    def _serve(self, live) -> None:
        requests = [request for request, _ in live]
        start = time.perf_counter()
        ranked = self.ranker.rank(requests)
        step_s = time.perf_counter() - start
        if self.metrics is not None:
            self.metrics.batch(len(live), step_s, self.ranker.table.hit_rate())
        created = self.clock()
        decisions, answers = [], []
        version = self.ranker.model_version
        # 128 random bits per decision id, drawn in one getrandom call per batch (uuid4 makes
        # one system call per id: measured ~500/s at 1,000 requests/s)
        random_hex = os.urandom(16 * len(live)).hex()
        for i, ((request, future), result) in enumerate(zip(live, ranked)):
            if result.error:
                self._answer(future, Answer(422, {"error": result.error}))
                continue
            decision_id = random_hex[32 * i:32 * (i + 1)]
            policy_params = self.ranker.policy_version(result.policy)
            decisions.append(Decision(
                id=decision_id, user=request.user, context=result.context, slate=result.slate,
                propensities=result.propensities, propensity_kind="exact", policy=result.policy,
                policy_params={"version": policy_params}, model_version=version, created=created,
                expires=created + self.cfg.ttl_s, history_len=result.history_len, greedy=result.greedy,
                candidates=None if request.candidates is None else list(request.candidates),
                exclude=list(request.exclude) if request.exclude else None))
            answers.append((future, Answer(200, {
                "decision_id": decision_id, "slate": result.slate, "propensities": result.propensities,
                "propensity_kind": "exact", "model_version": version, "policy": result.policy,
                "policy_version": policy_params, "expires_in_s": self.cfg.ttl_s})))
        if not decisions:
            return
        committed = self.log.log_decisions(decisions)

        def on_commit(fut):
            err = fut.exception()
            if err is not None:
                failed = Answer(500, {"error": f"decision log: {type(err).__name__}: {err}"})
                self._answer_all([(future, failed) for future, _ in answers])
            else:
                self._answer_all(answers)

        committed.add_done_callback(on_commit)
