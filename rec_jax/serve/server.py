"""Host-side serving loop glue: cache slots, history, rebuilds, the jitted step, updates.

    server = Server(model, params, histories, ServerConfig(...), key)
    out = server.serve(users, items, event_ids)   # numpy Served for one micro-batch
    server.maybe_update()                         # online head update every M events

Everything numeric happens in the jitted functions of this package; this class only
keeps the host bookkeeping (which user holds which slot, every user's history) and
pads micro-batches to the fixed batch size so each function compiles once.
"""
from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from rec_jax.policies import make_policy
from rec_jax.policies.base import PolicySpec
from rec_jax.serve.incremental import make_incremental
from rec_jax.serve.online import make_head_updater
from rec_jax.serve.recommend import Feedback, check_policy, initial_head, make_recommend
from rec_jax.serve.user_cache import HistoryStore, SlotTable, init_store, make_rebuild_rows


TIME_UPDATE_EVERY = 8  # online updates between two that are waited for and timed


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    batch_size: int = 256  # B: rows of one serving step (smaller micro-batches are padded)
    capacity: int = 256  # C: users whose state stays cached
    eviction: str = "lru"  # "lru" | "fifo"
    policy: str = "epsilon_greedy"  # greedy | epsilon_greedy | softmax (acting on the model's scores)
    epsilon: float = 0.1  # epsilon_greedy: exploration probability per slot
    temperature: float = 1.0  # softmax: temperature on the logits
    slate_size: int = 10  # K items per slate
    eval_k: int = 10  # length of the model's top-k used for prequential HR
    mask_seen: bool = True  # never recommend an item the user already consumed
    online: bool = True  # update the output head from the stream's clicks
    update_every: int = 256  # M: events between online updates
    learning_rate: float = 1e-3  # Adam step size of the online head update
    update_steps: int = 1  # Adam steps per online update
    pad_to_full: bool = False  # pad every micro-batch to batch_size rows (else to the next power of 4)


def _bucket(n: int, cap: int) -> int:
    """Smallest power of 8 >= n (at most ``cap``): few rebuild shapes, few compilations."""
    size = 1
    while size < n:
        size *= 8
    return min(size, cap)


def rebuild_buckets(cap: int) -> list[int]:
    """Every row count :meth:`Server._rebuild` can use for micro-batches of at most ``cap``."""
    return sorted({_bucket(n, cap) for n in range(1, cap + 1)})


def policy_and_params(cfg: ServerConfig, num_items: int):
    check_policy(cfg.policy)
    spec = PolicySpec(num_items=num_items + 1, slate_size=1)  # slates are built pick by pick
    policy, params = make_policy(cfg.policy, spec)
    if cfg.policy == "epsilon_greedy":
        params = params.replace(epsilon=cfg.epsilon)
    if cfg.policy == "softmax":
        params = params.replace(temperature=cfg.temperature)
    return policy, params


def row_buckets(batch_size: int, pad_to_full: bool) -> list[int]:
    """The row counts a serving step is compiled for: powers of 4 up to B (and B)."""
    if pad_to_full:
        return [batch_size]
    sizes, size = [], 1
    while size < batch_size:
        sizes.append(size)
        size *= 4
    return sizes + [batch_size]


def rows_for(b: int, buckets: list[int]) -> int:
    return next(size for size in buckets if size >= b)


class Server:
    """One serving process over ``num_users`` users (see module docstring)."""

    def __init__(self, model, params, histories, cfg: ServerConfig, key, *, compiled=None):
        if cfg.update_every < cfg.batch_size:
            raise ValueError(f"ServerConfig.update_every={cfg.update_every} must be >= batch_size={cfg.batch_size}")
        self.model, self.params, self.cfg, self.key = model, params, cfg, key
        self.num_users, n = len(histories), model.config.num_items
        self.inc = make_incremental(model)
        self.history = HistoryStore.from_sequences(histories)
        self.table = SlotTable(cfg.capacity, scratch=cfg.batch_size, policy=cfg.eviction)
        self.policy, self.policy_params = policy_and_params(cfg, n)
        # jitted functions can be shared between servers of the same shapes (no recompilation)
        self.fns = compiled or {
            "recommend": make_recommend(self.inc, self.policy, num_items=n, slate_size=cfg.slate_size, eval_k=cfg.eval_k,
                                        mask_seen=cfg.mask_seen, fast_epsilon=cfg.policy == "epsilon_greedy"),
            "rebuild": make_rebuild_rows(self.inc),
            "updater": make_head_updater(n, cfg.learning_rate, cfg.update_steps),
        }
        self.store = init_store(self.inc, self.table.num_rows, model.config.dim)
        seen = np.zeros((self.num_users + 1, n + 1), bool)
        for u, s in enumerate(histories):
            seen[u, s] = True
        seen[:, 0] = False
        self.seen = jnp.asarray(seen)
        self.head_state = self.fns["updater"].init(initial_head(model, params))
        self.feedback = Feedback.empty(cfg.update_every, model.config.dim)
        # Everything the jitted functions take is committed to one device, as their outputs
        # are: an uncommitted argument is another jit cache key, so the first step after an
        # online update (whose head is committed) recompiled each bucket (measured: 1.3-2 s
        # each, 8.5 of the 10.3 s of a whole-log replay at batch 256).
        (self.params, self.key, self.store, self.seen, self.head_state, self.feedback) = jax.device_put(
            (params, key, self.store, self.seen, self.head_state, self.feedback), jax.devices()[0])
        self.since_update = 0
        self.num_updates = 0
        self.rebuilt_rows = 0
        self.last_step_s = float("nan")  # device step only (no host bookkeeping, no rebuild)
        self.update_s: list[float] = []  # wall time of the timed online updates (every TIME_UPDATE_EVERY-th)
        self.buckets = row_buckets(cfg.batch_size, cfg.pad_to_full)

    def warmup(self) -> None:
        """Compile every shape the serving loop uses, touching only the trash row / user."""
        if self.inc.rebuild_len is not None:
            for m in rebuild_buckets(self.cfg.batch_size):
                self.store = self.fns["rebuild"](
                    self.params, self.store, np.full(m, self.table.trash_row, np.int32),
                    np.zeros((m, self.inc.rebuild_len), np.int32), np.zeros(m, np.int32))
        for big_b in self.buckets:
            pad = np.full(big_b, self.table.trash_row, np.int32)
            served, self.store, self.seen, self.feedback = self.fns["recommend"](
                self.params, self.head, self.policy_params, self.store, self.seen, self.feedback, self.key,
                pad, np.full(big_b, self.num_users, np.int32), np.ones(big_b, np.int32),
                np.zeros(big_b, np.int32), np.zeros(big_b, bool))
            jax.block_until_ready(served.slate)
        if self.cfg.online:  # the result is discarded: the head is untouched
            jax.block_until_ready(self.fns["updater"].update(self.head_state, self.feedback))

    @property
    def head(self):
        return self.head_state[0]

    def _rebuild(self, users, slots) -> None:
        width = self.inc.rebuild_len or _bucket(int(self.history.lengths[users].max(initial=1)), 1 << 30)
        m = _bucket(len(users), self.cfg.batch_size)
        tails = np.zeros((m, width), np.int32)
        counts = np.zeros(m, np.int32)
        pad_slots = np.full(m, self.table.trash_row, np.int32)
        tails[: len(users)] = self.history.tails(users, width)
        counts[: len(users)] = self.history.lengths[users]
        pad_slots[: len(users)] = slots
        self.store = self.fns["rebuild"](self.params, self.store, pad_slots, tails, counts)
        jax.block_until_ready(self.store)  # so that last_step_s times the step alone
        self.rebuilt_rows += len(users)

    def prefill(self, users) -> None:
        """Rebuild the states of ``users`` (distinct) into the cache before serving, as a
        warm server would hold them; hit/miss counters are left at zero."""
        users = np.asarray(users, np.int64)[: self.cfg.capacity]
        for start in range(0, len(users), self.cfg.batch_size):
            part = users[start:start + self.cfg.batch_size]
            slots, miss = self.table.assign(part)
            if miss.any():
                self._rebuild(part[miss], slots[miss])
        self.table.hits = self.table.misses = self.table.evictions = 0
        self.rebuilt_rows = 0

    def serve(self, users, items, event_ids):
        """Serve one micro-batch (distinct users, b <= B): numpy (slate, propensity, topk)."""
        users = np.asarray(users, np.int64)
        b = len(users)
        if b > self.cfg.batch_size:
            raise ValueError(f"serve: micro-batch of {b} events exceeds batch_size={self.cfg.batch_size}")
        big_b = rows_for(b, self.buckets)
        slots, miss = self.table.assign(users)
        if miss.any():
            self._rebuild(users[miss], slots[miss])
        self.history.append(users, items)
        pad = big_b - b
        row_slots = np.concatenate([slots, np.full(pad, self.table.trash_row)]).astype(np.int32)
        row_users = np.concatenate([users, np.full(pad, self.num_users)]).astype(np.int32)
        row_items = np.concatenate([np.asarray(items), np.ones(pad)]).astype(np.int32)
        row_events = np.concatenate([np.asarray(event_ids), np.zeros(pad)]).astype(np.int32)
        valid = np.arange(big_b) < b
        # A dispatched online update finishes first (the host work above overlapped it), so
        # that last_step_s times this step alone; the event's latency includes the wait.
        jax.block_until_ready(self.head_state)
        start = time.perf_counter()
        served, self.store, self.seen, self.feedback = self.fns["recommend"](
            self.params, self.head, self.policy_params, self.store, self.seen, self.feedback, self.key,
            row_slots, row_users, row_items, row_events, valid)
        slate, propensity, topk = jax.device_get((served.slate, served.propensity, served.topk))
        self.last_step_s = time.perf_counter() - start
        self.since_update += b
        return slate[:b], propensity[:b], topk[:b]

    def maybe_update(self) -> bool:
        """One online head update if M events came since the last one (and online is on).

        The update is dispatched and not waited for: the host cuts and prepares the next
        micro-batch while the device updates, and the next serving step (which reads the
        new head) starts when the update is done, so its time is inside the next events'
        latency. Every ``TIME_UPDATE_EVERY``-th update is waited for, to time it alone.
        """
        if not self.cfg.online or self.since_update < self.cfg.update_every:
            return False
        start = time.perf_counter()
        self.head_state, loss = self.fns["updater"].update(self.head_state, self.feedback)
        if self.num_updates % TIME_UPDATE_EVERY == 0:
            jax.block_until_ready(loss)
            self.update_s.append(time.perf_counter() - start)
        self.since_update = 0
        self.num_updates += 1
        return True


class Reencoder:
    """The baseline serving path: re-encode each user's last L items from scratch.

    Shares the :class:`Server`'s history (call :meth:`serve` AFTER the server served
    the same micro-batch, so the history holds the new events) but keeps its own
    ``seen`` mask, so both paths see identical inputs.
    """

    def __init__(self, server: Server, *, compiled=None):
        from rec_jax.serve.recommend import make_reencode

        cfg, n = server.cfg, server.model.config.num_items
        self.server = server
        self.fn = compiled or make_reencode(server.model, server.policy, num_items=n, slate_size=cfg.slate_size,
                                            eval_k=cfg.eval_k, mask_seen=cfg.mask_seen,
                                            fast_epsilon=cfg.policy == "epsilon_greedy")
        self.seen = jnp.array(server.seen, copy=True)
        self.last_step_s = float("nan")

    def serve(self, users, items, event_ids):
        s = self.server
        users = np.asarray(users, np.int64)
        b = len(users)
        big_b = rows_for(max(b, 1), s.buckets)
        pad = big_b - b
        windows = np.zeros((big_b, s.model.config.max_len), np.int32)
        windows[:b] = s.history.tails(users, s.model.config.max_len)
        row_users = np.concatenate([users, np.full(pad, s.num_users)]).astype(np.int32)
        row_items = np.concatenate([np.asarray(items), np.ones(pad)]).astype(np.int32)
        row_events = np.concatenate([np.asarray(event_ids), np.zeros(pad)]).astype(np.int32)
        start = time.perf_counter()
        served, self.seen = self.fn(s.params, s.head, s.policy_params, self.seen, s.key, windows,
                                    row_users, row_items, row_events)
        slate, propensity, topk = jax.device_get((served.slate, served.propensity, served.topk))
        self.last_step_s = time.perf_counter() - start
        return slate[:b], propensity[:b], topk[:b]
