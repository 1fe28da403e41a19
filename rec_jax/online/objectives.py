"""Losses for updating a recommender from logged bandit feedback.

* :func:`click_loss`: the CTR objective, P(click | shown in slot k) = sigmoid(s + pos_k)
  with binary cross-entropy; ``s`` is the model's score of the shown item and
  ``pos_k`` a learned per-slot logit that absorbs the feed's position bias.
* :func:`reinforce_loss`: REINFORCE for a softmax policy pi_theta = softmax(scores / tau)
  learned from another policy's logs, with the off-policy correction of Chen et al.
  (2019, "Top-K off-policy correction for a REINFORCE recommender system"):

      grad ~ - mean_i  w_i * lambda_i * (r_i - b_i) * grad log pi_theta(a_i | s_i)
      w_i      = min(pi_theta(a_i | s_i) / beta_i, cap)          (importance weight)
      lambda_i = K (1 - pi_theta(a_i | s_i))^(K - 1)             (top-K correction; 1 if K = 1)

  w and lambda are constants of the gradient (stop_gradient). pi_theta(a | s) is the
  full softmax, the probability of one draw of Chen et al.'s K-draws-with-replacement
  slate model, so beta_i must be the logger's MARGINAL probability of showing a_i in
  the sample's slot (not its conditional pick probability given the earlier slots):
  marginal over marginal. Then, uncapped (both tested):

  * no top-K factor: E[grad] = grad E_{a ~ pi_theta}[r_bar_a]; a baseline b_i that does
    not depend on sample i (a constant, or the leave-one-out mean of the other
    samples) leaves it unbiased, since sum_a grad pi_a = 0.
  * top-K factor: E[grad] = grad sum_a (1 - (1 - pi_a)^K) r_bar_a, the expected reward
    of the top-K slate. Here a baseline b shifts the objective to
    sum_a (1 - (1 - pi_a)^K)(r_bar_a - b) (the expected number of distinct items is not
    constant in theta), so pass baseline 0 unless that is what you want.

  The cap trades bias for variance on purpose.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def click_loss(scores: jax.Array, pos: jax.Array, clicks: jax.Array) -> jax.Array:
    """Mean BCE of ``clicks`` f32[B, K] (0/1) given shown-item scores f32[B, K] and slot logits f32[K]."""
    logits = scores + pos
    return jnp.mean(jnp.maximum(logits, 0) - logits * clicks + jnp.log1p(jnp.exp(-jnp.abs(logits))))


def reinforce_loss(logits: jax.Array, actions: jax.Array, rewards: jax.Array, behavior_prop: jax.Array,
                   *, cap: float = jnp.inf, slate_size: int = 1, baseline: jax.Array | float = 0.0) -> jax.Array:
    """Surrogate loss whose gradient is the corrected REINFORCE estimate.

    logits: f32[B, N] scores / tau of the policy being learned, per logged context.
    actions: int32[B] logged items; rewards f32[B]; behavior_prop f32[B] in (0, 1]:
      the logging policy's marginal probability of each logged item in its slot.
    cap: importance-weight cap (inf = uncapped); slate_size K: top-K correction factor.
    baseline: f32[] or f32[B] subtracted from the rewards; unbiased for K = 1 when b_i
      does not depend on sample i (see the module docstring for K > 1).
    """
    log_pi = jax.nn.log_softmax(logits, axis=-1)
    log_pi_a = jnp.take_along_axis(log_pi, actions[:, None], axis=-1)[:, 0]
    pi_a = jax.lax.stop_gradient(jnp.exp(log_pi_a))
    weight = jnp.minimum(pi_a / behavior_prop, cap)
    topk = slate_size * (1.0 - pi_a) ** (slate_size - 1)
    coeff = jax.lax.stop_gradient(weight * topk * (rewards - baseline))
    return -jnp.mean(coeff * log_pi_a)
