"""The model side of the service: users, their histories and cached states, one micro-batch at a time.

    ranker = Ranker(model, params, ServePolicies(...), RankerConfig(...), key, model_version="...")
    ranker.warmup()                                      # compile every bucket
    ranker.add_clicks("u7", [42])                        # a clicked item joins u7's history
    outcomes = ranker.rank([RankRequest(...), ...])      # one micro-batch of distinct users

Not thread-safe: one thread (the batcher, :mod:`rec_jax.serve.http.batcher`) owns it.

A user is an opaque string; the first request of a user the service never saw
creates them, with the request's ``events`` as their history (or an empty one: the
cold start). Every item a user consumed (request events, clicked slots) goes into
their host-side history (:class:`rec_jax.serve.user_cache.HistoryStore`, the source
of truth); the on-device cache (:class:`rec_jax.serve.user_cache.SlotTable`, LRU)
holds the incremental states of the most recent users. At rank time a cached user
with at most ``fold`` (2) new items gets them folded in by incremental steps; a user
with more, or not cached, is rebuilt from the history's last L items
(:func:`rec_jax.serve.sasrec_kv.rebuild`, exact for the model's window).
Items the user consumed are never recommended to them again.

Cold start: a user with no history has user vector 0 (the rebuilt empty state),
so the model's scores are the head's bias (0 for a loaded model) and the greedy
order is the item order; exploration still explores. A popularity prior would be
a better cold-start head; it is not built here.
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from rec_jax.serve.http.rank_step import make_rank_step
from rec_jax.serve.incremental import make_incremental
from rec_jax.serve.recommend import initial_head
from rec_jax.serve.server import _bucket, policy_and_params, rebuild_buckets
from rec_jax.serve.user_cache import HistoryStore, SlotTable, init_store, make_rebuild_rows, make_reset_rows


@dataclasses.dataclass(frozen=True)
class RankerConfig:
    buckets: tuple[int, ...] = (8, 32, 256)  # compiled micro-batch row counts (a batch is padded to the next)
    max_slate: int = 10  # K: slates are computed with K slots (a request may ask for fewer)
    capacity: int = 4096  # users whose incremental state stays cached on the device
    fold: int = 2  # E: new items folded in by incremental steps (more: the state is rebuilt from history)
    policies: tuple[str, ...] = ("epsilon_greedy",)  # served policies (the first is the default)
    epsilon: float = 0.1  # epsilon_greedy: per-slot exploration probability
    temperature: float = 1.0  # softmax: temperature on the logits


@dataclasses.dataclass(frozen=True)
class RankRequest:
    """A validated ``/rank`` body (:mod:`rec_jax.serve.http.schema`)."""

    user: str
    events: tuple[int, ...] = ()  # items the user consumed since their last call, oldest first
    slate_size: int = 10
    candidates: tuple[int, ...] | None = None  # rank only these items (None: the whole catalogue)
    exclude: tuple[int, ...] = ()  # never show these
    policy: str = ""  # "" = the default policy


@dataclasses.dataclass(frozen=True)
class Ranked:
    """One request's answer; ``error`` (a one-line message) when it cannot be served."""

    slate: list[int] = dataclasses.field(default_factory=list)
    propensities: list[float] = dataclasses.field(default_factory=list)
    context: list[int] = dataclasses.field(default_factory=list)  # the history's last rebuild_len items
    history_len: int = 0  # the history's full length
    greedy: list[int] = dataclasses.field(default_factory=list)  # the model's top-k of the items left
    policy: str = ""
    event_id: int = -1
    error: str = ""


def policy_params_dict(params) -> dict[str, Any]:
    """The policy's params as plain JSON values (logged with every decision)."""
    out = {}
    for field in dataclasses.fields(params):
        value = np.asarray(getattr(params, field.name))
        out[field.name] = value.item() if value.ndim == 0 else value.tolist()
    return out


class Ranker:
    """See module docstring."""

    def __init__(self, model, params, cfg: RankerConfig, key, *, model_version: str,
                 histories: dict[str, list[int]] | None = None):
        if not cfg.policies:
            raise ValueError("RankerConfig.policies: expected at least one policy")
        # Everything the jitted steps take is committed to one device, as their outputs are:
        # an argument placed differently (committed or not) is a new jit cache key, i.e. a
        # recompilation of every step on the first real batch or after a head swap.
        self.device = jax.devices()[0]
        self.model, self.cfg = model, cfg
        self.params, self.key = jax.device_put(params, self.device), jax.device_put(key, self.device)
        self.base_version = self.model_version = model_version
        self.num_items = n = model.config.num_items
        if cfg.max_slate * 2 > n:
            raise ValueError(f"max_slate={cfg.max_slate}: at most half the catalogue ({n} items) can be served")
        self.buckets = tuple(sorted(set(cfg.buckets)))
        self.max_rows = self.buckets[-1]
        self.inc = make_incremental(model)
        self.window = self.inc.rebuild_len or model.config.max_len
        self.head = jax.device_put(initial_head(model, params), self.device)
        self.policies: dict[str, tuple[Any, Any, Any]] = {}
        for name in cfg.policies:
            server_cfg = _ServerPolicyConfig(policy=name, epsilon=cfg.epsilon, temperature=cfg.temperature)
            policy, pparams = policy_and_params(server_cfg, n)
            step = make_rank_step(self.inc, policy, num_items=n, slate_size=cfg.max_slate,
                                  fast_epsilon=name == "epsilon_greedy")
            self.policies[name] = (policy, pparams, step)
        self.default_policy = cfg.policies[0]
        self.versions: dict[str, str] = {}
        self.rebuild_rows = make_rebuild_rows(self.inc)
        self.reset_rows = make_reset_rows(self.inc)
        self.table = SlotTable(cfg.capacity, scratch=self.max_rows, policy="lru")
        self.store = jax.device_put(init_store(self.inc, self.table.num_rows, model.config.dim), self.device)
        self.user_ids: dict[str, int] = {}
        self.history = HistoryStore(0, initial_capacity=self.window + 64)
        self.in_state = np.zeros(0, np.int64)  # history items already folded into the cached state
        self.next_event = 0
        self.rebuilt_rows = 0  # states rebuilt from history (cache misses, more than ``fold`` new items)
        for user, items in (histories or {}).items():
            self._user(user, items)

    def swap_head(self, head, version: str) -> None:
        """Serve with ``head`` (a published :class:`rec_jax.serve.recommend.Head`) from the
        next batch on; the model version becomes ``<base>+<version>``. Cached user states
        stay valid: the encoder is unchanged."""
        # placed like the head in force (measured: an uncommitted bias meant a 5 s recompilation)
        self.head = jax.tree.map(lambda new, old: jax.device_put(np.asarray(new, old.dtype), old.sharding),
                                 type(self.head)(table=head.table, bias=head.bias), self.head)
        self.model_version = f"{self.base_version}+{version}"

    # ---- users and histories ------------------------------------------------------------
    def _user(self, user: str, events=()) -> int:
        """The internal index of ``user`` (created on first sight), after appending ``events``."""
        uid = self.user_ids.get(user)
        if uid is None:
            uid = self.user_ids[user] = self.history.num_users
            self.history.add_users(1)
            if uid >= len(self.in_state):  # doubling: creating U users costs O(U), not O(U^2)
                self.in_state = np.concatenate([self.in_state, np.zeros(max(64, len(self.in_state)), np.int64)])
        for item in events:
            self.history.append([uid], [int(item)])
        return uid

    def add_clicks(self, user: str, items) -> None:
        """Items ``user`` clicked (a committed reward): they join the user's history."""
        self._user(user, items)

    def history_of(self, user: str) -> list[int]:
        uid = self.user_ids.get(user)
        if uid is None:
            return []
        return self.history.tails([uid], int(self.history.lengths[uid]))[0].tolist()

    def policy_version(self, name: str) -> str:
        """``name(param=value, ...)``: logged with every decision (computed once per policy)."""
        version = self.versions.get(name)
        if version is None:
            params = policy_params_dict(self.policies[name][1])
            version = self.versions[name] = name + "(" + ", ".join(f"{k}={v}" for k, v in params.items()) + ")"
        return version

    # ---- serving ------------------------------------------------------------------------
    def warmup(self) -> None:
        """Compile every rebuild and step shape, touching only the trash row."""
        trash = self.table.trash_row
        for m in rebuild_buckets(self.max_rows) if self.inc.rebuild_len else ():  # recurrent: widths vary
            self.store = self.rebuild_rows(self.params, self.store, np.full(m, trash, np.int32),
                                           np.zeros((m, self.window), np.int32), np.zeros(m, np.int32))
        for rows in self.buckets:
            self.store = self.reset_rows(self.store, np.full(rows, trash, np.int32))
        for name in self.policies:
            for rows in self.buckets:
                self._step(name, np.full(rows, trash, np.int32), np.ones((rows, self.cfg.fold), np.int32),
                           np.zeros(rows, np.int32), np.zeros(rows, np.int32), self._padding_available(rows))
        jax.block_until_ready(self.store)

    def _padding_available(self, rows: int) -> np.ndarray:
        available = np.ones((rows, self.num_items + 1), bool)
        available[:, 0] = False
        return available

    def _step(self, name, slots, items, count, event_ids, available):
        _, pparams, step = self.policies[name]
        slate, propensity, greedy, self.store = step(self.params, self.head, pparams, self.store, self.key, slots,
                                                     items, count, event_ids, available)
        return jax.device_get((slate, propensity, greedy))

    def rank(self, requests: list[RankRequest]) -> list[Ranked]:
        """Serve one micro-batch: DISTINCT users, one policy, at most the largest bucket.

        A request whose slate cannot be filled (fewer items left than it asks for)
        gets an error and changes nothing (its events are not recorded)."""
        if len(requests) > self.max_rows:
            raise ValueError(f"Ranker.rank: {len(requests)} requests exceed the largest bucket {self.max_rows}")
        name = requests[0].policy or self.default_policy
        allowed = self._available(requests)  # checked before anything changes
        free = allowed.sum(axis=1)
        errors = ["" if free[i] >= r.slate_size else
                  f"slate_size: {r.slate_size} asked, but only {free[i]} items are left to rank "
                  "after candidates, exclusions and the user's history" for i, r in enumerate(requests)]
        served = [i for i, e in enumerate(errors) if not e]
        out = [Ranked(error=e) for e in errors]
        if not served:
            return out
        batch = [requests[i] for i in served]
        uids = np.array([self._user(r.user) for r in batch], np.int64)
        for e in range(max(len(r.events) for r in batch)):  # users are distinct: one append per event index
            has = [j for j, r in enumerate(batch) if len(r.events) > e]
            self.history.append(uids[has], [batch[j].events[e] for j in has])
        b = len(batch)
        rows = next(size for size in self.buckets if size >= b)
        available = self._padding_available(rows)
        available[:b] = allowed[served]
        slots, miss = self.table.assign(uids)
        lengths = self.history.lengths[uids]
        new = lengths - self.in_state[uids]
        # A state is rebuilt from history only when it must be: a user with at most `fold`
        # items in all (a new user) starts from the empty state and folds them in the step.
        fresh = miss & (lengths <= self.cfg.fold)
        rebuild = (miss & ~fresh) | (new > self.cfg.fold)
        if fresh.any():
            self.store = self.reset_rows(self.store, self._padded(slots[fresh]))
            new = np.where(fresh, lengths, new)
        if rebuild.any():
            self._rebuild(uids[rebuild], slots[rebuild])
        count = np.where(rebuild, 0, new)
        self.in_state[uids] = lengths
        event_ids = np.arange(self.next_event, self.next_event + b)
        self.next_event += b
        items = np.ones((rows, self.cfg.fold), np.int32)  # padding: item 1, never folded (count 0)
        for e in range(self.cfg.fold):
            at = lengths - count + e
            take = e < count
            items[:b][take, e] = self.history.items[uids[take], at[take]]
        pad = rows - b
        slate, propensity, greedy = self._step(
            name,
            np.concatenate([slots, np.full(pad, self.table.trash_row)]).astype(np.int32),
            items,
            np.concatenate([count, np.zeros(pad)]).astype(np.int32),
            np.concatenate([event_ids, np.zeros(pad)]).astype(np.int32),
            available)
        contexts = self.history.tails(uids, self.window)
        for j, i in enumerate(served):
            k = batch[j].slate_size
            context = contexts[j, self.window - min(int(lengths[j]), self.window):].tolist()
            out[i] = Ranked(slate=slate[j, :k].tolist(), propensities=propensity[j, :k].tolist(),
                            greedy=greedy[j, :k].tolist(),
                            context=context, history_len=int(lengths[j]), policy=name, event_id=int(event_ids[j]))
        return out

    def _available(self, requests: list[RankRequest]) -> np.ndarray:
        """bool[R, N+1]: the items each request may be shown (candidates, minus exclusions,
        minus everything the user consumed, the request's events included)."""
        allowed = np.ones((len(requests), self.num_items + 1), bool)
        # index arrays, not Python lists: a user's history grows without bound, and turning it
        # into a list per request made a 32-request batch 2.1 -> 3.5 ms as histories went from
        # 30 to 600 items (the service's p99 drifted up with them)
        rows, cols = [], []
        for i, r in enumerate(requests):
            if r.candidates is not None:
                allowed[i] = False
                allowed[i, list(r.candidates)] = True
            if r.exclude or r.events:
                cols.append(np.asarray(tuple(r.exclude) + tuple(r.events), np.int64))
                rows.append(np.full(len(cols[-1]), i))
            uid = self.user_ids.get(r.user)
            if uid is not None and self.history.lengths[uid]:
                cols.append(self.history.items[uid, : int(self.history.lengths[uid])])
                rows.append(np.full(len(cols[-1]), i))
        if rows:
            allowed[np.concatenate(rows), np.concatenate(cols)] = False
        allowed[:, 0] = False
        return allowed

    def _padded(self, slots) -> np.ndarray:
        """int32[bucket]: ``slots`` padded with the trash row to a compiled bucket size."""
        size = next(b for b in self.buckets if b >= len(slots))
        out = np.full(size, self.table.trash_row, np.int32)
        out[: len(slots)] = slots
        return out

    def _rebuild(self, uids, slots) -> None:
        self.rebuilt_rows += len(uids)
        m = _bucket(len(uids), self.max_rows)
        for start in range(0, len(uids), m):
            part, part_slots = uids[start:start + m], slots[start:start + m]
            size = _bucket(len(part), self.max_rows)
            width = self.inc.rebuild_len or _bucket(int(self.history.lengths[part].max(initial=1)), 1 << 30)
            tails = np.zeros((size, width), np.int32)
            counts = np.zeros(size, np.int32)
            pad_slots = np.full(size, self.table.trash_row, np.int32)
            tails[: len(part)] = self.history.tails(part, width)
            counts[: len(part)] = self.history.lengths[part]
            pad_slots[: len(part)] = part_slots
            self.store = self.rebuild_rows(self.params, self.store, pad_slots, tails, counts)


@dataclasses.dataclass(frozen=True)
class _ServerPolicyConfig:
    """What :func:`rec_jax.serve.server.policy_and_params` reads of a config."""

    policy: str
    epsilon: float
    temperature: float
