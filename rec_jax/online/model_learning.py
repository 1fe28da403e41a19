"""Online learning of the sequential model inside the jit-compiled engine.

The engine (:mod:`rec_jax.online.engine`) runs a model-backed policy
(:mod:`rec_jax.policies.model_backed`) for ``update_every`` steps with the logged
tuples kept on device (histories, slates, conditional propensities, per-slot
rewards: the replay window of the last ``update_every`` x S events); then Optax
takes ``grad_steps`` steps on that window,

    theta_t = theta_{t-1} - eta * grad L_t(theta_{t-1}),

and the new parameters go back into the policy params (data, so nothing
recompiles). One ``lax.scan`` over chunks runs the whole horizon in one jit.

* ``objective="ctr"``: :func:`rec_jax.online.objectives.click_loss` on every shown slot;
* ``objective="reinforce"``: :func:`rec_jax.online.objectives.reinforce_loss` with the
  logged marginal probability of each pick in its slot as beta (the engine logs it as
  ``marginal_propensity``; for Monte Carlo policies it is their MC estimate), the
  importance cap and top-K factor; the baseline is the leave-one-out mean reward of the
  window (every other logged slot reward), which keeps the single-draw estimator
  unbiased, and 0 with the top-K factor (where a baseline would change the objective);
* ``objective="none"``: the frozen model (same program, no update).
* ``trainable="full"`` updates encoder, adapter and head; ``"adapter"`` only the
  adapter and head (a few thousand numbers; the encoder stays the offline one).
"""
from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp
import optax

from rec_jax.online.engine import Run, RunState
from rec_jax.online.objectives import click_loss, reinforce_loss
from rec_jax.policies.model_backed import item_table, shown_scores, user_states

OBJECTIVES = ("none", "ctr", "reinforce")
TRAINABLE = ("full", "adapter")


@dataclasses.dataclass(frozen=True)
class OnlineLearningConfig:
    objective: str = "ctr"  # none | ctr | reinforce
    trainable: str = "full"  # full (encoder + adapter + head) | adapter (adapter + head only)
    update_every: int = 50  # M engine steps between updates (the replay window)
    grad_steps: int = 1  # Optax steps per update on the window
    learning_rate: float = 1e-3  # Adam step size
    temperature: float = 1.0  # REINFORCE: pi_theta = softmax(scores / temperature)
    cap: float = 10.0  # REINFORCE: importance-weight cap (inf = uncapped)
    topk_correction: bool = True  # REINFORCE: multiply by K (1 - pi)^(K - 1)

    def validate(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ValueError(f"OnlineLearningConfig.objective: expected one of {OBJECTIVES}, got {self.objective!r}")
        if self.trainable not in TRAINABLE:
            raise ValueError(f"OnlineLearningConfig.trainable: expected one of {TRAINABLE}, got {self.trainable!r}")
        for name in ("update_every", "grad_steps"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"OnlineLearningConfig.{name}: expected an int >= 1, got {getattr(self, name)!r}")
        for name in ("learning_rate", "temperature", "cap"):
            if not getattr(self, name) > 0:
                raise ValueError(f"OnlineLearningConfig.{name}: expected > 0, got {getattr(self, name)!r}")


def _split(view: dict, trainable: str) -> tuple[dict, dict]:
    if trainable == "full":
        return view, {}
    return {"adapter": view["adapter"], "head": view["head"]}, {"encoder": view["encoder"]}


def make_window_loss(model, config: OnlineLearningConfig, num_items: int, slate_size: int):
    """``loss(view, log) -> f32[]`` on one replay window (log leaves [M, S, ...])."""

    def loss(view, log):
        hist = log["history"].reshape((-1,) + log["history"].shape[2:])  # [B, L]
        actions = log["action"].reshape(hist.shape[0], slate_size)  # [B, K]
        rewards = log["slot_rewards"].reshape(hist.shape[0], slate_size)
        h = user_states(model, view, hist)
        if config.objective == "ctr":
            shown = shown_scores(model, view, h, actions, num_items)
            return click_loss(shown, view["head"]["pos"], (rewards > 0).astype(jnp.float32))
        scores = (h * view["head"]["w"]) @ item_table(model, view, num_items).T + view["head"]["b"]  # [B, N]
        return reinforce_window_loss(scores / config.temperature, actions, rewards,
                                     log["marginal_propensity"].reshape(hist.shape[0], slate_size),
                                     cap=config.cap, topk=config.topk_correction and slate_size > 1)

    return loss


def reinforce_window_loss(logits: jax.Array, actions: jax.Array, rewards: jax.Array, marginal: jax.Array,
                          *, cap: float, topk: bool) -> jax.Array:
    """REINFORCE loss of one replay window, averaged over its B events and K slots.

    logits f32[B, N] (one softmax row per event, shared by its K slots: no [B*K, N]
    copy); actions int32[B, K]; rewards f32[B, K] per-slot rewards; marginal f32[B, K]
    the logger's marginal probability of each pick in its slot. ``topk``: Chen et
    al.'s K (1 - pi)^(K - 1) factor with baseline 0; else the leave-one-out baseline.
    """
    k = actions.shape[1]
    n = rewards.size
    # Monte Carlo marginals (softmax and SquareCB slots >= 1) can be 0 for the item picked;
    # such a sample's weight is then the cap (uncapped: 1 / 1e-6 instead of inf).
    marginal = jnp.maximum(marginal, 1e-6)
    if topk:
        baseline = jnp.zeros_like(rewards)
    else:  # each sample's baseline is the mean of all OTHER samples' rewards
        baseline = (jnp.sum(rewards) - rewards) / max(n - 1, 1)
    per_slot = jax.vmap(
        lambda a_k, r_k, p_k, b_k: reinforce_loss(logits, a_k, r_k, p_k, cap=cap, slate_size=k if topk else 1,
                                                  baseline=b_k),
        in_axes=(1, 1, 1, 1),
    )(actions, rewards, marginal, baseline)
    return jnp.mean(per_slot)


def make_online_learning(run: Run, model, config: OnlineLearningConfig):
    """``(init, run_online)`` around an engine ``run`` built with
    ``EngineConfig(log_tuples=True, log_context="history", log_marginal=False)``
    and a model-backed policy.

    init(run_state) -> opt_state
    run_online(run_state, opt_state, num_chunks) -> (run_state, opt_state, metrics)
      metrics: the engine's per-step metrics without the log, stacked [C * M, S],
      plus ``loss`` f32[C] (the window loss before each update).
    """
    config.validate()
    ec = run.config
    if not (ec.log_tuples and ec.log_context == "history"):
        raise ValueError("make_online_learning: the engine needs EngineConfig(log_tuples=True, log_context='history')")
    num_items, slate_size = run.spec.num_items, ec.slate_size
    loss_fn = make_window_loss(model, config, num_items, slate_size)
    optimizer = optax.adam(config.learning_rate)

    def init(run_state: RunState):
        trainable, _ = _split(run_state.policy_params.view, config.trainable)
        return optimizer.init(trainable)

    def one_chunk(carry, _):
        rs, opt_state = carry
        rs, metrics = run.run_chunk(rs, config.update_every)
        log = metrics.pop("log")
        view = rs.policy_params.view
        if config.objective == "none":
            metrics["loss"] = jnp.zeros((config.update_every,), jnp.float32)
            return (rs, opt_state), metrics
        trainable, frozen = _split(view, config.trainable)

        def window_loss(tr):
            return loss_fn({**frozen, **tr}, log)

        first = None
        for _ in range(config.grad_steps):
            value, grads = jax.value_and_grad(window_loss)(trainable)
            first = value if first is None else first
            updates, opt_state = optimizer.update(grads, opt_state, trainable)
            trainable = optax.apply_updates(trainable, updates)
        new_view = {**frozen, **trainable}
        rs = rs.replace(policy_params=rs.policy_params.replace(view=new_view))
        metrics["loss"] = jnp.full((config.update_every,), first, jnp.float32)
        return (rs, opt_state), metrics

    def run_online(run_state: RunState, opt_state, num_chunks: int):
        # A zero-step chunk lays the carried obs out as run_chunk returns it (leaves the
        # env holds once get their [S] axis), so the scan's carry keeps one type.
        run_state, _ = run.run_chunk(run_state, 0)
        (rs, opt_state), metrics = jax.lax.scan(one_chunk, (run_state, opt_state), None, length=num_chunks)
        # [C, M, S, ...] -> [C * M, S, ...]
        metrics = jax.tree.map(lambda x: x.reshape((-1,) + x.shape[2:]), metrics)
        return rs, opt_state, metrics

    return init, run_online
