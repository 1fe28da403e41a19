"""The service's durable decision log: SQLite in WAL mode, written by one thread with group commit.

    log = DecisionLog("runs/serve/decisions.db", ttl_s=600)
    fut = log.log_decisions([Decision(...), ...])     # concurrent.futures.Future[None]
    fut = log.log_reward("d-...", [0.0, 1.0, 0.0])     # Future[RewardOutcome]
    log.close()

Why SQLite: it is in the standard library, a single file a researcher can open with
any tool, and its commit is atomic (a row is either wholly in the database or not
at all: no torn rows, whatever kills the process). WAL mode lets readers (the
export, ``/metrics``) run beside the writer; ``synchronous=NORMAL`` in WAL mode makes
each commit a ``write()`` into the WAL file without an ``fsync``: a committed
transaction survives the death of the process (SIGKILL, a crash: the bytes are in
the OS page cache), and only a power loss or OS crash may lose the last commits.
``sync="full"`` fsyncs every commit for that case too, at a cost per commit.

Group commit: every write (a micro-batch of decisions, one reward) is a job on one
queue; the writer thread takes whatever jobs are waiting, runs them in ONE
transaction, commits, and only then completes each job's future. So a reward is
acknowledged after it is committed, and the cost of a commit is shared by every
request that arrived meanwhile.

Tables (JSON arrays as text, written by orjson):

* ``decisions(id, user, context, history_len, slate, propensities, propensity_kind,
  policy, policy_params, model_version, created, expires, candidates, exclude)``:
  context = the most recent items of the user's history (ids, oldest first: the
  ``rebuild_len`` items that determine the model's state, all of them for a short
  history), history_len = the history's full length (the items' positions follow
  from it), candidates / exclude = the request's (JSON, NULL when absent), greedy =
  the model's top-k of the items left (what the greedy policy would have shown: with
  exact propensities, the greedy policy's value is estimable from the log);
* ``rewards(decision_id, rewards, received)``: one row per decision at most; a
  second identical reward is acknowledged as a duplicate, a different one refused;
* ``meta(key, value)``: e.g. the model version last served.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import queue
import sqlite3
import threading
import time
from pathlib import Path

import orjson

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS decisions(id TEXT PRIMARY KEY, user TEXT NOT NULL, context TEXT NOT NULL, "
    "history_len INTEGER NOT NULL, slate TEXT NOT NULL, propensities TEXT NOT NULL, propensity_kind TEXT NOT NULL, "
    "policy TEXT NOT NULL, policy_params TEXT NOT NULL, model_version TEXT NOT NULL, created REAL NOT NULL, "
    "expires REAL NOT NULL, candidates TEXT, exclude TEXT, greedy TEXT)",
    "CREATE TABLE IF NOT EXISTS rewards(decision_id TEXT PRIMARY KEY REFERENCES decisions(id), "
    "rewards TEXT NOT NULL, received REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # no secondary index: each would be one more page written per commit; the only
    # per-user query (last_histories, at start-up) scans the table once
)
SYNC_MODES = ("normal", "full")
MAX_JOBS_PER_COMMIT = 4096  # bounds one transaction (and the latency of the first job in it)


@dataclasses.dataclass(frozen=True)
class Decision:
    """One served slate, as logged."""

    id: str
    user: str
    context: list[int]  # the most recent history ids the slate was computed from (oldest first)
    slate: list[int]  # item ids shown, slot order
    propensities: list[float]  # per slot: P(this pick | the picks before it)
    propensity_kind: str  # "exact" (rec_jax.policies.base.PROPENSITY_KINDS)
    policy: str
    policy_params: dict
    model_version: str
    created: float  # Unix seconds
    expires: float  # Unix seconds after which a reward is refused
    history_len: int = -1  # the user's full history length (-1: len(context))
    candidates: list[int] | None = None  # the request's candidates (None: the whole catalogue)
    exclude: list[int] | None = None  # the request's exclusions
    greedy: list[int] | None = None  # the model's top-k of the items left (the greedy slate), slot order


@dataclasses.dataclass(frozen=True)
class RewardOutcome:
    """What happened to one reward. ``status``: "ok" | "duplicate" (acknowledged, nothing
    new written) | "unknown" | "expired" | "length" | "conflict" (refused, nothing written)."""

    status: str
    message: str = ""
    user: str | None = None
    clicked: tuple[int, ...] = ()  # items of the slots with a positive reward (status "ok")


def connect(path: str | Path, *, sync: str = "normal", readonly: bool = False) -> sqlite3.Connection:
    """A connection in WAL mode with the schema in place (``readonly``: no schema writes)."""
    if sync not in SYNC_MODES:
        raise ValueError(f"decision log sync={sync!r}: expected one of {', '.join(SYNC_MODES)}")
    if readonly:
        con = sqlite3.connect(f"file:{Path(path).absolute()}?mode=ro", uri=True, check_same_thread=False)
        return con
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute(f"PRAGMA synchronous={sync.upper()}")
    con.execute("PRAGMA foreign_keys=ON")
    for statement in SCHEMA:
        con.execute(statement)
    return con


def _decision_row(d: Decision) -> tuple:
    def maybe(values):
        return None if values is None else orjson.dumps(values).decode()

    return (d.id, d.user, orjson.dumps(d.context).decode(), d.history_len if d.history_len >= 0 else len(d.context),
            orjson.dumps(d.slate).decode(), orjson.dumps(d.propensities).decode(), d.propensity_kind, d.policy,
            orjson.dumps(d.policy_params).decode(), d.model_version, d.created, d.expires, maybe(d.candidates),
            maybe(d.exclude), maybe(d.greedy))


class DecisionLog:
    """The writer thread and its queue (see module docstring). Thread-safe."""

    def __init__(self, path: str | Path, *, sync: str = "normal", clock=time.time):
        self.path = Path(path)
        self.clock = clock
        self.con = connect(self.path, sync=sync)
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.commits = 0  # transactions committed (for /metrics: jobs per commit)
        self.jobs_committed = 0
        self.thread = threading.Thread(target=self._run, name="decision-log", daemon=True)
        self.thread.start()

    # ---- the API (any thread) ---------------------------------------------------------
    def log_decisions(self, decisions: list[Decision]) -> concurrent.futures.Future:
        return self._submit(("decisions", decisions))

    def log_reward(self, decision_id: str, rewards: list[float], *, loop=None):
        """Future[RewardOutcome]; with ``loop`` an asyncio future of that loop, completed
        together with every other one of the same commit (one wake-up per commit)."""
        if loop is None:
            return self._submit(("reward", (decision_id, [float(r) for r in rewards])))
        future = loop.create_future()
        self.jobs.put(((("reward", (decision_id, [float(r) for r in rewards]))), (loop, future)))
        return future

    def set_meta(self, key: str, value: str) -> concurrent.futures.Future:
        return self._submit(("meta", (key, value)))

    def close(self) -> None:
        """Commit what is queued, stop the writer, close the connection."""
        if self.thread.is_alive():
            self.jobs.put(None)
            self.thread.join()
        self.con.close()

    def _submit(self, job) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self.jobs.put((job, future))
        return future

    # ---- the writer thread -------------------------------------------------------------
    def _run(self) -> None:
        stop = False
        while not stop:
            first = self.jobs.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_JOBS_PER_COMMIT:
                try:
                    job = self.jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._commit(batch)

    def _commit(self, batch) -> None:
        results = []
        try:
            self.con.execute("BEGIN IMMEDIATE")
            for (kind, payload), _ in batch:
                results.append(self._apply(kind, payload))
            self.con.execute("COMMIT")
        except Exception as err:  # noqa: BLE001 (every waiting request learns of the failure)
            try:
                self.con.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._complete([(future, err, True) for _, future in batch])
            return
        self.commits += 1
        self.jobs_committed += len(batch)
        self._complete([(future, result, False) for (_, future), result in zip(batch, results)])

    @staticmethod
    def _complete(done) -> None:
        """Set each job's result (or exception); asyncio futures grouped per loop."""
        by_loop: dict = {}
        for future, value, failed in done:
            if isinstance(future, tuple):
                by_loop.setdefault(future[0], []).append((future[1], value, failed))
            elif failed:
                future.set_exception(value)
            else:
                future.set_result(value)

        def settle(items):
            for fut, value, failed in items:
                if not fut.done():
                    fut.set_exception(value) if failed else fut.set_result(value)

        for loop, items in by_loop.items():
            loop.call_soon_threadsafe(settle, items)

    def _apply(self, kind: str, payload):
        if kind == "decisions":
            self.con.executemany("INSERT INTO decisions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                                 [_decision_row(d) for d in payload])
            return None
        if kind == "meta":
            self.con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", payload)
            return None
        return self._reward(*payload)

    def _reward(self, decision_id: str, rewards: list[float]) -> RewardOutcome:
        row = self.con.execute("SELECT user, slate, expires FROM decisions WHERE id = ?", (decision_id,)).fetchone()
        if row is None:
            return RewardOutcome("unknown", f"decision_id: no decision {decision_id!r} in the log")
        user, slate_text, expires = row
        slate = orjson.loads(slate_text)
        if len(rewards) != len(slate):
            return RewardOutcome("length", f"rewards: expected {len(slate)} values (one per slot), got {len(rewards)}")
        previous = self.con.execute("SELECT rewards FROM rewards WHERE decision_id = ?", (decision_id,)).fetchone()
        if previous is not None:
            if orjson.loads(previous[0]) == rewards:
                return RewardOutcome("duplicate", user=user)
            return RewardOutcome("conflict", f"rewards: decision {decision_id!r} already has a different reward")
        now = self.clock()
        if now > expires:
            return RewardOutcome("expired", f"decision_id: decision {decision_id!r} expired "
                                            f"{now - expires:.1f} s ago (its time-to-live is over)")
        self.con.execute("INSERT INTO rewards VALUES (?, ?, ?)", (decision_id, orjson.dumps(rewards).decode(), now))
        clicked = tuple(int(item) for item, r in zip(slate, rewards) if r > 0)
        return RewardOutcome("ok", user=user, clicked=clicked)


def read_meta(path: str | Path, key: str) -> str | None:
    if not Path(path).exists():
        return None
    con = connect(path, readonly=True)
    try:
        row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    except sqlite3.OperationalError:  # a database without the schema yet
        row = None
    finally:
        con.close()
    return None if row is None else row[0]


def last_histories(path: str | Path) -> dict[str, list[int]]:
    """Each user's history as the log last saw it: the newest decision's context plus
    the items clicked on that decision (its reward), LEFT-padded with 0 to the
    history's full length.

    This is what a restarted service starts each known user from. The context holds
    the items that determine the model's state, and the padding keeps their
    positions, so the rebuilt state equals the killed service's (item 0 is padding:
    never recommended, never a real item); items older than the context are no
    longer masked from that user's slates.
    """
    if not Path(path).exists():
        return {}
    con = connect(path, readonly=True)
    try:
        rows = con.execute(
            "SELECT d.user, d.context, d.history_len, d.slate, r.rewards FROM decisions d "
            "JOIN (SELECT user, MAX(created) AS created FROM decisions GROUP BY user) last "
            "ON d.user = last.user AND d.created = last.created "
            "LEFT JOIN rewards r ON r.decision_id = d.id").fetchall()
    finally:
        con.close()
    histories: dict[str, list[int]] = {}
    for user, context, history_len, slate, rewards in rows:
        items = list(orjson.loads(context))
        items = [0] * max(0, history_len - len(items)) + items
        if rewards is not None:
            items += [int(i) for i, r in zip(orjson.loads(slate), orjson.loads(rewards)) if r > 0]
        histories[user] = items
    return histories
