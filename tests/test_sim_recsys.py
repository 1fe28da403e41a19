"""The semi-synthetic recommender environment, against NumPy references and Monte Carlo."""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rec_jax.sim import make_env, recsys, validate_params
from rec_jax.sim.ground_truth import synthetic_ground_truth


# jitted once per shape instead of op-by-op compilation of the eager calls
attraction = jax.jit(recsys.attraction)
click_value = jax.jit(recsys.click_value)


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_attraction(user, t, recent, p):
    """NumPy reference of the attraction formula (fatigue and availability)."""
    v, b = np.asarray(p.item_factors, np.float64), np.asarray(p.item_bias, np.float64)
    match = v @ np.asarray(user, np.float64) + b
    a = _sig(float(p.scale) * match + float(p.offset)) * np.exp(-float(p.fatigue) * np.asarray(recent, np.float64))
    return np.where(np.asarray(p.release_t) <= t, a, 0.0)


def np_click_value(user, p):
    v, b = np.asarray(p.item_factors, np.float64), np.asarray(p.item_bias, np.float64)
    tz = np.tanh(float(p.scale) * (v @ np.asarray(user, np.float64) + b))
    dwell_mean = np.exp(float(p.dwell_loc) + float(p.dwell_slope) * tz + 0.5 * float(p.dwell_sigma) ** 2)
    q = _sig(float(p.purchase_logit) + float(p.purchase_slope) * tz)
    return float(p.w_click) + float(p.w_dwell) * dwell_mean + float(p.w_purchase) * q


def np_slate_reward(slate, a, g, exam, model):
    total, reach = 0.0, 1.0
    for k, i in enumerate(slate):
        if model == "pbm":
            total += exam[k] * a[i] * g[i]
        else:
            total += reach * a[i] * g[i]
            reach *= 1.0 - a[i]
    return total


def rich_params(p, **kw):
    """Turn on every reward component so g varies across items."""
    base = dict(w_click=jnp.float32(1.0), w_dwell=jnp.float32(0.5), w_purchase=jnp.float32(3.0),
                dwell_slope=jnp.float32(1.0), purchase_logit=jnp.float32(-1.0), purchase_slope=jnp.float32(2.0))
    base.update(kw)
    return p.replace(**base)


@pytest.mark.parametrize("click_model", ["pbm", "cascade"])
def test_shapes_under_vmap(click_model):
    sim, p = make_env("synthetic_recsys", num_users=10, num_items=8, dim=4, slate_size=3, target_ctr=0.1,
                      click_model=click_model, history_len=5)
    keys = jax.random.split(jax.random.key(0), 4)
    obs, state = jax.jit(jax.vmap(sim.reset, in_axes=(0, None)))(keys, p)
    assert (sim.num_items, sim.feature_dim) == (8, 4)
    assert obs.features.shape == (4, 8, 4) and obs.features.dtype == jnp.float32
    assert obs.available.shape == (4, 8) and obs.available.dtype == jnp.bool_
    assert obs.scores.shape == (4, 8)
    np.testing.assert_array_equal(np.asarray(obs.features[2]), np.asarray(p.item_factors))
    assert state.history.shape == (4, 5) and state.history.dtype == jnp.int32
    assert state.exposure_counts.shape == (4, 8) and state.user.shape == (4, 4)
    np.testing.assert_array_equal(np.asarray(state.user), np.asarray(p.user_factors)[np.asarray(state.user_index)])
    slates = jnp.tile(jnp.array([0, 3, 5], jnp.int32), (4, 1))
    obs2, s2, out = jax.jit(jax.vmap(sim.step, in_axes=(0, 0, 0, None)))(jax.random.split(keys[0], 4), state, slates, p)
    assert out.slot_rewards.shape == (4, 3) and out.reward.shape == (4,) and out.reward.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(out.reward), np.asarray(out.slot_rewards).sum(1))
    np.testing.assert_array_equal(np.asarray(s2.exposure_counts).sum(1), [3] * 4)
    assert np.all(np.asarray(out.expected_reward) <= np.asarray(out.best_expected_reward) + 1e-6)


def test_attraction_and_expected_reward_match_numpy_with_fatigue_and_release():
    sim, p = recsys.make_synthetic_recsys_env(num_users=10, num_items=8, dim=4, seed=1, slate_size=3, target_ctr=0.1)
    release = jnp.array([0, 0, 2, 0, 5, 0, 1, 0], jnp.int32)
    p = rich_params(p, fatigue=jnp.float32(0.7), exposure_decay=jnp.float32(0.5), release_t=release, user_id=jnp.int32(3))
    _, state = sim.reset(jax.random.key(0), p)
    step = jax.jit(sim.step)
    recent = np.zeros(8)
    slates = [[0, 1, 2], [1, 3, 6], [2, 4, 1], [1, 0, 7]]
    for t, slate in enumerate(slates):
        a_ref = np_attraction(p.user_factors[3], t, recent, p)
        np.testing.assert_allclose(np.asarray(attraction(state, p)), a_ref, rtol=1e-5, atol=1e-7)
        g_ref = np_click_value(p.user_factors[3], p)
        np.testing.assert_allclose(np.asarray(click_value(state, p)), g_ref, rtol=1e-5)
        obs, state, out = step(jax.random.key(10 + t), state, jnp.array(slate, jnp.int32), p)
        exam = np.asarray(p.examination, np.float64)
        np.testing.assert_allclose(float(out.expected_reward), np_slate_reward(slate, a_ref, g_ref, exam, "pbm"), rtol=1e-5)
        np.testing.assert_array_equal(np.asarray(obs.available), np.asarray(release) <= t + 1)
        shown = np.bincount(slate, minlength=8)
        recent = 0.5 * recent + shown
        np.testing.assert_allclose(np.asarray(state.recent_exposures), recent, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(state.exposure_counts), np.bincount(sum(slates, []), minlength=8))
    # item 4 (released at 5) was shown at t=2 with attraction 0: never clicked, counted as exposure
    assert a_ref[4] == 0.0


@pytest.mark.parametrize("click_model", ["pbm", "cascade"])
def test_slate_expectations_match_monte_carlo(click_model):
    sim, p = recsys.make_synthetic_recsys_env(num_users=10, num_items=8, dim=4, seed=2, slate_size=3,
                                              click_model=click_model, target_ctr=0.2, target_best_ctr=0.6)
    p = rich_params(p)
    _, state = sim.reset(jax.random.key(1), p)
    slate = jnp.array([4, 0, 6], jnp.int32)
    n = 20000
    keys = jax.random.split(jax.random.key(2), n)
    _, _, out = jax.jit(jax.vmap(sim.step, in_axes=(0, None, None, None)))(keys, state, slate, p)
    a = np.asarray(attraction(state, p), np.float64)[[4, 0, 6]]
    exam = np.asarray(p.examination, np.float64)
    if click_model == "pbm":
        p_slot = exam * a
    else:
        p_slot = a * np.concatenate([[1.0], np.cumprod(1 - a)[:-1]])
    clicked = np.asarray(out.slot_rewards) > 0
    tol = 4.5 * np.sqrt(p_slot * (1 - p_slot) / n)
    assert np.all(np.abs(clicked.mean(0) - p_slot) <= tol), (clicked.mean(0), p_slot)
    if click_model == "cascade":
        assert clicked.sum(1).max() <= 1
    r = np.asarray(out.reward)
    assert abs(r.mean() - float(out.expected_reward[0])) <= 4.5 * r.std() / np.sqrt(n)
    np.testing.assert_allclose(np.asarray(out.click), clicked.any(1).astype(np.float32))


@pytest.mark.parametrize("click_model", ["pbm", "cascade"])
@pytest.mark.parametrize("rich", [False, True])
def test_best_slate_equals_brute_force(click_model, rich):
    sim, p = recsys.make_synthetic_recsys_env(num_users=6, num_items=6, dim=4, seed=3, slate_size=3,
                                              click_model=click_model, target_ctr=0.25, target_best_ctr=0.7)
    if rich:
        p = rich_params(p, release_t=jnp.array([0, 0, 0, 3, 0, 0], jnp.int32))
    p = p.replace(examination=jnp.array([0.6, 0.9, 0.3]))  # not monotone on purpose
    best = jax.jit(lambda a, g: recsys.best_expected_reward(a, g, p.examination, click_model, 3))
    for u in range(6):
        _, state = sim.reset(jax.random.key(0), p.replace(user_id=jnp.int32(u)))
        a = np.asarray(attraction(state, p), np.float64)
        g = np.asarray(click_value(state, p), np.float64)
        brute = max(np_slate_reward(s, a, g, [0.6, 0.9, 0.3], click_model) for s in itertools.permutations(range(6), 3))
        got = float(best(attraction(state, p), click_value(state, p)))
        np.testing.assert_allclose(got, brute, rtol=1e-5)
        if not rich or click_model == "pbm":
            slate = np.asarray(recsys.best_slate(jnp.asarray(a, jnp.float32), jnp.asarray(g, jnp.float32),
                                                 p.examination, click_model, 3))
            np.testing.assert_allclose(np_slate_reward(slate, a, g, [0.6, 0.9, 0.3], click_model), brute, rtol=1e-5)


def test_calibration_hits_targets():
    gt = synthetic_ground_truth(jax.random.key(4), num_users=30, num_items=15, dim=4)
    offset, scale = recsys.calibrate(gt, target_ctr=0.03, target_best_ctr=0.3)
    sim, p = recsys.make_recsys_env(gt, slate_size=2)
    np.testing.assert_allclose([float(p.offset), float(p.scale)], [offset, scale], rtol=1e-6)

    def attr_of(u):
        _, s = sim.reset(jax.random.key(0), p.replace(user_id=u))
        return attraction(s, p)

    a = np.asarray(jax.vmap(attr_of)(jnp.arange(30, dtype=jnp.int32)))
    assert abs(a.mean() - 0.03) < 1e-4 and abs(a.max(1).mean() - 0.3) < 1e-3
    with pytest.raises(ValueError, match="target"):
        recsys.calibrate(gt, target_ctr=0.4, target_best_ctr=0.3)


@pytest.mark.parametrize("mode", ["negate", "resample"])
def test_abrupt_shift_happens_exactly_at_configured_step(mode):
    sim, p = recsys.make_synthetic_recsys_env(num_users=50, num_items=8, dim=4, seed=5, slate_size=2,
                                              shift_mode=mode, num_shifts=2, target_ctr=0.1)
    p = p.replace(shift_steps=jnp.array([3, -1], jnp.int32), user_id=jnp.int32(7))
    _, state = sim.reset(jax.random.key(0), p)
    u0 = np.asarray(p.user_factors[7])
    step = jax.jit(sim.step)
    users, indices, expected = [], [], []
    for t in range(5):
        users.append(np.asarray(state.user))
        indices.append(int(state.user_index))
        _, state, out = step(jax.random.key(100 + t), state, jnp.array([0, 1], jnp.int32), p)
        expected.append(float(out.expected_reward))
    assert indices[:3] == [7, 7, 7]
    for t in range(3):
        np.testing.assert_array_equal(users[t], u0)
    if mode == "negate":
        np.testing.assert_array_equal(users[3], -u0)
    else:
        assert indices[3] != 7 or np.array_equal(users[3], u0)
        np.testing.assert_array_equal(users[3], np.asarray(p.user_factors[indices[3]]))
    np.testing.assert_array_equal(users[4], users[3])  # only one shift configured
    # the expected rewards before and at the shift use the old and the new user
    exam = np.asarray(p.examination, np.float64)
    for t, u in ((2, u0), (3, users[3])):
        a = np_attraction(u, t, np.zeros(8), p)  # no fatigue by default
        ref = np_slate_reward([0, 1], a, np_click_value(u, p), exam, "pbm")
        np.testing.assert_allclose(expected[t], ref, rtol=1e-5)


def test_gradual_drift_variance_grows_linearly():
    sim, p = recsys.make_synthetic_recsys_env(num_users=10, num_items=6, dim=4, seed=6, slate_size=2, target_ctr=0.1)
    p = p.replace(drift_std=jnp.float32(0.1))
    T, S = 20, 1000

    def run(key):
        reset_key, steps_key = jax.random.split(key)
        _, s0 = sim.reset(reset_key, p)

        def body(s, k):
            _, s, _ = sim.step(k, s, jnp.array([0, 1], jnp.int32), p)
            return s, s.user - s0.user
        _, disp = jax.lax.scan(body, s0, jax.random.split(steps_key, T))
        return disp  # f32[T, d]

    disp = np.asarray(jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(7), S)))
    var = disp.reshape(S, T, -1).transpose(1, 0, 2).reshape(T, -1).var(1)
    t = np.arange(1, T + 1)
    np.testing.assert_allclose(var, 0.01 * t, rtol=0.12)
    slope = np.polyfit(t, var, 1)[0]
    np.testing.assert_allclose(slope, 0.01, rtol=0.1)


def test_new_items_unavailable_before_release():
    sim, p = recsys.make_synthetic_recsys_env(num_users=10, num_items=6, dim=4, seed=8, slate_size=2,
                                              target_ctr=0.3, target_best_ctr=0.8)
    release = recsys.staggered_release(jax.random.key(3), 6, new_fraction=0.5, horizon=4)
    assert (np.asarray(release) > 0).any()
    p = p.replace(release_t=release)
    obs, state = sim.reset(jax.random.key(0), p)
    step = jax.jit(sim.step)
    for t in range(6):
        np.testing.assert_array_equal(np.asarray(obs.available), np.asarray(release) <= t)
        a = np.asarray(attraction(state, p))
        assert np.all(a[np.asarray(release) > t] == 0.0)
        avail = np.flatnonzero(np.asarray(release) <= t)
        g = np.asarray(click_value(state, p), np.float64)
        brute = max(np_slate_reward(s, a, g, np.asarray(p.examination), "pbm") for s in itertools.permutations(avail, 2)) \
            if len(avail) >= 2 else None
        obs, state, out = step(jax.random.key(t), state, jnp.array([0, 1], jnp.int32), p)
        if brute is not None:
            np.testing.assert_allclose(float(out.best_expected_reward), brute, rtol=1e-5)


def test_history_ring_buffer_matches_python_reference():
    sim, p = recsys.make_synthetic_recsys_env(num_users=10, num_items=8, dim=4, seed=9, slate_size=3,
                                              history_len=4, target_ctr=0.5, target_best_ctr=0.9)
    _, state = sim.reset(jax.random.key(0), p)
    ring, count, consumed = [0] * 4, 0, []
    step = jax.jit(sim.step)
    rng = np.random.default_rng(0)
    for t in range(8):
        slate = rng.permutation(8)[:3]
        _, state, out = step(jax.random.key(t), state, jnp.asarray(slate, jnp.int32), p)
        for k in range(3):
            if float(out.slot_rewards[k]) > 0:
                ring[count % 4] = int(slate[k]) + 1
                count += 1
                consumed.append(int(slate[k]) + 1)
        np.testing.assert_array_equal(np.asarray(state.history), ring)
        assert int(state.num_consumed) == count
        ordered = ([0] * 4 + consumed)[-4:]
        np.testing.assert_array_equal(np.asarray(recsys.history_in_order(state)), ordered)
    assert count > 4  # the ring wrapped around


def test_recsys_validate_params_names_field():
    _, p = recsys.make_synthetic_recsys_env(num_users=10, num_items=6, dim=4, slate_size=2, target_ctr=0.1)
    validate_params(p)
    bad = {
        "fatigue": jnp.float32(-1.0),
        "exposure_decay": jnp.float32(1.5),
        "examination": jnp.array([0.5, 1.2]),
        "shift_steps": jnp.array([0], jnp.int32),
        "release_t": jnp.zeros(5, jnp.int32),
        "user_id": jnp.int32(10),
        "w_purchase": jnp.float32(-0.1),
        "drift_std": jnp.float32(np.nan),
    }
    for field, value in bad.items():
        with pytest.raises(ValueError, match=f"RecsysParams.{field}"):
            validate_params(p.replace(**{field: value}))
    with pytest.raises(ValueError, match="click_model"):
        recsys.make_synthetic_recsys_env(click_model="dbn")
