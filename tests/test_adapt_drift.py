"""Page-Hinkley drift detection (rec_jax.adapt.page_hinkley) and the drift-reset wrapper:
the statistic against a NumPy reference, an alarm on a planted change, and the
false-alarm rate on stationary streams against the configured one."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.adapt.page_hinkley import (PageHinkleyParams, init_page_hinkley, page_hinkley_step, statistic,
                                        threshold_for_rate)


def _scan(xs, params):
    def body(state, x):
        state, alarm = page_hinkley_step(state, x, params)
        return state, (alarm, statistic(state, params.direction))
    return jax.lax.scan(body, init_page_hinkley(), xs)[1]


_run_many = jax.jit(jax.vmap(_scan, in_axes=(0, None)))


def _numpy_page_hinkley(xs, delta, threshold, min_samples):
    n = mean = up = up_min = down = down_min = 0.0
    alarms = []
    for x in xs:
        n += 1
        mean += (x - mean) / n
        up += x - mean - delta
        down += mean - x - delta
        up_min, down_min = min(up_min, up), min(down_min, down)
        alarm = max(up - up_min, down - down_min) > threshold and n >= min_samples
        alarms.append(alarm)
        if alarm:
            n = mean = up = up_min = down = down_min = 0.0
    return np.array(alarms)


def test_statistic_matches_numpy_reference():
    rng = np.random.default_rng(0)
    xs = np.concatenate([rng.binomial(1, 0.7, 300), rng.binomial(1, 0.2, 300), rng.binomial(1, 0.8, 300)])
    params = PageHinkleyParams(delta=0.05, threshold=5.0, min_samples=10)
    alarms, _ = _run_many(jnp.asarray(xs, jnp.float32)[None], params)
    ref = _numpy_page_hinkley(xs.astype(np.float64), 0.05, 5.0, 10)
    np.testing.assert_array_equal(np.asarray(alarms[0]), ref)
    assert ref[300:].any() and ref[600:].any()  # the reference itself sees both changes


def test_fires_on_a_planted_change_and_is_quiet_at_the_configured_rate():
    horizon, streams, alpha, delta = 1000, 2000, 0.1, 0.1
    threshold = threshold_for_rate(alpha, horizon, delta)  # two-sided, sigma2 = 1/4 for rewards in [0, 1]
    np.testing.assert_allclose(threshold, 0.25 / (2 * delta) * np.log(2 * horizon / alpha))
    params = PageHinkleyParams(delta=delta, threshold=threshold)
    key_stationary, key_change = jax.random.split(jax.random.key(0))
    # Stationary: every stream Bernoulli(p) with its own p in [0.1, 0.9].
    p = jax.random.uniform(jax.random.key(1), (streams, 1), minval=0.1, maxval=0.9)
    xs = jax.random.bernoulli(key_stationary, p, (streams, horizon)).astype(jnp.float32)
    alarms, _ = _run_many(xs, params)
    rate = float(np.asarray(alarms).any(axis=1).mean())
    slack = 3 * np.sqrt(alpha * (1 - alpha) / streams)
    assert rate <= alpha + slack, (rate, alpha)
    # Planted change at t = 500: mean 0.7 -> 0.2 (a fall of 0.5 > delta).
    change = 500
    means = jnp.where(jnp.arange(horizon) < change, 0.7, 0.2)
    xs = jax.random.bernoulli(key_change, means, (200, horizon)).astype(jnp.float32)
    alarms = np.asarray(_run_many(xs, params)[0])
    first_after = np.array([np.argmax(a[change:]) if a[change:].any() else horizon for a in alarms])
    assert (first_after < horizon - change).mean() > 0.98  # fires after the change
    # Expected delay ~ threshold / (fall - delta): allow twice that.
    assert np.median(first_after) < 2 * threshold / (0.5 - delta)


def test_direction_down_ignores_a_rise():
    xs = jnp.concatenate([jnp.zeros(200), jnp.ones(200)])[None]
    params = PageHinkleyParams(delta=0.05, threshold=5.0, direction="down")
    assert not np.asarray(_run_many(xs, params)[0]).any()
    assert np.asarray(_run_many(xs, params.replace(direction="up"))[0]).any()


def test_drift_reset_forgets_and_boosts_on_alarm():
    from rec_jax.adapt.drift_reset import DriftResetParams, make_drift_reset
    from rec_jax.policies import make_policy
    from rec_jax.policies.base import Observation, PolicySpec
    from rec_jax.policies.epsilon_greedy import EpsilonGreedyParams

    spec = PolicySpec(num_items=3)
    base, _ = make_policy("epsilon_greedy", spec)
    policy = make_drift_reset(base, spec, "epsilon")
    params = DriftResetParams(base=EpsilonGreedyParams(epsilon=0.0),
                              detector=PageHinkleyParams(delta=0.05, threshold=3.0, min_samples=5, direction="down"),
                              boost=0.7, boost_steps=4)
    obs = Observation(features=jnp.zeros((3, 0)), available=jnp.ones(3, bool), scores=jnp.zeros(3))
    rewards = np.array([1.0] * 20 + [0.0] * 20, np.float32)
    ref = _numpy_page_hinkley(rewards.astype(np.float64), 0.05, 3.0, 5)  # "down" only: falls here

    def body(state, r):
        new = policy.update(jax.random.key(0), state, obs, jnp.int32(1), r, params)
        return new, (new.base.counts, new.boost_left, new.alarms)

    state = policy.init(jax.random.key(0), spec)
    _, (counts, boost_left, alarms) = jax.jit(lambda s: jax.lax.scan(body, s, jnp.asarray(rewards)))(state)
    first = int(np.argmax(ref))
    assert ref.any() and int(alarms[-1]) == ref.sum()
    # Before the alarm the count of item 1 grows by one a step; at the alarm it restarts from 0.
    np.testing.assert_array_equal(np.asarray(counts[:first, 1]), np.arange(1, first + 1))
    assert float(counts[first].sum()) == 0.0
    np.testing.assert_array_equal(np.asarray(boost_left[first:first + 5]), [4, 3, 2, 1, 0])
    # While boosted, act explores with epsilon 0.7 (the base epsilon is 0).
    learned = state.replace(base=state.base.replace(counts=jnp.ones(3), sums=jnp.array([1.0, 0.0, 0.0])))
    _, info = policy.act(jax.random.key(1), learned.replace(boost_left=jnp.int32(2)), obs, params)
    np.testing.assert_allclose(info.marginal[0], [0.3 + 0.7 / 3, 0.7 / 3, 0.7 / 3], rtol=1e-5)
    _, info = policy.act(jax.random.key(1), learned, obs, params)
    np.testing.assert_allclose(info.marginal[0], [1.0, 0.0, 0.0], atol=1e-6)  # not boosted: greedy


def test_bad_params_are_one_line_errors():
    with pytest.raises(ValueError, match="PageHinkleyParams.direction"):
        PageHinkleyParams(direction="sideways").validate()
    with pytest.raises(ValueError, match="threshold_for_rate"):
        threshold_for_rate(1.5, 100, 0.1)


def test_drift_reset_feeds_the_detector_the_slate_mean_reward():
    """A K = 3 slate's rewards: the detector sees their mean (in [0, 1], the range its
    threshold is set for), not their sum (in [0, 3], three times the increments);
    alarms equal the NumPy Page-Hinkley on the per-step means."""
    from rec_jax.adapt.drift_reset import DriftResetParams, make_drift_reset
    from rec_jax.policies import make_policy
    from rec_jax.policies.base import Observation, PolicySpec
    from rec_jax.policies.epsilon_greedy import EpsilonGreedyParams

    k, horizon, delta = 3, 300, 0.05
    spec = PolicySpec(num_items=5, slate_size=k)
    base, _ = make_policy("epsilon_greedy", spec)
    policy = make_drift_reset(base, spec, "epsilon")
    threshold = threshold_for_rate(0.1, horizon, delta)  # for values in [0, 1]
    params = DriftResetParams(base=EpsilonGreedyParams(epsilon=0.1),
                              detector=PageHinkleyParams(delta=delta, threshold=threshold, min_samples=5))
    obs = Observation(features=jnp.zeros((5, 0)), available=jnp.ones(5, bool), scores=jnp.zeros(5))
    rng = np.random.default_rng(3)
    means = np.where(np.arange(horizon) < horizon // 2, 0.8, 0.3)[:, None]
    rewards = (rng.random((horizon, k)) < means).astype(np.float32)  # a fall at T / 2
    ref = _numpy_page_hinkley(rewards.mean(1).astype(np.float64), delta, threshold, 5)

    def body(state, r):
        new = policy.update(jax.random.key(0), state, obs, jnp.arange(k, dtype=jnp.int32), r, params)
        return new, new.alarms

    alarms = jax.jit(lambda s: jax.lax.scan(body, s, jnp.asarray(rewards))[1])(policy.init(jax.random.key(0), spec))
    assert ref[horizon // 2:].any()  # the reference sees the fall
    np.testing.assert_array_equal(np.diff(np.asarray(alarms), prepend=0), ref.astype(np.int32))
