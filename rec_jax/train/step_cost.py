"""Analytic FLOPs and bytes of ONE training step of a sequential model (for the roofline).

    flops, nbytes, how = train_step_cost(config, num_items, windows_per_step, targets_per_step, num_params)

What is counted (float32; multiply-adds count 2; elementwise work such as LayerNorm,
softmax, GELU, dropout and the loss's exp/log is left out, so this is a lower bound of
the minimal algorithm):

* forward, per token (B windows x L positions), Transformer (sasrec, bert4rec), per
  block: Q, K, V and output projections 8 D^2; attention scores and the weighted sum
  2 D k each, k keys per query: (L + 1) / 2 on average for causal SASRec (the masked
  half is redundant work, not counted), L for bidirectional BERT4Rec; the FFN 4 D F.
  GRU4Rec, per layer: input and recurrent projections 2 * 3H (in + H), then the output
  projection 2 H D.
* the output layer, per loss position (the ``targets_per_step`` positions with a target):
  2 D (N + 1) for the full / chunked softmax, 2 D (1 + k) for the sampled softmax and
  gBCE with k negatives, 2 D * 2 for the one-negative BCE.
* backward = 2 x forward (the gradients w.r.t. activations and w.r.t. weights).
* Adam: 12 FLOPs per parameter.

Bytes (the unavoidable traffic only: activations may stay in cache in an ideal fused
program, so they are not counted, which keeps the roofline fraction conservative):
10 words per parameter (read in forward and backward, gradient written, Adam reads
p, g, m, v and writes p, m, v) and the batch's int32 windows B (L + 1).
"""
from __future__ import annotations

SOFTMAX_LOSSES = ("ce", "ce_chunked")


def output_flops_per_position(loss: str, dim: int, num_items: int, num_negatives: int) -> float:
    """Forward FLOPs of the output layer (item logits) at one loss position."""
    if loss in SOFTMAX_LOSSES:
        return 2.0 * dim * (num_items + 1)
    if loss in ("sampled_softmax", "gbce"):
        return 2.0 * dim * (1 + num_negatives)
    if loss == "bce":
        return 2.0 * dim * 2
    raise ValueError(f"train_step_cost: unknown loss {loss!r}")


def encoder_flops_per_token(config) -> float:
    """Forward FLOPs of the sequence encoder for one position (see the module docstring)."""
    d, length = config.dim, config.max_len
    if config.model in ("sasrec", "bert4rec"):
        keys = (length + 1) / 2 if config.model == "sasrec" else length
        per_block = 8.0 * d * d + 4.0 * d * keys + 4.0 * d * config.ff_dim
        return config.num_layers * per_block
    if config.model == "gru4rec":
        h, total, width = config.hidden_dim, 0.0, d
        for _ in range(config.num_layers):
            total += 2.0 * 3 * h * (width + h)
            width = h
        return total + 2.0 * h * d
    raise ValueError(f"train_step_cost: no FLOP count for model {config.model!r}")


def encoder_flops_last_state(config) -> float:
    """Forward FLOPs of encoding ONE history of L items into its last position's state (the
    serving / evaluation / model-backed-policy case): every block but the last runs on all
    L positions, the last block needs K and V of all positions (4 D^2 each) but Q, the
    attention (all L keys), the output projection and the FFN at the last position only.
    GRU4Rec runs its recurrence over all L positions, the output projection once."""
    d, length = config.dim, config.max_len
    if config.model in ("sasrec", "bert4rec"):
        if config.num_layers == 0:
            return 0.0
        last = 4.0 * d * d * length + 4.0 * d * d + 4.0 * d * length + 4.0 * d * config.ff_dim
        return (config.num_layers - 1) * length * encoder_flops_per_token(
            dataclass_like(config, num_layers=1)) + last
    if config.model == "gru4rec":
        h = config.hidden_dim
        return length * (encoder_flops_per_token(config) - 2.0 * h * d) + 2.0 * h * d
    raise ValueError(f"encoder_flops_last_state: no FLOP count for model {config.model!r}")


def dataclass_like(config, **changes):
    """A copy of ``config``'s count-relevant fields with ``changes`` (any object with the fields)."""
    from types import SimpleNamespace

    names = ("model", "dim", "max_len", "num_layers", "ff_dim", "hidden_dim")
    return SimpleNamespace(**{**{n: getattr(config, n, None) for n in names}, **changes})


def train_step_cost(config, num_items: int, windows_per_step: float, targets_per_step: float,
                    num_params: int) -> tuple[float, float, str]:
    """(flops, bytes, how) of one optimizer step of ``config`` (a TrainConfig)."""
    tokens = windows_per_step * config.max_len
    forward = tokens * encoder_flops_per_token(config) + targets_per_step * output_flops_per_position(
        config.loss, config.dim, num_items, config.num_negatives)
    flops = 3.0 * forward + 12.0 * num_params
    nbytes = 4.0 * (10 * num_params + windows_per_step * (config.max_len + 1))
    how = (f"analytic {config.model}/{config.loss}: 3 x forward (encoder matmuls per token, "
           f"{'causal' if config.model == 'sasrec' else 'full'} attention, output layer per target) + Adam; "
           "bytes = 10 words/param + batch ids (rec_jax.train.step_cost)")
    return flops, nbytes, how


def xla_train_step(model, config, params, windows, target_mask, item_counts=None) -> dict:
    """XLA's ``cost_analysis()`` ``{"flops", "bytes"}`` of ONE optimizer step (loss, gradient,
    Adam) on a batch ``windows`` int32[B, L+1], ``target_mask`` bool[B, L]; the dense loss
    path (no compaction of the loss positions)."""
    import jax
    import optax

    from rec_jax.roofline import xla_cost
    from rec_jax.train.trainer import make_loss_fn, make_optimizer

    tx = make_optimizer(config, steps_per_epoch=1000)  # a step's cost does not depend on the schedule's position
    loss_fn = make_loss_fn(model, config, None, item_counts)

    def step(params, opt_state, key, windows, target_mask):
        loss, grads = jax.value_and_grad(loss_fn)(params, key, windows, target_mask)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return xla_cost(step, params, tx.init(params), jax.random.key(0), windows, target_mask)


def ranking_cost(num_items: int, dim: int, users_per_batch: int) -> tuple[float, float, str]:
    """(flops, bytes, how) of ranking ONE user over all N+1 columns (the full-ranking pass).

    The minimal algorithm scores every column once, 2 D (N + 1) FLOPs (the comparisons and the
    running top-k are O(N) and left out); its unavoidable traffic is the output table and bias,
    read once per batch of ``users_per_batch`` users, (N + 1)(D + 1) words / B, plus the user's
    state, D words. Scores stay in cache chunk by chunk, so they are not counted.
    """
    flops = 2.0 * dim * (num_items + 1)
    nbytes = 4.0 * ((num_items + 1) * (dim + 1) / max(1, users_per_batch) + dim)
    return flops, nbytes, ("analytic: 2D(N+1) score FLOPs per user; the table read once per batch of "
                           f"{users_per_batch} users plus the user's state (rec_jax.train.step_cost.ranking_cost)")
