"""Synthetic interaction logs with known sequential structure.

Each item belongs to one of C clusters. Each user has a preference ``user_pref[u]``
over clusters (sparse Dirichlet) and all users share a first-order Markov transition
``transition[c, c']`` between clusters whose mass concentrates on one successor per
cluster. A user's next cluster comes from ``transition[previous cluster]`` with
probability ``markov_weight`` and from ``user_pref[u]`` otherwise; the item is then
drawn within that cluster by a fixed Zipf-like popularity, never repeating an item the
user already has. A sequential model can learn the transitions (the previous item
tells the next cluster) and the user preference (the history tells the rest), so it
should beat item popularity; the generator is deterministic given ``seed``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rec_jax.data.loaders import Interactions


@dataclass(frozen=True, eq=False)
class SyntheticTruth:
    """The latent structure behind ``synthetic_interactions``.

    Raw user ids are 0..U-1 and raw item ids 1..N (arrays over items have N+1 entries,
    entry 0 unused), so ``SequenceData.raw_*_ids`` index straight into these arrays.

    item_cluster: i32[N+1]     cluster of each raw item id (-1 at index 0)
    item_weight: f64[N+1]      emission probability of the item within its cluster (0 at index 0)
    user_pref: f64[U, C]       each user's preference over clusters
    transition: f64[C, C]      cluster Markov transition, rows sum to 1
    successor: i32[C]          the dominant next cluster of each cluster
    markov_weight: float       probability that the next cluster follows ``transition``
    """

    item_cluster: np.ndarray
    item_weight: np.ndarray
    user_pref: np.ndarray
    transition: np.ndarray
    successor: np.ndarray
    markov_weight: float


def synthetic_interactions(num_users: int = 200, num_items: int = 100, seq_len: tuple[int, int] = (20, 60),
                           num_clusters: int = 8, markov_weight: float = 0.7, seed: int = 0
                           ) -> tuple[Interactions, SyntheticTruth]:
    """Generate ``num_users`` sequences with lengths uniform in ``seq_len`` (inclusive).

    Returns the log (timestamps strictly increase within a user; ratings None) and its
    ``SyntheticTruth``. The same arguments always give the same arrays.
    """
    lo, hi = seq_len
    if not 1 <= lo <= hi <= num_items:
        raise ValueError(f"synthetic_interactions: seq_len={seq_len}, expected 1 <= lo <= hi <= num_items={num_items}")
    if not 1 <= num_clusters <= num_items:
        raise ValueError(f"synthetic_interactions: num_clusters={num_clusters}, expected 1..num_items")
    if not 0.0 <= markov_weight <= 1.0:
        raise ValueError(f"synthetic_interactions: markov_weight={markov_weight}, expected in [0, 1]")
    rng = np.random.default_rng(seed)
    C, N = num_clusters, num_items
    item_cluster = rng.permutation(np.arange(N) % C)  # item raw id - 1 -> cluster
    # Zipf-like popularity within each cluster, in a random order of its items.
    item_weight = np.zeros(N)
    for c in range(C):
        members = rng.permutation(np.flatnonzero(item_cluster == c))
        w = 1.0 / np.arange(1, len(members) + 1) ** 0.8
        item_weight[members] = w / w.sum()
    successor = rng.permutation(C) if C > 1 else np.zeros(1, int)
    transition = 0.3 * rng.dirichlet(np.ones(C), size=C)
    transition[np.arange(C), successor] += 0.7
    user_pref = rng.dirichlet(np.full(C, 0.3), size=num_users)
    lengths = rng.integers(lo, hi + 1, size=num_users)

    in_cluster = item_cluster[None, :] == np.arange(C)[:, None]  # bool[C, N]
    users, items, times = [], [], []
    for u in range(num_users):
        left = np.bincount(item_cluster, minlength=C)  # unseen items per cluster
        w_left = np.where(in_cluster, item_weight[None, :], 0.0)  # f[C, N], seen items zeroed
        uniforms = rng.random((lengths[u], 2))
        gaps = rng.integers(1, 100, lengths[u])
        t = int(rng.integers(0, 1_000_000))
        prev = -1
        for k in range(lengths[u]):
            p = user_pref[u] if prev < 0 else markov_weight * transition[prev] + (1 - markov_weight) * user_pref[u]
            p = np.where(left > 0, p, 0.0)
            if p.sum() <= 0:  # every cluster the user likes is exhausted
                p = (left > 0).astype(float)
            c = _draw(p, uniforms[k, 0])
            i = _draw(w_left[c], uniforms[k, 1])
            w_left[c, i] = 0.0
            left[c] -= 1
            t += int(gaps[k])
            users.append(u)
            items.append(i + 1)
            times.append(t)
            prev = c
    inter = Interactions(user=np.asarray(users, np.int64), item=np.asarray(items, np.int64),
                         timestamp=np.asarray(times, np.int64), rating=None,
                         source=f"synthetic(num_users={num_users}, num_items={num_items}, seed={seed})")
    truth = SyntheticTruth(
        item_cluster=np.concatenate([[-1], item_cluster]).astype(np.int32),
        item_weight=np.concatenate([[0.0], item_weight]),
        user_pref=user_pref,
        transition=transition,
        successor=successor.astype(np.int32),
        markov_weight=float(markov_weight),
    )
    return inter, truth


def _draw(weights: np.ndarray, uniform: float) -> int:
    """Inverse-CDF draw of an index with probability proportional to ``weights``."""
    cdf = np.cumsum(weights)
    return int(min(np.searchsorted(cdf, uniform * cdf[-1], side="right"), len(weights) - 1))
