"""Cutting an event stream into micro-batches of distinct users, in arrival order.

A serving step appends each row's event to its user's state in parallel, so a
micro-batch may hold at most one event per user. :class:`MicroBatcher` takes, in
arrival order, up to B arrived events of distinct users; a user's later event
waits for a later micro-batch (events of one user are never reordered; events of
different users may overtake a waiting one, as they would in a real queue).
"""
from __future__ import annotations

import heapq

import numpy as np


class MicroBatcher:
    """Distinct-user micro-batches over events ``users int[E]`` (in arrival order)."""

    def __init__(self, users, batch_size: int):
        if batch_size < 1:
            raise ValueError(f"MicroBatcher.batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        users = np.asarray(users, np.int64)
        order = np.argsort(users, kind="stable")  # per-user event lists, arrival order kept
        bounds = np.flatnonzero(np.diff(users[order])) + 1
        self.queues = {int(users[g[0]]): list(g[::-1]) for g in np.split(order, bounds) if len(g)}
        self.heap = [(q[-1], u) for u, q in self.queues.items()]  # (next event index, user)
        heapq.heapify(self.heap)
        self.remaining = len(users)

    def next_batch(self, arrived: int | None = None) -> np.ndarray:
        """Indices (int64[<= B], increasing) of the next micro-batch among events
        ``< arrived`` (all events when None); empty if none of them is waiting."""
        limit = np.inf if arrived is None else arrived
        taken, later = [], []
        while self.heap and len(taken) < self.batch_size and self.heap[0][0] < limit:
            event, user = heapq.heappop(self.heap)
            queue = self.queues[user]
            queue.pop()
            taken.append(event)
            if queue:  # the user's next event goes back only after this batch: one event per user
                later.append((queue[-1], user))
        for item in later:
            heapq.heappush(self.heap, item)
        self.remaining -= len(taken)
        return np.sort(np.asarray(taken, np.int64))

    def next_waiting(self) -> int | None:
        """The earliest event index still waiting, or None when the stream is done."""
        return self.heap[0][0] if self.heap else None
