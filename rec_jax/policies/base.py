"""The policy interface every bandit in rec_jax meets (see docs/DESIGN.md, "Policy").

A policy is a :class:`Policy` named tuple of pure functions, written for ONE user
stream; the engine (``rec_jax.online``) vmaps it over streams and scans it over time.

    init(key, spec)                                   -> state
    act(key, state, obs, params)                      -> (action, ActInfo)
    update(key, state, obs, action, reward, params)   -> state
    merge(state, new_states)                          -> state    (shared mode)

* ``spec`` (:class:`PolicySpec`) holds the static shapes.
* ``params`` is a ``flax.struct`` pytree of every tunable number (epsilon,
  temperature, alpha, prior scale ...), so it can be vmapped or adapted in jit.
* ``obs`` is an :class:`Observation` from the simulator.
* ``action`` is ``int32[]`` (one item) or ``int32[K]`` (a slate of K distinct items).
* ``merge`` folds the S per-stream updates of ONE shared state back into it:
  ``new_states`` is the state pytree with a leading ``[S]`` axis, each entry being
  ``update(shared_state, ...)`` for one stream. The default adds the summed deltas
  of every leaf (exact for counts, sums, Gram matrices); policies with derived
  leaves (e.g. a maintained inverse) recompute them afterwards.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from flax import struct


@struct.dataclass
class PolicySpec:
    """Static shapes a policy is built for (hashable, static under jit)."""

    num_items: int = struct.field(pytree_node=False)  # N arms / items
    feature_dim: int = struct.field(pytree_node=False, default=0)  # D, 0 for context-free
    slate_size: int = struct.field(pytree_node=False, default=1)  # K; 1 = single action


@struct.dataclass
class Observation:
    """What a policy sees at one step of one stream.

    features:  f32[N, D] per-item context vectors x_{t,a} (D may be 0).
    available: bool[N]   items that may be recommended now (cold start, masking).
    scores:    f32[N]    optional prior scores from a model (zeros if none).
    history:   int32[L]  optional: the user's consumed item ids (1..N, 0 = padding),
               oldest -> newest, left-padded; what a sequential model encodes.
               None for simulators that keep no history (or do not expose it).
    history_count: int32[] optional, with ``history``: how many items have entered it so
               far (not capped at L), so a consumer keeping state incrementally knows how
               many are new even when the window looks the same (L copies of one item).
    """

    features: jax.Array
    available: jax.Array
    scores: jax.Array
    history: jax.Array | None = None
    history_count: jax.Array | None = None


@struct.dataclass
class ActInfo:
    """Propensities of what ``act`` chose, for off-policy evaluation.

    propensity: f32[]  for a single action, the probability of the chosen item;
                f32[K] for a slate, the conditional probability of each pick
                given the picks before it (slot k chosen among the items left).
    marginal:   f32[K, N] for a slate, the marginal probability that item n is
                shown in slot k (position-wise IPS); f32[1, N] for a single action
                (the full action distribution).
    num_mc_samples: int32[], 0 where the propensities are exact, else the number of
                Monte Carlo samples behind them (Thompson-type policies).
    propensity_kind, marginal_kind: int32[], what ``propensity`` and ``marginal``
                are, an index into :data:`PROPENSITY_KINDS`: ``EXACT``;
                ``MONTE_CARLO`` (an unbiased estimate from simulated slates that
                may be 0, e.g. a sampled slate's slots >= 1); ``MONTE_CARLO_FLOORED``
                (an estimate that counts the draw that acted, so it is at least
                1 / num_mc_samples and IPW weights built on it are capped at
                num_mc_samples * pi_e; the biases are stated in
                :func:`rec_jax.policies._slates.sampled_topk_slate`).
                ``rec_jax.ope.validate_log`` refuses floored propensities unless
                told ``allow_mc_floor=True``.
    """

    propensity: jax.Array
    marginal: jax.Array
    num_mc_samples: jax.Array
    propensity_kind: jax.Array
    marginal_kind: jax.Array


# ActInfo.propensity_kind / marginal_kind codes (int32 so they vmap and log like the numbers).
EXACT, MONTE_CARLO, MONTE_CARLO_FLOORED = 0, 1, 2
PROPENSITY_KINDS = ("exact", "monte_carlo", "monte_carlo_floored")


class Policy(NamedTuple):
    """A bandit policy: four pure functions (see module docstring)."""

    init: Callable[..., Any]
    act: Callable[..., Any]
    update: Callable[..., Any]
    merge: Callable[..., Any]
    # Optional: () -> Policy, the same policy for runs whose item features obs.features are
    # FIXED (the same f32[N, D] at every step, e.g. the linear env's params), free to keep
    # per-item quantities incrementally. The engine uses it in per-stream mode when it finds
    # the features held once for all streams; None: no such variant (always the plain one).
    fixed_features: Callable[[], Any] | None = None
    # Optional: a StreamView, the policy's per-stream view of the observation kept
    # incrementally by the engine (e.g. a Transformer's K/V ring of obs.history). The
    # engine then calls view.inner's act/update on view.observe's output, computed once
    # per step; act/update above stay the plain (recomputing) path, which a wrapper that
    # rebuilds the tuple without ``view`` falls back to.
    view: Any = None


class StreamView(NamedTuple):
    """What the engine needs to keep one stream's view of the observation incrementally.

    Written for ONE stream (the engine vmaps them); ``vstate`` is any pytree.

      init(params, obs) -> vstate                 from scratch (init_run, cache misses, stale params)
      advance(params, vstate, obs) -> (vstate, hit bool[])
                                                  the vstate of the next obs from the previous one
                                                  (cheap); hit False: it cannot, the engine rebuilds
      observe(params, vstate, obs) -> Observation what inner.act / inner.update see
      inner: Policy                               the policy acting on observe's output ...
      inner_params(params) -> its params          ... with these params
      depends_on(params) -> pytree                the params the vstate was built from (the encoder):
                                                  when they change, the engine rebuilds every vstate
    """

    init: Callable[..., Any]
    advance: Callable[..., Any]
    observe: Callable[..., Any]
    inner: Any
    inner_params: Callable[[Any], Any]
    depends_on: Callable[[Any], Any]


def merge_by_summed_deltas(state, new_states):
    """Default ``merge``: state + sum_s (new_states[s] - state), leaf by leaf.

    Exact for sufficient statistics that updates add to (counts, reward sums,
    Gram matrices, b vectors). Integer leaves stay integers.
    """

    def fold(old, new):
        delta = jnp.sum(new - old[None], axis=0)
        return (old + delta).astype(old.dtype)

    return jax.tree.map(fold, state, new_states)
