"""A population of P training configurations trained at once: one jitted scan per epoch, vmapped over members.

Members share everything that fixes a shape (model, data, batch size, epochs) and
differ only in hyperparameters that are DATA (docs/DESIGN.md rule 3), held in a
:class:`PopulationHParams` of ``f32[P]`` arrays:

* learning rate and weight decay enter Optax through ``optax.inject_hyperparams``
  (AdamW; with weight decay 0 it is exactly Adam, which is what ``fit`` uses then),
  written into each member's optimizer state at every step;
* dropout rates are traced too: the Flax modules keep their static ``rate``, and
  :func:`dropout_as_data` intercepts every Dropout call during the trace and
  draws the same mask as the layer would, with the member's traced rate instead.

All members see the same batches, the same initial parameters and the same dropout
bits (common random numbers, the trainer's key layout for ``config.seed``), so member
``i`` follows exactly the trajectory ``fit`` follows for config ``i`` alone, and the
comparison between members is not blurred by seed noise. Validation NDCG@10 over all
items is computed for all members in one vmapped pass; each member keeps its best
epoch's parameters and stops improving after ``patience`` bad epochs, as in ``fit``;
the population runs until every member has stopped or ``epochs`` is reached.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from rec_jax.models.dropout import Dropout
from rec_jax.models.transformer import SelfAttention
from rec_jax.train.config import TrainConfig, windows_per_batch
from rec_jax.train.evaluate import host_arrays, make_rank_fn, rank_batches
from rec_jax.train.trainer import (
    TrainState,
    epoch_batches,
    learning_rate_schedule,
    loss_capacity,
    make_loss_fn,
    steps_per_epoch,
)

# The fields a population may vary; every other TrainConfig field must agree across members.
SWEPT_FIELDS = ("learning_rate", "weight_decay", "dropout", "attn_dropout")
# Inside jit rates are clipped to [0, MAX_RATE] (a rate of 1 would divide by zero); host checks reject them.
MAX_RATE = 0.99


@struct.dataclass
class PopulationHParams:
    """Per-member hyperparameters, each ``f32[P]``."""

    learning_rate: jax.Array
    weight_decay: jax.Array
    dropout: jax.Array  # hidden / embedding / FFN dropout (every Dropout outside attention)
    attn_dropout: jax.Array  # dropout on attention weights (Dropout inside SelfAttention)

    @property
    def size(self) -> int:
        return int(np.shape(self.learning_rate)[0])

    def member(self, i: int) -> dict[str, float]:
        """Member ``i`` as plain floats, {"learning_rate": ..., ...}."""
        return {f: float(np.asarray(getattr(self, f))[i]) for f in SWEPT_FIELDS}


def population_hparams(configs: Sequence[TrainConfig]) -> tuple[TrainConfig, PopulationHParams]:
    """Split P configs into the shared base config (member 0's) and the per-member hyperparameters.

    Raises a one-line ValueError when the configs differ in anything but ``SWEPT_FIELDS``
    or a hyperparameter is out of range.
    """
    if not configs:
        raise ValueError("configs: expected at least one TrainConfig, got none")
    base = configs[0]
    for i, c in enumerate(configs):
        for f in dataclasses.fields(TrainConfig):
            if f.name not in SWEPT_FIELDS and getattr(c, f.name) != getattr(base, f.name):
                raise ValueError(
                    f"configs[{i}].{f.name}={getattr(c, f.name)!r} differs from configs[0]'s "
                    f"{getattr(base, f.name)!r}; a population may differ only in {', '.join(SWEPT_FIELDS)}")
        if not c.learning_rate > 0:
            raise ValueError(f"configs[{i}].learning_rate={c.learning_rate}: expected > 0")
        if not c.weight_decay >= 0:
            raise ValueError(f"configs[{i}].weight_decay={c.weight_decay}: expected >= 0")
        for f in ("dropout", "attn_dropout"):
            if not 0.0 <= getattr(c, f) < 1.0:
                raise ValueError(f"configs[{i}].{f}={getattr(c, f)}: expected 0 <= {f} < 1")
    values = {f: jnp.asarray([getattr(c, f) for c in configs], jnp.float32) for f in SWEPT_FIELDS}
    return base, PopulationHParams(**values)


# --------------------------------------------------------------------------- dropout as data


def _traced_dropout(module: Dropout, rate, inputs, deterministic=None, rng=None):
    """``Dropout.__call__`` with ``rate`` a traced f32[] instead of the module's static float.

    The layer's own :meth:`Dropout.at_rate`, so a member with rate r draws the masks of
    a model built with ``dropout=r`` from the same key (rate 0 keeps every unit).
    """
    return module.at_rate(jnp.clip(rate, 0.0, MAX_RATE), inputs, deterministic, rng)


def dropout_as_data(dropout, attn_dropout):
    """Context manager: while a model is traced inside it, its dropout rates are these traced f32[].

    Every ``rec_jax.models.dropout.Dropout`` whose parent is a ``SelfAttention`` uses ``attn_dropout``;
    every other one uses ``dropout``. Other modules are untouched.
    """

    def interceptor(next_fun, args, kwargs, context):
        if not (isinstance(context.module, Dropout) and context.method_name == "__call__"):
            return next_fun(*args, **kwargs)
        rate = attn_dropout if isinstance(context.module.parent, SelfAttention) else dropout
        return _traced_dropout(context.module, rate, *args, **kwargs)

    return nn.intercept_methods(interceptor)


# --------------------------------------------------------------------------- training


def population_optimizer(config: TrainConfig | None = None) -> optax.GradientTransformation:
    """AdamW with learning rate and weight decay read from the optimizer state (data, not constants);
    Adam's ``b2`` is the shared ``config.adam_b2``."""
    b2 = 0.999 if config is None else config.adam_b2  # None: init only (the state does not hold b2)
    return optax.inject_hyperparams(optax.adamw, static_args=("b2",))(learning_rate=0.0, weight_decay=0.0, b2=b2)


def schedule_factor(config: TrainConfig, steps_per_epoch: int) -> Callable:
    """step -> the shared schedule's multiplier of each member's peak learning rate (1 when constant).

    ``trainer.learning_rate_schedule`` with a peak of 1, so member i steps with
    ``learning_rate[i] * factor(step)``, as ``fit`` does with config i alone.
    """
    unit = learning_rate_schedule(dataclasses.replace(config, learning_rate=1.0), steps_per_epoch)
    return unit if callable(unit) else (lambda step: jnp.asarray(1.0, jnp.float32))


def init_population(model, hparams: PopulationHParams, key) -> TrainState:
    """Every member starts from ``model.init(key)`` (common random numbers).

    returns TrainState with params and opt_state stacked on a leading [P] axis and a
    shared ``step: int32[]``.
    """
    params = jax.jit(model.init)(key)  # as trainer.init_train_state, so members start where fit does
    tx = population_optimizer()  # b2 is static, not in the state: any builds it

    def member_opt_state(lr, wd):
        opt_state = tx.init(params)
        return opt_state._replace(hyperparams={**opt_state.hyperparams, "learning_rate": lr, "weight_decay": wd})

    # Copies: the epoch donates the state, and hparams (passed beside it) must not share its buffers.
    opt_state = jax.vmap(member_opt_state)(jnp.copy(hparams.learning_rate), jnp.copy(hparams.weight_decay))
    stacked = jax.tree.map(lambda x: jnp.broadcast_to(x, (hparams.size,) + x.shape), params)
    return TrainState(params=stacked, opt_state=opt_state, step=jnp.asarray(0, jnp.int32))


def _finite_targets(model):
    """``model`` whose training batches give masked-out positions target 1 instead of padding 0.

    ``full_softmax_ce`` weights per-position losses by the mask, and at a padding target
    that loss is +inf (the padding logit is -inf), so inf * 0 = NaN: under plain ``jit``
    XLA happens to simplify it away, under ``vmap`` it does not. Those positions carry
    zero weight, so any valid item gives the same loss and gradients.
    """
    def training_batch(key, window, target_mask):
        inputs, targets, loss_mask = model.training_batch(key, window, target_mask)
        return inputs, jnp.where(loss_mask, targets, 1), loss_mask

    return model._replace(training_batch=training_batch)


def make_population_epoch(model, config: TrainConfig, num_windows: int, batch_size: int,
                          capacity: int | None = None) -> Callable:
    """Returns jitted ``epoch(state, hparams, windows, target_mask, epoch_key, step_key)``.

    state: TrainState with [P]-stacked params/opt_state (see :func:`init_population`);
    hparams: PopulationHParams of f32[P]; windows: int32[W, L+1]; target_mask: bool[W, L].
    Returns (state, mean loss f32[P]). Batching, shuffling and per-step keys are those of
    ``rec_jax.train.trainer.make_train_epoch``, shared by all members.
    """
    tx = population_optimizer(config)
    lr_factor = schedule_factor(config, steps_per_epoch(num_windows, batch_size, config.window_repeats))
    loss_fn = make_loss_fn(_finite_targets(model), config, capacity)

    def member_step(params, opt_state, hp, key, windows, target_mask, step):
        with dropout_as_data(hp.dropout, hp.attn_dropout):
            loss, grads = jax.value_and_grad(loss_fn)(params, key, windows, target_mask)
        # The hyperparameters are re-read every step, so a caller may change them between epochs.
        opt_state = opt_state._replace(hyperparams={
            **opt_state.hyperparams, "learning_rate": hp.learning_rate * lr_factor(step),
            "weight_decay": hp.weight_decay})
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    # Batch and key are shared (in_axes None): one set of dropout bits serves every member.
    all_members = jax.vmap(member_step, in_axes=(0, 0, 0, None, None, None, None))

    def epoch(state, hparams, windows, target_mask, epoch_key, step_key):
        order, valid = epoch_batches(epoch_key, num_windows, batch_size, config.window_repeats)

        def body(state, xs):
            idx, ok = xs
            key = jax.random.fold_in(step_key, state.step)
            params, opt_state, loss = all_members(
                state.params, state.opt_state, hparams, key, windows[idx], target_mask[idx] & ok[:, None], state.step)
            return TrainState(params, opt_state, state.step + 1), loss

        state, losses = jax.lax.scan(body, state, (order, valid))
        return state, jnp.mean(losses, axis=0)

    return jax.jit(epoch, donate_argnums=0)


# --------------------------------------------------------------------------- evaluation


class PopulationEvaluator:
    """Full-ranking NDCG@10 of every member in one vmapped pass per user batch.

    Ranks over item chunks as :class:`~rec_jax.train.evaluate.Evaluator` does (same batches of users).
    """

    KEYS = ("masked/ndcg@10", "unmasked/ndcg@10")

    def __init__(self, model, eval_arrays, batch_size: int = 256, *, like: PopulationEvaluator | None = None,
                 chunk_size: int = 8192):
        """``like``: an evaluator of the same model whose jitted pass is reused (no new compile when the
        batches have the same shapes, e.g. the test users of a leave-one-out split after the valid ones)."""
        inputs, targets, offsets, items, num_items = host_arrays(eval_arrays)
        self.num_users = int(inputs.shape[0])
        batch_size = max(1, min(int(batch_size), self.num_users))
        self.batches = [jax.device_put(b) for b in rank_batches(inputs, targets, offsets, items, batch_size)]
        if like is not None:
            self.eval_batch = like.eval_batch
            return
        rank = make_rank_fn(model, num_items, chunk_size)

        def one(params, inputs, targets, seen_lists):
            out, _ = rank(params, model.encode(params, inputs), targets, seen_lists)
            return {k: out[k] for k in self.KEYS}  # the rest is dead code XLA drops

        self.eval_batch = jax.jit(jax.vmap(one, in_axes=(0, None, None, None)))

    def __call__(self, stacked_params) -> dict[str, np.ndarray]:
        """Mean over users per member, {"masked/ndcg@10": f64[P], "unmasked/ndcg@10": f64[P]}."""
        parts = [self.eval_batch(stacked_params, *b) for b in self.batches]
        n = self.num_users
        return {k: np.concatenate([np.asarray(p[k]) for p in parts], axis=1)[:, :n].mean(axis=1) for k in self.KEYS}


# --------------------------------------------------------------------------- the loop


@dataclasses.dataclass
class PopulationResult:
    """What :func:`fit_population` hands back (P members, E = config.epochs)."""

    hparams: PopulationHParams
    best_params: Any  # [P]-stacked
    best_epoch: np.ndarray  # int[P], 0-based
    best_metric: np.ndarray  # f32[P], valid NDCG@10 at best_epoch
    stopped_epoch: np.ndarray  # int[P], epochs a member counted before early stopping (as fit's epochs_run)
    epochs_run: int  # epochs the population ran (the longest member)
    history: dict[str, np.ndarray]  # "train_loss", "valid_ndcg@10": f64[E, P]; "epoch_s", "eval_s": f64[E]
    compile_s: float  # 0 when the epoch came compiled from ``cache``
    steps_per_epoch: int  # optimizer steps per epoch (shared by all members)

    @property
    def best_member(self) -> int:
        """The member with the highest validation NDCG@10 (the first one on ties)."""
        return int(np.argmax(self.best_metric))


@jax.jit
def _keep_best(best, params, improved):
    """Per member: params where ``improved: bool[P]``, else best (new buffers: ``params`` is donated next)."""
    return jax.tree.map(
        lambda b, p: jnp.where(improved.reshape((-1,) + (1,) * (p.ndim - 1)), p, b), best, params)


def fit_population(
    model,
    config: TrainConfig,
    hparams: PopulationHParams,
    windows,
    valid_evaluator: PopulationEvaluator,
    *,
    cache: dict | None = None,
    progress: bool = True,
) -> PopulationResult:
    """Train ``hparams.size`` members of ``config`` at once, early-stopping each on valid NDCG@10.

    windows: a ``rec_jax.data`` Windows (``seq int32[W, L+1]``, ``target_mask bool[W, L]``).
    cache: a dict shared between calls; the compiled epoch for each population size is kept
    in it, so P=1 runs of different hyperparameters compile once (they are data).
    """
    num_members = hparams.size
    root_key = jax.random.key(config.seed)
    init_key, data_key, step_key, probe_key = jax.random.split(root_key, 4)  # the key layout of trainer.fit
    num_windows = int(windows.seq.shape[0])
    window_arr = jax.device_put(np.asarray(windows.seq, np.int32))
    mask_arr = jax.device_put(np.asarray(windows.target_mask, bool))
    batch_size = windows_per_batch(config, num_windows, int(np.asarray(windows.target_mask).sum()))
    stop_key = "masked/ndcg@10" if config.mask_history else "unmasked/ndcg@10"

    state = init_population(model, hparams, init_key)
    cache = {} if cache is None else cache
    compile_s = 0.0
    capacity = loss_capacity(model, config, windows, batch_size, probe_key)
    if (num_members, capacity) not in cache:
        start = time.perf_counter()
        epoch_fn = make_population_epoch(model, config, num_windows, batch_size, capacity)
        cache[num_members, capacity] = epoch_fn.lower(
            state, hparams, window_arr, mask_arr, jax.random.fold_in(data_key, 0), step_key).compile()
        compile_s = time.perf_counter() - start
    epoch_fn = cache[num_members, capacity]
    valid_evaluator(state.params)  # compile / warm the evaluation outside the timed epochs

    nan = np.full((config.epochs, num_members), np.nan)
    history = {"train_loss": nan.copy(), "valid_ndcg@10": nan.copy(),
               "epoch_s": np.full(config.epochs, np.nan), "eval_s": np.full(config.epochs, np.nan)}
    best_params = jax.tree.map(jnp.copy, state.params)
    best_metric = np.full(num_members, -1.0, np.float32)
    best_epoch = np.full(num_members, -1, np.int64)
    bad_epochs = np.zeros(num_members, np.int64)
    stopped_epoch = np.zeros(num_members, np.int64)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.epochs, desc=f"population of {num_members}", unit="epoch")
    epoch = 0
    while epoch < config.epochs and np.any(bad_epochs < config.patience):
        active = bad_epochs < config.patience
        start = time.perf_counter()
        state, loss = epoch_fn(state, hparams, window_arr, mask_arr, jax.random.fold_in(data_key, epoch), step_key)
        loss = np.asarray(loss)  # blocks until the epoch is done
        history["epoch_s"][epoch] = time.perf_counter() - start
        start = time.perf_counter()
        metric = valid_evaluator(state.params)[stop_key].astype(np.float32)  # float32 as in fit
        history["eval_s"][epoch] = time.perf_counter() - start
        history["train_loss"][epoch] = loss
        history["valid_ndcg@10"][epoch] = metric
        improved = active & (metric > best_metric)
        if improved.any():
            best_params = _keep_best(best_params, state.params, jnp.asarray(improved))
        best_metric = np.where(improved, metric, best_metric)
        best_epoch = np.where(improved, epoch, best_epoch)
        bad_epochs = np.where(active & ~improved, bad_epochs + 1, bad_epochs)
        stopped_epoch = np.where(active, epoch + 1, stopped_epoch)
        epoch += 1
        if bar is not None:
            bar.set_postfix(best_valid_ndcg10=f"{best_metric.max():.4f}", active=int((bad_epochs < config.patience).sum()))
            bar.update(1)
    if bar is not None:
        bar.close()
    return PopulationResult(hparams=hparams, best_params=best_params, best_epoch=best_epoch,
                            best_metric=best_metric, stopped_epoch=stopped_epoch, epochs_run=epoch,
                            history=history, compile_s=compile_s, steps_per_epoch=-(-num_windows // batch_size))


def member_params(stacked, i: int):
    """Member ``i``'s parameters out of a [P]-stacked pytree."""
    return jax.tree.map(lambda x: x[i], stacked)
