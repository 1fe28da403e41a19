"""A policy wrapper that watches its own reward with Page-Hinkley and adapts on alarm.

    policy = make_drift_reset(base_policy, spec, field="epsilon")
    params = DriftResetParams(base=EpsilonGreedyParams(epsilon=0.03), detector=PageHinkleyParams(...))

Per stream: every ``update`` feeds the step's reward to a Page-Hinkley detector
(:mod:`rec_jax.adapt.page_hinkley`); for a slate the MEAN of its per-slot rewards,
so the detector sees values in the per-slot reward range (in [0, 1] for clicks, the
range ``threshold_for_rate``'s default sigma2 = 1/4 assumes) whatever the slate
size, and ``delta`` is a change of the per-slot mean. On an alarm the world has
changed, so the wrapper

* forgets: the base policy's state is re-initialised (``reset`` > 0.5), so stale
  statistics from before the change stop steering it ("shortens memory");
* explores: for the next ``boost_steps`` steps the base params' exploration
  field ``field`` (epsilon, temperature, alpha ...) is raised to at least ``boost``.

Written for one stream like every policy; runs in the engine unchanged, in
per-stream mode only (``merge`` of a shared state is not defined: two streams'
alarms cannot be summed).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from rec_jax.adapt.page_hinkley import PageHinkleyParams, PageHinkleyState, init_page_hinkley, page_hinkley_step
from rec_jax.policies.base import Policy, PolicySpec


@struct.dataclass
class DriftResetParams:
    base: Any  # the base policy's params
    detector: PageHinkleyParams = struct.field(default_factory=PageHinkleyParams)  # the change detector's params
    boost: float = 0.2  # exploration value used right after an alarm (the field is raised to at least this)
    boost_steps: int = 100  # steps the boost lasts, >= 0
    reset: float = 1.0  # > 0.5: re-initialise the base state on alarm; else keep it

    def validate(self, spec: PolicySpec | None = None) -> None:
        if hasattr(self.base, "validate"):
            self.base.validate(spec)
        self.detector.validate()
        if not float(self.boost) >= 0 or int(self.boost_steps) < 0:
            raise ValueError(f"DriftResetParams.boost/boost_steps: expected >= 0, got {self.boost}, {self.boost_steps}")


@struct.dataclass
class DriftResetState:
    """base: the base policy's state; detector: PageHinkleyState; boost_left: int32[]; alarms: int32[] so far."""

    base: Any
    detector: PageHinkleyState
    boost_left: jax.Array
    alarms: jax.Array


def make_drift_reset(base: Policy, spec: PolicySpec, field: str) -> Policy:
    """Wrap ``base`` (built for ``spec``); ``field`` names its params' exploration field."""

    def init(key, spec_):
        return DriftResetState(base=base.init(key, spec_), detector=init_page_hinkley(),
                               boost_left=jnp.zeros((), jnp.int32), alarms=jnp.zeros((), jnp.int32))

    def effective(state, params):
        value = getattr(params.base, field)
        boosted = jnp.where(state.boost_left > 0, jnp.maximum(value, params.boost), value)
        return params.base.replace(**{field: boosted})

    def act(key, state, obs, params):
        return base.act(key, state.base, obs, effective(state, params))

    def update(key, state, obs, action, reward, params):
        update_key, init_key = jax.random.split(key)
        base_state = base.update(update_key, state.base, obs, action, reward, effective(state, params))
        # The slate's mean per-slot reward: the range the detector's threshold is set for.
        detector, alarm = page_hinkley_step(state.detector, jnp.mean(reward), params.detector)
        forget = alarm & (params.reset > 0.5)
        fresh = base.init(init_key, spec)
        base_state = jax.tree.map(lambda f, b: jnp.where(forget, f, b), fresh, base_state)
        boost_left = jnp.where(alarm, jnp.asarray(params.boost_steps, jnp.int32), jnp.maximum(state.boost_left - 1, 0))
        return DriftResetState(base=base_state, detector=detector, boost_left=boost_left,
                               alarms=state.alarms + alarm.astype(jnp.int32))

    def merge(state, new_states):
        raise ValueError("drift_reset: per-stream mode only (EngineConfig.mode='per_stream')")

    return Policy(init=init, act=act, update=update, merge=merge)
