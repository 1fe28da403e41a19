"""Matrix factorisation baseline: score(u, i) = <P_u, Q_i>.

Trained with full-softmax cross-entropy over the items (each training pair (u, i)
is a "which item did u pick" example, Covington et al. 2016 / the multinomial
likelihood of Liang et al. 2018) rather than BPR: it uses the same loss as the
sequential models, so the comparison isolates the model, and with N in the
thousands the full softmax is a cheap [B, D] x [D, N+1] matmul. Optax Adam with an
optional L2 penalty on the rows in the batch.

params: {'user': f32[U, D], 'item': f32[N+1, D]}; users are 0..U-1.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rec_jax.models.base import mask_pad_column


def init_mf(key, num_users: int, num_items: int, dim: int = 64, init_std: float = 0.1):
    """Normal(0, init_std) user and item factors."""
    user_key, item_key = jax.random.split(key)
    return {
        "user": init_std * jax.random.normal(user_key, (num_users, dim), jnp.float32),
        "item": init_std * jax.random.normal(item_key, (num_items + 1, dim), jnp.float32),
    }


def mf_scores(params, user_ids) -> jax.Array:
    """user_ids: int32[B] -> logits f32[B, N+1] (column 0 = padding, masked)."""
    return mask_pad_column(params["user"][user_ids] @ params["item"].T)


def _pairs_from_csr(train_items_by_user, num_users: int, num_items: int):
    offsets, items = (np.asarray(a) for a in train_items_by_user)
    if offsets.shape != (num_users + 1,):
        raise ValueError(
            f"fit_mf: offsets must have shape ({num_users + 1},) for num_users={num_users}, "
            f"got {offsets.shape}"
        )
    if offsets[0] != 0 or offsets[-1] != items.shape[0] or np.any(np.diff(offsets) < 0):
        raise ValueError("fit_mf: offsets must start at 0, be non-decreasing and end at len(items)")
    if items.size and (items.min() < 1 or items.max() > num_items):
        raise ValueError(f"fit_mf: item ids must lie in 1..{num_items}")
    users = np.repeat(np.arange(num_users, dtype=np.int32), np.diff(offsets))
    return users, items.astype(np.int32)


def fit_mf(
    key,
    train_items_by_user,
    num_users: int,
    num_items: int,
    dim: int = 64,
    epochs: int = 20,
    lr: float = 1e-2,
    batch_size: int = 1024,
    l2: float = 0.0,
):
    """Fits MF by minibatch full-softmax CE over all (user, item) training pairs.

    train_items_by_user: (offsets int[U+1], items int[nnz]) in CSR form, user u's items
    are ``items[offsets[u]:offsets[u+1]]`` (ids 1..N). Runs as one jitted scan over
    epochs x minibatches (pairs reshuffled each epoch). Returns params.
    """
    users, items = _pairs_from_csr(train_items_by_user, num_users, num_items)
    num_pairs = users.shape[0]
    init_key, shuffle_key = jax.random.split(key)
    params = init_mf(init_key, num_users, num_items, dim)
    if num_pairs == 0:
        return params
    batch_size = min(batch_size, num_pairs)
    num_batches = -(-num_pairs // batch_size)
    optimizer = optax.adam(lr)
    users, items = jnp.asarray(users), jnp.asarray(items)

    def loss_fn(p, u, i, valid):
        logits = mf_scores(p, u)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, i)
        loss = jnp.sum(nll * valid) / jnp.maximum(valid.sum(), 1.0)
        if l2:
            reg = jnp.sum(p["user"][u] ** 2, -1) + jnp.sum(p["item"][i] ** 2, -1)
            loss = loss + l2 * jnp.sum(reg * valid) / jnp.maximum(valid.sum(), 1.0)
        return loss

    def batch_step(carry, idx):
        p, opt_state = carry
        valid = (idx >= 0).astype(jnp.float32)
        idx = jnp.maximum(idx, 0)
        grads = jax.grad(loss_fn)(p, users[idx], items[idx], valid)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    def epoch_step(carry, epoch_key):
        order = jax.random.permutation(epoch_key, num_pairs)
        pad = num_batches * batch_size - num_pairs
        order = jnp.concatenate([order, -jnp.ones((pad,), order.dtype)])
        carry, _ = jax.lax.scan(batch_step, carry, order.reshape(num_batches, batch_size))
        return carry, None

    @jax.jit
    def train(p, epoch_keys):
        (p, _), _ = jax.lax.scan(epoch_step, (p, optimizer.init(p)), epoch_keys)
        return p

    return train(params, jax.random.split(shuffle_key, epochs))


__all__ = ["fit_mf", "init_mf", "mf_scores"]
