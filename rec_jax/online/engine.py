"""The online engine: ``lax.scan`` over time of ``vmap`` over user streams.

    run = make_run(EngineConfig(num_streams=S), policy, sim)
    state = run.init_run(key, policy_params, env_params)        # RunState
    state, metrics = run.run_chunk(state, num_steps)            # num_steps static
    metrics["regret"]                                           # f32[T, S]

Policies and simulators are written for ONE stream (docs/DESIGN.md, "Write for one,
vmap for many"); the engine vmaps them over the ``S`` streams and scans over the
``T`` steps. Everything is pure and jit/vmap friendly: the caller jits once (a
second call with the same shapes does not retrace) and may vmap ``run`` over seeds
or over policy/env params (hyperparameters are data).

Two ways of holding the policy state:

* ``mode="per_stream"``: every stream has its own state (leading ``[S]`` axis);
  streams never talk to each other.
* ``mode="shared"``: ONE state. Each step every stream acts from it, every stream
  computes ``update(shared, ...)`` on its own observation, and ``policy.merge``
  folds the ``S`` updates back into one state (summed sufficient statistics, then
  the policy re-factorises whatever it derives from them).

Per-step randomness: ``step_key = fold_in(run_key, step)`` split into purpose-named
keys (act, env, update), each split again into ``S`` per-stream keys, so a chunked
or resumed run draws exactly the numbers an uninterrupted one draws.

Observation leaves the simulator computes from its params alone (the fixed item
features of ``linear``, constant ``available`` / ``scores``) are NOT copied per
stream: the engine finds them at trace time (a dependency pass over the traced
program: which outputs depend on the per-stream inputs) and keeps ONE copy in ``RunState.obs``, passed to the policy with
``in_axes=None``; per-stream obs leaves keep the leading ``[S]`` axis. Logged
context (``log_tuples``) is always ``[T, S, ...]``.

Sharding (:mod:`rec_jax.online.sharding`): ``shard_streams`` places the leading (streams) axis of every
per-stream leaf on a 1-D ``Mesh`` axis named ``"streams"``; the algorithm code is
unchanged and XLA inserts the (shared-mode) reductions. Per-stream runs built with
``make_run(..., mesh=mesh)`` step each device's streams inside ``jax.shard_map``: no
collective per step, the same numbers (each stream's keys are its slice of the split).
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.sharding import Mesh, PartitionSpec

from rec_jax import fused_threefry
from rec_jax.online.obs_batching import abstract as _abstract
from rec_jax.online.obs_batching import obs_axes as _obs_axes
from rec_jax.online.obs_batching import one_stream as _one_stream
from rec_jax.online.obs_batching import traced_once as _traced_once
from rec_jax.online.obs_batching import vmapped_out_axes as _vmapped_out_axes
from rec_jax.online.rare_cond import when_any
from rec_jax.online.sharding import STREAMS_AXIS, split_slice, stream_shardings
from rec_jax.policies.base import Observation, Policy, PolicySpec
from rec_jax.sim.base import Simulator

MODES = ("per_stream", "shared")
LOG_CONTEXTS = ("features", "history", "none")


@dataclasses.dataclass(frozen=True)
class EngineConfig:
    """Static shape and layout of an online run (hashable; static under jit)."""

    num_streams: int = 16  # S parallel user streams, the leading axis of per-stream leaves
    slate_size: int = 1  # K items shown per step; 1 = a single action per step
    mode: str = "per_stream"  # "per_stream": own policy state per stream; "shared": one state for all
    log_tuples: bool = False  # also return the logged (context, action, propensity, reward) tuples
    log_marginal: bool = True  # with log_tuples: also log the per-slot marginals f32[K', N] (large for big catalogues)
    log_context: str = "features"  # with log_tuples: "features" logs obs.features/available; "history" logs obs.history; "none" skips them

    def validate(self, num_items: int) -> None:
        """Raise ``ValueError`` naming the field when the config cannot run."""
        if not isinstance(self.num_streams, int) or self.num_streams < 1:
            raise ValueError(f"EngineConfig.num_streams: expected an int >= 1, got {self.num_streams!r}")
        if not isinstance(self.slate_size, int) or not 1 <= self.slate_size <= num_items:
            raise ValueError(
                f"EngineConfig.slate_size: expected an int in [1, num_items={num_items}], got {self.slate_size!r}"
            )
        if self.mode not in MODES:
            raise ValueError(f"EngineConfig.mode: expected one of {MODES}, got {self.mode!r}")
        if self.log_context not in LOG_CONTEXTS:
            raise ValueError(f"EngineConfig.log_context: expected one of {LOG_CONTEXTS}, got {self.log_context!r}")


@struct.dataclass
class RunState:
    """Everything a run needs to continue; what Orbax saves between chunks.

    policy_state:  the policy's state; leading [S] axis in per-stream mode, none in shared mode.
    env_state:     the simulator's state, leading [S] axis.
    obs:           Observation; leaves with a leading [S] axis (features f32[S, N, D] ...), except
                   leaves that depend on the env params only (fixed item features f32[N, D]),
                   which are held once for all streams (see the module docstring).
    key:           the run's typed PRNG key; step t uses fold_in(key, t).
    step:          int32[], number of steps taken so far.
    policy_params: the policy's hyperparameters (no S axis; data, so vmappable / adaptable).
    env_params:    the simulator's params (no S axis).
    view_state:    for a policy with a ``view`` (:class:`rec_jax.policies.base.StreamView`), a
                   :class:`ViewCache`: each stream's view state for ``obs`` (leading [S] axis)
                   and the params it was built from; None otherwise.
    """

    policy_state: Any
    env_state: Any
    obs: Observation
    key: jax.Array
    step: jax.Array
    policy_params: Any
    env_params: Any
    view_state: Any = None


@struct.dataclass
class ViewCache:
    """The engine's per-stream cache of a policy's ``StreamView`` (see :func:`make_run`).

    states:     the view state of every stream for ``RunState.obs`` (leading [S] axis).
    built_with: ``view.depends_on(policy_params)`` when the states were built (no S axis);
                params that differ from it (an online encoder update) make the next step
                rebuild every state, params that do not (head, adapter) keep them.
    """

    states: Any
    built_with: Any


class Run(NamedTuple):
    """The pure functions :func:`make_run` returns (plus what they were built from)."""

    init_run: Callable[..., RunState]  # (key, policy_params, env_params) -> RunState
    run_chunk: Callable[..., tuple]  # (run_state, num_steps) -> (RunState, metrics)
    run: Callable[..., tuple]  # (key, policy_params, env_params, num_steps) -> (RunState, metrics)
    validate: Callable[..., None]  # host-side: (policy_params, env_params) -> None or ValueError
    config: EngineConfig
    spec: PolicySpec


# Streams from which the engine draws through rec_jax.fused_threefry (see make_run's _step_keys;
# measured, LinUCB N=100 d=16: no gain at 64-256 streams, +13% at 1,024, +30% at 4,096).
FUSED_PRNG_MIN_STREAMS = 512


def make_run(
    config: EngineConfig,
    policy: Policy,
    sim: Simulator,
    *,
    spec: PolicySpec | None = None,
    validate_policy_params: Callable[[Any], None] | None = None,
    validate_env_params: Callable[[Any], None] | None = None,
    mesh: Mesh | None = None,
) -> Run:
    """Build the pure ``init_run`` / ``run_chunk`` / ``run`` of one online study.

    Args:
      config: static layout (streams, slate size, mode, logging).
      policy: the policy's four pure functions, written for one stream.
      sim: the simulator, written for one stream.
      spec: the policy's static shapes; default built from ``sim`` and ``config``.
      validate_policy_params / validate_env_params: host-side checks of concrete
        params; default: the params' own ``validate(spec)`` method when it has one,
        else the registered simulator's validator, found through ``sim.name`` (or the
        params class), which also refuses a slate size the simulator does not serve;
        non-finite float leaves are always rejected.
      mesh: per-stream mode only: a mesh with a ``"streams"`` axis
        (:func:`rec_jax.online.sharding.streams_mesh`) whose devices each step their own
        slice of the streams inside ``jax.shard_map``: no cross-device operation per
        step (under plain GSPMD sharding, every batch-wide ``any`` of the rare-branch
        conds becomes an all-reduce per step), the same numbers as the unsharded run
        (each stream draws from ``split(key, S)[s]``). ``num_streams`` must be a
        multiple of the axis size; ``run_chunk`` takes the state as ``shard_streams``
        or ``rec_jax.distributed.init_sharded`` place it (or reshards it). Shared
        mode ignores it (its merge sums over streams: XLA inserts the reductions).

    Returns a :class:`Run`. Metrics of ``run_chunk`` are a dict of arrays stacked
    over steps (no host round trips):

      reward f32[T, S], click f32[T, S], expected_reward f32[T, S],
      regret f32[T, S] (best expected - expected of the chosen action/slate),
      propensity f32[T, S] (f32[T, S, K] for slates: conditional pick probabilities),
      and with ``config.log_tuples`` a nested ``log`` dict: action i32[T, S(, K)],
      propensity, marginal f32[T, S, K', N] (K' = 1 for single actions),
      marginal_propensity f32[T, S, K] (each pick's marginal in its slot), reward, slot_rewards f32[T, S, K], num_mc_samples i32[T, S],
      propensity_kind / marginal_kind i32[T, S] (``PROPENSITY_KINDS`` codes of rec_jax.policies.base), and with
      ``log_context="features"`` the context features f32[T, S, N, D] and
      available bool[T, S, N] seen when acting (``"history"``: the history
      int32[T, S, L] seen when acting); ``log_marginal=False`` drops ``marginal``.
    """
    config.validate(sim.num_items)
    if spec is None:
        spec = PolicySpec(num_items=sim.num_items, feature_dim=sim.feature_dim, slate_size=config.slate_size)
    if (spec.num_items, spec.slate_size) != (sim.num_items, config.slate_size):
        raise ValueError(
            f"make_run: PolicySpec(num_items={spec.num_items}, slate_size={spec.slate_size}) does not match "
            f"the simulator's num_items={sim.num_items} and EngineConfig.slate_size={config.slate_size}"
        )
    num_streams = config.num_streams
    shared = config.mode == "shared"
    shards = 1 if mesh is None or shared else mesh.shape[STREAMS_AXIS]
    if num_streams % shards:
        raise ValueError(f"make_run: EngineConfig.num_streams={num_streams} is not a multiple of the mesh's "
                         f"{shards} {STREAMS_AXIS!r} devices")
    policy_axis = None if shared else 0

    action_shape = () if config.slate_size == 1 else (config.slate_size,)

    def _step_keys(key: jax.Array) -> jax.Array:
        """The step key as drawn from: from ``FUSED_PRNG_MIN_STREAMS`` streams on, re-typed to
        rec_jax.fused_threefry (the same bits from a hash XLA:CPU fuses; JAX's CPU lowering
        is a rolled loop of small thunks, 0.7 ms of a 2.7 ms LinUCB step at 4,096 streams).
        Below, the draws are a small part of a step and the fused hash's compile time
        (~0.1 s a program) is not repaid."""
        return fused_threefry.as_fused(key) if num_streams >= FUSED_PRNG_MIN_STREAMS else key

    def _step_keys_dtype(key_dtype):
        return jax.eval_shape(_step_keys, jax.ShapeDtypeStruct((), key_dtype)).dtype

    @functools.cache
    def _fixed_policy() -> Policy:
        return policy.fixed_features() if policy.fixed_features is not None else policy

    def _stream_keys(key: jax.Array, n: int) -> jax.Array:
        """The per-stream keys of the ``n`` streams stepped here: ``split(key, S)``, or inside
        the shard_map of a ``mesh`` run this device's slice of it."""
        if n == num_streams:
            return jax.random.split(key, num_streams)
        return split_slice(key, num_streams, jax.lax.axis_index(STREAMS_AXIS) * n, n)

    def _step_obs_axes(env_state: Any, env_params: Any, key_dtype: Any, n: int):
        """(sim.step traced once for one stream and keys of ``key_dtype``, the obs axes it
        emits under vmap over ``n`` streams, its one-stream obs shapes): leaves it computes
        from the env params alone come out unbatched (None)."""
        keys = jax.ShapeDtypeStruct((), key_dtype)
        one_state = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), env_state)
        action = jax.ShapeDtypeStruct(action_shape, jnp.int32)
        sim_step, out_shape = _traced_once(sim.step, keys, one_state, action, _abstract(env_params))
        batched_args = (
            jax.ShapeDtypeStruct((n,), keys.dtype),
            env_state,
            jax.ShapeDtypeStruct((n,) + action_shape, jnp.int32),
            env_params,
        )
        return sim_step, _obs_axes(sim_step, (0, 0, 0, None), batched_args, out_shape[0]), out_shape[0]

    def per_stream(x: jax.Array, axis, n: int) -> jax.Array:
        """A leaf with the leading axis of the ``n`` streams stepped here (broadcast when held once)."""
        return x if axis == 0 else jnp.broadcast_to(x, (n,) + x.shape)

    def init_run(key: jax.Array, policy_params: Any, env_params: Any) -> RunState:
        """RunState at step 0: S simulator resets and the policy's initial state."""
        reset_key, policy_key, run_key = jax.random.split(key, 3)
        reset_keys = jax.random.split(reset_key, num_streams)
        reset, out_shape = _traced_once(sim.reset, _one_stream(reset_keys), _abstract(env_params))
        o_axes = _obs_axes(reset, (0, None), (reset_keys, env_params), out_shape[0])
        obs, env_state = jax.vmap(reset, in_axes=(0, None), out_axes=(o_axes, 0))(reset_keys, env_params)
        policy_params = _strongly_typed(policy_params)
        view_state = None
        if policy.view is not None:
            view_state = ViewCache(states=_view_init(policy.view, policy_params, obs, o_axes, num_streams),
                                   built_with=policy.view.depends_on(policy_params))
        if shared:
            policy_state = policy.init(policy_key, spec)
        else:
            _, step_axes, _ = _step_obs_axes(env_state, env_params, _step_keys_dtype(run_key.dtype), num_streams)
            fixed = o_axes.features is None and step_axes.features is None
            init = (_fixed_policy() if fixed else policy).init
            policy_state = jax.vmap(init, in_axes=(0, None))(jax.random.split(policy_key, num_streams), spec)
        return RunState(
            policy_state=policy_state,
            env_state=env_state,
            obs=obs,
            key=run_key,
            step=jnp.zeros((), jnp.int32),
            # Strongly typed leaves, so a RunState restored from a checkpoint has the
            # same avals as a fresh one and the jitted run_chunk does not retrace.
            policy_params=policy_params,
            env_params=_strongly_typed(env_params),
            view_state=view_state,
        )

    def step_fn(rs: RunState, _, sim_step=None, o_axes=None, policy=policy, n=num_streams):
        step_key = _step_keys(jax.random.fold_in(rs.key, rs.step))
        act_key, env_key, update_key = jax.random.split(step_key, 3)
        act_keys = _stream_keys(act_key, n)
        env_keys = _stream_keys(env_key, n)
        update_keys = _stream_keys(update_key, n)

        obs_tm1 = rs.obs
        view = policy.view if rs.view_state is not None else None
        if view is not None:
            # The model's view, once a step, shared by act and update, from the cached states
            # (which run_chunk rebuilt if the params they depend on changed).
            vstates = rs.view_state.states
            # What depends on the params alone (the item table of factored features) stays one copy.
            observe, seen_axes = _vmapped_out_axes(view.observe, (None, 0, o_axes), (rs.policy_params, vstates, obs_tm1))
            seen = jax.vmap(observe, in_axes=(None, 0, o_axes), out_axes=seen_axes)(rs.policy_params, vstates, obs_tm1)
            acting, acting_params = view.inner, view.inner_params(rs.policy_params)
        else:
            seen, seen_axes, acting, acting_params = obs_tm1, o_axes, policy, rs.policy_params
        action, info = jax.vmap(acting.act, in_axes=(0, policy_axis, seen_axes, None))(
            act_keys, rs.policy_state, seen, acting_params
        )
        obs_t, env_state, out = jax.vmap(sim_step, in_axes=(0, 0, 0, None), out_axes=(o_axes, 0, 0))(
            env_keys, rs.env_state, action, rs.env_params
        )
        # Single actions learn from the scalar reward, slates from the per-slot rewards.
        feedback = out.reward if config.slate_size == 1 else out.slot_rewards
        new_policy_states = jax.vmap(acting.update, in_axes=(0, policy_axis, seen_axes, 0, 0, None))(
            update_keys, rs.policy_state, seen, action, feedback, acting_params
        )
        policy_state = acting.merge(rs.policy_state, new_policy_states) if shared else new_policy_states
        view_state = rs.view_state
        if view is not None:
            # Append what entered each history; a stream the cheap path cannot explain (a
            # miss) is rebuilt from its window. The rebuild runs only in a step with a miss
            # (a real branch, also under vmap over seeds: rare_cond), and then only the
            # missed streams take it.
            advanced, hit = jax.vmap(view.advance, in_axes=(None, 0, o_axes))(rs.policy_params, vstates, obs_t)

            def repair(ops):
                params, states, ok, obs = ops
                return _select_streams(ok, states, _view_init(view, params, obs, o_axes, n))

            vstates = when_any(jnp.logical_not(jnp.all(hit)), repair, lambda ops: ops[1],
                               (rs.policy_params, advanced, hit, obs_t))
            view_state = rs.view_state.replace(states=vstates)

        metrics = {
            "reward": out.reward,
            "click": out.click,
            "expected_reward": out.expected_reward,
            "regret": out.best_expected_reward - out.expected_reward,
            "propensity": info.propensity,
        }
        if config.log_tuples:
            log = {
                "action": action,
                "propensity": info.propensity,
                # f32[S, K]: the marginal probability of each pick in its slot (what
                # marginal-over-marginal importance weights need), cheap even when the
                # full marginals are not logged.
                "marginal_propensity": _picked_marginals(info.marginal, action),
                "num_mc_samples": info.num_mc_samples,
                # i32[S]: rec_jax.policies.base.PROPENSITY_KINDS codes (exact, MC, MC floored at 1/num_mc_samples)
                "propensity_kind": info.propensity_kind,
                "marginal_kind": info.marginal_kind,
                "reward": out.reward,
                "slot_rewards": out.slot_rewards,
            }
            if config.log_marginal:
                log["marginal"] = info.marginal
            if config.log_context == "history":
                log["history"] = obs_tm1.history
            if config.log_context == "features":
                log["features"] = per_stream(obs_tm1.features, o_axes.features, n)
                log["available"] = per_stream(obs_tm1.available, o_axes.available, n)
            metrics["log"] = log
        new_rs = rs.replace(policy_state=policy_state, env_state=env_state, obs=obs_t, step=rs.step + 1,
                            view_state=view_state)
        return new_rs, metrics

    def run_chunk(run_state: RunState, num_steps: int) -> tuple[RunState, dict]:
        """Advance ``num_steps`` (static) steps; metrics stacked as [T, S, ...]."""
        if shards == 1:
            return _run_local(run_state, num_steps, num_streams)
        specs = jax.tree.map(lambda s: s.spec, stream_shardings(run_state, mesh, config.mode))
        local = functools.partial(_run_local, num_steps=num_steps, n=num_streams // shards)
        # Every metric is [T, S, ...]: split on its streams axis.
        return jax.shard_map(local, mesh=mesh, in_specs=(specs,), out_specs=(specs, PartitionSpec(None, STREAMS_AXIS)),
                             check_vma=False)(run_state)

    def _run_local(run_state: RunState, num_steps: int, n: int) -> tuple[RunState, dict]:
        """``run_chunk`` over the ``n`` streams of ``run_state`` (all S, or one device's slice)."""
        # Trace sim.step once for one stream; obs leaves it emits from the env params
        # alone stay unbatched (held once), if the carried obs holds them once too.
        sim_step, step_axes, obs_shape = _step_obs_axes(run_state.env_state, run_state.env_params,
                                                         _step_keys_dtype(run_state.key.dtype), n)
        carry_axes = jax.tree.map(lambda x, one: 0 if jnp.ndim(x) > len(one.shape) else None, run_state.obs, obs_shape)
        o_axes = jax.tree.map(lambda a, b: None if a is None and b is None else 0, carry_axes, step_axes,
                              is_leaf=lambda x: x is None)
        obs = jax.tree.map(lambda x, c, a: per_stream(x, c, n) if a == 0 else x, run_state.obs, carry_axes, o_axes,
                           is_leaf=lambda x: x is None)
        # Fixed item features (held once, per-stream mode): the policy's fixed-features variant,
        # if the state was built by it (init_run decides the same way from the same axes).
        active = policy
        if policy.view is None and not shared and o_axes.features is None and policy.fixed_features is not None:
            variant = _fixed_policy()
            one = jax.eval_shape(variant.init, jax.ShapeDtypeStruct((), jax.random.key(0).dtype), spec)
            if jax.tree.structure(one) == jax.tree.structure(jax.tree.map(lambda x: x[0], run_state.policy_state)):
                active = variant
        body = functools.partial(step_fn, sim_step=sim_step, o_axes=o_axes, policy=active, n=n)
        run_state = run_state.replace(obs=obs)
        if policy.view is not None and run_state.view_state is not None:
            run_state = run_state.replace(view_state=_fresh_view(policy.view, run_state, o_axes))
        return jax.lax.scan(body, run_state, None, length=num_steps)

    def run(key: jax.Array, policy_params: Any, env_params: Any, num_steps: int) -> tuple[RunState, dict]:
        """``init_run`` then ``run_chunk`` over ``num_steps`` (static) steps."""
        return run_chunk(init_run(key, policy_params, env_params), num_steps)

    def validate(policy_params: Any, env_params: Any) -> None:
        """Host-side check of concrete params (once, before jit); ValueError when bad."""
        _call_validator(validate_policy_params, policy_params, "policy params", spec)
        _call_validator(validate_env_params, env_params, "env params", sim=sim, slate_size=config.slate_size)

    return Run(init_run=init_run, run_chunk=run_chunk, run=run, validate=validate, config=config, spec=spec)


def _fresh_view(view, rs: RunState, o_axes) -> ViewCache:
    """``rs.view_state``, rebuilt from ``rs.obs`` when the params its states depend on changed
    since they were built (an online encoder update between chunks; params do not change
    within a chunk), else kept (a head or adapter update). One scalar cond per chunk."""
    built_with = view.depends_on(rs.policy_params)
    stale = jnp.logical_not(_tree_equal(built_with, rs.view_state.built_with))

    def repair(ops):
        params, states, obs, redo = ops
        # `redo` again: under vmap over seeds the branch runs when ANY seed is stale
        num_streams = jax.tree.leaves(states)[0].shape[0]
        fresh = _view_init(view, params, obs, o_axes, num_streams)
        return jax.tree.map(lambda s, r: jnp.where(redo, r, s), states, fresh)

    states = when_any(stale, repair, lambda ops: ops[1], (rs.policy_params, rs.view_state.states, rs.obs, stale))
    return ViewCache(states=states, built_with=built_with)


def _select_streams(keep: jax.Array, kept: Any, other: Any) -> Any:
    """Per stream (leading axis of bool[S] ``keep``): ``kept``'s leaves where keep, else ``other``'s."""
    return jax.tree.map(lambda a, b: jnp.where(keep.reshape(keep.shape + (1,) * (a.ndim - 1)), a, b), kept, other)


def _view_init(view, policy_params: Any, obs: Observation, o_axes, num_streams: int) -> Any:
    """Every stream's view state built from scratch from ``obs`` (leading [S] axis).

    ``axis_size`` because an observation may hold every leaf once (a simulator whose
    reset history is the same for all streams): the states are then broadcast to [S]."""
    return jax.vmap(view.init, in_axes=(None, o_axes), axis_size=num_streams)(policy_params, obs)


def _tree_equal(a: Any, b: Any) -> jax.Array:
    """bool[]: every leaf of ``a`` equals ``b``'s (same structure)."""
    return functools.reduce(jnp.logical_and, [jnp.all(x == y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b))],
                            jnp.asarray(True))


def _picked_marginals(marginal: jax.Array, action: jax.Array) -> jax.Array:
    """f32[S, K] marginal[s, k, action[s, k]] from marginal f32[S, K', N], action int32[S(, K)]."""
    picks = action.reshape(action.shape[0], -1)  # [S, K]
    return jnp.take_along_axis(marginal, picks[:, :, None], axis=2)[:, :, 0]


def _strongly_typed(tree: Any) -> Any:
    """Python scalars (weak-typed under jit) -> arrays of their canonical dtype."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


def _call_validator(fn: Callable[[Any], None] | None, params: Any, what: str, spec: PolicySpec | None = None,
                    sim: Simulator | None = None, slate_size: int = 1) -> None:
    sim_name = None
    if fn is None and sim is not None:
        # Env params: the registered simulator's validator, by the simulator's name
        # (set by rec_jax.sim.make_env) or, for a factory called directly, its params class.
        from rec_jax import sim as sims

        sim_name = getattr(sim, "name", None)
        if sim_name not in sims.ENV_NAMES:
            sim_name = sims.name_for_params(params)
    if fn is not None:
        fn(params)
    elif sim_name is not None:
        sims.validate_params(sim_name, params, sims.SimSpec(sim.num_items, sim.feature_dim, slate_size))
    elif hasattr(params, "validate"):
        # Policy params validate themselves (optionally against the spec).
        params.validate(spec) if spec is not None else params.validate()
    # Catch NaN / inf whatever the policy or simulator checks.
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        try:
            arr = np.asarray(leaf)
        except jax.errors.TracerArrayConversionError as e:
            raise ValueError(f"{what}: validate concrete params on the host, not inside jit") from e
        if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
            raise ValueError(f"{what}{jax.tree_util.keystr(path)}: expected finite values, got {arr.ravel()[:8]}")
