"""A bounded on-device store of per-user states, with LRU or FIFO eviction.

Two halves:

* :class:`SlotTable` (host): which user holds which of the C slots, the eviction
  order, and hit/miss/eviction counters. LRU evicts the user used longest ago;
  FIFO (the baseline) the user inserted longest ago, whatever has happened since.
  A user in the current micro-batch is never evicted by another user of the same
  batch; when every slot is held by users of this batch, the miss is served from a
  per-batch scratch row (so capacity may be smaller than the micro-batch) and
  counts as not cached.
* the device store: the incremental model's state pytree with a leading axis of
  ``C + S + 1`` rows (C cached slots, S = max micro-batch scratch rows, one trash
  row for padding), built by :func:`init_store`, filled on a miss by
  :func:`make_rebuild_rows` from the user's stored history.

Eviction only drops a derived state: the history itself lives in
:class:`HistoryStore` (host, unbounded), so an evicted user is rebuilt exactly
(:func:`rec_jax.serve.sasrec_kv.rebuild`) on their next event.
"""
from __future__ import annotations

import collections

import jax
import jax.numpy as jnp
import numpy as np

EVICTION_POLICIES = ("lru", "fifo")


class SlotTable:
    """Host-side slot assignment for a cache of ``capacity`` users (see module docstring)."""

    def __init__(self, capacity: int, scratch: int, policy: str = "lru"):
        if policy not in EVICTION_POLICIES:
            raise ValueError(f"SlotTable.policy={policy!r}: expected one of {', '.join(EVICTION_POLICIES)}")
        if capacity < 0 or scratch < 1:
            raise ValueError(f"SlotTable: capacity must be >= 0 and scratch >= 1, got {capacity}, {scratch}")
        self.capacity, self.scratch, self.policy = capacity, scratch, policy
        self.order: collections.OrderedDict[int, int] = collections.OrderedDict()  # user -> slot, oldest first
        self.free = list(range(capacity - 1, -1, -1))
        self.hits = self.misses = self.evictions = 0

    @property
    def trash_row(self) -> int:
        """The store row that padding rows of a batch read and write."""
        return self.capacity + self.scratch

    @property
    def num_rows(self) -> int:
        return self.capacity + self.scratch + 1

    def __contains__(self, user: int) -> bool:
        return user in self.order

    def assign(self, users) -> tuple[np.ndarray, np.ndarray]:
        """Slots for a micro-batch of DISTINCT users: (slots int32[B], miss bool[B]).

        Rows with ``miss`` must be rebuilt into their slot before the serving step.
        """
        users = [int(u) for u in users]
        if len(set(users)) != len(users):
            raise ValueError("SlotTable.assign: users in one micro-batch must be distinct")
        if len(users) > self.scratch:
            raise ValueError(f"SlotTable.assign: {len(users)} users exceed scratch={self.scratch} rows")
        slots = np.empty(len(users), np.int32)
        miss = np.zeros(len(users), bool)
        batch = set(users)
        for i, u in enumerate(users):
            if u in self.order:
                self.hits += 1
                slots[i] = self.order[u]
                if self.policy == "lru":
                    self.order.move_to_end(u)
            else:
                self.misses += 1
                miss[i] = True
        next_scratch = self.capacity
        for i in np.flatnonzero(miss):
            u = users[i]
            slot = self._take_slot(batch)
            if slot is None:  # every slot is held by this batch: serve from a scratch row
                slot, next_scratch = next_scratch, next_scratch + 1
            else:
                self.order[u] = slot
            slots[i] = slot
        return slots, miss

    def _take_slot(self, batch: set) -> int | None:
        if self.free:
            return self.free.pop()
        for victim in self.order:  # oldest first (use order for LRU, insertion for FIFO)
            if victim not in batch:
                self.evictions += 1
                return self.order.pop(victim)
        return None

    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else float("nan")


class HistoryStore:
    """Every user's full item history (host, unbounded): the source of truth for rebuilds."""

    def __init__(self, num_users: int, initial_capacity: int = 64):
        self.items = np.zeros((num_users, initial_capacity), np.int32)
        self._lengths = np.zeros(num_users, np.int64)  # capacity grows by doubling (add_users)
        self._num_users = num_users

    @classmethod
    def from_sequences(cls, sequences) -> "HistoryStore":
        """From a list of per-user int arrays (oldest first)."""
        store = cls(len(sequences), max([len(s) for s in sequences] + [1]) + 64)
        for u, s in enumerate(sequences):
            store.items[u, : len(s)] = s
            store.lengths[u] = len(s)
        return store

    @property
    def lengths(self) -> np.ndarray:
        """int64[U]: each user's history length (a view: writes go to the store)."""
        return self._lengths[: self._num_users]

    @property
    def num_users(self) -> int:
        return self._num_users

    def add_users(self, count: int) -> None:
        """Make room for ``count`` more users (empty histories), doubling the rows as needed."""
        need = self.num_users + count
        if need > self.items.shape[0]:
            rows = max(need, 2 * self.items.shape[0])
            grown = np.zeros((rows, self.items.shape[1]), np.int32)
            grown[: self.items.shape[0]] = self.items
            self.items = grown
        if need > len(self._lengths):  # doubling, as the rows
            grown = np.zeros(max(need, 2 * len(self._lengths)), np.int64)
            grown[: len(self._lengths)] = self._lengths
            self._lengths = grown
        self._num_users = need

    def append(self, users, items) -> None:
        users = np.asarray(users, np.int64)
        need = int(self.lengths[users].max(initial=0)) + 1
        if need > self.items.shape[1]:
            grown = np.zeros((self.items.shape[0], 2 * need), np.int32)
            grown[:, : self.items.shape[1]] = self.items
            self.items = grown
        self.items[users, self.lengths[users]] = items
        self.lengths[users] += 1

    def tails(self, users, width: int) -> np.ndarray:
        """int32[B, width]: each user's last ``width`` items, left-padded with 0."""
        users = np.asarray(users, np.int64)
        lengths = self.lengths[users]
        cols = lengths[:, None] - width + np.arange(width)[None, :]  # absolute index per column
        safe = np.clip(cols, 0, self.items.shape[1] - 1)
        return np.where(cols >= 0, self.items[users[:, None], safe], 0).astype(np.int32)


def init_store(inc, num_rows: int, dim: int) -> dict:
    """The device store, ``num_rows`` rows of ``{"state": inc.empty_state(), "h": f32[D]}``
    (``h`` is the user vector that scored the user's next item, kept for the online
    updater)."""
    row = {"state": inc.empty_state(), "h": jnp.zeros((dim,), jnp.float32)}
    return jax.tree.map(lambda a: jnp.broadcast_to(a, (num_rows,) + a.shape).copy(), row)


def make_rebuild_rows(inc):
    """Jitted ``rebuild_rows(params, store, slots, tails, counts) -> store``.

    slots int32[m], tails int32[m, R] (:meth:`HistoryStore.tails`), counts int32[m]
    (history lengths). Rebuilds each row's state and user vector from the history
    tail into its slot. Callers pad m to a few bucket sizes (pad rows point at the
    trash row) to bound recompilation.
    """

    def rebuild_rows(params, store, slots, tails, counts):
        states, h = jax.vmap(inc.rebuild, in_axes=(None, 0, 0))(params, tails, counts)
        new = {"state": states, "h": h}
        return jax.tree.map(lambda s, n: s.at[slots].set(n), store, new)

    return jax.jit(rebuild_rows, donate_argnums=1)


def make_reset_rows(inc):
    """Jitted ``reset_rows(store, slots int32[m]) -> store``: rows ``slots`` set to the empty
    state (a user with no history yet) and user vector 0; cheaper than a rebuild."""

    def reset_rows(store, slots):
        empty = {"state": inc.empty_state(), "h": jnp.zeros(store["h"].shape[1:], store["h"].dtype)}
        return jax.tree.map(lambda s, e: s.at[slots].set(jnp.broadcast_to(e, (slots.shape[0],) + e.shape)),
                            store, empty)

    return jax.jit(reset_rows, donate_argnums=0)
