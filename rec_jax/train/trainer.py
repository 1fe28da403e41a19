"""Offline training of a sequential recommender: jitted epochs, full-ranking early stopping, exact resume.

One epoch is ONE jitted call: a ``lax.scan`` over fixed-shape batches of training
windows that stay on the device, shuffled in-graph by ``permutation(fold_in(data_key,
epoch))``, so there is no per-batch host round trip. After every epoch the
validation users are ranked against all items; the best-validation parameters are
kept, and training stops after ``patience`` epochs without improvement. Everything
the loop needs to continue (params, optimizer state, best params, step, epoch,
early-stopping counters, the history arrays) is one pytree that Orbax saves every
``checkpoint_every`` epochs, so a killed run resumes to the same final metrics.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from rec_jax import checkpoint
from rec_jax.train.config import TrainConfig, windows_per_batch
from rec_jax.train.evaluate import Evaluator
from rec_jax.train.losses import (
    chunked_softmax_ce, compact_softmax_ce, full_softmax_ce, gbce, popularity_log_q, sampled_bce,
    sampled_softmax_ce)

LOSSES = ("ce", "bce", "sampled_softmax", "gbce", "ce_chunked")


@struct.dataclass
class TrainState:
    """Model parameters, optimizer state and the global step (int32[])."""

    params: Any
    opt_state: Any
    step: jax.Array


LR_SCHEDULES = ("constant", "cosine")


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int | None = None):
    """The step size: ``config.learning_rate``, or an Optax warm-up + cosine schedule of the step.

    "cosine": linear warm-up from 0 to ``learning_rate`` over ``warmup_epochs``, then a cosine
    decay to ``lr_final_fraction * learning_rate`` reached at ``decay_epochs`` (warm-up
    included), constant after (Loshchilov & Hutter 2017, without restarts). Epochs are turned
    into optimizer steps by ``steps_per_epoch``, so the schedule follows the batch size.
    """
    if config.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={config.lr_schedule!r}: expected one of {', '.join(LR_SCHEDULES)}")
    if not config.learning_rate > 0:
        raise ValueError(f"learning_rate={config.learning_rate}: expected > 0")
    if config.lr_schedule == "constant":
        return config.learning_rate
    if not 0 <= config.warmup_epochs < config.decay_epochs:
        raise ValueError(f"warmup_epochs={config.warmup_epochs}, decay_epochs={config.decay_epochs}: "
                         "expected 0 <= warmup_epochs < decay_epochs with lr_schedule 'cosine'")
    if not 0 <= config.lr_final_fraction <= 1:
        raise ValueError(f"lr_final_fraction={config.lr_final_fraction}: expected a value in [0, 1]")
    if steps_per_epoch is None or steps_per_epoch < 1:
        raise ValueError(f"lr_schedule 'cosine' needs the number of steps per epoch, got {steps_per_epoch}")
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=config.learning_rate,
        warmup_steps=int(round(config.warmup_epochs * steps_per_epoch)),
        decay_steps=max(1, int(round(config.decay_epochs * steps_per_epoch))),
        end_value=config.lr_final_fraction * config.learning_rate)


def make_optimizer(config: TrainConfig, steps_per_epoch: int | None = None) -> optax.GradientTransformation:
    """Adam, or AdamW when ``weight_decay`` > 0 (decoupled, Loshchilov & Hutter 2019), on the
    step size of :func:`learning_rate_schedule` (``steps_per_epoch`` is needed by "cosine")."""
    if not 0 < config.adam_b2 < 1:
        raise ValueError(f"adam_b2={config.adam_b2}: expected a value in (0, 1)")
    lr = learning_rate_schedule(config, steps_per_epoch)
    if config.weight_decay > 0:
        return optax.adamw(lr, b2=config.adam_b2, weight_decay=config.weight_decay)
    return optax.adam(lr, b2=config.adam_b2)


def steps_per_epoch(num_windows: int, batch_size: int, repeats: int = 1) -> int:
    """Optimizer steps in one epoch: ceil(num_windows * repeats / batch_size) (see :func:`epoch_batches`)."""
    return -(-num_windows * repeats // batch_size)


def make_loss_fn(model, config: TrainConfig, capacity: int | None = None, item_counts=None) -> Callable:
    """``loss_fn(params, key, window, target_mask) -> f32[]`` for the configured loss.

    capacity: with the full softmax, score only this many loss positions per step
    (see :func:`rec_jax.train.losses.compact_softmax_ce` and :func:`loss_capacity`);
    None scores every position. item_counts: [N+1] training counts for the sampled
    softmax's popularity proposal (needed when ``negative_alpha`` != 0).
    """
    if config.loss not in LOSSES:
        raise ValueError(f"unknown loss {config.loss!r}; expected one of: {', '.join(LOSSES)}")
    if config.loss == "bce" and config.model == "bert4rec":
        raise ValueError("loss 'bce' is for next-item models; bert4rec trains with 'ce'")
    if config.loss in ("sampled_softmax", "gbce") and config.num_negatives < 1:
        raise ValueError(f"num_negatives={config.num_negatives}: expected >= 1")
    if config.loss == "gbce" and not 0.0 <= config.gbce_t <= 1.0:
        raise ValueError(f"gbce_t={config.gbce_t}: expected a value in [0, 1]")
    log_q = None
    if config.loss == "sampled_softmax" and config.negative_alpha != 0:
        if item_counts is None:
            raise ValueError("negative_alpha != 0 needs the training item counts")
        log_q = popularity_log_q(item_counts, config.negative_alpha)

    def loss_fn(params, key, window, target_mask):
        batch_key, dropout_key, negative_key = jax.random.split(key, 3)
        inputs, targets, loss_mask = model.training_batch(batch_key, window, target_mask)
        hidden = model.hidden(params, inputs, train=True, key=dropout_key)
        if config.loss == "ce" and capacity is not None:
            return compact_softmax_ce(lambda h: model.score(params, h), hidden, targets, loss_mask, capacity)
        if config.loss == "ce":
            return full_softmax_ce(model.score(params, hidden), targets, loss_mask)
        if config.loss == "bce":
            return sampled_bce(negative_key, hidden, model.item_embeddings(params), targets, loss_mask)
        table, bias = output_layer(model, params)
        if config.loss == "sampled_softmax":
            return sampled_softmax_ce(negative_key, hidden, table, bias, targets, loss_mask,
                                      config.num_negatives, log_q)
        if config.loss == "gbce":
            return gbce(negative_key, hidden, table, bias, targets, loss_mask, config.num_negatives, config.gbce_t)
        return chunked_softmax_ce(hidden, table, bias, targets, loss_mask, config.loss_chunk_size)

    return loss_fn


def output_layer(model, params):
    """(table f32[N+1, D], bias f32[N+1] or None) of a model's scores (the losses that score items apart)."""
    if getattr(model, "output_layer", None) is None:
        raise ValueError(f"model {model.name!r} has no output_layer; train it with loss 'ce'")
    return model.output_layer(params)


def item_counts(windows, num_items: int) -> np.ndarray:
    """int64[N+1]: how often each item is a counted training target in ``windows``."""
    seq, mask = np.asarray(windows.seq), np.asarray(windows.target_mask, bool)
    return np.bincount(seq[:, 1:][mask], minlength=num_items + 1)[: num_items + 1]


MIN_COMPACT_POSITIONS = 512  # positions per step below which every position is scored


def loss_capacity(model, config: TrainConfig, windows, batch_size: int, key, samples: int = 64) -> int | None:
    """How many loss positions a training step scores (None: all of them).

    The loss positions of a batch vary (windows count different numbers of targets;
    BERT4Rec hides a random number of items), so ``samples`` random batches are drawn
    and the capacity is their 99th percentile, rounded up to a multiple of 8.
    A batch above it is still exact (the dense path), only slower. None when the
    capacity would be most of the batch anyway, for small steps (fewer than
    ``MIN_COMPACT_POSITIONS``: not worth a probe and a second compiled branch; the
    tiny test presets), or for the sampled BCE loss.
    """
    seq_len = int(windows.seq.shape[1]) - 1
    if config.loss != "ce" or batch_size * seq_len < MIN_COMPACT_POSITIONS:
        return None
    index_key, mask_key = jax.random.split(key)
    index = jax.random.randint(index_key, (samples, batch_size), 0, int(windows.seq.shape[0]))
    seq, target_mask = jnp.asarray(windows.seq), jnp.asarray(windows.target_mask)

    def count(k, idx):
        return jnp.sum(model.training_batch(k, seq[idx], target_mask[idx])[2])

    counts = np.asarray(jax.jit(jax.vmap(count))(jax.random.split(mask_key, samples), index))
    capacity = int(np.ceil(np.quantile(counts, 0.99) / 8) * 8)
    return None if capacity > 0.8 * batch_size * seq_len else capacity


def epoch_batches(epoch_key, num_windows: int, batch_size: int, repeats: int = 1):
    """The window indices of one epoch's batches: (order int32[S, B], valid bool[S, B]).

    Every window appears ``repeats`` times, in a random order that is a function of
    ``epoch_key`` alone; the last batch is padded with ``valid = False`` rows (index 0),
    so every step has the same shape. S = ceil(num_windows * repeats / batch_size).
    """
    if repeats < 1:
        raise ValueError(f"window_repeats={repeats}: expected >= 1")
    rows = num_windows * repeats
    num_batches = steps_per_epoch(num_windows, batch_size, repeats)
    pad = num_batches * batch_size - rows
    order = jax.random.permutation(epoch_key, rows) % num_windows
    order = jnp.concatenate([order, jnp.zeros((pad,), order.dtype)]).reshape(num_batches, batch_size)
    valid = (jnp.arange(num_batches * batch_size) < rows).reshape(num_batches, batch_size)
    return order, valid


def make_train_epoch(model, config: TrainConfig, num_windows: int, batch_size: int,
                     capacity: int | None = None, item_counts=None) -> Callable:
    """Returns jitted ``train_epoch(state, windows, target_mask, epoch_key, step_key)``.

    windows: int32[W, L+1]; target_mask: bool[W, L].  Returns (state, mean loss f32[]).
    Every window is used ``config.window_repeats`` times (see :func:`epoch_batches`);
    ``capacity`` and ``item_counts`` go to :func:`make_loss_fn`.
    """
    tx = make_optimizer(config, steps_per_epoch(num_windows, batch_size, config.window_repeats))
    loss_fn = make_loss_fn(model, config, capacity, item_counts)

    def train_step(carry, batch):
        state, step_key = carry
        windows, target_mask = batch
        key = jax.random.fold_in(step_key, state.step)
        loss, grads = jax.value_and_grad(loss_fn)(state.params, key, windows, target_mask)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return (TrainState(params, opt_state, state.step + 1), step_key), loss

    def train_epoch(state, windows, target_mask, epoch_key, step_key):
        order, valid = epoch_batches(epoch_key, num_windows, batch_size, config.window_repeats)

        def body(carry, xs):
            idx, ok = xs
            batch = (windows[idx], target_mask[idx] & ok[:, None])
            return train_step(carry, batch)

        (state, _), losses = jax.lax.scan(body, (state, step_key), (order, valid))
        return state, jnp.mean(losses)

    return jax.jit(train_epoch, donate_argnums=0)


def init_train_state(model, config: TrainConfig, key) -> TrainState:
    """Fresh parameters and optimizer state.

    The state's structure does not depend on the schedule's length (the step count lives in
    it), so any ``steps_per_epoch`` builds it: the epoch of :func:`make_train_epoch` applies
    the real schedule to this state.
    """
    # jitted: op by op, a Transformer's init is ~100 tiny dispatches (about twice as slow on CPU)
    params = jax.jit(model.init)(key)
    opt_state = make_optimizer(config, steps_per_epoch=1).init(params)
    return TrainState(params=params, opt_state=opt_state, step=jnp.asarray(0, np.int32))


def _empty_history(epochs: int) -> dict[str, np.ndarray]:
    nan = np.full((epochs,), np.nan)
    return {"train_loss": nan.copy(), "valid_ndcg@10": nan.copy(), "valid_other_ndcg@10": nan.copy(),
            "epoch_s": nan.copy(), "eval_s": nan.copy()}


@dataclasses.dataclass
class FitResult:
    """What :func:`fit` hands back: best params and the run's bookkeeping."""

    best_params: Any
    best_epoch: int  # 0-based
    epochs_run: int
    history: dict[str, np.ndarray]  # per-epoch arrays, NaN beyond epochs_run
    compile_s: float
    windows_per_batch: int
    resumed_from: int | None  # the epoch a resumed run continued from, else None


def fit(
    model,
    config: TrainConfig,
    windows,
    valid_evaluator: Evaluator,
    *,
    ckpt_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> FitResult:
    """Train with early stopping on validation NDCG@10; returns the best-validation params.

    windows: a ``rec_jax.data`` Windows (``seq int32[W, L+1]``, ``target_mask bool[W, L]``).
    The early-stopping metric follows ``config.mask_history`` (masked or unmasked NDCG@10).
    on_epoch(epoch, row): called after each epoch this call runs (not the ones a resumed
    run restored) with that epoch's history entries (``train_loss``, ``valid_ndcg@10``, ...).
    """
    root_key = jax.random.key(config.seed)
    init_key, data_key, step_key, probe_key = jax.random.split(root_key, 4)
    num_windows = int(windows.seq.shape[0])
    window_arr = jax.device_put(np.asarray(windows.seq, np.int32))
    mask_arr = jax.device_put(np.asarray(windows.target_mask, bool))
    batch_size = windows_per_batch(config, num_windows, int(np.asarray(windows.target_mask).sum()))
    capacity = loss_capacity(model, config, windows, batch_size, probe_key)
    counts = None
    if config.loss == "sampled_softmax" and config.negative_alpha != 0:
        counts = item_counts(windows, model.config.num_items)
    train_epoch = make_train_epoch(model, config, num_windows, batch_size, capacity, counts)
    stop_key = "masked/ndcg@10" if config.mask_history else "unmasked/ndcg@10"
    other_key = "unmasked/ndcg@10" if config.mask_history else "masked/ndcg@10"

    state = init_train_state(model, config, init_key)
    record = {
        "state": state,
        "best_params": state.params,
        "epoch": np.asarray(0, np.int32),  # the next epoch to run
        "best_epoch": np.asarray(-1, np.int32),
        "best_metric": np.asarray(-1.0, np.float32),
        "bad_epochs": np.asarray(0, np.int32),
        "history": _empty_history(config.epochs),
    }
    resumed_from = None
    if ckpt_dir is not None and resume:
        if checkpoint.latest_step(ckpt_dir) is None:
            log(f"--resume: no checkpoint in {ckpt_dir}; starting fresh")
        else:
            record = checkpoint.restore(ckpt_dir, record)
            resumed_from = int(record["epoch"])
            log(f"--resume: continuing from epoch {resumed_from} ({ckpt_dir})")
    state = record["state"]
    history = {k: np.array(v, np.float64) for k, v in record["history"].items()}
    best_params = record["best_params"]
    epoch = int(record["epoch"])
    best_epoch, best_metric = int(record["best_epoch"]), float(record["best_metric"])
    bad_epochs = int(record["bad_epochs"])

    start = time.perf_counter()
    train_epoch = train_epoch.lower(
        state, window_arr, mask_arr, jax.random.fold_in(data_key, 0), step_key).compile()
    compile_s = time.perf_counter() - start
    valid_evaluator(state.params)  # compile the evaluation outside the timed epochs

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, initial=epoch, desc=f"train {config.model}", unit="epoch")
    done = epoch >= config.epochs or bad_epochs >= config.patience
    while not done:
        start = time.perf_counter()
        state, loss = train_epoch(state, window_arr, mask_arr, jax.random.fold_in(data_key, epoch), step_key)
        loss = float(loss)  # blocks until the epoch is done
        epoch_s = time.perf_counter() - start
        start = time.perf_counter()
        valid = valid_evaluator(state.params)
        eval_s = time.perf_counter() - start
        # float32 so that a resumed run compares against exactly what the checkpoint holds
        metric = float(np.float32(valid[stop_key]))
        history["train_loss"][epoch] = loss
        history["valid_ndcg@10"][epoch] = metric
        history["valid_other_ndcg@10"][epoch] = valid[other_key]
        history["epoch_s"][epoch] = epoch_s
        history["eval_s"][epoch] = eval_s
        if on_epoch is not None:
            on_epoch(epoch, {name: float(values[epoch]) for name, values in history.items()})
        if metric > best_metric:
            # a copy: the next epoch donates (overwrites) the buffers of ``state``
            best_params = jax.tree.map(jnp.copy, state.params)
            best_metric, best_epoch, bad_epochs = metric, epoch, 0
        else:
            bad_epochs += 1
        epoch += 1
        done = epoch >= config.epochs or bad_epochs >= config.patience
        if ckpt_dir is not None and config.checkpoint_every and (done or epoch % config.checkpoint_every == 0):
            record = {
                "state": state, "best_params": best_params, "epoch": np.asarray(epoch, np.int32),
                "best_epoch": np.asarray(best_epoch, np.int32), "best_metric": np.asarray(best_metric, np.float32),
                "bad_epochs": np.asarray(bad_epochs, np.int32), "history": history,
            }
            checkpoint.save(ckpt_dir, epoch, record)
        if bar is not None:
            seq_per_s = num_windows * config.window_repeats / epoch_s
            bar.set_postfix(loss=f"{loss:.4f}", valid_ndcg10=f"{metric:.4f}", best=best_epoch,
                            windows_per_s=f"{seq_per_s:,.0f}")
            bar.update(1)
    if bar is not None:
        bar.close()
    return FitResult(best_params=best_params, best_epoch=best_epoch, epochs_run=epoch,
                     history=history, compile_s=compile_s,
                     windows_per_batch=batch_size, resumed_from=resumed_from)
