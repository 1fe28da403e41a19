"""Ground truth of the semi-synthetic recommender: a matrix factorisation of real logs.

``fit_ground_truth`` trains logistic matrix factorisation with sampled negatives
(Johnson 2014, "Logistic MF for implicit feedback"): for each observed (user,
item) pair, score ``<u, v_i> + b_i`` is pushed up, and for ``num_negatives``
uniformly drawn items it is pushed down, with L2 on the factors, by Adam (optax).
The fitted factors define the simulated users' tastes (:mod:`rec_jax.sim.recsys`).

Item ids in the data run 1..N (0 = padding); row ``i`` of ``item_factors`` is
data item id ``i + 1``.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct


@struct.dataclass
class GroundTruth:
    user_factors: jax.Array  # f32[U, d]
    item_factors: jax.Array  # f32[N, d]   row i is data item id i + 1
    item_bias: jax.Array  # f32[N]


def _pairs(seqs: Any) -> tuple[np.ndarray, np.ndarray]:
    """(user index i32[M], item index i32[M] in 0..N-1) from CSR sequences."""
    offsets = np.asarray(seqs.offsets, np.int64)
    items = np.asarray(seqs.items, np.int64)
    num_users, num_items = int(seqs.num_users), int(seqs.num_items)
    if len(offsets) != num_users + 1 or offsets[-1] != len(items):
        raise ValueError(f"fit_ground_truth: offsets must have num_users + 1 = {num_users + 1} entries ending at len(items)")
    if len(items) == 0:
        raise ValueError("fit_ground_truth: no interactions")
    if items.min() < 1 or items.max() > num_items:
        raise ValueError(f"fit_ground_truth: items must be ids in 1..{num_items}, got range {items.min()}..{items.max()}")
    users = np.repeat(np.arange(num_users), np.diff(offsets))
    return users.astype(np.int32), (items - 1).astype(np.int32)


def _bce_terms(gt: GroundTruth, users, pos, neg):
    """Per-pair BCE of positives f32[B] and negatives f32[B, J]."""
    u = gt.user_factors[users]  # [B, d]
    pos_logit = jnp.sum(u * gt.item_factors[pos], -1) + gt.item_bias[pos]
    neg_logit = jnp.einsum("bd,bjd->bj", u, gt.item_factors[neg]) + gt.item_bias[neg]
    return jax.nn.softplus(-pos_logit), jax.nn.softplus(neg_logit)


def ground_truth_loss(gt: GroundTruth, seqs: Any, key: jax.Array, num_negatives: int = 4) -> float:
    """Mean logistic loss (no L2) over every observed pair and ``num_negatives`` sampled items each.

    With a fixed ``key`` this is a deterministic yardstick for comparing fits.
    """
    users, pos = _pairs(seqs)
    neg = jax.random.randint(key, (len(pos), num_negatives), 0, int(seqs.num_items))
    lp, ln = _bce_terms(gt, jnp.asarray(users), jnp.asarray(pos), neg)
    return float(jnp.mean(lp) + jnp.mean(jnp.sum(ln, -1)))


def fit_ground_truth(
    seqs: Any,
    dim: int = 16,
    epochs: int = 20,
    key: jax.Array | None = None,
    num_negatives: int = 4,
    batch_size: int = 1024,
    learning_rate: float = 0.01,
    l2: float = 1e-4,
) -> GroundTruth:
    """Fit user/item factors on ``seqs`` (anything with offsets, items, num_users, num_items).

    Deterministic given ``key`` (default ``jax.random.key(0)``): the init, the
    per-epoch shuffles and the negatives all come from it. The whole fit is one
    jitted ``lax.scan`` over epochs and batches.

    Returns:
      GroundTruth(user_factors f32[U, dim], item_factors f32[N, dim], item_bias f32[N]).
    """
    if dim < 1 or epochs < 0 or num_negatives < 1 or batch_size < 1:
        raise ValueError(f"fit_ground_truth: need dim>=1, epochs>=0, num_negatives>=1, batch_size>=1; "
                         f"got {dim}, {epochs}, {num_negatives}, {batch_size}")
    key = jax.random.key(0) if key is None else key
    users, pos = _pairs(seqs)
    num_users, num_items = int(seqs.num_users), int(seqs.num_items)
    batch_size = min(batch_size, len(pos))

    init_key, train_key = jax.random.split(key)
    uk, ik = jax.random.split(init_key)
    gt = GroundTruth(
        user_factors=0.1 * jax.random.normal(uk, (num_users, dim), jnp.float32),
        item_factors=0.1 * jax.random.normal(ik, (num_items, dim), jnp.float32),
        item_bias=jnp.zeros((num_items,), jnp.float32),
    )
    if epochs == 0:
        return gt
    return _fit(gt, jnp.asarray(users), jnp.asarray(pos), train_key, epochs=epochs, batch_size=batch_size,
                num_negatives=num_negatives, learning_rate=learning_rate, l2=l2)


@functools.partial(jax.jit, static_argnames=("epochs", "batch_size", "num_negatives", "learning_rate", "l2"))
def _fit(gt: GroundTruth, users_j, pos_j, key, *, epochs, batch_size, num_negatives, learning_rate, l2):
    """The training loop: scan over epochs of a scan over shuffled batches (one compilation per shape)."""
    num_items, num_pairs = gt.item_factors.shape[0], pos_j.shape[0]
    num_batches = -(-num_pairs // batch_size)
    opt = optax.adam(learning_rate)

    def loss_fn(p, bu, bp, bn):
        lp, ln = _bce_terms(p, bu, bp, bn)
        reg = jnp.mean(jnp.sum(p.user_factors[bu] ** 2, -1) + jnp.sum(p.item_factors[bp] ** 2, -1))
        return jnp.mean(lp) + jnp.mean(jnp.sum(ln, -1)) + l2 * reg

    def batch_step(carry, batch):
        p, s = carry
        idx, neg = batch
        grads = jax.grad(loss_fn)(p, users_j[idx], pos_j[idx], neg)
        updates, s = opt.update(grads, s, p)
        return (optax.apply_updates(p, updates), s), None

    def epoch(carry, epoch_key):
        perm_key, neg_key = jax.random.split(epoch_key)
        perm = jax.random.permutation(perm_key, num_pairs)
        idx = jnp.concatenate([perm, perm[: num_batches * batch_size - num_pairs]]).reshape(num_batches, batch_size)
        neg = jax.random.randint(neg_key, (num_batches, batch_size, num_negatives), 0, num_items)
        carry, _ = jax.lax.scan(batch_step, carry, (idx, neg))
        return carry, None

    (gt, _), _ = jax.lax.scan(epoch, (gt, opt.init(gt)), jax.random.split(key, epochs))
    return gt


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def synthetic_ground_truth(key: jax.Array, num_users: int, num_items: int, dim: int = 4,
                           bias_std: float = 0.5) -> GroundTruth:
    """Random factors: u, v ~ N(0, I/sqrt(d)) so <u, v> has unit-order spread; b ~ N(0, bias_std^2)."""
    uk, ik, bk = jax.random.split(key, 3)
    s = dim ** -0.25
    return GroundTruth(
        user_factors=s * jax.random.normal(uk, (num_users, dim), jnp.float32),
        item_factors=s * jax.random.normal(ik, (num_items, dim), jnp.float32),
        item_bias=bias_std * jax.random.normal(bk, (num_items,), jnp.float32),
    )


def save_ground_truth(gt: GroundTruth, path: str | Path) -> None:
    """Write the factors to ``path`` (.npz) atomically (tmp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, user_factors=np.asarray(gt.user_factors), item_factors=np.asarray(gt.item_factors),
             item_bias=np.asarray(gt.item_bias))
    tmp.replace(path)


def load_ground_truth(path: str | Path) -> GroundTruth:
    """Read factors written by :func:`save_ground_truth`."""
    with np.load(Path(path)) as z:
        missing = {"user_factors", "item_factors", "item_bias"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)}")
        return GroundTruth(user_factors=jnp.asarray(z["user_factors"], jnp.float32),
                           item_factors=jnp.asarray(z["item_factors"], jnp.float32),
                           item_bias=jnp.asarray(z["item_bias"], jnp.float32))
