"""Next-item losses over per-position logits.

Column 0 of the logits is the padding id and never a valid prediction.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


def full_softmax_ce(logits: jax.Array, targets: jax.Array, loss_mask: jax.Array) -> jax.Array:
    """Mean cross-entropy of the full softmax over all N items at the masked positions.

    logits: f32[B, L, N+1]; targets: int32[B, L]; loss_mask: bool[B, L].  returns f32[].
    """
    num_classes = logits.shape[-1]
    # Dense form log-softmax(z)[t] = <one_hot(t), z> - logsumexp(z): its gradient is
    # softmax - one_hot, all elementwise. The gather form (optax's integer-label CE)
    # differentiates into a scatter over f32[B, L, N+1], which is serial on XLA:CPU
    # and cost about half of a SASRec training step there.
    not_pad = jnp.arange(num_classes) > 0
    logits = jnp.where(not_pad, logits, -jnp.inf)
    target_logit = jnp.sum(jnp.where(jax.nn.one_hot(targets, num_classes, dtype=bool), logits, 0.0), axis=-1)
    per_position = jax.nn.logsumexp(logits, axis=-1) - target_logit
    # A padding target has target_logit = -inf: select (not multiply) so inf * 0 never
    # makes a NaN (XLA happened to fold it away under jit, but not eagerly or under vmap).
    per_position = jnp.where(loss_mask, per_position, 0.0)
    weight = loss_mask.astype(jnp.float32)
    return jnp.sum(per_position * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def compact_softmax_ce(score, hidden, targets, loss_mask, capacity: int) -> jax.Array:
    """:func:`full_softmax_ce` with the item scores computed at the loss positions only.

    score: ``h f32[K, D] -> logits f32[K, N+1]``; hidden: f32[B, L, D]; targets: int32[B, L];
    loss_mask: bool[B, L]; capacity: the number of positions scored (static).  returns f32[].

    Scoring all N items is most of a training step, and only the positions in the loss
    need it (about half of a SASRec window, a fifth of a BERT4Rec one). The first
    ``capacity`` loss positions are gathered and scored; a batch with more of them takes
    the dense path instead (``lax.cond`` runs one branch), so the value is exact either way.
    """
    flat_hidden = hidden.reshape(-1, hidden.shape[-1])
    flat_targets, flat_mask = targets.reshape(-1), loss_mask.reshape(-1)
    count = jnp.sum(flat_mask)

    def gathered(_):
        (index,) = jnp.nonzero(flat_mask, size=capacity, fill_value=0)
        used = jnp.arange(capacity) < count
        return full_softmax_ce(score(flat_hidden[index]), flat_targets[index], used)

    def dense(_):
        return full_softmax_ce(score(hidden), targets, loss_mask)

    return jax.lax.cond(count <= capacity, gathered, dense, None)


def sampled_bce(
    key: jax.Array,
    hidden: jax.Array,
    item_embeddings: jax.Array,
    targets: jax.Array,
    loss_mask: jax.Array,
) -> jax.Array:
    """Binary cross-entropy with one uniformly sampled negative per position (Kang & McAuley 2018).

    hidden: f32[B, L, D]; item_embeddings: f32[N+1, D]; targets: int32[B, L];
    loss_mask: bool[B, L].  Negatives are drawn from 1..N (they may hit the
    target with probability 1/N, as in the original implementation).  returns f32[].
    """
    num_items = item_embeddings.shape[0] - 1
    negatives = jax.random.randint(key, targets.shape, 1, num_items + 1)
    pos = jnp.einsum("bld,bld->bl", hidden, item_embeddings[targets])
    neg = jnp.einsum("bld,bld->bl", hidden, item_embeddings[negatives])
    per_position = -jax.nn.log_sigmoid(pos) - jax.nn.log_sigmoid(-neg)
    weight = loss_mask.astype(jnp.float32)
    return jnp.sum(per_position * weight) / jnp.maximum(jnp.sum(weight), 1.0)


# --------------------------------------------------------------------------- losses that scale


def _masked_mean(per_position: jax.Array, loss_mask: jax.Array) -> jax.Array:
    per_position = jnp.where(loss_mask, per_position, 0.0)
    weight = loss_mask.astype(jnp.float32)
    return jnp.sum(per_position * weight) / jnp.maximum(jnp.sum(weight), 1.0)


def _scores(hidden, table, bias, items):
    """hidden f32[B, L, D] scored against each row's items int32[B, K] -> f32[B, L, K]."""
    logits = jnp.einsum("bld,bkd->blk", hidden, table[items])
    return logits if bias is None else logits + bias[items][:, None, :]


def draw_negatives(key: jax.Array, shape: tuple, num_items: int, log_q: jax.Array | None = None) -> jax.Array:
    """Items int32[shape] from 1..N, uniformly (log_q None) or from ``log_q: f32[N+1]`` (log Q(item); Q(0) = 0)."""
    if log_q is None:
        return jax.random.randint(key, shape, 1, num_items + 1)
    return jax.random.categorical(key, log_q, shape=shape).astype(jnp.int32)


def popularity_log_q(item_counts, alpha: float) -> jax.Array:
    """log Q of the proposal Q(i) ∝ count(i)^alpha over items 1..N (count+1: unseen items keep mass;
    alpha = 0 is uniform); item_counts: [N+1] with index 0 the padding id.  returns f32[N+1], -inf at 0."""
    counts = jnp.asarray(item_counts, jnp.float32)
    logits = alpha * jnp.log(counts + 1.0)
    logits = jnp.where(jnp.arange(counts.shape[0]) > 0, logits, -jnp.inf)
    return logits - jax.nn.logsumexp(logits)


def sampled_softmax_ce(key, hidden, table, bias, targets, loss_mask, num_negatives: int,
                       log_q: jax.Array | None = None) -> jax.Array:
    """Sampled softmax cross-entropy with log-Q correction (Bengio & Senecal 2008; Yi et al. 2019).

    hidden: f32[B, L, D]; table: f32[N+1, D]; bias: f32[N+1] or None; targets: int32[B, L];
    loss_mask: bool[B, L]; log_q: f32[N+1] log-proposal (None: uniform over 1..N).
    Each row (sequence) draws ``num_negatives`` = k items from Q, shared by its positions.
    Per position: -log softmax([z_t, z_s - log(k Q(s)) for s])[0]; the positive's logit is kept
    uncorrected, negatives equal to the position's target (accidental hits) are masked, so
    logsumexp estimates log sum_{j != t} exp(z_j) + the positive: the full softmax as k grows.
    returns f32[].
    """
    num_items = table.shape[0] - 1
    negatives = draw_negatives(key, (targets.shape[0], num_negatives), num_items, log_q)
    if log_q is None:
        log_kq = jnp.full(negatives.shape, jnp.log(num_negatives / num_items), jnp.float32)
    else:
        log_kq = jnp.log(float(num_negatives)) + log_q[negatives]
    pos = jnp.einsum("bld,bld->bl", hidden, table[targets])
    if bias is not None:
        pos = pos + bias[targets]
    neg = _scores(hidden, table, bias, negatives) - log_kq[:, None, :]
    neg = jnp.where(negatives[:, None, :] == targets[:, :, None], -jnp.inf, neg)
    logits = jnp.concatenate([pos[..., None], neg], axis=-1)
    return _masked_mean(jax.nn.logsumexp(logits, axis=-1) - pos, loss_mask)


def gbce_beta(num_negatives: int, num_items: int, t: float) -> float:
    """gSASRec's exponent of the positive's probability (Petrov & Macdonald, RecSys 2023, sec. 4):
    beta = alpha (t (1 - 1/alpha) + 1/alpha), alpha = k / (N - 1)."""
    alpha = num_negatives / (num_items - 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def gbce(key, hidden, table, bias, targets, loss_mask, num_negatives: int, t: float) -> jax.Array:
    """Generalised binary cross-entropy (gSASRec; Petrov & Macdonald 2023) with k uniform negatives.

    hidden: f32[B, L, D]; table: f32[N+1, D]; bias: f32[N+1] or None; targets: int32[B, L];
    loss_mask: bool[B, L]. Each row draws k = ``num_negatives`` items uniformly from 1..N, shared by
    its positions; a negative equal to the position's target is dropped. Per position
    -(beta log sigma(z_t) + sum_s log(1 - sigma(z_s))) with beta = :func:`gbce_beta` (t = 0: plain BCE
    with k negatives; t = 1: beta = alpha, fully calibrated to the full softmax's probabilities). returns f32[].
    """
    num_items = table.shape[0] - 1
    beta = gbce_beta(num_negatives, num_items, t)
    negatives = draw_negatives(key, (targets.shape[0], num_negatives), num_items)
    pos = jnp.einsum("bld,bld->bl", hidden, table[targets])
    if bias is not None:
        pos = pos + bias[targets]
    neg = _scores(hidden, table, bias, negatives)
    neg_term = jnp.where(negatives[:, None, :] == targets[:, :, None], 0.0, jax.nn.log_sigmoid(-neg))
    per_position = -(beta * jax.nn.log_sigmoid(pos) + jnp.sum(neg_term, axis=-1)) / (num_negatives + 1)
    return _masked_mean(per_position, loss_mask)


def _chunk_table(table, bias, chunk: int):
    """Pads (table f32[N+1, D], bias f32[N+1]) to whole chunks: (f32[nc, C, D], f32[nc, C], starts i32[nc])."""
    n = table.shape[0]
    num_chunks = -(-n // chunk)
    pad = num_chunks * chunk - n
    table_c = jnp.pad(table, ((0, pad), (0, 0))).reshape(num_chunks, chunk, table.shape[1])
    bias_c = jnp.pad(bias, (0, pad)).reshape(num_chunks, chunk)
    return table_c, bias_c, jnp.arange(num_chunks) * chunk


def _chunk_logits(h, table_c, bias_c, start, n):
    cols = start + jnp.arange(table_c.shape[0])
    logits = h @ table_c.T + bias_c
    return jnp.where((cols > 0) & (cols < n), logits, -jnp.inf), cols  # padding id and pad columns out


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _chunked_ce(h, table, bias, targets, chunk):
    return _chunked_ce_fwd(h, table, bias, targets, chunk)[0]


def _chunked_ce_fwd(h, table, bias, targets, chunk):
    n = table.shape[0]
    table_c, bias_c, starts = _chunk_table(table, bias, chunk)

    def body(carry, xs):
        m, s, tz = carry
        logits, cols = _chunk_logits(h, *xs, n)
        tz = tz + jnp.sum(jnp.where(cols[None, :] == targets[:, None], logits, 0.0), axis=1)
        m_new = jnp.maximum(m, jnp.max(logits, axis=1))
        s = s * jnp.exp(m - m_new) + jnp.sum(jnp.exp(logits - m_new[:, None]), axis=1)
        return (m_new, s, tz), None

    p = h.shape[0]
    init = (jnp.full((p,), -jnp.inf, h.dtype), jnp.zeros((p,), h.dtype), jnp.zeros((p,), h.dtype))
    (m, s, tz), _ = jax.lax.scan(body, init, (table_c, bias_c, starts))
    lse = m + jnp.log(s)
    tz = jnp.where(targets > 0, tz, -jnp.inf)  # a padding target scores -inf, as in full_softmax_ce
    return lse - tz, (h, table, bias, targets, lse)


def _chunked_ce_bwd(chunk, res, g):
    h, table, bias, targets, lse = res
    n = table.shape[0]
    table_c, bias_c, starts = _chunk_table(table, bias, chunk)
    g = jnp.where(jnp.isfinite(g), g, 0.0)

    def body(dh, xs):
        logits, cols = _chunk_logits(h, *xs, n)
        # d(lse - z_t)/dz = softmax - one_hot(t), chunk by chunk
        dz = g[:, None] * (jnp.exp(logits - lse[:, None]) - (cols[None, :] == targets[:, None]))
        dz = jnp.where(jnp.isfinite(lse)[:, None], dz, 0.0)
        return dh + dz @ xs[0], (dz.T @ h, jnp.sum(dz, axis=0))

    dh, (dtable, dbias) = jax.lax.scan(body, jnp.zeros_like(h), (table_c, bias_c, starts))
    dtable = dtable.reshape(-1, table.shape[1])[:n]
    dbias = dbias.reshape(-1)[:n]
    return dh, dtable, dbias, None


_chunked_ce.defvjp(_chunked_ce_fwd, _chunked_ce_bwd)


def chunked_softmax_ce(hidden, table, bias, targets, loss_mask, chunk_size: int = 8192) -> jax.Array:
    """:func:`full_softmax_ce` of ``hidden @ table.T (+ bias)`` computed over item chunks.

    hidden: f32[B, L, D]; table: f32[N+1, D]; bias: f32[N+1] or None; targets: int32[B, L];
    loss_mask: bool[B, L]. A scan over chunks of ``chunk_size`` items keeps a running logsumexp;
    the custom VJP recomputes each chunk's softmax in the backward pass, so neither pass holds more
    than [B*L, chunk_size] scores (never [B, L, N+1]). The padding column 0 is excluded. returns f32[].
    """
    n = table.shape[0]
    bias = jnp.zeros((n,), table.dtype) if bias is None else bias
    chunk = max(1, min(int(chunk_size), n))
    flat = hidden.reshape(-1, hidden.shape[-1])
    per_position = _chunked_ce(flat, table, bias, targets.reshape(-1), chunk)
    return _masked_mean(per_position.reshape(targets.shape), loss_mask)
