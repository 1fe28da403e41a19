"""Page-Hinkley change detection on a reward stream (Page 1954; Hinkley 1971), two-sided.

With x_bar_t the running mean of x_1..x_t (since the last restart),

    up_t   = up_{t-1}   + (x_t - x_bar_t - delta)     alarm if up_t - min_{s<=t} up_s     > threshold
    down_t = down_{t-1} + (x_bar_t - x_t - delta)     alarm if down_t - min_{s<=t} down_s > threshold

(up detects a rise of the mean, down a fall; ``direction`` picks "up", "down" or
"both"), and no alarm in the first ``min_samples`` steps. ``delta`` is the change
magnitude tolerated per step. A learning policy's reward rises as it learns, so
a policy watching its own reward uses "down": only a fall means the world moved.

False alarms: for increments with variance proxy sigma2 (1/4 for rewards in
[0, 1]) and the true mean in place of x_bar, exp((2 delta / sigma2) * S_t) is a
supermartingale, so by Ville's inequality one side's statistic started at a given
step ever exceeds lambda with probability <= exp(-2 delta lambda / sigma2). A
union bound over the ``horizon`` start points and the watched sides gives
P(any false alarm within horizon) <= alpha for
``threshold_for_rate(alpha, horizon, delta, sigma2, sides)`` = sigma2 / (2 delta) * log(sides * horizon / alpha).
The running mean stands in for the true one, so this is approximate; the tests
measure the rate on stationary streams.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

DIRECTIONS = ("up", "down", "both")


@struct.dataclass
class PageHinkleyParams:
    delta: float = 0.05  # tolerated change of the mean per step, > 0
    threshold: float = 20.0  # alarm level lambda, > 0 (see threshold_for_rate)
    min_samples: int = 30  # no alarm before this many samples since the last restart, >= 1
    direction: str = struct.field(pytree_node=False, default="both")  # "up", "down" or "both" (static)

    def validate(self) -> None:
        for name in ("delta", "threshold"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"PageHinkleyParams.{name}: expected > 0, got {getattr(self, name)}")
        if int(self.min_samples) < 1:
            raise ValueError(f"PageHinkleyParams.min_samples: expected >= 1, got {self.min_samples}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"PageHinkleyParams.direction: expected one of {DIRECTIONS}, got {self.direction!r}")


@struct.dataclass
class PageHinkleyState:
    """n: int32[] samples since restart; mean: f32[]; up, up_min, down, down_min: f32[] cumulative sums and their minima."""

    n: jax.Array
    mean: jax.Array
    up: jax.Array
    up_min: jax.Array
    down: jax.Array
    down_min: jax.Array


def threshold_for_rate(false_alarm_prob: float, horizon: int, delta: float, sigma2: float = 0.25,
                       sides: int = 2) -> float:
    """lambda with P(any false alarm in ``horizon`` steps) <= false_alarm_prob (see module docstring)."""
    if not 0.0 < false_alarm_prob < 1.0 or horizon < 1 or delta <= 0 or sigma2 <= 0 or sides not in (1, 2):
        raise ValueError(f"threshold_for_rate: need 0 < false_alarm_prob < 1, horizon >= 1, delta > 0, sigma2 > 0, "
                         f"sides in (1, 2); got {false_alarm_prob}, {horizon}, {delta}, {sigma2}, {sides}")
    return sigma2 / (2.0 * delta) * math.log(sides * horizon / false_alarm_prob)


def init_page_hinkley() -> PageHinkleyState:
    z = jnp.zeros((), jnp.float32)
    return PageHinkleyState(n=jnp.zeros((), jnp.int32), mean=z, up=z, up_min=z, down=z, down_min=z)


def page_hinkley_step(state: PageHinkleyState, x: jax.Array, params: PageHinkleyParams) -> tuple[PageHinkleyState, jax.Array]:
    """Feed one sample ``x`` f32[]; returns (state, alarm bool[]). The state restarts after an alarm."""
    x = jnp.asarray(x, jnp.float32)
    n = state.n + 1
    mean = state.mean + (x - state.mean) / n.astype(jnp.float32)
    delta = jnp.maximum(params.delta, 0.0)
    up = state.up + (x - mean - delta)
    down = state.down + (mean - x - delta)
    up_min, down_min = jnp.minimum(state.up_min, up), jnp.minimum(state.down_min, down)
    stat = _watched(up - up_min, down - down_min, params.direction)
    alarm = (stat > params.threshold) & (n >= params.min_samples)
    new = PageHinkleyState(n=n, mean=mean, up=up, up_min=up_min, down=down, down_min=down_min)
    new = jax.tree.map(lambda fresh, kept: jnp.where(alarm, fresh, kept), init_page_hinkley(), new)
    return new, alarm


def _watched(rise, fall, direction: str) -> jax.Array:
    if direction == "up":
        return rise
    if direction == "down":
        return fall
    return jnp.maximum(rise, fall)


def statistic(state: PageHinkleyState, direction: str = "both") -> jax.Array:
    """f32[] current PH statistic of the watched side(s) (compare with the threshold)."""
    return _watched(state.up - state.up_min, state.down - state.down_min, direction)
